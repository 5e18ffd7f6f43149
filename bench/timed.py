"""The benchmarks' in-process transport: the real record codec and site handler, timed.

Each request is encoded as Flower records, decoded as the ClientApp does,
answered by :func:`genofed.site_agent.release.handle_request` and the reply
encoded and decoded again, as in :class:`tests.harness.InProcessTransport`,
with no Ray or gRPC, so that each site's local step can be timed on its own.
For the request kinds that start with one of ``prefixes`` it records, per
site (its directory name): wall seconds in total and per request, bytes
released (reply arrays) and received (request arrays), requests answered,
and each reply's facts.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

from genofed.common.wire.records import (
    reply_from_recorddict,
    reply_to_recorddict,
    request_from_recorddict,
    request_to_recorddict,
)
from genofed.coordinator.transport import Incoming, Outgoing
from genofed.site_agent.release import handle_request


class TimedTransport:
    """Node ``i + 1`` serves ``site_dirs[i]``; see the module docstring for what is recorded."""

    def __init__(self, site_dirs: list[Path], prefixes: tuple[str, ...]) -> None:
        self.site_dirs = {i + 1: Path(d) for i, d in enumerate(site_dirs)}
        self.prefixes = prefixes
        self.seconds: dict[str, float] = defaultdict(float)
        self.request_s: dict[str, list[float]] = defaultdict(list)
        self.released: dict[str, int] = defaultdict(int)
        self.received: dict[str, int] = defaultdict(int)
        self.rounds: dict[str, int] = defaultdict(int)
        self.facts: dict[str, list[dict[str, str]]] = defaultdict(list)

    def nodes(self) -> list[int]:
        return sorted(self.site_dirs)

    def exchange(self, outgoing: Mapping[int, Outgoing], *, timeout: float) -> dict[int, Incoming]:
        result = {}
        for node, o in outgoing.items():
            request, inputs = request_from_recorddict(request_to_recorddict(o.request, o.inputs))
            start = time.perf_counter()
            reply, arrays = handle_request(self.site_dirs[node], request, inputs)
            seconds = time.perf_counter() - start
            name = self.site_dirs[node].name
            if request.kind.startswith(self.prefixes):
                self.seconds[name] += seconds
                self.request_s[name].append(seconds)
                self.released[name] += sum(a.nbytes for a in arrays.values())
                self.received[name] += sum(a.nbytes for a in inputs.values())
                self.rounds[name] += 1
                self.facts[name].append(dict(reply.facts))
            result[node] = Incoming(*reply_from_recorddict(reply_to_recorddict(reply, arrays)))
        return result


__all__ = ["TimedTransport"]
