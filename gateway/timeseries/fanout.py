"""One writer over several: each point goes to every writer that wants its measurement."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.timeseries.base import Point, TimeSeriesWriter, WriterStats


class FanOutWriter:
    """Writes each point to every writer that wants its measurement.

    The embedded store keeps what the console charts (appliances, edge and bridge health);
    access and door events are already in the SQL access log, so only a long-term sink
    (InfluxDB, for Grafana) gets them.
    """

    def __init__(self, writers: Sequence[tuple[TimeSeriesWriter, frozenset[str] | None]]) -> None:
        self._writers = list(writers)

    def start(self) -> None:
        for w, _ in self._writers:
            w.start()

    def write(self, points: Sequence[Point]) -> None:
        for w, wanted in self._writers:
            chosen = points if wanted is None else [p for p in points if p.measurement in wanted]
            if chosen:
                w.write(chosen)

    def flush(self, timeout: float) -> bool:
        return all(w.flush(timeout) for w, _ in self._writers)

    def close(self) -> None:
        for w, _ in self._writers:
            w.close()

    def stats(self) -> WriterStats:
        """The stats of the long-term sink when there is one, else of the embedded store."""
        return self._writers[-1][0].stats()
