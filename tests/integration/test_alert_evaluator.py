"""The elected rule evaluator on a real SQLite file: one evaluator at a time, windows rebuilt
from the journal on take-over, and a stale evaluator unable to apply anything.

The three-process PostgreSQL run (kill -9 of the evaluator) is tests/integration/
test_alert_replicas.py; this one drives two evaluators in one process with a settable clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from gateway.alerts.evaluator import CURSOR, LEASE_S, RuleEvaluator, evaluator_status
from gateway.db.schema import AlertRow, RuleCursor, RuleInput
from gateway.ingest.batch import Inbound
from gateway.ingest.pipeline import LocalPipeline
from gateway.services import Services
from tests.gatewaykit import FakeClock, close_services, make_config, make_services
from tests.gatewayproc import access_event, event_topic, wait_until


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    config = make_config(mqtt={"shared_group": "gw", "client_id": "gw-a"})
    assert config.elected_rules
    services = make_services(tmp_path, config=config, clock=FakeClock(datetime.now(UTC)))
    yield services
    close_services(services)


def _evaluator(services: Services, holder: str) -> RuleEvaluator:
    return RuleEvaluator(
        services.engine,
        services.sessions,
        services.clock,
        services.alerts,
        services.config.rules,
        holder=holder,
        keep_s=services.config.rule_journal_keep_s,
        poll_s=0.02,
        counters=services.counters,
    )


def _unknown_faces(store: LocalPipeline, seqs: range) -> None:
    for i in seqs:
        ev = access_event(i, decision="denied", person=None)
        store.process([Inbound(event_topic(), ev.to_bytes())])


def _unknown_face_alerts(services: Services) -> list[AlertRow]:
    with services.sessions() as s:
        return list(s.scalars(select(AlertRow).where(AlertRow.type == "unknown_face")))


def _count_of_one_alert(services: Services) -> int:
    rows = _unknown_face_alerts(services)
    return rows[0].count if len(rows) == 1 else -len(rows)


def test_the_ingest_writes_the_journal_and_no_alert_without_an_evaluator(
    services: Services,
) -> None:
    store = LocalPipeline(services, None)
    _unknown_faces(store, range(1, 4))
    with services.sessions() as s:
        assert s.scalar(select(func.count()).select_from(RuleInput)) == 3
        status = evaluator_status(s, services.clock())
    assert _unknown_face_alerts(services) == []
    assert (status.holder, status.backlog) == (None, 3) and status.behind_s >= 0


def test_a_second_evaluator_takes_over_with_the_windows_of_the_first(
    services: Services,
) -> None:
    clock = services.clock
    assert isinstance(clock, FakeClock)
    store = LocalPipeline(services, None)
    first, second = _evaluator(services, "gw-a"), _evaluator(services, "gw-b")
    first.start()
    try:
        wait_until(lambda: first.leading, 5, "the first evaluator to take the role")
        _unknown_faces(store, range(1, 4))  # the third unknown face within 5 min raises
        wait_until(lambda: _count_of_one_alert(services) == 1, 5, "one unknown-face alert")
        assert services.counters.alerts_raised == 1
        second.start()
        for _ in range(20):  # the first one renews its lease: the second waits
            clock.advance(0.5)
            wait_until(lambda: first.evaluated >= 3, 5, "the first evaluator's rows")
            assert not second.leading
    finally:
        first.stop()
    try:
        clock.advance(LEASE_S + 1)  # the first one's lease runs out
        wait_until(lambda: second.leading, 5, "the second evaluator to take over")
        # The fourth face counts on the open alert only if the window held the first three.
        _unknown_faces(store, range(4, 5))
        wait_until(lambda: _count_of_one_alert(services) == 2, 5, "the repeat on the alert")
        with services.sessions() as s:
            cursor = s.get(RuleCursor, CURSOR)
            last = s.scalar(select(func.max(RuleInput.id)))
        assert cursor is not None and (cursor.holder, cursor.position) == ("gw-b", last)
        assert second.evaluated == 1  # the replayed rows were not applied again
        with services.sessions() as s:
            status = evaluator_status(s, clock())
        assert (status.holder, status.backlog, status.behind_s) == ("gw-b", 0, 0.0)
    finally:
        second.stop()
    assert _count_of_one_alert(services) == 2
    assert services.counters.alerts_raised == 1  # the fourth face repeated it


def test_an_evaluator_whose_cursor_was_taken_applies_nothing_and_steps_down(
    services: Services,
) -> None:
    store = LocalPipeline(services, None)
    stale = _evaluator(services, "gw-a")
    stale.start()
    try:
        wait_until(lambda: stale.leading, 5, "the evaluator to take the role")
        with services.sessions.begin() as s:  # another replica claimed the cursor meanwhile
            s.execute(
                update(RuleCursor)
                .where(RuleCursor.name == CURSOR)
                .values(holder="gw-b", lease_until=services.clock().replace(year=2100))
            )
        _unknown_faces(store, range(1, 4))
        wait_until(lambda: not stale.leading, 5, "the stale evaluator to step down")
        assert _unknown_face_alerts(services) == []
        with services.sessions() as s:
            cursor = s.get(RuleCursor, CURSOR)
        assert cursor is not None and (cursor.holder, cursor.position) == ("gw-b", 0)
    finally:
        stale.stop()
