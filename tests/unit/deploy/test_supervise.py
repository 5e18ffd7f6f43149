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


def test_orphans_of_a_killed_server__are_adopted_and_stopped(tmp_path: Path) -> None:
    """A server starts a helper in its own session (as the SuperLink its SuperExec), then dies.

    The supervisor (``genofed coordinator up``) adopted the orphan and stops it:
    a ServerApp left running would go on with its study against a restarted
    SuperLink.
    """
    pidfile = tmp_path / "helper.pid"
    server = (
        "import subprocess, sys, time; "
        f"p = subprocess.Popen(['sleep', '120'], start_new_session=True); "
        f"open({str(pidfile)!r}, 'w').write(str(p.pid)); time.sleep(120)"
    )
    supervisor = textwrap.dedent(
        f"""
        import os, signal, time
        from pathlib import Path
        from genofed.common.supervise import adopt_orphans, descendants, start_child
        from genofed.common.supervise import stop_descendants
        assert adopt_orphans()
        child = start_child("server", [{sys.executable!r}, "-c", {server!r}], emit=print)
        pidfile = Path({str(pidfile)!r})
        while not pidfile.exists() or not pidfile.read_text():
            time.sleep(0.05)
        helper = int(pidfile.read_text())
        os.kill(child.pid, signal.SIGKILL)  # the server dies; its helper does not
        child.process.wait(timeout=30)
        assert helper in descendants(), (helper, descendants())
        print("stopped", stop_descendants(grace=5))
        """
    )
    res = subprocess.run(
        [sys.executable, "-c", supervisor], capture_output=True, text=True, timeout=60, check=False
    )
    assert res.returncode == 0, res.stdout + res.stderr
    helper = int(pidfile.read_text())
    assert f"stopped [{helper}]" in res.stdout or str(helper) in res.stdout
    assert _gone(helper, timeout=10)
