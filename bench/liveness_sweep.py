"""The passive liveness rule swept over the real looks and attacks: what a faster verdict costs.

The genuine looks (real video of four people, tests/face_media.py) and the attacks (24 photo
presentations and 6 phone replays of a real video, tests/attacks.py) of
tests/integration/test_liveness_video.py go through the real face engine once (HOG detection,
68 landmarks, the screen outline); then ``assess`` runs over each look frame by frame for every
rule of the grid (``min_frames`` x ``nonrigid_min`` x ``mouth_min``), as ``GateDaemon._settle``
uses it. Prints each rule's APCER, BPCER and live-verdict p50/p90 (seconds from the face's first
frame), then, last, one JSON line: the default rule's figures and the fastest rule that accepts
no attack.

    PYTHONPATH=. python bench/liveness_sweep.py
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.gate.config import LivenessSection
from edge.gate.liveness import LandmarkFrame, LivenessRule, assess
from edge.gate.screen_cue import screen_around
from faces.engine import DlibFaceEngine
from tests.attacks import ATTACKS, phone_video_replay
from tests.face_media import genuine_clips
from tests.integration.test_liveness_video import ATTACK_SEEDS, CAMERA_FPS, LOOK_S, looks
from tests.photos import sample_photos_dir

Trace = list[tuple[LandmarkFrame, int]]  # landmarks of each frame with a face, screens so far


def trace(engine: DlibFaceEngine, frames: Sequence[tuple[float, np.ndarray]]) -> Trace:
    out: Trace = []
    screens = 0
    for at, frame in frames:
        found = engine.detect(frame)
        if not found.boxes:
            continue
        screens += screen_around(frame, found.boxes[0])
        out.append((LandmarkFrame(at, engine.landmarks(found.rgb, found.boxes[:1])[0]), screens))
    return out


def live_after(look: Trace, rule: LivenessRule) -> float | None:
    """Seconds from the first frame to a live verdict; None when refused."""
    seen: list[LandmarkFrame] = []
    for frame, screens in look:
        seen.append(frame)
        verdict = assess(seen, seen[0].at, frame.at, rule, screens)
        if verdict.state == "live":
            return frame.at - seen[0].at
        if verdict.state == "attack":
            return None
    return None


def figures(rule: LivenessRule, attacks: list[Trace], genuine: list[Trace]) -> dict[str, Any]:
    accepted = sum(live_after(a, rule) is not None for a in attacks)
    times = sorted(t for t in (live_after(g, rule) for g in genuine) if t is not None)
    return {
        "min_frames": rule.min_frames,
        "nonrigid_min": rule.nonrigid_min,
        "mouth_min": rule.mouth_min,
        "apcer": f"{accepted}/{len(attacks)}",
        "bpcer": f"{len(genuine) - len(times)}/{len(genuine)}",
        "accepted": accepted,
        "live_p50_s": round(times[len(times) // 2], 3) if times else None,
        "live_p90_s": round(times[int(len(times) * 0.9)], 3) if times else None,
    }


def main() -> None:
    engine = DlibFaceEngine(scale=1.0, min_face_px=40)  # the clips are small: full resolution
    engine.start()
    photo = sample_photos_dir() / "obama2.jpg"
    n = int(LOOK_S * CAMERA_FPS) + 1
    attacks = [
        trace(engine, [(i / CAMERA_FPS, f) for i, f in enumerate(attack(photo, n, seed))])
        for attack in ATTACKS.values()
        for seed in ATTACK_SEEDS
    ]
    (franck,) = [c for c in genuine_clips() if c.name == "franck.mp4"]
    attacks += [
        trace(engine, [(i / CAMERA_FPS, f) for i, f in enumerate(phone_video_replay(franck, n, s))])
        for s in range(6)
    ]
    genuine = [trace(engine, look) for clip in genuine_clips() for look in looks(clip)]
    print(f"{len(attacks)} attacks, {len(genuine)} genuine looks at {CAMERA_FPS:g} fps")
    default = LivenessSection(mode="passive").rule()
    rows = []
    for min_frames, nonrigid, mouth in itertools.product(
        (3, 4, 5, 6, 8), (0.012, 0.016, 0.02, 0.025), (0.15, 0.2, 0.3)
    ):
        rule = LivenessRule(
            nonrigid_min=nonrigid,
            closed_ratio=default.closed_ratio,
            mouth_min=mouth,
            screen_frames=default.screen_frames,
            max_wait_s=default.max_wait_s,
            min_frames=min_frames,
        )
        row = figures(rule, attacks, genuine)
        rows.append(row)
        print(
            f"min_frames {min_frames} nonrigid {nonrigid} mouth {mouth}: APCER {row['apcer']} "
            f"BPCER {row['bpcer']} live p50 {row['live_p50_s']} s p90 {row['live_p90_s']} s"
        )
    safe = [r for r in rows if r["accepted"] == 0 and r["live_p50_s"] is not None]
    fastest_safe = min(safe, key=lambda r: (r["live_p50_s"], r["bpcer"])) if safe else None
    fastest = min((r for r in rows if r["live_p50_s"] is not None), key=lambda r: r["live_p50_s"])
    print(
        json.dumps(
            {
                "default": figures(default, attacks, genuine),
                "fastest_without_accepted_attacks": fastest_safe,
                "fastest": fastest,
            }
        )
    )


if __name__ == "__main__":
    main()
