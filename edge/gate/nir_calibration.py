"""Calibrating ``passive+nir`` on a site's own cameras: record pairs, measure the cues.

``dormguard nir record`` saves colour/NIR frame pairs from the gate's two cameras (the pair
nearest in time, within ``liveness.nir.max_dt_s``) into a folder; ``dormguard nir measure``
reads a ``live/`` and an ``attack/`` folder of such pairs and prints each cue's range for the
live faces and for the attacks, the per-frame error rates under the configured thresholds, and
a scale-and-shift alignment fitted to the faces both cameras found. docs/liveness.md has the
procedure. The recorded folders hold face images: delete them after calibrating.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from pathlib import Path

import cv2
import numpy as np

from edge.gate.capture import open_source
from edge.gate.config import GateConfig, NirSection
from edge.gate.frames import SourceSpec
from edge.gate.nir import NirCues, NirRule, as_gray, fit_alignment, shows_skin
from edge.gate.nir_check import NirCheck
from faces.engine import DlibFaceEngine

COLOUR, NIR = "-colour.png", "-nir.png"


def _nir_section(config: GateConfig) -> NirSection:
    nir = config.liveness.nir
    if nir is None:
        raise ValueError("the config has no liveness.nir section (liveness.mode passive+nir)")
    return nir


def record_pairs(config: GateConfig, out: Path, frames: int, timeout_s: float = 60.0) -> int:
    """Save up to ``frames`` colour/NIR pairs taken within max_dt_s of each other; how many."""
    nir = _nir_section(config)
    out.mkdir(parents=True, exist_ok=True)
    colour_source = open_source(SourceSpec(**config.source.model_dump()))
    nir_source = open_source(SourceSpec(**nir.source.model_dump()))
    pairing = NirCheck(DlibFaceEngine(), nir.rule(), nir.alignment)
    colour_source.start()
    nir_source.start()
    saved = 0
    deadline = time.monotonic() + timeout_s
    try:
        while saved < frames and time.monotonic() < deadline:
            pairing.add(nir_source.latest(timeout=0.0))
            colour = colour_source.latest(timeout=0.2)
            if colour is None:
                continue
            pairing.add(nir_source.latest(timeout=0.0))
            partner = pairing.partner(colour.captured_at)
            if partner is None:
                continue
            stem = out / f"{saved:04d}"
            cv2.imwrite(f"{stem}{COLOUR}", colour.image)
            cv2.imwrite(f"{stem}{NIR}", partner.image)
            saved += 1
    finally:
        colour_source.stop()
        nir_source.stop()
    return saved


@dataclass(frozen=True)
class Measured:
    """The cues of a folder's pairs, and the boxes of the faces both cameras found."""

    cues: list[NirCues]
    skipped: int  # pairs without a face in the colour frame, or mapped outside the NIR frame
    colour_points: list[np.ndarray]  # landmarks of faces both cameras found, pair by pair
    nir_points: list[np.ndarray]


def measure_folder(check: NirCheck, folder: Path) -> Measured:
    """The NIR cues of every ``NNNN-colour.png``/``NNNN-nir.png`` pair in ``folder``."""
    colours = sorted(folder.glob(f"*{COLOUR}"))
    if not colours:
        raise ValueError(f"{folder}: no *{COLOUR} / *{NIR} pairs")
    cues: list[NirCues] = []
    colour_points: list[np.ndarray] = []
    nir_points: list[np.ndarray] = []
    skipped = 0
    for colour_path in colours:
        nir_path = colour_path.with_name(colour_path.name.replace(COLOUR, NIR))
        colour = cv2.imread(str(colour_path), cv2.IMREAD_COLOR)
        nir = cv2.imread(str(nir_path), cv2.IMREAD_UNCHANGED)
        if colour is None or nir is None:
            raise ValueError(f"{colour_path}: the pair cannot be read (is {nir_path.name} there?)")
        detection = check.engine.detect(colour)
        boxes = detection.boxes
        found = check.cues(colour.shape, nir, boxes[0]) if boxes else None
        if found is None:
            skipped += 1
            continue
        cues.append(found)
        gray = np.clip(as_gray(nir), 0, 255).astype(np.uint8)
        nir_faces = check.engine.detect(np.ascontiguousarray(np.repeat(gray[:, :, None], 3, 2)))
        if len(boxes) == 1 and len(nir_faces.boxes) == 1:
            colour_marks = check.engine.landmarks(detection.rgb, boxes)
            nir_marks = check.engine.landmarks(nir_faces.rgb, nir_faces.boxes)
            if colour_marks and nir_marks:
                colour_points.append(colour_marks[0])
                nir_points.append(nir_marks[0])
    return Measured(cues, skipped, colour_points, nir_points)


def report(live: Measured, attacks: Measured, rule: NirRule) -> str:
    """Each cue's range on live faces and attacks, error rates, and a fitted alignment."""
    lines = [f"pairs: {len(live.cues)} live, {len(attacks.cues)} attack"]
    lines.append(f"skipped (no face, or outside the NIR frame): {live.skipped} + {attacks.skipped}")
    for field in fields(NirCues):
        name = field.name
        values = {
            "live": [getattr(c, name) for c in live.cues],
            "attack": [getattr(c, name) for c in attacks.cues],
        }
        threshold = getattr(rule, f"min_{name}")
        parts = []
        for label, seen in values.items():
            if seen:
                p5, p50, p95 = np.percentile(seen, [5, 50, 95])
                parts.append(f"{label} p5 {p5:.3f} p50 {p50:.3f} p95 {p95:.3f}")
        lines.append(f"{name:13s} (min {threshold}): " + "; ".join(parts))
    live_refused = sum(not shows_skin(c, rule) for c in live.cues)
    attack_passed = sum(shows_skin(c, rule) for c in attacks.cues)
    lines.append(
        f"per frame: live refused {live_refused}/{len(live.cues)}, "
        f"attack frames showing skin {attack_passed}/{len(attacks.cues)}"
    )
    lines.append(
        "a threshold belongs below the live p5 and above the p95 of the attacks it is for "
        "(brightness: screens; spread, texture: prints; face_overlap: screens)"
    )
    if live.colour_points:
        fitted = fit_alignment(np.vstack(live.colour_points), np.vstack(live.nir_points))
        rounded = [[round(v, 4) for v in row] for row in fitted]
        lines.append(f"fitted alignment from {len(live.colour_points)} live pairs: {rounded}")
    return "\n".join(lines)
