"""Ports for servers that a test stops and starts again on the same port.

The kernel takes ports for every ``bind(0)`` and every outgoing connection from its
ephemeral range (``ip_local_port_range``), so a port found that way may belong to some
other process by the time its server restarts: on a busy machine, sooner or later it
does. A port below that range is only ever taken by a process that asks for it by
number, so a server restarted on it finds it free.
"""

from __future__ import annotations

import secrets
import socket
from pathlib import Path

_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
#: How many ports below the ephemeral range to choose from.
_BAND = 12000


def ephemeral_range() -> tuple[int, int]:
    """The kernel's ephemeral port range (Linux's default where it cannot be read)."""
    try:
        low, high = (int(part) for part in _RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


def is_free(port: int) -> bool:
    """Nothing is bound to 127.0.0.1:``port`` right now (nor lingers there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def stable_port() -> int:
    """A free port outside the ephemeral range, to keep across restarts."""
    low, _ = ephemeral_range()
    first = max(10000, low - _BAND)
    if low - first < 1000:  # an unusual range: no room below it, take any free port
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
            return port
    for _ in range(200):
        candidate = first + secrets.randbelow(low - first)
        if is_free(candidate):
            return candidate
    raise RuntimeError(f"no free port in {first}-{low - 1}")
