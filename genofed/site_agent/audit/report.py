"""``genofed-site report``: one self-contained HTML page for the site's privacy officer.

The page answers "what left this hospital, for which study, decided by whom,
at what privacy cost, and does the log that says so verify":

* the audit log's verification (:func:`genofed.site_agent.audit.verify.verify_path`,
  with the key the officer passes or the site's own), its size and latest
  signed checkpoint;
* the privacy budget: a plot of epsilon spent over time in each budget period
  (RDP composition of the ledger's charges, as the ledger computes it) against
  the policy's budget, and the charges as a table;
* the studies the site has seen, with their decisions (approvals database and
  audit log: :func:`genofed.site_agent.node.admin_state.list_studies`);
* every release: time, study, analysis, request, coordinator run, and each
  array that left (name, dtype, shape, SHA-256), with the noise and epsilon;
* every refusal and error, with its reason.

Self-contained: inline CSS, the plot embedded as a base64 PNG (matplotlib's
Agg canvas; matplotlib is the ``genofed[plot]`` extra, and without it the page
says so where the plot would be), no script and no external resource, so it can be mailed or
archived as one file and opened offline. It reads the site's state
directly (read-only; safe while the agent runs) because verification needs
the stored log itself, not a service's description of it.
"""

from __future__ import annotations

