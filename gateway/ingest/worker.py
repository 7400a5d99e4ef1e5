"""The ingest pipeline in a child process, so storing a batch does not share a GIL with paho.

The MQTT client (and its acknowledgements) stays in the gateway process; each batch of raw
messages goes to the worker over a pipe, the worker validates, stores and raises alerts in one
transaction exactly as in-process (gateway.ingest.pipeline), and sends back the outcome: counts,
the alerts that changed (the gateway broadcasts them), time-series points, gallery acks and
command results. The gateway acknowledges the batch to the broker only after that reply, so a
crash of either process loses nothing: unacknowledged messages are redelivered and deduplicated.

The alert rules' in-memory windows live in the worker; the gateway's maintenance loop asks it to
``tick``.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import threading
from collections.abc import Sequence
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any

from gateway.config import GatewayConfig
from gateway.ingest.batch import BatchOutcome, Inbound

log = logging.getLogger(__name__)

_REPLY_TIMEOUT_S = 300.0


class WorkerError(RuntimeError):
    """The worker could not store a batch now (transient); the ingest retries it."""


class PipelineWorker:
    """Runs gateway.ingest.pipeline in a child process; ``process`` blocks until it is stored."""

    def __init__(self, config: GatewayConfig, db_password: str | None) -> None:
        self._config = config
        self._db_password = db_password
        self._proc: Any = None
        self._conn: Connection | None = None
        self._lock = threading.Lock()  # ingest thread and maintenance thread share the pipe

    def start(self) -> None:
        """Start the child and wait until it has opened the database."""
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_worker_main,
            args=(self._config, self._db_password, child),
            name="dormguard-ingest-worker",
            daemon=True,
        )
        self._proc.start()
        child.close()
        self._conn = parent
        reply = self._receive(60.0)
        if reply[0] != "ready":
            raise WorkerError(f"the ingest worker did not start: {reply[1]}")
        log.info("ingest worker process %s ready", self._proc.pid)

    def process(self, batch: Sequence[Inbound]) -> BatchOutcome:
        """Store a batch in the worker; WorkerError when it cannot now (retry later)."""
        items = [(m.topic, m.payload, m.retain) for m in batch]
        reply = self._call(("batch", items))
        outcome: BatchOutcome = reply[1]
        return outcome

    def tick(self, now: datetime) -> list[Any]:
        """Let the rules expire their windows; returns the alert views that changed."""
        reply = self._call(("tick", now))
        views: list[Any] = reply[1]
        return views

    def stop(self) -> None:
        """Ask the child to finish and wait for it."""
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(BrokenPipeError, OSError):
                    self._conn.send(("stop", None))
            if self._proc is not None:
                self._proc.join(10)
                if self._proc.is_alive():
                    self._proc.terminate()
                    self._proc.join(5)
            self._proc = None
            self._conn = None

    def _call(self, request: tuple[str, Any]) -> tuple[str, Any]:
        with self._lock:
            if self._proc is None or not self._proc.is_alive():
                log.error("the ingest worker is gone; starting a new one")
                self._lock.release()
                try:
                    self.start()
                finally:
                    self._lock.acquire()
            assert self._conn is not None
            try:
                self._conn.send(request)
                reply = self._receive(_REPLY_TIMEOUT_S)
            except (EOFError, BrokenPipeError, OSError) as exc:
                raise WorkerError(f"the ingest worker died: {exc}") from exc
        if reply[0] != "ok":
            raise WorkerError(str(reply[1]))
        return reply

    def _receive(self, timeout: float) -> tuple[str, Any]:
        assert self._conn is not None
        if not self._conn.poll(timeout):
            raise WorkerError(f"the ingest worker did not answer within {timeout:.0f} s")
        reply: tuple[str, Any] = self._conn.recv()
        return reply


def _worker_main(config: GatewayConfig, db_password: str | None, conn: Connection) -> None:
    """The child: build the pipeline over its own engine and serve requests until told to stop."""
    import gc

    from sqlalchemy.exc import InterfaceError, OperationalError

    from contracts.models import utc_now
    from gateway.alerts.rules.engine import AlertRules
    from gateway.alerts.service import AlertService
    from gateway.db import open_engine, session_factory
    from gateway.ingest.pipeline import LocalPipeline
    from gateway.notify.outbox import Outbox
    from gateway.services import Services
    from gateway.timeseries.fanout import FanOutWriter

    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        engine = open_engine(config.database.url, password=db_password)
        sessions = session_factory(engine)
        services = Services(
            config=config,
            engine=engine,
            sessions=sessions,
            clock=utc_now,
            alerts=AlertService(
                sessions, utc_now, config.escalation, in_transaction=Outbox(config.notifications)
            ),
            series_writer=FanOutWriter([]),
            series_reader=None,  # type: ignore[arg-type]  # the worker answers no queries
        )
        store = LocalPipeline(services, None if config.elected_rules else AlertRules(config.rules))
        store.start()
    except Exception as exc:  # report why, then exit
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    gc.collect()
    gc.freeze()  # long-lived start-up objects: keep full collections short
    conn.send(("ready", None))
    while True:
        try:
            kind, body = conn.recv()
        except (EOFError, OSError):
            return  # the gateway is gone (killed): what is committed stays, the rest redelivers
        if kind == "stop":
            engine.dispose()
            return
        try:
            if kind == "batch":
                batch = [Inbound(topic, payload, retain) for topic, payload, retain in body]
                out = store.process(batch)
                out.signals = []  # not needed by the gateway: keep the reply small
                conn.send(("ok", out))
            elif kind == "tick":
                conn.send(("ok", store.tick(body)))
            else:
                conn.send(("error", f"unknown request {kind!r}"))
        except (OperationalError, InterfaceError) as exc:
            conn.send(("error", f"database unavailable: {exc}"[:1000]))
        except (BrokenPipeError, OSError):
            return
        except Exception as exc:
            logging.getLogger(__name__).exception("ingest worker request failed")
            conn.send(("error", f"{type(exc).__name__}: {exc}"[:1000]))


__all__ = ["BatchOutcome", "PipelineWorker", "WorkerError"]
