"""Combine half of the population-structure PCA: variant selection, LD pruning, subspace iteration.

The model and the arrays sites send are in :mod:`genofed.common.wire.pca`.

* :func:`select_variants`: plink2's ``--maf`` and an analyst's variant list.
* :func:`prune_pairwise`: plink2 ``--indep-pairwise window step r2`` from
  pooled pair sums. Written here because no library prunes from sufficient
  statistics (plink2 and scikit-allel need the genotype matrix); it follows
  plink's greedy rule: in each window, for each pair above the threshold,
  the variant with the lower MAF goes (the later one on a tie).
* :func:`whiten`, :func:`ritz`: one step of randomized subspace iteration
  on ``K`` held as site blocks. Orthonormalising a distributed block needs
  only its pooled Gram ``G = U^T U``: ``Q = U R^-1`` with ``G = R^T R``
  (eigendecomposition-based, so a nearly dependent block still works), and
  the Rayleigh quotient ``H = Q^T K Q`` and each Ritz vector's residual
  ``||K q - theta q||`` follow from the pooled ``l x l`` sums alone. scipy's
  and scikit-learn's randomized SVDs need the whole matrix in one process.
* :class:`ProductBounds`: bounds on every site's products from the pooled
  genotype counts, for their scaled fixed-point encoding (4 limbs instead of
  7: :mod:`genofed.common.fixed_point`). With ``g_j = sum_i x_ij^2`` over
  the pooled samples (computable from the counts: a missing call is 0),
  ``trace K = sum_j g_j / M`` bounds ``lambda_max(K)``, and for any subset
  ``s`` of the samples (one site) Cauchy-Schwarz gives, for a block ``Q``
  orthonormal over all samples and ``U = K Q``: ``|(A_s^T U_s)_jk| <=
  sqrt(g_j / M) ||U_k|| <= sqrt(max g / M) trace K``, ``|(U_s^T U_s)| <=
  (trace K)^2``, ``|(Q_s^T U_s)| <= trace K``; at the start (``U = A
  Omega``) ``||U_k|| <= sqrt(trace K) ||Omega_k||``; the finish's ``X_s^T E``
  is below ``sqrt(max g)`` for unit-norm ``E``. Each bound is doubled
  (``Q`` is orthonormal up to rounding) and rounded up to a power of two.

Pure core: arrays in, arrays out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "ProductBounds",
    "RitzPairs",
    "major_is_alt",
    "minor_allele_frequency",
    "prune_pairwise",
    "r_squared",
    "ritz",
    "select_variants",
    "variant_weights",
    "whiten",
]

F64 = npt.NDArray[np.float64]


def minor_allele_frequency(alt_freq: F64) -> F64:
    return np.minimum(alt_freq, 1.0 - alt_freq)


def major_is_alt(alt_freq: F64) -> npt.NDArray[np.bool_]:
    """plink2's MAJ column: ALT only when it is strictly more frequent than REF."""
    return np.asarray(alt_freq) > 0.5


def select_variants(
    ids: npt.NDArray[np.str_], alt_freq: F64, maf: float, wanted: tuple[str, ...]
) -> tuple[npt.NDArray[np.bool_], list[str]]:
    """Variants kept by ``maf`` (plink2 --maf: MAF >= threshold) and the list ``wanted``.

    Returns the mask and the wanted IDs that the study's variants lack.
    """
    keep = np.ones(len(ids), dtype=np.bool_)
    missing: list[str] = []
    if wanted:
        want = set(wanted)
        keep &= np.fromiter((i in want for i in ids.tolist()), dtype=np.bool_, count=len(ids))
        missing = sorted(want - set(ids.tolist()))
    if maf > 0:
        keep &= minor_allele_frequency(alt_freq) >= maf
    return keep, missing


