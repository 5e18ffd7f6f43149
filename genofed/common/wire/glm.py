"""What the GWAS (``glm``) protocol exchanges: request kinds, array names and layouts.

Both halves read this module so that a site and the coordinator agree on
what every released number means; a privacy officer reads it to know what
leaves the site for a ``glm`` analysis.

Predictors are ordered as plink2 orders them: ``x = [1, g, C_1, ..., C_k]``,
where ``g`` is the study-ALT allele dosage (0, 1, 2) after the harmonization
flip. The coordinator re-expresses results for plink2's A1 allele itself, so
a site never needs to know which allele is A1.

``glm_stats`` (one round; serves linear regression completely and is the
starting point of logistic regression, whose first Newton step is at beta=0)::

    gz            float64 (V, k+2) sum of g * z over analysis samples with a call
    gg            float64 (V,)     sum of g^2 over the same samples
    zz            float64 (T,)     sum of z z^T (upper triangle) over all analysis samples
    miss_rows     uint8   (ceil(V/8),) bit per row (numpy.packbits order): a missing call in an
                                   analysis sample; the rows of miss_zz, in order
    miss_zz       float64 (m, T)   sum of (z - c)(z - c)^T over the analysis samples missing that
                                   call, c = miss_center(zz) (the site's own means of C and y)
    founder_counts uint   (V, 2)   optional: called samples and ALT dosage over the genotyped
                                   founders (a site whose sample file lists parents; plink2
                                   chooses A1 from the founders' frequencies); replaces the
                                   analysis and other counts in ``called`` and ``alt``
    other_counts  uint    (V, 2)   called samples and ALT dosage over the genotyped samples
                                   outside the analysis, in the smallest of uint8, uint16, uint32
                                   that holds twice their number; (0, 2) when there are none or
                                   fewer than the site policy's min_cell_count (then A1_FREQ
                                   counts only that site's analysis samples)
    withheld      uint8   (ceil(V/8),) bit per row: the site withheld the variant because
                                   fewer than its policy's min_cell_count analysis samples (but
                                   some) miss that call, so its miss_zz row would describe those
                                   few people; its gz, gg are zero and it has no miss_zz row

with ``z = [1, C_1, ..., C_k, y]`` and ``T = (k+2)(k+3)/2``. Sizes depend on
variants and covariates only: ``(k+3)`` float64 per variant (``(k+3)*8``
bytes) and one bit, ``8T`` bytes more for each variant that has missing calls
at the site, 2 to 8 more per variant at a site with genotyped samples outside
the analysis, and ``T`` float64 once. Allele counts over the analysis samples
follow from these: called = ``zz[0] - miss_zz[:, 0]`` (the missing samples'
count), ALT dosage = ``gz[:, 0]``.

Why ``miss_zz`` is float64, not float32: it corrects the totals for the
samples missing a call, taken about the site's means ``c`` (which the
coordinator recomputes from ``zz``) so that its size does not grow with the
phenotype's or a covariate's mean. But where the samples missing calls differ
from the rest (a batch on another array with another phenotype mean), a
centred sum over them is a sizeable part of the site's totals, and its float32
rounding (relative 6e-8) moved near-zero BETAs by up to 2.5e-5 relative
against plink2's printed 6 digits (``tests/reference/test_glm_precision_vs_plink2.py``).
A narrower exact code does not exist for it: its entries are real sums whose
size the site cannot bound more tightly than by its own totals
(Cauchy-Schwarz), and an int32 on that bound is at best about 100 times finer
than float32. So every sum is float64, and a variant with missing calls costs
``8T`` bytes more at that site.

``glm_logistic`` (one per Newton or Firth step; inputs ``beta`` (V, p) in the
site's orientation and ``firth`` (V,) bool)::

    grad    float64 (V, p)                  X^T (y - mu)
    hess    float64 (V, p(p+1)/2)           X^T W X, W = mu (1 - mu)
    loglik  float64 (F,)                    sum y log mu + (1 - y) log(1 - mu), firth rows only
    third   float64 (F, p(p+1)(p+2)/6)      sum w (1/2 - mu) x_a x_b x_c, firth rows only

Newton steps need no log-likelihood (plink2's stopping rules read the
steps only), so it is sent for the Firth rows alone.

Summable forms (:mod:`genofed.common.wire.summable`: in ``exact`` mode the
coordinator receives only their sums over sites). ``glm_stats``, with ``V``
the request's variants::

    gz        float64 (V, k+2)  as sent (zero on withheld rows)
    gg        float64 (V,)      as sent
    zz        float64 (T,)      as sent
    missing   float64 (V, T)    sum of z z^T over the analysis samples missing the call
                                (``miss_zz`` uncentred, zero on rows with no missing call)
    called    int64   (V,)      samples with a call: analysis samples, plus the genotyped
                                samples outside the analysis when ``other_counts`` has them
    alt       float64 (V,)      ALT dosage over the same samples
    withheld  int64   (V,)      1 where the site withheld the row: sums to the sites withholding it

so the pooled Gram matrix of a variant is ``zz - missing`` bordered by ``gz``
and ``gg``, and A1 is chosen from ``called`` and ``alt``, as from the
per-site replies. ``glm_logistic``: ``grad``, ``hess``, ``loglik`` and
``third`` as sent, of the shapes the request's ``beta`` and ``firth`` fix.

Left-out covariates (plink2's take-back). When the pooled ``zz`` shows a
covariate constant over the analysis samples, plink2 leaves it out and
chooses the samples again with only the covariates it keeps, so that a
sample missing only left-out covariates is analysed after all
(``GlmDetermineCovars`` in ``plink2_glm.cc``, step 2). The coordinator
then asks every site::

    glm_covariates (input covariates_used uint8 (k,): 1 for a covariate the model keeps)

    n         int64   (1,)  samples with the phenotype and every used covariate (S1)
    complete  int64   (k,)  1 when every sample of S1 has unused covariate j (0 for used
                            ones): sums to the sites where it is complete
    sums      float64 (k,)  sum of unused covariate j over S1 where ``complete``, else 0
    squares   float64 (k,)  sum of its squares over the same samples

(summable as sent) and, when the pooled ``n`` exceeds the first round's,
repeats ``glm_stats`` and every ``glm_logistic`` round with the same
``covariates_used`` input (the final mask: plink2 adds back a left-out
covariate that every sample of S1 has and that varies over them). A site
given ``covariates_used`` analyses S1 and sends the arrays above with the
columns of unused covariates zero (``z_j = 0``): their sums say nothing, and
the coordinator sees them as constant and leaves them out again. Without
the input (every other analysis) nothing changes. Each site declares S1 to
its disclosure guard as it declares the first round's samples, so S1 and
the first round's set are checked against each other: differing by fewer
than ``min_cell_count`` people, the release is refused.

Covariate separation (logistic with ``firth = "fallback"`` or ``"no"``).
plink2 checks every kept covariate, over the analysis samples and before any
variant, for cases and controls whose ranges do not interleave
(``CheckForSeparatedQtCovar`` in ``plink2_glm.cc``: complete or
quasi-complete separation); if one does, every variant is fitted by Firth
(``fallback``) or the phenotype is skipped (``no``). Ranges are extremes of
single people, so the sites do not send them. For a covariate that takes two
values over the pooled analysis samples the check is exact from sums: the
ranges do not interleave exactly when every case, or every control, has the
same value. The coordinator asks, with the pooled means ``center`` and
standard deviations ``scale`` (from ``zz``; 0 and 1 for a covariate the
model leaves out)::

    glm_separation (inputs center float64 (k,), scale float64 (k,), optional covariates_used)

    moments   float64 (k, 2)  sums of u^3 and u^4 over the analysis samples,
                              u = (C - center) / scale

(summable as sent). The pooled standardized third and fourth moments say
whether a covariate is two-valued (kurtosis = skewness^2 + 1, which holds
only for two-point distributions) and, if so, its two values; with the
cases' sum of ``C`` in ``zz`` that gives the cases and controls at each
value (:func:`genofed.coordinator.combine.covariates.separated_covariates`).
Whatever ``center`` and ``scale`` a coordinator sends, the reply tells it
the sums of ``C^3`` and ``C^4`` over the analysis samples, no more (the
powers of ``C - center`` expand into them and the ``zz`` sums), and the
site declares the samples to its disclosure guard as for ``glm_covariates``.
Covariates with three or more values are not checked: where one separates,
Newton fails on every variant and plink2's Firth fallback follows for
every variant in both (``tests/reference/test_firth_covariate_separation_vs_plink2.py``).

Symmetric arrays are sent as their unique entries, in the order of
:func:`multisets`. The third-moment tensor is what lets the coordinator form
Firth's penalized score ``X^T (y - mu + h (1/2 - mu))`` with the hat diagonal
``h_i = w_i x_i^T (X^T W X)^{-1} x_i`` from pooled sums in the same round:
``sum_i w_i (1/2 - mu_i) x_i x_i^T A x_i = third : A`` for the pooled inverse ``A``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from functools import cache
from itertools import combinations_with_replacement
from typing import Any, Final

import numpy as np
import numpy.typing as npt

GLM_STATS_KIND: Final = "glm_stats"
GLM_LOGISTIC_KIND: Final = "glm_logistic"
GLM_COVARIATES_KIND: Final = "glm_covariates"
GLM_SEPARATION_KIND: Final = "glm_separation"
GLM_REQUEST_KINDS: Final = frozenset(
    {GLM_STATS_KIND, GLM_LOGISTIC_KIND, GLM_COVARIATES_KIND, GLM_SEPARATION_KIND}
)
#: Request input: 1 for each study covariate the model uses (absent: every covariate).
COVARIATES_USED: Final = "covariates_used"

#: Fact a site reports with ``glm_stats``: "binary" or "quantitative".
PHENOTYPE_TYPE_FACT: Final = "glm_phenotype_type"
BINARY: Final = "binary"
QUANTITATIVE: Final = "quantitative"


@cache
def multisets(n: int, degree: int) -> tuple[tuple[int, ...], ...]:
    """Index tuples of the unique entries of a symmetric ``n``-dimensional tensor."""
    return tuple(combinations_with_replacement(range(n), degree))


@cache
def _unpack_index(n: int, degree: int) -> npt.NDArray[np.intp]:
    """Index into the packed columns for every entry of the full symmetric tensor."""
    where = {s: j for j, s in enumerate(multisets(n, degree))}
    out = np.empty((n,) * degree, dtype=np.intp)
    for pos in np.ndindex(*out.shape):
        out[pos] = where[tuple(sorted(pos))]
    return out


def unpack(packed: npt.NDArray[np.float64], n: int, degree: int) -> npt.NDArray[np.float64]:
    """(V, n, ..., n) full symmetric tensors from (V, #multisets) packed rows."""
    return np.asarray(packed)[:, _unpack_index(n, degree)]


def miss_center(zz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The centre ``c`` of ``miss_zz``: 0 for the intercept, then the means of ``C`` and ``y``.

    ``zz`` is a site's ``glm_stats`` total, whose first ``k+2`` entries are
    ``sum 1, sum C_1, ..., sum y``; both sides compute ``c`` from the same numbers.
    """
    zz = np.asarray(zz, dtype=np.float64)
    q = math.isqrt(8 * len(zz) + 1) // 2  # T = q (q + 1) / 2
    center = zz[:q] / zz[0] if zz[0] > 0 else np.zeros(q)
    center[0] = 0.0
    return np.asarray(center, dtype=np.float64)


def count_dtype(n: int) -> type[np.unsignedinteger[Any]]:
    """The smallest unsigned integer type that holds ``2 n`` (allele count, n samples)."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if 2 * n <= np.iinfo(dtype).max:
            return dtype
    return np.uint64


def uncentered(
    miss: npt.NDArray[np.float64], center: npt.NDArray[np.float64], q: int
) -> npt.NDArray[np.float64]:
    """(m, T) sums of z z^T from sums of (z - c)(z - c)^T whose (0, 0) entry counts the samples."""
    full = unpack(miss, q, 2)
    a = np.eye(q)
    a[:, 0] += center  # z = A (z - c) with the intercept z_0 = 1, c_0 = 0
    full = np.einsum("ia,vab,jb->vij", a, full, a)
    pairs = multisets(q, 2)
    return np.asarray(full[:, [i for i, _ in pairs], [j for _, j in pairs]], dtype=np.float64)


def _bits(arrays: Mapping[str, np.ndarray], name: str, n: int) -> npt.NDArray[np.bool_]:
    got = arrays.get(name)
    if got is None or got.dtype != np.uint8 or got.shape != ((n + 7) // 8,):
        raise ValueError(f"{name} must be {(n + 7) // 8} bytes (a bit per variant)")
    return np.unpackbits(got, count=n).astype(np.bool_)


def _n_variants(inputs: Mapping[str, np.ndarray]) -> int:
    index = inputs.get("variant_index")
    if index is None or index.ndim != 1:
        raise ValueError("the request's variant_index is missing or is not a vector")
    return len(index)


def stats_form(
    arrays: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """One site's ``glm_stats`` reply, dense over the request's variants (module docstring).

    Raises ValueError naming the array that is missing or malformed.
    """
    n = _n_variants(inputs)
    gz = arrays.get("gz")
    if gz is None or gz.ndim != 2 or gz.shape[0] != n or gz.shape[1] < 2:
        raise ValueError(f"gz must have shape ({n}, k+2)")
    q = gz.shape[1]
    t = q * (q + 1) // 2
    for name, shape in (("gg", (n,)), ("zz", (t,))):
        got = arrays.get(name)
        if got is None or got.shape != shape or got.dtype.kind != "f":
            raise ValueError(f"{name} must have shape {shape}")
    rows = np.flatnonzero(_bits(arrays, "miss_rows", n))
    corr = arrays.get("miss_zz")
    if corr is None or corr.shape != (len(rows), t) or corr.dtype.kind != "f":
        raise ValueError("miss_zz must have one row of T sums per bit set in miss_rows")
    withheld = (
        _bits(arrays, "withheld", n)
        if arrays.get("withheld") is not None
        else np.zeros(n, dtype=np.bool_)
    )
    other = arrays.get("other_counts")
    if other is None or other.shape not in {(n, 2), (0, 2)} or other.dtype.kind not in "iu":
        raise ValueError(f"other_counts must have shape ({n}, 2) or (0, 2)")
    founders = arrays.get("founder_counts")
    if founders is not None and (founders.shape != (n, 2) or founders.dtype.kind not in "iu"):
        raise ValueError(f"founder_counts must have shape ({n}, 2)")
    zz = np.asarray(arrays["zz"], dtype=np.float64)
    corr = uncentered(np.asarray(corr, dtype=np.float64), miss_center(zz), q)
    missing = np.zeros((n, t))
    missing[rows] = corr
    called = np.full(n, np.rint(zz[0]), dtype=np.int64)
    called[rows] -= np.rint(corr[:, 0]).astype(np.int64)
    alt = np.array(gz[:, 0], dtype=np.float64)
    if other.size:
        called += other[:, 0].astype(np.int64)
        alt += other[:, 1]
    if founders is not None:  # plink2 chooses A1 from the founders' counts
        called = founders[:, 0].astype(np.int64)
        alt = founders[:, 1].astype(np.float64)
    return {
        "gz": np.asarray(gz, dtype=np.float64),
        "gg": np.asarray(arrays["gg"], dtype=np.float64),
        "zz": zz,
        "missing": missing,
        "called": called,
        "alt": alt,
        "withheld": withheld.astype(np.int64),
    }


def logistic_shapes(v: int, p: int, firth: int) -> dict[str, tuple[int, ...]]:
    """The ``glm_logistic`` arrays' shapes: ``v`` variants, ``p`` predictors, ``firth`` rows."""
    return {
        "grad": (v, p),
        "hess": (v, len(multisets(p, 2))),
        "loglik": (firth,),
        "third": (firth, len(multisets(p, 3))),
    }


def logistic_form(
    arrays: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """One site's ``glm_logistic`` reply as sent, checked against the request's shapes."""
    beta, firth = inputs.get("beta"), inputs.get("firth")
    if beta is None or firth is None or beta.ndim != 2 or firth.shape != (len(beta),):
        raise ValueError("the request's beta and firth are malformed")
    shapes = logistic_shapes(len(beta), beta.shape[1], int(np.count_nonzero(firth)))
    out = {}
    for name, shape in shapes.items():
        got = arrays.get(name)
        if got is None or got.shape != shape or got.dtype.kind != "f":
            raise ValueError(f"{name} must have shape {shape}")
        out[name] = np.asarray(got, dtype=np.float64)
    return out


def covariates_used(inputs: Mapping[str, np.ndarray], k: int) -> npt.NDArray[np.bool_] | None:
    """The request's ``covariates_used`` mask over ``k`` covariates; None when absent.

    Raises ValueError when it is malformed (not ``k`` bytes of 0 or 1).
    """
    got = inputs.get(COVARIATES_USED)
    if got is None:
        return None
    if got.shape != (k,) or got.dtype != np.uint8 or not np.isin(got, (0, 1)).all():
        raise ValueError(f"{COVARIATES_USED} must be {k} bytes of 0 or 1")
    return got.astype(np.bool_)


def covariates_shapes(k: int) -> dict[str, tuple[int, ...]]:
    """The ``glm_covariates`` arrays' shapes for ``k`` covariates."""
    return {"n": (1,), "complete": (k,), "sums": (k,), "squares": (k,)}


def covariates_form(
    arrays: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """One site's ``glm_covariates`` reply as sent, checked against the request's mask."""
    used = inputs.get(COVARIATES_USED)
    if used is None or used.ndim != 1:
        raise ValueError(f"the request's {COVARIATES_USED} is missing or is not a vector")
    out = {}
    for name, shape in covariates_shapes(len(used)).items():
        got = arrays.get(name)
        integer = name in ("n", "complete")
        if got is None or got.shape != shape or got.dtype.kind != ("i" if integer else "f"):
            raise ValueError(f"{name} must have shape {shape}")
        out[name] = np.asarray(got, dtype=np.int64 if integer else np.float64)
    return out


def separation_inputs(
    inputs: Mapping[str, np.ndarray], k: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The ``glm_separation`` request's ``center`` and ``scale`` over ``k`` covariates.

    Raises ValueError when they are missing, of another shape, not finite, or
    a scale is not positive.
    """
    center, scale = inputs.get("center"), inputs.get("scale")
    for name, got in (("center", center), ("scale", scale)):
        if got is None or got.shape != (k,) or got.dtype != np.float64:
            raise ValueError(f"{name} must be {k} float64 values")
        if not np.isfinite(got).all():
            raise ValueError(f"{name} must be finite")
    assert center is not None and scale is not None
    if (scale <= 0).any():
        raise ValueError("scale must be positive")
    return np.asarray(center, dtype=np.float64), np.asarray(scale, dtype=np.float64)


def separation_form(
    arrays: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """One site's ``glm_separation`` reply as sent, checked against the request's ``center``."""
    center = inputs.get("center")
    if center is None or center.ndim != 1:
        raise ValueError("the request's center is missing or is not a vector")
    got = arrays.get("moments")
    if got is None or got.shape != (len(center), 2) or got.dtype.kind != "f":
        raise ValueError(f"moments must have shape ({len(center)}, 2)")
    return {"moments": np.asarray(got, dtype=np.float64)}


#: Request kind -> its summable form (:mod:`genofed.common.wire.summable`).
SUMMABLE_FORMS: Final[Mapping[str, Callable[..., dict[str, np.ndarray]]]] = {
    GLM_STATS_KIND: stats_form,
    GLM_LOGISTIC_KIND: logistic_form,
    GLM_COVARIATES_KIND: covariates_form,
    GLM_SEPARATION_KIND: separation_form,
}


__all__ = [
    "BINARY",
    "COVARIATES_USED",
    "GLM_COVARIATES_KIND",
    "GLM_LOGISTIC_KIND",
    "GLM_REQUEST_KINDS",
    "GLM_SEPARATION_KIND",
    "GLM_STATS_KIND",
    "PHENOTYPE_TYPE_FACT",
    "QUANTITATIVE",
    "SUMMABLE_FORMS",
    "count_dtype",
    "covariates_form",
    "covariates_shapes",
    "covariates_used",
    "logistic_form",
    "logistic_shapes",
    "miss_center",
    "multisets",
    "separation_form",
    "separation_inputs",
    "stats_form",
    "uncentered",
    "unpack",
]
