"""The notices outbox shared by several gateway replicas on a real PostgreSQL server.

Rules: claimers racing from threads, each on its own connection pool, never take the same
notice; senders racing the same way, each with its own webhook client, POST every notice
exactly once and leave none queued; a notice claimed by a sender that died before marking it is
sent by another once ``lease_s`` has passed (not before), and the dead sender's late report
changes nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from gateway.db import migrate, open_engine, session_factory
from gateway.db.schema import NoticeRow
from gateway.notify.config import NotificationsConfig
from gateway.notify.messages import Message
from gateway.notify.outbox import FAILED, PENDING, add_notice, claim_due, mark
from gateway.notify.routing import PlannedNotice
from gateway.notify.sender import NoticeSender, build_channels
from tests.gatewaykit import FakeClock
from tests.notify_receiver import Receiver, http_receiver
from tests.postgres import Postgres

REPLICAS = 3
LEASE_S = 30.0


@pytest.fixture
def engines(postgres: Postgres) -> Iterator[list[Engine]]:
    """One engine (connection pool) per replica over the migrated database, no notices in it."""
    engines = [open_engine(postgres.url) for _ in range(REPLICAS)]
    migrate(engines[0])
    with engines[0].begin() as connection:
        connection.execute(delete(NoticeRow))
    yield engines
    for engine in engines:
        engine.dispose()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with http_receiver() as r:
        yield r


def notify_config(receiver: Receiver) -> NotificationsConfig:
    return NotificationsConfig.model_validate(
        {
            "channels": [{"type": "webhook", "name": "hook", "url": f"{receiver.url}/hook"}],
            "lease_s": LEASE_S,
        }
    )


def queue_notices(sessions: sessionmaker[Session], count: int, clock: FakeClock) -> None:
    """``count`` due digest-like notices (no alert) to the hook; notice n carries ``{"n": n}``."""
    plan = PlannedNotice(route="g", channel="hook", kind="digest", due_at=clock.now)
    with sessions.begin() as session:
        for n in range(count):
            message = Message("digest", f"notice {n}", f"text {n}", f"**{n}**", {"n": n})
            add_notice(session, None, plan, message, clock.now)


def unclaimed(sessions: sessionmaker[Session], clock: FakeClock) -> int:
    """Notices due now that nobody holds."""
    with sessions() as session:
        due = NoticeRow.status.in_(PENDING) & (NoticeRow.next_attempt_at <= clock.now)
        return int(session.scalar(select(func.count()).where(due)) or 0)


def all_rows(sessions: sessionmaker[Session]) -> list[NoticeRow]:
    with sessions() as session:
        return list(session.scalars(select(NoticeRow).order_by(NoticeRow.id)))


def race(work: list[Callable[[], None]]) -> None:
    """Run each callable in its own thread, released together; re-raise the first error."""
    barrier = threading.Barrier(len(work))
    errors: list[BaseException] = []

    def run(job: Callable[[], None]) -> None:
        try:
            barrier.wait(10)
            job()
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads), "a racer did not finish"
    if errors:
        raise errors[0]


def test_racing_claimers_never_take_the_same_notice(engines: list[Engine]) -> None:
    sessions = [session_factory(engine) for engine in engines]
    clock = FakeClock()
    queue_notices(sessions[0], 300, clock)
    taken: list[list[int]] = [[] for _ in sessions]

    def claimer(i: int) -> Callable[[], None]:
        def claim_until_none_is_left() -> None:
            while unclaimed(sessions[i], clock):
                taken[i].extend(n.id for n in claim_due(sessions[i], clock.now, LEASE_S, 5))

        return claim_until_none_is_left

    race([claimer(i) for i in range(REPLICAS)])
    ids = [notice_id for claimed in taken for notice_id in claimed]
    assert len(ids) == len(set(ids)) == 300  # disjoint, and every one taken
    assert {r.id for r in all_rows(sessions[0])} == set(ids)
    assert {(r.status, r.attempts) for r in all_rows(sessions[0])} == {("queued", 1)}


def test_racing_senders_post_every_notice_exactly_once(
    engines: list[Engine], receiver: Receiver
) -> None:
    config = notify_config(receiver)
    clock = FakeClock()
    sessions = [session_factory(engine) for engine in engines]
    queue_notices(sessions[0], 60, clock)
    senders = [  # each its own pool and its own webhook client, as separate replicas have
        NoticeSender(s, build_channels(config, {}), clock, config) for s in sessions
    ]
    sent = [0] * REPLICAS

    def replica(i: int) -> Callable[[], None]:
        def send_until_none_is_left() -> None:
            while unclaimed(sessions[i], clock):
                sent[i] += senders[i].send_due(limit=4)

        return send_until_none_is_left

    race([replica(i) for i in range(REPLICAS)])
    posted = sorted(r.json["n"] for r in receiver.on("/hook"))
    assert posted == list(range(60))  # none twice, none missing
    assert sum(sent) == 60
    assert sum(1 for count in sent if count) >= 2, f"no race happened: {sent}"
    assert {(r.status, r.attempts, r.last_error) for r in all_rows(sessions[0])} == {
        ("sent", 1, None)
    }


def test_a_notice_held_by_a_dead_sender_is_sent_by_another_after_its_lease(
    engines: list[Engine], receiver: Receiver
) -> None:
    config = notify_config(receiver)
    clock = FakeClock()
    dead_sessions, *live_sessions = [session_factory(engine) for engine in engines]
    queue_notices(dead_sessions, 1, clock)
    (held,) = claim_due(dead_sessions, clock.now, config.lease_s, 10)  # then it is killed
    senders = [NoticeSender(s, build_channels(config, {}), clock, config) for s in live_sessions]
    sent = [0] * len(senders)

    def attempt(i: int) -> Callable[[], None]:
        def send() -> None:
            sent[i] += senders[i].send_due()

        return send

    race([attempt(i) for i in range(len(senders))])
    clock.advance(config.lease_s - 1)
    race([attempt(i) for i in range(len(senders))])
    assert sent == [0] * len(senders) and receiver.on("/hook") == []  # still leased

    clock.advance(2)
    race([attempt(i) for i in range(len(senders))])
    assert sorted(sent) == [0] * (len(senders) - 1) + [1]
    assert [r.json["n"] for r in receiver.on("/hook")] == [0]
    (row,) = all_rows(dead_sessions)
    assert (row.status, row.attempts, row.last_error) == ("sent", 2, None)

    # The dead sender comes back and reports its attempt: too late, the row is not touched.
    mark(dead_sessions, held, FAILED, clock.now, error="late report")
    (row,) = all_rows(dead_sessions)
    assert (row.status, row.attempts, row.last_error) == ("sent", 2, None)
    assert held.attempts == 1
