"""Flower ServerApp: the coordinator's adapter to Flower's Message API.

:class:`GridTransport` implements the coordinator's transport seam on a
Flower ``Grid`` (in-memory in the simulation engine, gRPC in deployment);
the ServerApp's main function waits for the sites, then hands the study to
:func:`genofed.coordinator.runner.run_study`.

A study job reaches the ServerApp either directly (``make_server_app``, used
by the simulation runner in the same process) or through the run config
(``study-text`` or ``study-path``, ``out-dir``, ``expected-sites``, ``run-id``:
``genofed study run --superlink`` via ``flwr run`` in deployment; the keys
are declared in :mod:`genofed.common.appbundle`).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from flwr.app import Context, Message, MessageType
from flwr.serverapp import Grid, ServerApp

from genofed.common.errors import ConfigError, GenoFedError, IntegrityError, TooFewSites
from genofed.common.signing import StudySignature, is_signed_study_file, load_signed_study
from genofed.common.study import Study, load_study
from genofed.common.wire.records import reply_from_recorddict, request_to_recorddict
from genofed.coordinator.deploy.nodes import DATABASE, registered_names
from genofed.coordinator.deploy.results_transfer import MAX_ARCHIVE_BYTES, archive_lines, pack
from genofed.coordinator.deploy.superlink import (
    CONFIG_ENV,
    RESULTS_DIR,
    CoordinatorConfig,
    load_coordinator_config,
)
from genofed.coordinator.events import Event, event_line
from genofed.coordinator.receipt_check import ReceiptCheck
from genofed.coordinator.runner import (
    DEFAULT_TIMEOUT_S,
    ProgressFn,
    StudyOutcome,
    outcome_doc,
    run_study,
)
from genofed.coordinator.secure_round import secure_exchange
from genofed.coordinator.study_files import ANYWHERE, StudyFiles
from genofed.coordinator.transport import Incoming, Outgoing, ReplyFn, SecureExchange

log = logging.getLogger("genofed.coordinator")

#: How long the ServerApp waits for the expected sites to connect.
DEFAULT_CONNECT_TIMEOUT_S = 120.0
#: How long the coordinator waits for one site's reply in a round.
DEFAULT_SITE_TIMEOUT_S = DEFAULT_TIMEOUT_S
_POLL_S = 0.1


class StudyCancelled(GenoFedError):
    """The study was cancelled (the analyst pressed Ctrl-C) while the ServerApp waited."""

    def __init__(self) -> None:
        super().__init__("the study was cancelled")


class GridTransport:
    """The coordinator's transport on a Flower Grid.

    ``cancel``, when set, makes every wait stop with :class:`StudyCancelled`
    (the simulation engine runs the ServerApp in a thread, which Ctrl-C does
    not reach).
    """

    def __init__(self, grid: Grid, cancel: threading.Event | None = None) -> None:
        self._grid = grid
        self._cancel = cancel

    def _check_cancel(self) -> None:
        if self._cancel is not None and self._cancel.is_set():
            raise StudyCancelled

    def nodes(self) -> list[int]:
        return sorted(self._grid.get_node_ids())

    def wait_for_nodes(
        self, expected: int, timeout: float, clock: Callable[[], float] = time.monotonic
    ) -> list[int]:
        """Wait until ``expected`` nodes are connected or ``timeout`` passes."""
        deadline = clock() + timeout
        nodes = self.nodes()
        while len(nodes) < expected and clock() < deadline:
            self._check_cancel()
            time.sleep(_POLL_S)
            nodes = self.nodes()
        return nodes

    def exchange(self, outgoing: Mapping[int, Outgoing], *, timeout: float) -> dict[int, Incoming]:
        return self.exchange_streaming(outgoing, timeout=timeout, on_reply=lambda _n, _i: None)

    def exchange_streaming(
        self, outgoing: Mapping[int, Outgoing], *, timeout: float, on_reply: ReplyFn
    ) -> dict[int, Incoming]:
        """Send, then say each reply to ``on_reply`` as it arrives (progress displays)."""
        # push, then poll every _POLL_S: Grid.send_and_receive sleeps 3 s between pulls
        messages = [
            Message(
                request_to_recorddict(o.request, o.inputs),
                dst_node_id=node,
                message_type=MessageType.QUERY,
            )
            for node, o in outgoing.items()
        ]
        result: dict[int, Incoming] = {}
        for msg in self._send_and_receive(messages, timeout):
            node = msg.metadata.src_node_id
            result[node] = _incoming(msg)
            on_reply(node, result[node])
        for node in outgoing:
            result.setdefault(node, Incoming(None, error=f"no reply within {timeout:.0f} s"))
        return result

    def secure_exchange(
        self, outgoing: Mapping[int, Outgoing], *, timeout: float
    ) -> SecureExchange:
        """A secure-sum round with Flower's SecAgg+ (``exact``, ``distributed-dp``)."""
        return secure_exchange(self._grid, outgoing, timeout=timeout)

    def _send_and_receive(self, messages: list[Message], timeout: float) -> Iterator[Message]:
        """Each reply as it arrives, until all have come or ``timeout`` passes."""
        pending = set(self._grid.push_messages(messages))
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            self._check_cancel()
            got = list(self._grid.pull_messages(pending))
            yield from got
            pending.difference_update(m.metadata.reply_to_message_id for m in got)
            if pending:
                time.sleep(_POLL_S)


