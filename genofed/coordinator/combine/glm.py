"""Combine half of the GWAS: plink2 ``--glm`` from pooled sufficient statistics.

Reproduces PLINK v2.00a3.5's per-variant regression (``plink2_glm_linear.cc``,
``plink2_glm_logistic.cc``), from the facts of its algorithm:

* A1 is the non-major allele: REF when the REF frequency over all genotyped
  samples is below 1/2, else ALT; the genotype predictor counts A1.
* Predictors are ``[1, A1 dosage, covariates...]``; one row per predictor
  but the intercept is reported: ``ADD`` then each covariate.
* Per variant, before regressing: ``SAMPLE_CT<=PREDICTOR_CT`` when the
  samples with a call number at most the predictors; ``CONST_OMITTED_ALLELE``
  when every such sample has the same genotype; ``CORR_TOO_HIGH``
  (|r| > 0.999), ``VIF_INFINITE`` and ``VIF_TOO_HIGH`` (> 50) from the
  predictors' correlation matrix; ``INVALID_RESULT`` when the inverse
  information has a diagonal below 1e-20 or a correlation above 0.99999.
* Linear: ordinary least squares, ``s^2 = RSS / (n - p)``, t test on
  ``n - p`` degrees of freedom.
* Logistic: Newton-Raphson from beta = 0 with plink2's stopping rules
  (sum |step| < 1e-4 converges; divergence tests after iteration 3; after
  iteration 13 an ``UNFINISHED`` result); the standard errors come from the
  information matrix of the last Newton iteration, as plink2's do.
* Firth (``firth-fallback``): used where the A1 dosage is zero in cases or in
  controls (separation) or where Newton fails; logistf-style iterations with
  plink2's step cap (5), five step halvings, convergence thresholds 1e-4 and
  25 iterations (then ``UNFINISHED``).

Wald statistics: ``Z = beta / SE`` with a normal p-value for logistic
models. plink2 runs logistic regression in single precision; this module
runs in double precision, so its results agree with plink2's to about 1e-5
(relative), not to the last printed digit, on ill-conditioned fits.

Pure core: arrays in, arrays out. The multi-round exchange that feeds
:class:`LogisticFit` is ``coordinator/glm_protocol.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import stats

from genofed.common.glm_wire import miss_center, multisets

__all__ = [
    "ERR_CONST_OMITTED",
    "ERR_FIRTH_FAIL",
    "ERR_LOGISTIC_FAIL",
    "ERR_NONE",
    "ERR_UNFINISHED",
    "GlmResult",
    "LogisticFit",
    "Pending",
    "PooledGram",
    "genomic_inflation",
    "linear_regression",
    "pool_stats",
]

F64 = npt.NDArray[np.float64]

ERR_NONE: Final = "."
ERR_SAMPLE_CT: Final = "SAMPLE_CT<=PREDICTOR_CT"
ERR_CONST_OMITTED: Final = "CONST_OMITTED_ALLELE"
ERR_CORR: Final = "CORR_TOO_HIGH"
ERR_VIF_INF: Final = "VIF_INFINITE"
ERR_VIF: Final = "VIF_TOO_HIGH"
ERR_SEPARATION: Final = "SEPARATION"
ERR_LOGISTIC_FAIL: Final = "LOGISTIC_CONVERGE_FAIL"
ERR_FIRTH_FAIL: Final = "FIRTH_CONVERGE_FAIL"
ERR_INVALID: Final = "INVALID_RESULT"
ERR_UNFINISHED: Final = "UNFINISHED"
#: Not plink2's: a site withheld the variant (too few samples missing its call to release).
ERR_WITHHELD: Final = "SMALL_CELL_WITHHELD"

#: Relative log-likelihood difference treated as a tie in the Firth step search.
TIE: Final = 1e-11
MAX_CORR: Final = 0.999
VIF_THRESHOLD: Final = 50.0


@cache
def _unpack_index(n: int, degree: int) -> npt.NDArray[np.intp]:
    """Index into the packed columns for every entry of the full symmetric tensor."""
    where = {s: j for j, s in enumerate(multisets(n, degree))}
    out = np.empty((n,) * degree, dtype=np.intp)
    for pos in np.ndindex(*out.shape):
        out[pos] = where[tuple(sorted(pos))]
    return out


def unpack(packed: F64, n: int, degree: int) -> F64:
    """(V, n, ..., n) full symmetric tensors from (V, #multisets) packed rows."""
    return np.asarray(packed)[:, _unpack_index(n, degree)]


@dataclass(frozen=True)
class PooledGram:
    """Pooled cross products over ``[1, A1 dosage, C_1..C_k, y]`` for every variant.

    ``gram[v]`` sums over the analysis samples with a call at variant ``v``.
    ``a1_is_ref`` marks the variants whose A1 (tested allele) is REF.
    """

    gram: F64
    a1_is_ref: npt.NDArray[np.bool_]
    k: int
    #: Variants a site withheld (small cells); their rows are zero.
    withheld: npt.NDArray[np.bool_] | None = None

    @property
    def p(self) -> int:
        return self.k + 2

    @property
    def obs_ct(self) -> npt.NDArray[np.int64]:
        return np.rint(self.gram[:, 0, 0]).astype(np.int64)

    @property
    def a1_freq(self) -> F64:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.gram[:, 0, 1] / (2.0 * self.gram[:, 0, 0])


def _to_a1(gram: F64, mask: npt.NDArray[np.bool_]) -> F64:
    """Re-express cross products for g' = 2 - g on the ``mask`` rows (g is index 1)."""
    out = gram.copy()
    sub = out[mask]
    sub[:, 1, :] = 2.0 * sub[:, 0, :] - sub[:, 1, :]
    sub[:, :, 1] = 2.0 * sub[:, :, 0] - sub[:, :, 1]
    out[mask] = sub
    return out


def _uncenter(miss: F64, center: F64, q: int) -> F64:
    """(m, T) sums of z z^T from sums of (z - c)(z - c)^T whose (0, 0) entry counts the samples."""
    full = unpack(miss, q, 2)
    a = np.eye(q)
    a[:, 0] += center  # z = A (z - c) with the intercept z_0 = 1, c_0 = 0
    full = np.einsum("ia,vab,jb->vij", a, full, a)
    pairs = multisets(q, 2)
    return np.asarray(full[:, [i for i, _ in pairs], [j for _, j in pairs]], dtype=np.float64)


def pool_stats(sites: Sequence[Mapping[str, np.ndarray]], n_variants: int, k: int) -> PooledGram:
    """Sum the sites' ``glm_stats`` replies into per-variant Gram matrices (A1 coding).

    Raises ValueError naming the array when a reply has the wrong shape.
    """
    q = k + 2  # z = [1, C, y]
    t = q * (q + 1) // 2
    shapes = {
        "gz": (n_variants, q),
        "gg": (n_variants,),
        "zz": (t,),
    }
    called = np.zeros(n_variants, dtype=np.int64)
    alt = np.zeros(n_variants)
    gz = np.zeros((n_variants, q))
    gg = np.zeros(n_variants)
    zz = np.zeros(t)
    missing = np.zeros((n_variants, t))
    withheld = np.zeros(n_variants, dtype=np.bool_)
    for i, arrays in enumerate(sites):
        for name, shape in shapes.items():
            if name not in arrays or arrays[name].shape != shape:
                raise ValueError(f"site {i}: {name} must have shape {shape}")
        bits, corr = arrays.get("miss_rows"), arrays.get("miss_zz")
        if bits is None or bits.dtype != np.uint8 or bits.shape != ((n_variants + 7) // 8,):
            raise ValueError(f"site {i}: miss_rows must be {(n_variants + 7) // 8} bytes")
        rows = np.flatnonzero(np.unpackbits(bits, count=n_variants))
        if corr is None or corr.shape != (len(rows), t):
            raise ValueError(f"site {i}: miss_zz must have one row per bit set in miss_rows")
        held = arrays.get("withheld")
        if held is not None:
            if held.dtype != np.uint8 or held.shape != ((n_variants + 7) // 8,):
                raise ValueError(f"site {i}: withheld must be {(n_variants + 7) // 8} bytes")
            withheld |= np.unpackbits(held, count=n_variants).astype(np.bool_)
        other = arrays.get("other_counts")
        if other is None or other.shape not in {(n_variants, 2), (0, 2)}:
            raise ValueError(f"site {i}: other_counts must have shape ({n_variants}, 2) or (0, 2)")
        site_zz = np.asarray(arrays["zz"], dtype=np.float64)
        corr = _uncenter(np.asarray(corr, dtype=np.float64), miss_center(site_zz), q)
        site_called = np.full(n_variants, np.rint(site_zz[0]), dtype=np.int64)
        site_called[rows] -= np.rint(corr[:, 0]).astype(np.int64)
        called += site_called
        alt += arrays["gz"][:, 0]
        if other.size:
            called += other[:, 0].astype(np.int64)
            alt += other[:, 1]
        gz += arrays["gz"]
        gg += arrays["gg"]
        zz += site_zz
        np.add.at(missing, rows, corr)
    full = np.empty((n_variants, q + 1, q + 1))
    zpos = np.array([0, *range(2, q + 1)])  # z index -> position in [1, g, C, y]
    block = unpack(zz[None, :] - missing, q, 2)
    full[:, zpos[:, None], zpos[None, :]] = block
    full[:, 1, zpos] = gz
    full[:, zpos, 1] = gz
    full[:, 1, 1] = gg
    alt_ct = np.rint(alt).astype(np.int64)
    ref = 2 * called - alt_ct
    a1_is_ref = 2 * ref < 2 * called  # REF frequency below 1/2: REF is not the major allele
    full[withheld] = 0.0
    return PooledGram(gram=_to_a1(full, a1_is_ref), a1_is_ref=a1_is_ref, k=k, withheld=withheld)


@dataclass(frozen=True)
class GlmResult:
    """Per-variant results, reported predictors ``[ADD, C_1..C_k]`` in the columns."""

    model: str  # "linear" or "logistic"
    firth_mode: str
    obs_ct: npt.NDArray[np.int64]
    a1_is_ref: npt.NDArray[np.bool_]
    a1_freq: F64
    beta: F64
    se: F64
    stat: F64
    p: F64
    errcode: npt.NDArray[np.str_]
    firth: npt.NDArray[np.bool_]


def _precheck(gram: PooledGram) -> npt.NDArray[np.object_]:
    """plink2's checks before regressing; '.' where the variant may be regressed."""
    p = gram.p
    a = gram.gram
    n = a[:, 0, 0]
    err = np.full(len(n), ERR_NONE, dtype=object)
    err[n <= p] = ERR_SAMPLE_CT
    if gram.withheld is not None:
        err[gram.withheld] = ERR_WITHHELD
    const = (n * a[:, 1, 1] - a[:, 0, 1] ** 2 == 0) & (err == ERR_NONE)
    err[const] = ERR_CONST_OMITTED
    todo = np.flatnonzero(err == ERR_NONE)
    if todo.size and p > 2:
        x = a[todo][:, 1:p, 1:p]
        s = a[todo][:, 0, 1:p]
        nn = n[todo][:, None, None]
        cov = (x - s[:, :, None] * s[:, None, :] / nn) / (nn - 1)
        sd = np.sqrt(np.einsum("vii->vi", cov))
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = cov / (sd[:, :, None] * sd[:, None, :])
        off = ~np.eye(p - 1, dtype=bool)
        too_high = (np.abs(np.where(off, corr, 0.0)) > MAX_CORR).any(axis=(1, 2))
        too_high |= ~np.isfinite(corr).all(axis=(1, 2))
        err[todo[too_high]] = ERR_CORR
        rest = ~too_high
        if rest.any():
            c = corr[rest]
            eig = np.linalg.eigvalsh(c)
            singular = eig.min(axis=1) <= eig.max(axis=1) * 1e-14
            vif = np.full((len(c), p - 1), np.inf)
            ok = ~singular
            if ok.any():
                vif[ok] = np.einsum("vii->vi", np.linalg.inv(c[ok]))
            rows = todo[rest]
            err[rows[singular]] = ERR_VIF_INF
            err[rows[ok & (vif > VIF_THRESHOLD).any(axis=1)]] = ERR_VIF
    return err


def _valid(cov: F64) -> npt.NDArray[np.bool_]:
    """plink2's validParameters(): usable diagonal, no |corr| near 1 below the diagonal."""
    diag = np.einsum("vii->vi", cov)
    ok = np.isfinite(diag).all(axis=1) & (diag[:, 1:] >= 1e-20).all(axis=1)
    with np.errstate(invalid="ignore"):
        root = np.sqrt(np.where(diag > 0, diag, 0.0))
        bound = 0.99999 * root[:, :, None] * root[:, None, :]
    lower = np.tril(np.ones(cov.shape[1:], dtype=bool), k=-1)
    ok &= ~((cov > bound) & lower).any(axis=(1, 2))
    return np.asarray(ok, dtype=np.bool_)


def _inverse(m: F64) -> F64:
    """Batched inverse; NaN rows where a matrix is singular."""
    try:
        return np.asarray(np.linalg.inv(m), dtype=np.float64)
    except np.linalg.LinAlgError:
        out = np.full_like(m, np.nan)
        for i, mi in enumerate(m):
            with contextlib.suppress(np.linalg.LinAlgError):
                out[i] = np.linalg.inv(mi)
        return out


def _empty_result(gram: PooledGram, model: str, firth_mode: str, err: np.ndarray) -> GlmResult:
    v, r = len(err), gram.p - 1
    nan = np.full((v, r), np.nan)
    return GlmResult(
        model=model,
        firth_mode=firth_mode,
        obs_ct=gram.obs_ct,
        a1_is_ref=gram.a1_is_ref,
        a1_freq=gram.a1_freq,
        beta=nan.copy(),
        se=nan.copy(),
        stat=nan.copy(),
        p=nan.copy(),
        errcode=err.astype(str),
        firth=np.zeros(v, dtype=bool),
    )


def linear_regression(gram: PooledGram) -> GlmResult:
    """OLS per variant with t tests, plink2 --glm linear."""
    err = _precheck(gram)
    result = _empty_result(gram, "linear", "never", err)
    todo = np.flatnonzero(err == ERR_NONE)
    if not todo.size:
        return result
    p = gram.p
    a = gram.gram[todo]
    xtx, xty, yy, n = a[:, :p, :p], a[:, :p, p], a[:, p, p], a[:, 0, 0]
    inv = _inverse(xtx)
    beta = np.einsum("vij,vj->vi", inv, xty)
    sigma2 = (yy - np.einsum("vi,vi->v", xty, beta)) / (n - p)
    cov = inv * sigma2[:, None, None]
    ok = _valid(cov) & np.isfinite(beta).all(axis=1)
    errcode = result.errcode.astype(object)
    errcode[todo[~ok]] = ERR_INVALID
    rows, b, c = todo[ok], beta[ok], cov[ok]
    se = np.sqrt(np.einsum("vii->vi", c))
    result.beta[rows] = b[:, 1:]
    result.se[rows] = se[:, 1:]
    t = b[:, 1:] / se[:, 1:]
    result.stat[rows] = t
    df = (n[ok] - p)[:, None]
    result.p[rows] = 2.0 * stats.t.sf(np.abs(t), df)
    return _replace_err(result, errcode)


def _replace_err(result: GlmResult, errcode: np.ndarray) -> GlmResult:
    return GlmResult(**{**result.__dict__, "errcode": errcode.astype(str)})


# --- logistic regression -------------------------------------------------------------


@dataclass(frozen=True)
class Eval:
    """Pooled statistics at one coefficient vector, in A1 coding."""

    loglik: float
    grad: F64
    hess: F64
    third: F64 | None


@dataclass(frozen=True)
class Pending:
    """What the next round must evaluate: variant rows, betas in the sites' coding, Firth rows."""

    index: npt.NDArray[np.int64]
    beta: F64
    firth: npt.NDArray[np.bool_]


@dataclass
class _Fit:
    coef: F64
    cov: F64 | None
    unfinished: bool


def _l_matrix(p: int) -> F64:
    """The map x -> x' for g' = 2 - g (an involution)."""
    m = np.eye(p)
    m[1, 0], m[1, 1] = 2.0, -1.0
    return m


def _firth_fit(p: int, first: Eval) -> Generator[F64, Eval, _Fit | None]:
    """plink2's FirthRegression (a port of logistf) as a coroutine over evaluations.

    Yields the next coefficients to evaluate and receives their :class:`Eval`;
    returns the fit, or None where plink2 reports FIRTH_CONVERGE_FAIL.
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
                # plink2 accepts loglik >= loglik_old; in single precision a
                # tie is broken by rounding noise. In double precision an
                # exact tie is a two-step cycle around the optimum (the step
                # ignores the penalty's curvature), so a tie takes the
                # half step here, as plink2's noise would.
                if loglik > loglik_old + TIE * abs(loglik_old):
                    break
                maxhs = halfstep
            elif (
                halfstep == maxhs
                and dcoef_max < 0.001
                and grad_max < 0.05
                and loglik >= loglik_old - lconv
            ):
                # converged as far as it goes: undo every half step and stop
                halfstep -= 1
                maxhs -= 1
                hs_bail = True
            coef = coef - dcoef * 2.0**-halfstep
            halfstep += 1
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


class LogisticFit:
    """Newton-Raphson for many variants at once, with per-variant Firth coroutines.

    Start from the pooled ``glm_stats`` Gram (the evaluation at beta = 0);
    then repeat ``pending()`` / ``receive()`` until ``pending()`` is None
    and read ``result()``. Sites evaluate in their own (study ALT) coding;
    this class converts to and from plink2's A1 coding.
    """

    def __init__(self, gram: PooledGram, firth_mode: str) -> None:
        self.gram = gram
        self.firth_mode = firth_mode
        p = self.p = gram.p
        v = len(gram.a1_is_ref)
        self.errcode = _precheck(gram)
        self.coef = np.zeros((v, p))
        self.cov = np.full((v, p, p), np.nan)
        self.used_firth = np.zeros(v, dtype=bool)
        self.unfinished = np.zeros(v, dtype=bool)
        a = gram.gram
        xtx, xty, n = a[:, :p, :p], a[:, :p, p], a[:, 0, 0]
        todo = self.errcode == ERR_NONE
        case_dosage, total_dosage = xty[:, 1], xtx[:, 0, 1]
        separated = todo & ((case_dosage == 0) | (case_dosage == total_dosage))
        self.first = {
            "grad": xty - 0.5 * xtx[:, :, 0],
            "hess": 0.25 * xtx,
            "loglik": n * np.log(0.5),
        }
        self.firth: dict[int, tuple[Generator[F64, Eval, _Fit | None], F64]] = {}
        if firth_mode == "always":
            newton = np.zeros(v, dtype=bool)
            self._start_firth(np.flatnonzero(todo))
        else:
            newton = todo & ~separated
            if firth_mode == "fallback":
                self._start_firth(np.flatnonzero(separated))
            else:
                self.errcode[separated & gram.a1_is_ref] = ERR_SEPARATION + ",REF"
                self.errcode[separated & ~gram.a1_is_ref] = ERR_SEPARATION + ",ALT1"
        self.newton_rows = np.flatnonzero(newton)
        self.n_iter = np.zeros(v, dtype=np.int64)
        self.min_delta = np.full(v, 1e9)
        self.last_hess = np.full((v, p, p), np.nan)
        self.active = newton.copy()
        if self.newton_rows.size:
            rows = self.newton_rows
            self._newton_step(rows, self.first["grad"][rows], self.first["hess"][rows])
        self.rounds = 0

    # -- conversion between A1 coding and the sites' coding --------------------------------

    def _site_beta(self, rows: np.ndarray, coef: F64) -> F64:
        out = coef.copy()
        flip = self.gram.a1_is_ref[rows]
        out[flip, 0] = coef[flip, 0] + 2.0 * coef[flip, 1]
        out[flip, 1] = -coef[flip, 1]
        return out

    def _to_a1(self, rows: np.ndarray, arr: F64, degree: int) -> F64:
        flip = self.gram.a1_is_ref[rows]
        if not flip.any():
            return arr
        m = _l_matrix(self.p)
        out = arr.copy()
        sub = arr[flip]
        if degree == 1:
            out[flip] = sub @ m.T
        elif degree == 2:
            out[flip] = np.einsum("ia,vab,jb->vij", m, sub, m)
        else:
            out[flip] = np.einsum("ia,jb,kc,vabc->vijk", m, m, m, sub)
        return out

    # -- Newton ------------------------------------------------------------------------------

    def _newton_step(self, rows: np.ndarray, grad: F64, hess: F64) -> None:
        self.last_hess[rows] = hess
        dcoef = np.full_like(grad, np.nan)
        finite = np.isfinite(hess).all(axis=(1, 2)) & np.isfinite(grad).all(axis=1)
        if finite.any():
            eig_ok = np.zeros(len(rows), dtype=bool)
            eig_ok[finite] = np.linalg.eigvalsh(hess[finite]).min(axis=1) > 0
            if eig_ok.any():
                dcoef[eig_ok] = np.linalg.solve(hess[eig_ok], grad[eig_ok][:, :, None])[:, :, 0]
        delta = np.abs(dcoef).sum(axis=1)
        coef = self.coef[rows] + dcoef
        self.coef[rows] = coef
        self.min_delta[rows] = np.minimum(
            self.min_delta[rows], np.where(np.isnan(delta), np.inf, delta)
        )
        it = self.n_iter[rows]
        fail = np.isnan(delta)
        later = (it > 3) & ~fail
        fail |= later & (
            ((delta > 20.0) & (delta > 2.0 * self.min_delta[rows]))
            | ((it > 6) & (np.abs(1.0 - delta) < 1e-3))
        )
        big = np.abs(coef).max(axis=1)
        limit = (it > 13) & ~fail
        fail |= limit & (big > 8e3)
        unfinished = limit & ~(big > 8e3)
        converged = ~fail & ~unfinished & (delta < 1e-4)
        fail |= converged & (big > 6e4)
        converged &= ~(big > 6e4)
        done = fail | unfinished | converged
        self.unfinished[rows[unfinished]] = True
        self.active[rows[done]] = False
        self.n_iter[rows] += 1
        finished = rows[(unfinished | converged)]
        self.cov[finished] = _inverse(self.last_hess[finished])
        failed = rows[fail]
        if failed.size:
            if self.firth_mode == "fallback":
                self.coef[failed] = 0.0
                self._start_firth(failed)
            else:
                self.errcode[failed] = ERR_LOGISTIC_FAIL

    # -- Firth -------------------------------------------------------------------------------

    def _start_firth(self, rows: np.ndarray) -> None:
        p = self.p
        for r in rows.tolist():
            self.used_firth[r] = True
            first = Eval(
                float(self.first["loglik"][r]),
                self.first["grad"][r],
                self.first["hess"][r],
                np.zeros((p, p, p)),
            )
            coro = _firth_fit(p, first)
            self._advance_firth(r, coro, None)

    def _advance_firth(
        self, row: int, coro: Generator[F64, Eval, _Fit | None], ev: Eval | None
    ) -> None:
        try:
            coef = next(coro) if ev is None else coro.send(ev)
        except StopIteration as stop:
            self.firth.pop(row, None)
            fit: _Fit | None = stop.value
            if fit is None:
                self.errcode[row] = ERR_FIRTH_FAIL
            else:
                self.coef[row] = fit.coef
                self.cov[row] = fit.cov
                self.unfinished[row] = fit.unfinished
            return
        self.firth[row] = (coro, coef)

    # -- the exchange ------------------------------------------------------------------------

    def pending(self) -> Pending | None:
        """The evaluations the next round must make, or None when every fit is done."""
        newton = np.flatnonzero(self.active)
        firth = np.array(sorted(self.firth), dtype=np.int64)
        rows = np.union1d(newton, firth).astype(np.int64)
        if not rows.size:
            return None
        coef = self.coef[rows].copy()
        is_firth = np.isin(rows, firth)
        for j in np.flatnonzero(is_firth).tolist():
            coef[j] = self.firth[int(rows[j])][1]
        return Pending(index=rows, beta=self._site_beta(rows, coef), firth=is_firth)

    def receive(self, pending: Pending, grad: F64, hess: F64, loglik: F64, third: F64) -> None:
        """Take the pooled evaluations (sites' coding) for ``pending``."""
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
            for j, r in enumerate(frows.tolist()):
                i = int(np.flatnonzero(rows == r)[0])
                coro = self.firth[r][0]
                self._advance_firth(r, coro, Eval(float(loglik[i]), grad[i], hess[i], t[j]))

    def result(self) -> GlmResult:
        """Per-variant odds-ratio scale results (BETA holds log odds ratios)."""
        firth_mode = self.firth_mode
        result = _empty_result(self.gram, "logistic", firth_mode, self.errcode)
        errcode = self.errcode.copy()
        fitted = np.flatnonzero(errcode == ERR_NONE)
        cov = self.cov[fitted]
        ok = _valid(cov) & np.isfinite(self.coef[fitted]).all(axis=1)
        errcode[fitted[~ok]] = ERR_INVALID
        rows = fitted[ok]
        errcode[rows[self.unfinished[rows]]] = ERR_UNFINISHED
        se = np.sqrt(np.einsum("vii->vi", cov[ok]))[:, 1:]
        beta = self.coef[rows][:, 1:]
        result.beta[rows] = beta
        result.se[rows] = se
        z = beta / se
        result.stat[rows] = z
        result.p[rows] = 2.0 * stats.norm.sf(np.abs(z))
        out = _replace_err(result, errcode)
        return GlmResult(**{**out.__dict__, "firth": self.used_firth.copy()})


def genomic_inflation(result: GlmResult) -> float:
    """lambda_GC: median 1-df chi-square of the ADD test over its expected median."""
    p = result.p[:, 0]
    p = p[np.isfinite(p)]
    if not p.size:
        return float("nan")
    chisq = stats.chi2.isf(p, 1)
    return float(np.median(chisq) / stats.chi2.ppf(0.5, 1))
