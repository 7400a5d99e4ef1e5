"""MQTT ingest: from broker messages to stored state, alerts and time series.

``mqtt`` receives and acknowledges after the commit; ``pipeline`` stores one batch in one
transaction (``validate``, ``dedup``, ``dispatch`` to the store and the rules, ``store`` and
``bulk`` for the SQL writes); ``worker`` runs the pipeline in a child process.
"""
