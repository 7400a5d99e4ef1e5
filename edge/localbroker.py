"""A private mosquitto for the demo and tests: generated config, free loopback port.

The demo runs it with per-client passwords and the production ACL; most tests run it open.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mosquitto_binary() -> str:
    """Path of the mosquitto binary; RuntimeError with the install hint when missing."""
    found = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(found).exists():
        raise RuntimeError(
            "mosquitto is not installed: run `make demo` as root, or `apt-get install mosquitto`"
        )
    return found


class LocalBroker:
    """mosquitto on 127.0.0.1:<port> with its persistence and log in `workdir`."""

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        extra_conf: str = "",
        *,
        password_file: Path | None = None,
        acl_file: Path | None = None,
    ) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.extra_conf = extra_conf
        self.password_file = password_file
        self.acl_file = acl_file
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        """Start mosquitto and wait until it accepts connections."""
        binary = mosquitto_binary()
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        # With a password file the broker runs as production does: no anonymous clients, each
        # with its own account, the ACL limiting each to its own topics (deploy/mosquitto).
        secured = self.password_file is not None
        lines = [
            "per_listener_settings false",
            f"allow_anonymous {'false' if secured else 'true'}",
            *([f"password_file {self.password_file}"] if secured else []),
            *([f"acl_file {self.acl_file}"] if self.acl_file is not None else []),
            f"listener {self.port} 127.0.0.1",
            "persistence true",
            f"persistence_location {self.workdir}/",
            f"log_dest file {self.workdir}/mosquitto.log",
            "max_queued_messages 100000",
        ]
        if os.geteuid() == 0:
            lines.append("user root")
        conf.write_text("\n".join(lines) + "\n" + self.extra_conf)
        self.proc = subprocess.Popen([binary, "-c", str(conf)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log_file = self.workdir / "mosquitto.log"
                tail = log_file.read_text()[-500:] if log_file.exists() else ""
                raise RuntimeError(
                    f"mosquitto exited at start (code {self.proc.returncode}): {tail}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not start on port {self.port} within {timeout}s")

    def stop(self) -> None:
        """Stop mosquitto (it saves its persistence file on the way out)."""
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
