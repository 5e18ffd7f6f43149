"""Exit codes of ``genofed`` and the mapping from GenoFed errors to them.

Both halves of the command line use it: :mod:`genofed.cli.analyst` (which
documents each code in its docstring, and a test checks that) and
:mod:`genofed.cli.deploy`.

Messages are printed as written: not read as Rich markup (``[[analysis]]``
stays) nor emoji codes (``x.bim:100:`` stays), and not wrapped, so that a
file name can be copied from the terminal. An unexpected error (a bug) prints
one line naming the file that holds its traceback
(:mod:`genofed.common.crash`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
import typer
from rich.console import Console
from rich.text import Text

from genofed.common.crash import unexpected_error_line, write_crash_log
from genofed.common.errors import GenoFedError, HarmonizationError, InputError, SiteFailure

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_INPUT = 2
EXIT_SITE = 3
EXIT_HARMONIZATION = 4

#: Standard error, where messages and progress go (no emoji codes: ``x.bim:100:`` stays).
console = Console(stderr=True, emoji=False)


def print_error(label: str, message: str, *, style: str = "bold red") -> None:
    """``label`` in ``style``, then ``message`` exactly as written (no markup, no wrapping)."""
    console.print(Text.assemble((label, style), " ", message), highlight=False, soft_wrap=True)


def report_unexpected(exc: BaseException) -> None:
    """One line about a bug, naming the file with its traceback."""
    log_file = write_crash_log(exc, program="genofed")
    console.print(Text(unexpected_error_line(exc, log_file), style="bold red"), soft_wrap=True)


@contextmanager
def cli_errors() -> Iterator[None]:
    """Map GenoFed errors to messages and documented exit codes; any other error to one line."""
    try:
        yield
    except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
        raise
    except InputError as exc:
        print_error("error:", str(exc))
        raise typer.Exit(EXIT_INPUT) from exc
    except SiteFailure as exc:
        print_error("site failure:", str(exc))
        raise typer.Exit(EXIT_SITE) from exc
    except HarmonizationError as exc:
        print_error("harmonization:", str(exc))
        raise typer.Exit(EXIT_HARMONIZATION) from exc
    except GenoFedError as exc:
        print_error("error:", str(exc))
        raise typer.Exit(EXIT_INPUT) from exc
    except Exception as exc:
        report_unexpected(exc)
        raise typer.Exit(EXIT_INTERNAL) from exc


__all__ = [
    "EXIT_HARMONIZATION",
    "EXIT_INPUT",
    "EXIT_INTERNAL",
    "EXIT_OK",
    "EXIT_SITE",
    "cli_errors",
    "console",
    "print_error",
    "report_unexpected",
]
