"""Exit codes of ``genofed-site`` and the one wrapper that maps errors to them.

Every ``genofed-site`` command runs its work through :func:`run_guarded`:
a GenoFed error prints its message exactly as written (not read as Rich
markup or emoji codes, so that ``[[policy.trusted_analysts]]`` and
``x.bim:100:`` print as they are) and exits ``EXIT_INPUT``; any other
exception prints one line naming the file that holds its traceback
(:mod:`genofed.common.crash`; ``--verbose`` also logs it) and exits
``EXIT_UNEXPECTED``. The codes are documented in :mod:`genofed.site_agent.cli.main`.

:func:`console` is the console every ``genofed-site`` command prints with: no
emoji codes, no wrapping; text from files and users is escaped (or printed
with ``markup=False``) where it is printed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import click
import typer
from rich.console import Console
from rich.text import Text

from genofed.common.crash import unexpected_error_line, write_crash_log
from genofed.common.errors import GenoFedError

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_INPUT = 2
EXIT_AUDIT_FAILED = 3  # ``audit verify`` only

T = TypeVar("T")
log = logging.getLogger("genofed.site")


def console(*, stderr: bool = False) -> Console:
    """A console for ``genofed-site`` output: no emoji codes, no wrapping."""
    return Console(stderr=stderr, soft_wrap=True, emoji=False)


def print_error(message: str) -> None:
    """``error:`` and ``message`` exactly as written, on standard error."""
    console(stderr=True).print(
        Text.assemble(("error:", "bold red"), " ", (message, "red")), highlight=False
    )


def run_guarded(action: Callable[[], T]) -> T:
    """Run ``action``, turning errors into a red message and a documented exit code."""
    try:
        return action()
    except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
        raise
    except GenoFedError as exc:
        print_error(str(exc))
        raise typer.Exit(EXIT_INPUT) from exc
    except Exception as exc:
        report_unexpected(exc)
        raise typer.Exit(EXIT_UNEXPECTED) from exc


def report_unexpected(exc: BaseException) -> None:
    """One line about a bug, naming the file with its traceback (``--verbose`` logs it too)."""
    log.debug("unexpected error", exc_info=exc)
    log_file = write_crash_log(exc, program="genofed-site")
    console(stderr=True).print(
        Text(unexpected_error_line(exc, log_file), style="bold red"), highlight=False
    )


__all__ = [
    "EXIT_AUDIT_FAILED",
    "EXIT_INPUT",
    "EXIT_OK",
    "EXIT_UNEXPECTED",
    "console",
    "print_error",
    "report_unexpected",
    "run_guarded",
]
