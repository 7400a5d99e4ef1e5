"""The gate daemon: camera -> detect -> track -> encode -> match -> vote -> decide -> door -> event.

`GateDaemon` holds the pipeline and the decision state and is driven by a frame loop (main
thread) and by MQTT handlers (network thread). `build_gate` is the composition root that wires
real adapters from a `GateConfig`.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Literal, Protocol

import cv2
import numpy as np

from contracts.access import Direction, GateInfo, Method, Person, Reason
from contracts.credentials import normalize_card_uid, parse_pin_entry, verify_pin
from contracts.gallery import Gallery, GalleryError, gallery_from_json, gallery_to_json
from contracts.models import (
    AccessEvent,
    CardSwipe,
    Command,
    CommandResult,
    DoorEvent,
    GalleryAck,
    GalleryUpdate,
    Heartbeat,
    LatencyBreakdown,
    SecurityEvent,
    utc_now,
)
from contracts.registry import PayloadError, parse_payload
from contracts.signing import MessageVerifier, SignatureError, Verified
from contracts.topics import GateAddress, GateChannel, gate_topic
from edge.gate.config import GateConfig
from edge.gate.credentials import find_by_card
from edge.gate.door import DoorActuator
from edge.gate.door_logic import DoorEventOut, DoorMonitor, parse_contact_payload
from edge.gate.frames import Frame, FrameSource
from edge.gate.gallery import GalleryStore
from edge.gate.matching import TemplateIndex
from edge.gate.model import AccessDecision, AccessPolicy, Curfew, Passage
from edge.gate.policy import decide_access, deny
from edge.gate.replay import FreshnessRule, NonceLedger, freshness
from edge.gate.snapshots import SnapshotStore
from edge.gate.tracking import FaceTracker, Track
from edge.gate.voting import ConfirmRule, Verdict, Vote, confirm
from edge.mqtt import MqttLink, ReceivedMessage
from edge.publisher import ReliablePublisher
from faces.engine import FaceEngine

log = logging.getLogger(__name__)


def access_policy(config: GateConfig) -> AccessPolicy:
    """The pure policy settings from the config."""
    curfew = None
    if config.policy.curfew is not None:
        curfew = Curfew(
            start=dtime.fromisoformat(config.policy.curfew.start),
            end=dtime.fromisoformat(config.policy.curfew.end),
        )
    return AccessPolicy(
        timezone=config.policy.timezone,
        curfew=curfew,
        anti_passback=config.policy.anti_passback,
        anti_passback_window_s=config.policy.anti_passback_window_s,
    )


@dataclass(slots=True)
class FrameStats:
    """Per-frame timings in milliseconds (for the event latency breakdown and benchmarks)."""

    detect_ms: float = 0.0
    encode_ms: float = 0.0
    match_ms: float = 0.0
    faces: int = 0
    decisions: list[AccessDecision] = field(default_factory=list)


@dataclass(slots=True)
class _FaceState:
    """Decision state guarded by the daemon lock."""

    gallery: Gallery
    index: TemplateIndex | None
    face_error: str | None
    last_passage: dict[str, Passage] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _TrackDecision:
    """The last face decision on a track, for re-verification and repeat suppression."""

    decided_at: float
    person_id: str | None
    granted: bool
    reported_at: float

    def same_outcome(self, decision: AccessDecision) -> bool:
        return self.person_id == decision.person_id and self.granted == decision.granted


class ContactInput(Protocol):
    """A hardware door-contact input (GPIO) that calls back on changes."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class GateDaemon:
    """One entrance gate: face and card/PIN decisions, door control, durable events."""

    def __init__(
        self,
        config: GateConfig,
        *,
        engine: FaceEngine,
        source: FrameSource,
        door: DoorActuator,
        link: MqttLink,
        publisher: ReliablePublisher,
        gallery_store: GalleryStore,
        snapshots: SnapshotStore,
        gallery_key: bytes,
        verifier: MessageVerifier,
        nonces: NonceLedger,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utc_now,
    ) -> None:
        self.config = config
        self.engine = engine
        self.source = source
        self.door = door
        self.link = link
        self.publisher = publisher
        self.gallery_store = gallery_store
        self.snapshots = snapshots
        self.gallery_key = gallery_key
        self.verifier = verifier
        self.nonces = nonces
        self.freshness = FreshnessRule(
            max_age_s=config.command_auth.max_age_s,
            max_future_s=config.command_auth.max_future_s,
        )
        self.clock = clock
        self.wall = wall
        self.addr = GateAddress(config.site, config.building, config.gate.id)
        self.gate = GateInfo(
            config.site, config.building, config.gate.id, Direction(config.gate.direction)
        )
        self.policy = access_policy(config)
        self.rule = ConfirmRule(
            k=config.confirmation.k,
            window_s=config.confirmation.window_s,
            strong_distance=config.confirmation.strong_distance,
            strong_margin=config.confirmation.strong_margin,
            reject_after=config.confirmation.reject_after,
        )
        self.tracker = FaceTracker(
            max_age_s=config.detection.track_max_age_s,
            max_encodes_per_track=config.detection.max_encodes_per_track,
            min_encode_interval_s=config.detection.min_encode_interval_s,
        )
        self.monitor = DoorMonitor(held_open_after_s=config.door.contact.held_open_after_s)
        self._lock = threading.RLock()
        self._state = _FaceState(Gallery.empty(), None, "gallery not loaded")
        self._stop = threading.Event()
        self._started_at = clock()
        self._frames_since_beat = 0
        self._last_beat = clock()
        self._last_purge = float("-inf")
        self._last_frame_at: float | None = None
        self._last_reason: dict[int, str] = {}
        self._decided: dict[int, _TrackDecision] = {}
        self.doors_opened = 0  # door commands so far, and the monotonic time of the last one
        self.last_door_open_at: float | None = None
        self.contact_input: ContactInput | None = None
        self.rejected_messages = 0

    # ----------------------------------------------------------------- lifecycle

    def topic(self, channel: GateChannel) -> str:
        """This gate's topic for a channel."""
        return gate_topic(self.addr, channel)

    def start(self) -> None:
        """Load the gallery, connect, start the source, door and publisher."""
        self.nonces.open()
        self.load_gallery()
        self.door.start()
        self.publisher.start()
        self.link.subscribe(self.topic(GateChannel.GALLERY), self._on_gallery)
        self.link.subscribe(self.topic(GateChannel.COMMAND), self._on_command)
        if self.config.credentials.card_mqtt:
            self.link.subscribe(self.topic(GateChannel.CARD), self._on_card)
        contact = self.config.door.contact
        if contact.kind == "mqtt" and contact.topic:
            self.link.subscribe(contact.topic, self._on_contact)
        self.link.start()
        if self.contact_input is not None:
            self.contact_input.start()
        self.source.start()

    def stop(self) -> None:
        """Stop everything; the door is relocked and unsent events stay in the outbox."""
        self._stop.set()
        self.source.stop()
        if self.contact_input is not None:
            self.contact_input.stop()
        self.door.stop()
        self.publisher.flush(timeout=2.0)
        self.publisher.stop()
        self.link.stop()
        self.publisher.outbox.close()
        self.nonces.close()

    def run(self) -> None:
        """Frame loop until stop() or a signal sets the stop flag."""
        while not self._stop.is_set():
            frame = self.source.latest(timeout=0.2)
            if frame is not None:
                try:
                    self.process_frame(frame)
                except ValueError as exc:
                    log.warning("frame %s skipped: %s", frame.seq, exc)
            self.housekeeping()

    def request_stop(self) -> None:
        """Ask the frame loop to end (signal-safe)."""
        self._stop.set()

    # ----------------------------------------------------------------- gallery

    def load_gallery(self) -> None:
        """Load the stored gallery; on failure the face path stops (card/PIN still work)."""
        try:
            gallery = self.gallery_store.load()
        except GalleryError as exc:
            log.error("face recognition disabled, door stays locked for faces: %s", exc)
            with self._lock:
                self._state.face_error = str(exc)
                self._state.index = None
                self._state.gallery = self._access_list_fallback()
            return
        if gallery.version > 0:
            self._save_access_list(gallery)
        self._use_gallery(gallery)

    @property
    def access_list_path(self) -> Path:
        """Where the template-free access list copy lives (next to the gallery)."""
        return self.gallery_store.path.with_name(self.gallery_store.path.name + ".access.json")

    def _access_list_fallback(self) -> Gallery:
        """The last access list (no templates) so card/PIN keep working without the gallery."""
        path = self.access_list_path
        try:
            people_only = gallery_from_json(path.read_bytes())
        except FileNotFoundError:
            log.error("no access list at %s: card and PIN are denied too", path)
            return Gallery.empty()
        except (OSError, ValueError) as exc:
            log.error("access list %s unusable, card and PIN are denied too: %s", path, exc)
            return Gallery.empty()
        log.warning("card and PIN use the access list of gallery version %s", people_only.version)
        return people_only

    def _use_gallery(self, gallery: Gallery) -> None:
        index = None
        if len(gallery.template_owners):
            index = TemplateIndex.build(gallery.template_owners, gallery.encodings)
        with self._lock:
            self._state.gallery = gallery
            self._state.index = index
            self._state.face_error = None
            self.tracker.reset()
        log.info(
            "gallery version %s in use: %s people, %s templates",
            gallery.version,
            len(gallery.people),
            len(gallery.template_owners),
        )

    def install_gallery(self, blob: bytes, *, force: bool = False) -> Gallery:
        """Install a new encrypted gallery atomically; the old one stays if this one is bad."""
        gallery = self.gallery_store.install(blob, force=force)
        self._save_access_list(gallery)
        self._use_gallery(gallery)
        return gallery

    def _save_access_list(self, gallery: Gallery) -> None:
        """Keep a template-free copy of the people so card/PIN survive a bad gallery or key.

        It holds no biometric data (PIN hashes and card ids only); mode 0600. See
        docs/decisions/0003-gallery-and-access-list.md.
        """
        access_only = Gallery(
            version=gallery.version,
            people=gallery.people,
            template_owners=(),
            encodings=np.zeros((0, 128), dtype=np.float32),
        )
        path = self.access_list_path
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(gallery_to_json(access_only))
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)

    @property
    def gallery_version(self) -> int:
        with self._lock:
            return self._state.gallery.version

    @property
    def face_error(self) -> str | None:
        with self._lock:
            return self._state.face_error

    # ----------------------------------------------------------------- face path

    def process_frame(self, frame: Frame) -> FrameStats:
        """Run one frame through the face pipeline; returns timings and decisions made."""
        stats = FrameStats()
        self._frames_since_beat += 1
        self._last_frame_at = frame.captured_at
        with self._lock:
            index = self._state.index
            face_error = self._state.face_error
        if face_error is not None:
            return stats
        t0 = time.perf_counter()
        detection = self.engine.detect(frame.image)
        stats.detect_ms = (time.perf_counter() - t0) * 1000
        stats.faces = len(detection.boxes)
        now = self.clock()
        tracks = self.tracker.update(detection.boxes, now)
        self._forget_gone_tracks()
        for track in tracks:
            self._reverify_if_due(track, now)
            if not self.tracker.needs_encoding(track, now):
                continue
            t1 = time.perf_counter()
            encodings = self.engine.encode(detection.rgb, [track.box])
            t2 = time.perf_counter()
            stats.encode_ms += (t2 - t1) * 1000
            if not encodings:
                continue
            if index is None:
                result_reason, vote = "empty_gallery", Vote(now, None, 1.0, 0.0)
            else:
                result = index.match(
                    encodings[0],
                    tolerance=self.config.matching.tolerance,
                    min_margin=self.config.matching.min_margin,
                )
                result_reason, vote = result.reason, Vote.from_match(result, now)
            stats.match_ms += (time.perf_counter() - t2) * 1000
            self.tracker.mark_encoded(track, now, vote)
            self._last_reason[track.track_id] = result_reason
            verdict = confirm(track.votes, now, self.rule)
            exhausted = track.encodes >= self.config.detection.max_encodes_per_track
            if verdict.state == "pending" and not exhausted:
                continue
            decision = self._decide_face(track, verdict)
            track.decided = True
            previous = self._decided.get(track.track_id)
            self._decided[track.track_id] = _TrackDecision(
                now, decision.person_id, decision.granted, now
            )
            if (
                previous is not None
                and previous.same_outcome(decision)
                and now - previous.reported_at < self.config.confirmation.cooldown_s
            ):
                self._decided[track.track_id] = _TrackDecision(
                    now, decision.person_id, decision.granted, previous.reported_at
                )
                continue
            stats.decisions.append(decision)
            self._emit_face_decision(decision, verdict, track, stats, frame, now)
        return stats

    def _reverify_if_due(self, track: Track, now: float) -> None:
        """Let a decided track be checked again, so a new person in the same spot is seen."""
        decided = self._decided.get(track.track_id)
        if not track.decided or decided is None:
            return
        if now - decided.decided_at >= self.config.confirmation.reverify_s:
            track.decided = False
            track.encodes = 0
            track.votes.clear()
            track.last_encode_at = None

    def _forget_gone_tracks(self) -> None:
        alive = {t.track_id for t in self.tracker.tracks}
        for track_id in [k for k in self._decided if k not in alive]:
            del self._decided[track_id]
        for track_id in [k for k in self._last_reason if k not in alive]:
            del self._last_reason[track_id]

    def _decide_face(self, track: Track, verdict: Verdict) -> AccessDecision:
        if verdict.state == "confirmed" and verdict.person_id is not None:
            with self._lock:
                person = self._state.gallery.people.get(verdict.person_id)
                passage = self._state.last_passage.get(verdict.person_id)
            if person is None:
                return deny(Reason.UNKNOWN_FACE)
            return decide_access(person, self.gate, self.policy, self.wall(), last_passage=passage)
        last = self._last_reason.get(track.track_id)
        reason = Reason.AMBIGUOUS_MATCH if last == "ambiguous" else Reason.UNKNOWN_FACE
        return deny(reason)

    def _emit_face_decision(
        self,
        decision: AccessDecision,
        verdict: Verdict,
        track: Track,
        stats: FrameStats,
        frame: Frame,
        now: float,
    ) -> None:
        t_decide = time.perf_counter()
        if decision.granted:
            self._open_door(decision)
        first_seen_ms = max(0.0, (self.clock() - track.first_seen) * 1000)
        latency = LatencyBreakdown(
            detect_ms=round(stats.detect_ms, 2),
            encode_ms=round(stats.encode_ms, 2),
            match_ms=round(stats.match_ms, 3),
            decide_ms=round((time.perf_counter() - t_decide) * 1000, 3),
            first_seen_to_decision_ms=round(first_seen_ms, 1),
        )
        event = self._access_event(
            decision,
            Method.FACE,
            distance=verdict.distance,
            margin=verdict.margin,
            faces=stats.faces,
            frames=verdict.votes_used or track.encodes,
            latency=latency,
        )
        if not decision.granted and self.snapshots.enabled:
            self._snapshot(frame, event.event_id)

    # ----------------------------------------------------------------- decisions

    def _unlock_for(self, duration_s: float) -> None:
        """Unlock the door and tell the contact monitor the opening is authorised."""
        self.door.open(duration_s)
        now = self.clock()
        self.monitor.unlocked(now, now + duration_s)

    def _open_door(self, decision: AccessDecision) -> None:
        self._unlock_for(self.config.door.open_time_s)
        self.doors_opened += 1
        self.last_door_open_at = self.clock()
        if decision.person_id is not None:
            with self._lock:
                self._state.last_passage[decision.person_id] = Passage(
                    self.gate.gate_id, self.gate.building, self.gate.direction, self.wall()
                )

    def _access_event(
        self,
        decision: AccessDecision,
        method: Method,
        *,
        distance: float | None = None,
        margin: float | None = None,
        faces: int = 0,
        frames: int = 0,
        latency: LatencyBreakdown | None = None,
    ) -> AccessEvent:
        event = AccessEvent(
            producer=self.config.producer_id,
            site=self.gate.site,
            building=self.gate.building,
            gate_id=self.gate.gate_id,
            direction=self.gate.direction.value,
            decision="granted" if decision.granted else "denied",
            method=method.value,
            person_id=decision.person_id,
            reason=decision.reason.value,
            flags=sorted(f.value for f in decision.flags),
            distance=None if distance is None else round(max(0.0, distance), 4),
            margin=None if margin is None else round(max(0.0, min(margin, 10.0)), 4),
            faces_in_view=faces,
            frames_used=frames,
            latency=latency or LatencyBreakdown(),
        )
        self.publisher.send(self.topic(GateChannel.EVENT), _numbered(event))
        log.info(
            "access %s gate=%s method=%s person=%s reason=%s event_id=%s",
            event.decision,
            self.gate.gate_id,
            method.value,
            decision.person_id,
            decision.reason.value,
            event.event_id,
        )
        return event

    def handle_card(self, uid: str) -> AccessDecision:
        """A card read: look up the holder and apply the same policy as faces."""
        with self._lock:
            person = find_by_card(self._state.gallery.people, uid)
            passage = None if person is None else self._state.last_passage.get(person.person_id)
        if person is None:
            decision = deny(Reason.UNKNOWN_CARD)
        else:
            decision = decide_access(
                person, self.gate, self.policy, self.wall(), last_passage=passage
            )
        if decision.granted:
            self._open_door(decision)
        self._access_event(decision, Method.CARD)
        return decision

    def handle_pin(self, entry: str) -> AccessDecision:
        """A keypad entry '<person_id>#<pin>': verify the PIN, then the same policy."""
        try:
            person_id, pin = parse_pin_entry(entry)
        except ValueError:
            decision = deny(Reason.WRONG_PIN)
            self._access_event(decision, Method.PIN)
            return decision
        with self._lock:
            person: Person | None = self._state.gallery.people.get(person_id)
            passage = self._state.last_passage.get(person_id)
        if person is None or not verify_pin(pin, person.pin_hash):
            decision = deny(Reason.WRONG_PIN, person_id if person is not None else None)
        else:
            decision = decide_access(
                person, self.gate, self.policy, self.wall(), last_passage=passage
            )
        if decision.granted:
            self._open_door(decision)
        self._access_event(decision, Method.PIN)
        return decision

    # ----------------------------------------------------------------- door contact

    def contact_changed(self, is_open: bool) -> None:
        """Door contact input (MQTT or GPIO)."""
        self._door_events(self.monitor.contact(is_open, self.clock()))

    def _door_events(self, events: list[DoorEventOut]) -> None:
        for out in events:
            event = DoorEvent(
                producer=self.config.producer_id,
                site=self.gate.site,
                building=self.gate.building,
                gate_id=self.gate.gate_id,
                kind=out.kind,
                open_for_s=None if out.open_for_s is None else round(out.open_for_s, 2),
            )
            level = logging.WARNING if out.kind in ("held_open", "forced_open") else logging.INFO
            log.log(level, "door %s at gate %s", out.kind, self.gate.gate_id)
            self.publisher.send(self.topic(GateChannel.DOOR), _numbered(event))

    # ----------------------------------------------------------------- MQTT handlers

    def _reject(self, what: str, exc: Exception) -> None:
        """Count and log an invalid input; the daemon carries on."""
        self.rejected_messages += 1
        log.warning("%s rejected: %s", what, exc)

    def _on_card(self, msg: ReceivedMessage) -> None:
        try:
            swipe = parse_payload(CardSwipe, msg.payload, where=f"topic {msg.topic!r}")
        except PayloadError as exc:
            self._reject("card message", exc)
            return
        if swipe.card_uid:
            try:
                self.handle_card(normalize_card_uid(swipe.card_uid))
            except ValueError as exc:
                self._reject(f"card read on {msg.topic!r}", exc)
        elif swipe.pin_entry:
            self.handle_pin(swipe.pin_entry)

    def _on_contact(self, msg: ReceivedMessage) -> None:
        try:
            is_open = parse_contact_payload(msg.payload)
        except ValueError as exc:
            self._reject(f"contact message on {msg.topic!r}", exc)
            return
        self.contact_changed(is_open)

    def _on_gallery(self, msg: ReceivedMessage) -> None:
        try:
            update = parse_payload(GalleryUpdate, msg.payload, where=f"topic {msg.topic!r}")
        except PayloadError as exc:
            self._reject("gallery update", exc)
            return
        current, face_error = self.gallery_version, self.face_error
        if face_error is None and update.version == current:
            # The retained update is delivered again on every reconnect: already in use.
            self._ack_gallery(update, applied=True, error=None)
            return
        if face_error is None and update.version < current:
            self._ack_gallery(
                update,
                applied=False,
                error=f"version {update.version} is older than version {current} in use",
            )
            return
        # Only now is the update about to change who may enter, so only now does its signature
        # matter: the retained copy of the version in use may predate a key rotation.
        try:
            self.verifier.verify(msg.topic, msg.payload)
        except SignatureError as exc:
            self._refuse_attack("gallery", exc.problem, str(exc), None)
            self._ack_gallery(update, applied=False, error=f"refused: {exc}")
            return
        try:
            blob = base64.b64decode(update.blob_b64, validate=True)
        except ValueError:
            self._reject("gallery update", ValueError("blob_b64 is not valid base64"))
            self._ack_gallery(update, applied=False, error="blob_b64 is not valid base64")
            return
        before = self._template_owners()
        try:
            # With a broken current gallery any valid version repairs it (force).
            gallery = self.install_gallery(blob, force=face_error is not None)
        except (ValueError, GalleryError) as exc:
            log.error(
                "gallery update %s rejected, keeping version %s: %s",
                update.version,
                current,
                exc,
            )
            self._ack_gallery(update, applied=False, error=str(exc))
            return
        if gallery.version != update.version:
            log.warning(
                "gallery update announced version %s but holds %s", update.version, gallery.version
            )
        # Whose face templates this version removed: the gateway confirms erasures with it.
        erased = sorted(before - set(gallery.template_owners))
        self._ack_gallery(update, applied=True, error=None, erased=erased)

    def _template_owners(self) -> set[str]:
        try:
            return set(self.gallery_store.load().template_owners)
        except (GalleryError, ValueError, OSError):
            return set()

    def _ack_gallery(
        self,
        update: GalleryUpdate,
        *,
        applied: bool,
        error: str | None,
        erased: list[str] | None = None,
    ) -> None:
        ack = GalleryAck(
            producer=self.config.producer_id,
            correlation_id=update.correlation_id,
            version=self.gallery_version,
            applied=applied,
            error=error,
            erased_person_ids=erased or [],
        )
        self.publisher.send(self.topic(GateChannel.GALLERY_ACK), _numbered(ack))

    def _on_command(self, msg: ReceivedMessage) -> None:
        try:
            command = parse_payload(Command, msg.payload, where=f"topic {msg.topic!r}")
        except PayloadError as exc:
            self._reject("command", exc)
            return
        refusal = self._refusal(msg, command)
        if refusal is not None:
            self._answer(command, ok=False, detail=refusal)
            return
        if command.command == "unlock":
            duration = command.duration_s or self.config.door.open_time_s
            self._unlock_for(duration)
            detail = f"unlocked for {duration:.0f}s"
        elif command.command == "hold_open":
            duration = command.duration_s or 3600.0
            self._unlock_for(duration)
            detail = f"held open for {duration:.0f}s"
        elif command.command in ("lock", "release"):
            self.door.lock()
            detail = "locked"
        else:
            detail = "pong"
        log.warning("command %s from gateway (%s): %s", command.command, command.reason, detail)
        self._answer(command, ok=True, detail=detail)

    def _refusal(self, msg: ReceivedMessage, command: Command) -> str | None:
        """Why a command must not be carried out (forged, replayed, stale), or None."""
        try:
            verified: Verified = self.verifier.verify(msg.topic, msg.payload)
        except SignatureError as exc:
            self._refuse_attack("command", exc.problem, str(exc), command.command)
            return f"refused: {exc}"
        verdict, age_s = freshness(command.ts, self.wall(), self.freshness)
        if verdict == "stale":
            # A stale unlock must never open a door long after it was meant (e.g. queued during
            # an outage); not an attack by itself, and the gateway re-sends if the need persists.
            log.warning("command %s refused: %.0f s old", command.command, age_s)
            return f"stale command ({age_s:.0f}s old), ignored"
        if verdict == "future_dated":
            detail = f"dated {-age_s:.0f} s ahead of the gate's clock"
            self._refuse_attack("command", "future_dated", detail, command.command)
            return f"refused: {detail}"
        expires = command.ts.timestamp() + self.freshness.remember_s
        if not self.nonces.claim(verified.nonce, expires, self.wall().timestamp()):
            detail = "nonce already used: a replayed command"
            self._refuse_attack("command", "replayed", detail, command.command)
            return f"refused: {detail}"
        return None

    def _refuse_attack(
        self,
        target: Literal["command", "gallery"],
        kind: Literal["unsigned", "unknown_key", "bad_signature", "replayed", "future_dated"],
        detail: str,
        command: str | None,
    ) -> None:
        """Log a forged or replayed message and report it to the gateway (an alert there)."""
        log.warning(
            "SECURITY: %s refused at gate %s as %s: %s", target, self.gate.gate_id, kind, detail
        )
        event = SecurityEvent(
            producer=self.config.producer_id,
            site=self.gate.site,
            building=self.gate.building,
            gate_id=self.gate.gate_id,
            kind=kind,
            target=target,
            detail=detail[:500],
            command=command,
        )
        self.publisher.send(self.topic(GateChannel.SECURITY), _numbered(event))

    def _answer(self, command: Command, *, ok: bool, detail: str) -> None:
        result = CommandResult(
            producer=self.config.producer_id,
            correlation_id=command.correlation_id,
            ok=ok,
            detail=detail,
        )
        self.publisher.send(self.topic(GateChannel.COMMAND_RESULT), _numbered(result))

    # ----------------------------------------------------------------- health

    def housekeeping(self) -> None:
        """Door timers, heartbeat, snapshot retention."""
        now = self.clock()
        self._door_events(self.monitor.tick(now))
        if now - self._last_beat >= self.config.heartbeat_s:
            self.publish_heartbeat(now)
        if self.snapshots.enabled and now - self._last_purge >= 3600:
            self._last_purge = now
            removed = self.snapshots.purge(self.wall())
            if removed:
                log.info("snapshot retention removed %s files", removed)

    def heartbeat(self, now: float) -> Heartbeat:
        """Current health figures."""
        elapsed = max(1e-6, now - self._last_beat)
        status = self.source.status()
        alarms = []
        if self.publisher.alarm:
            alarms.append(self.publisher.alarm)
        face_error = self.face_error
        with self._lock:
            nobody_known = not self._state.gallery.people
        if nobody_known:
            alarms.append("no access list: every face, card and PIN request is denied")
        return Heartbeat(
            producer=self.config.producer_id,
            fps=round(self._frames_since_beat / elapsed, 2),
            last_frame_age_s=None
            if self._last_frame_at is None
            else round(max(0.0, now - self._last_frame_at), 3),
            source_healthy=status.healthy,
            source_detail=status.detail,
            outbox_depth=self.publisher.depth(),
            gallery_version=self.gallery_version,
            face_path="disabled" if face_error else "ok",
            face_path_detail=face_error or "",
            uptime_s=round(now - self._started_at, 1),
            alarms=alarms,
            rejected_messages=self.rejected_messages,
        )

    def publish_heartbeat(self, now: float) -> None:
        """Send the heartbeat (QoS 0: a lost one is replaced by the next)."""
        beat = self.heartbeat(now)
        self._frames_since_beat = 0
        self._last_beat = now
        if self.link.connected:
            try:
                self.link.publish(self.topic(GateChannel.HEARTBEAT), beat.to_bytes(), qos=0)
            except ConnectionError as exc:
                log.warning("heartbeat not sent: %s", exc)

    def _snapshot(self, frame: Frame, event_id: str) -> None:
        ok, jpeg = cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        if ok:
            self.snapshots.save(jpeg.tobytes(), event_id, self.wall())


def _numbered(
    event: AccessEvent | DoorEvent | SecurityEvent | GalleryAck | CommandResult,
) -> Callable[[int | None], bytes]:
    """The message's bytes with its outbox sequence filled in when it is stored.

    Every outbox message carries the number, so the gateway sees one gap-free sequence.
    """
    return lambda seq: event.model_copy(update={"seq": seq}).to_bytes()


def retention_seconds(days: float) -> float:
    """Snapshot retention in seconds."""
    return timedelta(days=days).total_seconds()
