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
    out_dir: Path,
    spec: AnalysisSpec,
    variants: VariantTable,
    pooled: np.ndarray,
    withheld: np.ndarray | None = None,
) -> tuple[list[str], dict[str, object]]:
    """Write the table(s) of one count analysis; return file names and headline numbers.

    ``withheld`` marks variants a site withheld (small-cell suppression): their
    rows print NA and they are left out of the headline numbers.
    """
    columns = VariantColumns(variants.chrom, variants.pos, variants.id, variants.ref, variants.alt)
    keep = np.ones(len(columns), dtype=bool) if withheld is None else ~withheld
    if spec.kind == "freq":
        freq = allele_frequencies(pooled)
        name = "freq.afreq" if spec.id == "freq" else f"{spec.id}.afreq"
        write_afreq(out_dir / name, columns, freq, withheld)
        maf = np.minimum(freq.alt_freqs, 1 - freq.alt_freqs)[keep]
        return [name], {
            "variants": int(keep.sum()),
            "monomorphic": int(np.sum(maf == 0)),
            "maf<0.01": int(np.sum(maf < 0.01)),
        }
    if spec.kind == "missing":
        miss = variant_missingness(pooled)
        name = "missing.vmiss" if spec.id == "missing" else f"{spec.id}.vmiss"
        write_vmiss(out_dir / name, columns, miss, withheld)
        f_miss = miss.f_miss[keep]
        mean = float(np.nanmean(f_miss)) if np.isfinite(f_miss).any() else float("nan")
        return [name], {"mean F_MISS": f"{mean:.4g}"}
    if spec.kind == "gcount":
        name = "geno.gcount" if spec.id == "gcount" else f"{spec.id}.gcount"
        write_gcount(out_dir / name, columns, genotype_count_table(pooled), withheld)
        return [name], {"genotype calls": int(pooled[keep, :3].sum())}
    if spec.kind == "hardy":
        result = hardy(pooled, midp=bool(spec.params.get("midp", False)))
        name = "hardy.hardy" if spec.id == "hardy" else f"{spec.id}.hardy"
        write_hardy(out_dir / name, columns, result, withheld)
        return [name], {f"P<{HWE_SUMMARY_P:g}": int(np.sum(result.p[keep] < HWE_SUMMARY_P))}
    raise ValueError(f"{spec.kind!r} is not a count analysis")


__all__ = ["write_count_outputs"]
