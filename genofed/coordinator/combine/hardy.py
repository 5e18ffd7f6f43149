"""Exact Hardy–Weinberg test on pooled genotype counts, as ``plink2 --hardy``.

The exact test (Wigginton, Cutler & Abecasis 2005, AJHG 76:887) conditions on
the number of genotyped samples ``n`` and the rare-allele count ``r``; the
heterozygote count then has the distribution

    P(h) ∝ 2^h / (h! · ((r-h)/2)! · ((2n-r-h)/2)!),   h ≡ r (mod 2),

and the p-value is the total probability of the outcomes no more likely than
the observed one. The optional mid-p (Graffelman & Moreno 2013; PLINK 2's
``midp`` modifier) subtracts half the probability of the outcomes exactly as
likely as the observed one.

Why this shape: a variant's distribution depends only on ``(n, r)``, and in a
cohort many variants share it, so the work is done once per distinct key.
The distribution is log-concave in the rare-homozygote count ``j``, so for
each key the mode is found by bisection on the exact integer ratio test, and
only the band of outcomes within ``e^-80`` of the mode is materialised (about
13 standard deviations; everything outside it is below double precision
relative to any p-value computed from the band). Inside the band the
probabilities are a running product of the one-step ratios (no
transcendental per outcome), and cumulative sums from both ends are kept.
"No more likely than observed" is then a prefix plus a suffix of the band,
found per variant by vectorised bisection: the p-value is two look-ups.
Variants whose observed outcome lies below ``e^-40`` of the mode (p-values
around 1e-17 and smaller, rare in real data) are summed over the full support
in log space (``gammaln``), so they keep full relative precision down to the
double-precision floor (about 5e-324; PLINK 2 prints 0 there too).

PLINK 2 conventions reproduced here (checked against v2.00a3.5):

* A1 is REF for biallelic variants: HOM_A1_CT = HOM_REF, TWO_AX_CT = HOM_ALT.
* O(HET_A1) = HET / n (NaN when n = 0); E(HET_A1) = 2pq with p the sample
  REF frequency, and exactly 0 when every call is HOM_A1.
* A variant with no calls gets P = 1 (mid-p 0.5); a monomorphic one P = 1
  (mid-p 0.5). PLINK 2 uses founders only by default; pass founders' counts.

Only autosomes are in scope (``.hardy.x`` handles chrX in PLINK 2); the caller
rejects the rest. Pure core: numpy/scipy only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy.special import gammaln, logsumexp

__all__ = ["HardyResult", "hardy", "hwe_exact_p"]

#: Outcomes within this relative probability of the observed one count as
#: ties (exactly as likely): well above the ~1e-11 rounding of the products
#: and gammaln differences, far below any genuine gap between two outcomes.
_TIE_REL_TOL: Final = 1e-9
#: Band kept around the mode, in natural-log units below the mode.
_BAND: Final = 80.0
#: Observed outcomes further than this below the mode take the log-space path.
_INNER: Final = 40.0
#: Bound on the padded (keys x band) block processed at once.
_BLOCK_ELEMENTS: Final = 1 << 20


@dataclass(frozen=True)
class HardyResult:
    """Columns of a ``.hardy`` report (A1 = REF, AX = ALT)."""

    hom_a1_ct: npt.NDArray[np.int64]
    het_a1_ct: npt.NDArray[np.int64]
    two_ax_ct: npt.NDArray[np.int64]
    o_het_a1: npt.NDArray[np.float64]
    e_het_a1: npt.NDArray[np.float64]
    p: npt.NDArray[np.float64]
    midp: bool


def hardy(counts: npt.ArrayLike, *, midp: bool = False) -> HardyResult:
    """The ``.hardy`` numbers from pooled ``[HOM_REF, HET, HOM_ALT, MISSING]`` counts."""
    c = np.asarray(counts)
    if c.ndim != 2 or c.shape[1] != 4 or not np.issubdtype(c.dtype, np.integer):
        raise ValueError(f"counts must be an integer array of shape (n_variants, 4), got {c.shape}")
    c = c.astype(np.int64, copy=False)
    hom_a1, het, two_ax = c[:, 0].copy(), c[:, 1].copy(), c[:, 2].copy()
    n = hom_a1 + het + two_ax
    n_f = n.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        recip = 1.0 / n_f
        o_het = het * recip
        maj2 = (2 * hom_a1 + het) * recip  # twice the A1 frequency
        e_het = maj2 * (1.0 - maj2 * 0.5)
    e_het[hom_a1 == n] = 0.0
    p = hwe_exact_p(het, hom_a1, two_ax, midp=midp)
    return HardyResult(hom_a1, het, two_ax, o_het, e_het, p, midp)


def hwe_exact_p(
    het: npt.ArrayLike, hom1: npt.ArrayLike, hom2: npt.ArrayLike, *, midp: bool = False
) -> npt.NDArray[np.float64]:
    """Exact HWE p-values (or mid-p values) for 1-D arrays of genotype counts.

    Symmetric in ``hom1`` and ``hom2``. A variant with no calls gets 1 (0.5
    with ``midp``), as in PLINK 2.
    """
    het_a = np.asarray(het, dtype=np.int64)
    h1 = np.asarray(hom1, dtype=np.int64)
    h2 = np.asarray(hom2, dtype=np.int64)
    if not (het_a.shape == h1.shape == h2.shape) or het_a.ndim != 1:
        raise ValueError("het, hom1 and hom2 must be 1-D arrays of one length")
    out = np.empty(het_a.shape, dtype=np.float64)
    if not out.size:
        return out
    if int(min(het_a.min(), h1.min(), h2.min())) < 0:
        raise ValueError("genotype counts must be non-negative")
    j_obs = np.minimum(h1, h2)
    n = het_a + h1 + h2
    rare = 2 * j_obs + het_a
    key = rare * (int(n.max()) + 1) + n
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    kr, kn = rare[first], n[first]
    mode = _mode(kr, kn)
    l_mode = _log_prob(mode, kr, kn)
    lo = _bisect_first(
        lambda j, s: _log_prob(j, kr[s], kn[s]) >= l_mode[s] - _BAND, np.zeros_like(mode), mode
    )
    hi = (
        _bisect_first(
            lambda j, s: _log_prob(j, kr[s], kn[s]) < l_mode[s] - _BAND, mode, kr // 2 + 1
        )
        - 1
    )
    width = hi - lo + 1
    by_width = np.argsort(width, kind="stable")
    var_order = np.argsort(inverse, kind="stable")
    var_bounds = np.searchsorted(inverse[var_order], np.arange(kr.size + 1))
    deep: list[npt.NDArray[np.int64]] = []
    start = 0
    while start < kr.size:
        stop = start + 1
        while stop < kr.size and (stop - start + 1) * width[by_width[stop]] <= max(
            _BLOCK_ELEMENTS, int(width[by_width[start]])
        ):
            stop += 1
        keys = by_width[start:stop]
        variants = np.concatenate([var_order[var_bounds[k] : var_bounds[k + 1]] for k in keys])
        local = np.empty(kr.size, dtype=np.int64)
        local[keys] = np.arange(keys.size)
        p, regular = _band_p(
            r=kr[keys], n=kn[keys], lo=lo[keys], hi=hi[keys], mode=mode[keys],
            row=local[inverse[variants]], j_obs=j_obs[variants], midp=midp,
        )  # fmt: skip
        out[variants] = p
        deep.append(variants[~regular])
        start = stop
    for v in np.concatenate(deep):
        out[v] = _full_support_p(int(rare[v]), int(n[v]), int(j_obs[v]), midp=midp)
    return out


def _log_prob(
    j: npt.NDArray[np.int64], r: npt.NDArray[np.int64], n: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """Unnormalised log P(j rare homozygotes | n calls, r rare alleles)."""
    h = (r - 2 * j).astype(np.float64)
    homc = (n - r + j).astype(np.float64)
    jf = j.astype(np.float64)
    return np.asarray(
        h * np.log(2.0) - gammaln(jf + 1.0) - gammaln(h + 1.0) - gammaln(homc + 1.0),
        dtype=np.float64,
    )


def _mode(r: npt.NDArray[np.int64], n: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """First ``j`` where P(j+1) <= P(j), by exact integer arithmetic.

    P(j+1)/P(j) = h(h-1) / (4 (j+1) (homc+1)) decreases in ``j`` and is 0 at
    ``j = r // 2``, so the first such ``j`` is a mode.
    """

    def at_or_past_mode(
        j: npt.NDArray[np.int64], s: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.bool_]:
        h = r[s] - 2 * j
        homc = n[s] - r[s] + j
        return np.asarray(h * (h - 1) <= 4 * (j + 1) * (homc + 1))

    return _bisect_first(at_or_past_mode, np.zeros_like(r), r // 2)


def _bisect_first(
    pred: Callable[[npt.NDArray[np.int64], npt.NDArray[np.int64]], npt.NDArray[np.bool_]],
    lo: npt.NDArray[np.int64],
    hi: npt.NDArray[np.int64],
) -> npt.NDArray[np.int64]:
    """Per element, the first ``j`` in ``[lo, hi]`` where ``pred`` holds (``hi`` if none
    before it); ``pred`` must be monotone (false, then true) on the range.

    ``pred(j, s)`` gets candidate indices and the positions ``s`` they belong to.
    """
    lo = lo.astype(np.int64, copy=True)
    hi = hi.astype(np.int64, copy=True)
    active = np.flatnonzero(lo < hi)
    while active.size:
        mid = (lo[active] + hi[active]) // 2
        ok = pred(mid, active)
        hi[active[ok]] = mid[ok]
        lo[active[~ok]] = mid[~ok] + 1
        active = active[lo[active] < hi[active]]
    return lo


def _band_p(
    *,
    r: npt.NDArray[np.int64],
    n: npt.NDArray[np.int64],
    lo: npt.NDArray[np.int64],
    hi: npt.NDArray[np.int64],
    mode: npt.NDArray[np.int64],
    row: npt.NDArray[np.int64],
    j_obs: npt.NDArray[np.int64],
    midp: bool,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """P-values from the band around each key's mode; ``regular`` is False for
    variants whose observed outcome is too far from the mode for the band."""
    width = int((hi - lo).max()) + 1
    j = lo[:, None] + np.arange(width, dtype=np.int64)[None, :]
    valid = j <= hi[:, None]
    h = (r[:, None] - 2 * j).astype(np.float64)
    homc = (n[:, None] - r[:, None] + j).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        step = (h * (h - 1.0)) / (4.0 * (j + 1.0) * (homc + 1.0))
        w = np.ones_like(step)
        np.cumprod(step[:, :-1], axis=1, out=w[:, 1:])
    w = np.where(valid, w, 0.0)  # w[:, i] = P(lo + i) / P(lo)
    left = np.cumsum(w, axis=1)
    right = np.cumsum(w[:, ::-1], axis=1)[:, ::-1]
    total = left[:, -1]

    span = (hi - lo)[row]
    col = j_obs - lo[row]
    mcol = (mode - lo)[row]
    inside = (col >= 0) & (col <= span)
    col_c = np.clip(col, 0, width - 1)
    w_obs = w[row, col_c]
    w_mode = w[row, mcol]
    regular = inside & (w_obs >= w_mode * np.exp(-_INNER))
    thr = w_obs * (1.0 + _TIE_REL_TOL)
    # Left of the mode w increases: a = first column with w > thr.
    a = _bisect_first(lambda c, s: w[row[s], c] > thr[s], np.zeros_like(mcol), mcol)
    # Right of the mode w decreases: b = first column after it with w <= thr.
    b = _bisect_first(lambda c, s: w[row[s], c] <= thr[s], mcol + 1, span + 1)
    mode_in = w_mode <= thr
    tail = np.where(a > 0, left[row, np.maximum(a - 1, 0)], 0.0)
    tail += np.where(b <= span, right[row, np.minimum(b, width - 1)], 0.0)
    tail += np.where(mode_in, w_mode, 0.0)
    z = total[row]
    p = tail / z
    if midp:
        ties = np.ones_like(p)  # the observed outcome itself
        for cand, ok in ((a - 1, a > 0), (b, b <= span), (mcol, mode_in)):
            c = np.clip(cand, 0, width - 1)
            ties += ok & (c != col) & (np.abs(w[row, c] - w_obs) <= _TIE_REL_TOL * w_obs)
        p = p - 0.5 * ties * (w_obs / z)
    return np.minimum(p, 1.0), regular


def _full_support_p(r: int, n: int, j_obs: int, *, midp: bool) -> float:
    """Log-space p-value over the whole support, for far-from-mode outcomes."""
    j = np.arange(r // 2 + 1, dtype=np.int64)
    lp = _log_prob(j, np.full_like(j, r), np.full_like(j, n))
    l_obs = lp[j_obs]
    in_tail = lp <= l_obs + _TIE_REL_TOL
    log_z = float(logsumexp(lp))
    log_tail = float(logsumexp(lp[in_tail]))
    p = float(np.exp(log_tail - log_z))
    if midp:
        ties = int(np.count_nonzero(np.abs(lp - l_obs) <= _TIE_REL_TOL))
        p -= 0.5 * ties * float(np.exp(l_obs - log_z))
    return min(p, 1.0)
