"""``genofed-site report``: one self-contained HTML page for the site's privacy officer.

The page answers "what left this hospital, for which study, decided by whom,
at what privacy cost, and does the log that says so verify":

* the audit log's verification (:func:`genofed.site_agent.audit.verify.verify_path`,
  with the key the officer passes or the site's own), its size and latest
  signed checkpoint;
* the privacy budget: epsilon spent in the current period as the ledger
  composes it (RDP, at the budget's delta), with each charge's epsilon alone
  beside it (their plain sum overstates the spending, and the page says so
  wherever a sum appears); a plot of the composed epsilon over time in each
  budget period against the policy's budget (dates on the time axis; "no
  charges yet" when there are none), and the charges as a table;
* the studies the site has seen, keyed by hash and signer (two analysts who
  sign the same study content are two rows), with their decisions, the
  composed epsilon of their charges and each charge
  (:func:`genofed.site_agent.node.admin_state.list_studies`);
* every release, grouped by study (hash and signer) and analysis, one line
  each (time, request and round, each array as name, shape and a short
  SHA-256, its epsilon or "replay of entry N, not charged"), the full record
  (hashes, audit index, run, noise) in a ``<details>`` element that opens on
  a click without any script;
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
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import genofed
from genofed.common.accounting import charges_text
from genofed.common.checkpoint import rfc3339
from genofed.common.clock import Clock, utc_now
from genofed.common.errors import GenoFedError, InputError
from genofed.common.messages import ArraySpec, AuditEntry, AuditKind
from genofed.protos.v1 import site_admin_pb2 as sa
from genofed.site_agent.audit.verify import Verification, verify_path
from genofed.site_agent.node import admin_state

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: The shortest time span the budget plot's axis shows (so its ticks are dates, not seconds).
_MIN_SPAN = timedelta(days=7)
#: Characters of a hash shown in a release's line (the full hash is in its details).
_SHORT = 12
#: What the plot and the page say before any dp release was charged.
NO_CHARGES = "no charges yet"

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;
max-width:1100px;color:#1d2733;line-height:1.4;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;
border-bottom:2px solid #d9e2ec;padding-bottom:.2rem}
.meta{color:#52606d;font-size:.9rem}
table{border-collapse:collapse;width:100%;font-size:.85rem;margin:.5rem 0}
th,td{border:1px solid #d9e2ec;padding:.3rem .45rem;text-align:left;vertical-align:top}
th{background:#f0f4f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.8rem}
code{white-space:nowrap}
section.release-study{border:1px solid #d9e2ec;border-radius:6px;margin:.8rem 0;
padding:.3rem .7rem .5rem}
section.release-study h3{font-size:1rem;margin:.3rem 0}h4{font-size:.9rem;margin:.5rem 0 .2rem}
details.release{font-size:.85rem;border-top:1px solid #eef2f6;padding:.15rem 0}
details.release summary{cursor:pointer;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
details.release .arrays code{margin-right:.6rem}
details.release[open]{background:#f8fafc}
details.release .full{margin:.3rem 0 .5rem 1.2rem}
details.release .full code,details.release .full pre{white-space:pre-wrap;overflow-wrap:anywhere}
details.release .full table.facts th{width:9rem}
details.release .full table{width:auto;max-width:100%}details.release .full pre{margin:0}
.replay{color:#8d2b0b;font-weight:600}.charged{font-weight:600}
.empty{color:#52606d;font-style:italic}
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


def _charge_points(budget: sa.BudgetReport) -> dict[str, list[tuple[datetime, float]]]:
    """Per budget period, (time, composed epsilon after it) of each charge, oldest first."""
    periods: dict[str, list[tuple[datetime, float]]] = {}
    for charge in budget.charges:
        when = _parse_time(charge.time)
        if when is not None:
            periods.setdefault(charge.period, []).append((when, charge.epsilon_spent_after))
    return periods


def budget_figure(budget: sa.BudgetReport, *, now: datetime) -> Figure:
    """Epsilon spent over time (composed), one step line per budget period, and the budget.

    The time axis shows dates (at least :data:`_MIN_SPAN`, so charges made
    seconds apart do not give an axis of seconds); without any charge the
    plot says :data:`NO_CHARGES` and has no time axis (not one of 1970).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import AutoDateFormatter, AutoDateLocator
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    periods = _charge_points(budget)
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    lo, hi = now, now
    for period, points in sorted(periods.items()):
        times = [points[0][0], *(t for t, _ in points)]
        spent = [0.0, *(s for _, s in points)]
        if period == budget.current_period:
            times.append(max(now, times[-1]))
            spent.append(spent[-1])
        lo, hi = min(lo, times[0]), max(hi, times[-1])
        ax.step(times, spent, where="post", linewidth=1.8, label=f"spent in {period}")
        ax.plot(times[1:], spent[1:], "o", markersize=3, color="#1d2733")
    top = max((s for points in periods.values() for _, s in points), default=0.0)
    budget_label = f"budget ε = {budget.epsilon:g} per {budget.period}"
    if budget.has_budget and top > 0 and budget.epsilon > 4 * top:
        # a budget far above the spending would flatten the steps: say where it is instead
        ax.set_ylim(bottom=0, top=top * 1.3)
        ax.text(
            0.99,
            0.97,
            f"{budget_label} (above this scale)",
            ha="right",
            va="top",
            transform=ax.transAxes,
            color="#e12d39",
            fontsize=8,
        )
    elif budget.has_budget:
        ax.axhline(
            budget.epsilon, color="#e12d39", linestyle="--", linewidth=1.2, label=budget_label
        )
        ax.set_ylim(bottom=0)
    else:
        ax.set_ylim(bottom=0)
    if periods:
        span = hi - lo
        pad = max(span * 0.03, timedelta(hours=3))
        left = min(lo - pad, hi + pad - _MIN_SPAN)
        ax.set_xlim(left, hi + pad)  # type: ignore[arg-type]  # matplotlib takes datetimes
        locator = AutoDateLocator(minticks=3, maxticks=8)
        formatter = AutoDateFormatter(locator)
        formatter.scaled = {
            365.0: "%Y",
            30.0: "%b %Y",
            1.0: "%d %b %Y",
            1 / 24: "%d %b %H:%M",
            1 / (24 * 60): "%H:%M",
        }
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(formatter)
        ax.set_xlabel("date (UTC)")
    else:
        ax.set_xticks([])
        ax.set_xlabel("time (UTC): nothing charged")
        ax.text(
            0.5,
            0.5,
            NO_CHARGES,
            ha="center",
            va="center",
            transform=ax.transAxes,
            color="#52606d",
            fontsize=14,
        )
    ax.set_ylabel("ε spent (composed)")
    ax.set_title("Privacy budget used over time")
    if periods or budget.has_budget:
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def budget_plot_png(budget: sa.BudgetReport, *, now: datetime) -> bytes:
    """The budget plot (:func:`budget_figure`) as PNG bytes."""
    buffer = io.BytesIO()
    budget_figure(budget, now=now).savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _noise_doc(noise: str) -> object:
    try:
        return json.loads(noise) if noise else {}
    except ValueError:
        return noise


