"""Match-tolerance calibration on the operator's own photos (`dormguard calibrate PHOTO_DIR`).

Two parts. The pure part (numpy only) takes face encodings grouped by person and measures
the genuine distances (every pair of photos of one person) and the impostor distances with
open-set identification semantics: each photo in turn is a probe against everyone else, and a
false-positive identification happens when its nearest photo of *another* person lies within
the tolerance. The gate matches when ``distance <= tolerance`` (see `edge.gate.matching`), so

    FPIR(t) = share of probes whose nearest impostor distance is <= t
    FNR(t)  = share of genuine pairs whose distance is > t

and the recommended tolerance is the largest one whose FPIR meets the target. FPIR is a step
function that rises at each probe's nearest impostor distance, so the search runs over those
sorted distances rather than a grid: with k false positives allowed, any t just below the
(k+1)-th smallest one qualifies. The value is rounded *down* to 4 decimals so that the number
an operator copies into the config never admits the next impostor.

The I/O part walks a folder with one sub-folder of photos per person and encodes each photo
with face_recognition (imported lazily, so the pure part loads no dlib).
"""

from __future__ import annotations

import io
import logging
import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

# Tolerances shown in the report table: 0.30, 0.35, ..., 0.70 (the useful range for dlib).
TABLE_TOLERANCES = tuple(round(0.30 + 0.05 * i, 2) for i in range(9))

# When too few impostor probes exist to resolve the target FPIR, the data only says that no
# impostor came closer than the nearest one; with a handful of people that distance (often
# 0.8 or more) says nothing about the tail of a whole campus. The recommendation is then also
# capped at face_recognition's documented default tolerance, the value dlib's model is tuned at.
UNRESOLVED_TOLERANCE_CEILING = 0.6

# Decimals of the recommended tolerance; it is rounded down to this step.
TOLERANCE_DECIMALS = 4

PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp"})

# Probes per block when computing nearest-impostor distances, bounding memory to
# block x photos float64 values (a few tens of MB for tens of thousands of photos).
_PROBE_BLOCK = 256


@dataclass(frozen=True, slots=True)
class DistStats:
    """Summary of a distance distribution: count, extremes and 5th/50th/95th percentiles."""

    count: int
    min: float
    p5: float
    p50: float
    p95: float
    max: float


@dataclass(frozen=True, slots=True)
class ThresholdRow:
    """The error rates measured at one tolerance."""

    tolerance: float
    fpir: float
    fnr: float


@dataclass(frozen=True, slots=True)
class CalibrationReport:
    """Measured distance distributions and the tolerance recommended for a target FPIR.

    `genuine` summarises all within-person pair distances; `impostor` summarises, per probe
    photo, the distance to the nearest photo of any other person. `skipped` holds
    (path, reason) for photos that could not be used.
    """

    people: int
    photos: int
    skipped: tuple[tuple[str, str], ...]
    genuine: DistStats
    impostor: DistStats
    target_fpir: float
    tolerance: float
    fpir: float
    fnr: float
    table: tuple[ThresholdRow, ...]
    warnings: tuple[str, ...] = ()


