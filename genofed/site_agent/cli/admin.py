"""``genofed-site status``, ``budget`` and ``report``: the site at a glance, for its own staff.

Each admin command asks the running agent's SiteAdmin service
(:mod:`genofed.site_agent.admin`) when ``genofed-site up`` is serving the
site directory, and reads the state directly when it is not; a line on
standard error says which. ``genofed-site audit show`` does the same
(:func:`agent_for`), and so does ``genofed-site studies``
(:func:`approvals_via_agent`).

Exit codes are those of ``genofed-site`` (:mod:`genofed.site_agent.cli.main`):
0 success, 1 unexpected error, 2 bad input.

Examples::

    genofed-site status site-a
    genofed-site budget site-a --json
    genofed-site report site-a --out report.html  # reads the state (audit/report.py)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from google.protobuf import json_format
from google.protobuf.message import Message
from rich.markup import escape
from rich.table import Table

from genofed.common.errors import InputError
from genofed.protos.v1 import site_admin_pb2 as sa
from genofed.site_agent.admin import AdminClient, connect
from genofed.site_agent.cli.exits import console, run_guarded
from genofed.site_agent.node import admin_state
from genofed.site_agent.node.supernode import STATE_DIRNAME
from genofed.site_agent.privacy import approvals
from genofed.site_agent.sitedir import SITE_CONFIG

T = TypeVar("T")
_err = console(stderr=True)


def agent_for(site_dir: Path, *, quiet: bool = False) -> AdminClient | None:
    """The running agent's admin client for ``site_dir``, or None (then read the state)."""
    client = connect(Path(site_dir) / STATE_DIRNAME)
    if not quiet:
        if client is None:
            _err.print("(site agent not running: reading the site's state directly)", style="dim")
        else:
            _err.print(
                f"(from the running site agent at {client.address})", style="dim", markup=False
            )
    return client


def approvals_via_agent(site_dir: Path) -> list[approvals.StudyApproval] | None:
    """The approvals as the running agent reports them; None when no agent runs."""
    client = agent_for(site_dir)
    if client is None:
        return None
    with client:
        got = client.studies()
    return [
        approvals.StudyApproval(
            study_sha256=r.study_sha256,
            status=r.status,
            reason=r.reason,
            decided_by=r.decided_by,
            decided_at=r.decided_at,
            first_seen=r.first_seen,
            study_name=r.study_name,
            analyst=r.analyst,
        )
        for r in got.studies
        if r.status in approvals.STATUSES
    ]


def _ask(site_dir: Path, remote: Callable[[AdminClient], T], local: Callable[[], T]) -> T:
    if not (Path(site_dir) / SITE_CONFIG).is_file():
        raise InputError(
            "not a site directory (no site.toml)",
            path=site_dir,
            hint="pass the directory made by `genofed-site init`",
        )
    client = agent_for(site_dir)
    if client is None:
        return local()
    with client:
        return remote(client)


def _json(message: Message) -> str:
    return json_format.MessageToJson(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def status(
    directory: Annotated[Path, typer.Argument(help="Site directory holding site.toml.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Show the site, its policy in brief, its audit log and privacy budget.

    Example:

        genofed-site status site-a
    """
    got = run_guarded(
        lambda: _ask(
            directory,
            lambda c: (c.status(), c.budget()),
            lambda: (admin_state.site_status(directory), admin_state.budget_report(directory)),
        )
    )
    st, budget = got
    out = console()
    if as_json:
        doc = f'{{"status": {_json(st)}, "budget": {_json(budget)}}}'
        out.print(doc, highlight=False, markup=False)
        return
    table = Table(title=f"site {escape(st.site)}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    running = f"yes (pid {st.pid}, since {st.started}, to {st.superlink})" if st.pid else "no"
    rows = [
        ("agent running", running),
        ("GenoFed", st.software_version),
        ("policy", "DEMO (synthetic data only)" if st.demo_policy else "site policy"),
        ("allowed analyses", ", ".join(st.allowed_analyses) or "none"),
        ("audit entries", str(st.audit_entries)),
        ("audit key", st.audit_key_id),
        (
            "latest checkpoint",
            f"size {st.latest_checkpoint.tree_size} at {st.latest_checkpoint.time}",
        ),
        ("privacy budget", _budget_line(budget)),
        ("disclosure guard", st.disclosure_guard or "off"),
        ("cohort snapshot", st.cohort_snapshot or "none"),
    ]
    for what, value in rows:
        table.add_row(what, escape(value))
    out.print(table)


def _budget_line(b: sa.BudgetReport) -> str:
    if not b.has_budget:
        return "none (every dp release is refused)"
    return (
        f"epsilon {b.epsilon_spent:.4g} of {b.epsilon:g} spent in {b.current_period} "
        f"(delta {b.delta:g}, per {b.period})"
    )


def budget(
    directory: Annotated[Path, typer.Argument(help="Site directory holding site.toml.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Show the privacy budget and every charge against it.

    Example:

        genofed-site budget site-a
    """
    b = run_guarded(
        lambda: _ask(directory, lambda c: c.budget(), lambda: admin_state.budget_report(directory))
    )
    out = console()
    if as_json:
        out.print(_json(b), highlight=False, markup=False)
        return
    out.print(_budget_line(b))
    table = Table(title="charges")
    for column in ("time (UTC)", "period", "study", "analysis", "run", "z", "ε", "ε spent after"):
        table.add_column(column)
    for c in b.charges:
        table.add_row(
            escape(c.time[:19].replace("T", " ")),
            escape(c.period),
            escape(c.study_sha256[:12]),
            escape(c.analysis_id),
            escape(c.run_id),
            f"{c.noise_multiplier:.4g}",
            f"{c.epsilon:.4g}",
            f"{c.epsilon_spent_after:.4g}",
        )
    out.print(table)
    if not b.charges:
        out.print("no charges yet")


def report(
    directory: Annotated[Path, typer.Argument(help="Site directory holding site.toml.")],
    out: Annotated[Path, typer.Option(help="The HTML file to write, e.g. report.html.")],
    pubkey: Annotated[
        Path | None,
        typer.Option(help="Verify the log with this audit public key (default: the site's own)."),
    ] = None,
) -> None:
    """Write one self-contained HTML page for the privacy officer.

    Budget used over time (a plot), studies and decisions, every release with
    what left the site, and whether the audit log verifies. Open it in any
    browser; it needs no network.

    Example:

        genofed-site report site-a --out report.html --pubkey site-a-audit.pub
    """
    from genofed.site_agent.audit.report import write_report

    def action() -> Path:
        if not (Path(directory) / SITE_CONFIG).is_file():
            raise InputError(
                "not a site directory (no site.toml)",
                path=directory,
                hint="pass the directory made by `genofed-site init`",
            )
        key = None
        if pubkey is not None:
            if not pubkey.is_file():
                raise InputError("public key file not found", path=pubkey)
            key = pubkey.read_bytes()
        return write_report(directory, out, public_key_pem=key)

    written = run_guarded(action)
    console().print(f"report written: {escape(str(written))}")


__all__ = ["agent_for", "approvals_via_agent", "budget", "report", "status"]
