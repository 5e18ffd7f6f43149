"""Flower ServerApp: the coordinator's adapter to Flower's Message API.

:class:`GridTransport` implements the coordinator's transport seam on a
Flower ``Grid`` (in-memory in the simulation engine, gRPC in deployment);
the ServerApp's main function waits for the sites, then hands the study to
:func:`genofed.coordinator.runner.run_study`.

A study job reaches the ServerApp either directly (``make_server_app``, used
by the simulation runner in the same process) or through the run config
(``study-path``, ``out-dir``, ``expected-sites``: ``flwr run`` in deployment).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from flwr.app import Context, Message, MessageType
from flwr.serverapp import Grid, ServerApp

from genofed.common.errors import GenoFedError, IntegrityError
from genofed.common.records import reply_from_recorddict, request_to_recorddict
from genofed.common.signing import StudySignature
from genofed.common.study import Study, load_study
from genofed.coordinator.runner import ProgressFn, StudyOutcome, run_study
from genofed.coordinator.transport import Incoming, Outgoing

log = logging.getLogger("genofed.coordinator")

#: How long the ServerApp waits for the expected sites to connect.
DEFAULT_CONNECT_TIMEOUT_S = 120.0
_POLL_S = 0.2


class GridTransport:
    """The coordinator's transport on a Flower Grid."""

    def __init__(self, grid: Grid) -> None:
        self._grid = grid

    def nodes(self) -> list[int]:
        return sorted(self._grid.get_node_ids())

    def wait_for_nodes(
        self, expected: int, timeout: float, clock: Callable[[], float] = time.monotonic
    ) -> list[int]:
        """Wait until ``expected`` nodes are connected or ``timeout`` passes."""
        deadline = clock() + timeout
        nodes = self.nodes()
        while len(nodes) < expected and clock() < deadline:
            time.sleep(_POLL_S)
            nodes = self.nodes()
        return nodes

    def exchange(self, outgoing: Mapping[int, Outgoing], *, timeout: float) -> dict[int, Incoming]:
        messages = [
            Message(
                request_to_recorddict(o.request, o.inputs),
                dst_node_id=node,
                message_type=MessageType.QUERY,
            )
            for node, o in outgoing.items()
        ]
        result: dict[int, Incoming] = {}
        for msg in self._grid.send_and_receive(messages, timeout=timeout):
            node = msg.metadata.src_node_id
            if msg.has_error():
                result[node] = Incoming(None, error=f"site app failed: {msg.error.reason}")
                continue
            try:
                reply, arrays = reply_from_recorddict(msg.content)
            except IntegrityError:
                result[node] = Incoming(None, error="reply failed its integrity check")
                continue
            result[node] = Incoming(reply, arrays)
        for node in outgoing:
            result.setdefault(node, Incoming(None, error=f"no reply within {timeout:.0f} s"))
        return result


@dataclass(frozen=True)
class StudyJob:
    """Everything the ServerApp needs to run one study."""

    study: Study
    out: Path
    engine: str
    expected_sites: int
    overwrite: bool = False
    progress: ProgressFn | None = None
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S
    signature: StudySignature | None = None  # the analyst's, sent with every request


def run_job(job: StudyJob, grid: Grid) -> StudyOutcome:
    """Wait for the sites, then run the study on ``grid``."""
    transport = GridTransport(grid)
    nodes = transport.wait_for_nodes(job.expected_sites, job.connect_timeout)
    if len(nodes) < job.expected_sites:
        raise GenoFedError(
            f"only {len(nodes)} of {job.expected_sites} sites connected within "
            f"{job.connect_timeout:.0f} s"
        )
    return run_study(
        job.study,
        transport,
        job.out,
        engine=job.engine,
        overwrite=job.overwrite,
        progress=job.progress,
        signature=job.signature,
    )


def make_server_app(job: StudyJob, outcomes: list[StudyOutcome]) -> ServerApp:
    """A ServerApp bound to one job; its outcome is appended to ``outcomes``."""
    server_app = ServerApp()

    @server_app.main()
    def _main(grid: Grid, context: Context) -> None:
        outcomes.append(run_job(job, grid))

    return server_app


app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Deployment entry point: the job comes from the run config."""
    cfg = context.run_config
    job = StudyJob(
        study=load_study(Path(str(cfg["study-path"]))),
        out=Path(str(cfg["out-dir"])),
        engine="deployment",
        expected_sites=int(cfg.get("expected-sites", 1)),
        overwrite=bool(cfg.get("overwrite", False)),
    )
    outcome = run_job(job, grid)
    log.info("study %s finished: %s", outcome.study.name, outcome.out)


__all__ = ["GridTransport", "StudyJob", "app", "make_server_app", "run_job"]
