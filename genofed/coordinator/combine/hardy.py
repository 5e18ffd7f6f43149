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
For each key the log-probabilities come from ``gammaln`` in closed form
(no accumulating recurrence error), the probabilities are scaled by the mode,
and the cumulative sums from both ends are kept. The distribution is
log-concave, so "no more likely than observed" is a prefix plus a suffix of
the support, found per variant by a vectorised bisection; the p-value is then
two look-ups. Sums run from the small end, so tiny p-values keep full relative
precision; where the observed outcome is below about ``e^-690`` of the mode
the tail is summed in log space instead, so p-values keep their digits down to
the double-precision floor (about 5e-324, below which PLINK 2 prints 0 too).

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

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy.special import gammaln, logsumexp

__all__ = ["HardyResult", "hardy", "hwe_exact_p"]

#: Outcomes within this log-probability of the observed one count as ties
#: (exactly as likely): above the ~1e-11 error of the gammaln differences,
#: far below any genuine gap between two outcomes' probabilities.
_TIE_LOG_TOL: Final = 1e-9
#: Below this log ratio to the mode, tail sums in linear scale would reach
#: subnormal numbers; those variants are summed in log space.
_LINEAR_FLOOR: Final = -690.0
#: Bound on the padded (keys x support) block processed at once.
_BLOCK_ELEMENTS: Final = 1 << 22


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
    """Exact HWE p-values (or mid-p values) for arrays of genotype counts."""
    het_a = np.asarray(het, dtype=np.int64)
    h1 = np.asarray(hom1, dtype=np.int64)
    h2 = np.asarray(hom2, dtype=np.int64)
    if not (het_a.shape == h1.shape == h2.shape) or het_a.ndim != 1:
        raise ValueError("het, hom1 and hom2 must be 1-D arrays of one length")
    if het_a.size and int(min(het_a.min(), h1.min(), h2.min())) < 0:
        raise ValueError("genotype counts must be non-negative")
    homr = np.minimum(h1, h2)
    n = het_a + h1 + h2
    rare = 2 * homr + het_a
    out = np.empty(het_a.shape, dtype=np.float64)
    if not out.size:
        return out
    # One distribution per distinct (n, rare); rows sorted by support size so
    # blocks of similar width pad little.
    keys, inverse = np.unique(np.stack([rare // 2, n]), axis=1, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(keys.shape[1] + 1))
    start = 0
    n_keys = keys.shape[1]
    while start < n_keys:
        width = int(keys[0, start]) + 1
        # keys are sorted by rare // 2 first, so later rows are at least as wide
        stop = start + 1
        while stop < n_keys and (stop - start + 1) * (int(keys[0, stop]) + 1) <= max(
            _BLOCK_ELEMENTS, width
        ):
            stop += 1
        variants = order[bounds[start] : bounds[stop]]
        rows = inverse[variants] - start
        out[variants] = _block_p(
            n_key=keys[1, start:stop],
            rare_key=2 * keys[0, start:stop],  # parity restored below per variant
            rows=rows,
            n=n[variants],
            rare=rare[variants],
            homr=homr[variants],
            midp=midp,
        )
        start = stop
    return out


def _block_p(
    *,
    n_key: npt.NDArray[np.int64],
    rare_key: npt.NDArray[np.int64],
    rows: npt.NDArray[np.int64],
    n: npt.NDArray[np.int64],
    rare: npt.NDArray[np.int64],
    homr: npt.NDArray[np.int64],
    midp: bool,
) -> npt.NDArray[np.float64]:
    """P-values for the variants of one block of keys.

    A key is ``(rare // 2, n)``; the support index ``j`` is the rare-homozygote
    count, ``0 <= j <= rare // 2``. Rows of keys that share ``(rare // 2, n)``
    but differ in the parity of ``rare`` are distinct distributions, so the
    block is expanded to one row per distinct ``(row, parity)``.
    """
    parity = rare % 2
    sub_keys, sub_inv = np.unique(2 * rows + parity, return_inverse=True)
    sub_inv = sub_inv.reshape(-1)
    key_row = sub_keys // 2
    n_row = n_key[key_row].astype(np.float64)
    r_row = (rare_key[key_row] + sub_keys % 2).astype(np.float64)
    k_row = rare_key[key_row] // 2  # max j per row
    width = int(k_row.max()) + 1
    j = np.arange(width, dtype=np.float64)[None, :]
    valid = j <= k_row[:, None]
    h = r_row[:, None] - 2.0 * j
    homc = n_row[:, None] - h - j
    with np.errstate(invalid="ignore"):
        lp = h * np.log(2.0) - gammaln(j + 1.0) - gammaln(h + 1.0) - gammaln(homc + 1.0)
    lp = np.where(valid, lp, -np.inf)
    lmax = lp.max(axis=1)
    w = np.exp(lp - lmax[:, None])  # padding -> 0
    left = np.cumsum(w, axis=1)
    right = np.cumsum(w[:, ::-1], axis=1)[:, ::-1]
    total = left[:, -1]
    mode = np.argmax(lp, axis=1)

    row = sub_inv
    obs = homr
    lp_obs = lp[row, obs]
    thr = lp_obs + _TIE_LOG_TOL
    m = mode[row]
    kmax = k_row[row]
    # Left of the mode lp increases: a = number of j < m with lp <= thr.
    a = _bisect(lp, row, np.zeros_like(m), m.copy(), thr, first_above=True)
    # Right of the mode lp decreases: b = first j > m with lp <= thr.
    b = _bisect(lp, row, m + 1, kmax + 1, thr, first_above=False)
    mode_in = lp[row, m] <= thr
    tail = np.where(a > 0, left[row, np.maximum(a - 1, 0)], 0.0)
    tail = tail + np.where(b <= kmax, right[row, np.minimum(b, width - 1)], 0.0)
    tail = tail + np.where(mode_in, w[row, m], 0.0)
    p = tail / total[row]

    rel_obs = lp_obs - lmax[row]
    deep = rel_obs < _LINEAR_FLOOR
    if deep.any():
        idx = np.flatnonzero(deep)
        lp_rows = lp[row[idx]]
        in_tail = lp_rows <= thr[idx, None]
        log_tail = logsumexp(np.where(in_tail, lp_rows, -np.inf), axis=1)
        log_total = logsumexp(lp_rows, axis=1)
        p[idx] = np.exp(log_tail - log_total)

    if midp:
        ties = np.ones_like(p)  # the observed outcome itself
        for cand, ok in ((a - 1, a > 0), (b, b <= kmax), (m, mode_in)):
            cand_c = np.clip(cand, 0, width - 1)
            is_tie = ok & (cand_c != obs) & (np.abs(lp[row, cand_c] - lp_obs) <= _TIE_LOG_TOL)
            ties += is_tie
        with np.errstate(under="ignore"):
            p_obs = np.exp(rel_obs) / total[row]
        p = p - 0.5 * ties * p_obs
    return np.minimum(p, 1.0)


def _bisect(
    lp: npt.NDArray[np.float64],
    row: npt.NDArray[np.int64],
    lo: npt.NDArray[np.int64],
    hi: npt.NDArray[np.int64],
    thr: npt.NDArray[np.float64],
    *,
    first_above: bool,
) -> npt.NDArray[np.int64]:
    """First index in ``[lo, hi)`` where ``lp > thr`` (or ``<= thr``), else ``hi``.

    The predicate must be monotone over the range (false, then true).
    """
    lo = lo.copy()
    hi = hi.copy()
    width = lp.shape[1]
    while True:
        active = lo < hi
        if not active.any():
            return lo
        mid = (lo + hi) // 2
        vals = lp[row, np.minimum(mid, width - 1)]
        pred = vals > thr if first_above else vals <= thr
        hi = np.where(active & pred, mid, hi)
        lo = np.where(active & ~pred, mid + 1, lo)
