"""Which client a login comes from, and the source its failures are counted under."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

UNKNOWN_ADDRESS = "unknown"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address from a peer or X-Forwarded-For entry ('[v6]:port', 'v4:port' allowed)."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else text[1:]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def client_address(
    peer: str | None, forwarded_for: Sequence[str], trusted_proxies: Sequence[Network]
) -> str | None:
    """The client a login comes from: the peer, unless it is one of ``trusted_proxies``.

    Behind trusted proxies X-Forwarded-For is read from the right, each proxy having appended
    the address it saw; the first hop that is not a trusted proxy is the client. Without trusted
    proxies the header is ignored: anyone can write it.
    """
    if peer is None or not trusted_proxies:
        return peer
    hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
    current = peer
    ip = _parse_ip(peer)
    while ip is not None and any(ip in network for network in trusted_proxies) and hops:
        hop = hops.pop()
        hop_ip = _parse_ip(hop)
        if hop_ip is None:
            return current  # garbage a proxy passed on: stay with the last address we trust
        current, ip = str(hop_ip), hop_ip
    return current


def address_key(address: str | None) -> str:
    """What a source is counted under: an IPv4 address, an IPv6 address's /64, else the text.

    One IPv6 host usually holds a whole /64, so counting single addresses would let it rotate.
    """
    if not address:
        return UNKNOWN_ADDRESS
    ip = _parse_ip(address)
    if ip is None:
        return address.strip()[:64] or UNKNOWN_ADDRESS
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
