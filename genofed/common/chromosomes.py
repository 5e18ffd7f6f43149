"""Chromosome names as sites, scoring files and the coordinator compare them.

Files name a chromosome with or without a ``chr`` prefix (``chr1`` / ``1``,
any case of the prefix); variants are matched on the name without it.
"""

from __future__ import annotations


def bare_chrom(chrom: str) -> str:
    """``chrom`` without a leading ``chr`` (any case): ``chr7`` and ``CHR7`` -> ``7``."""
    return chrom[3:] if chrom[:3].lower() == "chr" else chrom


__all__ = ["bare_chrom"]