def calibrate(
    encodings: Mapping[str, npt.ArrayLike],
    target_fpir: float = 0.001,
    *,
    skipped: Sequence[tuple[str, str]] = (),
) -> CalibrationReport:
    """Measure genuine and impostor distances and pick the tolerance meeting `target_fpir`."""
    if isinstance(target_fpir, bool) or not isinstance(target_fpir, numbers.Real):
        raise ValueError(f"target FPIR must be a number, got {target_fpir!r}")
    if not 0.0 < target_fpir < 1.0:
        raise ValueError(f"target FPIR must lie strictly between 0 and 1, got {target_fpir!r}")
    warnings: list[str] = []
    matrices = _validated_matrices(encodings, warnings)
    if len(matrices) < 2:
        raise ValueError(
            f"need photos of at least 2 people to measure impostor distances, got {len(matrices)}"
        )
    if all(m.shape[0] < 2 for m in matrices.values()):
        raise ValueError(
            "need at least one person with 2 or more photos to measure genuine distances"
        )

    genuine = np.sort(_genuine_distances(matrices.values()))
    nearest_impostor = np.sort(_nearest_impostor_distances(list(matrices.values())))
    probes = nearest_impostor.size

    # False positives allowed on these probes; the epsilon keeps 0.29 * 100 from flooring to 28.
    allowed = min(math.floor(target_fpir * probes + 1e-9), probes - 1)
    bound = float(nearest_impostor[allowed])
    tolerance = _round_down_below(bound)
    if allowed == 0:
        needed = math.ceil(1.0 / target_fpir - 1e-9)
        warnings.append(
            f"only {probes} impostor probes: FPIR is measured in steps of 1/{probes} = "
            f"{1.0 / probes:.4f}, too coarse for the target {target_fpir:g}; the tolerance is "
            f"kept below the nearest impostor distance ({bound:.4f}), which is not evidence "
            f"that the target is met. Add photos of more people (at least {needed} photos)."
        )
        if tolerance > UNRESOLVED_TOLERANCE_CEILING:
            tolerance = UNRESOLVED_TOLERANCE_CEILING
            warnings.append(
                f"tolerance capped at {UNRESOLVED_TOLERANCE_CEILING:.2f} "
                "(face_recognition's default) because the target FPIR cannot be resolved"
            )
    fpir = _fpir(nearest_impostor, tolerance)
    if fpir > target_fpir:
        warnings.append(
            f"target FPIR {target_fpir:g} cannot be met: {round(fpir * probes)} probes have "
            "a photo of another person at distance 0 (the same photo filed under two people?)"
        )
    low, high = TABLE_TOLERANCES[0], TABLE_TOLERANCES[-1]
    if not low <= tolerance <= high:
        warnings.append(
            f"tolerance {tolerance:.4f} is outside the usual range {low:.2f}-{high:.2f} for "
            "dlib encodings; check that each folder holds photos of one person only"
        )

    return CalibrationReport(
        people=len(matrices),
        photos=int(sum(m.shape[0] for m in matrices.values())),
        skipped=tuple((str(path), str(reason)) for path, reason in skipped),
        genuine=_stats(genuine),
        impostor=_stats(nearest_impostor),
        target_fpir=float(target_fpir),
        tolerance=tolerance,
        fpir=fpir,
        fnr=_fnr(genuine, tolerance),
        table=tuple(
            ThresholdRow(t, _fpir(nearest_impostor, t), _fnr(genuine, t)) for t in TABLE_TOLERANCES
        ),
        warnings=tuple(warnings),
    )


def format_report(report: CalibrationReport) -> str:
    """The report as a human-readable text with a tolerance table."""
    lines = [
        f"calibration on {report.photos} photos of {report.people} people"
        f" ({len(report.skipped)} skipped)",
        "",
        f"{'distances':<22}{'count':>7}{'min':>8}{'p5':>8}{'p50':>8}{'p95':>8}{'max':>8}",
    ]
    for label, stats in (
        ("genuine pairs", report.genuine),
        ("nearest impostor", report.impostor),
    ):
        lines.append(
            f"{label:<22}{stats.count:>7}{stats.min:>8.4f}{stats.p5:>8.4f}"
            f"{stats.p50:>8.4f}{stats.p95:>8.4f}{stats.max:>8.4f}"
        )
    lines += [
        "",
        f"target FPIR {report.target_fpir:g}: tolerance {report.tolerance:.4f}"
        f" (FPIR {report.fpir:.4f}, FNR {report.fnr:.4f} on these photos)",
        "",
        f"{'tolerance':>9}{'FPIR':>9}{'FNR':>9}",
    ]
    lines += [f"{row.tolerance:>9.2f}{row.fpir:>9.4f}{row.fnr:>9.4f}" for row in report.table]
    if report.warnings:
        lines += ["", "warnings:"]
        lines += [f"  - {warning}" for warning in report.warnings]
    if report.skipped:
        lines += ["", "skipped:"]
        lines += [f"  {path}: {reason}" for path, reason in report.skipped]
    return "\n".join(lines)


