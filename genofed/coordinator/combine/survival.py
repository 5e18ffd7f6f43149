"""Survival analyses from the sites' releases: Kaplan-Meier, log-rank, stratified Cox.

Pure: arrays and parameters in, arrays out.

* Kaplan-Meier per group on the study's grid from pooled at-risk and event
  counts (the sums over sites of the ``km_counts`` summable forms, or the
  sites' own counts added up), with Greenwood's variance and the log(-log) ("exponential
  Greenwood") 95 % band, the default of lifelines and R's ``survfit``
  (``conf.type = "log-log"``). A cell that any site withheld makes the pooled
  cell unknown; a group's curve stops at its first unknown cell, and every
  later point is reported as suppressed, never as a count of zero.
* Log-rank test across groups (K-1 degrees of freedom, hypergeometric
  variance with tied events), over the grid points where every group's
  pooled counts are known.
* Cox proportional hazards stratified by site: Newton-Raphson on the sum of
  the sites' log partial likelihoods, with step halving when a step lowers
  the likelihood; Wald standard errors from the pooled information.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

#: Two-sided 95 % normal quantile, as lifelines computes it.
Z95 = float(stats.norm.ppf(0.975))
#: Newton stops when no coefficient moves by more than this.
COX_TOLERANCE = 1e-10
MAX_COX_ROUNDS = 60
MAX_HALVINGS = 30


@dataclass(frozen=True)
class PooledCounts:
    """Summed counts (G, J); ``known`` is False where any site withheld the cell."""

    n_risk: IntArray
    n_event: IntArray
    known: BoolArray


def pool_counts(
    sites: Sequence[tuple[IntArray, IntArray, BoolArray]], shape: tuple[int, int]
) -> PooledCounts:
    """Sum the sites' (n_risk, n_event, suppressed) arrays; raises ValueError if malformed."""
    n_risk = np.zeros(shape, dtype=np.int64)
    n_event = np.zeros(shape, dtype=np.int64)
    known = np.ones(shape, dtype=bool)
    for i, (risk, event, suppressed) in enumerate(sites):
        if risk.shape != shape or event.shape != shape or suppressed.shape != shape:
            raise ValueError(f"site {i}: km counts must have shape {shape}")
        shown = ~suppressed
        if (risk[shown] < 0).any() or (event[shown] < 0).any() or (event > risk)[shown].any():
            raise ValueError(f"site {i}: km counts must be 0 <= events <= at risk")
        n_risk += np.where(shown, risk, 0)
        n_event += np.where(shown, event, 0)
        known &= shown
    return PooledCounts(n_risk, n_event, known)


def pool_sums(
    n_risk: IntArray, n_event: IntArray, withheld_at: IntArray, merged_at: IntArray
) -> tuple[PooledCounts, BoolArray]:
    """The pooled counts on the common grid, from the sums of the sites' ``km_counts`` forms.

    ``n_risk``, ``n_event`` (G, J): released counts summed over sites (see
    :mod:`genofed.common.wire.survival`); ``withheld_at`` (G, J): sites
    withholding each cell; ``merged_at`` (J,): sites merging each grid time.
    Returns the counts and ``kept`` (J,), the grid times no site merged (the
    common grid). Interval ``k`` of the common grid runs from the kept time
    before it to its own time: its events are summed over every grid
    interval in it, its number at risk is the sum at its first grid time
    (each site's at-risk count at the interval's start), and it is unknown if
    any site withheld any cell it is made of.
    """
    kept = np.asarray(merged_at, dtype=np.int64) == 0
    if kept.all():
        return PooledCounts(n_risk, n_event, withheld_at == 0), kept
    ends = np.flatnonzero(kept)
    starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
    risk = n_risk[:, starts]
    event = np.add.reduceat(n_event, starts, axis=1)
    hidden = np.add.reduceat(withheld_at, starts, axis=1)
    return PooledCounts(risk, event, hidden == 0), kept


@dataclass(frozen=True)
class KaplanMeier:
    """Per group and grid point; NaN where unknown (suppressed) or nobody is at risk."""

    surv: FloatArray
    lower: FloatArray
    upper: FloatArray
    #: False from a group's first unknown cell on: the curve is suppressed there
    shown: BoolArray


