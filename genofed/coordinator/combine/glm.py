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
* Firth (``firth-fallback``): used where plink2's GlmLogisticThread uses it,
  instead of Newton where an allele (A1 or the major allele) has no copy in
  the cases or none in the controls (separation: every single carrier), and
  after Newton where Newton fails (a NaN step; after iteration 3 a step sum
  above 20 and twice the smallest; after iteration 6 a step sum within 1e-3
  of 1; a coefficient above 8e3 at the iteration limit or 6e4 at
  convergence). A Newton fit that reaches the iteration limit otherwise is
  ``UNFINISHED``, as in plink2, not a Firth fit. Firth runs logistf-style
  iterations with plink2's step cap (5), five step halvings, convergence
  thresholds 1e-4 and 25 iterations (then ``UNFINISHED``).

Wald statistics: ``Z = beta / SE`` with a normal p-value for logistic
models. plink2 runs logistic regression in single precision; this module
runs in double precision, so its results agree with plink2's to about 1e-5
(relative), not to the last printed digit, on ill-conditioned fits.

Pure core: arrays in, arrays out. The multi-round exchange that feeds
:class:`LogisticFit` is ``coordinator/protocols/glm.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import stats

from genofed.common.wire.glm import GLM_STATS_KIND, SUMMABLE_FORMS, unpack
from genofed.common.wire.summable import summed

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
    "pool_sums",
    "unpack",
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

#: Relative penalized log-likelihood gain treated as a tie in the Firth step search:
#: single precision's unit roundoff, 2^-24. plink2 (FirthRegression, in float) cannot
#: tell a smaller gain from its rounding noise.
TIE: Final = 2.0**-24
#: plink2's ``--glm`` defaults ``max-corr`` and ``vif`` (per variant, and for the covariates alone).
MAX_CORR: Final = 0.999
VIF_THRESHOLD: Final = 50.0


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
    #: (T,) sums of z z^T over every analysis sample, z = [1, C, y] (packed in
    #: :func:`multisets` order): the covariates' Gram before any genotype call
    #: drops a sample (:mod:`genofed.coordinator.combine.covariates`).
    zz: F64 | None = None
    #: The tested column is a hard-call allele count (0, 1, 2), so its sums over
    #: any set of samples are integers; a polygenic score's are not.
    hard_calls: bool = False

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


def pool_sums(sums: Mapping[str, np.ndarray], n_variants: int, k: int) -> PooledGram:
    """Per-variant Gram matrices (A1 coding) from the sites' summed ``glm_stats`` forms.

    ``sums`` is the sum over sites of :func:`genofed.common.wire.glm.stats_form`
    (in ``exact`` mode, all the coordinator learns). Raises ValueError naming
    an array of the wrong shape.
    """
    q = k + 2  # z = [1, C, y]
    t = q * (q + 1) // 2
    shapes = {
        "gz": (n_variants, q),
        "gg": (n_variants,),
        "zz": (t,),
        "missing": (n_variants, t),
        "called": (n_variants,),
        "alt": (n_variants,),
        "withheld": (n_variants,),
    }
    for name, shape in shapes.items():
        if name not in sums or sums[name].shape != shape:
            raise ValueError(f"the summed {name} must have shape {shape}")
    gz, zz = sums["gz"], sums["zz"]
    withheld = sums["withheld"] > 0
    full = np.empty((n_variants, q + 1, q + 1))
    zpos = np.array([0, *range(2, q + 1)])  # z index -> position in [1, g, C, y]
    block = unpack(zz[None, :] - sums["missing"], q, 2)
    full[:, zpos[:, None], zpos[None, :]] = block
    full[:, 1, zpos] = gz
    full[:, zpos, 1] = gz
    full[:, 1, 1] = sums["gg"]
    called = np.asarray(sums["called"], dtype=np.int64)
    alt_ct = np.rint(sums["alt"]).astype(np.int64)
    ref = 2 * called - alt_ct
    a1_is_ref = 2 * ref < 2 * called  # REF frequency below 1/2: REF is not the major allele
    full[withheld] = 0.0
    return PooledGram(
        gram=_to_a1(full, a1_is_ref),
        a1_is_ref=a1_is_ref,
        k=k,
        withheld=withheld,
        zz=np.asarray(zz, dtype=np.float64),
        hard_calls=True,
    )


