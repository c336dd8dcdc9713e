"""Free TCP ports for the processes suanli starts (Ray heads, HAProxy's listeners)."""

from __future__ import annotations

import socket


def free_ports(count: int, host: str) -> list[int]:
    """`count` distinct ports free on `host` right now (bound together, then released)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind((host, 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()
