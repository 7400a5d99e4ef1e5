"""Rules of tolerance calibration, on synthetic encodings with known distances."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from edge.calibrate import (
    TABLE_TOLERANCES,
    UNRESOLVED_TOLERANCE_CEILING,
    CalibrationReport,
    calibrate,
    format_report,
    report_to_json,
)

DIM = 128


def clusters(
    seed: int, people: int, per_person: int, spread: float, radius: float = 1.0
) -> dict[str, np.ndarray]:
    """People as random centres `radius` from the origin, photos scattered around them."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((people, DIM))
    centres *= radius / np.linalg.norm(centres, axis=1, keepdims=True)
    return {
        f"p{i}": centres[i] + spread / math.sqrt(DIM) * rng.standard_normal((per_person, DIM))
        for i in range(people)
    }


def line(**people: list[float]) -> dict[str, np.ndarray]:
    """One-dimensional encodings: each photo is a point on a line, so distances are obvious."""
    return {name: np.array(points, dtype=np.float64)[:, None] for name, points in people.items()}


# Nearest impostor per probe: a0 0.45, a1 0.40, b0 0.40, b1 0.45, c0 0.70, c1 0.65, d0 0.65,
# d1 0.75 -> sorted 0.40 0.40 0.45 0.45 0.65 0.65 0.70 0.75. Genuine pairs: 0.05 0.05 0.05 0.10.
FOUR_ON_A_LINE = line(a=[0.0, 0.05], b=[0.45, 0.5], c=[1.3, 1.35], d=[2.0, 2.1])


def brute_force(
    encodings: dict[str, np.ndarray],
) -> tuple[list[float], list[float]]:
    """Genuine pair distances and nearest-impostor distances by plain loops."""
    genuine = [
        float(np.linalg.norm(x - y))
        for rows in encodings.values()
        for x, y in itertools.combinations(rows, 2)
    ]
    nearest = [
        min(
            float(np.linalg.norm(x - y))
            for other, other_rows in encodings.items()
            if other != person
            for y in other_rows
        )
        for person, rows in encodings.items()
        for x in rows
    ]
    return genuine, nearest


def test_separated_clusters_give_a_tolerance_between_them_with_no_errors() -> None:
    """Genuine pairs all within 0.2, impostors beyond 0.55: the tolerance lies in between,
    below all but the few impostors the target allows, and rejects no genuine pair."""
    encodings = clusters(seed=1, people=40, per_person=5, spread=0.1, radius=0.5)
    report = calibrate(encodings, target_fpir=0.01)
    assert report.genuine.max < 0.2 < 0.55 < report.impostor.min
    assert report.genuine.max < report.tolerance < report.impostor.p5
    assert report.fnr == 0.0
    assert report.fpir <= 0.01
    assert report.warnings == ()
    assert report.people == 40
    assert report.photos == 200
    assert report.genuine.count == 40 * 10
    assert report.impostor.count == 200


def test_overlapping_clusters_trade_false_negatives_for_the_target_fpir() -> None:
    """When people's photos overlap, meeting the FPIR target costs genuine rejections."""
    encodings = clusters(seed=2, people=30, per_person=6, spread=0.35, radius=0.3)
    report = calibrate(encodings, target_fpir=0.05)
    assert report.genuine.p95 > report.impostor.p5  # the distributions really overlap
    assert 0.0 < report.fnr < 1.0
    assert report.fpir <= 0.05
    assert report.warnings == ()


@pytest.mark.parametrize(
    ("target", "expected_fpir", "next_impostor"),
    [
        (0.25, 0.25, 0.45),
        (0.3, 0.25, 0.45),
        (0.5, 0.5, 0.65),
        (0.7, 0.5, 0.65),
        (0.75, 0.75, 0.7),
        (0.9, 0.875, 0.75),
    ],
)
def test_tolerance_is_the_largest_below_the_first_impostor_beyond_the_budget(
    target: float, expected_fpir: float, next_impostor: float
) -> None:
    """With k false positives allowed, the tolerance sits just below the (k+1)-th nearest
    impostor distance, rounded down to 4 decimals, whatever the grid holds."""
    report = calibrate(FOUR_ON_A_LINE, target_fpir=target)
    assert report.fpir == expected_fpir
    assert next_impostor - 1.001e-4 <= report.tolerance < next_impostor
    assert report.tolerance == round(report.tolerance, 4)
    assert report.fnr == 0.0


