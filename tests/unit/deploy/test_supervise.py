"""A supervised child stops when its supervisor dies, and is stopped by PID when asked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from genofed.common.supervise import start_child

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="parent-death signal is Linux only")


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def test_child__is_terminated_when_its_supervisor_is_killed(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    supervisor = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from genofed.common.supervise import start_child
        child = start_child("sleeper", ["sleep", "120"], emit=lambda s: None)
        Path({str(pidfile)!r}).write_text(str(child.pid))
        time.sleep(120)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", supervisor])
    try:
        deadline = time.monotonic() + 30
        while not pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        child = int(pidfile.read_text())
        time.sleep(0.5)  # let the launcher exec into `sleep`
        assert psutil.Process(child).name() == "sleep"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        stopped = _gone(child, 10)
        if not stopped:
            os.kill(child, signal.SIGKILL)
        assert stopped, "the child outlived its killed supervisor"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_child__stop_terminates_it_by_pid() -> None:
    child = start_child("sleeper", ["sleep", "120"], emit=lambda s: None)
    assert child.stop(grace=5) == -signal.SIGTERM
