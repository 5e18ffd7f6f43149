"""The vectorized Firth regression of LogisticFit makes the reference coroutine's decisions.

The reference is the per-variant port of plink2's FirthRegression (logistf
with half steps) that LogisticFit advanced one variant at a time before the
Firth fits were vectorized. Both are driven by the same pooled evaluations
(site statistics of simulated sites) and must ask for the same evaluations
in every round and end with the same coefficients, covariances and error codes.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest

from genofed.coordinator.combine.glm import (
    ERR_FIRTH_FAIL,
    ERR_NONE,
    ERR_UNFINISHED,
    TIE,
    LogisticFit,
    Pending,
    pool_stats,
    unpack,
)
from genofed.site_agent.stats.glm import logistic_chunk, oriented
from tests.unit.coordinator.test_glm_combine import _site_stats

F64 = npt.NDArray[np.float64]


# --- the reference: one coroutine per variant ---------------------------------------------


@dataclass(frozen=True)
class Eval:
    """Pooled statistics at one coefficient vector, in A1 coding."""

    loglik: float
    grad: F64
    hess: F64
    third: F64 | None


@dataclass
class _Fit:
    coef: F64
    cov: F64 | None
    unfinished: bool


def _firth_fit(p: int, first: Eval, trace: dict[str, int]) -> Generator[F64, Eval, _Fit | None]:
    """plink2's FirthRegression (a port of logistf) as a coroutine over evaluations.

    Yields the next coefficients to evaluate and receives their :class:`Eval`;
    returns the fit, or None where plink2 reports FIRTH_CONVERGE_FAIL.
    ``trace`` counts the branches taken (the test's, not the algorithm's).
    """
    max_iter_m1, gconv, xconv, lconv = 24, 1e-4, 1e-4, 1e-4
    coef = np.zeros(p)
    ev = first
    penalized = _penalized(ev)
    if penalized is None:
        return None
    loglik, inv = penalized
    is_last = unfinished = hs_bail = False
    iteration = 0
    while True:
        if is_last:
            return _Fit(coef, inv, unfinished)
        assert ev.third is not None
        score = ev.grad + np.einsum("jkl,kl->j", ev.third, inv)
        grad_max = float(np.abs(score).max())
        dcoef = inv @ score
        dcoef_max = float(np.abs(dcoef).max())
        if dcoef_max > 5.0:
            dcoef *= 5.0 / dcoef_max
            dcoef_max = 5.0
            trace["capped"] += 1
        coef = coef + dcoef
        converged = dcoef_max <= xconv and grad_max < gconv
        loglik_old = loglik
        thresh = loglik_old - (0.999999 * lconv if converged else 0.0)
        maxhs, halfstep = 5, 1
        while True:
            ev = yield coef.copy()
            penalized = _penalized(ev)
            if penalized is None:
                return None
            loglik, inv = penalized
            if halfstep > maxhs:
                break
            if loglik >= thresh:
                if loglik > loglik_old + TIE * abs(loglik_old):
                    break
                maxhs = halfstep
                trace["tie"] += 1
            elif (
                halfstep == maxhs
                and dcoef_max < 0.001
                and grad_max < 0.05
                and loglik >= loglik_old - lconv
            ):
                halfstep -= 1
                maxhs -= 1
                hs_bail = True
                trace["hs_bail"] += 1
            coef = coef - dcoef * 2.0**-halfstep
            halfstep += 1
            trace["halfstep"] += 1
            if halfstep > 5:
                trace["all_halfsteps"] += 1
        if abs(loglik - loglik_old) <= lconv and (converged or hs_bail):
            is_last = True
        elif iteration == max_iter_m1:
            is_last = unfinished = True
        iteration += 1


def _penalized(ev: Eval) -> tuple[float, F64] | None:
    """Firth's penalized log-likelihood l + log|I|/2 and I^-1 (None: I not positive definite)."""
    try:
        chol = np.linalg.cholesky(ev.hess)
    except np.linalg.LinAlgError:
        return None
    logdet = 2.0 * float(np.log(np.diag(chol)).sum())
    if not np.isfinite(logdet) or not np.isfinite(ev.loglik):
        return None
    inv = np.asarray(np.linalg.inv(ev.hess), dtype=np.float64)
    return ev.loglik + 0.5 * logdet, inv


