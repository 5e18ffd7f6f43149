"""The rounds of the survival analyses (``km``, ``cox``), as the coordinator drives them.

* ``km``: one ``km_counts`` round. Each site counts at risk and events per
  group on the study's grid, small risk sets withheld
  (:mod:`genofed.common.wire.survival`); the coordinator receives the sum
  over sites of their summable forms (counts, sites withholding each cell,
  sites merging each grid time), puts it on the common grid, forms the
  Kaplan-Meier curves and the log-rank test, and writes ``km.tsv``,
  ``logrank.tsv`` and the KM plot.
* ``cox``: ``cox_step`` rounds of Newton-Raphson, starting at beta = 0.
  Each round sends the current coefficients to every site and receives the
  sum of the sites' log partial likelihoods, gradients and Hessians (one
  stratum per site), until no coefficient moves by more than 1e-10; then
  ``cox.tsv``.

Every round asks for the sum over sites (``ask_sum``): in ``plain`` mode the
coordinator adds the sites' summable forms up, in ``exact`` mode SecAgg+
does, and the coordinator never holds a site's own counts or sums.

The math is in :mod:`genofed.coordinator.combine.survival`; this module
only moves arrays between it and the sites, then writes the files.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from genofed.common.errors import GenoFedError, InputError
from genofed.common.study import AnalysisSpec
from genofed.common.wire.survival import (
    COX_STEP_KIND,
    KM_COUNTS_KIND,
    KM_KIND,
    km_group_labels,
    withheld_cells,
)
from genofed.coordinator.combine.survival import (
    CoxNewton,
    kaplan_meier,
    log_rank,
    pool_sums,
)
from genofed.coordinator.protocols.job import AskSites, AskSum
from genofed.coordinator.writers.survival_tables import write_cox_output, write_km_outputs


def output_names(spec: AnalysisSpec) -> tuple[str, ...]:
    """``km.tsv logrank.tsv km.png`` / ``cox.tsv``, prefixed with the id when it is not the kind."""
    base = ("km.tsv", "logrank.tsv", "km.png") if spec.kind == KM_KIND else ("cox.tsv",)
    return base if spec.id == spec.kind else tuple(f"{spec.id}.{b}" for b in base)


def run_km(
    spec: AnalysisSpec,
    sites: Sequence[str],
    out_dir: Path,
    ask: AskSites,
    *,
    ask_sum: AskSum,
) -> tuple[list[str], dict[str, object]]:
    """One ``km`` analysis: counts round, curves, log-rank; files and headline numbers.

    ``ask`` is unused: the counts round is a sum over sites (``ask_sum``).
    """
    params = spec.params
    labels = km_group_labels(params["group"], params["cuts"], params["levels"])
    grid = list(params["grid"])
    full_grid = len(grid)
    shape = (len(labels), full_grid)
    got = ask_sum(KM_COUNTS_KIND, spec.id, [{} for _ in sites])
    sums = {
        name: got.array(name, sh)
        for name, sh in (
            ("n_risk", shape),
            ("n_event", shape),
            ("suppressed", shape),
            ("suppressed_runs", (len(labels),)),
            ("suppressed_span", shape),
            ("merged", (full_grid,)),
        )
    }
    if sums["merged"][-1]:
        raise GenoFedError("the sites' summed km 'merged' marks the last grid time merged")
    # some site may count on a coarser grid: everyone's counts go on the common one
    pooled, kept = pool_sums(sums["n_risk"], sums["n_event"], sums["suppressed"], sums["merged"])
    grid = [t for t, k in zip(grid, kept, strict=True) if k]
    km = kaplan_meier(pooled)
    test = log_rank(pooled)
    time_label = spec.params["time"]
    title = f"{spec.id}: {time_label}" + (f" by {params['group']}" if params["group"] else "")
    names = output_names(spec)
    files = write_km_outputs(
        out_dir,
        names,
        labels,
        grid,
        pooled,
        km,
        test,
        title,
        time_label,
    )
    withheld = withheld_cells(sums["suppressed_runs"], sums["suppressed_span"], kept)
    return files, {
        "groups": len(labels),
        "grid points": len(grid)
        if len(grid) == full_grid
        else f"{len(grid)} (of the study's {full_grid}: a site's policy merges times closer "
        "than its km_min_grid_step)",
        "time resolution": "grid: event and censoring times rounded up to the next grid time, "
        f"follow-up beyond {grid[-1]:g} censored there",
        "samples": int(pooled.n_risk[:, 0].sum()) if pooled.known[:, 0].all() else "suppressed",
        "events": int(pooled.n_event[pooled.known].sum()),
        "cells withheld by sites": withheld,
        "logrank chisq": round(test.chisq, 4) if np.isfinite(test.chisq) else "NA",
        "logrank p": f"{test.p:.4g}" if np.isfinite(test.p) else "NA",
    }


def run_cox(
    spec: AnalysisSpec,
    sites: Sequence[str],
    out_dir: Path,
    ask: AskSites,
    *,
    ask_sum: AskSum,
) -> tuple[list[str], dict[str, object]]:
    """One ``cox`` analysis: Newton rounds until convergence; files and headline numbers.

    ``ask`` is unused: every round is a sum over sites (``ask_sum``).
    """
    terms = tuple(spec.params["covariates"])
    p = len(terms)
    fit = CoxNewton(p)
    while (beta := fit.pending()) is not None:
        got = ask_sum(COX_STEP_KIND, spec.id, [{"beta": beta} for _ in sites])
        shapes = {"loglik": (1,), "grad": (p,), "hess": (p, p)}
        pooled = {name: got.array(name, shape) for name, shape in shapes.items()}
        loglik, grad, hess = float(pooled["loglik"][0]), pooled["grad"], pooled["hess"]
        if fit.rounds == 0:
            _check_information(spec, terms, hess)
        try:
            fit.receive(loglik, grad, hess)
        except ValueError as exc:
            raise GenoFedError(f"cox analysis {spec.id!r}: {exc}") from exc
    result = fit.result()
    (name,) = output_names(spec)
    files = write_cox_output(out_dir, name, terms, result)
    return files, {
        "rounds": result.rounds,
        "log partial likelihood": round(result.loglik, 4),
        **{f"HR {t}": f"{result.hr[i]:.4g} (p={result.p[i]:.3g})" for i, t in enumerate(terms)},
    }


#: Smallest eigenvalue of the pooled information matrix, relative to its largest,
#: below which the covariates are taken as collinear (or one as constant).
COLLINEAR_RATIO = 1e-10


def _check_information(spec: AnalysisSpec, terms: Sequence[str], hess: np.ndarray) -> None:
    """Stop, naming them, when the covariates are constant or collinear over the cohorts.

    The information matrix ``-hess`` of the first round is singular exactly
    when some combination of covariates is constant within every site's
    stratum; the covariates with weight in that combination are named.
    """
    info = -(hess + hess.T) / 2
    values, vectors = np.linalg.eigh(info)
    top = max(float(values[-1]), 0.0)
    if top > 0 and values[0] > COLLINEAR_RATIO * top:
        return
    null = vectors[:, 0]
    named = [t for t, w in zip(terms, null, strict=True) if abs(w) > 1e-3]
    what = (
        f"covariate {named[0]!r} is constant within every site's cohort"
        if len(named) == 1
        else f"covariates {', '.join(repr(t) for t in named)} are collinear within every "
        "site's cohort"
    )
    raise InputError(
        f"cox analysis {spec.id!r}: {what}, so the model cannot be fitted",
        hint="remove " + ("it" if len(named) == 1 else "one of them") + " from covariates",
    )


__all__ = ["output_names", "run_cox", "run_km"]
