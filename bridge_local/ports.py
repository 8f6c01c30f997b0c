"""Fail fast on a port someone else holds: before the local deploy (about 16 s), not after it."""

from __future__ import annotations

import errno
import socket
from collections.abc import Sequence


class PortInUse(OSError):
    """A fixed port the local run needs is taken; the message names it and the option to change it."""

    def __init__(self, port: int, message: str) -> None:
        super().__init__(message)
        self.port = port


def check_free(ports: Sequence[tuple[int, str]], host: str = "127.0.0.1") -> None:
    """Raise PortInUse for the first of ``ports`` ((port, option that sets it) pairs) that can't be bound.

    Port 0 (any free port) and negative ones (not started) are skipped. The probe binds the way
    the servers do (SO_REUSEADDR, as `http_server` sets it), so a port in TIME_WAIT passes and one
    with a listener fails, as the real bind would. Two options given the same port fail too.
    """
    claimed: dict[int, str] = {}
    for port, option in ports:
        if port <= 0:
            continue
        if port in claimed:
            raise PortInUse(port, f"port {port} is given to both {claimed[port]} and {option}; change one")
        claimed[port] = option
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                why = "is in use" if exc.errno == errno.EADDRINUSE else f"can't be bound ({exc.strerror})"
                raise PortInUse(port, f"port {port} {why}; pick another with {option} PORT") from None
