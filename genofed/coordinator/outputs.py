"""From pooled genotype counts to each count analysis's result table.

Maps an analysis kind to its combine function (``combine/``) and its writer
(``writers/plink_tables.py``), and returns a few headline numbers for the
run summary.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genofed.common.study import AnalysisSpec
from genofed.coordinator.combine.freq import (
    allele_frequencies,
    genotype_count_table,
    variant_missingness,
)
from genofed.coordinator.combine.hardy import hardy
from genofed.coordinator.combine.harmonize import VariantTable
from genofed.coordinator.writers.plink_tables import (
    VariantColumns,
    write_afreq,
    write_gcount,
    write_hardy,
    write_vmiss,
)

#: Threshold reported in the summary for Hardy-Weinberg departures.
HWE_SUMMARY_P = 1e-6


def write_count_outputs(
    out_dir: Path, spec: AnalysisSpec, variants: VariantTable, pooled: np.ndarray
) -> tuple[list[str], dict[str, object]]:
    """Write the table(s) of one count analysis; return file names and headline numbers."""
    columns = VariantColumns(variants.chrom, variants.pos, variants.id, variants.ref, variants.alt)
    if spec.kind == "freq":
        freq = allele_frequencies(pooled)
        name = "freq.afreq" if spec.id == "freq" else f"{spec.id}.afreq"
        write_afreq(out_dir / name, columns, freq)
        maf = np.minimum(freq.alt_freqs, 1 - freq.alt_freqs)
        return [name], {
            "variants": len(columns),
            "monomorphic": int(np.sum(maf == 0)),
            "maf<0.01": int(np.sum(maf < 0.01)),
        }
    if spec.kind == "missing":
        miss = variant_missingness(pooled)
        name = "missing.vmiss" if spec.id == "missing" else f"{spec.id}.vmiss"
        write_vmiss(out_dir / name, columns, miss)
        return [name], {"mean F_MISS": f"{float(np.nanmean(miss.f_miss)):.4g}"}
    if spec.kind == "gcount":
        name = "geno.gcount" if spec.id == "gcount" else f"{spec.id}.gcount"
        write_gcount(out_dir / name, columns, genotype_count_table(pooled))
        return [name], {"genotype calls": int(pooled[:, :3].sum())}
    if spec.kind == "hardy":
        result = hardy(pooled, midp=bool(spec.params.get("midp", False)))
        name = "hardy.hardy" if spec.id == "hardy" else f"{spec.id}.hardy"
        write_hardy(out_dir / name, columns, result)
        return [name], {f"P<{HWE_SUMMARY_P:g}": int(np.sum(result.p < HWE_SUMMARY_P))}
    raise ValueError(f"{spec.kind!r} is not a count analysis")


__all__ = ["write_count_outputs"]