def _incoming(msg: Message) -> Incoming:
    """A site's reply message decoded, or the error it carries."""
    if msg.has_error():
        return Incoming(None, error=f"site app failed: {msg.error.reason}")
    try:
        reply, arrays = reply_from_recorddict(msg.content)
    except IntegrityError:
        return Incoming(None, error="reply failed its integrity check")
    return Incoming(reply, arrays)


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
    run_id: str | None = None
    site_timeout: float = DEFAULT_SITE_TIMEOUT_S
    receipts: ReceiptCheck | None = None  # checks each reply's receipt (receipt_check.py)
    study_files: StudyFiles = ANYWHERE  # where the study's files may be read (study_files.py)
    cancel: threading.Event | None = None  # set: stop waiting for sites (GridTransport)
    #: node ID -> registered site name, read once the sites connected (deployment)
    node_names: Callable[[], Mapping[int, str]] | None = None


def run_job(job: StudyJob, grid: Grid) -> StudyOutcome:
    """Wait for the sites, then run the study on ``grid``."""
    transport = GridTransport(grid, job.cancel)
    nodes = transport.wait_for_nodes(job.expected_sites, job.connect_timeout)
    if len(nodes) < job.expected_sites:
        raise TooFewSites(
            f"only {len(nodes)} of the {job.expected_sites} sites expected (--sites) connected "
            f"within {job.connect_timeout:.0f} s",
            key="--sites",
            hint="check that every site's `genofed-site up` is running and registered "
            "(`genofed coordinator register-site`), or pass --sites with fewer sites",
        )
    return run_study(
        job.study,
        transport,
        job.out,
        engine=job.engine,
        overwrite=job.overwrite,
        progress=job.progress,
        signature=job.signature,
        run_id=job.run_id,
        timeout=job.site_timeout,
        receipts=job.receipts,
        study_files=job.study_files,
        node_names=job.node_names() if job.node_names is not None else None,
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
    """Deployment entry point: the job comes from the run config.

    Runs in the SuperLink's ServerApp process on the coordinator host, so
    ``out-dir`` is a path there. Its standard output is what ``flwr run
    --stream`` (and so ``genofed study run --superlink``) shows: one
    ``genofed-progress:`` JSON line per event (:mod:`.events`), then one
    ``genofed-result:`` JSON line (``status`` ok, or failed with the error's
    class, ``InternalError`` for a bug, and its message).
    """
    try:
        outcome = run_job(job_from_run_config(context.run_config), grid)
    except Exception as exc:  # the submitter maps the error's class to its exit code
        failed = {"status": "failed", "error": type(exc).__name__, "message": str(exc)}
        if isinstance(exc, TooFewSites):
            failed["key"] = exc.key
        elif not isinstance(exc, GenoFedError):
            failed["error"] = "InternalError"
            failed["message"] = f"{type(exc).__name__}: {exc} (a bug; see the coordinator's log)"
        print(result_line(failed), flush=True)
        raise
    doc: dict[str, object] = {"status": "ok", **outcome_doc(outcome)}
    if bool(context.run_config.get("return-results", False)):
        archive = pack(outcome.out)
        if len(archive.data) <= MAX_ARCHIVE_BYTES:
            for line in archive_lines(archive):
                print(line, flush=True)
            doc["results_archive"] = archive.manifest()
        else:
            doc["results_archive"] = None
            doc["results_archive_bytes"] = len(archive.data)
    print(result_line(doc), flush=True)
    log.info("study %s finished: %s", outcome.study.name, outcome.out)


def job_from_run_config(cfg: Mapping[str, object]) -> StudyJob:
    """The :class:`StudyJob` that ``genofed study run --superlink`` put in the run config.

    ``study-text`` carries the study file itself (``study-suffix`` says
    whether it is a ``.toml`` study or a signed ``.json`` one), so the
    analyst's study need not be on the coordinator host; ``study-path``
    names a file on the coordinator host instead.
    """
    signature: StudySignature | None = None
    text = str(cfg.get("study-text", ""))
    if text:
        suffix = ".json" if str(cfg.get("study-suffix", ".toml")) == ".json" else ".toml"
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"study{suffix}"
            path.write_text(text, encoding="utf-8")
            study, signature = _load_study_file(path)
    else:
        study, signature = _load_study_file(Path(str(cfg["study-path"])))
    run_id = str(cfg.get("run-id", "")) or None
    out = str(cfg.get("out-dir", ""))
    return StudyJob(
        study=study,
        out=Path(out) if out else coordinator_results_dir(run_id),
        engine="deployment",
        expected_sites=int(str(cfg.get("expected-sites", 1))),
        overwrite=bool(cfg.get("overwrite", False)),
        progress=_print_progress,
        connect_timeout=float(str(cfg.get("connect-timeout", DEFAULT_CONNECT_TIMEOUT_S))),
        signature=signature,
        run_id=run_id,
        site_timeout=float(str(cfg.get("site-timeout", DEFAULT_SITE_TIMEOUT_S))),
        receipts=deployment_receipts(),
        study_files=deployment_study_files(),
        node_names=deployment_node_names,
    )


def _coordinator_config(needed_for: str) -> CoordinatorConfig:
    """The coordinator.toml that ``genofed coordinator up`` names in the ServerApp's environment."""
    path = os.environ.get(CONFIG_ENV, "")
    if not path:
        raise ConfigError(
            f"{CONFIG_ENV} is not set: this ServerApp was not started by "
            f"`genofed coordinator up`, so it does not know {needed_for}",
            hint="start the coordinator with `genofed coordinator up --config coordinator.toml`",
        )
    return load_coordinator_config(Path(path))


def coordinator_results_dir(run_id: str | None) -> Path:
    """``STATE_DIR/results/RUN_ID`` on the coordinator host: the consortium's copy."""
    if not run_id:
        raise ConfigError("the run config has neither out-dir nor run-id")
    config = _coordinator_config("where to keep results")
    return config.state_dir.resolve() / RESULTS_DIR / run_id


def deployment_receipts() -> ReceiptCheck:
    """A fresh receipt check from coordinator.toml's ``[receipts]``.

    ``genofed coordinator up`` names its config file in the environment of
    the SuperLink, and so of the ServerApps it runs; without it the study is
    refused rather than run with unchecked receipts.
    """
    template = _coordinator_config("the site audit keys to check receipts with").receipts
    return ReceiptCheck(template.keys, template.mode)


def deployment_study_files() -> StudyFiles:
    """The folders of coordinator.toml's ``[studies] file_dirs`` (none: no study file is read)."""
    config = _coordinator_config("which folders a study may read files from")
    return StudyFiles.configured(config.study_file_dirs, config.path)


def deployment_node_names() -> dict[int, str]:
    """Node ID -> the name each site was registered under, from the SuperLink's database."""
    config = _coordinator_config("the registered site names")
    return registered_names(config.state_dir / DATABASE)


def _load_study_file(path: Path) -> tuple[Study, StudySignature | None]:
    if is_signed_study_file(path):
        return load_signed_study(path)
    return load_study(path), None


PROGRESS_PREFIX = "genofed-progress: "
RESULT_PREFIX = "genofed-result: "


def _print_progress(event: Event) -> None:
    """One ``genofed-progress:`` line of JSON per event (:func:`event_line`)."""
    print(f"{PROGRESS_PREFIX}{event_line(event)}", flush=True)


def result_line(doc: Mapping[str, object]) -> str:
    return RESULT_PREFIX + json.dumps(doc, sort_keys=True, default=str)


__all__ = [
    "PROGRESS_PREFIX",
    "RESULT_PREFIX",
    "GridTransport",
    "StudyCancelled",
    "StudyJob",
    "app",
    "deployment_node_names",
    "deployment_receipts",
    "job_from_run_config",
    "make_server_app",
    "outcome_doc",
    "result_line",
    "run_job",
]
