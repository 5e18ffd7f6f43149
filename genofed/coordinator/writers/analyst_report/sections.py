"""One renderer per analysis kind: what of its files and summary the report shows.

A renderer receives an :class:`Analysis` (its id, kind, parameters, summary
statistics and the files it wrote) and returns the HTML shown between the
section's summary table and its file list. Each one renders whatever of its
files exists, so a section never fails because a file is absent. Which
kind gets which renderer is the coordinator's registry's to say
(:data:`genofed.coordinator.protocols.PROTOCOLS`); a kind without one gets
:func:`generic` (its plots).
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genofed.coordinator.writers.analyst_report._html import (
    e,
    fmt,
    iter_tsv,
    key_values,
    png,
    read_tsv,
    table,
    tsv_table,
)

#: Variants shown in a glm section's table of top hits.
TOP_HITS = 10
#: Table files whose rows printing NA in the last column were withheld by a site.
_COUNT_SUFFIXES = (".afreq", ".vmiss", ".gcount", ".hardy")


@dataclass(frozen=True)
class Analysis:
    """One analysis of the study as the report sees it."""

    id: str
    kind: str
    params: Mapping[str, Any]
    stats: Mapping[str, Any]
    files: tuple[str, ...]
    results_dir: Path

    def paths(self, suffix: str) -> list[Path]:
        """Its files that end with ``suffix`` and exist."""
        found = (self.results_dir / f for f in self.files if f.endswith(suffix))
        return [p for p in found if p.is_file()]

    def path(self, suffix: str) -> Path | None:
        found = self.paths(suffix)
        return found[0] if found else None

    def json(self, suffix: str) -> dict[str, Any]:
        """Its ``*suffix`` JSON file ({} when there is none)."""
        path = self.path(suffix)
        if path is None:
            return {}
        doc = json.loads(path.read_text(encoding="utf-8"))
        return doc if isinstance(doc, dict) else {}

    def anchor(self, what: str) -> str:
        return f"{what}-{self.id}"


Renderer = Callable[[Analysis], str]


def _plots(a: Analysis, *, skip: tuple[Path, ...] = ()) -> str:
    return "".join(
        png(p, alt=f"{a.id}: {p.name}", img_id=a.anchor("plot") + f"-{i}")
        for i, p in enumerate(x for x in a.paths(".png") if x not in skip)
    )


def counts(a: Analysis) -> str:
    """freq, missing, gcount, hardy: rows in the table and rows withheld (printed NA)."""
    out = []
    for path in (p for s in _COUNT_SUFFIXES for p in a.paths(s)):
        rows = iter_tsv(path)
        next(rows, None)  # the header
        n = withheld = 0
        for row in rows:
            n += 1
            withheld += row[-1] == "NA"
        out.append(
            f'<p class="count-table" id="{e(a.anchor("rows"))}" data-rows="{n}" '
            f'data-withheld="{withheld}"><code>{e(path.name)}</code>: {n:,} variants, '
            f"{withheld:,} printed as NA (withheld by a site's small-cell suppression)</p>"
        )
    return "".join(out)


def _top_add_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """A glm table's header and its ``TOP_HITS`` ADD rows of lowest P (file order on ties).

    The rows :func:`iter_tsv` would give, read in one piece. A line is only
    looked at when it holds the ADD field; on a line with the header's number
    of fields P is found from the right (one short split), and the TEST field
    is checked on the lines picked (all lines are split when one fails).
    """
    with path.open(encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    start = next((i for i, line in enumerate(lines) if line.strip()), None)
    if start is None:
        return [], []
    header = lines[start].split("\t")
    test, p_col = header.index("TEST"), header.index("P")
    tabs, from_right = len(header) - 1, len(header) - p_col
    needle = "\tADD\t" if 0 < test < tabs else "ADD"
    rows = [line for line in lines[start + 1 :] if needle in line]
    if all(line.count("\t") == tabs for line in rows):
        values = [line.rsplit("\t", from_right)[1] for line in rows]
    else:
        values = []
        for line in rows:
            r = line.split("\t")
            values.append(r[p_col] if r[test] == "ADD" else "NA")
    candidates = [(p, line) for p, line in zip(values, rows, strict=True) if p not in _NO_P]
    top = [c[1].split("\t") for c in heapq.nsmallest(TOP_HITS, candidates, key=_p_key)]
    if any(r[test] != "ADD" for r in top):  # ADD in another field: check every line
        exact = (c for c in candidates if c[1].split("\t")[test] == "ADD")
        top = [c[1].split("\t") for c in heapq.nsmallest(TOP_HITS, exact, key=_p_key)]
    return header, top


_NO_P = frozenset(("NA", "nan"))


def _p_key(candidate: tuple[str, str]) -> float:
    return float(candidate[0])


def glm(a: Analysis) -> str:
    """The top hits of the ADD test (from the plink2 table), Manhattan and QQ plots."""
    out = []
    tables = [p for p in a.paths("") if ".glm." in p.name]
    if tables:
        header, add = _top_add_rows(tables[0])
        keep = [i for i, h in enumerate(header) if h not in ("TEST", "ERRCODE")]
        out.append(f"<h3>Top {len(add)} variants (ADD test, lowest P)</h3>")
        out.append(
            table(
                [header[i] for i in keep],
                ([e(r[i]) for i in keep] for r in add),
                table_id=a.anchor("top-hits"),
                empty="no variant could be tested",
            )
        )
    out.append(_plots(a))
    return "".join(out)


def pca(a: Analysis) -> str:
    """The eigenvalues."""
    path = a.path(".eigenval")
    if path is None:
        return ""
    values = path.read_text(encoding="utf-8").split()
    return "<h3>Eigenvalues</h3>" + table(
        ("component", "eigenvalue"),
        ((f"PC{i + 1}", e(v)) for i, v in enumerate(values)),
        table_id=a.anchor("eigenvalues"),
    )


_PRS_KEYS = (
    "pgs_id",
    "genome_build",
    "scoring_sha256",
    "n_variants_scoring_file",
    "n_variants_matched",
    "n_variants_unmatched",
    "matching",
    "phenotype",
    "covariates",
    "model",
    "n_samples",
    "score_mean",
    "score_sd",
    "auc",
    "auc_thresholds_released_by_every_site",
    "or_per_sd",
    "or_per_sd_ci",
    "association",
    "calibration",
    "histogram_bins_withheld",
)


def prs(a: Analysis) -> str:
    """The summary JSON's key numbers and the histogram / ROC / calibration plot."""
    doc = a.json(".summary.json")
    picked = {k: doc[k] for k in _PRS_KEYS if k in doc}
    out = "<h3>Score summary</h3>" + key_values(picked, table_id=a.anchor("prs")) if picked else ""
    return out + _plots(a)


