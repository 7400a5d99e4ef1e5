"""An edge in its own network namespace, joined to the host by a veth pair, so it can be cut off.

The host end gets ``10.<a>.<b>.1/30``, the namespace end ``.2``; the broker listens on the host
end too (an extra listener), and the edge process runs under ``ip netns exec``. Cutting the edge
off takes the host end of the link down: packets in either direction go nowhere and new
connections time out, as when a building's switch loses its uplink; nothing is closed, so both
sides find out only through their MQTT keepalives. Needs root and a kernel that allows network
namespaces; `available()` says whether it does here.
"""

from __future__ import annotations

import os
import subprocess
import uuid


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


class EdgeNetwork:
    """One namespace and its veth pair; `cut()` and `restore()` the link, `remove()` it all."""

    def __init__(self, index: int) -> None:
        tag = uuid.uuid4().hex[:6]
        self.name = f"dgchaos-{tag}"
        self.host_if = f"dgc{tag}h"  # interface names: at most 15 characters
        self.ns_if = f"dgc{tag}n"
        octet = 16 + (os.getpid() % 200)
        self.host_ip = f"10.{octet}.{index * 4 % 256}.1"
        self.edge_ip = f"10.{octet}.{index * 4 % 256}.2"
        self.created = False

    def create(self) -> EdgeNetwork:
        """Make the namespace and the link (RuntimeError with the reason when refused)."""
        try:
            _ip("netns", "add", self.name)
            self.created = True
            _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
            _ip("link", "set", self.ns_if, "netns", self.name)
            _ip("addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
            _ip("link", "set", self.host_if, "up")
            self.run_in("ip", "addr", "add", f"{self.edge_ip}/30", "dev", self.ns_if)
            self.run_in("ip", "link", "set", self.ns_if, "up")
            self.run_in("ip", "link", "set", "lo", "up")
        except (subprocess.CalledProcessError, FileNotFoundError) as exc:
            detail = getattr(exc, "stderr", "") or str(exc)
            self.remove()
            raise RuntimeError(f"network namespace refused: {detail.strip()}") from exc
        return self

    def run_in(self, *argv: str) -> None:
        subprocess.run(["ip", "netns", "exec", self.name, *argv], check=True, capture_output=True)

    def wrap(self, argv: list[str]) -> list[str]:
        """The command line that runs ``argv`` inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def cut(self) -> None:
        _ip("link", "set", self.host_if, "down")

    def restore(self) -> None:
        _ip("link", "set", self.host_if, "up")

    def remove(self) -> None:
        """Delete the link and the namespace (safe to call twice)."""
        _ip("link", "del", self.host_if, check=False)
        if self.created:
            _ip("netns", "del", self.name, check=False)
            self.created = False


def available() -> str | None:
    """None when namespaces can be made here, else why not."""
    probe = EdgeNetwork(63)
    try:
        probe.create()
    except RuntimeError as exc:
        return str(exc)
    finally:
        probe.remove()
    return None
