"""The wire contract shared by edge and gateway: topics, payload models, schema version."""

from contracts.models import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION"]
