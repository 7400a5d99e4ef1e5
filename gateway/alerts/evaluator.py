"""One elected replica evaluates the alert rules from the committed rule journal, in order.

With several gateway replicas each one stores only part of every gate's stream, so rules kept
in each replica's memory would split windows and see false gaps. Instead the ingest writes what
the rules read to ``rule_inputs`` in its own transaction (ids grow in commit order: every ingest
transaction takes the chain lock first), and one replica, the evaluator, reads the journal in id
order, runs the rules (gateway.alerts.rules.feed) and applies their signals in one transaction
with the move of its cursor (``rule_cursor``). Decision 0016 explains the choice.

* **Election.** PostgreSQL: a session-level advisory lock on a connection of its own; when the
  holder dies its connection closes and another replica takes the lock within a poll. SQLite
  (one host, tests): a lease on the cursor row, renewed every poll.
* **Exactly once.** The cursor moves only where the holder named in it read it (a conditional
  update); a stale evaluator's transaction changes nothing and it steps down. Alerts applied and
  the cursor commit together, so a crash re-evaluates from the committed cursor.
* **Take-over.** The new evaluator rebuilds the rules' windows by replaying the journal kept
  behind the cursor (``rule_journal_keep_s``) without applying anything, then goes on after the
  cursor. Any failure while evaluating drops the in-memory state and takes over again, so state
  never runs ahead of what committed.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, delete, func, select, text, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from contracts.registry import PayloadError, parse_message
from contracts.topics import parse_topic
from gateway.alerts.originators import gate_originator
from gateway.alerts.rules.config import RulesConfig
from gateway.alerts.rules.engine import AlertRules
from gateway.alerts.rules.feed import feed
from gateway.alerts.service import AlertService
from gateway.alerts.types import Signal
from gateway.db.schema import Gate, RuleCursor, RuleInput
from gateway.ports import Clock, Counters

log = logging.getLogger(__name__)

CURSOR = "alerts"
POLL_S = 0.05
BATCH_ROWS = 2000
LEASE_S = 5.0  # SQLite only: how long a silent holder keeps the role
REPLICA_GAP_GRACE_S = 30.0  # replicas commit a gate's events in any order
_LOCK_KEY = 0x646F726D_72756C65  # "dormrule"
_PRUNE_EVERY_S = 60.0


@dataclass(frozen=True, slots=True)
class EvaluatorStatus:
    """The elected evaluation as the database shows it (health, metrics)."""

    holder: str | None  # the replica's client id; None before the first election
    backlog: int  # journal rows not evaluated yet
    behind_s: float  # age of the oldest of them (0 when none)


def evaluator_status(session: Session, now: datetime) -> EvaluatorStatus:
    """Who evaluates and how far behind the journal it is."""
    cursor = session.get(RuleCursor, CURSOR)
    position = cursor.position if cursor is not None else 0
    pending = select(func.count(), func.min(RuleInput.received_at)).where(RuleInput.id > position)
    backlog, oldest = session.execute(pending).one()
    behind = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    return EvaluatorStatus(cursor.holder if cursor is not None else None, int(backlog), behind)


class LostLeadership(Exception):  # noqa: N818 - reads as what happened
    """Another replica holds the evaluator role now."""


def replica_rules(config: RulesConfig) -> RulesConfig:
    """The rules as the elected evaluator runs them: gaps get a grace unless one is set."""
    if config.event_gap_grace_s is not None:
        return config
    return config.model_copy(update={"event_gap_grace_s": REPLICA_GAP_GRACE_S})


class _Election:
    """Who evaluates: a PostgreSQL advisory lock, or a lease on the cursor row (SQLite)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        self._conn: Connection | None = None

    def acquire(self) -> bool:
        """Try to become the evaluator; whether this replica is it now."""
        if not self._postgres:
            return True  # the lease is taken with the cursor (see RuleEvaluator._claim)
        if self._conn is None:
            self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        got = self._conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _LOCK_KEY})
        return bool(got.scalar())

    def holds(self) -> bool:
        """Whether the role is still ours (the lock's connection is alive)."""
        if not self._postgres:
            return True
        if self._conn is None:
            return False
        try:
            self._conn.execute(text("SELECT 1"))
        except SQLAlchemyError:
            self.release()
            return False
        return True

    def release(self) -> None:
        """Give the role up (closing the connection releases the lock)."""
        if self._conn is not None:
            with contextlib.suppress(SQLAlchemyError):
                self._conn.close()
            self._conn = None

    @property
    def uses_lease(self) -> bool:
        return not self._postgres


