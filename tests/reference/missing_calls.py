"""Make some samples of a synthetic cohort miss many calls, in the sites' and the pooled .bed.

``genofed synth`` spreads missing calls uniformly over samples and variants.
Real cohorts do not: a batch genotyped on another array, or a site with
poorer DNA, misses far more calls than the rest. :func:`concentrate` sets
calls of chosen samples (indices in the pooled ``.fam``, which lists every
site's samples in site order) to missing in ``pooled/pooled.bed`` and in each
site's ``data/genotypes.bed`` alike, so the federated run and plink2 on the
pooled fileset still see the same genotypes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

_BED_MISSING_CODE = 0b01  # PLINK 1 .bed: 00 hom A1, 01 missing, 10 het, 11 hom A2


def _set_missing(bed: Path, n_samples: int, mask: np.ndarray) -> None:
    """Mark ``mask[v, j]`` calls missing in a variant-major ``.bed`` of ``n_samples``."""
    data = np.fromfile(bed, dtype=np.uint8)
    width = (n_samples + 3) // 4
    body = data[3:].reshape(-1, width)
    codes = np.empty((body.shape[0], width * 4), dtype=np.uint8)
    for k in range(4):
        codes[:, k::4] = (body >> (2 * k)) & 3
    codes[:, :n_samples][mask] = _BED_MISSING_CODE
    packed = np.zeros_like(body)
    for k in range(4):
        packed |= codes[:, k::4] << (2 * k)
    data[3:] = packed.ravel()
    data.tofile(bed)


def concentrate(
    cohort: Path, samples: np.ndarray, rate: float, seed: int, *, same_variants: bool
) -> int:
    """Make each of ``samples`` miss about ``rate`` of its calls; return the calls set missing.

    With ``same_variants`` they all miss one random set of variants (a batch
    on another array); otherwise each misses its own random calls.
    """
    sites = sorted(p for p in cohort.glob("site-*") if p.is_dir())
    sizes = [len((s / "data" / "genotypes.fam").read_text().splitlines()) for s in sites]
    n = sum(sizes)
    v = len((cohort / "pooled" / "pooled.bim").read_text().splitlines())
    rng = np.random.default_rng(seed)
    mask = np.zeros((v, n), dtype=np.bool_)
    if same_variants:
        mask[:, samples] = (rng.random(v) < rate)[:, None]
    else:
        mask[:, samples] = rng.random((v, len(samples))) < rate
    _set_missing(cohort / "pooled" / "pooled.bed", n, mask)
    start = 0
    for site, size in zip(sites, sizes, strict=True):
        _set_missing(site / "data" / "genotypes.bed", size, mask[:, start : start + size])
        start += size
    return int(mask.sum())