def pool_stats(sites: Sequence[Mapping[str, np.ndarray]], n_variants: int, k: int) -> PooledGram:
    """Sum the sites' ``glm_stats`` replies into per-variant Gram matrices (A1 coding).

    What ``plain`` mode does: each reply in its summable form, added up in
    site order, then :func:`pool_sums`. Raises ValueError naming the site
    and the array when a reply is malformed.
    """
    form = SUMMABLE_FORMS[GLM_STATS_KIND]
    inputs = {"variant_index": np.arange(n_variants, dtype=np.int64)}
    forms = []
    for i, arrays in enumerate(sites):
        try:
            forms.append(form(arrays, inputs))
        except ValueError as exc:
            raise ValueError(f"site {i}: {exc}") from exc
    return pool_sums(summed(forms, [f"site {i}" for i in range(len(forms))]), n_variants, k)


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
class Pending:
    """What the next round must evaluate: variant rows, betas in the sites' coding, Firth rows."""

    index: npt.NDArray[np.int64]
    beta: F64
    firth: npt.NDArray[np.bool_]


def _l_matrix(p: int) -> F64:
    """The map x -> x' for g' = 2 - g (an involution)."""
    m = np.eye(p)
    m[1, 0], m[1, 1] = 2.0, -1.0
    return m


#: plink2's FirthRegression limits: the last iteration index (25 iterations), the
#: score and step convergence thresholds, the penalized log-likelihood tolerance,
#: the step cap and the number of step halvings.
FIRTH_MAX_ITER_M1: Final = 24
FIRTH_GCONV: Final = 1e-4
FIRTH_XCONV: Final = 1e-4
FIRTH_LCONV: Final = 1e-4
FIRTH_MAX_STEP: Final = 5.0
FIRTH_MAX_HALFSTEPS: Final = 5


def _cholesky_ok(hess: F64) -> npt.NDArray[np.bool_]:
    """Which of the stacked matrices ``np.linalg.cholesky`` factors (positive definite).

    One batched call where every matrix factors; otherwise the batch is split
    in halves until the failing matrices are found, so each matrix meets
    exactly the test :func:`np.linalg.cholesky` applies to it alone.
    """
    try:
        np.linalg.cholesky(hess)
    except np.linalg.LinAlgError:
        if len(hess) == 1:
            return np.zeros(1, dtype=np.bool_)
        half = len(hess) // 2
        return np.concatenate([_cholesky_ok(hess[:half]), _cholesky_ok(hess[half:])])
    return np.ones(len(hess), dtype=np.bool_)


def _penalized(loglik: F64, hess: F64) -> tuple[npt.NDArray[np.bool_], F64, F64]:
    """Firth's penalized log-likelihood l + log|I|/2 and I^-1 for stacked evaluations.

    Returns ``(ok, penalized, inverse)``; ``ok`` is False where I is not
    positive definite or the result is not finite (plink2's FIRTH_CONVERGE_FAIL),
    and those rows of the other two are NaN.
    """
    ok = np.zeros(len(hess), dtype=np.bool_)
    pen = np.full(len(hess), np.nan)
    inv = np.full_like(hess, np.nan)
    if not len(hess):
        return ok, pen, inv
    try:
        chol = np.linalg.cholesky(hess)
        ok[:] = True
    except np.linalg.LinAlgError:
        ok = _cholesky_ok(hess)
        chol = np.full_like(hess, np.nan)
        if ok.any():
            chol[ok] = np.linalg.cholesky(hess[ok])
    # the diagonal made contiguous: each row sums in the order a 1-D sum of it does
    diag = np.ascontiguousarray(np.diagonal(chol, axis1=1, axis2=2))
    with np.errstate(invalid="ignore", divide="ignore"):
        logdet = 2.0 * np.log(diag).sum(axis=1)
    ok &= np.isfinite(logdet) & np.isfinite(loglik)
    if ok.any():
        pen[ok] = loglik[ok] + 0.5 * logdet[ok]
        inv[ok] = np.linalg.inv(hess[ok])
    return ok, pen, inv


