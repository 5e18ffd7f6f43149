"""Pooled allele frequencies, missingness and genotype counts from per-site counts.

Each site sends, per variant, the four genotype counts of
:mod:`genofed.site_agent.stats.genotype_counts` in the column order
``[HOM_REF, HET, HOM_ALT, MISSING]``. Their sum over sites is exactly the
count PLINK 2 sees on the pooled cohort, so the tables below equal
``plink2 --freq`` (``.afreq``), ``--missing`` (``.vmiss``) and
``--geno-counts`` (``.gcount``) on the pooled data, not approximately.

Only autosomal, biallelic, hard-call variants are in scope (chrX/Y/MT have
haploid calls and HAP_* columns in PLINK 2); the caller rejects the rest, so
these functions do not look at chromosomes.

Pure core: arrays in, frozen dataclasses of arrays out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from genofed.common.errors import HarmonizationError

__all__ = [
    "FreqResult",
    "GenoCountsResult",
    "MissingnessResult",
    "allele_frequencies",
    "genotype_count_table",
    "sum_site_counts",
    "variant_missingness",
]

_N_COLUMNS = 4


@dataclass(frozen=True)
class FreqResult:
    """``.afreq`` numbers: ALT allele frequency and allele observation count.

    ``obs_ct`` counts alleles (2 per non-missing diploid call), as PLINK 2's
    OBS_CT does; ``alt_freqs`` is NaN where every call is missing.
    """

    alt_freqs: npt.NDArray[np.float64]
    obs_ct: npt.NDArray[np.int64]


@dataclass(frozen=True)
class MissingnessResult:
    """``.vmiss`` numbers.

    PLINK 2's variant OBS_CT here is the number of samples that could have a
    call (all samples, for autosomes), not the number of non-missing calls;
    F_MISS = MISSING_CT / OBS_CT.
    """

    missing_ct: npt.NDArray[np.int64]
    obs_ct: npt.NDArray[np.int64]
    f_miss: npt.NDArray[np.float64]


@dataclass(frozen=True)
class GenoCountsResult:
    """``.gcount`` numbers (HAP_* columns are zero on autosomes and not stored)."""

    hom_ref_ct: npt.NDArray[np.int64]
    het_ref_alt_ct: npt.NDArray[np.int64]
    two_alt_geno_ct: npt.NDArray[np.int64]
    missing_ct: npt.NDArray[np.int64]


def _check_counts(counts: npt.ArrayLike, what: str, noisy: bool = False) -> npt.NDArray[np.int64]:
    c = np.asarray(counts)
    if c.ndim != 2 or c.shape[1] != _N_COLUMNS:
        raise ValueError(f"{what} must have shape (n_variants, 4), got {c.shape}")
    if not np.issubdtype(c.dtype, np.integer):
        raise ValueError(f"{what} must hold integer counts, got dtype {c.dtype}")
    if c.size and int(c.min()) < 0 and not noisy:
        raise ValueError(f"{what} holds negative counts")
    return c.astype(np.int64, copy=False)


def sum_site_counts(
    site_counts: Sequence[npt.ArrayLike], *, noisy: bool = False
) -> npt.NDArray[np.int64]:
    """Sum per-site ``(n_variants, 4)`` count arrays into pooled counts.

    ``noisy``: the counts carry DP noise (``dp`` mode), so a count may be negative.

    Every site must report the same variants in the same order; a shape
    disagreement means the sites were not harmonised and is refused rather
    than broadcast.
    """
    if not site_counts:
        raise ValueError("no site counts to combine")
    arrays = [_check_counts(c, f"counts of site #{i}", noisy) for i, c in enumerate(site_counts)]
    shape = arrays[0].shape
    for i, a in enumerate(arrays[1:], start=1):
        if a.shape != shape:
            raise HarmonizationError(
                f"site #{i} reports counts of shape {a.shape}, site #0 {shape}: "
                "sites must report the same variants in the same order"
            )
    total = np.zeros(shape, dtype=np.int64)
    for a in arrays:
        total += a
    return total


def allele_frequencies(counts: npt.ArrayLike) -> FreqResult:
    """ALT_FREQS and OBS_CT as ``plink2 --freq`` writes them."""
    c = _check_counts(counts, "counts")
    alt = c[:, 1] + 2 * c[:, 2]
    obs = 2 * (c[:, 0] + c[:, 1] + c[:, 2])
    with np.errstate(invalid="ignore", divide="ignore"):
        freqs = alt / obs.astype(np.float64)
    return FreqResult(alt_freqs=freqs, obs_ct=obs)


def variant_missingness(counts: npt.ArrayLike) -> MissingnessResult:
    """MISSING_CT, OBS_CT and F_MISS as ``plink2 --missing`` writes to ``.vmiss``."""
    c = _check_counts(counts, "counts")
    missing = c[:, 3].copy()
    obs = c.sum(axis=1)
    # PLINK 2 multiplies by the reciprocal; keep the same rounding.
    with np.errstate(invalid="ignore", divide="ignore"):
        f_miss = missing * (1.0 / obs.astype(np.float64))
    return MissingnessResult(missing_ct=missing, obs_ct=obs, f_miss=f_miss)


def genotype_count_table(counts: npt.ArrayLike) -> GenoCountsResult:
    """The genotype counts of ``plink2 --geno-counts`` (``.gcount``)."""
    c = _check_counts(counts, "counts")
    return GenoCountsResult(
        hom_ref_ct=c[:, 0].copy(),
        het_ref_alt_ct=c[:, 1].copy(),
        two_alt_geno_ct=c[:, 2].copy(),
        missing_ct=c[:, 3].copy(),
    )