def pgx(a: Analysis) -> str:
    """The association tests (when there is an outcome) and the phenotype table."""
    out = []
    association = a.json(".summary.json").get("association")
    if isinstance(association, dict):
        out.append("<h3>Association with the outcome</h3>")
        out.append(key_values(association, table_id=a.anchor("association")))
    path = a.path(".phenotypes.tsv")
    if path is not None:
        out.append("<h3>Phenotypes</h3>" + tsv_table(path, table_id=a.anchor("phenotypes")))
    return "".join(out)


def km(a: Analysis) -> str:
    """The KM plot, the log-rank test and the curve table."""
    out = [_plots(a)]
    path = a.path("logrank.tsv")
    if path is not None:
        header, rows = read_tsv(path)
        if rows:
            col = {h: i for i, h in enumerate(header)}
            first = rows[0]
            out.append(
                f'<p class="logrank" id="{e(a.anchor("logrank"))}">Log-rank test: '
                f"chi-square {e(first[col['CHISQ']])} on {e(first[col['DF']])} df, "
                f"p = {e(first[col['P']])} (grid up to time {e(first[col['TIME_MAX']])})</p>"
            )
            groups = [col["GROUP"], col["N_EVENT"], col["EXPECTED"]]
            out.append(
                table(
                    ("group", "observed events", "expected events"),
                    ([e(r[i]) for i in groups] for r in rows),
                    table_id=a.anchor("logrank-groups"),
                )
            )
    curve = next((p for p in a.paths(".tsv") if p.name.endswith("km.tsv")), None)
    if curve is not None:
        out.append("<h3>Kaplan-Meier estimates</h3>" + tsv_table(curve, table_id=a.anchor("km")))
    return "".join(out)


def cox(a: Analysis) -> str:
    """The hazard ratio table."""
    path = a.path("cox.tsv")
    return (
        "" if path is None else "<h3>Hazard ratios</h3>" + tsv_table(path, table_id=a.anchor("cox"))
    )


def train(a: Analysis) -> str:
    """The pooled AUC and calibration, epsilon per site, and the pooled calibration table."""
    doc = a.json(".summary.json")
    out = []
    keys = ("model", "n_features", "rounds", "train_samples", "auc", "dp", "evaluation")
    head: dict[str, object] = {k: doc[k] for k in keys if k in doc}
    calibration = doc.get("calibration")
    if isinstance(calibration, dict):
        head.update({f"calibration {k}": v for k, v in calibration.items() if k != "groups"})
    if head:
        out.append("<h3>Model</h3>" + key_values(head, table_id=a.anchor("train")))
    sites = doc.get("sites")
    if isinstance(sites, dict) and sites:
        out.append("<h3>Per site</h3>")
        out.append(
            table(
                ("site", "ε", "noise"),
                (
                    (
                        e(name),
                        e(fmt(v.get("epsilon"))),
                        e(fmt(v.get("noise"))),
                    )
                    for name, v in sites.items()
                    if isinstance(v, dict)
                ),
                table_id=a.anchor("train-sites"),
            )
        )
    path = a.path(".calibration.tsv")
    if path is not None:
        header, rows = read_tsv(path)
        pooled = [r for r in rows if r and r[0] == "pooled"]
        out.append("<h3>Calibration (pooled)</h3>")
        out.append(
            table(header, ([e(c) for c in r] for r in pooled), table_id=a.anchor("calibration"))
        )
    return "".join(out)


def generic(a: Analysis) -> str:
    """A kind without its own renderer: its plots (the summary and files are always shown)."""
    return _plots(a)


__all__ = [
    "TOP_HITS",
    "Analysis",
    "Renderer",
    "counts",
    "cox",
    "generic",
    "glm",
    "km",
    "pca",
    "pgx",
    "prs",
    "train",
]