def replay_of(entry: AuditEntry) -> int | None:
    """The audit index of the charged release a replay entry repeats, or None."""
    doc = _noise_doc(entry.noise)
    if isinstance(doc, dict) and doc.get("mechanism") == "replay":
        index = doc.get("replay_of_audit_index")
        return index if isinstance(index, int) and not isinstance(index, bool) else None
    return None


def _short_time(text: str) -> str:
    moment = _parse_time(text)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if moment else text


def _shape(array: ArraySpec) -> str:
    return "×".join(str(d) for d in array.shape) or "scalar"


def _hash_code(full: str, n: int = _SHORT) -> str:
    """A truncated hash in a line, the whole one in its tooltip."""
    short = full if len(full) <= n else full[:n] + "…"
    return f'<code title="{_e(full)}">{_e(short)}</code>'


def _analyst_html(analyst: str) -> str:
    if not analyst:
        return '<span class="empty">not recorded</span>'
    if analyst == admin_state.UNSIGNED:
        return "unsigned"
    if analyst.startswith("ed25519:"):  # a key the policy does not name
        return _hash_code(analyst, 20)
    return _e(analyst)


def _signed_by(analyst: str) -> str:
    """ "signed by alice", "unsigned", "signer not recorded" (a group's heading)."""
    if not analyst:
        return '<span class="empty">signer not recorded</span>'
    if analyst == admin_state.UNSIGNED:
        return "unsigned"
    return f"signed by {_analyst_html(analyst)}"


def _epsilon_html(entry: AuditEntry) -> str:
    replayed = replay_of(entry)
    if replayed is not None:
        return f'<span class="replay">replay of entry {replayed}, not charged</span>'
    if entry.epsilon > 0 or entry.delta > 0:
        return f'<span class="charged">ε {entry.epsilon:.4g}</span> (δ {entry.delta:g})'
    return "not charged"


