"""Rewrite a synthetic PLINK 1 fileset as a VCF or BCF file (``synth --format vcf|bcf``).

The hard calls are read from the ``.bed`` in chunks of :data:`CHUNK_VARIANTS`
variants and written through ``cyvcf2.Writer`` (htslib): ``.vcf.gz``
bgzipped, ``.bcf`` binary. One record per variant, in the ``.bim`` order:
``#CHROM POS ID REF ALT`` as ``plink2 --bfile X --export vcf`` writes them
(REF = ``.bim`` column 6, ALT = column 5, the allele the ``.bed`` counts),
QUAL and FILTER ``.``, INFO ``.``, and one unphased ``GT`` per sample
(``0/0``, ``0/1``, ``1/1``, ``./.``). Sample names are the ``.fam`` IIDs
(a VCF has no family IDs; the site agent matches the phenotype tables on
IID for such files). The header declares the contigs without lengths (the
synthetic positions belong to no genome build). The same input gives the
same calls and header; bgzip blocks are htslib's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import cyvcf2
import numpy as np

from genofed.site_agent.io.plink import BedFile

#: Variants decoded and written at once (a chunk is variants x samples bytes).
CHUNK_VARIANTS: Final = 2048
#: Output mode of each format for ``cyvcf2.Writer``, and its file suffix.
MODES: Final = {"vcf": ("wz", ".vcf.gz"), "bcf": ("wb", ".bcf")}
_FIXED_COLUMNS = ("#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT")
_GT = np.array(["./.", "0/0", "0/1", "1/1"], dtype=object)


def vcf_path(prefix: Path, fmt: str) -> Path:
    """The file ``bed_to_vcf`` writes for ``prefix`` (``genotypes`` -> ``genotypes.vcf.gz``)."""
    return prefix.with_name(prefix.name + MODES[fmt][1])


def bed_to_vcf(bed: Path, out_prefix: Path, fmt: str, *, remove: bool = False) -> Path:
    """Write ``out_prefix.vcf.gz`` (``fmt="vcf"``) or ``out_prefix.bcf`` from ``bed``.

    With ``remove``, the ``.bed``, ``.bim`` and ``.fam`` are deleted once written.
    Returns the written file.
    """
    mode, _ = MODES[fmt]
    out = vcf_path(Path(out_prefix), fmt)
    with BedFile(bed) as source:
        v, s = source.variants, source.samples
        contigs = list(dict.fromkeys(np.asarray(v.chrom).astype(str).tolist()))
        header = [
            "##fileformat=VCFv4.2",
            "##source=genofed synth",
            *(f"##contig=<ID={c}>" for c in contigs),
            '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
            "\t".join([*_FIXED_COLUMNS, *np.asarray(s.iid).astype(str).tolist()]),
        ]
        writer = cyvcf2.Writer.from_string(str(out), "\n".join(header) + "\n", mode=mode)
        try:
            for start, chunk in source.iter_dosages(chunk_variants=CHUNK_VARIANTS):
                calls = _GT[np.where(chunk < 0, 0, chunk.astype(np.int64) + 1)]
                for j in range(len(chunk)):
                    k = start + j
                    fixed = (
                        f"{v.chrom[k]}\t{v.pos[k]}\t{v.id[k]}\t{v.ref[k]}\t{v.alt[k]}\t.\t.\t.\tGT"
                    )
                    line = fixed + "\t" + "\t".join(calls[j].tolist())
                    writer.write_record(writer.variant_from_string(line))
        finally:
            writer.close()
        members = (source.path, source.bim_path, source.path.with_suffix(".fam"))
    if remove:
        for path in members:
            path.unlink()
    return out


__all__ = ["CHUNK_VARIANTS", "MODES", "bed_to_vcf", "vcf_path"]
