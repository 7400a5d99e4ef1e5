"""Rules of 1:N template matching, checked against a brute-force numpy reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge.gate.matching import SOLE_IDENTITY_MARGIN, TemplateIndex

DIM = 128


def unit_vectors(rng: np.random.Generator, count: int) -> np.ndarray:
    vectors = rng.standard_normal((count, DIM))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def near(rng: np.random.Generator, base: np.ndarray, scale: float) -> np.ndarray:
    return base + scale * rng.standard_normal(DIM)


def reference(
    person_ids: list[str], templates: np.ndarray, query: np.ndarray
) -> tuple[str, float, float]:
    """Brute force: best identity, its distance, and the gap to the best other identity."""
    distances = np.linalg.norm(templates.astype(np.float32).astype(np.float64) - query, axis=1)
    best = int(np.argmin(distances))
    others = [d for d, p in zip(distances, person_ids, strict=True) if p != person_ids[best]]
    margin = min(others) - distances[best] if others else SOLE_IDENTITY_MARGIN
    return person_ids[best], float(distances[best]), float(margin)


def gallery(rng: np.random.Generator, people: int, per_person: int) -> tuple[list[str], np.ndarray]:
    ids = [f"p{i}" for i in range(people) for _ in range(per_person)]
    bases = unit_vectors(rng, people)
    templates = np.repeat(bases, per_person, axis=0)
    templates = templates + 0.05 * rng.standard_normal(templates.shape)
    return ids, templates


@pytest.mark.parametrize(
    ("people", "per_person"), [(1, 1), (1, 4), (2, 1), (7, 3), (300, 1), (1000, 5)]
)
def test_match_agrees_with_brute_force_norm(people: int, per_person: int) -> None:
    rng = np.random.default_rng(people * 31 + per_person)
    ids, templates = gallery(rng, people, per_person)
    index = TemplateIndex.build(ids, templates)
    queries = [near(rng, templates[rng.integers(len(ids))], 0.03) for _ in range(5)]
    queries += list(unit_vectors(rng, 5))  # strangers
    for query in queries:
        expected_id, expected_distance, expected_margin = reference(ids, templates, query)
        result = index.match(query, tolerance=10.0, min_margin=0.0)
        assert result.reason == "match"
        assert result.person_id == expected_id
        # Reported distances are recomputed exactly; only the float32 query rounding remains.
        assert result.distance == pytest.approx(expected_distance, abs=1e-5)
        assert result.margin == pytest.approx(expected_margin, abs=1e-5)


@pytest.mark.parametrize(("people", "per_person"), [(1, 1), (5, 2), (200, 3)])
def test_match_many_equals_match_per_query_in_order(people: int, per_person: int) -> None:
    rng = np.random.default_rng(7)
    ids, templates = gallery(rng, people, per_person)
    index = TemplateIndex.build(ids, templates)
    queries = np.stack([near(rng, t, 0.05) for t in templates[:6]] + list(unit_vectors(rng, 3)))
    batch = index.match_many(queries, tolerance=0.6, min_margin=0.05)
    single = [index.match(q, tolerance=0.6, min_margin=0.05) for q in queries]
    assert [r.person_id for r in batch] == [r.person_id for r in single]
    assert [r.reason for r in batch] == [r.reason for r in single]
    for got, want in zip(batch, single, strict=True):
        assert got.distance == pytest.approx(want.distance, abs=1e-6)
        assert got.margin == pytest.approx(want.margin, abs=1e-6)


def test_match_many_of_zero_queries_returns_empty_list() -> None:
    index = TemplateIndex.build(["a"], np.zeros((1, DIM)))
    assert index.match_many(np.zeros((0, DIM)), tolerance=0.6, min_margin=0.0) == []


def test_exact_template_matches_at_distance_zero() -> None:
    rng = np.random.default_rng(1)
    templates = unit_vectors(rng, 3)
    index = TemplateIndex.build(["a", "b", "c"], templates)
    result = index.match(templates[1], tolerance=0.6, min_margin=0.0)
    assert result.person_id == "b"
    assert result.distance == pytest.approx(0.0, abs=1e-6)


def test_two_near_identities_make_the_match_ambiguous() -> None:
    rng = np.random.default_rng(2)
    twin_a = unit_vectors(rng, 1)[0]
    twin_b = twin_a + 0.01 * rng.standard_normal(DIM)
    stranger = unit_vectors(rng, 1)[0]
    index = TemplateIndex.build(["twin_a", "twin_b", "other"], np.stack([twin_a, twin_b, stranger]))
    result = index.match(twin_a + 0.005 * rng.standard_normal(DIM), tolerance=0.6, min_margin=0.1)
    assert result.reason == "ambiguous"
    assert result.person_id is None
    assert result.distance < 0.6
    assert result.margin < 0.1


def test_several_templates_of_one_person_do_not_create_a_fake_margin() -> None:
    rng = np.random.default_rng(3)
    alice = unit_vectors(rng, 1)[0]
    alice_templates = np.stack([near(rng, alice, 0.01) for _ in range(4)])
    bob = unit_vectors(rng, 1)[0]
    index = TemplateIndex.build(["alice"] * 4 + ["bob"], np.vstack([alice_templates, bob]))
    query = near(rng, alice, 0.01)
    result = index.match(query, tolerance=0.6, min_margin=0.1)
    assert result.reason == "match"
    assert result.person_id == "alice"
    # The runner-up is Bob, far away, not Alice's second template right next to the query.
    expected_margin = np.linalg.norm(bob - query) - result.distance
    assert result.margin == pytest.approx(expected_margin, abs=1e-5)
    assert result.margin > 0.5


@pytest.mark.parametrize("per_person", [1, 3])
def test_single_identity_gallery_reports_the_documented_sole_margin(per_person: int) -> None:
    rng = np.random.default_rng(4)
    base = unit_vectors(rng, 1)[0]
    templates = np.stack([near(rng, base, 0.01) for _ in range(per_person)])
    index = TemplateIndex.build(["solo"] * per_person, templates)
    result = index.match(near(rng, base, 0.01), tolerance=0.6, min_margin=0.2)
    assert result.reason == "match"
    assert result.margin == SOLE_IDENTITY_MARGIN
    assert math.isfinite(result.margin)


@pytest.mark.parametrize(
    ("tolerance", "expected_reason", "expected_person"),
    [(0.29, "no_match", None), (0.31, "match", "a"), (0.3, "match", "a")],
)
def test_tolerance_separates_match_from_no_match_inclusively(
    tolerance: float, expected_reason: str, expected_person: str | None
) -> None:
    a = np.zeros(DIM)
    b = np.zeros(DIM)
    b[0] = 2.0
    query = np.zeros(DIM)
    query[1] = 0.3  # exactly representable distance to a: 0.3 (in float32 rounding)
    index = TemplateIndex.build(["a", "b"], np.stack([a, b]))
    result = index.match(
        query.astype(np.float32), tolerance=float(np.float32(tolerance)), min_margin=0.0
    )
    assert result.reason == expected_reason
    assert result.person_id == expected_person


def test_no_match_wins_over_ambiguous_when_both_apply() -> None:
    a = np.zeros(DIM)
    a[0] = 1.0
    b = np.zeros(DIM)
    b[1] = 1.0
    index = TemplateIndex.build(["a", "b"], np.stack([a, b]))
    result = index.match(np.zeros(DIM), tolerance=0.5, min_margin=0.1)
    assert (result.reason, result.person_id) == ("no_match", None)
    assert result.margin == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("method", ["match", "match_many"])
def test_empty_gallery_reports_empty_gallery(method: str) -> None:
    index = TemplateIndex.build([], np.zeros((0, DIM)))
    assert (index.size, index.people_count) == (0, 0)
    if method == "match":
        results = [index.match(np.zeros(DIM), tolerance=0.6, min_margin=0.0)]
    else:
        results = index.match_many(np.zeros((2, DIM)), tolerance=0.6, min_margin=0.0)
    assert len(results) == (1 if method == "match" else 2)
    for result in results:
        assert result.reason == "empty_gallery"
        assert result.person_id is None


def test_size_counts_rows_and_people_counts_identities() -> None:
    index = TemplateIndex.build(["a", "b", "a", "c", "a"], np.zeros((5, DIM)))
    assert (index.size, index.people_count) == (5, 3)


def test_index_is_unaffected_by_later_changes_to_the_source_array() -> None:
    source = np.zeros((2, DIM), dtype=np.float32)
    source[1, 0] = 1.0
    index = TemplateIndex.build(["a", "b"], source)
    source[:] = 0.0
    source[0, 0] = 1.0
    query = np.zeros(DIM)
    query[0] = 1.0
    assert index.match(query, tolerance=0.1, min_margin=0.0).person_id == "b"


@pytest.mark.parametrize(
    ("ids", "encodings", "message"),
    [
        (["a"], np.zeros(DIM), "shape"),
        (["a"], np.zeros((1, 127)), "shape"),
        (["a"], np.zeros((1, 2, DIM)), "shape"),
        (["a", "b"], np.zeros((1, DIM)), "one id per row"),
        ([], np.zeros((1, DIM)), "one id per row"),
        (["a", ""], np.zeros((2, DIM)), "non-empty string"),
        (["a", 3], np.zeros((2, DIM)), "non-empty string"),
        (["a", "b"], np.array([[0.0] * DIM, [np.nan] + [0.0] * (DIM - 1)]), "NaN"),
        (["a"], np.full((1, DIM), np.inf), "NaN or infinite"),
        (["a"], np.full((1, DIM), "x"), "numeric"),
        ("ab", np.zeros((2, DIM)), "single string"),
    ],
)
def test_build_rejects_malformed_gallery_with_clear_error(
    ids: list[str], encodings: np.ndarray, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        TemplateIndex.build(ids, encodings)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (np.zeros(127), "shape"),
        (np.zeros((1, DIM)), "shape"),
        (np.array([np.nan] * DIM), "NaN"),
        (np.array([np.inf] * DIM), "infinite"),
    ],
)
def test_match_rejects_malformed_query(query: np.ndarray, message: str) -> None:
    index = TemplateIndex.build(["a"], np.zeros((1, DIM)))
    with pytest.raises(ValueError, match=message):
        index.match(query, tolerance=0.6, min_margin=0.0)


@pytest.mark.parametrize(
    ("queries", "message"),
    [(np.zeros(DIM), "shape"), (np.zeros((2, 64)), "shape"), (np.full((2, DIM), np.nan), "NaN")],
)
def test_match_many_rejects_malformed_batch(queries: np.ndarray, message: str) -> None:
    index = TemplateIndex.build(["a"], np.zeros((1, DIM)))
    with pytest.raises(ValueError, match=message):
        index.match_many(queries, tolerance=0.6, min_margin=0.0)


@pytest.mark.parametrize(
    ("tolerance", "min_margin", "message"),
    [
        (-0.1, 0.0, "tolerance"),
        (math.nan, 0.0, "tolerance"),
        (math.inf, 0.0, "tolerance"),
        (0.6, -0.01, "min_margin"),
        (0.6, math.nan, "min_margin"),
    ],
)
def test_match_rejects_invalid_thresholds(
    tolerance: float, min_margin: float, message: str
) -> None:
    index = TemplateIndex.build(["a"], np.zeros((1, DIM)))
    with pytest.raises(ValueError, match=message):
        index.match(np.zeros(DIM), tolerance=tolerance, min_margin=min_margin)
