"""Composition root of the gate daemon: builds real adapters from the configuration."""

from __future__ import annotations

import logging
import os
import sys
from datetime import timedelta

from contracts.gallery_crypto import load_key
from contracts.signing import MessageVerifier
from contracts.topics import GateAddress, GateChannel, gate_topic
from edge.gate.capture import open_source
from edge.gate.config import GateConfig
from edge.gate.credentials import KeyboardWedgeReader
from edge.gate.daemon import GateDaemon
from edge.gate.door import DoorActuator, GpioContact, GpioDoor, MqttRelayDoor, SimulatedDoor
from edge.gate.frames import FrameSource, SourceSpec
from edge.gate.gallery import GalleryStore
from edge.gate.probes import ProbeStore
from edge.gate.replay import NonceLedger
from edge.gate.snapshots import SnapshotStore
from edge.mqtt import availability_link
from edge.outbox import Outbox
from edge.publisher import ReliablePublisher
from edge.runtime import stop_on_signals
from faces.engine import DlibFaceEngine, FaceEngine
from faces.pool import EncoderPool, resolve_workers

log = logging.getLogger(__name__)


def source_spec(config: GateConfig) -> SourceSpec:
    """The frame source described by the config (the section has the spec's fields)."""
    return SourceSpec(**config.source.model_dump())


def nir_frame_source(config: GateConfig) -> FrameSource | None:
    """The NIR camera's frame source in ``passive+nir`` mode (not started), else None."""
    nir = config.liveness.nir
    if config.liveness.mode != "passive+nir" or nir is None:
        return None
    return open_source(SourceSpec(**nir.source.model_dump()))


def retention_seconds(days: float) -> float:
    """A retention (snapshots, probes) in seconds."""
    return timedelta(days=days).total_seconds()


def gallery_key(config: GateConfig) -> bytes:
    """The gallery key from the configured file or environment variable."""
    secret = config.gallery.key
    return load_key(key_file=secret.file, key_env=secret.env)


def build_gate(
    config: GateConfig,
    *,
    engine: FaceEngine | None = None,
    source: FrameSource | None = None,
    nir_source: FrameSource | None = None,
) -> GateDaemon:
    """Wire a GateDaemon with real adapters (engine and source may be injected)."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    addr = GateAddress(config.site, config.building, config.gate.id)
    link = availability_link(
        config.mqtt,
        default_client_id=f"gate-{config.site}-{config.building}-{config.gate.id}",
        topic=gate_topic(addr, GateChannel.AVAILABILITY),
        producer=config.producer_id,
    )
    outbox = Outbox(config.outbox.path, min_free_bytes=config.outbox.min_free_mb * 1024 * 1024)
    outbox.open()
    publisher = ReliablePublisher(outbox, link)
    door: DoorActuator
    if config.door.kind == "gpio":
        assert config.door.pin is not None
        door = GpioDoor(config.door.pin, active_high=config.door.active_high)
    elif config.door.kind == "mqtt_relay":
        assert config.door.relay_topic is not None

        def relay_publish(topic: str, payload: bytes, qos: int, retain: bool) -> None:
            link.publish(topic, payload, qos=qos, retain=retain)

        door = MqttRelayDoor(relay_publish, config.door.relay_topic)
    else:
        door = SimulatedDoor()
    key = gallery_key(config)
    snaps = config.snapshots
    snapshots = SnapshotStore(
        snaps.directory or config.outbox.path.parent / "snapshots",
        key=key,
        retention_s=retention_seconds(snaps.retention_days),
        enabled=snaps.enabled,
    )
    face_engine = engine or DlibFaceEngine(
        scale=config.detection.scale,
        upsample=config.detection.upsample,
        min_face_px=config.detection.min_face_px,
        max_faces=config.detection.max_faces,
    )
    workers = resolve_workers(config.encoding.workers)
    encoder = None
    if workers >= 2:
        encoder = EncoderPool(face_engine, workers, timeout_s=config.encoding.timeout_s)
    daemon = GateDaemon(
        config,
        engine=face_engine,
        encoder=encoder,
        source=source or open_source(source_spec(config)),
        door=door,
        link=link,
        publisher=publisher,
        gallery_store=GalleryStore(config.gallery.path, key),
        snapshots=snapshots,
        gallery_key=key,
        verifier=MessageVerifier.from_texts(config.command_auth.trusted_keys),
        nonces=NonceLedger(config.nonce_store),
        probes=ProbeStore(
            config.probe_store,
            key,
            retention_s=retention_seconds(config.probes.retention_days),
            max_count=config.probes.max_count,
        )
        if config.probes.enabled
        else None,
        nir_source=nir_source or nir_frame_source(config),
    )
    contact = config.door.contact
    if contact.kind == "gpio" and contact.pin is not None:
        daemon.contact_input = GpioContact(contact.pin, daemon.contact_changed)
    return daemon


def run_gate(config: GateConfig) -> int:
    """Run the gate daemon until SIGINT/SIGTERM; returns the exit code."""
    daemon = build_gate(config)
    if isinstance(daemon.engine, DlibFaceEngine):
        daemon.engine.start()

    stop_on_signals(daemon.request_stop)
    daemon.start()
    wedge = None
    if config.credentials.keyboard_wedge:

        def on_card(raw: str) -> None:
            daemon.handle_card(raw)

        wedge = KeyboardWedgeReader(sys.stdin, on_card)
        wedge.start()
    try:
        daemon.run()
    finally:
        if wedge is not None:
            wedge.stop()
        daemon.stop()
    return 0
