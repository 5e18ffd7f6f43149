"""Wall time and peak memory of a reference command (plink2) for the benchmarks.

``python bench/X.py`` puts ``bench/`` on ``sys.path``, so a benchmark imports
this as ``from measure import measure``. It imports nothing from GenoFed.
"""

from __future__ import annotations

import contextlib
import subprocess
import time

import psutil


def measure(cmd: list[str]) -> dict[str, float]:
    """Wall seconds and peak RSS (MiB) of ``cmd`` and its children (Debian's plink2 is a
    wrapper script that runs the binary for this CPU), polled every 50 ms."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    root, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        rss = 0
        for p in (root, *root.children(recursive=True)):
            with contextlib.suppress(psutil.Error):
                rss += p.memory_info().rss
        peak = max(peak, rss)
        time.sleep(0.05)
    if proc.returncode:
        raise SystemExit(proc.stderr.read().decode() if proc.stderr else "plink2 failed")
    return {"wall_s": time.perf_counter() - start, "peak_mib": peak / 2**20}
