"""The coordinator's one seam for transport.

The study protocol (``runner.py``) speaks to sites through :class:`Transport`:
send one request to each of some nodes, get each node's reply. Flower's Grid
is behind the implementation in ``app.py`` (the simulation engine and the
gRPC deployment both reach the coordinator as a Grid); tests use an
in-process implementation that calls the site handler directly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from genofed.common.messages import Reply, Request
from genofed.common.wire.records import NamedArrays


@dataclass(frozen=True)
class Outgoing:
    """A request for one node, with its input arrays."""

    request: Request
    inputs: NamedArrays = field(default_factory=dict)


@dataclass(frozen=True)
class Incoming:
    """A node's reply, or the transport's error when none came back."""

    reply: Reply | None
    arrays: NamedArrays = field(default_factory=dict)
    error: str | None = None


class Transport(Protocol):
    """Sends requests to site nodes and collects their replies."""

    def nodes(self) -> list[int]:
        """The node IDs currently connected."""
        ...

    def exchange(self, outgoing: Mapping[int, Outgoing], *, timeout: float) -> dict[int, Incoming]:
        """Send each request to its node; return a reply (or error) for every node.

        A node that did not answer within ``timeout`` seconds gets an
        ``Incoming`` with ``error`` set.
        """
        ...


#: Called with each node's reply as it arrives: ``on_reply(node, incoming)``.
ReplyFn = Callable[[int, Incoming], None]


@runtime_checkable
class StreamingTransport(Transport, Protocol):
    """A transport that can also say each reply as it arrives (progress displays use it).

    Flower's Grid has it (``app.py``); a transport without it reports every
    reply when the round is over.
    """

    def exchange_streaming(
        self, outgoing: Mapping[int, Outgoing], *, timeout: float, on_reply: ReplyFn
    ) -> dict[int, Incoming]:
        """:meth:`Transport.exchange`, calling ``on_reply`` for each reply when it arrives."""
        ...


@dataclass(frozen=True)
class SecureExchange:
    """Each site's reply to a secure-sum round, and the sum (None unless every site took part)."""

    incoming: dict[int, Incoming]
    total: np.ndarray | None
    #: the nodes that refused, failed or stayed silent and so stopped the round
    failed: tuple[int, ...] = ()


class SecureTransport(Transport, Protocol):
    """A transport that can also sum the sites' counts with SecAgg+ (``secure_round.py``).

    Flower's Grid (simulation engine, deployment) has it; the in-process test
    transport does not, so ``exact`` and ``distributed-dp`` studies need one of
    the Flower engines.
    """

    def secure_exchange(
        self, outgoing: Mapping[int, Outgoing], *, timeout: float
    ) -> SecureExchange: ...


__all__ = [
    "Incoming",
    "Outgoing",
    "ReplyFn",
    "SecureExchange",
    "SecureTransport",
    "StreamingTransport",
    "Transport",
]
