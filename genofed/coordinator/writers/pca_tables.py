"""PCA result files, laid out as PLINK v2.00a3.5 ``--pca biallelic-var-wts`` writes them.

``<prefix>.eigenval``: one eigenvalue per line. ``<prefix>.eigenvec.var``::

    #CHROM  ID  MAJ  NONMAJ  PC1 ... PCk

one row per PCA variant in the study's order; MAJ is the major allele (ALT
only when its pooled frequency exceeds 0.5) and each weight applies to the
non-major allele's standardized dosage. Numbers use plink2's
six-significant-digit format. No per-sample file is written: the sample
scores stay at the sites.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genofed.coordinator.combine.harmonize import VariantTable
from genofed.coordinator.combine.pca import major_is_alt
from genofed.coordinator.writers.atomic import atomic_write_text
from genofed.coordinator.writers.plink_tables import format_g6

__all__ = ["eigenvec_var_text", "write_pca_outputs"]


def eigenvec_var_text(variants: VariantTable, alt_freq: np.ndarray, weights: np.ndarray) -> str:
    k = weights.shape[1]
    header = "\t".join(["#CHROM", "ID", "MAJ", "NONMAJ", *(f"PC{j + 1}" for j in range(k))])
    alt_major = major_is_alt(alt_freq)
    lines = [header]
    for i in range(len(variants)):
        maj, nonmaj = (
            (variants.alt[i], variants.ref[i])
            if alt_major[i]
            else (
                variants.ref[i],
                variants.alt[i],
            )
        )
        cells = [str(variants.chrom[i]), str(variants.id[i]), str(maj), str(nonmaj)]
        cells.extend(format_g6(float(w)) for w in weights[i])
        lines.append("\t".join(cells))
    return "\n".join(lines) + "\n"


def write_pca_outputs(
    out_dir: Path,
    prefix: str,
    variants: VariantTable,
    alt_freq: np.ndarray,
    eigenvalues: np.ndarray,
    weights: np.ndarray,
) -> list[str]:
    """Write ``<prefix>.eigenval`` and ``<prefix>.eigenvec.var``; return their names."""
    eigenval, eigenvec = f"{prefix}.eigenval", f"{prefix}.eigenvec.var"
    atomic_write_text(out_dir / eigenval, "".join(f"{format_g6(float(v))}\n" for v in eigenvalues))
    atomic_write_text(out_dir / eigenvec, eigenvec_var_text(variants, alt_freq, weights))
    return [eigenval, eigenvec]
