"""Run one long-lived child server (SuperLink, SuperNode) under a GenoFed command.

``genofed coordinator up`` and ``genofed-site up`` both start a Flower server
as a child process, keep its full log in a file, print one short line per
event that a person cares about (the caller's ``translate`` picks them), and
stop it cleanly: SIGTERM or SIGINT to the GenoFed command is forwarded to the
child's process group, which gets ``grace`` seconds before SIGKILL. On Linux
a child also gets SIGTERM when the GenoFed command dies without stopping it
(killed, out of memory): a SuperNode must not outlive the supervisor that
gates its apps (:mod:`genofed.common.diewithparent`).

Only the processes started here are signalled, by their own PID / process
group, never by name.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import IO

#: Seconds a child gets between SIGTERM and SIGKILL.
DEFAULT_GRACE_S = 10.0

Translate = Callable[[str], str | None]


@dataclass
class Child:
    """A started child process, its log file and the thread relaying its output."""

    name: str
    process: subprocess.Popen[str]
    log_path: Path | None
    relay: threading.Thread | None = None
    lines: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, grace: float = DEFAULT_GRACE_S) -> int:
        """SIGTERM the child's process group, SIGKILL it after ``grace`` s; return its code."""
        if self.process.poll() is None:
            _signal_group(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _signal_group(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=grace)
        if self.relay is not None:
            self.relay.join(timeout=grace)
        return self.process.returncode


def start_child(
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
    translate: Translate | None = None,
    emit: Callable[[str], None] = print,
    keep_lines: int = 200,
    cwd: Path | None = None,
) -> Child:
    """Start ``argv`` in its own process group and relay its output in a thread.

    Every output line goes to ``log_path`` (when given); lines for which
    ``translate`` returns text are passed to ``emit``. The last
    ``keep_lines`` lines are kept on :attr:`Child.lines` for error messages.
    ``cwd`` is the child's working directory: give Flower servers GenoFed's
    state directory, never the caller's folder (Flower reads a
    ``pyproject.toml`` it finds there as an app).
    """
    if sys.platform == "linux":  # the child must not outlive this process
        argv = [sys.executable, "-m", "genofed.common.diewithparent", str(os.getpid()), "--", *argv]
    child_env = dict(env) if env is not None else None
    if cwd is not None:  # relative PYTHONPATH entries keep meaning what they meant here
        child_env = absolute_pythonpath(dict(os.environ) if child_env is None else child_env)
    process = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        env=child_env,
        start_new_session=True,
        cwd=cwd,
    )
    child = Child(name, process, log_path)
    log_fh: IO[str] | None = None
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_fh = log_path.open("a", encoding="utf-8")

    def _relay() -> None:
        assert process.stdout is not None
        try:
            for line in process.stdout:
                if log_fh is not None:
                    log_fh.write(f"{_stamp()} {line}")
                    log_fh.flush()
                child.lines.append(line.rstrip("\n"))
                del child.lines[:-keep_lines]
                if translate is not None and (event := translate(line.rstrip("\n"))):
                    emit(event)
        finally:
            if log_fh is not None:
                log_fh.close()

    child.relay = threading.Thread(target=_relay, name=f"relay-{name}", daemon=True)
    child.relay.start()
    return child


def absolute_pythonpath(env: dict[str, str]) -> dict[str, str]:
    """``env`` with each relative ``PYTHONPATH`` entry made absolute against this process's cwd.

    For a child started in another working directory (an empty entry, which
    means the working directory, is dropped: the child's is not the caller's).
    """
    if env.get("PYTHONPATH"):
        entries = [str(Path(p).resolve()) for p in env["PYTHONPATH"].split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join(entries)
    return env


def _stamp() -> str:
    """UTC time to the millisecond, prefixed to every line of a child's log file."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def supervise(children: Sequence[Child], *, grace: float = DEFAULT_GRACE_S) -> int:
    """Wait until a child exits or SIGTERM/SIGINT arrives, then stop every child cleanly.

    Children are stopped last-started first. Returns 0 when a signal asked
    for the stop; otherwise the exit code of the first child that ended
    (or 1 if it ended with 0: a server that stops by itself has failed).
    """
    stopping = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    ended: Child | None = None
    try:
        while ended is None and not stopping.is_set():
            ended = next((c for c in children if c.process.poll() is not None), None)
            stopping.wait(0.2)
    finally:
        for child in reversed(children):
            child.stop(grace)
        for s, handler in previous.items():
            signal.signal(s, handler)
    if stopping.is_set() or ended is None:
        return 0
    return ended.process.returncode or 1


_PR_SET_CHILD_SUBREAPER = 36


def adopt_orphans() -> bool:
    """Make this process the reaper of its descendants' orphans (Linux); say whether it is.

    A Flower server starts helpers in sessions of their own (the SuperLink its
    SuperExec, which starts each run's ServerApp), out of reach of a signal to
    the server's process group. When the server dies without stopping them (a
    SIGKILL, a crash), they are re-parented to this process instead of init,
    so that :func:`stop_descendants` can still find and stop them: a ServerApp
    left running would go on with its study against the restarted server.
    """
    if sys.platform != "linux":
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)


def descendants(pid: int | None = None) -> list[int]:
    """The PIDs of every live process below ``pid`` (this process), from ``/proc``; Linux only."""
    root = os.getpid() if pid is None else pid
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[0] != "Z":
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    todo = [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def stop_descendants(grace: float = DEFAULT_GRACE_S) -> list[int]:
    """SIGTERM every process still below this one, SIGKILL what is left after ``grace`` s.

    Returns the PIDs it signalled. Called after the children were stopped:
    what is left are their orphans (:func:`adopt_orphans`).
    """
    left = descendants()
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(p) for p in left):
        _reap()
        time.sleep(0.1)
    for pid in [p for p in left if _alive(p)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _reap()
    return left


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _reap() -> None:
    """Collect the exit status of adopted orphans that ended (they are not Popen objects)."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def _signal_group(pid: int, sig: int) -> None:
    # start_child made the child a session (and process group) leader: pgid == pid.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


__all__ = [
    "DEFAULT_GRACE_S",
    "Child",
    "absolute_pythonpath",
    "adopt_orphans",
    "descendants",
    "start_child",
    "stop_descendants",
    "supervise",
]
