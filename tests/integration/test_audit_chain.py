"""The access log's hash chain on a real SQLite file: intact chains verify, any edit is caught.

Rule: changing, deleting or inserting any stored access record makes `verify_chain` (and
`dormguard audit verify`) report the first record that no longer matches.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from gateway.audit import GENESIS, chain_head, seal, verify_chain
from gateway.db import migrate, open_engine, schema_is_current, session_factory
from gateway.db.schema import AccessRecord
from tests.gatekit import dormguard_env
from tests.gatewaykit import minimal_gateway_yaml

T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


def _record(i: int) -> AccessRecord:
    return AccessRecord(
        event_id=f"evt-{i:08d}",
        ts=T0 + timedelta(seconds=i),
        received_at=T0 + timedelta(seconds=i, milliseconds=40),
        site="campus",
        building="b1",
        gate_id="g1",
        direction="in",
        decision="granted" if i % 3 else "denied",
        method="face",
        person_id=f"p{i}" if i % 3 else None,
        reason="match" if i % 3 else "unknown_face",
        flags=["after_curfew"] if i == 5 else [],
        distance=0.31 + i / 1000,
        margin=0.2,
        faces_in_view=1,
        seq=i,
    )


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    eng = open_engine(f"sqlite:///{tmp_path / 'gateway.db'}")
    migrate(eng)
    sessions = session_factory(eng)
    for batch in (range(1, 11), range(11, 21)):  # two transactions: the chain spans commits
        with sessions.begin() as s:
            head = chain_head(s)
            for i in batch:
                row = _record(i)
                head = seal(row, head)
                s.add(row)
    return eng


def test_migrations_are_idempotent_and_current(engine: Engine) -> None:
    migrate(engine)
    assert schema_is_current(engine)


def test_an_untouched_chain_verifies(engine: Engine) -> None:
    report = verify_chain(engine)
    assert report.ok and report.rows == 20 and report.first_bad_id is None


def test_the_first_record_chains_to_the_genesis_hash(engine: Engine) -> None:
    with engine.connect() as c:
        assert c.execute(text("select prev_hash from access_log where id = 1")).scalar() == GENESIS


@pytest.mark.parametrize(
    ("statement", "bad_id", "words"),
    [
        ("update access_log set decision = 'granted' where id = 9", 9, "changed"),
        ("update access_log set person_id = 'p-other' where id = 4", 4, "changed"),
        ("update access_log set ts = '2026-11-29 07:00:00.000000' where id = 12", 12, "changed"),
        ("delete from access_log where id = 7", 8, "deleted"),
        ("update access_log set hash = 'f' || substr(hash, 2) where id = 20", 20, "changed"),
    ],
)
def test_any_edit_is_reported_at_the_first_bad_record(
    engine: Engine, statement: str, bad_id: int, words: str
) -> None:
    with engine.begin() as c:
        c.execute(text(statement))
    report = verify_chain(engine)
    assert not report.ok
    assert report.first_bad_id == bad_id
    assert words in report.problem


def test_recomputing_one_hash_does_not_hide_an_edit(engine: Engine) -> None:
    """A forger who rewrites one row and its own hash still breaks the next row's link."""
    from gateway.audit import chain_hash, record_fields

    sessions = session_factory(engine)
    with sessions.begin() as s:
        row = s.get(AccessRecord, 10)
        assert row is not None
        row.decision = "denied"
        row.hash = chain_hash(row.prev_hash, record_fields(row))
    report = verify_chain(engine)
    assert not report.ok and report.first_bad_id == 11


def test_audit_verify_command_exits_1_on_tampering(engine: Engine, tmp_path: Path) -> None:
    config = minimal_gateway_yaml(tmp_path)
    cmd = [sys.executable, "-m", "dormguard.cli", "audit", "verify", "--config", str(config)]
    ok = subprocess.run(cmd, capture_output=True, text=True, env=dormguard_env(), timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "20 records" in ok.stdout
    with engine.begin() as c:
        c.execute(text("update access_log set reason = 'match' where id = 3"))
    bad = subprocess.run(cmd, capture_output=True, text=True, env=dormguard_env(), timeout=60)
    assert bad.returncode == 1
    assert "record id 3" in bad.stderr
