"""Federated counts versus ``plink2 --freq --hardy --missing --geno-counts`` on the pooled cohort.

A 600-sample x 400-variant cohort (varied allele frequencies, monomorphic,
rare and HWE-violating variants, ~2% missing calls, an all-missing variant)
is written once as a PLINK 1 fileset. The samples are split into three
"sites"; each site's counts come from the local half, the coordinator sums
them and writes the tables, and the tables are compared with PLINK 2's on the
pooled fileset: same header, identical counts and text columns, floats to a
relative error of 1e-5.
"""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

import numpy as np
import pytest
from bed_reader import to_bed

from genofed.coordinator.combine.freq import (
    allele_frequencies,
    genotype_count_table,
    sum_site_counts,
    variant_missingness,
)
from genofed.coordinator.combine.hardy import hardy
from genofed.coordinator.writers.plink_tables import (
    VariantColumns,
    write_afreq,
    write_gcount,
    write_hardy,
    write_vmiss,
)
from genofed.site_agent.stats.genotype_counts import genotype_counts

N_SAMPLES = 600
N_VARIANTS = 400
REL_TOL = 1e-5


def _cohort(rng: np.random.Generator) -> np.ndarray:
    """Dosages (variants x samples, int8, -9 missing) with the awkward cases included."""
    m, n = N_VARIANTS, N_SAMPLES
    freq = rng.beta(0.4, 0.4, size=m)
    freq[:20] = 0.0  # monomorphic REF
    freq[20:30] = 1.0  # monomorphic ALT
    freq[30:80] = rng.uniform(0.0005, 0.01, size=50)  # rare
    dos = (rng.random((m, n)) < freq[:, None]).astype(np.int8)
    dos += rng.random((m, n)) < freq[:, None]
    dos[80:90] = 1  # all heterozygous
    dos[90:100] = np.where(rng.random((10, n)) < 0.5, 0, 2)  # no heterozygotes
    excess = rng.random((20, n)) < 0.3  # het excess on common variants
    dos[100:120][excess] = 1
    dos[rng.random((m, n)) < 0.02] = -9
    dos[120] = -9  # no calls at all
    dos[121, 1:] = -9  # a single call
    return dos


@pytest.fixture(scope="module")
def pooled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, VariantColumns]:
    rng = np.random.default_rng(20260101)
    dos = _cohort(rng)
    bases = np.array(["A", "C", "G", "T"])
    pick = rng.permuted(np.tile(np.arange(4), (N_VARIANTS, 1)), axis=1)[:, :2]
    variants = VariantColumns(
        chrom=[str(c) for c in rng.integers(1, 23, N_VARIANTS)],
        pos=np.arange(1, N_VARIANTS + 1, dtype=np.int64) * 1000,
        id=[f"rs{i + 1}" for i in range(N_VARIANTS)],
        ref=bases[pick[:, 0]].tolist(),
        alt=bases[pick[:, 1]].tolist(),
    )
    # PLINK 2 prints variants in file order; keep chromosomes sorted so it does not complain.
    order = np.argsort(np.array(variants.chrom, dtype=int), kind="stable")
    variants = VariantColumns(
        chrom=[variants.chrom[i] for i in order],
        pos=np.asarray(variants.pos)[order],
        id=[variants.id[i] for i in order],
        ref=[variants.ref[i] for i in order],
        alt=[variants.alt[i] for i in order],
    )
    dos = dos[order]
    prefix = tmp_path_factory.mktemp("pooled") / "pooled"
    values = np.where(dos < 0, np.nan, dos.astype(np.float32)).T  # samples x variants
    # count_A1=True: values count allele_1 (.bim column 5), which PLINK 2 reads as ALT.
    to_bed(
        f"{prefix}.bed",
        values,
        properties={
            "chromosome": variants.chrom,
            "sid": variants.id,
            "bp_position": np.asarray(variants.pos),
            "allele_1": variants.alt,
            "allele_2": variants.ref,
        },
        count_A1=True,
    )
    return prefix, dos, variants


def _run_plink2(plink2: Path, prefix: Path, out: Path, *flags: str) -> None:
    cmd = [str(plink2), "--bfile", str(prefix), *flags, "--threads", "1", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def _site_counts(dos: np.ndarray) -> np.ndarray:
    """Split the samples into three unequal sites and combine their local counts."""
    cuts = [0, 170, 390, N_SAMPLES]
    sites = [genotype_counts(dos[:, a:b]) for a, b in itertools.pairwise(cuts)]
    return sum_site_counts(sites)


def _compare_tables(ours: Path, theirs: Path, float_cols: set[str]) -> None:
    mine = ours.read_text().splitlines()
    ref = theirs.read_text().splitlines()
    assert mine[0] == ref[0], "header differs"
    assert len(mine) == len(ref)
    header = ref[0].split("\t")
    worst = 0.0
    for line_no, (a, b) in enumerate(zip(mine[1:], ref[1:], strict=True), start=2):
        fa, fb = a.split("\t"), b.split("\t")
        assert len(fa) == len(fb) == len(header), f"line {line_no}: column count"
        for col, x, y in zip(header, fa, fb, strict=True):
            if col not in float_cols or x == y:
                assert x == y, f"line {line_no} column {col}: ours {x!r}, plink2 {y!r}"
                continue
            xv, yv = float(x), float(y)
            rel = abs(xv - yv) / abs(yv)
            worst = max(worst, rel)
            assert rel <= REL_TOL, f"line {line_no} column {col}: ours {x}, plink2 {y}"
    assert worst <= REL_TOL


def test_freq_missing_geno_counts__match_plink2_on_pooled_counts(
    plink2: Path, pooled: tuple[Path, np.ndarray, VariantColumns], tmp_path: Path
) -> None:
    prefix, dos, variants = pooled
    _run_plink2(plink2, prefix, tmp_path / "plink2", "--freq", "--missing", "--geno-counts")
    counts = _site_counts(dos)
    write_afreq(tmp_path / "ours.afreq", variants, allele_frequencies(counts))
    write_vmiss(tmp_path / "ours.vmiss", variants, variant_missingness(counts))
    write_gcount(tmp_path / "ours.gcount", variants, genotype_count_table(counts))
    _compare_tables(tmp_path / "ours.afreq", tmp_path / "plink2.afreq", {"ALT_FREQS"})
    _compare_tables(tmp_path / "ours.vmiss", tmp_path / "plink2.vmiss", {"F_MISS"})
    _compare_tables(tmp_path / "ours.gcount", tmp_path / "plink2.gcount", set())


@pytest.mark.parametrize("midp", [False, True], ids=["p", "midp"])
def test_hardy__matches_plink2_on_pooled_counts(
    plink2: Path, pooled: tuple[Path, np.ndarray, VariantColumns], tmp_path: Path, midp: bool
) -> None:
    prefix, dos, variants = pooled
    flags = ["--hardy", "midp"] if midp else ["--hardy"]
    _run_plink2(plink2, prefix, tmp_path / "plink2", *flags)
    write_hardy(tmp_path / "ours.hardy", variants, hardy(_site_counts(dos), midp=midp))
    p_col = "MIDP" if midp else "P"
    _compare_tables(
        tmp_path / "ours.hardy", tmp_path / "plink2.hardy", {"O(HET_A1)", "E(HET_A1)", p_col}
    )
