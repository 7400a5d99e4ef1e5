"""Rush hour at one gate: a queue of real people arriving 1-3 at a time.

Every distinct real person the registry packages ship (bench/rush_faces.py; the count is
printed: it is below 60) walks up in groups of 1-3, with a few people who are not enrolled
walking along with the groups (tailgaters). The gallery holds the enrolled people plus real
encodings of other real faces up to 20,000 templates. The frames are 640x480: each person's
photo (another real photo or video frame of them where one exists, else a labelled variation
of the enrolment photo) pasted side by side, growing over the first frames as they walk up.

The same queue goes three times through the same frames, with a camera clock at 15 fps
that only ever hands over the newest frame (a frame that takes longer than 1/15 s makes the
camera time jump by its cost, as the gate's grabber does):

  1. the gate pipeline (GateDaemon.process_frame: detect, track, encode, 1:N match, vote,
     decide, door), with the encoder pool;
  2. the same pipeline, encoding one face at a time in process (encoding.workers: 1);
  3. a plain loop: full-frame HOG (face_recognition's defaults), then every face encoded one
     after the other and compared with the whole gallery, a grant below the tolerance.

A group steps through `--pass-s` after its last enrolled member is granted (or after
`--give-up-s`); the next group is then in view. Liveness is off (`liveness.mode: off`): the
faces are still photos. Prints figures, then, last, one JSON line: people_per_min,
door_p50_ms, door_p95_ms, false_grants, wrong_person_grants, ratio (people_per_min of run 1
over run 3) and the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2
import numpy as np

from bench.rush_faces import FaceImage, RushPerson, filler_encodings, rush_people
from contracts.access import Person
from contracts.gallery import Gallery
from contracts.yamlconfig import load_yaml_model
from edge.gate.app import build_gate
from edge.gate.config import GateConfig
from edge.gate.daemon import GateDaemon
from edge.gate.frames import Frame
from faces.box import Box
from faces.engine import DlibFaceEngine
from faces.pool import EncoderPool, resolve_workers
from tests.gatekit import gate_config, save_gallery, start_offline, stop_offline, write_key

FPS = 15.0
FRAME_SIZE = (640, 480)
WALK_FRAMES = 5  # frames over which a group walks up (faces grow to full size)
TOLERANCE = 0.5


@dataclass
class Slot:
    """One person in view: who, the image the camera sees, where their face is in the frame."""

    person: RushPerson
    enrolled: bool
    face: FaceImage
    box: Box = field(default_factory=lambda: Box(0, 0, 0, 0))


def compose(slots: Sequence[Slot], progress: float, seed: int) -> np.ndarray:
    """A camera frame with the slots' faces side by side; `progress` 0..1 of the walk-up."""
    width, height = FRAME_SIZE
    rng = np.random.default_rng(seed)
    frame = np.empty((height, width, 3), np.uint8)
    frame[:] = (96, 100, 104)
    frame += rng.integers(0, 12, frame.shape, dtype=np.uint8)
    slot_w = width // max(1, len(slots))
    face_px = min(165, int(slot_w * 0.72)) * (0.82 + 0.18 * progress)
    for index, slot in enumerate(slots):
        face = slot.face
        b = face.box
        scale = face_px / max(1, b.width)
        margin_x, margin_top = int(b.width * 0.45), int(b.height * 0.6)
        top, left = max(0, b.top - margin_top), max(0, b.left - margin_x)
        bottom = min(face.image.shape[0], b.bottom + int(b.height * 0.9))
        right = min(face.image.shape[1], b.right + margin_x)
        crop = cv2.resize(
            face.image[top:bottom, left:right],
            None,
            fx=scale,
            fy=scale,
            interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
        )
        face_left = int((b.left - left) * scale)
        face_top = int((b.top - top) * scale)
        centre_x = index * slot_w + slot_w // 2
        x0 = centre_x - face_left - int(face_px / 2)
        y0 = int(height * 0.42) - face_top - int(face_px / 2)
        # paste what falls inside the slot and the frame
        sx0, sy0 = max(x0, index * slot_w), max(y0, 0)
        sx1 = min(x0 + crop.shape[1], (index + 1) * slot_w, width)
        sy1 = min(y0 + crop.shape[0], height)
        if sx1 > sx0 and sy1 > sy0:
            frame[sy0:sy1, sx0:sx1] = crop[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0]
        slot.box = Box(
            top=y0 + face_top,
            right=x0 + face_left + int(b.width * scale),
            bottom=y0 + face_top + int(b.height * scale),
            left=x0 + face_left,
        )
    return frame


