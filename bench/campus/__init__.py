"""bench/campus_scale.py's parts: ``semester`` (what is simulated), ``filling`` (into a
database through the gateway's ingest) and ``measure`` (what people do with it)."""
