"""A secure-sum round on a Flower Grid: Flower's ``SecAggPlusWorkflow``, driven for one vector.

``exact`` and ``distributed-dp`` studies sum the sites' genotype counts with
SecAgg+ so that the coordinator learns only the sum
(:mod:`genofed.common.secure_sum` has the settings that make integer sums
exact). The workflow is Flower's, unchanged; GenoFed supplies

* a :class:`~flwr.server.strategy.Strategy` whose fit instructions carry each
  site's GenoFed request (study, variant plan) and which keeps the unmasked
  result instead of averaging it into a model;
* a Grid wrapper (:class:`_WatchedGrid`) that pushes and pulls with a short
  poll (``Grid.send_and_receive`` sleeps 3 s between pulls), applies the
  site timeout and reads each site's GenoFed reply (status, receipt, facts)
  from the collect-masked-vectors stage.

Sites that drop out: a site that refuses, fails or stays silent at a stage
before its masked vector is in is left out of the round, as SecAgg+ allows:
the other sites' shares of its key remove its masks, and the sum covers the
sites that sent a masked vector. The result names the sites left out
(:attr:`SecureExchange.failed`) and the sum is over the rest, so the runner
applies the study's ``min_sites`` as for any site that drops out (a multi-round
analysis runs again without it). The coordinator never asks for the shares
that unmask a sum of fewer than :data:`MIN_SECURE_SITES` sites (each site
checks this too), and a round that SecAgg+ cannot finish (fewer sites left
than its reconstruction threshold) gives no sum.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.common import (
    EvaluateIns,
    EvaluateRes,
    FitIns,
    FitRes,
    Parameters,
    Scalar,
    bytes_to_ndarray,
    parameters_to_ndarrays,
)
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage
from flwr.server import ServerConfig
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.compat.grid_client_proxy import GridClientProxy
from flwr.server.compat.legacy_context import LegacyContext
from flwr.server.strategy import Strategy
from flwr.server.workflow import SecAggPlusWorkflow
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD
from flwr.server.workflow.constant import Key as WorkflowKey
from flwr.serverapp import Grid

from genofed.common.errors import GenoFedError, IntegrityError
from genofed.common.messages import Status
from genofed.common.secure_sum import (
    MIN_SECURE_SITES,
    PROTO_FIELD,
    exact_sum,
    masked_arrays,
    request_to_config,
    secaggplus_settings,
)
from genofed.common.wire.proto import reply_from_bytes
from genofed.common.wire.records import REPLY_KEY, array_manifest
from genofed.coordinator.transport import Incoming, Outgoing, SecureExchange

log = logging.getLogger("genofed.coordinator")
_POLL_S = 0.1


class _Abort(Exception):
    def __init__(self, incoming: dict[int, Incoming], failed: tuple[int, ...]) -> None:
        super().__init__("secure-sum round stopped")
        self.incoming = incoming
        self.failed = failed


def secure_exchange(
    grid: Grid, outgoing: Mapping[int, Outgoing], *, timeout: float
) -> SecureExchange:
    """Sum the vectors of the sites in ``outgoing`` with SecAgg+ (module docstring: dropouts)."""
    nodes = sorted(outgoing)
    settings = secaggplus_settings(len(nodes))
    strategy = _SumStrategy(
        grid, {n: request_to_config(o.request, o.inputs) for n, o in outgoing.items()}
    )
    watched = _WatchedGrid(grid, nodes, timeout)
    context = LegacyContext(
        Context(run_id=0, node_id=0, node_config={}, state=RecordDict(), run_config={}),
        config=ServerConfig(num_rounds=1),
        strategy=strategy,
    )
    context.state.config_records[MAIN_CONFIGS_RECORD] = ConfigRecord({WorkflowKey.CURRENT_ROUND: 1})
    context.state.array_records[MAIN_PARAMS_RECORD] = ArrayRecord()
    workflow = SecAggPlusWorkflow(**settings, timeout=timeout)  # type: ignore[arg-type]
    started = time.monotonic()
    try:
        workflow(watched, context)  # type: ignore[arg-type]
    except _Abort as exc:
        return SecureExchange(exc.incoming, None, exc.failed)
    summed_over = watched.summed_over()
    incoming = watched.incoming(nodes)
    if strategy.mean is None:
        if watched.dropped:
            return SecureExchange(incoming, None, tuple(sorted(watched.dropped)))
        raise GenoFedError("SecAgg+ did not unmask the sum; see the coordinator's log")
    log.info("secure sum of %d sites in %.1f s", len(summed_over), time.monotonic() - started)
    mean = strategy.mean
    if len(mean) != 1:
        raise IntegrityError()
    failed = tuple(n for n in sorted(watched.dropped) if n not in summed_over)
    return SecureExchange(incoming, exact_sum(mean[0], len(summed_over)), failed)


class _SumStrategy(Strategy):
    """One fit round whose instructions carry GenoFed requests; keeps the unmasked mean."""

    def __init__(self, grid: Grid, configs: Mapping[int, dict[str, bytes]]) -> None:
        self._grid = grid
        self._configs = configs
        self.mean: list[np.ndarray] | None = None

    def initialize_parameters(self, client_manager: ClientManager) -> Parameters | None:
        return None

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        empty = Parameters(tensors=[], tensor_type="numpy.ndarray")
        return [
            (GridClientProxy(node, self._grid, 0), FitIns(empty, dict(config)))
            for node, config in sorted(self._configs.items())
        ]

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[tuple[ClientProxy, FitRes] | BaseException],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        if failures or not results:
            return None, {}
        # SecAgg+ gives every result the same unmasked parameters
        self.mean = parameters_to_ndarrays(results[0][1].parameters)
        return results[0][1].parameters, {}

    def configure_evaluate(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, EvaluateIns]]:
        return []

    def aggregate_evaluate(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, EvaluateRes]],
        failures: list[tuple[ClientProxy, EvaluateRes] | BaseException],
    ) -> tuple[float | None, dict[str, Scalar]]:
        return None, {}

    def evaluate(
        self, server_round: int, parameters: Parameters
    ) -> tuple[float, dict[str, Scalar]] | None:
        return None


class _WatchedGrid:
    """The workflow's Grid: fast polling, the site timeout, GenoFed replies, dropouts.

    A site that refuses, fails or stays silent at a stage is recorded in
    :attr:`dropped` and its message withheld from the workflow, which then
    goes on without it as SecAgg+ allows. The unmask stage is not sent when
    fewer than :data:`MIN_SECURE_SITES` masked vectors are in (:class:`_Abort`).
    """

    def __init__(self, grid: Grid, nodes: list[int], timeout: float) -> None:
        self._grid = grid
        self._nodes = nodes
        self._timeout = timeout
        #: node -> its GenoFed reply from the collect-masked-vectors stage
        self.replies: dict[int, Incoming] = {}
        #: node -> why it left the round (its first failure)
        self.dropped: dict[int, Incoming] = {}

    def summed_over(self) -> set[int]:
        """The nodes whose masked vector is in the sum."""
        return {
            n
            for n, got in self.replies.items()
            if got.reply is not None and got.reply.status == Status.OK and got.arrays is not None
        }

    def incoming(self, nodes: Iterable[int]) -> dict[int, Incoming]:
        """Every node's outcome: its GenoFed reply, or why it left the round."""
        stopped = Incoming(None, error="the secure-sum round was stopped")
        out = dict.fromkeys(nodes, stopped)
        out.update(self.replies)
        out.update({n: got for n, got in self.dropped.items() if n not in self.summed_over()})
        return out

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> list[Message]:
        messages = list(messages)
        stage = _stage(messages[0]) if messages else ""
        if stage == Stage.UNMASK and len(self.summed_over()) < MIN_SECURE_SITES:
            # the shares would unmask a sum of too few sites: a site could subtract its own
            raise _Abort(self.incoming(self._nodes), tuple(sorted(self.dropped)))
        expected = {m.metadata.dst_node_id for m in messages}
        pending = set(self._grid.push_messages(messages))
        deadline = time.monotonic() + self._timeout
        got: list[Message] = []
        while pending and time.monotonic() < deadline:
            pulled = list(self._grid.pull_messages(pending))
            got.extend(pulled)
            pending.difference_update(m.metadata.reply_to_message_id for m in pulled)
            if pending:
                time.sleep(_POLL_S)
        return self._check(stage, expected, got)

    def _check(self, stage: str, expected: set[int], got: list[Message]) -> list[Message]:
        """The messages the workflow may use; the rest recorded as dropouts."""
        kept: list[Message] = []
        seen = set()
        for msg in got:
            node = msg.metadata.src_node_id
            seen.add(node)
            if stage == Stage.COLLECT_MASKED_VECTORS:
                incoming = _collected(msg)
                self.replies[node] = incoming
                if incoming.reply is None or incoming.reply.status != Status.OK:
                    self._drop(node, incoming, stage)
                    continue
            elif msg.has_error():
                self._drop(
                    node,
                    Incoming(
                        None, error=f"site app failed at SecAgg+ stage {stage}: {msg.error.reason}"
                    ),
                    stage,
                )
                continue
            kept.append(msg)
        for node in sorted(expected - seen):
            self._drop(
                node,
                Incoming(
                    None, error=f"no reply at SecAgg+ stage {stage} within {self._timeout:.0f} s"
                ),
                stage,
            )
        return kept

    def _drop(self, node: int, why: Incoming, stage: str) -> None:
        if node not in self.dropped:
            self.dropped[node] = why
            detail = why.error or (why.reply.reason_code if why.reply else "")
            log.warning("node %d left the secure-sum round at stage %s: %s", node, stage, detail)

    def __getattr__(self, name: str) -> object:
        return getattr(self._grid, name)