def report_to_json(report: CalibrationReport) -> dict[str, Any]:
    """The report as a JSON-ready dict."""
    return {
        "people": report.people,
        "photos": report.photos,
        "skipped": [{"path": path, "reason": reason} for path, reason in report.skipped],
        "genuine": asdict(report.genuine),
        "impostor": asdict(report.impostor),
        "target_fpir": report.target_fpir,
        "tolerance": report.tolerance,
        "fpir": report.fpir,
        "fnr": report.fnr,
        "table": [asdict(row) for row in report.table],
        "warnings": list(report.warnings),
    }


def encode_photo_dir(
    photo_dir: Path, encode: Callable[[np.ndarray], list[np.ndarray]]
) -> tuple[dict[str, np.ndarray], list[tuple[str, str]]]:
    """Encode every photo in the person sub-folders; returns encodings per person and skips."""
    if not photo_dir.is_dir():
        raise ValueError(f"photo folder {photo_dir} does not exist or is not a folder")
    entries = sorted(p for p in photo_dir.iterdir() if not p.name.startswith("."))
    person_dirs = [p for p in entries if p.is_dir()]
    if not person_dirs:
        raise ValueError(f"photo folder {photo_dir} has no sub-folders (one per person needed)")

    import face_recognition
    from PIL import Image

    skipped: list[tuple[str, str]] = [
        (str(p), "not inside a person sub-folder") for p in entries if not p.is_dir()
    ]
    encodings: dict[str, np.ndarray] = {}
    photos_seen = 0
    for person_dir in person_dirs:
        rows: list[np.ndarray] = []
        for photo in sorted(p for p in person_dir.iterdir() if not p.name.startswith(".")):
            if photo.is_dir() or photo.suffix.lower() not in PHOTO_SUFFIXES:
                skipped.append((str(photo), "not a photo (.jpg, .jpeg, .png or .bmp)"))
                continue
            photos_seen += 1
            try:
                data = photo.read_bytes()
            except OSError as exc:
                skipped.append((str(photo), f"cannot read file: {exc.strerror or exc}"))
                continue
            try:
                rgb = face_recognition.load_image_file(io.BytesIO(data))
            except (OSError, ValueError, SyntaxError, MemoryError, Image.DecompressionBombError):
                skipped.append((str(photo), "cannot decode image"))
                continue
            faces = encode(np.asarray(rgb))
            if len(faces) != 1:
                reason = "no face found" if not faces else f"{len(faces)} faces found"
                skipped.append((str(photo), reason))
                continue
            rows.append(np.asarray(faces[0], dtype=np.float64))
        if rows:
            encodings[person_dir.name] = np.stack(rows)
        else:
            skipped.append((str(person_dir), "no usable photos"))
        logger.info("calibration photos: person=%s usable=%d", person_dir.name, len(rows))
    if photos_seen == 0:
        raise ValueError(f"photo folder {photo_dir} holds no photos in its person sub-folders")
    return encodings, skipped


def default_encoder(rgb: np.ndarray) -> list[np.ndarray]:
    """Encodings of the faces in an RGB image: HOG detection (upsample 1), one jitter."""
    import face_recognition

    locations = face_recognition.face_locations(rgb, number_of_times_to_upsample=1, model="hog")
    if not locations:
        return []
    # model="small" (5-point landmarks) as the gate's encoder uses, so distances compare.
    encodings = face_recognition.face_encodings(
        rgb, known_face_locations=locations, num_jitters=1, model="small"
    )
    return [np.asarray(e, dtype=np.float64) for e in encodings]


