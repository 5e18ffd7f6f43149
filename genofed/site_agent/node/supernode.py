"""``genofed-site up``: this site's Flower SuperNode and its app gate, as child processes.

The SuperNode connects **out** to the coordinator's Fleet API (gRPC,
``grpc-rere``) with TLS (the consortium CA certificate) and authenticates
with the site's node key; the site directory reaches the ClientApp as node
config (``site-dir``). It runs with ``--isolation process``: instead of
Flower's SuperExec, :mod:`genofed.site_agent.node.appgate` launches ClientApps,
and only for app bundles the site policy allows.

Plaintext is refused unless ``insecure`` is set explicitly, and then the
SuperNode cannot authenticate (Flower ties node keys to TLS).

Flower's own log goes to ``STATE/supernode.log`` and ``STATE/appgate.log`` (each line
prefixed with its UTC time)
(``STATE`` defaults to ``DIR/.genofed-node``, also Flower's ``FLWR_HOME``
for this node); the console gets one line per event (connected, request
received, reply sent, bundle refused).

While it runs, this process also serves the read-only SiteAdmin gRPC service
(:mod:`genofed.site_agent.admin`) on a local address only (``admin_address``,
default ``127.0.0.1`` on a free port; ``STATE/admin.json`` says where), for
the ``genofed-site`` admin commands.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from genofed.common.errors import InputError
from genofed.common.supervise import Child, start_child, supervise
from genofed.site_agent.admin import DEFAULT_ADMIN_ADDRESS, check_local_address, serve_admin
from genofed.site_agent.app import SITE_DIR_KEY
from genofed.site_agent.node.appgate import DEFAULT_POLL_S, flower_command
from genofed.site_agent.node.probe import plaintext_problem
from genofed.site_agent.privacy.policy import POLICY_FILE, load_policy
from genofed.site_agent.sitedir import load_site

#: Port of the SuperNode's local Runtime API (Flower's default); one per node on a host.
DEFAULT_RUNTIME_PORT = 9094
STATE_DIRNAME = ".genofed-node"

INSECURE_WARNING = (
    "WARNING: --insecure: this site talks to the coordinator IN PLAINTEXT and WITHOUT "
    "node authentication. Anyone on the network path can read and alter what it sends. "
    "Use only on a test machine with synthetic data."
)


@dataclass(frozen=True)
class NodeOptions:
    """How to start this site's node; see ``genofed-site up --help``."""

    site_dir: Path
    superlink: str
    ca_cert: Path | None = None
    node_key: Path | None = None
    insecure: bool = False
    runtime_port: int = DEFAULT_RUNTIME_PORT
    state_dir: Path | None = None
    max_wait_s: float | None = None
    gate_poll_s: float = DEFAULT_POLL_S
    admin_address: str = DEFAULT_ADMIN_ADDRESS

    @property
    def state(self) -> Path:
        return self.state_dir or self.site_dir / STATE_DIRNAME


def check_options(opts: NodeOptions) -> list[str]:
    """Validate ``opts`` (raising :class:`InputError`); return warnings to show."""
    load_site(opts.site_dir)
    load_policy(opts.site_dir / POLICY_FILE)  # an invalid policy stops the agent, naming the key
    check_local_address(opts.admin_address)
    warnings: list[str] = []
    if opts.insecure:
        if opts.node_key is not None:
            raise InputError(
                "--node-key needs TLS: Flower authenticates nodes only over TLS",
                hint="drop --insecure and pass --ca-cert, or drop --node-key",
            )
        warnings.append(INSECURE_WARNING)
        return warnings
    missing = [
        flag
        for flag, v in (("--ca-cert", opts.ca_cert), ("--node-key", opts.node_key))
        if v is None
    ]
    if missing:
        raise InputError(
            "refusing to connect without TLS and node authentication: "
            f"{', '.join(missing)} missing",
            hint="pass the consortium CA certificate and this site's node key "
            "(`genofed certs init` makes them), or --insecure for a plaintext test setup",
        )
    for path in (opts.ca_cert, opts.node_key):
        assert path is not None
        if not path.is_file():
            raise InputError("file not found", path=path)
    assert opts.node_key is not None
    if opts.node_key.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        warnings.append(
            f"WARNING: the node key {opts.node_key} is readable by other users; "
            f"run: chmod 600 {opts.node_key}"
        )
    return warnings


