"""Alembic environment: run on the connection the gateway hands over (see gateway.db.migrate)."""

from __future__ import annotations

from alembic import context

from gateway.db.schema import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only used programmatically
    raise RuntimeError("run migrations through gateway.db.migrate(engine)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,  # SQLite cannot ALTER most things in place
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