def _stage(msg: Message) -> str:
    record = msg.content.config_records.get(RECORD_KEY_CONFIGS)
    return str(record.get(Key.STAGE, "")) if record is not None else ""


def _collected(msg: Message) -> Incoming:
    """A site's GenoFed reply and masked vector from the collect-masked-vectors stage."""
    if msg.has_error():
        return Incoming(None, error=f"site app failed: {msg.error.reason}")
    record = msg.content.config_records.get(REPLY_KEY)
    raw = record.get(PROTO_FIELD) if record is not None else None
    if not isinstance(raw, bytes):
        return Incoming(None, error="the site sent no GenoFed reply with its masked vector")
    try:
        reply = reply_from_bytes(raw)
    except IntegrityError:
        return Incoming(None, error="reply failed its integrity check")
    if reply.status != Status.OK:
        return Incoming(reply)
    configs = msg.content.config_records.get(RECORD_KEY_CONFIGS)
    masked = configs.get(Key.MASKED_PARAMETERS) if configs is not None else None
    if not isinstance(masked, list):
        return Incoming(None, error="the site's reply has no masked vector")
    arrays = masked_arrays([bytes_to_ndarray(b) for b in masked])  # type: ignore[arg-type]
    if array_manifest(arrays) != reply.arrays:
        return Incoming(None, error="reply failed its integrity check")
    return Incoming(reply, arrays)


__all__ = ["secure_exchange"]
