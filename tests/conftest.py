"""Shared fixtures: a real mosquitto broker and PostgreSQL server per module, the sample photos."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from tests.broker import Broker
from tests.photos import sample_photos_dir
from tests.postgres import Postgres


@pytest.fixture(scope="session")
def photos() -> Path:
    return sample_photos_dir()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    b = Broker(tmp_path_factory.mktemp("mosquitto"))
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    """A throwaway PostgreSQL cluster (tests/postgres.py), for the modules that ask for one."""
    workdir = Path(tempfile.mkdtemp(prefix="dormguard-pg-"))
    server = Postgres(workdir)
    try:
        server.start()
    except (RuntimeError, OSError) as exc:
        pytest.fail(f"cannot run the real PostgreSQL server: {exc}", pytrace=False)
    yield server
    server.stop()
    shutil.rmtree(workdir, ignore_errors=True)