def make_queue(
    people: list[RushPerson], strangers: int, seed: int
) -> list[list[tuple[RushPerson, bool]]]:
    """Groups of 1-3 (enrolled flag with each); strangers walk along with some groups."""
    rng = np.random.default_rng(seed)
    enrolled = [p for p in people[: len(people) - strangers]]
    others = [p for p in people[len(people) - strangers :]]
    order = [enrolled[i] for i in rng.permutation(len(enrolled))]
    groups: list[list[tuple[RushPerson, bool]]] = []
    while order:
        size = int(rng.integers(1, 4))
        groups.append([(p, True) for p in order[:size]])
        order = order[size:]
    for stranger in others:  # each joins a group that has room
        roomy = [g for g in groups if len(g) < 3] or groups
        group = roomy[int(rng.integers(0, len(roomy)))]
        group.insert(int(rng.integers(0, len(group) + 1)), (stranger, False))
    return groups


def iou(a: Box, b: Box) -> float:
    w = min(a.right, b.right) - max(a.left, b.left)
    h = min(a.bottom, b.bottom) - max(a.top, b.top)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / (a.width * a.height + b.width * b.height - inter)


@dataclass
class RunResult:
    name: str
    camera_s: float = 0.0
    frames: int = 0
    granted: int = 0
    door_ms: list[float] = field(default_factory=list)
    false_grants: int = 0
    wrong_person_grants: int = 0
    repeat_grants: int = 0
    missed: int = 0
    strangers_reported: int = 0  # strangers whose face was decided (denied) and reported
    missed_people: list[str] = field(default_factory=list)
    tailgating_groups: int = 0  # groups a stranger walked along with
    tailgating_seen: int = 0  # ... whose grants reported more faces in view than grants
    frame_ms: list[float] = field(default_factory=list)

    def people_per_min(self) -> float:
        return 60.0 * self.granted / self.camera_s if self.camera_s else 0.0


# A step: process one frame; returns the faces in view and, for each decision reported,
# (person id granted or None, reason, the face's box)
Decided = list[tuple[str | None, str, Box | None]]
Step = Callable[[np.ndarray, float], tuple[int, Decided]]


