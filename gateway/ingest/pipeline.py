"""From MQTT messages to stored state, alerts and time series: one batch, one transaction.

The ingest adapter (gateway.ingest.mqtt) hands over batches of raw messages and acknowledges
them to the broker only after ``Pipeline.process`` returned, i.e. after the transaction
committed. A crash before that makes the broker redeliver; event ids already stored are dropped
as duplicates. Invalid payloads become dead letters with the reason; nothing in a payload can
stop ingest.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from contracts.models import DeviceState
from gateway.alerts.originators import gate_originator
from gateway.alerts.rules.engine import AlertRules
from gateway.alerts.views import AlertView
from gateway.audit import lock_chain
from gateway.db.schema import Gate
from gateway.ingest.batch import BatchOutcome, Inbound, merge_outcomes
from gateway.ingest.dedup import drop_duplicates
from gateway.ingest.dispatch import Dispatcher
from gateway.ingest.store import BatchWork, add_dead_letter
from gateway.ingest.validate import validate
from gateway.services import Services

log = logging.getLogger(__name__)


def process_resilient(pipeline: Pipeline, batch: Sequence[Inbound]) -> BatchOutcome:
    """Store a batch; isolate a message the database refuses instead of stalling on it.

    A batch refused for a reason that retrying cannot cure (a constraint, bad data) is split in
    halves until the one message at fault is found; it becomes a dead letter with the database's
    reason and the rest is stored. Transient failures (database locked or unreachable, disk
    full: OperationalError, InterfaceError) propagate, and the ingest retries the whole batch.
    """
    try:
        return pipeline.process(batch)
    except (OperationalError, InterfaceError):
        raise
    except (SQLAlchemyError, ValueError, TypeError) as exc:
        if len(batch) == 1:
            pipeline.dead_letter(batch[0], f"could not be stored: {exc}"[:2000])
            return BatchOutcome(dead_letters=1)
        log.warning("a batch of %d failed (%s); isolating the culprit", len(batch), exc)
        middle = len(batch) // 2
        return merge_outcomes(
            process_resilient(pipeline, batch[:middle]),
            process_resilient(pipeline, batch[middle:]),
        )


def restore_sequences(rules: AlertRules, services: Services) -> None:
    """Seed gap detection with each gate's last stored sequence number."""
    with services.sessions() as session:
        for gate in session.scalars(select(Gate).where(Gate.last_seq.is_not(None))):
            assert gate.last_seq is not None
            originator = gate_originator(gate.site, gate.building, gate.gate_id)
            rules.restore_seq(originator, gate.last_seq)


class LocalPipeline:
    """The pipeline and its rules in this process: the interface of gateway.ingest.worker's
    worker.

    ``process`` stores a batch; ``tick`` lets the rules expire their windows. Both return what
    changed and leave broadcasting to the caller, after the commit. Without rules (elected
    evaluation) the batches feed the rule journal instead and ``tick`` has nothing to do.
    """

    def __init__(self, services: Services, rules: AlertRules | None) -> None:
        self._services = services
        self._rules = rules
        series_for_events = services.config.timeseries.influx is not None
        self._pipeline = Pipeline(services, rules, series_for_events=series_for_events)

    def start(self) -> None:
        """Seed the rules from the database."""
        if self._rules is not None:
            restore_sequences(self._rules, self._services)

    def process(self, batch: Sequence[Inbound]) -> BatchOutcome:
        """Store one batch (isolating a message the database refuses)."""
        return process_resilient(self._pipeline, batch)

    def tick(self, now: datetime) -> list[AlertView]:
        """Apply the alerts the rules' time-driven checks raise or clear; the changed ones."""
        signals = self._rules.tick(now) if self._rules is not None else []
        if not signals:
            return []
        with self._services.sessions.begin() as session:
            return self._services.alerts.apply_in(session, signals)

    def stop(self) -> None:
        """Nothing to release: the engine belongs to the gateway."""


class Pipeline:
    """Validates, deduplicates and stores batches; runs the alert rules over them."""

    def __init__(
        self, services: Services, rules: AlertRules | None, *, series_for_events: bool = True
    ) -> None:
        self._services = services
        self._dispatcher = Dispatcher(services, rules, series_for_events=series_for_events)

    def process(self, batch: Sequence[Inbound]) -> BatchOutcome:
        """Store one batch in one transaction and apply the alerts it raises.

        Side effects that leave the database (time-series points, gallery acks, command results,
        WebSocket notifications) are returned or done only after the commit.
        """
        out = BatchOutcome()
        now = self._services.clock()
        valid, dead = validate(batch)
        alerts = self._services.alerts
        with self._services.sessions.begin() as session, session.no_autoflush:
            lock_chain(session)  # first: replicas sharing the database take turns
            work = BatchWork(session, now)
            found = drop_duplicates(work, valid, out, self._services.config.client_id)
            work.preload([m for _, _, m in found.fresh])
            for msg, parsed, model in found.fresh:
                try:
                    self._dispatcher.handle(work, msg, parsed, model, out)
                except ValueError as exc:  # a payload that is valid JSON but makes no sense
                    dead.append((msg, f"{msg.topic}: {exc}"))
            for _msg, parsed, model in found.mine:
                out.points += self._dispatcher.points(parsed, model, work.now)
            for _msg, parsed, model in found.others:
                # Every replica keeps appliance history in its own embedded store.
                if isinstance(model, DeviceState):
                    out.local_points += self._dispatcher.points(parsed, model, work.now)
            for msg, reason in dead:
                add_dead_letter(session, msg, reason, now)
            out.dead_letters = len(dead)
            work.write()
            out.views = alerts.apply_in(session, out.signals) if out.signals else []
            out.alerts_raised = sum(1 for v in out.views if v.count == 1 and v.state == "active")
        for msg, reason in dead:
            log.warning("dead letter on %s: %s", msg.topic, reason)
        return out

    def dead_letter(self, msg: Inbound, reason: str) -> None:
        """Keep one message that could not be stored as a dead letter, with the reason."""
        with self._services.sessions.begin() as session:
            add_dead_letter(session, msg, reason, self._services.clock())
        log.error("dead letter on %s: %s", msg.topic, reason)
