"""``genofed coordinator up`` / ``register-site``: the consortium's Flower SuperLink.

``coordinator.toml`` (relative paths are relative to the file)::

    [coordinator]
    fleet_address = "0.0.0.0:9092"      # sites connect here: gRPC (grpc-rere), TLS, node auth
    control_address = "127.0.0.1:9093"  # `genofed study run --superlink` and register-site (HTTPS)
    state_dir = "state"                 # SuperLink database and logs

    [tls]
    ca_cert = "certs/ca.pem"
    server_cert = "certs/server.pem"
    server_key = "certs/server.key"

    [studies]                           # see genofed.coordinator.study_files
    file_dirs = ["scoring"]            # folders whose files a study may name (scoring_file);
                                        # none by default: studies naming a file are refused

    [receipts]                          # see genofed.coordinator.receipt_check
    mode = "require"                    # refuse a reply whose receipt does not verify
    [receipts.audit_keys]               # each site's state/audit.pub
    site-a = "keys/site-a.audit.pub"

The SuperLink runs as a child process with TLS on every API and SuperNode
authentication on (only registered node keys may connect); its ServerApps
run in the SuperLink's own SuperExec on this host, so study results are
written here. The Control API address is also where the ServerApp runtime
connects, over loopback; keep it on 127.0.0.1 unless analysts must submit
from elsewhere: open-source Flower does not authenticate Control API users,
so whoever reaches it can submit runs and register nodes.

Plaintext is refused unless ``--insecure`` is given, which also turns node
authentication off (Flower requires TLS for it) and is announced loudly.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from genofed.common.errors import ConfigError, GenoFedError, InputError, UnreachableError
from genofed.common.supervise import (
    absolute_pythonpath,
    adopt_orphans,
    start_child,
    stop_descendants,
    supervise,
)
from genofed.common.tomlconfig import bare_message, check_keys, get_typed, load_toml
from genofed.coordinator.deploy.nodes import DATABASE, NodeWatch
from genofed.coordinator.receipt_check import REQUIRE, ReceiptCheck, receipts_from_toml

DEFAULT_FLEET_ADDRESS = "0.0.0.0:9092"
DEFAULT_CONTROL_ADDRESS = "127.0.0.1:9093"
DEFAULT_STATE_DIR = "state"
#: Name of the SuperLink connection GenoFed writes into a private ``FLWR_HOME``.
CONNECTION = "genofed"
#: Environment variable naming coordinator.toml for the ServerApp (receipt keys and mode).
CONFIG_ENV = "GENOFED_COORDINATOR_CONFIG"

INSECURE_WARNING = (
    "WARNING: --insecure: the coordinator accepts PLAINTEXT connections and ANY node "
    "(no TLS, no node authentication). Study requests and site replies cross the "
    "network unencrypted. Use only on a test machine with synthetic data."
)

#: The coordinator's copy of each study's results: ``STATE_DIR/results/RUN_ID``.
RESULTS_DIR = "results"
#: A results folder still being written (or replaced): see :func:`remove_partial_results`.
_STAGING = re.compile(r"\..+\.(?:partial|old)-[0-9A-Za-z_-]+")

_COORD_KEYS = ("fleet_address", "control_address", "state_dir")
_TLS_KEYS = ("ca_cert", "server_cert", "server_key")


@dataclass(frozen=True)
class CoordinatorConfig:
    """A parsed ``coordinator.toml``."""

    path: Path
    fleet_address: str = DEFAULT_FLEET_ADDRESS
    control_address: str = DEFAULT_CONTROL_ADDRESS
    state_dir: Path = Path(DEFAULT_STATE_DIR)
    ca_cert: Path | None = None
    server_cert: Path | None = None
    server_key: Path | None = None
    receipts: ReceiptCheck = field(default_factory=lambda: ReceiptCheck({}, REQUIRE))
    #: ``[studies] file_dirs``: folders whose files a study may name
    study_file_dirs: tuple[Path, ...] = ()

    @property
    def tls(self) -> bool:
        return None not in (self.ca_cert, self.server_cert, self.server_key)

    @property
    def control_client_address(self) -> str:
        """Where a client on this host reaches the Control API."""
        host, port = split_address(self.control_address)
        if host in ("0.0.0.0", "::", "[::]"):
            host = "127.0.0.1"
        return f"{host}:{port}"


def split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise InputError(
            f"not a HOST:PORT address: {address!r}",
            hint='write the address as host and port, e.g. "0.0.0.0:9092"',
        )
    return host, int(port)


def load_coordinator_config(path: Path) -> CoordinatorConfig:
    """Read ``coordinator.toml``; unknown keys are errors naming the key and the file."""
    path = Path(path)
    doc = load_toml(path)
    check_keys(doc, ("coordinator", "tls", "receipts", "studies"), path=path, where="the file")
    base = path.resolve().parent
    coord = doc.get("coordinator", {})
    tls = doc.get("tls", {})
    studies = doc.get("studies", {})
    for name, table in (("coordinator", coord), ("tls", tls), ("studies", studies)):
        if not isinstance(table, dict):
            raise ConfigError(
                f"'{name}' must be a table ([{name}])",
                path=path,
                hint=f"write [{name}] on its own line and its keys below it",
            )
    check_keys(coord, _COORD_KEYS, path=path, where="[coordinator]")
    check_keys(tls, _TLS_KEYS, path=path, where="[tls]")
    check_keys(studies, ("file_dirs",), path=path, where="[studies]")
    file_dirs = get_typed(studies, "file_dirs", list, [], path=path, where="studies")
    if not all(isinstance(d, str) and d for d in file_dirs):
        raise ConfigError(
            "[studies] file_dirs must be a list of folder names",
            path=path,
            hint='e.g. file_dirs = ["scoring"] (relative to this file)',
        )

    def _path(value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else base / p

    fleet = get_typed(
        coord, "fleet_address", str, DEFAULT_FLEET_ADDRESS, path=path, where="coordinator"
    )
    control = get_typed(
        coord, "control_address", str, DEFAULT_CONTROL_ADDRESS, path=path, where="coordinator"
    )
    for address in (fleet, control):
        try:
            split_address(address)
        except InputError as exc:
            raise ConfigError(bare_message(exc), path=path, hint=exc.hint) from exc
    files = {k: get_typed(tls, k, str, None, path=path, where="tls") for k in _TLS_KEYS}
    if any(files.values()) and not all(files.values()):
        missing = ", ".join(k for k, v in files.items() if not v)
        raise ConfigError(
            f"[tls] is incomplete: {missing} missing",
            path=path,
            hint="give all three of ca_cert, server_cert and server_key (genofed certs init "
            "makes them), or none and --insecure for a plaintext test setup",
        )
    return CoordinatorConfig(
        path=path,
        fleet_address=fleet,
        control_address=control,
        state_dir=_path(
            get_typed(coord, "state_dir", str, DEFAULT_STATE_DIR, path=path, where="coordinator")
        ),
        **{k: (_path(v) if v else None) for k, v in files.items()},
        receipts=receipts_from_toml(doc.get("receipts"), path=path),
        study_file_dirs=tuple(_path(d) for d in file_dirs),
    )


def check_config(config: CoordinatorConfig, *, insecure: bool) -> list[str]:
    """Refuse plaintext unless ``insecure``; return warnings to show."""
    if insecure:
        return [INSECURE_WARNING]
    if not config.tls:
        raise InputError(
            "refusing to start without TLS: [tls] ca_cert, server_cert and server_key are not set",
            path=config.path,
            hint="`genofed certs init` makes them; or pass --insecure for a plaintext test setup",
        )
    for p in (config.ca_cert, config.server_cert, config.server_key):
        assert p is not None
        if not p.is_file():
            raise InputError("file not found", path=p, hint=f"check [tls] in {config.path}")
    return []


def flower_command(name: str) -> str:
    """The Flower executable ``name`` beside this Python, else whatever ``PATH`` finds."""
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else name


def superlink_argv(config: CoordinatorConfig, *, insecure: bool) -> list[str]:
    """The ``flower-superlink`` command line."""
    host, port = split_address(config.control_address)
    argv = [
        flower_command("flower-superlink"),
        "--fleet-api-type",
        "grpc-rere",
        "--fleet-api-address",
        config.fleet_address,
        "--host",
        host,
        "--port",
        str(port),
        "--database",
        str(config.state_dir / DATABASE),
        # the GenoFed app bundle carries no code and no dependencies: never `uv sync`
        "--disable-runtime-dependency-installation",
    ]
    if insecure:
        return [*argv, "--insecure"]
    assert config.ca_cert and config.server_cert and config.server_key
    return [
        *argv,
        "--ssl-ca-certfile",
        str(config.ca_cert),
        "--ssl-certfile",
        str(config.server_cert),
        "--ssl-keyfile",
        str(config.server_key),
        "--enable-supernode-auth",
    ]


def flower_env(home: Path, **extra: str) -> dict[str, str]:
    """Environment for Flower children: a private ``FLWR_HOME``, this venv first on PATH."""
    env = dict(os.environ)
    env["FLWR_HOME"] = str(home.resolve())
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(extra)
    return env


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
NodeName = Callable[[str], str]
_PATTERNS: list[tuple[re.Pattern[str], Callable[[re.Match[str], NodeName], str | None]]] = [
    (re.compile(r"Starting Fleet API \(gRPC-rere\) on (\S+)"), lambda m, _: f"fleet API on {m[1]}"),
    (re.compile(r"Uvicorn running on (\S+)"), lambda m, _: f"control API on {m[1]}"),
    (re.compile(r"RegisterNode\] Created node_id=(\d+)"), lambda m, _: f"registered node {m[1]}"),
    # connected / disconnected / reconnected: NodeWatch, from the SuperLink's node table
    (re.compile(r"Activated node_id=(\d+)"), lambda m, _: None),
    (
        re.compile(r"ApiError:2004\].*No SuperNode found"),
        lambda m, _: "refused a node whose key is not registered",
    ),
    (re.compile(r"Created run (\d+)"), lambda m, _: f"run {m[1]} started"),
    (re.compile(r"Push replies from node_id=(\d+)"), lambda m, name: f"reply from {name(m[1])}"),
    (re.compile(r"Finished task \d+ of run (\d+)"), lambda m, _: f"run {m[1]} finished"),
    (re.compile(r"(ERROR|Exit Code).*"), lambda m, _: m[0][:300]),
]


def translate_superlink(line: str, name: NodeName = lambda node: f"node {node}") -> str | None:
    """One console line for a SuperLink log line that a person cares about, else None.

    ``name`` turns a node ID into what the console calls it (its registered site name).
    """
    text = _ANSI.sub("", line)
    for pattern, render in _PATTERNS:
        if m := pattern.search(text):
            return render(m, name)
    return None


def run_coordinator(
    config: CoordinatorConfig,
    *,
    insecure: bool = False,
    emit: Callable[[str], None] = print,
    extra_env: dict[str, str] | None = None,
) -> int:
    """Start the SuperLink; block until SIGTERM/SIGINT or it ends. Return an exit code."""
    for warning in check_config(config, insecure=insecure):
        emit(warning)
    config.state_dir.mkdir(parents=True, exist_ok=True)
    for left in remove_partial_results(config.state_dir / RESULTS_DIR):
        emit(f"[coordinator] removed {left}: the unfinished results of an interrupted run")
    adopt_orphans()  # a SuperExec or ServerApp the SuperLink leaves behind comes back here
    env = flower_env(config.state_dir / "flwr", **(extra_env or {}))
    env.setdefault("FLWR_SUPEREXEC_TASK_POLL_INTERVAL", "0.1")
    env[CONFIG_ENV] = str(config.path.resolve())  # the ServerApp reads [receipts] from it
    receipts = config.receipts
    emit(
        f"[coordinator] receipts: {receipts.mode}; audit keys for "
        f"{', '.join(sorted(receipts.keys)) or 'no site'}"
    )
    if receipts.mode == REQUIRE and not receipts.keys:
        emit(
            "[coordinator] WARNING: no site audit keys in [receipts.audit_keys]: every site "
            "reply will be refused until they are listed"
        )
    watch = NodeWatch(config.state_dir / DATABASE, lambda s: emit(f"[coordinator] {s}"))
    watch.poll()  # what the database says before this SuperLink runs: nothing to announce
    child = start_child(
        "superlink",
        superlink_argv(config, insecure=insecure),
        env=env,
        log_path=config.state_dir / "superlink.log",
        translate=lambda line: translate_superlink(line, watch.name_of),
        emit=lambda s: emit(f"[coordinator] {s}"),
        cwd=config.state_dir,
    )
    stop_watch = watch.start()
    emit(
        f"[coordinator] superlink pid {child.pid}: fleet {config.fleet_address}, control "
        f"{config.control_address}, TLS {'OFF' if insecure else 'on'}, node auth "
        f"{'OFF' if insecure else 'on'}; log {config.state_dir / 'superlink.log'}"
    )
    try:
        code = supervise([child])
    finally:
        stop_watch()
    orphans = stop_descendants()
    if orphans:
        emit(
            f"[coordinator] stopped {len(orphans)} process(es) the SuperLink left running "
            f"(its SuperExec, a study's ServerApp): pid {', '.join(map(str, orphans))}"
        )
    for left in remove_partial_results(config.state_dir / RESULTS_DIR):
        emit(f"[coordinator] removed {left}: the unfinished results of an interrupted run")
    emit(f"[coordinator] stopped (exit code {code})")
    return code


def remove_partial_results(results: Path) -> list[Path]:
    """Remove the staging folders a ServerApp that died left in ``results``; return them.

    A study writes ``.RUN.partial-RUN`` beside ``results/RUN`` and moves it into
    place when it finished (``.RUN.old-RUN`` is an earlier copy being replaced);
    a ServerApp killed mid-study (the SuperLink or the host died) leaves them.
    Called when no ServerApp runs: before the SuperLink starts and after it stopped.
    """
    if not results.is_dir():
        return []
    removed = []
    for path in sorted(results.iterdir()):
        if path.is_dir() and _STAGING.fullmatch(path.name):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


@contextmanager
def flower_cli_home(address: str, *, ca_cert: Path | None, insecure: bool) -> Iterator[Path]:
    """A throwaway ``FLWR_HOME`` whose ``config.toml`` names one SuperLink connection."""
    if not insecure and ca_cert is None:
        raise InputError(
            "refusing to talk to the coordinator without TLS: no CA certificate given",
            hint="pass --ca-cert (the consortium ca.pem), or --insecure for a plaintext test setup",
        )
    with tempfile.TemporaryDirectory(prefix="genofed-flwr-") as tmp:
        home = Path(tmp)
        lines = ["[superlink]", f'default = "{CONNECTION}"', "", f"[superlink.{CONNECTION}]"]
        lines.append(f"address = {json.dumps(address)}")
        if insecure:
            lines.append("insecure = true")
        else:
            assert ca_cert is not None
            lines.append(f"root-certificates = {json.dumps(str(ca_cert.resolve()))}")
        (home / "config.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
        yield home


#: What Flower's CLI prints when it cannot reach the SuperLink's Control API.
_UNREACHABLE = (
    "connection to the superlink is unavailable",
    "statuscode.unavailable",
    "failed to connect",
    "connection refused",
    "deadline exceeded",
)


def unreachable(lines: list[str]) -> bool:
    """Whether Flower's CLI output (``flwr run``, ``flwr supernode``) says it could not connect."""
    text = " ".join(" ".join(lines).lower().split())
    return any(marker in text for marker in _UNREACHABLE)


