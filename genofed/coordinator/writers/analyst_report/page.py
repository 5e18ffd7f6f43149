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

from genofed.coordinator.writers.analyst_report._html import e, file_list, fmt, key_values, table
from genofed.coordinator.writers.analyst_report.sections import Analysis, Renderer, generic

log = logging.getLogger("genofed.coordinator")

#: The sites table's epsilon column: what each site's ledger charged for this run's replies.
_CHARGED = "ε charged (sum over its releases: an upper bound on the composed ε)"
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
nav ol{columns:2;font-size:.9rem}
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


def _epsilon_charged(site: Mapping[str, Any]) -> float | None:
    charges = [
        float(r["epsilon_charged"])
        for r in site.get("releases", [])
        if isinstance(r, dict) and r.get("epsilon_charged")
    ]
    return sum(charges) if charges else None


def _sites(doc: Mapping[str, Any]) -> str:
    harmonized = {h.get("site"): h for h in doc.get("harmonization", {}).get("sites", [])}
    sites: Sequence[Mapping[str, Any]] = doc.get("sites", [])
    charged = {s.get("name"): _epsilon_charged(s) for s in sites}
    any_charge = any(v is not None for v in charged.values())
    header = ["site", "samples", "variants", "matched", "swapped", "policy", "status"]
    header += [_CHARGED] if any_charge else []
    rows = []
    for s in sites:
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
        rows.append(row + ([e(fmt(charged[s.get("name")]))] if any_charge else []))
    out = table(header, rows, table_id="sites", empty="no site answered")
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
{"".join(_section(a, sections.get(a.kind, generic)) for a in found)}
<h2 id="other-files-heading">Other files</h2>
{file_list(others, list_id="other-files")}
</body></html>
"""


__all__ = ["analyses", "render_page"]
