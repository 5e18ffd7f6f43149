"""Does the coordinator's address speak plaintext gRPC? A few-second check before ``--insecure``.

Flower's SuperNode, started with ``--insecure`` against a SuperLink that
speaks TLS, retries for a minute or more and prints nothing a person can
act on. Before it starts, :func:`plaintext_problem` opens one TCP connection
and sends the HTTP/2 client preface with an empty SETTINGS frame, as a
plaintext gRPC client does first: a plaintext gRPC server answers with its
own SETTINGS frame; a TLS server answers with a TLS alert or closes the
connection. Written with the standard library's sockets because no
library offers this check, and the site agent's Flower/gRPC code stays in
its adapters.
"""

from __future__ import annotations

import socket

#: What a plaintext HTTP/2 client sends first (RFC 9113 §3.4), then an empty SETTINGS frame.
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
#: HTTP/2 frame type of SETTINGS (the byte after the 3-byte length).
SETTINGS = 4
#: First byte of a TLS record: an alert (21) or a handshake (22).
TLS_RECORDS = (21, 22)


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def plaintext_problem(address: str, timeout: float = 3.0) -> str | None:
    """Why ``address`` (``host:port``) is no plaintext gRPC server, or None (it is, or unsure).

    None also when nothing answers within ``timeout`` or nothing listens yet:
    the SuperNode then keeps trying, as without this check.
    """
    try:
        host, port = _split(address)
    except ValueError:
        return None
    try:
        conn = socket.create_connection((host, port), timeout=timeout)
    except OSError:  # nothing listens yet, or unreachable: the SuperNode keeps trying
        return None
    with conn:
        try:
            conn.settimeout(timeout)
            conn.sendall(PREFACE)
            reply = conn.recv(64)
        except ConnectionResetError:
            reply = b""  # reset on our preface: as good as closed
        except OSError:  # no answer in time: unsure
            return None
    if len(reply) >= 4 and reply[3] == SETTINGS:
        return None
    if reply[:1] and reply[0] in TLS_RECORDS:
        return f"the coordinator at {address} answered with TLS, not plaintext"
    if not reply:
        return f"the coordinator at {address} closed the plaintext connection (it expects TLS)"
    return f"the coordinator at {address} did not answer as a plaintext gRPC server"


__all__ = ["plaintext_problem"]