def test_tolerance_is_not_limited_to_the_table_grid() -> None:
    """The search runs over the measured impostor distances, so it can land between grid rows."""
    report = calibrate(FOUR_ON_A_LINE, target_fpir=0.5)
    assert report.tolerance == pytest.approx(0.6499, abs=1.001e-4)
    assert report.tolerance not in TABLE_TOLERANCES
    best_on_grid = max(row.tolerance for row in report.table if row.fpir <= 0.5)
    assert best_on_grid == 0.6
    assert report.tolerance > best_on_grid


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("target", [0.05, 0.1, 0.3])
def test_matches_a_brute_force_reference_and_is_maximal(seed: int, target: float) -> None:
    """Distances match plain loops; FPIR meets the target, and the next impostor breaks it."""
    rng = np.random.default_rng(100 + seed)
    per_person = int(rng.integers(1, 6))
    encodings = clusters(seed, people=12, per_person=per_person, spread=0.35, radius=0.5)
    encodings["extra"] = clusters(seed + 50, 1, 3, spread=0.35, radius=0.5)["p0"]
    genuine, nearest = brute_force(encodings)
    report = calibrate(encodings, target_fpir=target)

    assert report.genuine.count == len(genuine)
    assert report.genuine.min == pytest.approx(min(genuine))
    assert report.genuine.p50 == pytest.approx(float(np.median(genuine)))
    assert report.impostor.count == len(nearest)
    assert report.impostor.min == pytest.approx(min(nearest))
    assert report.impostor.max == pytest.approx(max(nearest))
    assert report.impostor.p95 == pytest.approx(float(np.percentile(nearest, 95)))

    def fpir(t: float) -> float:
        return sum(d <= t for d in nearest) / len(nearest)

    def fnr(t: float) -> float:
        return sum(d > t for d in genuine) / len(genuine)

    assert report.fpir == pytest.approx(fpir(report.tolerance))
    assert report.fpir <= target
    assert report.fnr == pytest.approx(fnr(report.tolerance))
    next_impostor = min(d for d in nearest if d > report.tolerance)
    assert fpir(next_impostor) > target
    assert next_impostor - report.tolerance <= 1.001e-4
    for row in report.table:
        assert row.fpir == pytest.approx(fpir(row.tolerance))
        assert row.fnr == pytest.approx(fnr(row.tolerance))


def test_table_covers_0_30_to_0_70_and_rates_move_monotonically() -> None:
    """Nine rows 0.30..0.70 step 0.05; FPIR never falls and FNR never rises as t grows."""
    report = calibrate(clusters(2, 30, 6, spread=0.35, radius=0.3), target_fpir=0.05)
    assert [row.tolerance for row in report.table] == [
        0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7
    ]  # fmt: skip
    fpirs = [row.fpir for row in report.table]
    fnrs = [row.fnr for row in report.table]
    assert fpirs == sorted(fpirs)
    assert fnrs == sorted(fnrs, reverse=True)


def test_too_few_probes_warns_and_stays_below_the_nearest_impostor() -> None:
    """1/probes above the target cannot be resolved: say so and admit no impostor at all."""
    encodings = line(a=[0.0, 0.1, 0.2], b=[0.55, 0.6])
    report = calibrate(encodings, target_fpir=0.001)
    assert report.impostor.count == 5
    assert any("only 5 impostor probes" in w for w in report.warnings)
    assert report.tolerance == pytest.approx(0.3499, abs=1.001e-4)
    assert report.tolerance < report.impostor.min
    assert report.fpir == 0.0


def test_unresolved_target_never_recommends_more_than_the_ceiling() -> None:
    """A few far-apart people say nothing about a campus: cap the tolerance at 0.6."""
    encodings = line(a=[0.0, 0.3], b=[1.2, 1.4])
    report = calibrate(encodings, target_fpir=0.01)
    assert report.impostor.min == pytest.approx(0.9)
    assert report.tolerance == UNRESOLVED_TOLERANCE_CEILING
    assert any("capped" in w for w in report.warnings)


def test_resolved_target_is_not_capped() -> None:
    """With enough probes, the measured distances decide even above the usual range."""
    encodings = clusters(seed=4, people=60, per_person=2, spread=0.1)
    report = calibrate(encodings, target_fpir=0.05)
    assert report.tolerance > 0.7
    assert not any("capped" in w for w in report.warnings)
    assert any("outside the usual range" in w for w in report.warnings)


def test_same_photo_under_two_people_reports_the_target_as_unreachable() -> None:
    """Identical encodings of two 'people' sit at distance 0: no tolerance can exclude them."""
    encodings = clusters(seed=5, people=3, per_person=3, spread=0.1)
    encodings["twin"] = encodings["p0"][:1].copy()
    report = calibrate(encodings, target_fpir=0.01)
    assert report.impostor.min == 0.0
    assert report.tolerance == 0.0
    assert report.fpir > 0.01
    assert any("cannot be met" in w for w in report.warnings)


