"""Composition root of the gateway: stores, rules, ingest, API and the maintenance loop."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select

from contracts.models import AlertNotice, utc_now
from contracts.signing import MessageSigner, parse_private_key
from contracts.topics import GatewayChannel, gateway_topic
from gateway.alerts.evaluator import RuleEvaluator
from gateway.alerts.rules.engine import AlertRules
from gateway.alerts.rules.welfare import evaluate_welfare, reconcile_welfare
from gateway.alerts.service import AlertService
from gateway.alerts.types import AlertType, Signal
from gateway.alerts.views import AlertView
from gateway.auth.throttle import ThrottlePolicy
from gateway.auth.throttle_store import forget_idle_throttles
from gateway.commands import CommandService
from gateway.config import GatewayConfig, check_secret
from gateway.db import migrate, open_engine, session_factory
from gateway.db.schema import ApiToken, AuthEvent, Gate, LateReturn
from gateway.db.schema import Presence as PresenceRow
from gateway.domain.occupancy import Presence
from gateway.enrolment.service import EnrolmentService
from gateway.enrolment.wrong_match import WrongMatchService
from gateway.ingest.batch import BatchOutcome, Inbound
from gateway.ingest.dedup import dedup_horizon, prune_seen
from gateway.ingest.mqtt import MqttIngest
from gateway.ingest.pipeline import LocalPipeline
from gateway.ingest.store import gate_key
from gateway.ingest.worker import PipelineWorker
from gateway.notify.outbox import Outbox
from gateway.notify.schedule import NoticeScheduler
from gateway.notify.sender import NoticeSender, build_channels
from gateway.ports import Clock
from gateway.retention import prune_history
from gateway.services import Services
from gateway.timeseries.base import TimeSeriesWriter
from gateway.timeseries.fanout import FanOutWriter
from gateway.timeseries.mapping import (
    APPLIANCE,
    APPLIANCE_STATE,
    BRIDGE_HEALTH,
    EDGE_HEALTH,
    alert_event,
    alert_points,
)
from gateway.timeseries.sqlite_store import SqliteSeriesStore

log = logging.getLogger(__name__)

EMBEDDED_MEASUREMENTS = frozenset({APPLIANCE, APPLIANCE_STATE, EDGE_HEALTH, BRIDGE_HEALTH})


@dataclass
class Gateway:
    services: Services
    ingest: MqttIngest
    # Stores batches and runs the rules: here (LocalPipeline) or in a child process.
    store: LocalPipeline | PipelineWorker
    _stop: threading.Event
    _maintenance: threading.Thread | None = None
    # Notifications: the sender delivers the outbox here, also in ingest-worker mode.
    notices: NoticeSender | None = None
    notice_schedule: NoticeScheduler | None = None
    # Replicas: one of them, elected, evaluates the alert rules from the journal.
    evaluator: RuleEvaluator | None = None

    def start(self, *, wait_broker_s: float = 0.0) -> None:
        """Migrate, seed gates, start stores, the pipeline, ingest and maintenance."""
        migrate(self.services.engine)
        seed_gates(self.services)
        self.store.start()
        if self.evaluator is not None:
            self.evaluator.start()
        self.services.series_writer.start()
        if self.notices is not None:
            self.notices.start()
        if self.services.enrolment is not None:
            self.services.enrolment.start()
        self.ingest.start()
        if wait_broker_s > 0 and not self.ingest.wait_ready(wait_broker_s):
            log.warning("broker not reachable yet; ingest keeps retrying")
        self._maintenance = threading.Thread(
            target=self._maintain, name="gateway-maintenance", daemon=True
        )
        self._maintenance.start()

    def stop(self) -> None:
        """Stop ingest (acknowledging what is stored), then flush the series writers."""
        self._stop.set()
        self.ingest.stop()
        if self._maintenance is not None:
            self._maintenance.join(10)
        if self.notices is not None:
            self.notices.stop()
        if self.evaluator is not None:
            self.evaluator.stop()
        self.store.stop()
        self.services.series_writer.flush(5.0)
        self.services.series_writer.close()
        self.services.engine.dispose()

    def process(self, batch: Sequence[Inbound]) -> BatchOutcome:
        """One ingest batch: store it (here or in the worker process), then the side effects
        that need the commit first. Transient database failures raise: the ingest retries."""
        out = self.store.process(batch)
        self._after_commit(batch, out)
        return out

    def _after_commit(self, batch: Sequence[Inbound], out: BatchOutcome) -> None:
        s = self.services
        s.counters.add("received", len(batch))
        s.counters.add("stored", out.stored)
        s.counters.add("duplicates", out.duplicates)
        s.counters.add("dead_letters", out.dead_letters)
        s.counters.add("alerts_raised", out.alerts_raised)
        if out.views:
            s.alerts.broadcast(out.views)
        if out.points:
            s.series_writer.write(out.points)
        if out.local_points and s.local_series is not None:
            s.local_series.write(out.local_points)
        if s.enrolment is not None:
            for key, ack in out.gallery_acks:
                s.enrolment.on_gallery_ack(key, ack)
        if s.commands is not None:
            for key, result in out.command_results:
                s.commands.on_result(key, result)
                if s.wrong_match is not None:
                    s.wrong_match.on_command_result(key, result)
        for notice in out.notices:
            if notice.replica != self.services.config.client_id:
                s.alerts.bus.publish({"type": "alert", "alert": notice.alert})
        if s.student_bus.subscribers:
            for device in out.devices:
                s.student_bus.publish({"type": "device", "device": device})
            for fired in out.watch_notices:
                s.student_bus.publish(fired)

    def _maintain(self) -> None:
        """Time-driven work: rule windows, escalation, notices due, welfare, galleries, pruning."""
        last_welfare = last_hourly = 0.0
        tick = 0.0
        while not self._stop.wait(1.0):
            tick += 1.0
            try:
                now = self.services.clock()
                self.services.alerts.broadcast(self.store.tick(now))
                if (
                    tick - last_welfare >= self.services.config.welfare_interval_s
                    and self._evaluates_here()
                ):
                    last_welfare = tick
                    self.services.alerts.apply(self.welfare_signals(now))
                if self._evaluates_here():
                    self.services.alerts.escalate_due()
                if self.notice_schedule is not None:
                    self.notice_schedule.tick(now)
                if self.services.enrolment is not None:
                    self.services.enrolment.retry_pending()
                if self.services.wrong_match is not None:
                    self.services.wrong_match.expire_unanswered()
                if tick - last_hourly >= 3600 or last_hourly == 0.0:
                    last_hourly = tick
                    self._hourly(now)
            except Exception:  # keep the loop alive through a database hiccup
                log.exception("maintenance step failed; retrying in a second")

    def _evaluates_here(self) -> bool:
        """Whether this gateway runs the alert rules' time-driven work (welfare, escalation):
        always alone; with replicas, only the elected evaluator."""
        return self.evaluator is None or self.evaluator.leading

    def _hourly(self, now: datetime) -> None:
        """Hourly pruning: old event ids, expired tokens and photos, idle throttles, old audit."""
        config = self.services.config
        with self.services.sessions.begin() as session:
            pruned = prune_seen(session, dedup_horizon(now, config.dedup_days))
            session.execute(delete(ApiToken).where(ApiToken.expires_at < now))
            # Failed logins prune idle counts too, but without failures the addresses and
            # user names tried would stay: a count is forgotten an hour after its last failure.
            forget_idle_throttles(session, now, ThrottlePolicy.of(config.api))
            audit: Any = session.execute(
                delete(AuthEvent).where(
                    AuthEvent.at < now - timedelta(days=config.api.auth_events_retention_days)
                )
            )
            kept = prune_history(session, config, now)
        if pruned:
            log.info("forgot %d event ids older than the dedup horizon", pruned)
        for table, count in kept.items():
            if count:
                log.info("retention: deleted %d old row(s) of %s", count, table)
        if audit.rowcount:
            log.info(
                "deleted %d auth events older than %g days",
                audit.rowcount,
                config.api.auth_events_retention_days,
            )
        if self.services.enrolment is not None:
            self.services.enrolment.purge_expired_photos()

    def welfare_signals(self, now: datetime) -> list[Signal]:
        """Raise current welfare warnings; clear those that no longer hold."""
        config = self.services.config.welfare
        with self.services.sessions() as session:
            presences = [Presence.of(r) for r in session.scalars(select(PresenceRow))]
            late: dict[str, list[datetime]] = {}
            since = now - timedelta(days=config.late_returns_days)
            for lr in session.scalars(select(LateReturn).where(LateReturn.ts > since)):
                late.setdefault(lr.person_id, []).append(lr.ts)
        warnings = evaluate_welfare(presences, late, config, now)
        latest = self.services.alerts.latest_of_type(AlertType.WELFARE)
        return reconcile_welfare(warnings, latest, now, site=self.services.config.site)


def _alert_series(writer: TimeSeriesWriter, clock: Clock) -> Callable[[list[AlertView]], None]:
    """A listener writing one ``alert`` point per lifecycle event (for Grafana)."""

    def write(views: list[AlertView]) -> None:
        now = clock()
        points = []
        for view in views:
            event = alert_event(view)
            if event is not None:
                points += alert_points(event, view, now)
        if points:
            writer.write(points)

    return write


def _alert_notices(services: Services) -> Callable[[list[AlertView]], None]:
    """A listener telling the other replicas about alert changes (their live consoles)."""
    config = services.config
    topic = gateway_topic(config.site, GatewayChannel.ALERTS)

    def tell(views: list[AlertView]) -> None:
        publisher = services.publisher
        if publisher is None:
            return
        for view in views:
            notice = AlertNotice(
                producer=f"gateway:{config.site}",
                replica=config.client_id,
                alert=view.model_dump(mode="json"),
            )
            try:
                publisher.publish(topic, notice.to_bytes(), qos=0)
            except ConnectionError:
                return  # the stored alert is what counts; other consoles refetch on reconnect

    return tell


def seed_gates(services: Services) -> None:
    """Make sure every configured gate has a row with its direction and name."""
    config = services.config
    with services.sessions.begin() as session:
        for entry in config.gates:
            key = gate_key(config.site, entry.building, entry.id)
            gate = session.get(Gate, key)
            if gate is None:
                gate = Gate(
                    gate_key=key, site=config.site, building=entry.building, gate_id=entry.id
                )
                session.add(gate)
            gate.direction = entry.direction
            gate.name = entry.name


def _secret(config: GatewayConfig, value: str, name: str) -> str:
    return check_secret(name, value, config.mode)


def build_gateway(
    config: GatewayConfig,
    *,
    environ: Mapping[str, str] | None = None,
    clock: Clock | None = None,
) -> Gateway:
    """Wire every part from the configuration (nothing is started or opened yet)."""
    env = dict(os.environ if environ is None else environ)
    now_fn: Clock = utc_now if clock is None else clock
    db_password = (
        _secret(config, config.database.password.read(env), "database.password")
        if config.database.password
        else None
    )
    engine = open_engine(config.database.url, password=db_password)
    sessions = session_factory(engine)
    sqlite_store = SqliteSeriesStore(
        config.timeseries.sqlite.path,
        retention=timedelta(days=config.timeseries.sqlite.retention_days),
        write_ahead=config.timeseries.sqlite.write_ahead,
    )
    writers: list[tuple[TimeSeriesWriter, frozenset[str] | None]] = [
        (sqlite_store, EMBEDDED_MEASUREMENTS)
    ]
    if config.timeseries.influx is not None:
        from gateway.timeseries.influx import InfluxWriter

        influx = config.timeseries.influx
        writers.append(
            (
                InfluxWriter(
                    url=influx.url,
                    token=_secret(config, influx.token.read(env), "timeseries.influx.token"),
                    org=influx.org,
                    bucket=influx.bucket,
                    backlog_path=influx.backlog_path,
                    max_backlog_rows=influx.max_backlog_rows,
                    batch_size=influx.batch_size,
                    flush_interval_s=influx.flush_interval_s,
                    write_ahead=influx.write_ahead,
                ),
                None,
            )
        )
    alerts = AlertService(
        sessions, now_fn, config.escalation, in_transaction=Outbox(config.notifications)
    )
    services = Services(
        config=config,
        engine=engine,
        sessions=sessions,
        clock=now_fn,
        alerts=alerts,
        series_writer=FanOutWriter(writers),
        # started and closed as one of series_writer's writers
        local_series=FanOutWriter([(sqlite_store, EMBEDDED_MEASUREMENTS)]),
        series_reader=sqlite_store,
    )
    alerts.listeners.append(_alert_series(services.series_writer, now_fn))
    if config.mqtt.shared_group is not None:  # only replicas need each other's alert changes
        alerts.listeners.append(_alert_notices(services))
    store: LocalPipeline | PipelineWorker = (
        PipelineWorker(config, db_password)
        if config.ingest_worker
        else LocalPipeline(services, None if config.elected_rules else AlertRules(config.rules))
    )
    if config.elected_rules:
        gw_evaluator: RuleEvaluator | None = RuleEvaluator(
            engine,
            sessions,
            now_fn,
            alerts,
            config.rules,
            holder=config.client_id,
            keep_s=config.rule_journal_keep_s,
            counters=services.counters,
        )
    else:
        gw_evaluator = None
    password = (
        _secret(config, config.mqtt.password.read(env), "mqtt.password")
        if config.mqtt.password
        else None
    )
    gw = Gateway(
        services=services,
        ingest=None,  # type: ignore[arg-type]  # set below: it calls back into the gateway
        store=store,
        _stop=threading.Event(),
        evaluator=gw_evaluator,
    )
    if config.notifications.channels:
        gw.notices = NoticeSender(
            sessions, build_channels(config.notifications, env), now_fn, config.notifications
        )
        gw.notice_schedule = NoticeScheduler(sessions, config.notifications)
    gw.ingest = MqttIngest(
        config.mqtt, config.site, config.client_id, gw.process, password=password
    )
    if config.api.metrics_token is not None:
        services.metrics_token = _secret(
            config, config.api.metrics_token.read(env), "api.metrics_token"
        )
    services.publisher = gw.ingest
    services.ingest_connected = gw.ingest.connected
    signer = _signer(config, env)
    services.commands = CommandService(sessions, now_fn, gw.ingest, signer)
    if config.enrolment is not None:
        services.enrolment, keys = _build_enrolment(config, services, env, signer)
        services.wrong_match = WrongMatchService(
            sessions, now_fn, services.commands, services.enrolment, *keys
        )
    return gw


def _signer(config: GatewayConfig, env: dict[str, str]) -> MessageSigner | None:
    """The key that signs commands and galleries; ValueError names the setting, not the key."""
    if config.command_signing is None:
        log.warning("no command_signing key: gates will refuse this gateway's commands")
        return None
    text = config.command_signing.private_key.read(env)
    try:
        signer = MessageSigner(parse_private_key(text))
    except ValueError as exc:
        raise ValueError(f"command_signing.private_key: {exc}") from None
    log.info("commands and galleries signed with key %s", signer.key_id)
    return signer


def _build_enrolment(
    config: GatewayConfig, services: Services, env: dict[str, str], signer: MessageSigner | None
) -> tuple[EnrolmentService, tuple[bytes, bytes]]:
    """The enrolment service, and the gallery and template keys it uses."""
    from contracts.gallery_crypto import load_key
    from faces.engine import photo_engine

    assert config.enrolment is not None
    settings = config.enrolment
    gallery_key = load_key(
        key_file=settings.gallery_key.file, key_env=settings.gallery_key.env, environ=env
    )
    template_key = gallery_key
    if settings.template_key is not None:
        template_key = load_key(
            key_file=settings.template_key.file, key_env=settings.template_key.env, environ=env
        )
    service = EnrolmentService(
        services.sessions,
        services.clock,
        settings,
        config.site,
        photo_engine(),
        services.publisher,
        gallery_key,
        template_key,
        signer=signer,
    )
    return service, (gallery_key, template_key)


def run_gateway(config: GatewayConfig) -> int:
    """Run the gateway (ingest + API) until SIGINT/SIGTERM."""
    import uvicorn

    from gateway.api import create_app

    gw = build_gateway(config)
    gw.start(wait_broker_s=5.0)
    app = create_app(gw.services)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=config.api.host,
            port=config.api.port,
            log_level="warning",
            ws_ping_interval=20,
            lifespan="off",
            # The client address is the login throttle's key: only api.trusted_proxies may
            # name another one (gateway/auth/addresses.py), never uvicorn's own header handling.
            proxy_headers=False,
        )
    )
    log.info(
        "gateway for site %s: API on http://%s:%s, started %s",
        config.site,
        config.api.host,
        config.api.port,
        datetime.now(UTC).isoformat(timespec="seconds"),
    )
    try:
        server.run()  # returns on SIGINT/SIGTERM
    finally:
        gw.stop()
    return 0
