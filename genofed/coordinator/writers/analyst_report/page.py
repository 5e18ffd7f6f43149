"""The analyst's report page: the run, the sites, privacy, then one section per analysis.

Everything on the page comes from the run's provenance record (the same
document ``provenance.json`` holds: study, run, sites, privacy, summary,
which analysis wrote which file) and from the result files themselves.
Rendering does not depend on the clock or the machine, so the page written
by the run and one rendered again later from the results directory are the
same bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from genofed.common.accounting import Event, charged_event, charges_text, epsilon_of_events
from genofed.coordinator.writers.analyst_report._html import e, file_list, fmt, key_values, table
from genofed.coordinator.writers.analyst_report.sections import Analysis, Renderer, generic

log = logging.getLogger("genofed.coordinator")

#: The sites table's epsilon columns: this run's charges at each site, composed as the
#: site's ledger composes them, and each charge alone.
_COMPOSED = "ε composed (this run)"
_CHARGES = "per-release ε charges"
#: A site whose releases do not say enough to compose them: the sum, said to be one.
_SUM_ONLY = "sum of per-release ε; the site's composed spending is lower — see its report"
#: Replays listed in a site's cell before "… more".
_MAX_REPLAYS = 4
#: A parameter value longer than this is cut in the parameter line.
_MAX_PARAM_CHARS = 160

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;
max-width:1100px;color:#1d2733;line-height:1.4;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.25rem;margin-top:2.2rem;
border-bottom:2px solid #d9e2ec;padding-bottom:.2rem}h3{font-size:1rem;margin:1rem 0 .3rem}
.meta{color:#52606d;font-size:.9rem}.kind{color:#52606d;font-weight:400;font-size:.95rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
th,td{border:1px solid #d9e2ec;padding:.3rem .45rem;text-align:left;vertical-align:top}
th{background:#f0f4f8}table.kv th{width:16rem}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.8rem;word-break:break-all}
.status{padding:.6rem .9rem;border-radius:6px;font-weight:600;margin:.5rem 0}
.bad{background:#ffe3e3;color:#610404;border:1px solid #e12d39}
.demo{background:#fff3c4;color:#5c4813;border:1px solid #f0b429}
.logrank{background:#e6f6ff;border:1px solid #7fa7d1;border-radius:6px;padding:.4rem .7rem}
section.analysis{border-top:1px solid #d9e2ec;margin-top:1.5rem}
figure{margin:.6rem 0}img.plot{max-width:100%;border:1px solid #d9e2ec}
figcaption{font-size:.8rem;color:#52606d}ul.files{font-size:.85rem}
nav ol{columns:2;font-size:.9rem}.replay{color:#8d2b0b}
"""


def _param(value: object) -> str:
    text = fmt(value)
    return text if len(text) <= _MAX_PARAM_CHARS else text[: _MAX_PARAM_CHARS - 1] + "…"


def _header(doc: Mapping[str, Any]) -> str:
    study, run = doc.get("study", {}), doc.get("run", {})
    canonical = study.get("canonical", {})
    head = canonical.get("study", {})
    signer = study.get("signer_public_key")
    facts = {
        "study": study.get("name"),
        "description": head.get("description") or None,
        "study SHA-256": study.get("sha256"),
        "signed by": signer if signer else "unsigned",
        "run id": run.get("run_id"),
        "engine": run.get("engine"),
        "started (UTC)": run.get("started"),
        "finished (UTC)": run.get("finished"),
        "min_sites": head.get("min_sites"),
        "on_variant_mismatch": head.get("on_variant_mismatch"),
        "study variants": doc.get("harmonization", {}).get("n_study_variants"),
        "samples (sites taking part)": doc.get("n_samples_total"),
        "GenoFed": doc.get("versions", {}).get("genofed"),
    }
    return key_values({k: v for k, v in facts.items() if v is not None}, table_id="run")


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def site_epsilon(site: Mapping[str, Any]) -> tuple[float | None, bool, list[float], list[int]]:
    """(ε, composed?, each charge, audit indices replayed) of a site's releases in this run.

    ε composes the charged releases with the sites' accountant
    (:func:`genofed.common.accounting.epsilon_of_events`) from each release's
    noise record, at the delta the site charged, as the site's ledger does;
    when a record does not say its noise (or the deltas differ) ε is the plain
    sum and ``composed`` is False. A release answered from a stored charged
    one (``replay_of_audit_index``) charged nothing and is listed apart.
    ε is None when nothing was charged.
    """
    charges: list[float] = []
    events: list[Event] = []
    deltas: set[float] = set()
    replays: list[int] = []
    complete = True
    for release in site.get("releases", []):
        if not isinstance(release, dict):
            continue
        replayed = release.get("replay_of_audit_index")
        if isinstance(replayed, int) and not isinstance(replayed, bool):
            replays.append(replayed)
        epsilon = _number(release.get("epsilon_charged"))
        if not epsilon:
            continue
        charges.append(epsilon)
        noise = release.get("noise")
        event = charged_event(noise) if isinstance(noise, dict) else None
        receipt = release.get("receipt")
        delta = _number(receipt.get("delta_charged")) if isinstance(receipt, dict) else None
        if event is None or not delta:
            complete = False
        else:
            events.append(event)
            deltas.add(delta)
    if not charges:
        return None, False, charges, replays
    if complete and len(deltas) == 1:
        return epsilon_of_events(events, deltas.pop()), True, charges, replays
    return sum(charges), False, charges, replays


