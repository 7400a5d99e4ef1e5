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
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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

Float32Array = npt.NDArray[np.float32]
Int32Array = npt.NDArray[np.int32]


class TemplateIndex:
    """Immutable gallery of face templates searchable by Euclidean distance."""

    __slots__ = ("_half_sq_norms", "_people", "_row_person", "_templates")

    def __init__(
        self,
        templates: Float32Array,
        half_sq_norms: Float32Array,
        row_person: Int32Array,
        people: tuple[str, ...],
    ) -> None:
        """Store prepared arrays as they are; use `TemplateIndex.build` to create an index."""
        self._templates = templates
        self._half_sq_norms = half_sq_norms
        self._row_person = row_person
        self._people = people

    @classmethod
    def build(cls, person_ids: Sequence[str], encodings: npt.ArrayLike) -> TemplateIndex:
        """Build an index from one person id per row of an (N, 128) encoding matrix."""
        if isinstance(person_ids, str):
            raise ValueError("person_ids must be a sequence of ids, not a single string")
        matrix = np.asarray(encodings)
        if matrix.ndim != 2 or matrix.shape[1] != ENCODING_DIM:
            raise ValueError(
                f"encodings must have shape (N, {ENCODING_DIM}), got {tuple(matrix.shape)}"
            )
        if len(person_ids) != matrix.shape[0]:
            raise ValueError(
                f"got {len(person_ids)} person ids for {matrix.shape[0]} encodings; "
                "give one id per row"
            )
        if not _is_real_numeric(matrix.dtype):
            raise ValueError(f"encodings must be numeric, got dtype {matrix.dtype}")
        bad_rows = np.flatnonzero(~np.isfinite(matrix).all(axis=1))
        if bad_rows.size:
            raise ValueError(
                f"encodings contain NaN or infinite values in {bad_rows.size} row(s), "
                f"first at row {int(bad_rows[0])}"
            )

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
        return cls(templates, half_sq_norms, row_person, tuple(people))

    @property
    def size(self) -> int:
        """Number of templates (rows) in the index."""
        return int(self._templates.shape[0])

    @property
    def people_count(self) -> int:
        """Number of distinct identities in the index."""
        return len(self._people)

    def match(self, encoding: npt.ArrayLike, *, tolerance: float, min_margin: float) -> MatchResult:
        """Find the closest identity to one 128-d encoding and judge it against the thresholds."""
        _check_thresholds(tolerance, min_margin)
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
        return self._result(query, best_row, second_row, tolerance, min_margin)

    def match_many(
        self, encodings: npt.ArrayLike, *, tolerance: float, min_margin: float
    ) -> list[MatchResult]:
        """Match an (M, 128) batch of encodings with one matrix product; results keep order."""
        _check_thresholds(tolerance, min_margin)
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
        return [
            self._result(queries[i], int(best_rows[i]), second_rows[i], tolerance, min_margin)
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
        person_id = self._people[int(self._row_person[best_row])]
        return MatchResult(person_id, distance, margin, "match")


def _check_thresholds(tolerance: float, min_margin: float) -> None:
    if not (math.isfinite(tolerance) and tolerance >= 0.0):
        raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance!r}")
    if not (math.isfinite(min_margin) and min_margin >= 0.0):
        raise ValueError(f"min_margin must be a finite number >= 0, got {min_margin!r}")


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
