"""``genofed-site approve / refuse / studies``: the privacy officer's study approvals.

Each command works on one site directory (``--site DIR``, default: the
current directory, or ``$GENOFED_SITE``). A study hash may be given in full
or, for a study this site has already seen, as a unique prefix of at least
8 digits. Every approval and refusal is also an audit log entry
(:mod:`genofed.site_agent.privacy.approvals`). Exit codes as ``genofed-site``: 0 ok,
2 bad input (unknown hash, a refused study, no reason given...).
"""

from __future__ import annotations

import getpass
import json
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from genofed.common.errors import InputError
from genofed.site_agent.cli.exits import console, run_guarded
from genofed.site_agent.privacy import approvals

log = logging.getLogger("genofed.site")

SiteOption = Annotated[
    Path,
    typer.Option(
        "--site", envvar="GENOFED_SITE", help="Site directory (default: the current directory)."
    ),
]
ByOption = Annotated[
    str | None, typer.Option("--by", help="Who decides (default: your login name).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
_STYLE = {approvals.APPROVED: "green", approvals.REFUSED: "red", approvals.PENDING: "yellow"}


def _who(by: str | None) -> str:
    if by:
        return by
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown user"


def _print_one(record: approvals.StudyApproval, as_json: bool) -> None:
    out = console()
    if as_json:
        out.print_json(json.dumps(record.to_json()))
        return
    style = _STYLE.get(record.status, "")
    out.print(
        f"study {record.study_sha256}: [{style}]{record.status}[/] by {escape(record.decided_by)} "
        f"at {record.decided_at}" + (f" ({escape(record.reason)})" if record.reason else "")
    )


def approve_cmd(
    study_hash: Annotated[str, typer.Argument(help="The study's SHA-256 (or a unique prefix).")],
    site: SiteOption = Path("."),
    by: ByOption = None,
    reason: Annotated[str, typer.Option(help="Optional note kept with the approval.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Approve a study by its hash, so that this site runs it. A refused study stays refused.

    Example:

        genofed-site approve 3fa2c9e1 --site /srv/genofed/st-mary
    """

    def action() -> approvals.StudyApproval:
        full = approvals.resolve_hash(site, study_hash)
        return approvals.approve(site, full, by=_who(by), reason=reason)

    _print_one(run_guarded(action), as_json)


def refuse_cmd(
    study_hash: Annotated[str, typer.Argument(help="The study's SHA-256 (or a unique prefix).")],
    reason: Annotated[str, typer.Option(help="Why; the analyst sees it.")],
    site: SiteOption = Path("."),
    by: ByOption = None,
    as_json: JsonOption = False,
) -> None:
    """Refuse a study by its hash, for good; the analyst sees the reason.

    Example:

        genofed-site refuse 3fa2c9e1 --reason "covariates not in our data agreement"
    """

    def action() -> approvals.StudyApproval:
        full = approvals.resolve_hash(site, study_hash)
        return approvals.refuse(site, full, by=_who(by), reason=reason)

    _print_one(run_guarded(action), as_json)


def studies_cmd(
    site: SiteOption = Path("."),
    status: Annotated[
        str | None, typer.Option(help="Only this status: pending, approved or refused.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List the studies this site has seen or decided: pending, approved, refused.

    Example:

        genofed-site studies --site /srv/genofed/st-mary --status pending
    """

    def action() -> list[approvals.StudyApproval]:
        if status is not None and status not in approvals.STATUSES:
            raise InputError(
                f"--status must be one of {', '.join(approvals.STATUSES)}, not {status!r}"
            )
        from genofed.site_agent.cli.admin import approvals_via_agent  # SiteAdmin, if up

        rows = approvals_via_agent(site)
        if rows is None:  # the agent is not running: read the state directly
            rows = approvals.list_studies(site)
        return [r for r in rows if status is None or r.status == status]

    rows = run_guarded(action)
    out = console()
    if as_json:
        out.print_json(json.dumps([r.to_json() for r in rows]))
        return
    table = Table(title=f"studies at {escape(str(site))}")
    table.add_column("study", no_wrap=True, min_width=16)
    for column in ("name", "analyst", "status", "by", "when", "reason"):
        table.add_column(column, overflow="fold", no_wrap=column == "status")
    for r in rows:
        style = _STYLE.get(r.status, "")
        table.add_row(
            r.study_sha256[:16],
            escape(r.study_name),
            escape(r.analyst),
            f"[{style}]{r.status}[/]",
            escape(r.decided_by),
            r.decided_at or r.first_seen,
            escape(r.reason),
        )
    out.print(table)
    if not rows:
        out.print("no studies yet")


__all__ = ["approve_cmd", "refuse_cmd", "studies_cmd"]