class CoroutineFit(LogisticFit):
    """LogisticFit with its Firth fits advanced one coroutine per variant (the reference)."""

    def __init__(self, gram, firth_mode: str) -> None:  # type: ignore[no-untyped-def]
        self.coroutines: dict[int, tuple[Generator[F64, Eval, _Fit | None], F64]] = {}
        self.trace = dict.fromkeys(["capped", "tie", "hs_bail", "halfstep", "all_halfsteps"], 0)
        super().__init__(gram, firth_mode)

    def _start_firth(self, rows: np.ndarray) -> None:
        p = self.p
        for r in np.asarray(rows).tolist():
            self.used_firth[r] = True
            first = Eval(
                float(self.first["loglik"][r]),
                self.first["grad"][r],
                self.first["hess"][r],
                np.zeros((p, p, p)),
            )
            self._advance(r, _firth_fit(p, first, self.trace), None)

    def _advance(self, row: int, coro: Generator[F64, Eval, _Fit | None], ev: Eval | None) -> None:
        try:
            coef = next(coro) if ev is None else coro.send(ev)
        except StopIteration as stop:
            self.coroutines.pop(row, None)
            fit: _Fit | None = stop.value
            if fit is None:
                self.errcode[row] = ERR_FIRTH_FAIL
            else:
                self.coef[row] = fit.coef
                self.cov[row] = fit.cov
                self.unfinished[row] = fit.unfinished
            return
        self.coroutines[row] = (coro, coef)

    def pending(self) -> Pending | None:
        newton = np.flatnonzero(self.active)
        firth = np.array(sorted(self.coroutines), dtype=np.int64)
        rows = np.union1d(newton, firth).astype(np.int64)
        if not rows.size:
            return None
        coef = self.coef[rows].copy()
        is_firth = np.isin(rows, firth)
        for j in np.flatnonzero(is_firth).tolist():
            coef[j] = self.coroutines[int(rows[j])][1]
        return Pending(index=rows, beta=self._site_beta(rows, coef), firth=is_firth)

    def receive(self, pending: Pending, grad: F64, hess: F64, loglik: F64, third: F64) -> None:
        self.rounds += 1
        rows, p = pending.index, self.p
        grad = self._to_a1(rows, grad, 1)
        hess = self._to_a1(rows, unpack(hess, p, 2), 2)
        is_firth = pending.firth
        newton = rows[~is_firth]
        if newton.size:
            self._newton_step(newton, grad[~is_firth], hess[~is_firth])
        if is_firth.any():
            frows = rows[is_firth]
            t = self._to_a1(frows, unpack(third, p, 3), 3)
            for j, i in enumerate(np.flatnonzero(is_firth).tolist()):
                r = int(rows[i])
                coro = self.coroutines[r][0]
                self._advance(r, coro, Eval(float(loglik[i]), grad[i], hess[i], t[j]))


# --- the comparison ---------------------------------------------------------------------------


