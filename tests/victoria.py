"""A real VictoriaMetrics server for tests: the InfluxDB-compatible sink the write path targets.

It accepts InfluxDB line protocol on ``/api/v2/write`` (org and bucket are ignored) and names
each series ``<measurement>_<field>`` with the tags as labels; ``/api/v1/export`` reads them back
with millisecond timestamps. The server keeps its port across stop()/start(), so a test can take
it away and bring it back under a running writer.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from edge.localbroker import free_port

BINARY = "/usr/bin/victoria-metrics"


def victoria_binary() -> str:
    """Path of the victoria-metrics binary; RuntimeError with the install hint when missing."""
    found = shutil.which("victoria-metrics") or BINARY
    if not Path(found).exists():
        raise RuntimeError(
            f"victoria-metrics not found (looked on PATH and at {BINARY}): "
            "install the Debian package `victoria-metrics` (apt-get install victoria-metrics)"
        )
    return found


class Victoria:
    """One victoria-metrics process on 127.0.0.1 with its own data directory."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "victoria.log"

    def start(self, timeout: float = 20.0) -> Victoria:
        """Start the server and wait until /health answers OK."""
        if self.proc is not None:
            return self
        binary = victoria_binary()
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                binary,
                f"-storageDataPath={self.workdir / 'data'}",
                f"-httpListenAddr=127.0.0.1:{self.port}",
                "-retentionPeriod=100y",
                # One sample per series and millisecond: a gateway's write-ahead backlog replays
                # lines it may have sent just before a kill (InfluxDB overwrites those itself).
                "-dedup.minScrapeInterval=1ms",
                # Fresh samples readable at once, no cached query results.
                "-search.latencyOffset=0s",
                "-search.disableCache",
                "-loggerLevel=WARN",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                raise RuntimeError(f"victoria-metrics exited with {code}: {self._log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"victoria-metrics did not become healthy: {self._log_tail()}")

    def stop(self) -> None:
        """Terminate the server (kill it if it does not exit within 10 s)."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def export(self, match: str) -> list[dict[str, Any]]:
        """Every series matching a series selector, as /api/v1/export JSON lines."""
        with urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=10):
            pass
        body = urllib.parse.urlencode({"match[]": match, "start": "0"}).encode()
        with urllib.request.urlopen(f"{self.url}/api/v1/export", data=body, timeout=10) as resp:
            text = resp.read().decode()
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def samples(self, match: str) -> dict[tuple[tuple[str, str], ...], list[tuple[int, float]]]:
        """Samples per series (labels incl. __name__, sorted) as (ms timestamp, value), in order."""
        result: dict[tuple[tuple[str, str], ...], list[tuple[int, float]]] = {}
        for series in self.export(match):
            key = tuple(sorted(series["metric"].items()))
            pairs = sorted(zip(series["timestamps"], series["values"], strict=True))
            result.setdefault(key, []).extend(pairs)
        return result

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"
