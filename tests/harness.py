"""Test harness: a composition root that wires the coordinator to site handlers in-process.

:class:`InProcessTransport` implements the coordinator's transport seam by
encoding each request as Flower records, decoding it as the ClientApp does,
calling the site handler directly, and encoding and decoding the reply: the
same codec and handler as the real engines, without Ray or gRPC (a Flower
``Message`` can only be made inside a Flower run).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from genofed.common.wire.records import (
    reply_from_recorddict,
    reply_to_recorddict,
    request_from_recorddict,
    request_to_recorddict,
)
from genofed.coordinator.transport import Incoming, Outgoing
from genofed.site_agent.release import handle_request


class InProcessTransport:
    """Node ``i + 1`` serves ``site_dirs[i]``."""

    def __init__(self, site_dirs: Sequence[Path]) -> None:
        self.site_dirs = {i + 1: Path(d) for i, d in enumerate(site_dirs)}
        self.sent: list[tuple[int, Outgoing]] = []

    def nodes(self) -> list[int]:
        return sorted(self.site_dirs)

    def exchange(self, outgoing: Mapping[int, Outgoing], *, timeout: float) -> dict[int, Incoming]:
        result = {}
        for node, o in outgoing.items():
            self.sent.append((node, o))
            request, inputs = request_from_recorddict(request_to_recorddict(o.request, o.inputs))
            reply, arrays = handle_request(self.site_dirs[node], request, inputs)
            result[node] = Incoming(*reply_from_recorddict(reply_to_recorddict(reply, arrays)))
        return result
