"""The rounds of the survival analyses (``km``, ``cox``), as the coordinator drives them.

* ``km``: one ``km_counts`` round. Each site sends at-risk and event counts
  per group on the study's grid, small risk sets withheld
  (:mod:`genofed.common.wire.survival`); the coordinator sums them, forms
  the Kaplan-Meier curves and the log-rank test, and writes ``km.tsv``,
  ``logrank.tsv`` and the KM plot.
* ``cox``: ``cox_step`` rounds of Newton-Raphson, starting at beta = 0.
  Each round sends the current coefficients to every site and sums the
  sites' log partial likelihoods, gradients and Hessians (one stratum per
  site), until no coefficient moves by more than 1e-10; then ``cox.tsv``.

The math is in :mod:`genofed.coordinator.combine.survival`; this module
only moves arrays between it and the sites, then writes the files.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from genofed.common.errors import GenoFedError, InputError, SiteFailure
from genofed.common.study import AnalysisSpec
from genofed.common.wire.records import NamedArrays
from genofed.common.wire.survival import (
    COX_STEP_KIND,
    KM_COUNTS_KIND,
    KM_KIND,
    SUPPRESSED_VALUE,
    km_group_labels,
)
from genofed.coordinator.combine.survival import (
    CoxNewton,
    kaplan_meier,
    log_rank,
    pool_counts,
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
    ask_sum: AskSum | None = None,
) -> tuple[list[str], dict[str, object]]:
    """One ``km`` analysis: counts round, curves, log-rank; files and headline numbers."""
    params = spec.params
    labels = km_group_labels(params["group"], params["cuts"], params["levels"])
    grid = list(params["grid"])
    shape = (len(labels), len(grid))
    replies = ask(KM_COUNTS_KIND, spec.id, [{} for _ in sites])
    released = []
    merged: list[np.ndarray] = []
    for site, (_, arrays) in zip(sites, replies, strict=True):
        n_risk, n_event, suppressed = (arrays.get(k) for k in ("n_risk", "n_event", "suppressed"))
        if (
            n_risk is None
            or n_event is None
            or suppressed is None
            or n_risk.dtype.kind not in "iu"
            or n_event.dtype.kind not in "iu"
            or suppressed.dtype != np.bool_
        ):
            raise SiteFailure(
                site, "BAD_REPLY", "km counts need integer n_risk, n_event and bool suppressed"
            )
        if suppressed.shape == shape and (
            (n_risk[suppressed] != SUPPRESSED_VALUE).any()
            or (n_event[suppressed] != SUPPRESSED_VALUE).any()
        ):
            raise SiteFailure(site, "BAD_REPLY", "withheld km cells must hold -1")
        released.append((n_risk.astype(np.int64), n_event.astype(np.int64), suppressed))
        merged.append(_merged(site, arrays, len(grid)))
    full_grid = len(grid)
    if np.any(merged):
        # some site counted on a coarser grid: everyone's counts go on the common one
        kept = ~np.any(merged, axis=0)
        released = [_coarsen(r, m, kept) for r, m in zip(released, merged, strict=True)]
        grid = [t for t, k in zip(grid, kept, strict=True) if k]
        shape = (len(labels), len(grid))
    try:
        pooled = pool_counts(released, shape)
    except ValueError as exc:
        raise SiteFailure("a site", "BAD_REPLY", str(exc)) from exc
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
    withheld = int(sum(int(s.sum()) for _, _, s in released))
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


def _merged(site: str, arrays: NamedArrays, n_grid: int) -> np.ndarray:
    """The grid times ``site`` merged into the next kept one (all False if it sent none)."""
    got = arrays.get("merged")
    if got is None:
        return np.zeros(n_grid, dtype=np.bool_)
    if got.shape != (n_grid,) or got.dtype != np.bool_ or got[-1]:
        raise SiteFailure(site, "BAD_REPLY", f"km 'merged' must be ({n_grid},) bool, last False")
    return np.asarray(got, dtype=np.bool_)


def _coarsen(
    counts: tuple[np.ndarray, np.ndarray, np.ndarray], merged: np.ndarray, kept: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One site's counts on the common grid (the grid times no site merged).

    Interval ``k`` of the common grid runs from the kept time before it to
    its own time: its events are the site's events over every grid interval
    in it, and its number at risk is the site's at the first grid time the
    site kept there (at risk at the interval's start). A cell is withheld if
    any cell it is made of was.
    """
    n_risk, n_event, suppressed = counts
    ends = np.flatnonzero(kept)
    starts = np.concatenate([[0], ends[:-1] + 1])
    g = n_risk.shape[0]
    out_risk = np.zeros((g, len(ends)), dtype=np.int64)
    out_event = np.zeros((g, len(ends)), dtype=np.int64)
    out_hidden = np.zeros((g, len(ends)), dtype=np.bool_)
    for k, (a, b) in enumerate(zip(starts, ends, strict=True)):
        cols = np.arange(a, b + 1)
        first = cols[~merged[cols]][0]  # the site kept b at least (kept is common)
        hidden = suppressed[:, cols].any(axis=1)
        out_hidden[:, k] = hidden
        out_risk[:, k] = np.where(hidden, SUPPRESSED_VALUE, n_risk[:, first])
        out_event[:, k] = np.where(
            hidden, SUPPRESSED_VALUE, np.where(suppressed[:, cols], 0, n_event[:, cols]).sum(1)
        )
    return out_risk, out_event, out_hidden


def run_cox(
    spec: AnalysisSpec,
    sites: Sequence[str],
    out_dir: Path,
    ask: AskSites,
    *,
    ask_sum: AskSum | None = None,
) -> tuple[list[str], dict[str, object]]:
    """One ``cox`` analysis: Newton rounds until convergence; files and headline numbers."""
    terms = tuple(spec.params["covariates"])
    p = len(terms)
    fit = CoxNewton(p)
    while (beta := fit.pending()) is not None:
        replies = ask(COX_STEP_KIND, spec.id, [{"beta": beta} for _ in sites])
        shapes = {"loglik": (1,), "grad": (p,), "hess": (p, p)}
        pooled = {name: np.zeros(shape) for name, shape in shapes.items()}
        for site, (_, arrays) in zip(sites, replies, strict=True):
            for name, shape in shapes.items():
                got = arrays.get(name)
                if got is None or got.shape != shape or got.dtype.kind != "f":
                    raise SiteFailure(site, "BAD_REPLY", f"cox_step {name} must be floats {shape}")
                pooled[name] += got
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