def register_site(
    config: CoordinatorConfig, name: str, public_key: Path, *, insecure: bool = False
) -> int:
    """Register a site's node public key with the running SuperLink; return its node ID."""
    if not Path(public_key).is_file():
        raise InputError("public key file not found", path=public_key)
    with flower_cli_home(
        config.control_client_address, ca_cert=config.ca_cert, insecure=insecure
    ) as home:
        argv = [
            flower_command("flwr"),
            "supernode",
            "register",
            str(Path(public_key).resolve()),
            CONNECTION,
            "--name",
            name,
            "--format",
            "json",
        ]
        try:
            proc = subprocess.run(  # cwd: never the caller's folder (its pyproject.toml)
                argv,
                env=absolute_pythonpath(flower_env(home)),
                cwd=home,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise UnreachableError(
                f"the coordinator's control API at {config.control_client_address} did not "
                "answer within 60 s"
            ) from None
    try:
        doc = json.loads(proc.stdout)
    except json.JSONDecodeError:
        doc = {}
    if proc.returncode != 0 or not doc.get("success"):
        detail = doc.get("error-message") or (proc.stdout + proc.stderr).strip()[-500:]
        if unreachable([str(detail)]):
            raise UnreachableError(
                f"registering site {name!r}: cannot reach the coordinator's control API at "
                f"{config.control_client_address}: {detail}"
            )
        raise GenoFedError(f"registering site {name!r} failed: {detail}")
    return int(doc["node-id"])


__all__ = [
    "CONFIG_ENV",
    "CONNECTION",
    "DEFAULT_CONTROL_ADDRESS",
    "DEFAULT_FLEET_ADDRESS",
    "INSECURE_WARNING",
    "CoordinatorConfig",
    "check_config",
    "flower_cli_home",
    "flower_env",
    "load_coordinator_config",
    "register_site",
    "remove_partial_results",
    "run_coordinator",
    "superlink_argv",
    "translate_superlink",
    "unreachable",
]