def run_queue(
    name: str,
    groups: list[list[tuple[RushPerson, bool]]],
    ids: dict[str, str],
    step: Step,
    *,
    pass_s: float,
    give_up_s: float,
) -> RunResult:
    """Send every group through `step` on a camera clock that only hands the newest frame."""
    result = RunResult(name)
    now = 0.0
    for group_no, group in enumerate(groups):
        slots = [Slot(person, enrolled, person.probes[0]) for person, enrolled in group]
        waiting = {ids[s.person.name] for s in slots if s.enrolled}
        arrived = now
        granted_here: set[str] = set()
        most_faces = 0  # faces in view on the frames that opened the door for this group
        frame_no = 0
        while waiting and now - arrived < give_up_s:
            progress = min(1.0, frame_no / (WALK_FRAMES - 1))
            for slot in slots:  # people move: the camera sees their next image now and then
                slot.face = slot.person.probes[(frame_no // 3) % len(slot.person.probes)]
            image = compose(slots, progress, seed=group_no * 1000 + frame_no)
            t0 = time.perf_counter()
            faces, outcomes = step(image, now)
            cost = time.perf_counter() - t0
            result.frame_ms.append(cost * 1000)
            result.frames += 1
            done_at = now + cost
            for person_id, reason, box in outcomes:
                owner = None
                if box is not None:
                    best = max(slots, key=lambda s: iou(s.box, box))
                    owner = best if iou(best.box, box) > 0.3 else None
                if person_id is None:  # a denial
                    if owner is not None and not owner.enrolled and reason == "unknown_face":
                        result.strangers_reported += 1
                    continue
                if owner is None or not owner.enrolled:
                    result.false_grants += 1
                elif ids[owner.person.name] != person_id:
                    result.wrong_person_grants += 1
                elif person_id in granted_here:
                    result.repeat_grants += 1
                else:
                    granted_here.add(person_id)
                    waiting.discard(person_id)
                    result.granted += 1
                    result.door_ms.append((done_at - arrived) * 1000)
                    most_faces = max(most_faces, faces)
            now += max(1.0 / FPS, cost)
            frame_no += 1
        result.missed += len(waiting)
        result.missed_people += sorted(
            s.person.name for s in slots if ids[s.person.name] in waiting
        )
        if any(not s.enrolled for s in slots):
            result.tailgating_groups += 1
            # what the gateway's tailgating rule compares: faces in view > grants in the cycle
            result.tailgating_seen += most_faces > len(granted_here)
        # The group walks through; the camera sees the empty spot until the next one is in
        # view (the gate's tracker is not reset: it must tell the next person from the last).
        gap_end = now + pass_s
        while now < gap_end:
            t0 = time.perf_counter()
            step(compose([], 0.0, seed=group_no * 1000 + 999), now)
            cost = time.perf_counter() - t0
            result.frames += 1
            now += max(1.0 / FPS, cost)
    result.camera_s = now
    return result


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def watch_decisions(daemon: GateDaemon) -> Decided:
    """Note which face each decision the gate reports came from (for the tally)."""
    decided: Decided = []
    emit = daemon._emit_face_decision

    def noting(decision, verdict, track, stats, frame):  # type: ignore[no-untyped-def]
        person = decision.person_id if decision.granted else None
        decided.append((person, str(decision.reason), track.box))
        emit(decision, verdict, track, stats, frame)

    daemon._emit_face_decision = noting  # type: ignore[method-assign]
    return decided


def gate_step(daemon: GateDaemon) -> Step:
    decided = watch_decisions(daemon)

    def step(image: np.ndarray, now: float) -> tuple[int, Decided]:
        decided.clear()
        daemon.clock = lambda: now
        stats = daemon.process_frame(Frame(image, 0, now))
        return stats.faces, list(decided)

    return step


def plain_step(engine: DlibFaceEngine, templates: np.ndarray, owners: list[str]) -> Step:
    """The tutorial loop: full-frame HOG with defaults, each face encoded and compared in turn."""
    import face_recognition

    def step(image: np.ndarray, now: float) -> tuple[int, Decided]:
        rgb = np.ascontiguousarray(image[:, :, ::-1])
        out: Decided = []
        locations = face_recognition.face_locations(rgb)
        for top, right, bottom, left in locations:
            box = Box(top=top, right=right, bottom=bottom, left=left)
            (encoding,) = face_recognition.face_encodings(rgb, [(top, right, bottom, left)])
            distances = np.linalg.norm(templates - encoding, axis=1)
            best = int(distances.argmin())
            if distances[best] <= TOLERANCE and not owners[best].startswith("filler-"):
                out.append((owners[best], "granted", box))
        return len(locations), out

    return step


def encoder_timings(people: list[RushPerson], workers: int, repeats: int) -> dict[str, float]:
    """One frame with 1, 2 and 3 faces: sequential, two threads, the process pool (ms, p50).

    `pool_forced_1` is one face sent through the pool anyway: what the gate saves by
    encoding a lone face in process.
    """
    engine = DlibFaceEngine()
    engine.start()
    slots = [Slot(p, True, p.probes[0]) for p in people[:3]]
    image = compose(slots, 1.0, seed=1)
    rgb = np.ascontiguousarray(image[:, :, ::-1])
    boxes = sorted(engine.detect(image).boxes, key=lambda b: b.left)
    pool = EncoderPool(engine, workers, min_faces=1)
    pool.start()
    threads = ThreadPoolExecutor(2)

    def median_ms(fn: Callable[[], object]) -> float:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1000)
        return round(statistics.median(times), 1)

    def one_each(chosen: list[Box]) -> object:
        return list(threads.map(lambda b: engine.encode(rgb, [b]), chosen))

    out: dict[str, float] = {}
    try:
        engine.encode(rgb, boxes)
        for n in range(1, min(3, len(boxes)) + 1):
            chosen = boxes[:n]
            out[f"sequential_{n}"] = median_ms(partial(engine.encode, rgb, chosen))
            out[f"threads_{n}"] = median_ms(partial(one_each, chosen))
            key = "pool_forced_1" if n == 1 else f"pool_{n}"
            out[key] = median_ms(partial(pool.encode, rgb, chosen))
    finally:
        threads.shutdown()
        pool.stop()
    return out


def build_daemon(tmp: Path, gallery: Gallery, workers: int) -> GateDaemon:
    (tmp / f"w{workers}").mkdir()
    key = write_key(tmp / f"w{workers}" / "gallery.key")
    save_gallery(tmp / f"w{workers}" / "gallery.bin", key, gallery)
    cfg = gate_config(
        tmp / f"w{workers}",
        port=1,  # never connected: events stay in the outbox, the door is simulated
        source={"kind": "folder", "target": str(tmp)},
        key_file=tmp / f"w{workers}" / "gallery.key",
        gallery_path=tmp / f"w{workers}" / "gallery.bin",
        encoding={"workers": workers},
        liveness={"mode": "off"},
    )
    daemon = build_gate(load_yaml_model(cfg, GateConfig))
    return start_offline(daemon)


def close_daemon(daemon: GateDaemon) -> None:
    stop_offline(daemon)


def main(argv: Sequence[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=0, help="queue only the first N (0: all)")
    parser.add_argument("--strangers", type=int, default=6, help="not enrolled, tailgating")
    parser.add_argument("--templates", type=int, default=20_000, help="gallery size (1:N)")
    parser.add_argument("--workers", default="auto", help="encoder pool workers (auto|2..8)")
    parser.add_argument("--pass-s", type=float, default=0.4, help="a group walks through")
    parser.add_argument("--give-up-s", type=float, default=4.0, help="a group waits at most")
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--no-plain", action="store_true", help="skip the plain loop (run 3)")
    parser.add_argument("--timing-repeats", type=int, default=5)
    args = parser.parse_args(argv)

    t_setup = time.perf_counter()
    everyone = rush_people()
    strangers = min(args.strangers, max(0, len(everyone) - 1))
    if args.people:
        everyone = everyone[: args.people] + everyone[len(everyone) - strangers :]
    enrolled = everyone[: len(everyone) - strangers]
    ids = {p.name: f"rush-{i:03d}" for i, p in enumerate(everyone)}
    workers = max(2, resolve_workers(args.workers))
    engine = DlibFaceEngine()
    engine.start()
    enrol = np.stack(
        [engine.encode(p.enrol.image[:, :, ::-1].copy(), [p.enrol.box])[0] for p in enrolled]
    )
    filler_count = max(0, args.templates - len(enrolled))
    filler = filler_encodings(filler_count) if filler_count else np.empty((0, 128), np.float32)
    templates = np.concatenate([enrol, filler]).astype(np.float32)
    owners = [ids[p.name] for p in enrolled] + [f"filler-{i:05d}" for i in range(filler_count)]
    population = {pid: Person(pid, buildings=frozenset({"b1"})) for pid in owners}
    gallery = Gallery(1, population, tuple(owners), templates)
    groups = make_queue(everyone, strangers, args.seed)
    kinds: dict[str, int] = {}
    for p in enrolled:
        kinds[p.probe_kind] = kinds.get(p.probe_kind, 0) + 1
    nearest_filler = (
        np.sqrt(
            np.maximum(
                0.0,
                (enrol**2).sum(1)[:, None] + (filler**2).sum(1)[None, :] - 2.0 * enrol @ filler.T,
            )
        ).min(axis=1)
        if filler_count
        else np.array([np.inf])
    )
    setup_s = time.perf_counter() - t_setup
    print(
        f"people: {len(enrolled)} distinct real people enrolled (not 60: that is all the "
        f"registry media hold), {strangers} more not enrolled walking along; "
        f"{len(groups)} groups of 1-3; probes: "
        + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    )
    print(
        f"gallery: {len(templates)} templates = {len(enrolled)} enrolled + {filler_count} real "
        f"encodings of other real faces (scikit-image's LFW subset under image variations); "
        f"an enrolled template's nearest filler template: min {nearest_filler.min():.2f}, "
        f"p50 {np.median(nearest_filler):.2f}; setup {setup_s:.1f} s"
    )
    print("liveness: off (liveness.mode: off; the faces are still photos)")

    timings = encoder_timings(enrolled, workers, args.timing_repeats)
    print(f"encoding one frame's faces, ms p50: {timings}")

    results: list[RunResult] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for label, w in (
            (f"pipeline, encoder pool of {workers}", workers),
            ("pipeline, one face at a time in process", 1),
        ):
            daemon = build_daemon(tmp, gallery, w)
            try:
                result = run_queue(
                    label,
                    groups,
                    ids,
                    gate_step(daemon),
                    pass_s=args.pass_s,
                    give_up_s=args.give_up_s,
                )
            finally:
                close_daemon(daemon)
            if daemon.encoder is not None:
                print(
                    f"  pool: {daemon.encoder.pooled_frames} frames encoded in the pool, "
                    f"failure: {daemon.encoder.failure}"
                )
            results.append(result)
    if not args.no_plain:
        results.append(
            run_queue(
                "plain loop (full HOG, each face in turn)",
                groups,
                ids,
                plain_step(engine, templates, owners),
                pass_s=args.pass_s,
                give_up_s=args.give_up_s,
            )
        )
    for r in results:
        print(
            f"{r.name}: {r.people_per_min():.1f} people/min ({r.granted} granted, {r.missed} "
            f"missed) in {r.camera_s:.1f} s camera time, {r.frames} frames (p50 "
            f"{pct(r.frame_ms, 0.5):.1f} ms); door p50/p95 {pct(r.door_ms, 0.5)}/"
            f"{pct(r.door_ms, 0.95)} ms; false {r.false_grants}, wrong person "
            f"{r.wrong_person_grants}, repeated {r.repeat_grants}; tailgating visible in "
            f"{r.tailgating_seen}/{r.tailgating_groups} groups with a stranger"
            + (f"; not granted: {', '.join(r.missed_people)}" if r.missed_people else "")
        )
    main_run, sequential = results[0], results[1]
    plain = results[2] if len(results) > 2 else None

    def r1(v: float | None) -> float | None:
        return None if v is None else round(v, 1)

    summary: dict[str, object] = {
        "identities": len(enrolled),
        "strangers": strangers,
        "templates": len(templates),
        "groups": len(groups),
        "liveness": "off",
        "workers": workers,
        "people_per_min": r1(main_run.people_per_min()),
        "door_p50_ms": r1(pct(main_run.door_ms, 0.5)),
        "door_p95_ms": r1(pct(main_run.door_ms, 0.95)),
        "false_grants": main_run.false_grants,
        "wrong_person_grants": main_run.wrong_person_grants,
        "repeat_grants": main_run.repeat_grants,
        "missed": main_run.missed,
        "tailgating_seen": f"{main_run.tailgating_seen}/{main_run.tailgating_groups}",
        "sequential_people_per_min": r1(sequential.people_per_min()),
        "pool_vs_sequential": round(main_run.people_per_min() / sequential.people_per_min(), 2)
        if sequential.people_per_min()
        else None,
        "plain_people_per_min": r1(plain.people_per_min()) if plain else None,
        "plain_false_grants": plain.false_grants if plain else None,
        "plain_wrong_person_grants": plain.wrong_person_grants if plain else None,
        "ratio": round(main_run.people_per_min() / plain.people_per_min(), 2)
        if plain and plain.people_per_min()
        else None,
        "nearest_filler_min": round(float(nearest_filler.min()), 3),
        "encode_ms": timings,
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
