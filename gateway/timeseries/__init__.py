"""The gateway's time-series sinks: the embedded SQLite store and the InfluxDB writer.

``points_for`` turns contract messages into ``Point``s (schema: docs/timeseries.md); a
``TimeSeriesWriter`` stores them without ever blocking the MQTT ingest thread. ``InfluxWriter``
lives in ``gateway.timeseries.influx`` and is imported from there, so that influxdb_client is
loaded only when InfluxDB is configured.
"""

from gateway.timeseries.base import Point, TimeSeriesReader, TimeSeriesWriter, WriterStats
from gateway.timeseries.mapping import MEASUREMENTS, device_series_key, points_for
from gateway.timeseries.sqlite_store import SqliteSeriesStore

__all__ = [
    "MEASUREMENTS",
    "Point",
    "SqliteSeriesStore",
    "TimeSeriesReader",
    "TimeSeriesWriter",
    "WriterStats",
    "device_series_key",
    "points_for",
]
