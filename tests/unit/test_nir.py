"""The NIR check's pure parts on plain values: alignment, box mapping, each cue, the decision,
and the ``liveness.nir`` config section. (Cues on SIMULATED NIR views of real photos:
tests/integration/test_nir_cues.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from edge.gate.config import LivenessSection
from edge.gate.nir import (
    NirCues,
    NirRule,
    NirTally,
    alignment_matrix,
    as_gray,
    combine,
    default_alignment,
    map_box,
    nearest_in_time,
    nir_cues,
    shows_skin,
    skin_cues,
)
from faces.box import Box

BOX = Box(top=100, right=300, bottom=300, left=100)
RULE = NirRule()


def test_a_2x3_affine_becomes_a_3x3_matrix() -> None:
    matrix = alignment_matrix([[0.5, 0, 10], [0, 0.5, -4]])
    assert matrix.shape == (3, 3)
    assert matrix[2].tolist() == [0.0, 0.0, 1.0]


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ([[1, 0], [0, 1]], "2x3"),
        ([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]], "2x3"),
        ([[1, 0, 0], [2, 0, 0]], "singular"),
        ([[1, 0, float("nan")], [0, 1, 0]], "finite"),
    ],
)
def test_a_bad_alignment_is_refused_saying_why(values: list[list[float]], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        alignment_matrix(values)


def test_the_default_alignment_scales_to_the_nir_resolution() -> None:
    matrix = default_alignment((480, 640, 3), (240, 320))
    mapped = map_box(BOX, matrix, (240, 320))
    assert mapped == Box(top=50, right=150, bottom=150, left=50)


def test_an_affine_alignment_scales_and_shifts_the_box() -> None:
    matrix = alignment_matrix([[0.75, 0, 14], [0, 0.75, -8]])
    assert map_box(BOX, matrix, (360, 480)) == Box(top=67, right=239, bottom=217, left=89)


def test_a_homography_maps_the_box_to_the_box_around_its_corners() -> None:
    homography = alignment_matrix([[1, 0.1, 0], [0, 1, 0], [0, 0.0005, 1]])
    mapped = map_box(BOX, homography, (1000, 1000))
    assert mapped is not None
    corners = np.array([[100, 100, 1], [300, 100, 1], [300, 300, 1], [100, 300, 1]]) @ homography.T
    xy = corners[:, :2] / corners[:, 2:]
    assert mapped.left == round(xy[:, 0].min()) and mapped.right == round(xy[:, 0].max())
    assert mapped.top == round(xy[:, 1].min()) and mapped.bottom == round(xy[:, 1].max())


def test_a_box_mostly_outside_the_nir_frame_is_not_seen_there() -> None:
    shifted = alignment_matrix([[1, 0, 250], [0, 1, 0]])
    assert map_box(BOX, shifted, (400, 400)) is None  # 50 of its 200 px columns inside
    assert map_box(BOX, alignment_matrix([[1, 0, 40], [0, 1, 0]]), (400, 400)) == Box(
        top=100, right=340, bottom=300, left=140
    )


def test_a_box_partly_outside_is_clipped() -> None:
    mapped = map_box(BOX, alignment_matrix([[1, 0, 150], [0, 1, 0]]), (400, 400))
    assert mapped == Box(top=100, right=400, bottom=300, left=250)


def test_grayscale_and_three_channel_nir_frames_read_the_same() -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert np.array_equal(as_gray(gray), as_gray(np.repeat(gray[:, :, None], 3, axis=2)))
    with pytest.raises(ValueError, match="grayscale or 3-channel"):
        as_gray(np.zeros((2, 2, 2), np.uint8))


def scene(face: np.ndarray, surround: float = 100.0) -> np.ndarray:
    """A 400x400 NIR frame of level ``surround`` with ``face`` (200x200) in BOX."""
    image = np.full((400, 400), surround, np.float32)
    image[100:300, 100:300] = face
    return image


def shaded_face(level: float = 150.0, depth: float = 90.0, detail: float = 12.0) -> np.ndarray:
    """A bright face-sized patch with 3D-like shading and fine detail (skin under NIR)."""
    yy, xx = np.mgrid[0:200, 0:200].astype(np.float32)
    shading = depth * np.cos((xx - 100) / 70) * np.cos((yy - 100) / 90)
    rng = np.random.default_rng(0)
    return level - depth / 2 + shading + rng.normal(0, detail, (200, 200))


def test_skin_is_bright_spread_and_textured() -> None:
    brightness, spread, texture = skin_cues(scene(shaded_face()), BOX)
    assert brightness >= RULE.min_brightness
    assert spread >= RULE.min_spread
    assert texture >= RULE.min_texture


def test_a_screen_is_dark_against_its_surround() -> None:
    rng = np.random.default_rng(1)
    brightness, _, _ = skin_cues(scene(8 + rng.normal(0, 3, (200, 200))), BOX)
    assert brightness < RULE.min_brightness


def test_a_print_is_flat_and_smooth() -> None:
    flat = 150 + 0.3 * (shaded_face(detail=0.0) - 150)
    _, spread, texture = skin_cues(scene(flat), BOX)
    assert spread < RULE.min_spread
    assert texture < RULE.min_texture


def test_the_face_cue_is_the_best_overlap_of_an_nir_detection_with_the_box() -> None:
    image = scene(shaded_face())
    assert nir_cues(image, BOX, []).face_overlap == 0.0
    far = Box(top=0, right=50, bottom=50, left=0)
    near = Box(top=110, right=310, bottom=310, left=110)
    assert nir_cues(image, BOX, [far, near]).face_overlap == pytest.approx(
        190 * 190 / (2 * 200 * 200 - 190 * 190)
    )


def test_a_tiny_box_is_refused() -> None:
    with pytest.raises(ValueError, match="too small"):
        skin_cues(np.zeros((10, 10)), Box(top=0, right=2, bottom=2, left=0))


LIVE_CUES = NirCues(face_overlap=0.8, brightness=1.2, spread=0.3, texture=0.045)


@pytest.mark.parametrize(
    "failing",
    [
        {"face_overlap": 0.1},
        {"brightness": 0.2},
        {"spread": 0.08},
        {"texture": 0.017},
    ],
)
def test_one_frame_shows_skin_only_when_every_cue_passes(failing: dict[str, float]) -> None:
    assert shows_skin(LIVE_CUES, RULE)
    values: dict[str, Any] = {
        "face_overlap": LIVE_CUES.face_overlap,
        "brightness": LIVE_CUES.brightness,
        "spread": LIVE_CUES.spread,
        "texture": LIVE_CUES.texture,
    }
    values.update(failing)
    assert not shows_skin(NirCues(**values), RULE)


def test_the_tally_counts_passes_fails_and_missing_frames() -> None:
    tally = NirTally().add(True).add(False).add(None).add(True)
    assert (tally.passes, tally.fails, tally.missing) == (2, 1, 1)


@pytest.mark.parametrize(
    ("passive", "tally", "waited_out", "expected"),
    [
        ("live", NirTally(passes=3), False, "live"),
        ("live", NirTally(passes=2), False, "pending"),  # not enough NIR frames yet
        ("pending", NirTally(passes=5), False, "pending"),  # NIR alone does not grant
        ("live", NirTally(passes=5, fails=3), False, "attack"),  # enough frames showed no skin
        ("pending", NirTally(fails=3), False, "attack"),  # refused before the wait ends
        ("attack", NirTally(passes=5), False, "attack"),  # a screen outline still refuses
        ("live", NirTally(missing=12), True, "unavailable"),  # NIR camera dead: never a grant
        ("live", NirTally(passes=1, missing=11), True, "unavailable"),
        ("live", NirTally(passes=2, fails=2), True, "attack"),  # judged, not enough skin
        ("attack", NirTally(missing=12), True, "attack"),  # no life either: an attack
    ],
)
def test_combine_needs_both_verdicts_for_a_grant(
    passive: Any, tally: NirTally, waited_out: bool, expected: str
) -> None:
    assert combine(passive, tally, RULE, waited_out) == expected


def test_the_nearest_frame_in_time_within_the_limit_is_chosen() -> None:
    times = [1.00, 1.04, 1.10]
    assert nearest_in_time(times, 1.05, 0.1) == 1
    assert nearest_in_time(times, 1.30, 0.1) is None
    assert nearest_in_time([], 1.0, 0.1) is None


NIR_SOURCE = {"source": {"kind": "camera", "target": "/dev/video2"}}


def test_passive_nir_needs_the_nir_section() -> None:
    with pytest.raises(ValidationError, match=r"passive\+nir' needs a 'liveness.nir'"):
        LivenessSection(mode="passive+nir")


@pytest.mark.parametrize("mode", ["off", "passive"])
def test_the_nir_section_is_refused_in_other_modes(mode: str) -> None:
    with pytest.raises(ValidationError, match=r"liveness\.nir is used only with"):
        LivenessSection.model_validate({"mode": mode, "nir": NIR_SOURCE})


def test_the_nir_section_gives_the_rule_and_checks_the_alignment() -> None:
    section = LivenessSection.model_validate(
        {"mode": "passive+nir", "nir": {**NIR_SOURCE, "pass_frames": 4, "max_dt_s": 0.05}}
    )
    assert section.nir is not None and section.nir.alignment is None
    rule = section.nir.rule()
    assert (rule.pass_frames, rule.fail_frames, rule.max_dt_s) == (4, 3, 0.05)
    with pytest.raises(ValidationError, match="2x3"):
        LivenessSection.model_validate(
            {"mode": "passive+nir", "nir": {**NIR_SOURCE, "alignment": [[1, 0], [0, 1]]}}
        )


def test_the_example_configs_commented_nir_section_validates_with_the_real_defaults() -> None:
    """examples/gate.example.yaml shows liveness.nir commented out; uncommented, it must load
    and its thresholds must be the defaults it claims."""
    import yaml

    from edge.gate.config import NirSection

    example = Path(__file__).resolve().parents[2] / "examples" / "gate.example.yaml"
    lines = example.read_text(encoding="utf-8").splitlines()
    start = lines.index("  # nir:")
    block = []
    for line in lines[start:]:
        if not line.startswith("  #"):
            break
        text = line[len("  # ") :]
        if not text.lstrip().startswith("#"):
            block.append(text)
    nir = yaml.safe_load("\n".join(block))["nir"]
    section = LivenessSection.model_validate({"mode": "passive+nir", "nir": nir}).nir
    assert section is not None and section.source.target == "/dev/video2"
    defaults = NirSection.model_validate({"source": nir["source"]})
    shown = section.model_dump(exclude={"source", "alignment"})
    assert shown == defaults.model_dump(exclude={"source", "alignment"})
