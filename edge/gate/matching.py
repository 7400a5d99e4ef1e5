"""1:N matching of a face encoding against an in-memory gallery of templates (numpy only).

Distances follow face_recognition: the Euclidean distance ``||a - b||`` between 128-d
encodings. The search is one BLAS product over a float32 matrix with precomputed squared
norms, using ``||t - q||² = |t|² + |q|² - 2 t·q``: ranking by ``|t|²/2 - t·q`` needs a single
subtraction per row, and only the two distances that are reported get computed exactly
(in float64, from the template itself), so float32 cancellation never reaches the caller.

The margin is the gap between the best identity and the best row of any *other* identity, so
several templates of one person never look like a close runner-up. An index is immutable and
allocates its scratch per call, so one instance may serve several threads and a gallery update
replaces the whole index in one assignment.

Wrong-match feedback (docs/decisions/0014): a person may carry impostor examples, probes a guard
reported as *not* them. When a probe's best identity is such a person, it is refused for them
(reason ``wrong_match``) if it lies within ``impostor_radius`` of one of their impostor examples,
or is not at least ``impostor_margin`` closer to their nearest template than to that example.
Only the matched person's examples are looked at, so the check costs a few dot products.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from edge.gate.model import MatchResult

ENCODING_DIM = 128

# Margin reported when the gallery holds a single identity, so there is no runner-up. It is
# finite so that results stay JSON-friendly, and larger than any sensible ``min_margin``:
# dlib encodings lie near the unit sphere, and distances between different people sit around
# 0.6-1.0, so a real margin of 1.0 or more does not occur.
SOLE_IDENTITY_MARGIN = 1.0

# Distance reported when the gallery is empty: there is no template at any distance.
EMPTY_GALLERY_DISTANCE = math.inf

# Defaults of the wrong-match rule (matching.impostor_radius / impostor_margin in the gate
# config): the same face photographed again lies ~0.2-0.4 from itself, a different person
# ~0.6 or more, so 0.2 refuses near-copies only; the margin decides everything in between.
IMPOSTOR_RADIUS = 0.2
IMPOSTOR_MARGIN = 0.05

Float32Array = npt.NDArray[np.float32]
Float64Array = npt.NDArray[np.float64]
Int32Array = npt.NDArray[np.int32]


class TemplateIndex:
    """Immutable gallery of face templates searchable by Euclidean distance."""

    __slots__ = ("_half_sq_norms", "_impostors", "_people", "_row_person", "_templates")

    def __init__(
        self,
        templates: Float32Array,
        half_sq_norms: Float32Array,
        row_person: Int32Array,
        people: tuple[str, ...],
        impostors: Mapping[int, Float64Array] | None = None,
    ) -> None:
        """Store prepared arrays as they are; use `TemplateIndex.build` to create an index."""
        self._templates = templates
        self._half_sq_norms = half_sq_norms
        self._row_person = row_person
        self._people = people
        self._impostors = MappingProxyType(dict(impostors or {}))  # person index -> (K, 128)

    @classmethod
    def build(
        cls,
        person_ids: Sequence[str],
        encodings: npt.ArrayLike,
        *,
        impostor_ids: Sequence[str] = (),
        impostors: npt.ArrayLike | None = None,
    ) -> TemplateIndex:
        """Build an index from one person id per row of an (N, 128) encoding matrix.

        ``impostor_ids[i]`` is whom row i of ``impostors`` was reported as *not* being; examples
        of people without templates are left out (they can never be the best identity).
        """
        if isinstance(person_ids, str):
            raise ValueError("person_ids must be a sequence of ids, not a single string")
        matrix = _checked_matrix(person_ids, encodings, "encodings")

        people: dict[str, int] = {}
        row_person = np.empty(len(person_ids), dtype=np.int32)
        for row, person_id in enumerate(person_ids):
            if not isinstance(person_id, str) or not person_id:
                raise ValueError(f"person id at row {row} must be a non-empty string")
            row_person[row] = people.setdefault(person_id, len(people))

        # One owned copy: the caller may reuse or mutate its array afterwards.
        templates = np.array(matrix, dtype=np.float32, order="C", copy=True)
        wide = templates.astype(np.float64)
        half_sq_norms = (0.5 * np.einsum("ij,ij->i", wide, wide)).astype(np.float32)
        for array in (templates, half_sq_norms, row_person):
            array.flags.writeable = False
        by_person: dict[int, Float64Array] = {}
        if len(impostor_ids):
            examples = _checked_matrix(impostor_ids, impostors, "impostors").astype(np.float64)
            rows_of: dict[int, list[int]] = {}
            for row, owner in enumerate(impostor_ids):
                if owner in people:
                    rows_of.setdefault(people[owner], []).append(row)
            for person, rows in rows_of.items():
                block = np.array(examples[rows], dtype=np.float64, order="C")
                block.flags.writeable = False
                by_person[person] = block
        return cls(templates, half_sq_norms, row_person, tuple(people), by_person)

    @property
    def size(self) -> int:
        """Number of templates (rows) in the index."""
        return int(self._templates.shape[0])

    @property
    def people_count(self) -> int:
        """Number of distinct identities in the index."""
        return len(self._people)

    @property
    def impostor_count(self) -> int:
        """Number of impostor examples of people in the index."""
        return sum(block.shape[0] for block in self._impostors.values())

    def match(
        self,
        encoding: npt.ArrayLike,
        *,
        tolerance: float,
        min_margin: float,
        impostor_radius: float = IMPOSTOR_RADIUS,
        impostor_margin: float = IMPOSTOR_MARGIN,
    ) -> MatchResult:
        """Find the closest identity to one 128-d encoding and judge it against the thresholds."""
        _check_thresholds(tolerance, min_margin, impostor_radius, impostor_margin)
        query = _as_queries(encoding, ndim=1)
        if self.size == 0:
            return _empty_gallery_result()

        # score = |t|²/2 - t·q ranks rows exactly like the squared distance.
        scores = self._templates @ query
        np.subtract(self._half_sq_norms, scores, out=scores)
        best_row = int(np.argmin(scores))
        second_row: int | None = None
        if self.people_count > 1:
            best_person = self._row_person[best_row]
            np.putmask(scores, self._row_person == best_person, np.inf)
            second_row = int(np.argmin(scores))
        impostor = (impostor_radius, impostor_margin)
        return self._result(query, best_row, second_row, tolerance, min_margin, impostor)

    def match_many(
        self,
        encodings: npt.ArrayLike,
        *,
        tolerance: float,
        min_margin: float,
        impostor_radius: float = IMPOSTOR_RADIUS,
        impostor_margin: float = IMPOSTOR_MARGIN,
    ) -> list[MatchResult]:
        """Match an (M, 128) batch of encodings with one matrix product; results keep order."""
        _check_thresholds(tolerance, min_margin, impostor_radius, impostor_margin)
        queries = _as_queries(encodings, ndim=2)
        count = queries.shape[0]
        if count == 0:
            return []
        if self.size == 0:
            return [_empty_gallery_result() for _ in range(count)]

        scores = queries @ self._templates.T  # (M, N)
        np.subtract(self._half_sq_norms, scores, out=scores)
        best_rows = np.argmin(scores, axis=1)
        second_rows: list[int | None] = [None] * count
        if self.people_count > 1:
            best_people = self._row_person[best_rows]
            same_person = self._row_person[np.newaxis, :] == best_people[:, np.newaxis]
            np.putmask(scores, same_person, np.inf)
            second_rows = [int(row) for row in np.argmin(scores, axis=1)]
        impostor = (impostor_radius, impostor_margin)
        return [
            self._result(
                queries[i], int(best_rows[i]), second_rows[i], tolerance, min_margin, impostor
            )
            for i in range(count)
        ]

    def _distance(self, row: int, query: Float32Array) -> float:
        diff = self._templates[row].astype(np.float64) - query.astype(np.float64)
        return float(np.sqrt(diff @ diff))

    def _result(
        self,
        query: Float32Array,
        best_row: int,
        second_row: int | None,
        tolerance: float,
        min_margin: float,
        impostor: tuple[float, float],
    ) -> MatchResult:
        distance = self._distance(best_row, query)
        if second_row is None:
            margin = SOLE_IDENTITY_MARGIN
        else:
            # Clamped: float32 ranking may order two near-equal rows the other way round.
            margin = max(0.0, self._distance(second_row, query) - distance)
        if distance > tolerance:
            return MatchResult(None, distance, margin, "no_match")
        if margin < min_margin:
            return MatchResult(None, distance, margin, "ambiguous")
        person = int(self._row_person[best_row])
        examples = self._impostors.get(person)
        if examples is not None:
            diffs = examples - query.astype(np.float64)
            nearest = float(np.sqrt(np.min(np.einsum("ij,ij->i", diffs, diffs))))
            radius, impostor_margin = impostor
            if nearest <= radius or nearest < distance + impostor_margin:
                return MatchResult(None, distance, margin, "wrong_match")
        return MatchResult(self._people[person], distance, margin, "match")


def _checked_matrix(
    ids: Sequence[str], encodings: npt.ArrayLike | None, name: str
) -> npt.NDArray[np.generic]:
    """An (N, 128) finite numeric matrix with one row per id; ValueError says what is wrong."""
    matrix = np.asarray(encodings if encodings is not None else np.zeros((0, ENCODING_DIM)))
    if matrix.ndim != 2 or matrix.shape[1] != ENCODING_DIM:
        raise ValueError(f"{name} must have shape (N, {ENCODING_DIM}), got {tuple(matrix.shape)}")
    if len(ids) != matrix.shape[0]:
        raise ValueError(
            f"got {len(ids)} person ids for {matrix.shape[0]} {name}; give one id per row"
        )
    if not _is_real_numeric(matrix.dtype):
        raise ValueError(f"{name} must be numeric, got dtype {matrix.dtype}")
    bad_rows = np.flatnonzero(~np.isfinite(matrix).all(axis=1))
    if bad_rows.size:
        raise ValueError(
            f"{name} contain NaN or infinite values in {bad_rows.size} row(s), "
            f"first at row {int(bad_rows[0])}"
        )
    return matrix


def _check_thresholds(
    tolerance: float,
    min_margin: float,
    impostor_radius: float = 0.0,
    impostor_margin: float = 0.0,
) -> None:
    for name, value in (
        ("tolerance", tolerance),
        ("min_margin", min_margin),
        ("impostor_radius", impostor_radius),
        ("impostor_margin", impostor_margin),
    ):
        if not (math.isfinite(value) and value >= 0.0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def _as_queries(encodings: npt.ArrayLike, *, ndim: int) -> Float32Array:
    array = np.asarray(encodings)
    expected = "(128,)" if ndim == 1 else "(M, 128)"
    if array.ndim != ndim or array.shape[-1] != ENCODING_DIM:
        raise ValueError(f"encoding must have shape {expected}, got {tuple(array.shape)}")
    if not _is_real_numeric(array.dtype):
        raise ValueError(f"encoding must be numeric, got dtype {array.dtype}")
    if not np.isfinite(array).all():
        raise ValueError("encoding contains NaN or infinite values")
    return np.ascontiguousarray(array, dtype=np.float32)


def _is_real_numeric(dtype: np.dtype[np.generic]) -> bool:
    return bool(np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer))


def _empty_gallery_result() -> MatchResult:
    return MatchResult(None, EMPTY_GALLERY_DISTANCE, 0.0, "empty_gallery")
