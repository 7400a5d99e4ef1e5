"""Calibration on real photos through face_recognition (dlib): folders in, report out."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge.calibrate import calibrate, default_encoder, encode_photo_dir, format_report
from tests.photos import sample_photos_dir

OBAMA = (
    "obama.jpg",
    "obama2.jpg",
    "obama3.jpg",
    "obama_partial_face.jpg",
    "obama_partial_face2.jpg",
)


def make_photo_dir(root: Path) -> Path:
    """Operator layout: one folder per person, plus a corrupt JPEG among Obama's photos."""
    source = sample_photos_dir()
    for person, names in (("obama", OBAMA), ("biden", ("biden.jpg",))):
        (root / person).mkdir(parents=True)
        for name in names:
            shutil.copy(source / name, root / person / name)
    rng = np.random.default_rng(7)
    (root / "obama" / "corrupt.jpg").write_bytes(rng.integers(0, 256, 4096, np.uint8).tobytes())
    return root


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_photo_dir(tmp_path_factory.mktemp("calibration") / "photos")


@pytest.fixture(scope="module")
def encoded(photo_dir: Path) -> tuple[dict[str, np.ndarray], list[tuple[str, str]]]:
    return encode_photo_dir(photo_dir, default_encoder)


def test_every_readable_photo_yields_one_128d_encoding(
    encoded: tuple[dict[str, np.ndarray], list[tuple[str, str]]],
) -> None:
    """Five Obama photos (two partial faces) and one Biden photo are all usable."""
    encodings, _ = encoded
    assert sorted(encodings) == ["biden", "obama"]
    assert encodings["obama"].shape == (5, 128)
    assert encodings["biden"].shape == (1, 128)


def test_corrupt_photo_is_skipped_with_its_reason(
    photo_dir: Path, encoded: tuple[dict[str, np.ndarray], list[tuple[str, str]]]
) -> None:
    """Random bytes named .jpg are reported as undecodable, not fatal and not dropped."""
    _, skipped = encoded
    assert skipped == [(str(photo_dir / "obama" / "corrupt.jpg"), "cannot decode image")]


def test_real_photos_separate_genuine_from_impostor_distances(
    encoded: tuple[dict[str, np.ndarray], list[tuple[str, str]]],
) -> None:
    """Same-person distances sit well below different-person ones; the tolerance is sane."""
    encodings, skipped = encoded
    report = calibrate(encodings, target_fpir=0.001, skipped=skipped)
    assert report.people == 2
    assert report.photos == 6
    assert report.genuine.count == 10
    assert report.impostor.count == 6
    assert report.genuine.p50 < report.impostor.p50
    assert report.genuine.max < report.impostor.min
    assert 0.3 <= report.tolerance <= 0.7
    assert report.fpir == 0.0
    assert report.fnr == 0.0
    # Six probes cannot resolve an FPIR of 0.001, and the report must say so.
    assert any("only 6 impostor probes" in w for w in report.warnings)
    assert "corrupt.jpg: cannot decode image" in format_report(report)


def test_photos_with_no_face_or_several_faces_are_skipped(tmp_path: Path) -> None:
    """Exactly one face per photo: an encoder's 0 or 2 faces become skip reasons."""
    root = tmp_path / "photos"
    faces_by_width = {"none.png": (10, 0), "one.jpg": (20, 1), "two.png": (30, 2)}
    for person in ("alice", "bob"):
        (root / person).mkdir(parents=True)
        for name, (width, _) in faces_by_width.items():
            Image.new("RGB", (width, 8), (120, 90, 60)).save(root / person / name)
    faces_for_width = dict(faces_by_width.values())
    seen: list[tuple[int, ...]] = []

    def encoder(rgb: np.ndarray) -> list[np.ndarray]:
        seen.append(rgb.shape)
        return [np.full(128, float(i)) for i in range(faces_for_width[rgb.shape[1]])]

    encodings, skipped = encode_photo_dir(root, encoder)
    assert sorted(seen) == sorted([(8, w, 3) for w, _ in faces_by_width.values()] * 2)
    assert {name: e.shape for name, e in encodings.items()} == {
        "alice": (1, 128),
        "bob": (1, 128),
    }
    assert sorted(skipped) == [
        (str(root / person / name), reason)
        for person in ("alice", "bob")
        for name, reason in (("none.png", "no face found"), ("two.png", "2 faces found"))
    ]


def test_stray_files_and_empty_person_folders_are_reported(tmp_path: Path) -> None:
    """Nothing is dropped silently: loose photos, non-photos and empty folders are listed."""
    root = make_photo_dir(tmp_path / "photos")
    (root / "loose.jpg").write_bytes(b"x")
    (root / "obama" / "notes.txt").write_text("hello")
    (root / "nobody").mkdir()
    (root / ".hidden").mkdir()

    encodings, skipped = encode_photo_dir(root, lambda rgb: [np.zeros(128)])
    reasons = dict(skipped)
    assert reasons[str(root / "loose.jpg")] == "not inside a person sub-folder"
    assert reasons[str(root / "obama" / "notes.txt")].startswith("not a photo")
    assert reasons[str(root / "nobody")] == "no usable photos"
    assert sorted(encodings) == ["biden", "obama"]


def test_missing_folder_is_a_value_error_naming_it(tmp_path: Path) -> None:
    """A path that does not exist is rejected with the path in the message."""
    missing = tmp_path / "no-such-folder"
    with pytest.raises(ValueError, match="no-such-folder"):
        encode_photo_dir(missing, default_encoder)


def test_folder_without_person_folders_is_a_value_error_naming_it(tmp_path: Path) -> None:
    """An empty folder, or one holding no photos in person folders, is rejected."""
    empty = tmp_path / "empty-folder"
    empty.mkdir()
    with pytest.raises(ValueError, match="empty-folder"):
        encode_photo_dir(empty, default_encoder)
    (empty / "alice").mkdir()
    with pytest.raises(ValueError, match=r"empty-folder.*no photos"):
        encode_photo_dir(empty, default_encoder)
