"""A real federation on 127.0.0.1 for end-to-end tests.

One coordinator (``genofed coordinator up``: a Flower SuperLink with TLS and
SuperNode authentication) and one ``genofed-site up`` per site directory (a
SuperNode plus the site's app gate), each a process this harness starts in
its own session and stops by PID: SIGTERM, then SIGKILL of its process group
after a bounded wait. Ports are free ports picked on 127.0.0.1. Every wait
is bounded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from genofed.common.pki import PkiLayout, init_pki
from genofed.site_agent.audit.log import AuditPaths
from genofed.site_agent.sitedir import load_site

BIN = Path(sys.executable).parent
STOP_GRACE_S = 15.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    """A started process with its combined output in a file."""

    name: str
    popen: subprocess.Popen[bytes]
    out: Path

    def text(self) -> str:
        return self.out.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, needle: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text():
                return True
            if self.popen.poll() is not None:
                return needle in self.text()
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=STOP_GRACE_S)
        # the process group: whatever this process started and left behind
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        if self.popen.poll() is None:
            self.popen.wait(timeout=STOP_GRACE_S)


def start(
    name: str,
    argv: Sequence[str],
    out: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Proc:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as fh:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            cwd=cwd,
        )
    return Proc(name, popen, out)


def test_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["FLWR_HOME"] = str(home)  # nothing in the real home directory
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    env["FLWR_SUPEREXEC_TASK_POLL_INTERVAL"] = "0.1"
    env.pop("COLUMNS", None)
    env["COLUMNS"] = "200"
    return env


@dataclass
class Federation:
    root: Path
    pki: PkiLayout
    fleet: str
    control: str
    config: Path
    env: dict[str, str]
    coordinator: Proc | None = None
    sites: dict[str, Proc] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)
    #: the working directory of every command started (None: the test's own)
    cwd: Path | None = None

    def genofed(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "genofed"), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
            check=False,
            cwd=self.cwd,
        )

    def start_coordinator(self, timeout: float = 60) -> Proc:
        proc = start(
            "coordinator",
            [str(BIN / "genofed"), "coordinator", "up", "--config", str(self.config)],
            self.root / "logs" / "coordinator.out",
            self.env,
            self.cwd,
        )
        self.procs.append(proc)
        self.coordinator = proc
        if not proc.wait_for("control API on", timeout):
            raise RuntimeError(f"coordinator did not start:\n{proc.text()}")
        return proc

    def register(self, name: str, pubkey: Path) -> None:
        res = self.genofed(
            "coordinator", "register-site", name, str(pubkey), "--config", str(self.config)
        )
        if res.returncode != 0:
            raise RuntimeError(f"register-site {name} failed:\n{res.stdout}\n{res.stderr}")

    def start_site(
        self,
        name: str,
        site_dir: Path,
        node_key: Path | None,
        *extra: str,
        runtime_port: bool = True,
    ) -> Proc:
        """``genofed-site up``; ``runtime_port`` False leaves the port to it (a free one)."""
        argv = [str(BIN / "genofed-site"), "up", str(site_dir), "--superlink", self.fleet]
        if runtime_port:
            argv += ["--runtime-port", str(free_port())]
        if node_key is not None:
            argv += ["--ca-cert", str(self.pki.ca_cert), "--node-key", str(node_key)]
        argv += list(extra)
        out = self.root / "logs" / f"site-{name}.out"
        proc = start(f"site-{name}", argv, out, self.env, self.cwd)
        self.procs.append(proc)
        self.sites[name] = proc
        return proc

    def start_all(
        self, names: Sequence[str], site_dirs: Sequence[Path], *, runtime_port: bool = True
    ) -> None:
        """The coordinator, then every site registered and connected (its SuperNode says so)."""
        self.start_coordinator()
        for name in names:
            self.register(f"site-{name}", self.pki.node_keys[name][1])
        for name, site_dir in zip(names, site_dirs, strict=True):
            key = self.pki.node_keys[name][0]
            self.start_site(name, site_dir, key, runtime_port=runtime_port)
        for proc in self.sites.values():
            assert proc.wait_for("connected to the coordinator", 60), proc.text()

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


def make_federation(
    root: Path, site_names: Sequence[str], site_dirs: Sequence[Path] = ()
) -> Federation:
    """A federation's PKI and ``coordinator.toml``; nothing is started yet.

    ``site_dirs`` are listed under ``[receipts.audit_keys]`` (each site's
    ``state/audit.pub``), so that the coordinator can check every reply's
    receipt, as it must in production.
    """
    pki = init_pki(root / "certs", coordinator_host="127.0.0.1", sites=list(site_names))
    fleet = f"127.0.0.1:{free_port()}"
    control = f"127.0.0.1:{free_port()}"
    config = root / "coordinator.toml"
    config.write_text(
        "[coordinator]\n"
        f'fleet_address = "{fleet}"\n'
        f'control_address = "{control}"\n'
        'state_dir = "state"\n\n'
        "[tls]\n"
        f'ca_cert = "{pki.ca_cert}"\n'
        f'server_cert = "{pki.server_cert}"\n'
        f'server_key = "{pki.server_key}"\n' + _receipts_toml(site_dirs),
        encoding="utf-8",
    )
    home = root / "flwr-home"
    home.mkdir()
    return Federation(root, pki, fleet, control, config, test_env(home))


def _receipts_toml(site_dirs: Sequence[Path]) -> str:
    if not site_dirs:
        return ""
    lines = ['\n[receipts]\nmode = "require"\n\n[receipts.audit_keys]\n']
    for d in site_dirs:
        lines.append(f'"{load_site(d).name}" = "{AuditPaths.of(Path(d)).pub}"\n')
    return "".join(lines)


def timed_lines(proc: subprocess.Popen[str], on_line: Callable[[float, str], None]) -> None:
    """Feed each output line of ``proc`` with its arrival time to ``on_line``."""
    assert proc.stdout is not None
    for line in proc.stdout:
        on_line(time.monotonic(), line.rstrip("\n"))


__all__ = ["Federation", "Proc", "free_port", "make_federation", "start", "timed_lines"]