def _validated_matrices(
    encodings: Mapping[str, npt.ArrayLike], warnings: list[str]
) -> dict[str, FloatArray]:
    """Each person's encodings as an (n, dim) float64 matrix; people without photos dropped."""
    matrices: dict[str, FloatArray] = {}
    dim: int | None = None
    for person, value in encodings.items():
        matrix = np.asarray(value)
        if matrix.ndim != 2:
            raise ValueError(
                f"encodings of {person!r} must be a 2-D (photos, dim) array, "
                f"got shape {matrix.shape}"
            )
        if matrix.shape[0] == 0:
            warnings.append(f"{person!r} has no encodings and was left out")
            continue
        if not (
            np.issubdtype(matrix.dtype, np.floating) or np.issubdtype(matrix.dtype, np.integer)
        ):
            raise ValueError(f"encodings of {person!r} must be numeric, got dtype {matrix.dtype}")
        if dim is None:
            dim = matrix.shape[1]
        elif matrix.shape[1] != dim:
            raise ValueError(
                f"encodings of {person!r} have dimension {matrix.shape[1]}, others have {dim}"
            )
        if not np.isfinite(matrix).all():
            raise ValueError(f"encodings of {person!r} contain NaN or infinite values")
        matrices[person] = matrix.astype(np.float64)
    return matrices


def _squared_distances(a: FloatArray, b: FloatArray) -> FloatArray:
    """Squared distances between the rows of a and b through one matrix product (for ranking)."""
    a_sq: FloatArray = np.einsum("ij,ij->i", a, a)
    b_sq: FloatArray = np.einsum("ij,ij->i", b, b)
    return a_sq[:, None] + b_sq[None, :] - 2.0 * (a @ b.T)


def _genuine_distances(matrices: Iterable[FloatArray]) -> FloatArray:
    """All within-person pair distances (each unordered pair once), computed exactly."""
    parts = [
        np.linalg.norm(matrix[i + 1 :] - matrix[i], axis=1)
        for matrix in matrices
        for i in range(matrix.shape[0] - 1)
    ]
    return np.concatenate(parts)


def _nearest_impostor_distances(matrices: list[FloatArray]) -> FloatArray:
    """For each photo, the distance to the nearest photo of any other person."""
    everyone = np.concatenate(matrices)
    owner = np.repeat(np.arange(len(matrices)), [m.shape[0] for m in matrices])
    nearest_row = np.empty(everyone.shape[0], dtype=np.intp)
    for start in range(0, everyone.shape[0], _PROBE_BLOCK):
        stop = min(start + _PROBE_BLOCK, everyone.shape[0])
        squared = _squared_distances(everyone[start:stop], everyone)
        squared[owner[start:stop, None] == owner[None, :]] = np.inf
        nearest_row[start:stop] = squared.argmin(axis=1)
    # The product form cancels badly near zero (identical photos would come out at ~1e-8),
    # so the reported distance is recomputed from the difference itself.
    distances: FloatArray = np.linalg.norm(everyone - everyone[nearest_row], axis=1)
    return distances


def _round_down_below(bound: float) -> float:
    """The largest multiple of the rounding step strictly below `bound`, but at least 0."""
    step = 10.0**-TOLERANCE_DECIMALS
    value = round(math.floor(bound / step) * step, TOLERANCE_DECIMALS)
    while value >= bound and value > 0.0:
        value = round(value - step, TOLERANCE_DECIMALS)
    return max(value, 0.0)


def _fpir(sorted_nearest_impostor: FloatArray, tolerance: float) -> float:
    """Share of probes whose nearest impostor lies within the tolerance."""
    hits = np.searchsorted(sorted_nearest_impostor, tolerance, side="right")
    return float(hits) / sorted_nearest_impostor.size


def _fnr(sorted_genuine: FloatArray, tolerance: float) -> float:
    """Share of genuine pairs farther apart than the tolerance."""
    accepted = np.searchsorted(sorted_genuine, tolerance, side="right")
    return float(sorted_genuine.size - accepted) / sorted_genuine.size


def _stats(sorted_values: FloatArray) -> DistStats:
    p5, p50, p95 = np.percentile(sorted_values, [5.0, 50.0, 95.0])
    return DistStats(
        count=int(sorted_values.size),
        min=float(sorted_values[0]),
        p5=float(p5),
        p50=float(p50),
        p95=float(p95),
        max=float(sorted_values[-1]),
    )
