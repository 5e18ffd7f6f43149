"""Exit codes of ``genofed-site`` and the one wrapper that maps errors to them.

Every ``genofed-site`` command runs its work through :func:`run_guarded`:
a GenoFed error prints its message (escaped, so that brackets and colons in
file names and hints are printed as written) and exits ``EXIT_INPUT``; any
other exception is logged with its traceback and exits ``EXIT_UNEXPECTED``.
The codes are documented in :mod:`genofed.site_agent.cli.main`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from genofed.common.errors import GenoFedError

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_INPUT = 2
EXIT_AUDIT_FAILED = 3  # ``audit verify`` only

T = TypeVar("T")
log = logging.getLogger("genofed.site")


def run_guarded(action: Callable[[], T]) -> T:
    """Run ``action``, turning errors into a red message and a documented exit code."""
    err = Console(stderr=True, soft_wrap=True)
    try:
        return action()
    except GenoFedError as exc:
        err.print(f"[bold red]error:[/] [red]{escape(str(exc))}[/]")
        raise typer.Exit(EXIT_INPUT) from exc
    except Exception as exc:
        log.exception("unexpected error")
        err.print(f"[bold red]unexpected error:[/] {escape(repr(exc))} (please report this)")
        raise typer.Exit(EXIT_UNEXPECTED) from exc


__all__ = ["EXIT_AUDIT_FAILED", "EXIT_INPUT", "EXIT_OK", "EXIT_UNEXPECTED", "run_guarded"]
