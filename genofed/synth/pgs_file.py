"""A PGS Catalog scoring file (format 2) for the simulated trait.

The weights are the true per-ALT-allele effects of the causal variants
(:mod:`genofed.synth.phenotypes`), so the score is the simulated genetic
value up to a constant. To exercise matching as real files do, each row is
written the way the catalog's files vary:

* the effect allele is ALT (weight w) or REF (weight -w, which scores the
  same up to a constant), half each;
* a fifth of the rows whose alleles are not strand-ambiguous are written on
  the other strand (both alleles complemented);
* ``N_ABSENT`` extra rows name positions that no site genotyped, so every
  site reports them unmatched.

Pure apart from the one function that writes the text.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["N_ABSENT", "PGS_ID", "scoring_file_text", "write_scoring_file"]

PGS_ID = "GENOFED_SIM"
N_ABSENT = 3
_FLIP_SHARE = 0.2
_COMPLEMENT = str.maketrans("ACGT", "TGCA")


def scoring_file_text(
    chrom: np.ndarray,
    pos: np.ndarray,
    ref: np.ndarray,
    alt: np.ndarray,
    effects: np.ndarray,
    genotyped_chrom: np.ndarray,
    genotyped_pos: np.ndarray,
    rng: np.random.Generator,
) -> str:
    """The file's text: causal variants with their effects, plus ``N_ABSENT`` absent rows."""
    lines = [
        "###PGS CATALOG SCORING FILE - see https://www.pgscatalog.org/downloads/#dl_ftp_scoring",
        "#format_version=2.0",
        "##POLYGENIC SCORE (PGS) INFORMATION",
        f"#pgs_id={PGS_ID}",
        "#pgs_name=genofed_synth_causal",
        "#trait_reported=simulated liability (QPHENO, DISEASE)",
        "#weight_type=beta",
        "#genome_build=NR",
        f"#variants_number={len(pos) + N_ABSENT}",
        "rsID\tchr_name\tchr_position\teffect_allele\tother_allele\teffect_weight",
    ]
    swap = rng.random(len(pos)) < 0.5
    flip = rng.random(len(pos)) < _FLIP_SHARE
    for j in range(len(pos)):
        r, a, w = str(ref[j]), str(alt[j]), float(effects[j])
        effect, other = (r, a) if swap[j] else (a, r)
        weight = -w if swap[j] else w
        ambiguous = effect.translate(_COMPLEMENT) == other
        if flip[j] and not ambiguous:
            effect, other = effect.translate(_COMPLEMENT), other.translate(_COMPLEMENT)
        vid = f"{chrom[j]}:{pos[j]}:{r}:{a}"
        lines.append(f"{vid}\t{chrom[j]}\t{pos[j]}\t{effect}\t{other}\t{weight:.8g}")
    taken = set(np.asarray(genotyped_pos)[np.asarray(genotyped_chrom) == chrom[0]].tolist())
    free = [p for p in range(1, len(taken) + N_ABSENT + 2) if p not in taken][:N_ABSENT]
    for p in free:
        lines.append(f".\t{chrom[0]}\t{p}\tA\tG\t0.1")
    return "\n".join(lines) + "\n"


def write_scoring_file(path: Path, text: str) -> None:
    """Write the scoring file (the cohort writer builds in a temporary directory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
