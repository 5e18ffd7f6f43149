"""Results of a ``prs`` analysis: summary JSON, histogram and calibration tables, a plot.

Files (``<p>`` is ``prs``, or ``prs.<id>`` for an analysis whose id is not ``prs``)::

    <p>.summary.json     scoring file (pgs_id, build, SHA-256), variants matched and used,
                         per-site match counts, score mean/SD, association (OR per SD
                         with 95 % CI for logistic), AUC, calibration (Hosmer-Lemeshow)
    <p>.histogram.tsv    BIN_LOW BIN_HIGH COUNT WITHHELD_AT_SITES; a bin withheld at
                         any site has COUNT "NA" (the sum would understate it)
    <p>.calibration.tsv  GROUP Z_LOW Z_HIGH N CASES EXPECTED OBSERVED_RATE MEAN_PREDICTED
                         WITHHELD_AT_SITES (case/control phenotypes only); a group some
                         sites withheld sums the others (NA when every site withheld it)
    <p>.png              histogram, ROC curve and calibration plot
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genofed.common.pgs_scoring import ScoringFile
from genofed.common.study import AnalysisSpec
from genofed.common.wire.prs import group_edges
from genofed.coordinator.combine.prs import Calibration, RowPlan, Standardization
from genofed.coordinator.writers.atomic import atomic_write_text
from genofed.coordinator.writers.figures import figure, save_png

__all__ = ["PrsReport", "write_prs_outputs"]


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


@dataclass
class PrsReport:
    """Everything a prs analysis found; filled in as the rounds go."""

    spec: AnalysisSpec
    scoring: ScoringFile
    sites: tuple[str, ...]
    plan: RowPlan
    standardization: Standardization
    model: str
    histogram_edges: np.ndarray
    histogram: np.ndarray
    histogram_withheld: np.ndarray
    association: dict[str, object] = field(default_factory=dict)
    auc: float = float("nan")
    roc: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    thresholds_exact: int = 0
    calibration: Calibration | None = None
    #: Constant covariates left out of the association model (plink2 leaves them out).
    covariates_left_out: tuple[str, ...] = ()

    @property
    def prefix(self) -> str:
        return "prs" if self.spec.id == "prs" else f"prs.{self.spec.id}"

    def summary(self, rounds: int) -> dict[str, object]:
        """Headline numbers (also written to ``<p>.summary.json``)."""
        assoc = self.association
        out: dict[str, object] = {
            "scoring_file": self.spec.params["scoring_file"],
            "scoring_sha256": self.scoring.sha256,
            "pgs_id": self.scoring.pgs_id,
            "genome_build": self.scoring.genome_build,
            "score": "plink2 --score SCORE1_SUM (cols=+scoresums), mean imputation "
            "with pooled effect-allele frequencies",
            "n_variants_scoring_file": len(self.scoring),
            "n_variants_matched": int(self.plan.use.sum()),
            "n_variants_unmatched": int(len(self.scoring) - self.plan.use.sum()),
            "matching": dict(zip(self.sites, self.plan.per_site, strict=True)),
            "rows_withheld_by_a_site": self.scoring.line[self.plan.withheld].tolist(),
            "ambiguous": self.spec.params["ambiguous"],
            "phenotype": self.spec.params["phenotype"],
            "covariates": list(self.spec.params["covariates"]),
            **(
                {"covariates_left_out_constant": list(self.covariates_left_out)}
                if self.covariates_left_out
                else {}
            ),
            "model": self.model,
            "n_samples": self.standardization.n,
            "score_mean": self.standardization.mean,
            "score_sd": self.standardization.sd,
            "auc": _num(self.auc),
            "auc_thresholds": self.spec.params["thresholds"],
            "auc_thresholds_released_by_every_site": self.thresholds_exact,
            "or_per_sd": _num(assoc.get("or_per_sd", float("nan"))),  # type: ignore[arg-type]
            "or_per_sd_ci": assoc.get("or_per_sd_ci"),
            "association": assoc,
            "histogram_bins_withheld": int(np.sum(self.histogram_withheld > 0)),
            "rounds": rounds,
        }
        if self.calibration is not None:
            c = self.calibration
            out["calibration"] = {
                "groups": len(c.n),
                "groups_withheld": int(np.sum(c.withheld_at > 0)),
                "hosmer_lemeshow": _num(c.hl_statistic),
                "hosmer_lemeshow_df": c.hl_df,
                "hosmer_lemeshow_p": _num(c.hl_p),
            }
        return out


def _fmt(x: float) -> str:
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return "NA" if not math.isfinite(x) else f"{x:.6g}"


def _histogram_tsv(r: PrsReport) -> str:
    edges = np.concatenate([[-np.inf], r.histogram_edges, [np.inf]])
    lines = ["BIN_LOW\tBIN_HIGH\tCOUNT\tWITHHELD_AT_SITES"]
    for i, (count, hidden) in enumerate(
        zip(r.histogram.tolist(), r.histogram_withheld.tolist(), strict=True)
    ):
        shown = "NA" if hidden else str(count)
        lines.append(f"{_fmt(edges[i])}\t{_fmt(edges[i + 1])}\t{shown}\t{hidden}")
    return "\n".join(lines) + "\n"


def _calibration_tsv(c: Calibration, edges: np.ndarray) -> str:
    bounds = np.concatenate([[-np.inf], edges, [np.inf]])
    lines = [
        "GROUP\tZ_LOW\tZ_HIGH\tN\tCASES\tEXPECTED\tOBSERVED_RATE\tMEAN_PREDICTED\tWITHHELD_AT_SITES"
    ]
    for g in range(len(c.n)):
        if c.n[g] == 0 and c.withheld_at[g]:
            cells = ["NA"] * 5
        else:
            n = c.n[g]
            cells = [
                str(int(n)),
                str(int(c.cases[g])),
                f"{c.expected[g]:.6g}",
                _fmt(c.cases[g] / n) if n else "NA",
                _fmt(c.expected[g] / n) if n else "NA",
            ]
        row = [str(g + 1), _fmt(bounds[g]), _fmt(bounds[g + 1]), *cells, str(int(c.withheld_at[g]))]
        lines.append("\t".join(row))
    return "\n".join(lines) + "\n"


def _plot(path: Path, r: PrsReport) -> None:
    panels = 3 if r.calibration is not None else 1
    fig = figure((4.2 * panels, 3.8))
    ax = fig.add_subplot(1, panels, 1)
    edges = r.histogram_edges
    width = edges[1] - edges[0]
    lefts = np.concatenate([[edges[0] - width], edges[:-1], [edges[-1]]])
    shown = np.where(r.histogram_withheld > 0, 0, r.histogram)
    ax.bar(lefts, shown, width=width, align="edge", color="#1f4e79", edgecolor="white")
    for left, hidden in zip(lefts.tolist(), r.histogram_withheld.tolist(), strict=True):
        if hidden:
            ax.bar(
                left,
                max(1, int(shown.max()) // 20),
                width=width,
                align="edge",
                color="none",
                edgecolor="#b03030",
                hatch="//",
            )
    ax.set_xlabel("standardized score (SD); tails open-ended")
    ax.set_ylabel("samples")
    ax.set_title(f"{r.scoring.pgs_id or r.spec.id}: score distribution", fontsize=9)
    if r.calibration is not None:
        ax2 = fig.add_subplot(1, panels, 2)
        ax2.plot(r.roc[:, 0], r.roc[:, 1], marker="o", ms=3, color="#1f4e79")
        ax2.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8)
        ax2.set_xlabel("1 - specificity")
        ax2.set_ylabel("sensitivity")
        ax2.set_title(f"ROC, AUC = {r.auc:.3f}", fontsize=9)
        c = r.calibration
        ok = c.n > 0
        ax3 = fig.add_subplot(1, panels, 3)
        ax3.scatter(c.expected[ok] / c.n[ok], c.cases[ok] / c.n[ok], color="#1f4e79", s=14)
        top = float(
            max(
                1e-3,
                np.max(c.cases[ok] / c.n[ok], initial=0),
                np.max(c.expected[ok] / c.n[ok], initial=0),
            )
        )
        ax3.plot([0, top], [0, top], ls="--", color="grey", lw=0.8)
        ax3.set_xlabel("mean predicted risk")
        ax3.set_ylabel("observed case rate")
        or_ = r.association.get("or_per_sd")
        ax3.set_title(
            f"calibration; OR/SD = {or_:.2f}" if isinstance(or_, float) else "calibration",
            fontsize=9,
        )
    fig.tight_layout()
    save_png(fig, path)


def _clean(value: object) -> object:
    """JSON-safe: non-finite floats become null."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_prs_outputs(out_dir: Path, report: PrsReport, rounds: int) -> list[str]:
    """Write the analysis's files; return their names."""
    p = report.prefix
    files = [f"{p}.summary.json", f"{p}.histogram.tsv"]
    summary = _clean(report.summary(rounds))
    text = json.dumps(summary, indent=2, sort_keys=True, allow_nan=False) + "\n"
    atomic_write_text(out_dir / files[0], text)
    atomic_write_text(out_dir / files[1], _histogram_tsv(report))
    if report.calibration is not None:
        name = f"{p}.calibration.tsv"
        edges = group_edges(report.spec.params["calibration_groups"])
        atomic_write_text(out_dir / name, _calibration_tsv(report.calibration, edges))
        files.append(name)
    _plot(out_dir / f"{p}.png", report)
    files.append(f"{p}.png")
    return files