def supernode_argv(opts: NodeOptions) -> list[str]:
    """The ``flower-supernode`` command line for ``opts``."""
    site_dir = str(opts.site_dir.resolve()).replace('"', '\\"')
    argv = [
        flower_command("flower-supernode"),
        "--grpc-rere",
        "--superlink",
        opts.superlink,
        "--isolation",
        "process",
        "--host",
        "127.0.0.1",
        "--port",
        str(opts.runtime_port),
        "--node-config",
        f'{SITE_DIR_KEY}="{site_dir}"',
    ]
    if opts.insecure:
        argv.append("--insecure")
    else:
        assert opts.ca_cert is not None and opts.node_key is not None
        argv += ["--root-certificates", str(opts.ca_cert.resolve())]
        argv += ["--auth-supernode-private-key", str(opts.node_key.resolve())]
    if opts.max_wait_s is not None:
        argv += ["--max-wait-time", str(opts.max_wait_s)]
    return argv


def gate_argv(opts: NodeOptions) -> list[str]:
    """The app gate's command line for ``opts``."""
    return [
        sys.executable,
        "-m",
        "genofed.site_agent.node.appgate",
        "--runtime-api-address",
        f"127.0.0.1:{opts.runtime_port}",
        "--site-dir",
        str(opts.site_dir.resolve()),
        "--poll",
        str(opts.gate_poll_s),
    ]


def node_env(opts: NodeOptions) -> dict[str, str]:
    """Environment for the children: Flower's home inside the state directory."""
    env = dict(os.environ)
    env["FLWR_HOME"] = str((opts.state / "flwr").resolve())
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_PATTERNS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (re.compile(r"SuperNode ID: (\d+)"), lambda m: f"connected to the coordinator as node {m[1]}"),
    (re.compile(r"\[RUN (\d+)(?:, ROUND ([^\]]+))?\]"), lambda m: ""),
    (re.compile(r"Receiving: (\w+) message"), lambda m: f"request received ({m[1]})"),
    (re.compile(r"Sent successfully"), lambda m: "reply sent"),
    (
        re.compile(r"Failed to activate SuperNode|Exit Code: 305"),
        lambda m: (
            "the coordinator refused this node: is its key registered "
            "(genofed coordinator register-site)?"
        ),
    ),
    (re.compile(r"(ERROR|Exit Code).*"), lambda m: m[0]),
]


def translate_supernode(line: str) -> str | None:
    """One console line for a SuperNode log line that a person cares about, else None."""
    text = _ANSI.sub("", line)
    for pattern, render in _PATTERNS:
        if m := pattern.search(text):
            return render(m) or None
    return None


def translate_gate(line: str) -> str | None:
    text = line.strip()
    return text if text.startswith(("REFUSED", "app bundle", "app gate")) else None


def run_site_node(opts: NodeOptions, *, emit: Callable[[str], None] = print) -> int:
    """Start the SuperNode and the app gate; block until SIGTERM/SIGINT or a child ends."""
    for warning in check_options(opts):
        emit(warning)
    if opts.insecure and (problem := plaintext_problem(opts.superlink)) is not None:
        raise InputError(
            f"--insecure: {problem}",
            hint="drop --insecure and pass --ca-cert and --node-key (the consortium's CA "
            "certificate and this site's node key), or point --superlink at a plaintext test "
            "coordinator",
        )
    opts.state.mkdir(parents=True, exist_ok=True)
    admin = serve_admin(opts.site_dir, opts.state, opts.admin_address, superlink=opts.superlink)
    emit(f"[site] site admin service (local only) on {admin.address}")
    try:
        return _run_children(opts, emit)
    finally:
        admin.stop()


def _run_children(opts: NodeOptions, emit: Callable[[str], None]) -> int:
    env = node_env(opts)
    node = start_child(
        "supernode",
        supernode_argv(opts),
        env=env,
        log_path=opts.state / "supernode.log",
        translate=translate_supernode,
        emit=lambda s: emit(f"[site] {s}"),
    )
    children: list[Child] = [node]
    try:
        children.append(
            start_child(
                "appgate",
                gate_argv(opts),
                env=env,
                log_path=opts.state / "appgate.log",
                translate=translate_gate,
                emit=lambda s: emit(f"[site] {s}"),
            )
        )
    except BaseException:
        node.stop()
        raise
    emit(
        f"[site] supernode pid {node.pid}, app gate pid {children[1].pid}; "
        f"connecting to {opts.superlink}; logs in {opts.state}"
    )
    code = supervise(children)
    emit(f"[site] stopped (exit code {code})")
    return code


__all__ = [
    "DEFAULT_RUNTIME_PORT",
    "INSECURE_WARNING",
    "NodeOptions",
    "check_options",
    "gate_argv",
    "node_env",
    "run_site_node",
    "supernode_argv",
    "translate_supernode",
]
