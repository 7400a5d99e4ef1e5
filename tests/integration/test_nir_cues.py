"""The NIR cues on real photos with SIMULATED NIR views, through the real face engine.

The NIR frames are made from the colour photos (tests/nir_frames.py): there is no NIR camera
and no real NIR face image here. The figures these tests assert are the ones docs/liveness.md
records as simulated; they say the check does what it is built to do on such frames, not what
it does on a real NIR camera, where the thresholds must be calibrated (``dormguard nir
record`` and ``dormguard nir measure``, docs/liveness.md).

Genuine: every sample photo of tests/photos.py (five of one person, one of another), 6
frames each (fresh sensor noise), a look of the gate camera. Attacks: tests/attacks.py's
three, 4 presentations each, 6 frames. Each frame: HOG on the colour frame, the box mapped
into the NIR frame, the detector on the NIR crop, the cues; a look is judged as the daemon
does (at least ``pass_frames`` skin frames, fewer than ``fail_frames`` without).

Rules checked: every attack presentation refused by the NIR frames alone (APCER 0 of 12),
every genuine look passes (BPCER 0 of 6), and each attack fails the cue meant for it (a screen
is dark and no face, a print flat and smooth); a grayscale NIR image read through the real
folder source (as 3 channels) gives the same cues.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.gate.capture import open_source
from edge.gate.frames import SourceSpec
from edge.gate.nir import NirCues, NirRule, NirTally, combine, shows_skin
from edge.gate.nir_check import NirCheck, crop_face_px
from faces.engine import DlibFaceEngine
from tests.nir_frames import ALIGNMENT, NIR_ATTACKS, Pair, live_pairs
from tests.photos import NAMES

pytestmark = pytest.mark.slow

FRAMES = 6
SEEDS = range(4)
RULE = NirRule()


@pytest.fixture(scope="module")
def check() -> NirCheck:
    engine = DlibFaceEngine()  # the gate's default detection settings
    engine.start()
    return NirCheck(engine, RULE, ALIGNMENT, crop_face_px(engine.scale, engine.min_face_px))


def cues_of(check: NirCheck, pairs: list[Pair]) -> list[NirCues]:
    found = []
    for colour, nir in pairs:
        boxes = check.engine.detect(colour).boxes
        assert boxes, "the colour frame's face must be found"
        cues = check.cues(colour.shape, nir, boxes[0])
        assert cues is not None
        found.append(cues)
    return found


def accepted(cues: list[NirCues]) -> bool:
    """The look as the daemon's ``combine`` judges it (passive evidence taken as given): at
    least pass_frames skin frames, and fewer than fail_frames without."""
    tally = NirTally()
    for frame in cues:
        tally = tally.add(shows_skin(frame, RULE))
    return combine("live", tally, RULE, waited_out=True) == "live"


def test_genuine_looks_pass_and_every_attack_is_refused_on_the_simulated_set(
    check: NirCheck, photos: Path
) -> None:
    genuine = {name: cues_of(check, live_pairs([photos / name], FRAMES)) for name in NAMES}
    refused = [name for name, cues in genuine.items() if not accepted(cues)]
    assert refused == [], {n: genuine[n] for n in refused}  # BPCER 0 of 6
    attacks = {
        (name, seed): cues_of(check, make(photos / "obama2.jpg", FRAMES, seed))
        for name, make in NIR_ATTACKS.items()
        for seed in SEEDS
    }
    through = [key for key, cues in attacks.items() if accepted(cues)]
    assert through == []  # APCER 0 of 12
    for (name, _), cues in attacks.items():
        if name == "phone_replay":  # a screen: dark, and no face under NIR
            assert all(c.face_overlap < RULE.min_face_overlap for c in cues)
            assert np.median([c.brightness for c in cues]) < RULE.min_brightness
        else:  # a print: a face is there, but flat and smooth
            assert all(c.spread < RULE.min_spread and c.texture < RULE.min_texture for c in cues)


def test_a_grayscale_nir_image_through_the_folder_source_gives_the_same_cues(
    check: NirCheck, photos: Path, tmp_path: Path
) -> None:
    ((colour, nir),) = live_pairs([photos / "obama2.jpg"], 1)
    assert nir.ndim == 2
    assert cv2.imwrite(str(tmp_path / "nir.png"), nir)
    source = open_source(SourceSpec(kind="folder", target=str(tmp_path), fps=20))
    source.start()
    try:
        frame = source.latest(timeout=5)
    finally:
        source.stop()
    assert frame is not None and frame.image.shape == (*nir.shape, 3)
    box = check.engine.detect(colour).boxes[0]
    direct = check.cues(colour.shape, nir, box)
    through = check.cues(colour.shape, frame.image, box)
    assert direct is not None and through is not None
    assert np.allclose(
        [direct.brightness, direct.spread, direct.texture],
        [through.brightness, through.spread, through.texture],
    )
    assert shows_skin(through, RULE)