def _cohort(seed: int, n: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A few hundred variants: common ones, rare ones separated in cases or in controls,
    ones called in only a few samples, and ones that separate the phenotype perfectly."""
    rng = np.random.default_rng(seed)
    cov = rng.normal(size=(n, k)) * np.linspace(1.0, 3.0, k)
    y = (rng.random(n) < 1 / (1 + np.exp(-(cov @ np.linspace(0.5, -0.5, k) - 0.8)))).astype(float)
    cases, controls = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    rows = []
    for _ in range(60):  # common
        rows.append(rng.binomial(2, rng.uniform(0.05, 0.5), n))
    for _ in range(160):  # rare, carriers only among controls or only among cases
        d = np.zeros(n, dtype=np.int64)
        pool = controls if rng.random() < 0.7 else cases
        carriers = rng.choice(pool, rng.integers(1, 12), replace=False)
        d[carriers] = rng.choice([1, 2], len(carriers), p=[0.9, 0.1])
        rows.append(d)
    for _ in range(50):  # rare, a few carriers anywhere (Newton may fail)
        d = np.zeros(n, dtype=np.int64)
        d[rng.choice(n, rng.integers(1, 5), replace=False)] = 1
        rows.append(d)
    for _ in range(50):  # called in few samples only, often separated
        d = rng.binomial(2, 0.4, n)
        called = rng.choice(n, rng.integers(6, 14), replace=False)
        keep = np.full(n, -9)
        keep[called] = d[called]
        rows.append(keep)
    for _ in range(30):  # the genotype separates the phenotype (completely or nearly)
        d = np.where(y == 1, 2, 0)
        flip = rng.choice(n, rng.integers(0, 3), replace=False)
        d[flip] = 1
        rows.append(d)
    dos = np.array(rows, dtype=np.int8)
    return dos, cov, y


def _evaluate(dos, cov, y, parts, flips, pending: Pending):
    sums = None
    for part, swapped in zip(parts, flips, strict=True):
        d = dos[pending.index][:, part]
        if swapped:
            d = np.where(d < 0, d, 2 - d).astype(np.int8)
        g, missing = oriented(d, np.full(len(d), swapped))
        c = logistic_chunk(g, missing, cov[part], y[part], pending.beta, pending.firth)
        arrays = (c.grad, c.hess, c.loglik, c.third)
        sums = arrays if sums is None else tuple(a + b for a, b in zip(sums, arrays, strict=True))
    assert sums is not None
    return sums


def _same_pending(a: Pending, b: Pending) -> None:
    np.testing.assert_array_equal(a.index, b.index)
    np.testing.assert_array_equal(a.firth, b.firth)
    np.testing.assert_allclose(a.beta, b.beta, rtol=1e-12, atol=1e-12)


def _perturb(pending: Pending, sums):  # type: ignore[no-untyped-def]
    """Evaluations that exercise every branch: noise on the Firth rows' log-likelihoods,
    and a few Firth evaluations that fail (information not positive definite, or a
    log-likelihood that is not finite)."""
    grad, hess, loglik, third = (a.copy() for a in sums)
    key = np.sin(pending.beta @ np.array([12.9898, 78.233, 37.719, 4.581])) * 43758.5453
    key -= np.floor(key)  # a pseudo-random number in [0, 1) per row and point
    f = pending.firth
    loglik[f] += 3e-4 * (key[f] - 0.5)
    hess[f & (key < 0.004)] *= -1.0
    loglik[f & (key >= 0.004) & (key < 0.006)] = -np.inf
    loglik[f & (key >= 0.006) & (key < 0.008)] = np.nan
    return grad, hess, loglik, third


def _compare(seed: int, firth_mode: str, perturb: bool) -> tuple[LogisticFit, CoroutineFit]:
    n, k = 300, 2
    dos, cov, y = _cohort(seed, n, k)
    rng = np.random.default_rng(seed + 100)
    parts = np.array_split(rng.permutation(n), 3)
    flips = [False, True, False]
    gram = pool_stats(_site_stats(dos, cov, y, parts, flips), len(dos), k)
    new, ref = LogisticFit(gram, firth_mode), CoroutineFit(gram, firth_mode)
    while True:
        pn, pr = new.pending(), ref.pending()
        assert (pn is None) == (pr is None)
        if pn is None or pr is None:
            break
        _same_pending(pn, pr)
        sums = _evaluate(dos, cov, y, parts, flips, pn)
        if perturb:
            sums = _perturb(pn, sums)
        new.receive(pn, *sums)
        ref.receive(pr, *sums)
    assert new.rounds == ref.rounds
    np.testing.assert_array_equal(new.errcode, ref.errcode)
    np.testing.assert_array_equal(new.used_firth, ref.used_firth)
    np.testing.assert_array_equal(new.unfinished, ref.unfinished)
    # equal up to the rounding of sums taken in another order (about 1e-15 here)
    np.testing.assert_allclose(new.coef, ref.coef, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(new.cov, ref.cov, rtol=1e-12, atol=1e-12, equal_nan=True)
    rn, rr = new.result(), ref.result()
    np.testing.assert_array_equal(rn.errcode, rr.errcode)
    for name in ("beta", "se", "stat", "p"):
        np.testing.assert_allclose(
            getattr(rn, name), getattr(rr, name), rtol=1e-12, atol=1e-300, equal_nan=True
        )
    return new, ref


@pytest.mark.parametrize(("seed", "firth_mode"), [(0, "fallback"), (1, "always"), (2, "fallback")])
def test_vectorized_firth__equals_reference_coroutines(seed: int, firth_mode: str) -> None:
    new, ref = _compare(seed, firth_mode, perturb=False)
    firth = new.used_firth
    errcode = new.result().errcode
    assert firth.sum() >= 200  # separated variants, and Newton failures in fallback mode
    assert (errcode[firth] == ERR_NONE).sum() >= 150
    assert (errcode == ERR_UNFINISHED).any()  # 25 iterations without converging
    assert new.rounds > 25
    for branch in ("capped", "tie", "halfstep"):
        assert ref.trace[branch] > 0, ref.trace


@pytest.mark.parametrize(("seed", "firth_mode"), [(3, "fallback"), (4, "always")])
def test_vectorized_firth__equals_reference_on_noisy_and_failing_evaluations(
    seed: int, firth_mode: str
) -> None:
    new, ref = _compare(seed, firth_mode, perturb=True)
    errcode = new.result().errcode
    assert (errcode == ERR_FIRTH_FAIL).sum() >= 3
    assert (errcode == ERR_UNFINISHED).any()
    assert (errcode[new.used_firth] == ERR_NONE).any()
    assert min(ref.trace.values()) > 0, ref.trace  # every half-step branch, hs_bail included
