"""The exit codes of ``genofed`` beyond :mod:`genofed.cli.exits`, and what maps to them.

:func:`run_errors` goes inside :func:`genofed.cli.exits.cli_errors` around a
command's work: it turns the failures of running a study or talking to the
coordinator into their own codes before ``cli_errors`` would call them bad
input. The table of every code is the docstring of :mod:`genofed.cli.analyst`
(a test checks that each constant is documented there and each documented
code is raised somewhere).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.text import Text

from genofed.cli.exits import EXIT_INTERNAL, console
from genofed.common.errors import StudyTimeout, TooFewSites, UnreachableError
from genofed.coordinator.deploy.submit import RemoteInternalError

#: Fewer sites take part than the study needs (``[study] min_sites``, ``--sites``).
EXIT_TOO_FEW_SITES = 5
#: The coordinator cannot be reached, the connection to it was lost, or it stopped.
EXIT_UNREACHABLE = 6
#: A submitted study did not finish in the time ``genofed`` waits for it.
EXIT_TIMEOUT = 7
#: Interrupted (Ctrl-C, SIGINT): 128 + 2, as shells report it.
EXIT_INTERRUPTED = 130

#: The setting :func:`genofed.coordinator.runner.check_enough_sites` names.
MIN_SITES_KEY = "[study] min_sites"


def _say(label: str, message: str) -> None:
    console.print(Text.assemble((label, "bold red"), " ", message), soft_wrap=True)


@contextmanager
def run_errors(study_file: Path | None = None, *, remote: bool = False) -> Iterator[None]:
    """Map a run's failures to their exit codes; ``study_file`` is named for ``min_sites``.

    ``remote``: the study runs on a live federation, so an interrupted run may
    still be running on the coordinator.
    """
    try:
        yield
    except TooFewSites as exc:
        where = f"{study_file}: " if study_file is not None and exc.key == MIN_SITES_KEY else ""
        _say("too few sites:", f"{where}{exc}")
        raise typer.Exit(EXIT_TOO_FEW_SITES) from exc
    except UnreachableError as exc:
        _say("coordinator:", str(exc))
        raise typer.Exit(EXIT_UNREACHABLE) from exc
    except StudyTimeout as exc:
        _say("timed out:", str(exc))
        raise typer.Exit(EXIT_TIMEOUT) from exc
    except RemoteInternalError as exc:
        _say("coordinator error:", str(exc))
        raise typer.Exit(EXIT_INTERNAL) from exc
    except KeyboardInterrupt as exc:
        tail = (
            "; the study may still be running on the coordinator (flwr list / flwr stop)"
            if remote
            else "; no results were written"
        )
        _say("interrupted:", f"stopped by Ctrl-C{tail}")
        raise typer.Exit(EXIT_INTERRUPTED) from exc


__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_TIMEOUT",
    "EXIT_TOO_FEW_SITES",
    "EXIT_UNREACHABLE",
    "MIN_SITES_KEY",
    "run_errors",
]
