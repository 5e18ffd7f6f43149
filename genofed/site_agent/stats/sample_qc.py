"""Per-sample QC sums: missing calls (plink2 ``--mind``) and heterozygosity (``--het``).

One pass over the site's genotypes, chunk by chunk, accumulates per sample
the number of missing calls and, on autosomes, the observed homozygous
calls and their expectation under Hardy-Weinberg with the in-sample allele
frequency, as plink2 ``--het`` computes them::

    F = (O(HOM) - E(HOM)) / (N - E(HOM))

with ``N`` the sample's called autosomal variants and, per variant,
``E = 1 - 2 p (1 - p)`` where ``p`` is the ALT frequency over the samples'
calls; monomorphic variants are skipped, as plink2 skips them. plink2
computes the frequencies after ``--mind``, so the het pass runs over the
samples ``--mind`` kept. Nothing here leaves the site: the
module is pure (the reader and the site's files are in
:mod:`genofed.site_agent.cohort`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

#: plink's missing-call code in the decoded dosage arrays.
MISSING = -9


@dataclass
class MissingSums:
    """Per sample: missing calls over ``n_variants`` variants."""

    missing: np.ndarray
    n_variants: int

    def rate(self) -> np.ndarray:
        return self.missing / max(self.n_variants, 1)


def missing_sums(n_samples: int, chunks: Iterable[np.ndarray]) -> MissingSums:
    """Missing calls per sample over every (variants x samples) chunk."""
    missing = np.zeros(n_samples, dtype=np.int64)
    n = 0
    for d in chunks:
        missing += (d == MISSING).sum(axis=0)
        n += d.shape[0]
    return MissingSums(missing, n)


def mind_fails(sums: MissingSums, mind: float) -> np.ndarray:
    """plink2 ``--mind``: samples missing more than ``mind`` of their calls."""
    return sums.rate() > mind


@dataclass
class HetSums:
    """Per sample: observed homozygous calls, their expectation, and called variants."""

    observed_hom: np.ndarray
    expected_hom: np.ndarray
    n_called: np.ndarray

    def f(self) -> np.ndarray:
        """The method-of-moments F (NaN for a sample without called variants)."""
        denominator = self.n_called - self.expected_hom
        with np.errstate(divide="ignore", invalid="ignore"):
            f: np.ndarray = (self.observed_hom - self.expected_hom) / denominator
        return f


def het_sums(
    n_samples: int, chunks: Iterable[np.ndarray], founders: np.ndarray | None = None
) -> HetSums:
    """``--het`` sums over autosomal (variants x samples) chunks of the kept samples.

    Allele frequencies are the ``founders``' (a mask over the kept samples; None:
    every sample), as plink2 computes them without ``--nonfounders``.
    """
    obs = np.zeros(n_samples, dtype=np.int64)
    exp = np.zeros(n_samples, dtype=np.float64)
    called = np.zeros(n_samples, dtype=np.int64)
    for d in chunks:
        ok = d != MISSING
        base = d if founders is None else d[:, founders]
        base_ok = ok if founders is None else ok[:, founders]
        n_ok = base_ok.sum(axis=1)
        alt = np.where(base_ok, base, 0).sum(axis=1, dtype=np.int64)
        with np.errstate(divide="ignore", invalid="ignore"):
            p = np.where(n_ok > 0, alt / (2.0 * np.maximum(n_ok, 1)), 0.0)
        used = (p > 0.0) & (p < 1.0)  # plink2 skips monomorphic variants
        ok = ok & used[:, None]
        e = np.where(used, 1.0 - 2.0 * p * (1.0 - p), 0.0)
        obs += (ok & (d != 1)).sum(axis=0)
        exp += e @ ok
        called += ok.sum(axis=0)
    return HetSums(obs, exp, called)


def het_outliers(f: np.ndarray, k: float) -> np.ndarray:
    """Samples whose F lies more than ``k`` standard deviations from the mean F.

    Mean and SD (ddof 1) are over the samples with a finite F; a sample
    without one is not an outlier (``--mind`` handles samples without calls).
    """
    finite = np.isfinite(f)
    if finite.sum() < 2:
        return np.zeros(len(f), dtype=np.bool_)
    mean = float(f[finite].mean())
    sd = float(f[finite].std(ddof=1))
    outliers: np.ndarray = finite & (np.abs(np.where(finite, f, mean) - mean) > k * sd)
    return outliers


__all__ = [
    "HetSums",
    "MissingSums",
    "het_outliers",
    "het_sums",
    "mind_fails",
    "missing_sums",
]