@dataclass
class _FirthState:
    """The Firth fits under way, one entry per variant, sorted by variant row.

    Each fit waits for the evaluation at ``coef``: a trial point of Newton step
    ``dcoef`` after ``halfstep - 1`` halvings, in iteration ``iteration``.
    """

    rows: npt.NDArray[np.int64]
    coef: F64
    dcoef: F64
    dcoef_max: F64
    grad_max: F64
    converged: npt.NDArray[np.bool_]
    hs_bail: npt.NDArray[np.bool_]
    loglik_old: F64
    thresh: F64
    halfstep: npt.NDArray[np.int64]
    maxhs: npt.NDArray[np.int64]
    iteration: npt.NDArray[np.int64]

    @classmethod
    def empty(cls, p: int) -> _FirthState:
        f, i, b = np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.bool_)
        return cls(i, np.zeros((0, p)), np.zeros((0, p)), f, f, b, b, f, f, i, i, i)

    def take(self, keep: npt.NDArray[np.intp] | npt.NDArray[np.bool_]) -> _FirthState:
        return _FirthState(**{k: v[keep] for k, v in self.__dict__.items()})

    def merge(self, other: _FirthState) -> _FirthState:
        order = np.argsort(np.concatenate([self.rows, other.rows]), kind="stable")
        return _FirthState(
            **{k: np.concatenate([v, other.__dict__[k]])[order] for k, v in self.__dict__.items()}
        )


def _separated(gram: PooledGram) -> npt.NDArray[np.bool_]:
    """plink2's test before Newton: an allele with no copy in the cases or none in the controls.

    plink2's GlmLogisticThread (``plink2_glm_logistic.cc``) tests every allele
    that is not constant, A1 and the omitted (major) allele alike, and skips
    Newton for Firth (``firth-fallback``) or reports ``SEPARATION``: a case
    dosage of 0 or equal to the allele's total dosage. The omitted allele's
    dosages are ``2 x (samples) - A1's``. With hard calls every such sum is
    an integer; they are rounded before the test, because the pooled sums
    over a REF A1 come through the sums over missing calls, which the sites
    send in single precision.
    """
    p, a = gram.p, gram.gram
    total, case = a[:, 0, 1], a[:, 1, p]
    if not gram.hard_calls:  # a score: one column, no omitted allele
        return np.asarray((case == 0) | (case == total), dtype=np.bool_)
    total, case = np.rint(total), np.rint(case)
    other_total = 2.0 * np.rint(a[:, 0, 0]) - total
    other_case = 2.0 * np.rint(a[:, 0, p]) - case
    out = (case == 0) | (case == total) | (other_case == 0) | (other_case == other_total)
    return np.asarray(out, dtype=np.bool_)


def _firth_step(grad: F64, third: F64, inv: F64) -> tuple[F64, F64, F64, npt.NDArray[np.bool_]]:
    """logistf's modified-score Newton step for stacked fits, capped at 5 (plink2).

    Returns ``(dcoef, dcoef_max, grad_max, converged)``.
    """
    score = grad + np.einsum("vjkl,vkl->vj", third, inv)
    grad_max = np.abs(score).max(axis=1)
    dcoef = np.matmul(inv, score[:, :, None])[:, :, 0]
    dcoef_max = np.abs(dcoef).max(axis=1)
    capped = dcoef_max > FIRTH_MAX_STEP
    if capped.any():
        dcoef[capped] *= (FIRTH_MAX_STEP / dcoef_max[capped])[:, None]
        dcoef_max[capped] = FIRTH_MAX_STEP
    converged = (dcoef_max <= FIRTH_XCONV) & (grad_max < FIRTH_GCONV)
    return dcoef, dcoef_max, grad_max, converged


