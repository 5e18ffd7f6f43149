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
  site timeout, reads each site's GenoFed reply (status, receipt, facts)
  from the collect-masked-vectors stage, and stops the round when any site
  refuses, fails or stays silent at any stage.

The round is all or nothing: SecAgg+ could unmask without a site that
dropped out, but the sum would then silently lack that site's counts (and,
in ``distributed-dp``, its noise share), so the coordinator does not use it.
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
    """Sum the ``genotype_counts`` arrays of the sites in ``outgoing`` with SecAgg+."""
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
    if strategy.mean is None or set(watched.replies) != set(nodes):
        raise GenoFedError("SecAgg+ did not unmask the sum; see the coordinator's log")
    log.info("secure sum of %d sites in %.1f s", len(nodes), time.monotonic() - started)
    mean = strategy.mean
    if len(mean) != 1:
        raise IntegrityError()
    return SecureExchange(dict(watched.replies), exact_sum(mean[0], len(nodes)))


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
    """The workflow's Grid: fast polling, the site timeout, GenoFed replies, all or nothing."""

    def __init__(self, grid: Grid, nodes: list[int], timeout: float) -> None:
        self._grid = grid
        self._nodes = nodes
        self._timeout = timeout
        #: node -> its GenoFed reply from the collect-masked-vectors stage
        self.replies: dict[int, Incoming] = {}

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> list[Message]:
        messages = list(messages)
        stage = _stage(messages[0]) if messages else ""
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
        self._check(stage, expected, got)
        return got

    def _check(self, stage: str, expected: set[int], got: list[Message]) -> None:
        failed: dict[int, Incoming] = {}
        seen = set()
        for msg in got:
            node = msg.metadata.src_node_id
            seen.add(node)
            if stage == Stage.COLLECT_MASKED_VECTORS:
                incoming = _collected(msg)
                self.replies[node] = incoming
                if incoming.reply is None or incoming.reply.status != Status.OK:
                    failed[node] = incoming
            elif msg.has_error():
                failed[node] = Incoming(
                    None, error=f"site app failed at SecAgg+ stage {stage}: {msg.error.reason}"
                )
        for node in expected - seen:
            failed[node] = Incoming(
                None, error=f"no reply at SecAgg+ stage {stage} within {self._timeout:.0f} s"
            )
        if failed:
            stopped = Incoming(None, error="the secure-sum round was stopped")
            everyone = dict.fromkeys(expected, stopped)
            everyone.update(self.replies)
            everyone.update(failed)
            raise _Abort(everyone, tuple(sorted(failed)))

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