def _epsilon_cells(
    epsilon: float | None, composed: bool, charges: list[float], replays: list[int]
) -> list[str]:
    if epsilon is None:
        value = "not charged"
    elif composed:
        value = f"{epsilon:.4g}"
    else:
        value = f'{epsilon:.4g} <span class="meta">({e(_SUM_ONLY)})</span>'
    shown = [f"replay of entry {i}, not charged" for i in replays[:_MAX_REPLAYS]]
    if len(replays) > _MAX_REPLAYS:
        shown.append(f"… and {len(replays) - _MAX_REPLAYS} more replays, not charged")
    listed = [e(charges_text(charges))] if charges else []
    listed += [f'<span class="replay">{e(r)}</span>' for r in shown]
    return [value, "<br>".join(listed) or "none"]


def _sites(doc: Mapping[str, Any]) -> str:
    harmonized = {h.get("site"): h for h in doc.get("harmonization", {}).get("sites", [])}
    sites: Sequence[Mapping[str, Any]] = doc.get("sites", [])
    spent = [site_epsilon(s) for s in sites]
    any_charge = any(eps is not None or replays for eps, _, _, replays in spent)
    header = ["site", "samples", "variants", "matched", "swapped", "policy", "status"]
    header += [_COMPOSED, _CHARGES] if any_charge else []
    rows = []
    for s, epsilon in zip(sites, spent, strict=True):
        h = harmonized.get(s.get("name"), {})
        missing = s.get("missing")
        status = (
            f'<span class="missing">missing from round {e(missing.get("round"))} '
            f"({e(missing.get('step'))}, {e(missing.get('reason_code'))})</span>"
            if isinstance(missing, dict)
            else "took part"
        )
        row = [
            e(s.get("name")),
            e(fmt(s.get("n_samples"))),
            e(fmt(s.get("n_variants"))),
            e(fmt(h.get("n_matched"))),
            e(fmt(h.get("n_swapped"))),
            e(s.get("policy", "")),
            status,
        ]
        rows.append(row + (_epsilon_cells(*epsilon) if any_charge else []))
    out = table(header, rows, table_id="sites", empty="no site answered")
    if any_charge:
        out += (
            '<p class="meta" id="epsilon-note">ε composed: this run\'s charges at each site, '
            "composed with the sites' own accountant (RDP, dp-accounting) from each release's "
            "noise record at the δ the site charged, as its ledger composes them; beside it "
            "each release's ε alone, whose plain sum overstates the cost. A replay is a "
            "release the site answered from a stored charged one (a rerun of the same "
            "request): the same values, no new charge. Each site's budget also counts its "
            "other studies: its privacy officer's report shows the total.</p>"
        )
    missing_sites = doc.get("summary", {}).get("sites_missing") or doc.get("sites_missing") or []
    if missing_sites:
        items = "".join(
            f"<li>{e(m.get('site'))}: round {e(m.get('round'))} ({e(m.get('step'))}), "
            f"{e(m.get('reason_code'))}: {e(m.get('message'))}</li>"
            for m in missing_sites
        )
        out += (
            '<div id="sites-missing" class="status bad">These results come from the other '
            f"sites; the study went on without:<ul>{items}</ul></div>"
        )
    return out


def _per_site(rows: object, title: str, meta: str, value: tuple[str, str], table_id: str) -> str:
    """A ``site, analysis, value`` table of a summary list (empty when there is none)."""
    if not isinstance(rows, list) or not rows:
        return ""
    header, key = value
    return f'<h3>{e(title)}</h3><p class="meta">{e(meta)}</p>' + table(
        ("site", "analysis", header),
        (
            (e(m.get("site")), e(m.get("analysis")), e(fmt(m.get(key))))
            for m in rows
            if isinstance(m, dict)
        ),
        table_id=table_id,
    )