def kaplan_meier(pooled: PooledCounts) -> KaplanMeier:
    """KM estimates with Greenwood log(-log) 95 % bands (lifelines' formulas)."""
    n = pooled.n_risk.astype(np.float64)
    d = pooled.n_event.astype(np.float64)
    shown = np.cumprod(pooled.known, axis=1).astype(bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(n > 0, 1.0 - d / n, 1.0)
        greenwood = np.where((n > 0) & (n > d), d / (n * (n - d)), 0.0)
        surv = np.cumprod(np.where(shown, factor, 1.0), axis=1)
        cum = np.cumsum(np.where(shown, greenwood, 0.0), axis=1)
        v = np.log(surv)
        a = np.exp(-np.exp(np.log(-v) - Z95 * np.sqrt(cum) / v))
        b = np.exp(-np.exp(np.log(-v) + Z95 * np.sqrt(cum) / v))
    lower = np.where(np.isnan(a), 1.0, np.where(surv == 0, 0.0, a))
    upper = np.where(np.isnan(b), 1.0, np.where(surv == 0, 0.0, b))
    undefined = ~shown | (pooled.n_risk == 0)
    nan = np.full(surv.shape, np.nan)
    return KaplanMeier(
        surv=np.where(undefined, nan, surv),
        lower=np.where(undefined, nan, lower),
        upper=np.where(undefined, nan, upper),
        shown=shown,
    )


@dataclass(frozen=True)
class LogRank:
    """The log-rank test; ``groups`` are the rows of the count arrays it compared."""

    groups: IntArray
    observed: FloatArray
    expected: FloatArray
    chisq: float
    df: int
    p: float
    #: grid points used (a prefix of the grid)
    n_points: int


def log_rank(pooled: PooledCounts) -> LogRank:
    """Log-rank test across the groups that have anyone at risk, on the known grid prefix.

    Same statistic as lifelines' ``multivariate_logrank_test`` (and R's
    ``survdiff``): ``(O-E)' V^- (O-E)`` on the first K-1 groups.
    """
    groups = np.flatnonzero(pooled.n_risk[:, 0] > 0) if pooled.known[:, 0].all() else np.array([])
    all_known = pooled.known.all(axis=0)
    n_points = int(np.argmin(all_known)) if not all_known.all() else all_known.size
    groups = groups.astype(np.int64)
    k = len(groups)
    n_g = pooled.n_risk[groups, :n_points].astype(np.float64)
    d_g = pooled.n_event[groups, :n_points].astype(np.float64)
    n = n_g.sum(axis=0)
    d = d_g.sum(axis=0)
    live = n > 0
    n_g, d_g, n, d = n_g[:, live], d_g[:, live], n[live], d[live]
    observed = d_g.sum(axis=1)
    expected = (n_g * (d / n)).sum(axis=1)
    if k < 2:
        return LogRank(groups, observed, expected, float("nan"), 0, float("nan"), n_points)
    with np.errstate(divide="ignore", invalid="ignore"):
        tie = np.where(n > 1, (n - d) / (n - 1), 1.0)
    weight = tie * d / n**2
    cross = (n_g * weight) @ n_g.T
    v = np.diag((n_g * (weight * n)).sum(axis=1)) - cross
    z = (observed - expected)[:-1]
    chisq = float(z @ np.linalg.pinv(v[:-1, :-1]) @ z)
    df = k - 1
    return LogRank(groups, observed, expected, chisq, df, float(stats.chi2.sf(chisq, df)), n_points)


@dataclass(frozen=True)
class CoxResult:
    """A fitted stratified Cox model: coefficients, Wald statistics, hazard ratios."""

    coef: FloatArray
    se: FloatArray
    z: FloatArray
    p: FloatArray
    hr: FloatArray
    hr_lower: FloatArray
    hr_upper: FloatArray
    loglik: float
    rounds: int


class CoxNewton:
    """Newton-Raphson for a Cox model whose derivatives arrive one round at a time.

    Call :meth:`pending` for the coefficients to evaluate next (None when
    finished), send them to the sites, and :meth:`receive` their summed log
    partial likelihood, gradient and Hessian. A step that lowers the
    likelihood is halved (from the last accepted point) up to
    ``MAX_HALVINGS`` times.
    """

    def __init__(self, p: int) -> None:
        self.p = p
        self._trial: FloatArray | None = np.zeros(p)
        self._beta = np.zeros(p)
        self._loglik = -np.inf
        self._grad = np.zeros(p)
        self._hess = np.zeros((p, p))
        self._step = np.zeros(p)
        self._halvings = 0
        self.rounds = 0

    def pending(self) -> FloatArray | None:
        return None if self._trial is None else self._trial.copy()

    def receive(self, loglik: float, grad: FloatArray, hess: FloatArray) -> None:
        if self._trial is None:
            raise ValueError("the fit has finished")
        self.rounds += 1
        if not (np.isfinite(loglik) and np.isfinite(grad).all() and np.isfinite(hess).all()):
            raise ValueError("the pooled partial likelihood is not finite")
        if loglik < self._loglik - 1e-12 * abs(self._loglik):
            self._halvings += 1
            if self._halvings > MAX_HALVINGS:
                raise ValueError("Newton-Raphson cannot increase the partial likelihood")
            self._step /= 2
            self._trial = self._beta + self._step
            return
        self._beta, self._loglik, self._grad, self._hess = self._trial, loglik, grad, hess
        self._halvings = 0
        try:
            self._step = np.asarray(np.linalg.solve(-hess, grad), dtype=np.float64)
        except np.linalg.LinAlgError as exc:
            raise ValueError(
                "the pooled information matrix is singular (a covariate is constant "
                "within every site, or two covariates are collinear)"
            ) from exc
        if np.max(np.abs(self._step)) <= COX_TOLERANCE:
            self._trial = None
        elif self.rounds >= MAX_COX_ROUNDS:
            raise ValueError(
                f"the Cox model did not converge in {MAX_COX_ROUNDS} rounds "
                "(a covariate may separate events from non-events)"
            )
        else:
            self._trial = self._beta + self._step

    def result(self) -> CoxResult:
        if self._trial is not None:
            raise ValueError("the fit has not finished")
        cov = np.linalg.inv(-self._hess)
        se = np.sqrt(np.diag(cov))
        z = self._beta / se
        return CoxResult(
            coef=self._beta,
            se=se,
            z=z,
            p=stats.chi2.sf(z**2, 1),
            hr=np.exp(self._beta),
            hr_lower=np.exp(self._beta - Z95 * se),
            hr_upper=np.exp(self._beta + Z95 * se),
            loglik=float(self._loglik),
            rounds=self.rounds,
        )


__all__ = [
    "COX_TOLERANCE",
    "CoxNewton",
    "CoxResult",
    "KaplanMeier",
    "LogRank",
    "PooledCounts",
    "kaplan_meier",
    "log_rank",
    "pool_counts",
    "pool_sums",
]
