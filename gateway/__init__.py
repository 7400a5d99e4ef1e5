"""The dormguard gateway: MQTT ingest, stores, alerts and the API (grows in later issues)."""