def _privacy(doc: Mapping[str, Any]) -> str:
    privacy = doc.get("privacy", {})
    asked = doc.get("study", {}).get("canonical", {}).get("privacy", {})
    facts = {
        "release mode": privacy.get("release_mode"),
        "what the coordinator saw": privacy.get("release_mode_description"),
        "study ε": asked.get("epsilon"),
        "study δ": asked.get("delta"),
        "noise shares": asked.get("noise_shares"),
    }
    out = key_values({k: v for k, v in facts.items() if v is not None}, table_id="privacy")
    suppressed = doc.get("summary", {}).get("suppressed")
    if isinstance(suppressed, dict):
        out += "<h3>Variants withheld by small-cell suppression (count analyses)</h3>"
        out += key_values(suppressed, table_id="suppressed")
    summary = doc.get("summary", {})
    out += _per_site(
        summary.get("membership_power"),
        "Membership inference: each site's estimated power of a likelihood-ratio test on its "
        "releases (counts, glm, pca, prs)",
        "Estimated by the site before the release left, after withholding variants to stay "
        "under its policy's limit (the withheld variants print NA, as suppressed ones do).",
        ("estimated power", "power"),
        "membership-power",
    )
    out += _per_site(
        summary.get("guard_left_out"),
        "Samples the disclosure guard left out",
        "Each row's analysis was served over an earlier release's samples at that site (or "
        "its intersection with one) instead of refused, so its results describe that many "
        "fewer people than plink2 on the asked cohort.",
        ("samples left out", "samples"),
        "guard-left-out",
    )
    out += _per_site(
        summary.get("glm_imputed_variants"),
        "Variants whose missing calls a site imputed",
        'few_missing = "impute-unreleasable": these variants\' missing calls were set to the '
        "site's rounded mean rather than withheld, so their glm rows differ from plink2's.",
        ("variants", "variants"),
        "glm-imputed",
    )
    founders = summary.get("founders_only")
    if isinstance(founders, dict):
        out += "<h3>Founders only</h3>" + key_values(
            {
                "sites whose sample files list parents": ", ".join(
                    str(x) for x in founders.get("sites", [])
                ),
                "note": founders.get("note"),
            },
            table_id="founders-only",
        )
    train = privacy.get("train_epsilon_per_site")
    if isinstance(train, dict) and train:
        out += "<h3>ε per site of each train analysis (the sites' accountants)</h3>"
        out += table(
            ("analysis", "site", "ε"),
            (
                (e(analysis), e(site), e(fmt(eps)))
                for analysis, per_site in train.items()
                if isinstance(per_site, dict)
                for site, eps in per_site.items()
            ),
            table_id="train-epsilon",
        )
    if privacy.get("demo_policy_sites"):
        out += f'<div class="status demo">DEMO POLICY: {e(privacy.get("note", ""))}</div>'
    return out


_QC_RULES = {
    "extract": "not in extract (plink2 --extract)",
    "exclude": "in exclude (plink2 --exclude)",
    "withheld": "withheld by a site or small pooled cells (counts incomplete)",
    "geno": "missing call rate above geno (--geno)",
    "hwe": "HWE exact test below hwe (--hwe)",
    "maf": "minor allele frequency below maf (--maf)",
    "mac": "minor allele count below mac (--mac)",
}


def _qc(doc: Mapping[str, Any]) -> str:
    """The ``[qc]`` funnel: variants in, removed by each rule, left (empty without [qc])."""
    qc = doc.get("summary", {}).get("qc")
    if not isinstance(qc, dict):
        return ""
    rows = [(e("variants in"), "", "", e(f"{qc.get('variants_in', 0):,}"))]
    for step in qc.get("funnel", []):
        rule = str(step.get("rule"))
        rows.append(
            (
                f"<code>{e(rule)}</code>",
                e(_QC_RULES.get(rule, rule)),
                e(f"{step.get('removed', 0):,}"),
                e(f"{step.get('left', 0):,}"),
            )
        )
    rows.append((e("variants left"), "", "", e(f"{qc.get('variants_left', 0):,}")))
    return (
        '<h2 id="qc-heading">Variant QC</h2>'
        '<p class="meta">Computed once from the pooled genotype counts (plink2\'s '
        "filters, in plink2's order); every later analysis ran on the variants left "
        "(<code>qc.snplist</code>; removed ones in <code>qc.removed.tsv</code>).</p>"
        + key_values(qc.get("rules", {}), table_id="qc-rules")
        + table(("step", "rule", "removed", "left"), rows, table_id="qc-funnel")
    )


_SAMPLE_STEPS = {
    "cohort": "outside the study's [cohort] conditions",
    "mind": "missing more than mind of their calls (plink2 --mind)",
    "het": "heterozygosity F more than het_sd SD from the site's mean (plink2 --het)",
}


