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
for this node and the working directory of both: never the folder the
command was run from, where Flower would read a ``pyproject.toml`` as an
app); the console gets one line per event (:class:`SiteConsole`: connected,
lost, reconnected, with UTC times; request received; reply sent or refused
with its code; bundle refused). The Runtime API port is a free one on
127.0.0.1 unless ``runtime_port`` names one (then it must be free).

While it runs, this process also serves the read-only SiteAdmin gRPC service
(:mod:`genofed.site_agent.admin`) on a local address only (``admin_address``,
default ``127.0.0.1`` on a free port; ``STATE/admin.json`` says where), for
the ``genofed-site`` admin commands.
"""

from __future__ import annotations

import os
import re
import socket
import stat
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from genofed.common.errors import InputError
from genofed.common.supervise import Child, start_child, supervise
from genofed.site_agent.admin import DEFAULT_ADMIN_ADDRESS, check_local_address, serve_admin
from genofed.site_agent.app import SITE_DIR_KEY
from genofed.site_agent.node.appgate import DEFAULT_POLL_S, flower_command
from genofed.site_agent.node.probe import plaintext_problem
from genofed.site_agent.privacy.policy import POLICY_FILE, load_policy
from genofed.site_agent.sitedir import load_site

#: Port of the SuperNode's local Runtime API; 0: a free one (each node on a host needs its own).
DEFAULT_RUNTIME_PORT = 0
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


def pick_runtime_port(port: int) -> int:
    """``port`` if it is free on 127.0.0.1 (0: any free port); else an error naming the flag.

    The SuperNode serves its Runtime API (for the app gate) on this loopback
    port; every site agent on one host needs its own.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the SuperNode binds
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise InputError(
                f"--runtime-port {port}: 127.0.0.1:{port} is in use ({exc.strerror}); "
                "another site agent or program on this host listens there",
                hint="pass another --runtime-port, or leave it out (0, the default, picks a "
                "free port)",
            ) from None
        return int(sock.getsockname()[1])


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
_NODE_ID = re.compile(r"SuperNode ID: (\d+)")
_RETRYING = re.compile(r"Connection attempt failed, retrying in ([0-9.]+) seconds")
_RECONNECTED = re.compile(r"Connection successful after ([0-9.]+) seconds and (\d+) tries")
_PATTERNS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (re.compile(r"\[RUN (\d+)(?:, ROUND ([^\]]+))?\]"), lambda m: ""),
    (re.compile(r"Receiving: (\w+) message"), lambda m: f"request received ({m[1]})"),
    (
        re.compile(r"Failed to activate SuperNode|Exit Code: 305"),
        lambda m: (
            "the coordinator refused this node: is its key registered "
            "(genofed coordinator register-site)?"
        ),
    ),
    (re.compile(r"(ERROR|Exit Code).*"), lambda m: m[0]),
]
#: What the ClientApp prints for each reply it made (:func:`genofed.site_agent.app.answer`).
_OUTCOME = re.compile(r"^genofed-reply: (\w+)(?: (\w+))?(?: (.*))?$")
#: What the app gate prints when it refuses a bundle (:mod:`.appgate`).
_GATE_REFUSED = re.compile(r"^REFUSED app bundle \S+ \(run \d+\): ([A-Z][A-Z_]+):")


def stamp() -> str:
    """The UTC time to the second, as the console prints it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SiteConsole:
    """Turns the SuperNode's and the app gate's log lines into the site's console lines.

    It keeps what one log line alone does not say: whether the node is
    connected (Flower logs every failed attempt, and a success only after a
    failure; its heartbeat thread and its message loop each log their own), and
    what the reply about to be sent is (the ClientApp or the gate says whether
    it refused, the SuperNode only that it sent something). Connection lines
    carry the UTC time.
    """

    def __init__(self, clock: Callable[[], str] = stamp) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._connected = False
        self._ever = False
        self._waiting = False
        self._lost_at: str | None = None
        self._outcomes: deque[str] = deque(maxlen=64)

    def supernode(self, line: str) -> str | None:
        """One console line for a SuperNode log line that a person cares about, else None."""
        text = _ANSI.sub("", line)
        with self._lock:
            if m := _NODE_ID.search(text):
                self._connected = self._ever = True
                return f"{self._clock()} connected to the coordinator as node {m[1]}"
            if _RETRYING.search(text):
                if not self._connected:
                    if self._ever or self._waiting:
                        return None  # still down: one line when it went, one when it is back
                    self._waiting = True
                    return f"{self._clock()} cannot reach the coordinator yet; retrying"
                self._connected = False
                self._lost_at = self._clock()
                return (
                    f"{self._lost_at} lost the connection to the coordinator; retrying "
                    "(up to 20 s between tries)"
                )
            if m := _RECONNECTED.search(text):
                if self._connected or not self._ever:
                    return None  # the first connection: "SuperNode ID" follows
                self._connected = True
                since = f", down since {self._lost_at}" if self._lost_at else ""
                return (
                    f"{self._clock()} reconnected to the coordinator "
                    f"(after {float(m[1]):.0f} s and {m[2]} tries{since})"
                )
            if "Sent successfully" in text:
                return self._outcomes.popleft() if self._outcomes else "reply sent"
        for pattern, render in _PATTERNS:
            if m := pattern.search(text):
                return render(m) or None
        return None

    def gate(self, line: str) -> str | None:
        """One console line for an app gate (or ClientApp) line, else None."""
        text = _ANSI.sub("", line).strip()
        if m := _OUTCOME.match(text):
            status, code, what = m[1], m[2], m[3]
            with self._lock:
                self._outcomes.append(
                    "reply sent" if status == "ok" else f"{status} ({code}): {what or 'no reason'}"
                )
            return None
        if m := _GATE_REFUSED.match(text):
            with self._lock:
                self._outcomes.append(f"refused ({m[1]}): app bundle not allowed")
            return text
        return text if text.startswith(("REFUSED", "app bundle", "app gate")) else None


def translate_supernode(line: str) -> str | None:
    """:meth:`SiteConsole.supernode` of a fresh console (one line, no state before it)."""
    return SiteConsole().supernode(line)


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
    opts = replace(opts, runtime_port=pick_runtime_port(opts.runtime_port))
    opts.state.mkdir(parents=True, exist_ok=True)
    admin = serve_admin(opts.site_dir, opts.state, opts.admin_address, superlink=opts.superlink)
    emit(f"[site] site admin service (local only) on {admin.address}")
    try:
        return _run_children(opts, emit)
    finally:
        admin.stop()


def _run_children(opts: NodeOptions, emit: Callable[[str], None]) -> int:
    env = node_env(opts)
    console = SiteConsole()
    node = start_child(
        "supernode",
        supernode_argv(opts),
        env=env,
        log_path=opts.state / "supernode.log",
        translate=console.supernode,
        emit=lambda s: emit(f"[site] {s}"),
        cwd=opts.state,
    )
    children: list[Child] = [node]
    try:
        children.append(
            start_child(
                "appgate",
                gate_argv(opts),
                env=env,
                log_path=opts.state / "appgate.log",
                translate=console.gate,
                emit=lambda s: emit(f"[site] {s}"),
                cwd=opts.state,
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
    "SiteConsole",
    "check_options",
    "gate_argv",
    "node_env",
    "pick_runtime_port",
    "run_site_node",
    "supernode_argv",
    "translate_supernode",
]
