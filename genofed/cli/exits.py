"""Exit codes of ``genofed`` and the mapping from GenoFed errors to them.

Both halves of the command line use it: :mod:`genofed.cli.analyst` (which
documents each code in its docstring, and a test checks that) and
:mod:`genofed.cli.deploy`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.markup import escape

from genofed.common.errors import GenoFedError, HarmonizationError, InputError, SiteFailure

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_INPUT = 2
EXIT_SITE = 3
EXIT_HARMONIZATION = 4

#: Standard error, where messages and progress go.
console = Console(stderr=True)


@contextmanager
def cli_errors() -> Iterator[None]:
    """Map GenoFed errors to messages and documented exit codes."""
    try:
        yield
    except InputError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(EXIT_INPUT) from exc
    except SiteFailure as exc:
        console.print(f"[bold red]site failure:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(EXIT_SITE) from exc
    except HarmonizationError as exc:
        console.print(f"[bold red]harmonization:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(EXIT_HARMONIZATION) from exc
    except GenoFedError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(EXIT_INPUT) from exc


__all__ = [
    "EXIT_HARMONIZATION",
    "EXIT_INPUT",
    "EXIT_INTERNAL",
    "EXIT_OK",
    "EXIT_SITE",
    "cli_errors",
    "console",
]
