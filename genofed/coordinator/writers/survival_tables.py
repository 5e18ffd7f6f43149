"""Survival result files: ``km.tsv``, ``logrank.tsv``, ``cox.tsv`` and the KM plot.

``km.tsv``: one row per group and grid point::

    GROUP  TIME  N_RISK  N_EVENT  SURV  LOWER  UPPER

``N_RISK`` are the samples at risk at the start of the interval ending at
``TIME`` and ``N_EVENT`` the events in it; ``SURV`` is the Kaplan-Meier
estimate at ``TIME`` and ``LOWER``/``UPPER`` its 95 % Greenwood log(-log)
band. A cell some site withheld (small risk set) reads ``SUPPRESSED`` in
``N_RISK`` and ``N_EVENT`` and ``NA`` in the estimates, as does every later
point of that group's curve; ``NA`` estimates with counts shown mean that
nobody is left at risk.

``logrank.tsv``: one row per group (``GROUP N_EVENT EXPECTED``, observed
and expected events) with the test's ``CHISQ DF P`` and ``TIME_MAX`` (the
last grid time used) repeated on each row. The test runs over the grid
prefix where every group's pooled counts are known; a group withheld from
the first grid point on reads ``SUPPRESSED`` and leaves no test (``NA``);
an empty group reads ``NA`` and is left out of the test.

``cox.tsv``: one row per covariate::

    TERM  COEF  SE  HR  P  HR_LOWER95  HR_UPPER95  Z

Numbers are written with 10 significant digits, ``NA`` where undefined.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from genofed.coordinator.combine.survival import CoxResult, KaplanMeier, LogRank, PooledCounts
from genofed.coordinator.writers.atomic import atomic_write_text
from genofed.coordinator.writers.figures import figure, save_png

KM_HEADER = "GROUP\tTIME\tN_RISK\tN_EVENT\tSURV\tLOWER\tUPPER"
LOGRANK_HEADER = "GROUP\tN_EVENT\tEXPECTED\tCHISQ\tDF\tP\tTIME_MAX"
COX_HEADER = "TERM\tCOEF\tSE\tHR\tP\tHR_LOWER95\tHR_UPPER95\tZ"
SUPPRESSED = "SUPPRESSED"


def num(value: float) -> str:
    """10 significant digits, or ``NA``."""
    return f"{value:.10g}" if np.isfinite(value) else "NA"


def km_text(
    labels: Sequence[str], grid: Sequence[float], pooled: PooledCounts, km: KaplanMeier
) -> str:
    lines = [KM_HEADER]
    for g, label in enumerate(labels):
        for j, t in enumerate(grid):
            if km.shown[g, j]:
                counts = f"{pooled.n_risk[g, j]}\t{pooled.n_event[g, j]}"
            else:
                counts = f"{SUPPRESSED}\t{SUPPRESSED}"
            est = "\t".join(num(float(a[g, j])) for a in (km.surv, km.lower, km.upper))
            lines.append(f"{label}\t{num(float(t))}\t{counts}\t{est}")
    return "\n".join(lines) + "\n"


def logrank_text(
    labels: Sequence[str], grid: Sequence[float], pooled: PooledCounts, test: LogRank
) -> str:
    last = num(float(grid[test.n_points - 1])) if test.n_points else "NA"
    tail = f"{num(test.chisq)}\t{test.df if test.df else 'NA'}\t{num(test.p)}\t{last}"
    lines = [LOGRANK_HEADER]
    compared = {int(g): i for i, g in enumerate(test.groups)}
    for g, label in enumerate(labels):
        if g in compared:
            i = compared[g]
            values = f"{num(float(test.observed[i]))}\t{num(float(test.expected[i]))}"
        elif not pooled.known[g, 0]:
            values = f"{SUPPRESSED}\t{SUPPRESSED}"
        else:
            values = "NA\tNA"  # nobody in the group, or no test at all
        lines.append(f"{label}\t{values}\t{tail}")
    return "\n".join(lines) + "\n"


def cox_text(terms: Sequence[str], fit: CoxResult) -> str:
    lines = [COX_HEADER]
    for i, term in enumerate(terms):
        values = (
            fit.coef[i],
            fit.se[i],
            fit.hr[i],
            fit.p[i],
            fit.hr_lower[i],
            fit.hr_upper[i],
            fit.z[i],
        )
        lines.append(term + "".join(f"\t{num(float(v))}" for v in values))
    return "\n".join(lines) + "\n"


def write_km_outputs(
    out_dir: Path,
    names: Sequence[str],
    labels: Sequence[str],
    grid: Sequence[float],
    pooled: PooledCounts,
    km: KaplanMeier,
    test: LogRank,
    title: str,
    time_label: str = "time",
) -> list[str]:
    """Write km.tsv, logrank.tsv and the KM plot under ``names``; return the names."""
    km_name, logrank_name, plot_name = names
    atomic_write_text(out_dir / km_name, km_text(labels, grid, pooled, km))
    atomic_write_text(out_dir / logrank_name, logrank_text(labels, grid, pooled, test))
    write_km_plot(out_dir / plot_name, labels, grid, km, test, title, time_label)
    return [km_name, logrank_name, plot_name]


def write_km_plot(
    path: Path,
    labels: Sequence[str],
    grid: Sequence[float],
    km: KaplanMeier,
    test: LogRank,
    title: str,
    time_label: str = "time",
) -> None:
    """Step curves per group from S(0) = 1, with shaded 95 % bands."""
    fig = figure((7, 4.5))
    ax = fig.add_subplot()
    times = np.concatenate([[0.0], np.asarray(grid, dtype=np.float64)])
    for g, label in enumerate(labels):
        ok = np.isfinite(km.surv[g])
        if not ok.any():
            continue
        last = int(np.flatnonzero(ok)[-1]) + 1
        surv = np.concatenate([[1.0], km.surv[g, :last]])
        lo = np.concatenate([[1.0], km.lower[g, :last]])
        hi = np.concatenate([[1.0], km.upper[g, :last]])
        (line,) = ax.step(times[: last + 1], surv, where="post", label=label)
        ax.fill_between(
            times[: last + 1], lo, hi, step="post", alpha=0.2, color=line.get_color(), linewidth=0
        )
    ax.set_ylim(0, 1.02)
    ax.set_xlim(left=0)
    ax.set_xlabel(time_label)
    ax.set_ylabel("survival probability")
    p = f", log-rank p = {test.p:.3g}" if np.isfinite(test.p) else ""
    ax.set_title(f"Kaplan-Meier: {title}{p}")
    ax.legend(loc="lower left", fontsize="small")
    fig.tight_layout()
    save_png(fig, path)


def write_cox_output(out_dir: Path, name: str, terms: Sequence[str], fit: CoxResult) -> list[str]:
    atomic_write_text(out_dir / name, cox_text(terms, fit))
    return [name]


__all__ = [
    "COX_HEADER",
    "KM_HEADER",
    "LOGRANK_HEADER",
    "SUPPRESSED",
    "cox_text",
    "km_text",
    "logrank_text",
    "write_cox_output",
    "write_km_outputs",
    "write_km_plot",
]
