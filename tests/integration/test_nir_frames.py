"""The simulated NIR pairs keep the colour attack frames of tests/attacks.py unchanged.

Rule checked: the colour half of each pair of tests/nir_frames.py is, frame for frame, the
frame tests/attacks.py makes with the same seed, so the passive and the NIR figures are on
the same attacks; the NIR half is grayscale at the simulated NIR camera's resolution.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.attacks import ATTACKS
from tests.nir_frames import NIR_ATTACKS, NIR_SIZE


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_the_colour_frames_are_the_attack_sets_own(name: str, photos: Path) -> None:
    photo = photos / "obama2.jpg"
    colour_only = ATTACKS[name](photo, 3, 2)
    pairs = NIR_ATTACKS[name](photo, 3, 2)
    assert all(np.array_equal(a, c) for a, (c, _) in zip(colour_only, pairs, strict=True))
    width, height = NIR_SIZE
    assert all(nir.shape == (height, width) for _, nir in pairs)
