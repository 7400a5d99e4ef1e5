"""Writes the ORM is too slow or too plain for: executemany inserts, and ON CONFLICT upserts.

Both work on SQLite and PostgreSQL, inside the caller's session and transaction.
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session


def table_of(model: type[Any]) -> Table:
    """The Core table of an ORM class."""
    table: Table = model.__table__
    return table


def bulk_insert(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """executemany INSERT of plain rows, in the session's transaction.

    On SQLite the rows go straight to the driver, encoded as SQLAlchemy stores them (UTC
    datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff', JSON as json.dumps): SQLAlchemy's per-value
    parameter processing cost more than the insert itself at thousands of events per second.
    Elsewhere (PostgreSQL) a Core insert.
    """
    if session.get_bind().dialect.name != "sqlite":
        session.execute(insert(table), rows)
        return
    columns = list(rows[0])
    unknown = set(columns) - set(table.c.keys())
    if unknown:
        raise ValueError(f"not columns of {table.name}: {sorted(unknown)}")
    # Names from our own schema (checked above); every value is a bound parameter.
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "  # noqa: S608
        f"VALUES ({', '.join('?' for _ in columns)})"
    )
    driver = session.connection().connection.driver_connection
    assert driver is not None
    driver.executemany(sql, [tuple(map(_sqlite_value, row.values())) for row in rows])


def _sqlite_value(value: Any) -> Any:
    kind = type(value)
    if kind is datetime:
        return _sqlite_datetime(value)
    if kind is list:
        return json.dumps(value)
    return value


@functools.lru_cache(maxsize=64)  # received_at is one instant per batch
def _sqlite_datetime(value: datetime) -> str:
    utc = value if value.tzinfo is UTC else value.astimezone(UTC)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d} "
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}.{utc.microsecond:06d}"
    )


def conflict_insert(session: Session, model: type[Any]) -> Any:
    """An INSERT into ``model``'s table in the session's dialect, which has ON CONFLICT clauses
    (``on_conflict_do_update``, ``on_conflict_do_nothing``) on SQLite and PostgreSQL alike."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(model)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(model)


def upsert(
    session: Session,
    model: type[Any],
    rows: list[dict[str, Any]],
    keys: list[str],
    update: list[str],
) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE/NOTHING on SQLite and PostgreSQL."""
    stmt = conflict_insert(session, model)
    stmt = (
        stmt.on_conflict_do_update(
            index_elements=keys, set_={c: getattr(stmt.excluded, c) for c in update}
        )
        if update
        else stmt.on_conflict_do_nothing(index_elements=keys)
    )
    session.execute(stmt, rows)
