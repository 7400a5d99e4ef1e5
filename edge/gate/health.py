"""The gate's heartbeat: frame rate, camera and outbox health, the gallery in use, alarms."""

from __future__ import annotations

from contracts.models import Heartbeat
from edge.gate.frames import FrameSource
from edge.gate.gallery_sync import GallerySync
from edge.gate.reporting import GateReporter
from edge.publisher import ReliablePublisher


class HealthMeter:
    """Counts the frames between heartbeats and builds each heartbeat from the gate's parts."""

    def __init__(
        self,
        *,
        source: FrameSource,
        publisher: ReliablePublisher,
        gallery_sync: GallerySync,
        reporter: GateReporter,
        started_at: float,
        nir_source: FrameSource | None = None,
        nir_stale_after_s: float = 2.0,
    ) -> None:
        self.source = source
        self.nir_source = nir_source  # passive+nir liveness: no grant without it
        self.nir_stale_after_s = nir_stale_after_s
        self.publisher = publisher
        self.gallery_sync = gallery_sync
        self.reporter = reporter
        self.started_at = started_at  # monotonic seconds
        self.last_beat = started_at
        self.frames_since_beat = 0
        self.last_frame_at: float | None = None

    def frame_seen(self, captured_at: float) -> None:
        """Count a frame taken from the source."""
        self.frames_since_beat += 1
        self.last_frame_at = captured_at

    def heartbeat(self, now: float) -> Heartbeat:
        """Current health figures."""
        elapsed = max(1e-6, now - self.last_beat)
        status = self.source.status()
        alarms = []
        if self.publisher.alarm:
            alarms.append(self.publisher.alarm)
        in_use = self.gallery_sync.in_use
        if not in_use.gallery.people:
            alarms.append("no access list: every face, card and PIN request is denied")
        face_problems = [in_use.face_error] if in_use.face_error else []
        source_healthy, source_detail = status.healthy, status.detail
        if self.nir_source is not None:  # the second camera, reported beside the first
            nir_problem = self.nir_problem()
            if nir_problem:
                face_problems.append(nir_problem)
            source_healthy = source_healthy and not nir_problem
            source_detail += "; " + (nir_problem or f"NIR {self.nir_source.status().detail}")
        return Heartbeat(
            producer=self.reporter.producer,
            fps=round(self.frames_since_beat / elapsed, 2),
            last_frame_age_s=None
            if self.last_frame_at is None
            else round(max(0.0, now - self.last_frame_at), 3),
            source_healthy=source_healthy,
            source_detail=source_detail,
            outbox_depth=self.publisher.depth(),
            gallery_version=in_use.gallery.version,
            face_path="disabled" if face_problems else "ok",
            face_path_detail="; ".join(face_problems),
            uptime_s=round(now - self.started_at, 1),
            alarms=alarms,
            rejected_messages=self.reporter.rejected,
        )

    def nir_problem(self) -> str:
        """Why the NIR camera cannot vouch for faces now ("" when it can, or is not used)."""
        if self.nir_source is None:
            return ""
        status = self.nir_source.status()
        age = status.last_frame_age_s
        if status.healthy and age is not None and age <= self.nir_stale_after_s:
            return ""
        why = (
            status.detail
            if not status.healthy
            else ("no frame yet" if age is None else f"no frame for {age:.1f} s")
        )
        return f"NIR camera for liveness down ({why}): faces are refused, cards and PINs work"

    def beat(self, now: float) -> Heartbeat:
        """The heartbeat at `now`; the frame count starts again from here."""
        beat = self.heartbeat(now)
        self.frames_since_beat = 0
        self.last_beat = now
        return beat
