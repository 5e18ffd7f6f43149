"""Small-cell suppression: counts below the policy's ``min_cell_count`` never leave the site.

Rule (for every count release in ``plain`` mode): a row of a count table
(for genotype counts, one variant) is *withheld* when any of its protected
cells is nonzero and below ``min_cell_count``. For genotype counts the
protected cells are the three genotype counts (hom-ref, het, hom-alt). The
missing-call count is not protected: it says how often the assay failed at
that variant, not what anyone carries, and it is small for nearly every
variant of a real array (protecting it withholds almost everything:
``bench/suppression.py`` measured 100% of variants at threshold 10 on the
synthetic cohort).
A withheld row is sent as zeros together with a boolean ``suppressed``
array that marks it, so the coordinator can never mistake it for a count of
zero: it prints the variant's pooled statistics as ``NA`` and lists it, with
the sites that withheld it, in ``suppressed.tsv``.

Why whole rows and not single cells: the cells of a variant are tied by the
site's sample count (hom-ref + het + hom-alt + missing = n), and the allele
counts by the genotype counts, so blanking one cell would let anyone
recompute it from the others. Zero cells are not suppressed: "nobody" is
not a small group, and a monomorphic variant reveals nothing about a person.
A variant whose minor allele count is below the threshold always has a
nonzero genotype cell below it (het or hom-alt), so the rule covers the
minor allele count as well.

What the rule does not hide: *that* a variant was withheld at a site (the
pattern of suppression is visible, as in any suppressed table), which tells
the coordinator that some cell of that variant lies in ``[1, min_cell_count)``.
``min_cell_count = 0`` (or 1) turns suppression off. ``dp`` releases are not
suppressed: their noise protects small cells, and suppressing on the true
counts would itself leak them.

A pure core: integer arrays and a threshold in, arrays out. Any analysis
whose release is a table of counts can call :func:`suppress_small_cells`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

#: Name of the boolean per-row array that travels with a suppressed count table.
SUPPRESSED_ARRAY = "suppressed"
#: Protected columns of a ``(V, 4)`` genotype count table: hom-ref, het, hom-alt (not missing).
GENOTYPE_CELLS = (0, 1, 2)


@dataclass(frozen=True)
class Suppressed:
    """A count table with its small-cell rows zeroed, and which rows those are."""

    counts: npt.NDArray[np.int64]
    withheld: npt.NDArray[np.bool_]

    @property
    def n_withheld(self) -> int:
        return int(self.withheld.sum())


def small_cell_rows(
    counts: npt.NDArray[np.integer],
    min_cell_count: int,
    columns: Sequence[int] | None = None,
) -> npt.NDArray[np.bool_]:
    """Rows of the 2-D ``counts`` table with a protected nonzero cell below ``min_cell_count``.

    ``columns``: the protected columns (default: every column).
    """
    if counts.ndim != 2:
        raise ValueError(f"counts must be a 2-D table, not shape {counts.shape}")
    if min_cell_count < 0:
        raise ValueError(f"min_cell_count must be >= 0, not {min_cell_count}")
    cells = counts if columns is None else counts[:, list(columns)]
    small = (cells > 0) & (cells < min_cell_count)
    return np.asarray(small.any(axis=1), dtype=np.bool_)


def suppress_small_cells(
    counts: npt.NDArray[np.integer],
    min_cell_count: int,
    columns: Sequence[int] | None = None,
) -> Suppressed:
    """Zero every row of ``counts`` that :func:`small_cell_rows` marks; return both."""
    withheld = small_cell_rows(counts, min_cell_count, columns)
    released = np.array(counts, dtype=np.int64, copy=True)
    released[withheld] = 0
    return Suppressed(released, withheld)


__all__ = [
    "GENOTYPE_CELLS",
    "SUPPRESSED_ARRAY",
    "Suppressed",
    "small_cell_rows",
    "suppress_small_cells",
]
