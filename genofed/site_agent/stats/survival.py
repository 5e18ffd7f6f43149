"""A site's survival statistics: counts on a time grid, and Cox partial-likelihood derivatives.

Pure: arrays and parameters in, arrays out. What these arrays mean on the
wire, and that nothing else leaves, is in :mod:`genofed.common.wire.survival`.

The Cox derivatives are written out here rather than taken from a library:
the site needs the log partial likelihood, its gradient and its Hessian at
a coefficient vector the *coordinator* chooses, for one stratum, with Efron
or Breslow ties. lifelines and statsmodels fit a whole model; their
per-beta derivative routines are private (lifelines) or tied to a model
object built on pandas/patsy (statsmodels ``PHReg``), neither of which the
site agent depends on. The formulas are the textbook ones (Efron 1977;
Therneau & Grambsch 2000, section 3.3) and the reference tests check the
fitted model against lifelines on the pooled cohort.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]


def grid_counts(
    time: FloatArray, event: BoolArray, group: IntArray, n_groups: int, grid: FloatArray
) -> tuple[IntArray, IntArray]:
    """At-risk and event counts per group (rows) and grid point (columns).

    Interval ``j`` is ``(t_{j-1}, t_j]`` with ``t_0 = -inf``: ``n_risk[g, j]``
    counts samples of group ``g`` with ``time > t_{j-1}`` and
    ``n_event[g, j]`` their events with ``time <= t_j``. ``group`` holds a
    code in ``[0, n_groups)`` per sample, or -1 for a sample in no group.
    """
    j = len(grid)
    n_risk = np.zeros((n_groups, j), dtype=np.int64)
    n_event = np.zeros((n_groups, j), dtype=np.int64)
    # interval of each sample's time: first grid point >= time (j: beyond the grid)
    slot = np.searchsorted(grid, time, side="left")
    for g in range(n_groups):
        mine = group == g
        # leaves[k]: samples of g whose time falls in interval k (k = j: after the grid)
        leaves = np.bincount(slot[mine], minlength=j + 1)
        n_risk[g] = leaves[::-1].cumsum()[::-1][:j]
        n_event[g] = np.bincount(slot[mine & event], minlength=j + 1)[:j]
    return n_risk, n_event


def suppress_small_risk_sets(
    n_risk: IntArray, n_event: IntArray, min_cell_count: int, fill: int
) -> tuple[IntArray, IntArray, BoolArray]:
    """Withhold every cell whose risk set is nonzero and smaller than ``min_cell_count``.

    Returns copies of the counts with ``fill`` in withheld cells, and the
    mask of withheld cells. An empty risk set is not withheld ("nobody" is
    not a small group, as in :mod:`genofed.site_agent.privacy.suppression`), so
    ``min_cell_count`` 0 or 1 withholds nothing.
    """
    mask = (n_risk > 0) & (n_risk < min_cell_count)
    return np.where(mask, fill, n_risk), np.where(mask, fill, n_event), mask


@dataclass(frozen=True)
class CoxDerivatives:
    """Log partial likelihood of one stratum at ``beta``, its gradient and Hessian."""

    loglik: float
    grad: FloatArray
    hess: FloatArray


def cox_derivatives(
    time: FloatArray, event: BoolArray, x: FloatArray, beta: FloatArray, ties: str
) -> CoxDerivatives:
    """Derivatives of one stratum's Cox log partial likelihood (``ties``: efron or breslow).

    For each distinct event time with ``d`` tied events ``D`` and risk set
    ``R`` (``time >= t``), with ``r = exp(x beta)`` and, for ``l < d``,
    ``f = l/d`` (Efron) or ``f = 0`` (Breslow)::

        phi_l = sum_R r - f sum_D r,   psi_l = sum_R r x - f sum_D r x,
        Omega_l = sum_R r x x' - f sum_D r x x'
        loglik += sum_D x beta - sum_l log phi_l
        grad   += sum_D x - sum_l psi_l / phi_l
        hess   -= sum_l (Omega_l / phi_l - psi_l psi_l' / phi_l^2)
    """
    if ties not in ("efron", "breslow"):
        raise ValueError(f"ties must be efron or breslow, not {ties!r}")
    p = x.shape[1]
    if not event.any():
        return CoxDerivatives(0.0, np.zeros(p), np.zeros((p, p)))
    eta = x @ beta
    shift = float(eta.max())
    r = np.exp(eta - shift)  # risk scores relative to the largest; log phi adds shift back
    order = np.argsort(time, kind="stable")
    t, ev, xs, rs = time[order], event[order], x[order], r[order]
    rx = rs[:, None] * xs
    rxx = rx[:, :, None] * xs[:, None, :]
    # suffix sums: risk-set totals for "time >= t[i]"
    s0 = rs[::-1].cumsum()[::-1]
    s1 = rx[::-1].cumsum(axis=0)[::-1]
    s2 = rxx[::-1].cumsum(axis=0)[::-1]
    times = np.unique(t[ev])
    start = np.searchsorted(t, times, side="left")  # first index of each event time's risk set
    which = np.searchsorted(times, t[ev])  # event time of each event
    d = np.bincount(which, minlength=len(times))
    d0 = np.bincount(which, weights=rs[ev], minlength=len(times))
    d1 = np.zeros((len(times), p))
    np.add.at(d1, which, rx[ev])
    d2 = np.zeros((len(times), p, p))
    np.add.at(d2, which, rxx[ev])
    # one row per event: its event time k and l = 0..d_k-1
    k = np.repeat(np.arange(len(times)), d)
    ell = np.arange(len(k)) - np.repeat(np.cumsum(d) - d, d)
    f = ell / d[k] if ties == "efron" else np.zeros(len(k))
    phi = s0[start][k] - f * d0[k]
    psi = s1[start][k] - f[:, None] * d1[k]
    omega = s2[start][k] - f[:, None, None] * d2[k]
    loglik = float(eta[event].sum() - np.sum(np.log(phi) + shift))
    grad = x[event].sum(axis=0) - (psi / phi[:, None]).sum(axis=0)
    mean = psi / phi[:, None]
    hess = -((omega / phi[:, None, None]).sum(axis=0) - np.einsum("ka,kb->ab", mean, mean))
    return CoxDerivatives(loglik, grad, hess)


__all__ = ["CoxDerivatives", "cox_derivatives", "grid_counts", "suppress_small_risk_sets"]
