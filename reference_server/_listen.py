"""The listening socket, bound before the server starts.

Bound first, so that `--port 0` works and the address printed is the real one; connections made
before the app has started wait in the (deep) listen backlog instead of being refused.
"""

from __future__ import annotations

import socket

BACKLOG = 2048


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port) and listening; OSError when the address is taken."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(BACKLOG)
    return sock
