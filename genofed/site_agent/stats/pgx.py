"""Local half of pharmacogenomics: star-allele diplotypes from unphased genotypes.

A gene is described by its variants (``m``) and its alleles, each a 0/1
vector over the variants (its core variants; the allele the reference genome
carries has none). A sample's genotype is its count (0, 1, 2) of each
variant's ALT allele. A diplotype ``A/B`` explains the genotype when
``core[A] + core[B]`` equals it. The call is:

* the one diplotype that explains the genotype;
* *not called: missing* when a core variant's call is missing;
* *not called: unexplained* when no pair of supported alleles explains it
  (an allele not in the table, a structural or copy-number allele, more than
  two non-reference alleles);
* *not called: ambiguous* when several pairs do (the genotype is unphased:
  for example TPMT ``*1/*3A`` and ``*3B/*3C``). Nothing is guessed.

Written by hand because the calling rule is this small exact match over a
fixed allele table; the tools that call star alleles (PyPGx, Aldy,
PharmCAT) work from VCF files with their own pipelines and would read
individual data outside the site agent's own code path.

Pure core: arrays in, arrays out; samples are grouped by distinct genotype,
so the work grows with the number of distinct genotypes, not samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "CALLED",
    "NOT_CALLED_AMBIGUOUS",
    "NOT_CALLED_MISSING",
    "NOT_CALLED_UNEXPLAINED",
    "Calls",
    "call_diplotypes",
]

CALLED = 0
NOT_CALLED_MISSING = 1
NOT_CALLED_UNEXPLAINED = 2
NOT_CALLED_AMBIGUOUS = 3


@dataclass(frozen=True)
class Calls:
    """Per sample: the two allele indices (-1 when not called) and the reason code."""

    first: npt.NDArray[np.int64]
    second: npt.NDArray[np.int64]
    reason: npt.NDArray[np.int8]


def call_diplotypes(cores: npt.NDArray[np.int8], dosages: npt.NDArray[np.int8]) -> Calls:
    """Diplotypes for ``dosages`` (n, m; -9 missing) from allele ``cores`` (a, m)."""
    cores = np.asarray(cores, dtype=np.int16)
    d = np.asarray(dosages)
    n = d.shape[0]
    first = np.full(n, -1, dtype=np.int64)
    second = np.full(n, -1, dtype=np.int64)
    reason = np.full(n, NOT_CALLED_UNEXPLAINED, dtype=np.int8)
    a = cores.shape[0]
    i, j = np.triu_indices(a)
    sums = cores[i] + cores[j]  # (P, m)
    explained: dict[bytes, list[int]] = {}
    for p, row in enumerate(sums.astype(np.int8)):
        explained.setdefault(row.tobytes(), []).append(p)
    missing = (d < 0).any(axis=1)
    reason[missing] = NOT_CALLED_MISSING
    present = np.flatnonzero(~missing)
    if not present.size:
        return Calls(first, second, reason)
    unique, inverse = np.unique(d[present].astype(np.int8), axis=0, return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1)
    for u, genotype in enumerate(unique):
        hits = explained.get(np.ascontiguousarray(genotype).tobytes(), [])
        rows = present[inverse == u]
        if len(hits) == 1:
            first[rows], second[rows] = i[hits[0]], j[hits[0]]
            reason[rows] = CALLED
        elif hits:
            reason[rows] = NOT_CALLED_AMBIGUOUS
    return Calls(first, second, reason)