def r_squared(ld_n: npt.NDArray[np.int64], ld_sum: F64) -> F64:
    """Squared correlation of each pair over the samples called at both (0 if undefined)."""
    n = ld_n.astype(np.float64)
    sx, sy, sxx, syy, sxy = (ld_sum[..., j] for j in range(5))
    with np.errstate(divide="ignore", invalid="ignore"):
        cov = sxy - sx * sy / n
        vx = sxx - sx * sx / n
        vy = syy - sy * sy / n
        r2 = cov * cov / (vx * vy)
    ok = (n > 0) & (vx > 1e-12 * np.maximum(n, 1)) & (vy > 1e-12 * np.maximum(n, 1))
    return np.where(ok, np.clip(r2, 0.0, 1.0), 0.0)


def prune_pairwise(
    chrom: npt.NDArray[np.str_],
    maf: F64,
    variable: npt.NDArray[np.bool_],
    r2: F64,
    window: int,
    step: int,
    threshold: float,
) -> npt.NDArray[np.bool_]:
    """plink2 ``--indep-pairwise window step r2`` (variant-count window): the mask kept.

    ``r2[i, d - 1]`` is the squared correlation of variants ``i`` and
    ``i + d`` in study order; ``variable`` is False for a variant whose
    called genotypes are all alike (plink2 prunes those outright).
    """
    v = len(chrom)
    removed = ~np.asarray(variable, dtype=np.bool_).copy()
    major = 1.0 - np.asarray(maf, dtype=np.float64)
    limit = threshold * (1.0 + _SMALL_EPSILON)
    start = 0
    while start < v:
        end = start
        while end < v and chrom[end] == chrom[start]:
            end += 1
        _prune_chromosome(removed, major, r2, start, end, window, step, limit)
        start = end
    return ~removed


#: plink2's kSmallEpsilon (2^-44), used in its threshold and frequency comparisons.
_SMALL_EPSILON = 2.0**-44


def _prune_chromosome(
    removed: npt.NDArray[np.bool_],
    major: F64,
    r2: F64,
    lo: int,
    hi: int,
    window: int,
    step: int,
    limit: float,
) -> None:
    """One chromosome, in PLINK 1.x pruning order (what plink2 v2.00a3.5 does).

    Each window holds the variants of the previous window that are neither
    pruned nor before the new start, then the next ones up to
    ``start + window``. Passes over the window repeat until one prunes
    nothing: each kept variant, oldest first, resumes its scan of later
    variants where it stopped; at the first pair above the threshold the
    variant with the lower MAF goes (the later one on a tie) and the scan
    moves on to the next variant.
    """
    w_start, loaded = lo, lo
    members: list[int] = []
    unchecked: dict[int, int] = {}
    while True:
        w_end = min(w_start + window, hi)
        for m in range(loaded, w_end):
            members.append(m)
            unchecked[m] = m + 1
        loaded = w_end
        while True:
            before = int(removed[members].sum())
            for a, first in enumerate(members):
                if removed[first] or unchecked[first] == w_end:
                    continue
                later = [m for m in members[a + 1 :] if not removed[m] and m >= unchecked[first]]
                unchecked[first] = w_end
                for b, second in enumerate(later):
                    if r2[first, second - first - 1] <= limit:
                        continue
                    if major[first] > major[second] * (1.0 + _SMALL_EPSILON):
                        removed[first] = True
                    else:
                        removed[second] = True
                        unchecked[first] = later[b + 1] if b + 1 < len(later) else w_end
                    break
            if int(removed[members].sum()) == before:
                break
        if w_end >= hi:
            return
        w_start += step
        members = [m for m in members if not removed[m] and m >= w_start]


def whiten(gram: F64) -> F64:
    """``T`` with ``T^T G T = I`` for a positive definite Gram ``G`` (``Q = U T``)."""
    sym = (gram + gram.T) / 2.0
    values, vectors = np.linalg.eigh(sym)
    floor = values.max() * 1e-13
    if values.min() <= floor:
        raise ValueError("the PCA block lost rank; the cohort has fewer samples than components")
    return np.asarray(vectors / np.sqrt(values), dtype=np.float64)


