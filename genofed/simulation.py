"""Run a study on Flower's simulation engine: the embedded default.

A composition root: it binds the coordinator's ServerApp and the site agent's
ClientApp in one process tree (Ray runs the ClientApps), one virtual
SuperNode per site directory, so a study runs on a laptop with no servers to
start. The ClientApp and ServerApp are the same code that runs in
deployment; only the Grid differs.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from flwr.app import Context, Message
from flwr.clientapp import ClientApp
from flwr.simulation import run_simulation

from genofed.common.errors import GenoFedError, InputError
from genofed.common.signing import StudySignature
from genofed.common.study import Study
from genofed.common.supervise import absolute_pythonpath
from genofed.coordinator.app import DEFAULT_SITE_TIMEOUT_S, StudyJob, make_server_app
from genofed.coordinator.receipt_check import WARN, ReceiptCheck, load_audit_key
from genofed.coordinator.runner import ProgressFn, StudyOutcome, check_enough_sites
from genofed.coordinator.study_files import ANYWHERE, StudyFiles
from genofed.site_agent import app as site_app
from genofed.site_agent.audit.log import AuditPaths
from genofed.site_agent.secure_release import answer_secure
from genofed.site_agent.sitedir import load_site

#: Ray settings for a laptop: one CPU per virtual site, no dashboard.
RAY_BACKEND_CONFIG = {
    "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
    "init_args": {"include_dashboard": False, "log_to_driver": False},
}


def make_client_app(site_dirs: Sequence[Path]) -> ClientApp:
    """A ClientApp whose virtual node ``i`` serves ``site_dirs[i]``."""
    dirs = [str(d) for d in site_dirs]
    client_app = ClientApp()

    @client_app.query()
    def _query(msg: Message, context: Context) -> Message:
        return site_app.answer(msg, Path(dirs[int(context.node_config["partition-id"])]))

    @client_app.train()
    def _train(msg: Message, context: Context) -> Message:  # SecAgg+ stages (secure_release.py)
        return answer_secure(msg, context, Path(dirs[int(context.node_config["partition-id"])]))

    return client_app


def simulation_receipts(site_dirs: Sequence[Path]) -> ReceiptCheck:
    """Receipts checked against each site directory's ``state/audit.pub``, in ``warn`` mode.

    The simulation runs on this machine's own site directories, so a receipt
    that does not verify is a warning (and noted in provenance.json), not a
    refusal; deployment refuses (coordinator.toml ``[receipts]``).
    """
    keys = {}
    for d in site_dirs:
        pub = AuditPaths.of(d).pub
        if pub.is_file():
            keys[load_site(d).name] = load_audit_key(pub)
    return ReceiptCheck(keys, WARN)


def run_simulated_study(
    study: Study,
    site_dirs: Sequence[Path],
    out: Path,
    *,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
    verbose: bool = False,
    signature: StudySignature | None = None,
    site_timeout: float = DEFAULT_SITE_TIMEOUT_S,
    study_files: StudyFiles = ANYWHERE,
) -> StudyOutcome:
    """Run ``study`` over the given site directories; results go to ``out``.

    ``study_files``: where the files the study names may be read
    (:mod:`genofed.coordinator.study_files`).

    ``site_timeout``: seconds to wait for a site's reply before it drops out
    (or the study stops, when ``min_sites`` does not allow going on without it).
    """
    if not site_dirs:
        raise InputError("no site directories given", hint="pass --site DIR once per site")
    resolved = [Path(d).resolve() for d in site_dirs]
    for d in resolved:
        load_site(d)  # a clear error now rather than inside a Ray worker
    if len(set(resolved)) != len(resolved):
        raise InputError(
            "the same site directory is given twice",
            hint="give each site's directory once: --site DIR per site",
        )
    check_enough_sites(study, len(resolved))  # before Ray starts
    outcomes: list[StudyOutcome] = []
    cancel = threading.Event()  # Ctrl-C reaches this thread, not the ServerApp's
    job = StudyJob(
        study=study,
        out=out.resolve(),
        engine="simulation",
        expected_sites=len(resolved),
        overwrite=overwrite,
        progress=progress,
        signature=signature,
        site_timeout=site_timeout,
        receipts=simulation_receipts(resolved),
        study_files=study_files,
        cancel=cancel,
    )
    flwr_logger = logging.getLogger("flwr")
    level = flwr_logger.level
    if not verbose:
        flwr_logger.setLevel(logging.ERROR)
    saved_env = dict(os.environ)
    saved_cwd = Path.cwd()
    private = None
    if study_files.roots is not None:  # every path is absolute now (ANYWHERE: relative names)
        # Ray puts the driver's working directory on its workers' sys.path: a GenoFed
        # checkout there would be imported in place of the installed GenoFed
        if "PYTHONPATH" in os.environ:  # relative entries keep their meaning
            os.environ["PYTHONPATH"] = absolute_pythonpath(dict(os.environ))["PYTHONPATH"]
        private = tempfile.TemporaryDirectory(prefix="genofed-sim-")
        os.chdir(private.name)
    try:
        run_simulation(
            server_app=make_server_app(job, outcomes),
            client_app=make_client_app(resolved),
            num_supernodes=len(resolved),
            backend_config=RAY_BACKEND_CONFIG,  # type: ignore[arg-type]
        )
    except KeyboardInterrupt:
        cancel.set()  # the ServerApp thread stops at its next poll and removes its staging
        raise
    except RuntimeError as exc:
        cause = exc.__cause__
        if isinstance(cause, GenoFedError):
            raise cause from None
        raise
    finally:
        flwr_logger.setLevel(level)
        _restore_environ(saved_env)
        if private is not None:
            os.chdir(saved_cwd)
            private.cleanup()
    if not outcomes:
        raise GenoFedError("the simulation ended without a study result; rerun with --verbose")
    return outcomes[0]


def _restore_environ(saved: Mapping[str, str]) -> None:
    """Undo what Ray wrote into this process's environment (``PYTHONPATH`` and ``RAY_*``).

    Ray's driver exports the venv's site-packages as ``PYTHONPATH``; left in
    place it leaks into every later subprocess, e.g. a system tool such as
    Debian's ``docker-compose`` then imports this venv's packages and fails.
    """
    for key in set(os.environ) - set(saved):
        del os.environ[key]
    for key, value in saved.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


__all__ = ["make_client_app", "run_simulated_study", "simulation_receipts"]