class LogisticFit:
    """Newton-Raphson and Firth regression for many variants at once.

    Start from the pooled ``glm_stats`` Gram (the evaluation at beta = 0);
    then repeat ``pending()`` / ``receive()`` until ``pending()`` is None
    and read ``result()``. Sites evaluate in their own (study ALT) coding;
    this class converts to and from plink2's A1 coding.
    """

    def __init__(self, gram: PooledGram, firth_mode: str, separation_found: bool = False) -> None:
        """``separation_found``: a covariate separates cases from controls (plink2's
        ``separation_found``; :func:`genofed.coordinator.combine.covariates.separated_covariates`),
        so in ``fallback`` mode every variant is fitted by Firth, as plink2 does."""
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
        separated = todo & _separated(gram)
        self.first = {
            "grad": xty - 0.5 * xtx[:, :, 0],
            "hess": 0.25 * xtx,
            "loglik": n * np.log(0.5),
        }
        self._firth = _FirthState.empty(p)
        if firth_mode == "always" or (firth_mode == "fallback" and separation_found):
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
        """Start plink2's FirthRegression (a port of logistf) at beta = 0 for ``rows``.

        The first evaluation is the pooled Gram's, with zero third moments.
        """
        rows = np.asarray(rows, dtype=np.int64)
        if not rows.size:
            return
        p = self.p
        self.used_firth[rows] = True
        ok, pen, inv = _penalized(self.first["loglik"][rows], self.first["hess"][rows])
        self.errcode[rows[~ok]] = ERR_FIRTH_FAIL
        rows, pen, inv = rows[ok], pen[ok], inv[ok]
        coef = np.zeros((len(rows), p))
        third = np.zeros((len(rows), p, p, p))
        dcoef, dcoef_max, grad_max, converged = _firth_step(self.first["grad"][rows], third, inv)
        zero = np.zeros(len(rows), dtype=np.int64)
        started = _FirthState(
            rows=rows,
            coef=coef + dcoef,
            dcoef=dcoef,
            dcoef_max=dcoef_max,
            grad_max=grad_max,
            converged=converged,
            hs_bail=np.zeros(len(rows), dtype=np.bool_),
            loglik_old=pen,
            thresh=pen - np.where(converged, 0.999999 * FIRTH_LCONV, 0.0),
            halfstep=zero + 1,
            maxhs=zero + FIRTH_MAX_HALFSTEPS,
            iteration=zero,
        )
        self._firth = self._firth.merge(started)

    def _advance_firth(
        self, rows: np.ndarray, loglik: F64, grad: F64, hess: F64, third: F64
    ) -> None:
        """Take the evaluations at the pending coefficients of the Firth fits of ``rows``.

        Every fit makes the decision plink2's FirthRegression makes after an
        evaluation in its step-halving loop: halve the step again, accept the
        point (then stop, or take the next Newton step), or fail.
        """
        st = self._firth
        slot = np.searchsorted(st.rows, rows)
        if (slot >= len(st.rows)).any() or (
            st.rows[np.minimum(slot, len(st.rows) - 1)] != rows
        ).any():
            raise ValueError("receive: the Firth rows are not those of pending()")
        ok, pen, inv = _penalized(loglik, hess)
        self.errcode[rows[~ok]] = ERR_FIRTH_FAIL
        drop = np.zeros(len(st.rows), dtype=np.bool_)
        drop[slot[~ok]] = True
        s, rows, pen, inv, grad, third = slot[ok], rows[ok], pen[ok], inv[ok], grad[ok], third[ok]
        loglik_old, halfstep, maxhs = st.loglik_old[s], st.halfstep[s], st.maxhs[s]
        # the step-halving loop
        accept = halfstep > maxhs
        better = ~accept & (pen >= st.thresh[s])
        # plink2 accepts loglik >= loglik_old; in single precision a gain below
        # its rounding is noise. In double precision such a gain is a step that
        # overshoots the optimum (the step ignores the penalty's curvature): an
        # exact two-step cycle, or a slow oscillation that would not meet the
        # 1e-4 step threshold in 25 iterations. A tie (a gain below TIE, single
        # precision's resolution) takes the half step here, as plink2's noise would.
        gain = better & (pen > loglik_old + TIE * np.abs(loglik_old))
        accept |= gain
        maxhs = np.where(better & ~gain, halfstep, maxhs)
        # converged as far as it goes: undo every half step and stop
        bail = (
            ~accept
            & ~better
            & (halfstep == maxhs)
            & (st.dcoef_max[s] < 0.001)
            & (st.grad_max[s] < 0.05)
            & (pen >= loglik_old - FIRTH_LCONV)
        )
        halfstep = halfstep - bail
        maxhs = maxhs - bail
        hs_bail = st.hs_bail[s] | bail
        coef = st.coef[s]
        halve = ~accept
        coef[halve] -= st.dcoef[s][halve] * np.ldexp(1.0, -halfstep[halve])[:, None]
        halfstep = halfstep + halve
        # the end of an iteration
        last = accept & (np.abs(pen - loglik_old) <= FIRTH_LCONV) & (st.converged[s] | hs_bail)
        unfinished = accept & ~last & (st.iteration[s] == FIRTH_MAX_ITER_M1)
        done = last | unfinished
        fin = rows[done]
        self.coef[fin] = coef[done]
        self.cov[fin] = inv[done]
        self.unfinished[fin] = unfinished[done]
        drop[s[done]] = True
        st.halfstep[s], st.maxhs[s], st.hs_bail[s] = halfstep, maxhs, hs_bail
        st.coef[s] = coef
        nxt = accept & ~done
        if nxt.any():
            n = s[nxt]
            dcoef, dcoef_max, grad_max, converged = _firth_step(grad[nxt], third[nxt], inv[nxt])
            st.coef[n] = coef[nxt] + dcoef
            st.dcoef[n], st.dcoef_max[n], st.grad_max[n] = dcoef, dcoef_max, grad_max
            st.converged[n] = converged
            st.loglik_old[n] = pen[nxt]
            st.thresh[n] = pen[nxt] - np.where(converged, 0.999999 * FIRTH_LCONV, 0.0)
            st.halfstep[n], st.maxhs[n] = 1, FIRTH_MAX_HALFSTEPS
            st.iteration[n] += 1
        if drop.any():
            self._firth = st.take(~drop)

    # -- the exchange ------------------------------------------------------------------------

    def pending(self) -> Pending | None:
        """The evaluations the next round must make, or None when every fit is done."""
        newton = np.flatnonzero(self.active)
        firth = self._firth.rows
        rows = np.union1d(newton, firth).astype(np.int64)
        if not rows.size:
            return None
        coef = self.coef[rows].copy()
        is_firth = np.isin(rows, firth)
        coef[is_firth] = self._firth.coef  # both sorted by row
        return Pending(index=rows, beta=self._site_beta(rows, coef), firth=is_firth)

    def receive(self, pending: Pending, grad: F64, hess: F64, loglik: F64, third: F64) -> None:
        """Take the pooled evaluations (sites' coding) for ``pending``."""
        self.rounds += 1
        rows, p = pending.index, self.p
        grad = self._to_a1(rows, grad, 1)
        hess = self._to_a1(rows, unpack(hess, p, 2), 2)
        is_firth = pending.firth
        newton = rows[~is_firth]
        if is_firth.any():
            # before the Newton step, which may start Firth fits for its failures
            frows = rows[is_firth]
            t = self._to_a1(frows, unpack(third, p, 3), 3)
            self._advance_firth(
                frows,
                np.asarray(loglik, dtype=np.float64)[is_firth],
                grad[is_firth],
                hess[is_firth],
                t,
            )
        if newton.size:
            self._newton_step(newton, grad[~is_firth], hess[~is_firth])

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