import base64
import html
import importlib.util
import io
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import genofed
from genofed.common.checkpoint import rfc3339
from genofed.common.clock import Clock, utc_now
from genofed.common.errors import GenoFedError, InputError
from genofed.common.messages import ArraySpec, AuditKind
from genofed.protos.v1 import site_admin_pb2 as sa
from genofed.site_agent.audit.verify import Verification, verify_path
from genofed.site_agent.node import admin_state

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;
max-width:1100px;color:#1d2733;line-height:1.4;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;
border-bottom:2px solid #d9e2ec;padding-bottom:.2rem}
.meta{color:#52606d;font-size:.9rem}
table{border-collapse:collapse;width:100%;font-size:.85rem;margin:.5rem 0}
th,td{border:1px solid #d9e2ec;padding:.3rem .45rem;text-align:left;vertical-align:top}
th{background:#f0f4f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.8rem;word-break:break-all}
.status{padding:.6rem .9rem;border-radius:6px;font-weight:600;margin:.5rem 0}
.ok{background:#e3f9e5;color:#05400a;border:1px solid #31b237}
.bad{background:#ffe3e3;color:#610404;border:1px solid #e12d39}
.demo{background:#fff3c4;color:#5c4813;border:1px solid #f0b429}
.decision-approved{color:#05400a;font-weight:600}.decision-refused{color:#610404;font-weight:600}
.decision-pending{color:#8d2b0b;font-weight:600}
img.plot{max-width:100%;border:1px solid #d9e2ec}
ul.problems{margin:.3rem 0 .3rem 1.2rem;font-size:.85rem}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _table(table_id: str, header: Sequence[str], rows: Iterable[Sequence[str]], empty: str) -> str:
    """An HTML table; cells are already-escaped HTML."""
    body = ["<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows]
    if not body:
        return f'<p id="{table_id}" class="empty">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    rows_html = "".join(body)
    return (
        f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{rows_html}</tbody></table>'
    )


def _parse_time(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def budget_plot_png(budget: sa.BudgetReport, *, now: datetime) -> bytes:
    """PNG of epsilon spent over time, one step line per budget period, and the budget."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    periods: dict[str, list[tuple[datetime, float]]] = {}
    for charge in budget.charges:
        when = _parse_time(charge.time)
        if when is not None:
            periods.setdefault(charge.period, []).append((when, charge.epsilon_spent_after))
    for period, points in sorted(periods.items()):
        times = [points[0][0], *(t for t, _ in points)]
        spent = [0.0, *(s for _, s in points)]
        if period == budget.current_period:
            times.append(max(now, times[-1]))
            spent.append(spent[-1])
        ax.step(times, spent, where="post", linewidth=1.8, label=f"spent in {period}")
        ax.plot(times[1:], spent[1:], "o", markersize=3, color="#1d2733")
    if budget.has_budget:
        ax.axhline(
            budget.epsilon,
            color="#e12d39",
            linestyle="--",
            linewidth=1.2,
            label=f"budget ε = {budget.epsilon:g} per {budget.period}",
        )
    if not periods:
        ax.text(
            0.5,
            0.5,
            "no dp release charged yet",
            ha="center",
            va="center",
            transform=ax.transAxes,
            color="#52606d",
        )
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.set_ylabel("ε spent (composed)")
    ax.set_xlabel("time (UTC)")
    ax.set_ylim(bottom=0)
    ax.set_title("Privacy budget used over time")
    if periods or budget.has_budget:
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _noise_text(noise: str) -> str:
    try:
        doc = json.loads(noise) if noise else {}
    except ValueError:
        return _e(noise)
    if not isinstance(doc, dict) or doc.get("mechanism", "none") == "none":
        return "none"
    return "<br>".join(f"{_e(k)}: {_e(v)}" for k, v in sorted(doc.items()))


def _arrays_html(arrays: Iterable[ArraySpec]) -> str:
    items = [
        f"<code>{_e(a.name)}</code> {_e(a.dtype)} [{_e('×'.join(str(d) for d in a.shape))}]"
        f"<br><code>sha256 {_e(a.sha256)}</code>"
        for a in arrays
    ]
    return "<br>".join(items) or "(none)"


def _verification_html(result: Verification | None, error: str, key_source: str) -> str:
    if result is None:
        return (
            '<div id="verification" class="status bad">Audit log could not be read: '
            f"{_e(error)}</div>"
        )
    if result.ok:
        head = (
            f'<div id="verification" class="status ok" data-verified="true">Audit log VERIFIED: '
            f"{result.n_entries} entries, {result.n_checkpoints} signed checkpoints, "
            f"key {_e(result.key_id)} ({_e(key_source)})</div>"
        )
    else:
        problems = "".join(f"<li>{_e(p)}</li>" for p in result.problems[:50])
        more = (
            f"<li>… and {len(result.problems) - 50} more</li>" if len(result.problems) > 50 else ""
        )
        head = (
            f'<div id="verification" class="status bad" data-verified="false">Audit log does NOT '
            f"verify ({len(result.problems)} problems; key {_e(result.key_id)}, {_e(key_source)})"
            f'</div><ul class="problems">{problems}{more}</ul>'
        )
    if result.latest is not None:
        cp = result.latest
        head += (
            '<p class="meta" id="latest-checkpoint">Latest signed checkpoint: tree size '
            f"{cp.tree_size}, root <code>{_e(cp.root_hash.hex())}</code>, signed at {_e(cp.time)}. "
            "Save it (genofed-site audit verify --save-checkpoint) to detect any later rewrite.</p>"
        )
    return head


def _budget_plot_html(budget: sa.BudgetReport, now: datetime) -> str:
    """The budget plot as an inline image, or a note where it would be without matplotlib."""
    if importlib.util.find_spec("matplotlib") is None:
        return (
            '<p id="budget-plot" class="meta">The budget plot needs matplotlib, which '
            "this install does not have (pip install 'genofed[plot]'); the charges are listed "
            "below.</p>"
        )
    png = base64.b64encode(budget_plot_png(budget, now=now)).decode("ascii")
    return (
        '<img id="budget-plot" class="plot" alt="Privacy budget used over time"\n'
        f' src="data:image/png;base64,{png}">'
    )


def render_report(
    site_dir: Path, *, public_key_pem: bytes | None = None, clock: Clock = utc_now
) -> str:
    """The report's HTML for ``site_dir`` (see the module docstring)."""
    now = clock()
    status = admin_state.site_status(site_dir)
    try:
        verification: Verification | None = verify_path(site_dir, public_key_pem=public_key_pem)
        error = ""
    except GenoFedError as exc:
        verification, error = None, str(exc)
    key_source = "the key you gave" if public_key_pem is not None else "the site's own audit.pub"
    budget = admin_state.budget_report(site_dir, clock=lambda: now)
    studies = admin_state.list_studies(site_dir)
    entries = list(admin_state.audit_entries(site_dir))
    names = {s.study_sha256: s.study_name for s in studies.studies if s.study_name}
    plot = _budget_plot_html(budget, now)

    def study_cell(sha: str) -> str:
        name = names.get(sha, "")
        return (
            f"{_e(name)}<br>" if name else ""
        ) + f'<code title="{_e(sha)}">{_e(sha[:16])}</code>'

    budget_line = (
        f"ε = {budget.epsilon_spent:.4g} of {budget.epsilon:g} spent "
        f"in {_e(budget.current_period)} "
        f"(δ = {budget.delta:g}, budget per {_e(budget.period)})"
        if budget.has_budget
        else "This site's policy has no privacy budget: every dp release is refused."
    )
    charges = _table(
        "charges",
        (
            "time (UTC)",
            "period",
            "study",
            "analysis",
            "run",
            "noise multiplier",
            "ε",
            "ε spent after",
        ),
        (
            (
                _e(c.time),
                _e(c.period),
                study_cell(c.study_sha256),
                _e(c.analysis_id),
                f"<code>{_e(c.run_id)}</code>",
                f"{c.noise_multiplier:.4g}",
                f"{c.epsilon:.4g}",
                f"{c.epsilon_spent_after:.4g}",
            )
            for c in budget.charges
        ),
        "No privacy budget has been charged.",
    )
    study_rows = _table(
        "studies",
        (
            "study",
            "decision",
            "decided by",
            "when",
            "reason",
            "requests",
            "releases",
            "refusals",
            "ε charged",
        ),
        (
            (
                study_cell(s.study_sha256),
                f'<span class="decision-{_e(s.status)}">{_e(s.status)}</span>',
                _e(s.decided_by),
                _e(s.decided_at or s.first_seen),
                _e(s.reason),
                str(s.n_requests),
                str(s.n_releases),
                str(s.n_refusals),
                f"{s.epsilon_charged:.4g}",
            )
            for s in studies.studies
        ),
        "This site has not seen any study.",
    )
    releases = _table(
        "releases",
        (
            "#",
            "time (UTC)",
            "study",
            "analysis",
            "request",
            "run",
            "what left the site",
            "noise",
            "ε",
            "δ",
        ),
        (
            (
                str(e.index),
                _e(e.time),
                study_cell(e.study_sha256),
                _e(e.analysis_id),
                _e(f"{e.request_kind} (round {e.round})"),
                f"<code>{_e(e.run_id)}</code>",
                _arrays_html(e.arrays),
                _noise_text(e.noise),
                f"{e.epsilon:.4g}",
                f"{e.delta:g}",
            )
            for e in entries
            if e.kind == AuditKind.RELEASE
        ),
        "Nothing has left this site.",
    )
    refusals = _table(
        "refusals",
        ("#", "time (UTC)", "kind", "study", "request", "decision", "reason"),
        (
            (
                str(e.index),
                _e(e.time),
                "decision" if e.kind == AuditKind.DECISION else "refusal",
                study_cell(e.study_sha256),
                _e(e.request_kind or e.analysis_id),
                _e(e.decision),
                _e(e.reason),
            )
            for e in entries
            if e.kind in (AuditKind.REFUSAL, AuditKind.DECISION)
        ),
        "No refusal or decision is recorded.",
    )
    demo = (
        '<div class="status demo">DEMO POLICY: this site accepts unsigned studies; '
        "for synthetic data only.</div>"
        if status.demo_policy
        else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>GenoFed privacy report: {_e(status.site)}</title>
<style>{_CSS}</style></head>
<body>
<h1 id="title">Privacy report: site {_e(status.site)}</h1>
<p class="meta">Generated {_e(rfc3339(now))} by GenoFed {_e(genofed.__version__)} from
<code>{_e(os.path.abspath(site_dir))}</code>. Allowed analyses:
{_e(", ".join(status.allowed_analyses) or "none")}.</p>
{demo}
<h2>Audit log</h2>
{_verification_html(verification, error, key_source)}
<h2>Privacy budget</h2>
<p id="budget-summary">{budget_line}</p>
{plot}
{charges}
<h2>Studies and decisions</h2>
{study_rows}
<h2>Releases: what left the site</h2>
{releases}
<h2>Refusals and decisions</h2>
{refusals}
</body></html>
"""


def write_report(
    site_dir: Path, out: Path, *, public_key_pem: bytes | None = None, clock: Clock = utc_now
) -> Path:
    """Write the report to ``out`` (through a temporary file and a rename); returns ``out``."""
    out = Path(os.path.abspath(out))
    if out.is_dir():
        raise InputError("is a directory", path=out, hint="pass a file name, e.g. report.html")
    page = render_report(site_dir, public_key_pem=public_key_pem, clock=clock)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(page)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


__all__ = ["budget_plot_png", "render_report", "write_report"]
