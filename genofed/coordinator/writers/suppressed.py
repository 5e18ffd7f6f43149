"""Variants that sites withheld under small-cell suppression, and how results show them.

A site whose policy sets ``min_cell_count`` sends, with its ``plain``
genotype counts, a boolean ``suppressed`` array: ``True`` marks a variant
whose counts it withheld (sent as zeros) because a nonzero cell was below
its threshold (the rule is in ``site_agent/privacy/suppression.py``), or to
keep a membership test's power under its policy's limit
(``site_agent/privacy/membership_release.py``; which of the two is not said). Here:

* :func:`site_withheld` checks that array (withheld rows must be all zero,
  so a site cannot hide real counts behind the flag, nor the flag behind a
  zero);
* a variant withheld by **any** site has its pooled statistics printed as
  ``NA`` in every count table (``freq.afreq``, ``missing.vmiss``,
  ``geno.gcount``, ``hardy.hardy``): the pooled sum would otherwise silently
  leave that site out;
* :func:`write_suppressed` lists each such variant in ``suppressed.tsv``
  with the number of sites that withheld it and why — never which sites, so
  that the file does not say where a rare genotype is — and
  :func:`suppression_summary` counts them per site for the run summary;
* in ``exact`` mode the coordinator sees only the pooled counts, and a
  variant whose pooled counts hold a nonzero cell below the largest
  ``min_cell_count`` of the sites is printed NA too (``N_SITES`` 0).

``dp`` replies carry no ``suppressed`` array (noise protects small cells),
and a site whose policy suppresses nothing sends an all-``False`` one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from genofed.common.errors import SiteFailure
from genofed.common.reasons import BAD_REPLY
from genofed.common.wire.records import NamedArrays
from genofed.coordinator.combine.harmonize import VariantTable
from genofed.coordinator.writers.atomic import atomic_write_text

SUPPRESSED_ARRAY = "suppressed"
SUPPRESSED_FILE = "suppressed.tsv"
SUPPRESSED_HEADER = "#CHROM\tPOS\tID\tREF\tALT\tN_SITES\tREASON"
REASON = (
    "withheld by a site: small cells (a nonzero genotype count below its min_cell_count), "
    "or its limit on membership inference (max_membership_power)"
)
POOLED_REASON = (
    "small pooled cells: a nonzero pooled genotype count below the sites' min_cell_count"
)
MEMBERSHIP_POOLED_REASON = (
    "membership limit on pooled counts: the sites' max_membership_power (exact mode)"
)


def site_withheld(site: str, arrays: NamedArrays, n_variants: int) -> npt.NDArray[np.bool_]:
    """The variants ``site`` withheld (all ``False`` when it sent no ``suppressed`` array)."""
    mask = arrays.get(SUPPRESSED_ARRAY)
    if mask is None:
        return np.zeros(n_variants, dtype=np.bool_)
    counts = arrays.get("genotype_counts")
    if mask.shape != (n_variants,) or mask.dtype != np.bool_:
        raise SiteFailure(site, BAD_REPLY, f"'suppressed' must be ({n_variants},) booleans")
    if counts is not None and counts[mask].any():
        raise SiteFailure(site, BAD_REPLY, "variants marked suppressed carry nonzero counts")
    return np.asarray(mask, dtype=np.bool_)


def write_suppressed(
    out_dir: Path,
    variants: VariantTable,
    site_names: Sequence[str],
    withheld: Sequence[npt.NDArray[np.bool_]],
    pooled: npt.NDArray[np.bool_] | None = None,
    membership: npt.NDArray[np.bool_] | None = None,
) -> list[str]:
    """Write ``suppressed.tsv`` if any variant was withheld; return the file names written.

    ``pooled`` marks variants withheld for small pooled cells, ``membership``
    those withheld under the sites' membership limits (both ``exact`` mode).
    """
    per_site = np.asarray(withheld, dtype=np.bool_).reshape(len(site_names), -1)
    n_sites = per_site.sum(axis=0)
    small = np.zeros(len(n_sites), dtype=np.bool_) if pooled is None else pooled
    risky = np.zeros(len(n_sites), dtype=np.bool_) if membership is None else membership
    if not (n_sites.any() or small.any() or risky.any()):
        return []
    lines = [SUPPRESSED_HEADER]
    for i in np.flatnonzero((n_sites > 0) | small | risky).tolist():
        reason = REASON if n_sites[i] else POOLED_REASON if small[i] else MEMBERSHIP_POOLED_REASON
        lines.append(
            f"{variants.chrom[i]}\t{variants.pos[i]}\t{variants.id[i]}\t{variants.ref[i]}"
            f"\t{variants.alt[i]}\t{int(n_sites[i])}\t{reason}"
        )
    atomic_write_text(out_dir / SUPPRESSED_FILE, "\n".join(lines) + "\n")
    return [SUPPRESSED_FILE]


def suppression_summary(
    site_names: Sequence[str], withheld: Sequence[npt.NDArray[np.bool_]]
) -> dict[str, int]:
    """Per site, the number of variants it withheld; ``any site``: variants printed as NA."""
    doc = {name: int(mask.sum()) for name, mask in zip(site_names, withheld, strict=True)}
    doc["any site"] = int(np.any(np.asarray(withheld), axis=0).sum()) if len(withheld) else 0
    return doc


__all__ = [
    "REASON",
    "SUPPRESSED_ARRAY",
    "SUPPRESSED_FILE",
    "site_withheld",
    "suppression_summary",
    "write_suppressed",
]
