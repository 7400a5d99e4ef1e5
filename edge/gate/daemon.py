"""The gate daemon: camera -> detect -> track -> encode -> match -> vote -> decide -> door -> event.

`GateDaemon` wires the gate's parts together and runs the frame loop (main thread); MQTT handlers
run on the network thread. Gallery updates are `GallerySync`'s job, gateway commands
`CommandHandler`'s, outgoing messages `GateReporter`'s; the decisions themselves are the pure
functions of voting.py and policy.py. `build_gate` (app.py) is the composition root that wires
real adapters from a `GateConfig`.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import cv2
import numpy as np

from contracts.access import Direction, GateInfo, Method, Person, Reason
from contracts.credentials import normalize_card_uid, parse_pin_entry, verify_pin
from contracts.models import CardSwipe, LatencyBreakdown, utc_now
from contracts.signing import MessageVerifier
from contracts.topics import GateChannel
from edge.gate.commands import CommandHandler
from edge.gate.config import GateConfig
from edge.gate.credentials import find_by_card
from edge.gate.door import ContactInput, DoorActuator
from edge.gate.door_logic import DoorMonitor, parse_contact_payload
from edge.gate.frames import Frame, FrameSource
from edge.gate.gallery import GalleryStore
from edge.gate.gallery_sync import GallerySync
from edge.gate.health import HealthMeter
from edge.gate.liveness import LandmarkFrame, assess
from edge.gate.model import AccessDecision, Passage
from edge.gate.nir import NirTally, combine
from edge.gate.nir_check import NirCheck, crop_face_px
from edge.gate.policy import decide_access, decide_face, deny
from edge.gate.probes import ProbeStore
from edge.gate.replay import NonceLedger
from edge.gate.reporting import GateReporter
from edge.gate.screen_cue import screen_around
from edge.gate.snapshots import SnapshotStore
from edge.gate.tracking import FaceTracker, Track
from edge.gate.voting import Verdict, Vote, confirm, next_outcome, reverify_due
from edge.mqtt import MqttLink, ReceivedMessage
from edge.publisher import ReliablePublisher
from faces.engine import FaceEngine
from faces.pool import EncoderPool

log = logging.getLogger(__name__)


LANDMARK_FRAMES_KEPT = 30  # per track: ~2 s at the camera's rate, enough for the check


@dataclass(slots=True)
class FrameStats:
    """Per-frame timings in milliseconds (for the event latency breakdown and benchmarks)."""

    detect_ms: float = 0.0
    encode_ms: float = 0.0
    match_ms: float = 0.0
    liveness_ms: float = 0.0
    faces: int = 0
    decisions: list[AccessDecision] = field(default_factory=list)


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
        probes: ProbeStore | None = None,
        encoder: EncoderPool | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utc_now,
        nir_source: FrameSource | None = None,
    ) -> None:
        self.config = config
        self.engine = engine
        self.encoder = encoder  # several new faces of a frame at once; None: engine.encode
        self.source = source
        self.door = door
        self.link = link
        self.publisher = publisher
        self.snapshots = snapshots
        self.probes = probes  # the probes behind face decisions, for wrong-match reports
        self.gallery_key = gallery_key
        self.clock = clock
        self.wall = wall
        self.gate = GateInfo(
            config.site, config.building, config.gate.id, Direction(config.gate.direction)
        )
        self.policy = config.policy.access_policy()
        self.rule = config.confirmation.confirm_rule()
        self.liveness = config.liveness.rule() if config.liveness.mode != "off" else None
        nir = config.liveness.nir if config.liveness.mode == "passive+nir" else None
        if nir is not None and nir_source is None:
            raise ValueError("liveness.mode 'passive+nir' needs the NIR frame source")
        self.nir_source = nir_source if nir is not None else None
        face_px = crop_face_px(config.detection.scale, config.detection.min_face_px)
        self.nir = None if nir is None else NirCheck(engine, nir.rule(), nir.alignment, face_px)
        self.tracker = FaceTracker(
            max_age_s=config.detection.track_max_age_s,
            max_encodes_per_track=config.detection.max_encodes_per_track,
            min_encode_interval_s=config.detection.min_encode_interval_s,
            new_look_after_s=config.detection.new_look_after_s,
        )
        self.monitor = DoorMonitor(held_open_after_s=config.door.contact.held_open_after_s)
        self.reporter = GateReporter(config.producer_id, self.gate, publisher)
        self.gallery_sync = GallerySync(
            gallery_store, verifier, self.reporter, on_change=self._forget_tracks
        )
        self.commands = CommandHandler(
            verifier,
            nonces,
            config.command_auth.freshness_rule(),
            self.reporter,
            unlock=self._unlock_for,
            lock=door.lock,
            open_time_s=config.door.open_time_s,
            take_probe=self._take_probe,
            wall=wall,
        )
        self._lock = threading.Lock()  # guards the last passages (frame and network threads)
        self._last_passage: dict[str, Passage] = {}
        self.health = HealthMeter(
            source=source,
            publisher=publisher,
            gallery_sync=self.gallery_sync,
            reporter=self.reporter,
            started_at=clock(),
            nir_source=self.nir_source,
            nir_stale_after_s=nir.stale_after_s if nir is not None else 2.0,
        )
        self._stop = threading.Event()
        self._last_purge = float("-inf")
        self.doors_opened = 0  # door commands so far, and the monotonic time of the last one
        self.last_door_open_at: float | None = None
        self.contact_input: ContactInput | None = None

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Load the gallery, connect, start the source, door and publisher."""
        self.commands.start()
        if self.probes is not None:
            self.probes.open()
        if self.encoder is not None:
            self.encoder.start()
        self.gallery_sync.load()
        self.door.start()
        self.publisher.start()
        topic = self.reporter.topic
        self.link.subscribe(topic(GateChannel.GALLERY), self.gallery_sync.on_update)
        self.link.subscribe(topic(GateChannel.COMMAND), self.commands.on_command)
        if self.config.credentials.card_mqtt:
            self.link.subscribe(topic(GateChannel.CARD), self._on_card)
        contact = self.config.door.contact
        if contact.kind == "mqtt" and contact.topic:
            self.link.subscribe(contact.topic, self._on_contact)
        self.link.start()
        if self.contact_input is not None:
            self.contact_input.start()
        self.source.start()
        if self.nir_source is not None:
            self.nir_source.start()

    def stop(self) -> None:
        """Stop everything; the door is relocked and unsent events stay in the outbox."""
        self._stop.set()
        self.source.stop()
        if self.nir_source is not None:
            self.nir_source.stop()
        if self.contact_input is not None:
            self.contact_input.stop()
        self.door.stop()
        self.publisher.flush(timeout=2.0)
        self.publisher.stop()
        self.link.stop()
        self.publisher.outbox.close()
        self.commands.stop()
        if self.probes is not None:
            self.probes.close()
        if self.encoder is not None:
            self.encoder.stop()

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

    # ----------------------------------------------------------------- face path

    def process_frame(self, frame: Frame) -> FrameStats:
        """Run one frame through the face pipeline; returns timings and decisions made."""
        stats = FrameStats()
        self.health.frame_seen(frame.captured_at)
        in_use = self.gallery_sync.in_use
        if in_use.face_error is not None:
            return stats
        index = in_use.index
        if self.nir is not None and self.nir_source is not None:
            self.nir.add(self.nir_source.latest(timeout=0.0))  # before detection: nearest in time
        t0 = time.perf_counter()
        detection = self.engine.detect(frame.image)
        stats.detect_ms = (time.perf_counter() - t0) * 1000
        stats.faces = len(detection.boxes)
        now = self.clock()
        tracks = self.tracker.update(detection.boxes, now)
        to_encode: list[Track] = []
        for track in tracks:
            self._reverify_if_due(track, now)
            if self.liveness is not None and not track.decided:
                self._add_landmarks(track, frame.image, detection.rgb, now, stats)
                self._add_nir(track, frame, stats)
            if track.held is not None:  # a grant waiting for the liveness evidence
                held_decision, held_verdict = track.held
                self._settle(track, held_decision, held_verdict, now, stats, frame)
                continue
            if self.tracker.needs_encoding(track, now):
                to_encode.append(track)
        if not to_encode:
            return stats
        # All of this frame's new faces at once: with an encoder pool, two or more of them
        # are encoded side by side in worker processes (faces/pool.py).
        t1 = time.perf_counter()
        boxes = [track.box for track in to_encode]
        if self.encoder is not None:
            encodings = self.encoder.encode(detection.rgb, boxes)
        else:
            encodings = self.engine.encode(detection.rgb, boxes)
        stats.encode_ms += (time.perf_counter() - t1) * 1000
        if len(encodings) != len(to_encode):
            log.warning(
                "frame %s: %s encodings for %s faces, not matched",
                frame.seq,
                len(encodings),
                len(to_encode),
            )
            return stats
        for track, encoding in zip(to_encode, encodings, strict=True):
            t2 = time.perf_counter()
            track.probe = encoding
            if index is None:
                result_reason, vote = "empty_gallery", Vote(now, None, 1.0, 0.0)
            else:
                result = index.match(
                    encoding,
                    tolerance=self.config.matching.tolerance,
                    min_margin=self.config.matching.min_margin,
                    impostor_radius=self.config.matching.impostor_radius,
                    impostor_margin=self.config.matching.impostor_margin,
                )
                result_reason, vote = result.reason, Vote.from_match(result, now)
            stats.match_ms += (time.perf_counter() - t2) * 1000
            self.tracker.mark_encoded(track, now, vote)
            track.last_match = result_reason
            verdict = confirm(track.votes, now, self.rule)
            exhausted = track.encodes >= self.config.detection.max_encodes_per_track
            if verdict.state == "pending" and not exhausted:
                continue
            self._settle(track, self._decide_face(track, verdict), verdict, now, stats, frame)
        return stats

    def _add_landmarks(
        self, track: Track, image: np.ndarray, rgb: np.ndarray, now: float, stats: FrameStats
    ) -> None:
        """Keep this frame's landmarks of an undecided track, and whether a screen frames it
        (the liveness evidence)."""
        t0 = time.perf_counter()
        if self.liveness is not None and self.liveness.screen_frames:
            track.screens += screen_around(image, track.box)
        found = self.engine.landmarks(rgb, [track.box])
        stats.liveness_ms += (time.perf_counter() - t0) * 1000
        if found:
            track.landmarks.append(LandmarkFrame(now, found[0]))
            del track.landmarks[:-LANDMARK_FRAMES_KEPT]

    def _add_nir(self, track: Track, frame: Frame, stats: FrameStats) -> None:
        """Count whether the NIR frame taken with this one shows skin in the track's box."""
        if self.nir is None:
            return
        t0 = time.perf_counter()
        track.nir = track.nir.add(self.nir.skin(frame, track.box))
        stats.liveness_ms += (time.perf_counter() - t0) * 1000

    def _settle(
        self,
        track: Track,
        decision: AccessDecision,
        verdict: Verdict,
        now: float,
        stats: FrameStats,
        frame: Frame,
    ) -> None:
        """Report a face decision; a grant first passes the liveness check (when it is on):
        held while the evidence may still come, refused as a presentation attack without it."""
        if decision.granted and self.liveness is not None:
            t0 = time.perf_counter()
            # The wait runs from the first frame of this look at the face (a re-verified
            # track starts again: it may be someone else stepping into the same spot).
            since = track.landmarks[0].at if track.landmarks else now
            live = assess(track.landmarks, since, now, self.liveness, track.screens)
            state: str = live.state
            if self.nir is not None:  # passive+nir: skin under NIR too
                waited_out = now - since >= self.liveness.max_wait_s
                state = combine(live.state, track.nir, self.nir.rule, waited_out)
            stats.liveness_ms += (time.perf_counter() - t0) * 1000
            if state == "pending":
                track.held = (decision, verdict)
                return
            if state == "attack":
                decision = deny(Reason.PRESENTATION_ATTACK, decision.person_id)
            elif state == "unavailable":  # no NIR frames to judge: the camera, not the person
                log.warning("face refused: %s", self.health.nir_problem() or "NIR frames missing")
                decision = deny(Reason.FACE_PATH_DISABLED, decision.person_id)
        track.held = None
        track.landmarks.clear()
        track.screens = 0
        track.nir = NirTally()
        track.decided = True
        track.outcome, report = next_outcome(
            track.outcome, decision, now, self.config.confirmation.cooldown_s
        )
        if not report:
            return
        stats.decisions.append(decision)
        self._emit_face_decision(decision, verdict, track, stats, frame)

    def _reverify_if_due(self, track: Track, now: float) -> None:
        """Let a decided track be checked again, so a new person in the same spot is seen."""
        if not track.decided or track.outcome is None:
            return
        if reverify_due(track.outcome, now, self.config.confirmation.reverify_s):
            track.decided = False
            track.encodes = 0
            track.votes.clear()
            track.last_encode_at = None
            track.landmarks.clear()
            track.screens = 0
            track.nir = NirTally()

    def _forget_tracks(self) -> None:
        """A new gallery is in use: faces seen so far are matched again against it."""
        self.tracker.reset()

    def _decide_face(self, track: Track, verdict: Verdict) -> AccessDecision:
        person = passage = None
        if verdict.person_id is not None:
            person = self._people().get(verdict.person_id)
            passage = self._passage(verdict.person_id)
        return decide_face(
            verdict,
            person,
            self.gate,
            self.policy,
            self.wall(),
            last_passage=passage,
            last_match=track.last_match,
        )

    def _emit_face_decision(
        self,
        decision: AccessDecision,
        verdict: Verdict,
        track: Track,
        stats: FrameStats,
        frame: Frame,
    ) -> None:
        t_decide = time.perf_counter()
        if decision.granted:
            self._open_door(decision)
        first_seen_ms = max(0.0, (self.clock() - track.first_seen) * 1000)
        latency = LatencyBreakdown(
            detect_ms=round(stats.detect_ms, 2),
            encode_ms=round(stats.encode_ms, 2),
            match_ms=round(stats.match_ms, 3),
            liveness_ms=round(stats.liveness_ms, 3),
            decide_ms=round((time.perf_counter() - t_decide) * 1000, 3),
            first_seen_to_decision_ms=round(first_seen_ms, 1),
        )
        event = self.reporter.access(
            decision,
            Method.FACE,
            distance=verdict.distance,
            margin=verdict.margin,
            faces=stats.faces,
            frames=verdict.votes_used or track.encodes,
            latency=latency,
        )
        if self.probes is not None and track.probe is not None:
            self._keep_probe(event.event_id, track.probe)
        if not decision.granted and self.snapshots.enabled:
            self._snapshot(frame, event.event_id)

    def _keep_probe(self, event_id: str, probe: np.ndarray) -> None:
        """Keep the probe behind a face decision, sealed, for a wrong-match report."""
        assert self.probes is not None
        try:
            self.probes.keep(event_id, probe, self.wall().timestamp())
        except (OSError, ValueError, RuntimeError, sqlite3.Error) as exc:  # never stops the gate
            log.warning("probe of event %s not kept: %s", event_id, exc)

    def _take_probe(self, event_id: str) -> bytes | None:
        """The sealed probe of an event for the gateway (once), or None."""
        if self.probes is None:
            return None
        try:
            return self.probes.take(event_id, self.wall().timestamp())
        except (OSError, sqlite3.Error) as exc:  # answered as "not kept", never a crash
            log.warning("probe of event %s not readable: %s", event_id, exc)
            return None

    # ----------------------------------------------------------------- card and PIN

    def handle_card(self, uid: str) -> AccessDecision:
        """A card read: look up the holder and apply the same policy as faces."""
        person = find_by_card(self._people(), uid)
        return self._decide_credential(Method.CARD, person, deny(Reason.UNKNOWN_CARD))

    def handle_pin(self, entry: str) -> AccessDecision:
        """A keypad entry '<person_id>#<pin>': verify the PIN, then the same policy."""
        try:
            person_id, pin = parse_pin_entry(entry)
        except ValueError:
            return self._decide_credential(Method.PIN, None, deny(Reason.WRONG_PIN))
        person = self._people().get(person_id)
        if person is not None and not verify_pin(pin, person.pin_hash):
            return self._decide_credential(Method.PIN, None, deny(Reason.WRONG_PIN, person_id))
        return self._decide_credential(Method.PIN, person, deny(Reason.WRONG_PIN))

    def _decide_credential(
        self, method: Method, holder: Person | None, denial: AccessDecision
    ) -> AccessDecision:
        """The policy for the holder of a card or PIN (`denial` when there is none); reported."""
        if holder is None:
            decision = denial
        else:
            passage = self._passage(holder.person_id)
            decision = decide_access(
                holder, self.gate, self.policy, self.wall(), last_passage=passage
            )
        if decision.granted:
            self._open_door(decision)
        self.reporter.access(decision, method)
        return decision

    def _on_card(self, msg: ReceivedMessage) -> None:
        swipe = self.reporter.parse(CardSwipe, msg, "card message")
        if swipe is None:
            return
        if swipe.card_uid:
            try:
                self.handle_card(normalize_card_uid(swipe.card_uid))
            except ValueError as exc:
                self.reporter.reject(f"card read on {msg.topic!r}", exc)
        elif swipe.pin_entry:
            self.handle_pin(swipe.pin_entry)

    # ----------------------------------------------------------------- decisions and door

    def _people(self) -> Mapping[str, Person]:
        return self.gallery_sync.in_use.gallery.people

    def _passage(self, person_id: str) -> Passage | None:
        with self._lock:
            return self._last_passage.get(person_id)

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
                self._last_passage[decision.person_id] = Passage(
                    self.gate.gate_id, self.gate.building, self.gate.direction, self.wall()
                )

    def contact_changed(self, is_open: bool) -> None:
        """Door contact input (MQTT or GPIO)."""
        self.reporter.door(self.monitor.contact(is_open, self.clock()))

    def _on_contact(self, msg: ReceivedMessage) -> None:
        try:
            is_open = parse_contact_payload(msg.payload)
        except ValueError as exc:
            self.reporter.reject(f"contact message on {msg.topic!r}", exc)
            return
        self.contact_changed(is_open)

    # ----------------------------------------------------------------- health

    def housekeeping(self) -> None:
        """Door timers, heartbeat, snapshot retention."""
        now = self.clock()
        self.reporter.door(self.monitor.tick(now))
        if now - self.health.last_beat >= self.config.heartbeat_s:
            self.publish_heartbeat(now)
        if self.snapshots.enabled and now - self._last_purge >= 3600:
            self._last_purge = now
            removed = self.snapshots.purge(self.wall())
            if removed:
                log.info("snapshot retention removed %s files", removed)

    def publish_heartbeat(self, now: float) -> None:
        """Send the heartbeat (QoS 0: a lost one is replaced by the next)."""
        beat = self.health.beat(now)
        if self.link.connected:
            try:
                topic = self.reporter.topic(GateChannel.HEARTBEAT)
                self.link.publish(topic, beat.to_bytes(), qos=0)
            except ConnectionError as exc:
                log.warning("heartbeat not sent: %s", exc)

    def _snapshot(self, frame: Frame, event_id: str) -> None:
        ok, jpeg = cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        if ok:
            self.snapshots.save(jpeg.tobytes(), event_id, self.wall())