def test_people_with_single_photos_count_as_probes_and_impostors() -> None:
    """A person with one photo adds no genuine pair but is still a probe and an impostor."""
    report = calibrate(line(a=[0.0, 0.1], b=[0.5], c=[0.9]), target_fpir=0.4)
    assert report.people == 3
    assert report.photos == 4
    assert report.genuine.count == 1
    assert report.impostor.count == 4
    assert report.impostor.min == pytest.approx(0.4)


def test_person_without_encodings_is_left_out_with_a_warning() -> None:
    """An empty (0, dim) block is not a person for the counts, and the report says so."""
    encodings = clusters(seed=6, people=3, per_person=3, spread=0.1)
    encodings["ghost"] = np.zeros((0, DIM))
    report = calibrate(encodings)
    assert report.people == 3
    assert any("'ghost'" in w for w in report.warnings)


def test_skipped_photos_are_carried_into_the_report() -> None:
    """The I/O part's skipped list travels with the report, for the text and JSON output."""
    skipped = [("/photos/a/x.jpg", "no face found")]
    report = calibrate(FOUR_ON_A_LINE, 0.25, skipped=skipped)
    assert report.skipped == (("/photos/a/x.jpg", "no face found"),)


@pytest.mark.parametrize(
    ("encodings", "message"),
    [
        ({}, "at least 2 people"),
        ({"a": np.zeros((3, DIM))}, "at least 2 people"),
        ({"a": np.zeros((3, DIM)), "b": np.zeros((0, DIM))}, "at least 2 people"),
        ({"a": np.zeros((1, DIM)), "b": np.ones((1, DIM))}, "2 or more photos"),
        ({"a": np.zeros((2, DIM)), "b": np.ones((2, 64))}, "dimension 64"),
        ({"a": np.zeros((2, DIM)), "b": np.ones(DIM)}, "2-D"),
        ({"a": np.zeros((2, DIM)), "b": np.full((1, DIM), np.nan)}, "NaN"),
        ({"a": np.zeros((2, DIM)), "b": np.full((1, DIM), "x")}, "numeric"),
    ],
)
def test_unusable_encodings_are_rejected_with_a_clear_message(
    encodings: dict[str, np.ndarray], message: str
) -> None:
    """Too few people, no genuine pair, or malformed arrays raise ValueError saying why."""
    with pytest.raises(ValueError, match=message):
        calibrate(encodings)


@pytest.mark.parametrize("target", [0.0, 1.0, -0.1, 1.5, math.nan, math.inf])
def test_target_fpir_must_lie_strictly_between_0_and_1(target: float) -> None:
    """A target of 0 or 1 (or nonsense) has no meaningful tolerance."""
    with pytest.raises(ValueError, match="target FPIR"):
        calibrate(FOUR_ON_A_LINE, target_fpir=target)


def test_format_report_shows_distributions_tolerance_table_and_warnings() -> None:
    """The text report names the tolerance, every table row, the warnings and skipped photos."""
    report = calibrate(
        line(a=[0.0, 0.1, 0.2], b=[0.55, 0.6]), 0.001, skipped=[("/p/a/bad.jpg", "no face found")]
    )
    text = format_report(report)
    assert "5 photos of 2 people (1 skipped)" in text
    assert "genuine pairs" in text
    assert "nearest impostor" in text
    assert f"tolerance {report.tolerance:.4f}" in text
    for tolerance in TABLE_TOLERANCES:
        assert f"{tolerance:.2f}" in text
    assert "only 5 impostor probes" in text
    assert "/p/a/bad.jpg: no face found" in text


def test_report_to_json_is_serialisable_and_keeps_every_figure() -> None:
    """The JSON dict survives json.dumps and holds the same numbers as the report."""
    report = calibrate(FOUR_ON_A_LINE, 0.25, skipped=[("/p/x.jpg", "cannot decode image")])
    data = json.loads(json.dumps(report_to_json(report)))
    assert data["tolerance"] == report.tolerance
    assert data["fpir"] == report.fpir == 0.25
    assert data["fnr"] == report.fnr
    assert data["target_fpir"] == 0.25
    assert data["people"] == 4
    assert data["photos"] == 8
    assert data["genuine"]["count"] == 4
    assert data["impostor"]["p50"] == pytest.approx(report.impostor.p50)
    assert data["skipped"] == [{"path": "/p/x.jpg", "reason": "cannot decode image"}]
    assert len(data["table"]) == 9
    assert data["table"][0] == {"tolerance": 0.3, "fpir": 0.0, "fnr": 0.0}
    assert data["warnings"] == list(report.warnings)


def test_report_is_immutable() -> None:
    """Reports are frozen values."""
    report = calibrate(FOUR_ON_A_LINE, 0.25)
    assert isinstance(report, CalibrationReport)
    with pytest.raises(AttributeError):
        report.tolerance = 0.9  # type: ignore[misc]
