"""``dormguard nir record`` and ``dormguard nir measure`` on SIMULATED NIR pairs.

The pairs are made from real photos (tests/nir_frames.py); these tests check the tools, not
figures of a real NIR camera. Rules checked: ``record`` saves pairs taken together from the
real folder sources of a gate config; ``measure`` reports each cue for live faces and attacks,
no live frame refused under the defaults, and fits an alignment close to the one the
simulation used; a config without ``liveness.nir`` is refused with a clear message.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import pytest

from dormguard.cli import main
from tests.gatekit import gate_config, write_key
from tests.nir_frames import ALIGNMENT, live_pairs, printed_pairs


def config_with_nir(tmp_path: Path, colour: Path, nir: Path) -> Path:
    write_key(tmp_path / "gallery.key")
    return gate_config(
        tmp_path,
        port=1883,
        source={"kind": "folder", "target": str(colour), "fps": 10},
        key_file=tmp_path / "gallery.key",
        gallery_path=tmp_path / "gallery.bin",
        liveness={
            "mode": "passive+nir",
            "nir": {"source": {"kind": "folder", "target": str(nir), "fps": 10}},
        },
    )


def write_pairs(folder: Path, pairs: list[tuple[object, object]]) -> None:
    folder.mkdir(parents=True)
    for i, (colour, nir) in enumerate(pairs):
        assert cv2.imwrite(str(folder / f"{i:04d}-colour.png"), colour)
        assert cv2.imwrite(str(folder / f"{i:04d}-nir.png"), nir)


def test_record_saves_pairs_from_both_sources(tmp_path: Path, photos: Path) -> None:
    ((colour, nir),) = live_pairs([photos / "obama2.jpg"], 1)
    (tmp_path / "colour").mkdir()
    (tmp_path / "nir").mkdir()
    cv2.imwrite(str(tmp_path / "colour" / "a.png"), colour)
    cv2.imwrite(str(tmp_path / "nir" / "a.png"), nir)
    config = config_with_nir(tmp_path, tmp_path / "colour", tmp_path / "nir")
    out = tmp_path / "recorded"
    code = main(["nir", "record", "--config", str(config), "--out", str(out), "--frames", "3"])
    assert code == 0
    assert len(list(out.glob("*-colour.png"))) == 3
    assert len(list(out.glob("*-nir.png"))) == 3


@pytest.mark.slow
def test_measure_reports_the_cues_and_fits_the_alignment(
    tmp_path: Path, photos: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live = [
        pair
        for name in ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg")
        for pair in live_pairs([photos / name], 2)
    ]
    write_pairs(tmp_path / "pairs" / "live", live)
    write_pairs(tmp_path / "pairs" / "attack", printed_pairs(photos / "obama2.jpg", 4))
    config = config_with_nir(tmp_path, tmp_path, tmp_path)
    assert main(["nir", "measure", "--config", str(config), str(tmp_path / "pairs")]) == 0
    out = capsys.readouterr().out
    assert "pairs: 8 live, 4 attack" in out
    assert "live refused 0/8" in out
    assert "attack frames showing skin 0/4" in out
    fitted = re.search(r"fitted alignment from \d+ live pairs: (.*)", out)
    assert fitted is not None
    rows = json.loads(fitted.group(1))
    # Faces stand near one spot: what must agree is where the fit maps a face there.
    for x, y in ((320, 240), (250, 170), (390, 310)):
        true_x = ALIGNMENT[0][0] * x + ALIGNMENT[0][2]
        true_y = ALIGNMENT[1][1] * y + ALIGNMENT[1][2]
        assert rows[0][0] * x + rows[0][2] == pytest.approx(true_x, abs=5), rows
        assert rows[1][1] * y + rows[1][2] == pytest.approx(true_y, abs=5), rows


def test_a_config_without_the_nir_section_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_key(tmp_path / "gallery.key")
    config = gate_config(
        tmp_path,
        port=1883,
        source={"kind": "folder", "target": str(tmp_path)},
        key_file=tmp_path / "gallery.key",
        gallery_path=tmp_path / "gallery.bin",
    )
    assert main(["nir", "measure", "--config", str(config), str(tmp_path)]) == 2
    assert "no liveness.nir section" in capsys.readouterr().err
