"""A real PostgreSQL server for tests: initdb into a temp dir, run as the `postgres` user."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
from pathlib import Path

from edge.localbroker import free_port


def postgres_bindir() -> Path:
    """Debian's server binaries (package postgresql); RuntimeError with the fix if missing."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError(
            "PostgreSQL server not installed: run `make test` as root or apt-get install postgresql"
        )
    return Path(found[-1]).parent


class Postgres:
    """One throwaway cluster on 127.0.0.1:<free port>, trust authentication."""

    settings: tuple[str, ...] = ("fsync=off",)  # server options (-c), a throwaway's

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.data = workdir / "data"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, argv: list[str]) -> list[str]:
        if os.geteuid() == 0:  # the server refuses to run as root
            return ["runuser", "-u", "postgres", "--", *argv]
        return argv

    def start(self, timeout: float = 30.0) -> Postgres:
        bindir = postgres_bindir()
        self.workdir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres", "postgres")
        init = subprocess.run(
            self._as_postgres(
                [str(bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"]
            ),
            capture_output=True,
            text=True,
        )
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed: {init.stderr[-800:]}")
        self._launch(timeout)
        return self

    def _launch(self, timeout: float, *, new_session: bool = False) -> None:
        """Run the server on the data directory and wait until it accepts connections."""
        bindir = postgres_bindir()
        argv = [str(bindir / "postgres"), "-D", str(self.data), "-p", str(self.port)]
        argv += ["-h", "127.0.0.1", "-k", str(self.workdir)]
        for setting in self.settings:
            argv += ["-c", setting]
        with (self.workdir / "postgres.log").open("ab") as log:
            self._proc = subprocess.Popen(
                self._as_postgres(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=new_session,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = subprocess.run(
                [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
            )
            if ready.returncode == 0:
                return
            if self._proc.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(
            "PostgreSQL did not start: " + (self.workdir / "postgres.log").read_text()[-800:]
        )

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
