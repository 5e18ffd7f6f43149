"""Rewrite a synthetic PLINK 1 fileset as a PLINK 2 fileset (``synth --format pgen``).

The hard calls are copied through pgenlib (read from the ``.bed``, written
with ``pgenlib.PgenWriter``) in chunks of :data:`CHUNK_VARIANTS` variants,
so memory holds one chunk. The ``.pvar`` has the columns
``#CHROM POS ID REF ALT`` (REF = ``.bim`` column 6, ALT = column 5, the
allele the ``.bed`` counts, as plink2 reads a ``.bed``); the ``.psam`` has
``#FID IID SEX`` (SEX ``1``/``2``, ``NA`` unknown), as ``plink2 --bfile X
--make-pgen`` writes them for the synth's files (no parents, no CM, no
phenotype in the ``.fam``). The same input gives byte-identical output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pgenlib

from genofed.site_agent.io.plink import BedFile

#: Variants decoded and written at once (a chunk is variants x samples bytes).
CHUNK_VARIANTS = 4096
_SEX = {1: "1", 2: "2"}


def bed_to_pgen(bed: Path, out_prefix: Path, *, remove: bool = False) -> Path:
    """Write ``out_prefix.pgen/.pvar/.psam`` from the fileset of ``bed``; returns the ``.pgen``.

    With ``remove``, the ``.bed``, ``.bim`` and ``.fam`` are deleted once written.
    """
    out_prefix = Path(out_prefix)
    pgen = out_prefix.with_name(out_prefix.name + ".pgen")
    with BedFile(bed) as source:
        v, s = source.variants, source.samples
        lines = ["#CHROM\tPOS\tID\tREF\tALT"]
        lines += [
            f"{c}\t{p}\t{i}\t{r}\t{a}"
            for c, p, i, r, a in zip(v.chrom, v.pos, v.id, v.ref, v.alt, strict=True)
        ]
        pgen.with_suffix(".pvar").write_text("\n".join(lines) + "\n", encoding="utf-8")
        rows = ["#FID\tIID\tSEX"] + [
            f"{f}\t{i}\t{_SEX.get(int(x), 'NA')}"
            for f, i, x in zip(s.fid, s.iid, s.sex, strict=True)
        ]
        pgen.with_suffix(".psam").write_text("\n".join(rows) + "\n", encoding="utf-8")
        writer = pgenlib.PgenWriter(
            bytes(pgen), source.n_samples, source.n_variants, nonref_flags=False
        )
        try:
            for _, chunk in source.iter_dosages(chunk_variants=CHUNK_VARIANTS):
                writer.append_biallelic_batch(np.ascontiguousarray(chunk))
        finally:
            writer.close()
        members = (source.path, source.bim_path, source.path.with_suffix(".fam"))
    if remove:
        for path in members:
            path.unlink()
    return pgen


__all__ = ["CHUNK_VARIANTS", "bed_to_pgen"]
