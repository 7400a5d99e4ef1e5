"""A filled SQLite database copied, table by table, into a migrated PostgreSQL one.

Filling PostgreSQL with a 10 M-event semester through the ingest takes longer than a working
session here (the ingest fills it at about half SQLite's rate), so the semester the ingest
wrote to SQLite is copied instead: every row of every table of the schema, read through the
schema's own column types and written with COPY, the sequences moved past the copied ids,
then ANALYZE. The ingest rate at that size is still measured through ``Gateway.process``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg.types.json import Json
from sqlalchemy import JSON, Engine, Integer, Table, create_engine, select, text

from gateway.db.schema import Base

CHUNK = 50_000


@dataclass
class Copied:
    seconds: float
    rows: dict[str, int]


def copy_database(source: Path, target: Engine, log: Callable[[str], None]) -> Copied:
    """Every schema table of the SQLite file ``source`` into ``target`` (migrated, emptied)."""
    if not source.is_file():
        raise FileNotFoundError(f"no SQLite database to copy at {source}")
    started = time.monotonic()
    reader = create_engine(f"sqlite:///{source}")
    tables = Base.metadata.sorted_tables
    rows: dict[str, int] = {}
    try:
        with target.begin() as conn:
            conn.execute(text(f"TRUNCATE {', '.join(t.name for t in tables)} CASCADE"))
        for table in tables:
            rows[table.name] = _copy_table(reader, target, table)
            if rows[table.name]:
                log(f"    {table.name:<20} {rows[table.name]:>12,} rows")
        with target.begin() as conn:
            for table in tables:
                _move_sequences(conn, table)
        with target.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    finally:
        reader.dispose()
    return Copied(time.monotonic() - started, rows)


def _copy_table(reader: Engine, target: Engine, table: Table) -> int:
    """One table's rows, COPYed in chunks; the number of rows."""
    dialect = target.dialect
    columns = list(table.columns)
    binds: list[Callable[[Any], Any] | None] = [
        _json if isinstance(c.type, JSON) else c.type.bind_processor(dialect) for c in columns
    ]
    names = ", ".join(f'"{c.name}"' for c in columns)
    count = 0
    raw = target.raw_connection()
    try:
        cursor = raw.cursor()
        with reader.connect() as src:
            result = src.execution_options(yield_per=CHUNK).execute(select(table))
            # Names from our own schema; the values travel as COPY data.
            with cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for part in result.partitions():
                    for row in part:
                        copy.write_row(
                            [v if b is None else b(v) for v, b in zip(row, binds, strict=True)]
                        )
                    count += len(part)
        raw.commit()
    finally:
        raw.close()
    return count


def _json(value: Any) -> Any:
    """A JSON column's value as COPY takes it (a Python list would go as a PostgreSQL array)."""
    return None if value is None else Json(value)


def _move_sequences(conn: Any, table: Table) -> None:
    """An integer key's sequence (if it has one) past the largest copied id."""
    for column in table.primary_key.columns:
        if isinstance(column.type, Integer):
            conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', '{column.name}'), "
                    f"COALESCE(MAX({column.name}), 0) + 1, false) FROM {table.name}"
                )
            )