@dataclass(frozen=True)
class RitzPairs:
    """Ritz values (descending), their vectors in the block's basis, relative residuals."""

    values: F64
    vectors: F64
    residuals: F64


def ritz(cross: F64, gram: F64) -> RitzPairs:
    """Ritz pairs of ``K`` on ``span(Q)`` from ``H = Q^T K Q`` and ``G = (KQ)^T (KQ)``.

    The residual of a Ritz pair ``(theta, Q w)`` is
    ``||KQw - theta Qw|| = sqrt(w^T G w - theta^2)``, reported relative to theta.
    """
    h = (cross + cross.T) / 2.0
    values, vectors = np.linalg.eigh(h)
    values, vectors = values[::-1], vectors[:, ::-1]
    sq = np.einsum("ij,ik,kj->j", vectors, gram, vectors) - values * values
    with np.errstate(divide="ignore", invalid="ignore"):
        residuals = np.sqrt(np.maximum(sq, 0.0)) / np.abs(values)
    return RitzPairs(values, vectors, np.where(np.isfinite(residuals), residuals, np.inf))


def variant_weights(x_t_e: F64, eigenvalues: F64, alt_freq: F64) -> F64:
    """plink2's ``biallelic-var-wts``: ``X^T e / sqrt(lambda)`` for the non-major allele."""
    with np.errstate(divide="ignore", invalid="ignore"):
        w = x_t_e / np.sqrt(eigenvalues)[None, :]
    sign = np.where(major_is_alt(alt_freq), -1.0, 1.0)
    return np.asarray(w * sign[:, None], dtype=np.float64)


@dataclass(frozen=True)
class ProductBounds:
    """What bounds every site's PCA products: ``max_j g_j``, ``sum_j g_j`` over ``M`` variants."""

    max_g: float
    sum_g: float
    n_variants: int

    @classmethod
    def from_counts(cls, counts: npt.NDArray[np.int64] | F64, alt_freq: F64) -> ProductBounds:
        """From pooled (V, 4) genotype counts (study ALT) and the standardizing frequencies."""
        c = np.asarray(counts, dtype=np.float64)
        f = np.asarray(alt_freq, dtype=np.float64)
        var = 2.0 * f * (1.0 - f)
        g = np.zeros(len(f))
        live = var > 0  # a variant with f 0 or 1 is 0 in every sample
        for dose in range(3):
            g[live] += c[live, dose] * (dose - 2.0 * f[live]) ** 2 / var[live]
        return cls(float(g.max(initial=0.0)), float(g.sum()), len(f))

    def _exponent(self, bound: float) -> int:
        return max(-60, min(60, int(np.ceil(np.log2(max(2.0 * bound, 2.0**-60))))))

    def iterate(self, step: int, wts: F64) -> npt.NDArray[np.int64]:
        """Exponents of ``a_t_u``, ``cross``, ``gram`` (wire order) for a ``pca_iterate`` step."""
        m = max(self.n_variants, 1)
        trace = self.sum_g / m
        column = np.sqrt(self.max_g / m)
        if step == 0:  # U = A Omega
            u_norm = np.sqrt(trace) * float(np.sqrt((wts * wts).sum(axis=0)).max(initial=0.0))
            cross = 1.0  # zeros at the start
        else:
            u_norm = trace
            cross = trace
        bounds = (column * u_norm, cross, u_norm * u_norm)
        return np.array([self._exponent(b) for b in bounds], dtype=np.int64)

    def finish(self) -> npt.NDArray[np.int64]:
        """Exponent of ``x_t_e`` for ``pca_finish`` (unit-norm sample eigenvectors)."""
        return np.array([self._exponent(float(np.sqrt(self.max_g)))], dtype=np.int64)