def _release_details(entry: AuditEntry, analyst: str) -> str:
    arrays = "".join(
        f"<tr><td><code>{_e(a.name)}</code></td><td>{_e(a.dtype)}</td>"
        f"<td>{_e(_shape(a))}</td><td><code>{_e(a.sha256)}</code></td></tr>"
        for a in entry.arrays
    )
    doc = _noise_doc(entry.noise)
    noise = json.dumps(doc, indent=1, sort_keys=True) if isinstance(doc, dict) else str(doc)
    facts = [
        ("audit index", str(entry.index)),
        ("time (UTC)", _e(entry.time)),
        ("study SHA-256", f"<code>{_e(entry.study_sha256)}</code>"),
        ("signed by", _analyst_html(analyst)),
        ("signer key", f"<code>{_e(entry.signer)}</code>" if entry.signer else "none recorded"),
        ("coordinator run", f"<code>{_e(entry.run_id)}</code>"),
        ("request", _e(f"{entry.request_kind}, step {entry.step or '-'}, round {entry.round}")),
        ("ε of this release alone", f"{entry.epsilon:.6g} (δ {entry.delta:g})"),
        ("noise", f"<pre>{_e(noise)}</pre>"),
    ]
    check = doc.get("membership") if isinstance(doc, dict) else None
    if isinstance(check, dict):  # the membership check of a count release (membership_release.py)
        facts.append(
            (
                "membership test power (estimated)",
                _e(
                    f"{check.get('power')} after withholding {check.get('variants_withheld')} "
                    f"of {check.get('variants_checked')} variants (before: "
                    f"{check.get('power_before')}; limit {check.get('max_power')} at "
                    f"false-positive rate {check.get('fpr')}; reference: {check.get('reference')})"
                ),
            )
        )
    if entry.sample_sets:
        sets = "<br>".join(f"<code>{_e(s)}</code>" for s in entry.sample_sets)
        facts.append((f"sample sets ({len(entry.sample_sets)})", sets))
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in facts)
    return (
        f'<div class="full"><table class="facts"><tbody>{rows}</tbody></table>'
        "<table><thead><tr><th>array</th><th>dtype</th><th>shape</th><th>SHA-256</th></tr>"
        f"</thead><tbody>{arrays}</tbody></table></div>"
    )


def _release_line(entry: AuditEntry, analyst: str) -> str:
    """One release: a one-line summary; its full record opens beneath it (no script)."""
    arrays = "".join(
        f"<code>{_e(a.name)} [{_e(_shape(a))}] {_e(a.sha256[:_SHORT])}</code>" for a in entry.arrays
    )
    return (
        f'<details class="release" id="release-{entry.index}" data-index="{entry.index}">'
        f"<summary>#{entry.index} · {_e(_short_time(entry.time))} · "
        f"{_e(entry.request_kind)} round {entry.round} · {_epsilon_html(entry)} · "
        f'<span class="arrays">{arrays or "(no array)"}</span></summary>'
        f"{_release_details(entry, analyst)}</details>"
    )


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def _releases_html(
    entries: Iterable[AuditEntry], keys: admin_state.StudyKeys, names: Mapping[str, str]
) -> str:
    """Releases grouped by study (hash and signer), then by analysis; one line each."""
    groups: dict[tuple[str, str], dict[str, list[AuditEntry]]] = {}
    for entry in entries:
        if entry.kind == AuditKind.RELEASE:
            analyses = groups.setdefault(keys.key(entry), {})
            analyses.setdefault(entry.analysis_id, []).append(entry)
    if not groups:
        return '<p id="releases" class="empty">Nothing has left this site.</p>'
    out = []
    for (sha, analyst), analyses in groups.items():
        releases = [e for group in analyses.values() for e in group]
        charged = [e.epsilon for e in releases if e.epsilon > 0]
        replays = sum(1 for e in releases if replay_of(e) is not None)
        name = names.get(sha, "")
        replayed = f"; {_count(replays, 'replay')}, not charged" if replays else ""
        head = (
            f"{_e(name) or 'study'} {_hash_code(sha, 16)} · {_signed_by(analyst)}"
            f' <span class="meta">{_count(len(releases), "release")}; '
            f"charges: {charges_text(charged)}{replayed}</span>"
        )
        body = "".join(
            f'<h4 data-analysis="{_e(analysis)}">analysis {_e(analysis or "-")} '
            f'<span class="meta">({len(group)})</span></h4>'
            + "".join(_release_line(e, analyst) for e in group)
            for analysis, group in analyses.items()
        )
        out.append(
            f'<section class="release-study" data-study="{_e(sha)}" data-analyst="{_e(analyst)}">'
            f"<h3>{head}</h3>{body}</section>"
        )
    return f'<div id="releases">{"".join(out)}</div>'


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
    """The budget plot as an inline image; a note without charges or without matplotlib."""
    if not budget.charges:
        return (
            f'<p id="budget-plot" class="empty" data-empty="true">Budget plot: {NO_CHARGES}. '
            "No dp release has been charged to this site's privacy budget.</p>"
        )
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


