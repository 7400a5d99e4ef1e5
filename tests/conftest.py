"""Shared fixtures: a real mosquitto broker per module, the sample photos."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from tests.broker import Broker
from tests.photos import sample_photos_dir


@pytest.fixture(scope="session")
def photos() -> Path:
    return sample_photos_dir()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    b = Broker(tmp_path_factory.mktemp("mosquitto"))
    b.start()
    yield b
    b.stop()