def _count_text(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def _cohort(doc: Mapping[str, Any]) -> str:
    """The ``[cohort]`` / ``[sample_qc]`` funnel: pooled, then per site (empty without them)."""
    cohort = doc.get("summary", {}).get("cohort")
    if not isinstance(cohort, dict):
        return ""
    steps = [str(s) for s in cohort.get("steps", [])]
    pooled = cohort.get("pooled", {})
    rows = [(e("genotyped"), "", e(_count_text(pooled.get("genotyped"))))]
    for step in steps:
        removed = pooled.get("removed", {}).get(step)
        rows.append(
            (f"<code>{e(step)}</code>", e(_SAMPLE_STEPS.get(step, step)), e(_count_text(removed)))
        )
    rows.append((e("cohort (samples left)"), "", e(_count_text(pooled.get("left")))))
    site_rows = [
        (
            e(str(site.get("site"))),
            e(_count_text(site.get("genotyped"))),
            *(e(_count_text(site.get("removed", {}).get(step))) for step in steps),
            e(_count_text(site.get("left"))),
        )
        for site in cohort.get("sites", [])
    ]
    rules = {"cohort": cohort.get("definition", ""), **cohort.get("sample_qc", {})}
    return (
        '<h2 id="cohort-heading">Cohort and sample QC</h2>'
        '<p class="meta">Every analysis ran on these samples only. Each site applied the '
        "cohort's conditions, then its sample QC, to its own samples before any release; "
        "only the counts below left the sites, and a site withholds a count smaller than "
        "its minimum cell count (then its cohort size too): such numbers read "
        "<code>withheld</code>.</p>"
        + key_values(rules, table_id="cohort-rules")
        + table(("step", "rule", "samples"), rows, table_id="cohort-funnel")
        + table(("site", "genotyped", *steps, "left"), site_rows, table_id="cohort-sites")
    )


def _section(analysis: Analysis, render: Renderer) -> str:
    params = "; ".join(f"{k} = {_param(v)}" for k, v in analysis.params.items())
    try:
        body = render(analysis)
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        log.warning("report: the %s section could not be rendered: %s", analysis.id, exc)
        body = f'<p class="status bad render-error">Could not render this section: {e(exc)}</p>'
    return (
        f'<section class="analysis" id="{e(analysis.anchor("analysis"))}" '
        f'data-kind="{e(analysis.kind)}"><h2>{e(analysis.id)} '
        f'<span class="kind">({e(analysis.kind)})</span></h2>'
        f'<p class="meta">{e(params) or "no parameters"}</p>'
        + key_values(analysis.stats, table_id=analysis.anchor("summary"), cls="kv summary")
        + body
        + "<h3>Files</h3>"
        + (file_list(analysis.files) or '<p class="empty">no file</p>')
        + "</section>"
    )


def analyses(results_dir: Path, doc: Mapping[str, Any]) -> list[Analysis]:
    """The study's analyses in study order, each with its summary and files."""
    summary = doc.get("summary", {})
    files = doc.get("analysis_outputs", {})
    found = []
    for spec in doc.get("study", {}).get("canonical", {}).get("analyses", []):
        ident = str(spec.get("id"))
        stats = summary.get(ident)
        found.append(
            Analysis(
                id=ident,
                kind=str(spec.get("kind")),
                params=spec.get("params", {}),
                stats=stats if isinstance(stats, dict) else {},
                files=tuple(files.get(ident, ())),
                results_dir=results_dir,
            )
        )
    return found


def render_page(
    results_dir: Path, doc: Mapping[str, Any], *, sections: Mapping[str, Renderer]
) -> str:
    """The report's HTML for the results in ``results_dir`` described by ``doc``.

    ``sections``: the renderer of each analysis kind (the coordinator's registry,
    :data:`genofed.coordinator.protocols.REPORT_SECTIONS`); a kind without one gets
    :func:`~.sections.generic`.
    """
    found = analyses(results_dir, doc)
    shown = {f for a in found for f in a.files}
    others = [f for f in doc.get("outputs", []) if f not in shown]
    name = doc.get("study", {}).get("name", "")
    contents = "".join(
        f'<li><a href="#{e(a.anchor("analysis"))}">{e(a.id)}</a> ({e(a.kind)})</li>' for a in found
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>GenoFed study report: {e(name)}</title>
<style>{_CSS}</style></head>
<body>
<h1 id="title">Study report: {e(name)}</h1>
<p class="meta">Federated results: every number below was computed by the coordinator from
the sites' released aggregates; individual-level data never left a site.</p>
{_header(doc)}
<nav><h3>Analyses</h3><ol>{contents}</ol></nav>
<h2 id="sites-heading">Sites</h2>
{_sites(doc)}
<h2 id="privacy-heading">Release mode and privacy</h2>
{_privacy(doc)}
{_cohort(doc)}
{_qc(doc)}
{"".join(_section(a, sections.get(a.kind, generic)) for a in found)}
<h2 id="other-files-heading">Other files</h2>
{file_list(others, list_id="other-files")}
</body></html>
"""


__all__ = ["analyses", "render_page", "site_epsilon"]