class RuleEvaluator:
    """The evaluator loop in a thread of every replica; one of them holds the role at a time."""

    def __init__(
        self,
        engine: Engine,
        sessions: sessionmaker[Session],
        clock: Clock,
        alerts: AlertService,
        rules: RulesConfig,
        *,
        holder: str,
        keep_s: float,
        poll_s: float = POLL_S,
        counters: Counters | None = None,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._alerts = alerts
        self._rules_config = replica_rules(rules)
        self._holder = holder
        self._keep = timedelta(seconds=keep_s)
        self._poll_s = poll_s
        self._counters = counters
        self._election = _Election(engine)
        self._rules: AlertRules | None = None
        self._position = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_prune = 0.0
        self._last_write = 0.0
        self.evaluated = 0  # journal rows evaluated by this replica (tests, metrics)

    @property
    def leading(self) -> bool:
        """Whether this replica evaluates the rules now."""
        return self._rules is not None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rule-evaluator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self._step_down()

    def _run(self) -> None:
        while not self._stop.wait(self._poll_s):
            try:
                if self._rules is None:
                    if not self._election.acquire() or not self._take_over():
                        continue
                elif not self._election.holds():
                    log.warning("lost the rule evaluator role (database connection)")
                    self._step_down()
                    continue
                self._evaluate()
            except LostLeadership:
                log.warning("another replica evaluates the alert rules now")
                self._step_down()
            except (SQLAlchemyError, OSError):
                log.exception("rule evaluation failed; taking over again from the journal")
                self._step_down()
                self._stop.wait(1.0)

    def _step_down(self) -> None:
        self._rules = None
        self._election.release()

    # --- taking over -----------------------------------------------------------------------

    def _take_over(self) -> bool:
        """Claim the cursor and rebuild the windows from the journal behind it."""
        position = self._claim()
        if position is None:
            return False
        started = time.monotonic()
        rules = AlertRules(self._rules_config)
        seen_gates: set[str] = set()
        replayed = 0
        with self._sessions() as session:
            oldest = self._clock() - self._keep
            after = session.scalar(
                select(func.min(RuleInput.id)).where(RuleInput.received_at >= oldest)
            )
            last = (after or position + 1) - 1
            while last < position:
                rows = self._rows(session, last, upto=position)
                if not rows:
                    break
                for row in rows:
                    rules.tick(row.received_at)  # what the old evaluator's ticks had done
                    self._feed(rules, row, seen_gates)  # signals were applied already
                last = rows[-1].id
                replayed += len(rows)
            for gate in session.scalars(select(Gate).where(Gate.last_seq.is_not(None))):
                originator = gate_originator(gate.site, gate.building, gate.gate_id)
                if originator not in seen_gates and gate.last_seq is not None:
                    rules.restore_seq(originator, gate.last_seq)
        self._rules = rules
        self._position = position
        log.info(
            "evaluating the alert rules from journal row %d (rebuilt from %d rows in %.2f s)",
            position,
            replayed,
            time.monotonic() - started,
        )
        return True

    def _claim(self) -> int | None:
        """Name this replica in the cursor row; its position, or None when the lease is held."""
        now = self._clock()
        with self._sessions.begin() as session:
            row = session.get(RuleCursor, CURSOR, with_for_update=True)
            if row is None:
                session.add(
                    RuleCursor(
                        name=CURSOR,
                        position=0,
                        holder=self._holder,
                        lease_until=now + timedelta(seconds=LEASE_S),
                        updated_at=now,
                    )
                )
                return 0
            if self._election.uses_lease and row.holder != self._holder and row.lease_until > now:
                return None
            row.holder = self._holder
            row.lease_until = now + timedelta(seconds=LEASE_S)
            row.updated_at = now
            return row.position

    # --- evaluating -----------------------------------------------------------------------

    def _evaluate(self) -> None:
        """Evaluate the next journal rows and the time-driven checks; apply, move the cursor."""
        rules = self._rules
        assert rules is not None
        try:
            while True:
                now = self._clock()
                with self._sessions.begin() as session:
                    rows = self._rows(session, self._position)
                    signals: list[Signal] = []
                    for row in rows:
                        signals += self._feed(rules, row, None)
                    signals += rules.tick(now)
                    position = rows[-1].id if rows else self._position
                    renew = time.monotonic() - self._last_write >= LEASE_S / 3
                    if not rows and not signals and not renew:
                        return
                    self._move(session, position, now)
                    views = self._alerts.apply_in(session, signals)
                self._position = position
                self._last_write = time.monotonic()
                self.evaluated += len(rows)
                if self._counters is not None:
                    raised = sum(1 for v in views if v.count == 1 and v.state == "active")
                    self._counters.add("alerts_raised", raised)
                self._alerts.broadcast(views)
                if time.monotonic() - self._last_prune >= _PRUNE_EVERY_S:
                    self._prune(now)
                if len(rows) < BATCH_ROWS:
                    return
        except BaseException:
            self._rules = None  # never run ahead of what committed: rebuild on the next poll
            raise

    def _move(self, session: Session, position: int, now: datetime) -> None:
        """Move the cursor, if it is still ours where we left it."""
        moved = session.execute(
            update(RuleCursor)
            .where(
                RuleCursor.name == CURSOR,
                RuleCursor.holder == self._holder,
                RuleCursor.position == self._position,
            )
            .values(position=position, lease_until=now + timedelta(seconds=LEASE_S), updated_at=now)
        )
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            raise LostLeadership

    def _prune(self, now: datetime) -> None:
        """Forget journal rows evaluated and older than the keep window."""
        self._last_prune = time.monotonic()
        with self._sessions.begin() as session:
            session.execute(
                delete(RuleInput).where(
                    RuleInput.id <= self._position, RuleInput.received_at < now - self._keep
                )
            )

    @staticmethod
    def _rows(session: Session, after: int, *, upto: int | None = None) -> list[RuleInput]:
        query = select(RuleInput).where(RuleInput.id > after)
        if upto is not None:
            query = query.where(RuleInput.id <= upto)
        return list(session.scalars(query.order_by(RuleInput.id).limit(BATCH_ROWS)))

    @staticmethod
    def _feed(rules: AlertRules, row: RuleInput, gates: set[str] | None) -> list[Signal]:
        try:
            topic = parse_topic(row.topic)
            model = parse_message(row.topic, row.payload)
        except (PayloadError, ValueError) as exc:  # stored by an older or newer version
            log.error("rule journal row %d on %s cannot be read: %s", row.id, row.topic, exc)
            return []
        if gates is not None and topic.gate_id is not None:
            gates.add(gate_originator(topic.site, topic.building, topic.gate_id))
        return feed(rules, topic, model, row.received_at)
