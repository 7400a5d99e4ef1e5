"""MQTT ingest: from broker messages to stored state, alerts and time series.

``mqtt`` receives and acknowledges after the commit; ``pipeline`` stores one batch (``batch``)
in one transaction: ``validate``, ``dedup``, ``dispatch`` to the rules and to ``store`` (the SQL
writes); ``worker`` runs the pipeline in a child process.
"""
