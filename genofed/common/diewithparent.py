"""Exec a command that Linux will SIGTERM when its parent process dies.

``python -m genofed.common.diewithparent PARENT_PID -- ARGV...`` sets the
parent-death signal (``prctl(PR_SET_PDEATHSIG)``, kept across ``exec``),
checks that ``PARENT_PID`` is still its parent (it may have died before the
signal was armed), and replaces itself with ``ARGV``.

:mod:`genofed.common.supervise` starts its children through this launcher
rather than with ``preexec_fn``: a ``preexec_fn`` makes Python ``fork``
instead of ``vfork``, and gRPC's fork handlers in the parent (the site admin
service) then abort the child. Written by hand because the standard library
has no portable way to ask for this; it does nothing beyond Linux.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print(
            "usage: python -m genofed.common.diewithparent PARENT_PID -- ARGV...", file=sys.stderr
        )
        return 2
    parent, command = int(argv[0]), argv[2:]
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            print(f"prctl failed: {os.strerror(ctypes.get_errno())}", file=sys.stderr)
            return 1
        if os.getppid() != parent:  # the parent died before the signal was armed
            return 1
    os.execvp(command[0], command)
    return 1  # not reached


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