def _budget_line(budget: sa.BudgetReport) -> str:
    """The period's composed epsilon, with each of its charges beside it."""
    if not budget.has_budget:
        return (
            '<p id="budget-summary">This site\'s policy has no privacy budget: every dp release '
            "is refused.</p>"
        )
    charges = [c.epsilon for c in budget.charges if c.period == budget.current_period]
    if not charges:
        return (
            f'<p id="budget-summary" data-epsilon-composed="0.0">ε = 0 of {budget.epsilon:g} '
            f"spent in {_e(budget.current_period)}: {NO_CHARGES} (δ = {budget.delta:g}, "
            f"budget per {_e(budget.period)}).</p>"
        )
    plain = sum(charges)
    beside = (
        f"; per-release charges: {charges_text(charges)} (their plain sum, {plain:.4g}, "
        "overstates the composed spending)"
        if len(charges) > 1
        else f"; per-release charges: {charges_text(charges)}"
    )
    return (
        f'<p id="budget-summary" data-epsilon-composed="{budget.epsilon_spent!r}">'
        f"<strong>ε = {budget.epsilon_spent:.4g} composed</strong> of {budget.epsilon:g} spent "
        f"in {_e(budget.current_period)} (δ = {budget.delta:g}, budget per {_e(budget.period)}; "
        f"RDP composition of the period's {len(charges)} charges, as the ledger checks it"
        f"{beside}).</p>"
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
    keys = admin_state.StudyKeys.of_site(site_dir)
    entries = list(admin_state.audit_entries(site_dir))
    names = {s.study_sha256: s.study_name for s in studies.studies if s.study_name}
    plot = _budget_plot_html(budget, now)

    def study_cell(sha: str) -> str:
        name = names.get(sha, "")
        return (f"{_e(name)}<br>" if name else "") + _hash_code(sha, 16)

    charges = _table(
        "charges",
        (
            "time (UTC)",
            "period",
            "study",
            "analysis",
            "run",
            "noise multiplier",
            "ε of this release alone",
            "ε composed in its period, after it",
        ),
        (
            (
                _e(_short_time(c.time)),
                _e(c.period),
                study_cell(c.study_sha256),
                _e(c.analysis_id),
                _hash_code(c.run_id, 16),
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
            "signed by",
            "decision",
            "decided by",
            "when",
            "reason",
            "requests",
            "releases",
            "refusals",
            "ε composed (its charges)",
            "per-release ε charges",
        ),
        (
            (
                study_cell(s.study_sha256),
                _analyst_html(s.analyst),
                f'<span class="decision-{_e(s.status)}">{_e(s.status)}</span>',
                _e(s.decided_by),
                _e(s.decided_at or s.first_seen),
                _e(s.reason),
                str(s.n_requests),
                str(s.n_releases),
                str(s.n_refusals),
                f"{s.epsilon_composed:.4g}",
                _e(charges_text(list(s.epsilon_charges))),
            )
            for s in studies.studies
        ),
        "This site has not seen any study.",
    )
    releases = _releases_html(entries, keys, names)
    refusals = _table(
        "refusals",
        ("#", "time (UTC)", "kind", "study", "request", "decision", "reason"),
        (
            (
                str(e.index),
                _e(_short_time(e.time)),
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
{_budget_line(budget)}
{plot}
{charges}
<h2>Studies and decisions</h2>
<p class="meta">One row per study hash and signer: two analysts who sign the same study
content send the same hash, and the decision (made per hash) covers both.</p>
{study_rows}
<h2>Releases: what left the site</h2>
<p class="meta">Grouped by study and analysis, one line per release; click a line for its
full record (every SHA-256, the audit entry, the noise).</p>
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


__all__ = [
    "NO_CHARGES",
    "budget_figure",
    "budget_plot_png",
    "render_report",
    "replay_of",
    "write_report",
]
