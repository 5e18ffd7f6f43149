"""Sites whose VCF/BCF hold multi-allelic records equal plink2 on the same calls.

Three sites (the samples, phenotypes and covariates of a ``genofed synth``
cohort) hold one synthetic call set each, written by :func:`_write_calls`:
120 records, a third biallelic, a third with 2 ALTs (one of them ``*``, a
spanning deletion, on every sixth record) and a third with 3 ALTs (the third
ALT never called on every ninth record), 3 % missing calls, 2 % haploid calls
and 1 % half-calls (``./2``). Site 0 holds a bgzipped, tabix-indexed VCF,
site 1 a BCF, site 2 a plain VCF. The pooled VCF (every site's samples) is
split by ``bcftools norm -m-`` (the bcftools that pysam bundles: bcftools
itself is not installed) and plink2 reads the split file with
``--vcf-half-call m`` (GenoFed's half-call rule) in one run of the count
tables and both glms (:func:`~tests.reference.test_pgen_vs_plink2.
run_plink2_on_pooled`). GenoFed reads the unsplit files.

* freq, missing, gcount, hardy, linear and logistic glm equal plink2's, with
  the tolerances of the PLINK 1 comparisons;
* the freq table also equals ``plink2 --vcf X --freq`` on the unsplit pooled
  file, whose ``ALT_FREQS`` lists one frequency per ALT.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from genofed.coordinator.runner import StudyOutcome, run_study
from genofed.site_agent.io.vcf import VcfFile
from genofed.site_agent.sitedir import init_site, load_site
from genofed.synth import write_cohorts
from tests.harness import InProcessTransport
from tests.reference.test_pgen_vs_plink2 import (
    _assert_equal_to_plink2,
    _study,
    run_plink2_on_pooled,
)
from tests.reference.test_study_vs_plink2 import _read
from tests.unit.site_agent.test_vcf_reader import split_by_bcftools, vcf_forms

N_RECORDS = 120
HEADER = (
    "##fileformat=VCFv4.2\n##contig=<ID=1>\n##contig=<ID=2>\n"
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
)
BASES = ("A", "C", "G", "T")


def _records(rng: np.random.Generator) -> list[tuple[str, int, str, str, list[str], np.ndarray]]:
    """``(chrom, pos, id, ref, alts, allele frequencies)`` for each record, in file order."""
    out = []
    for k in range(N_RECORDS):
        n_alts = 1 + k % 3
        ref = BASES[k % 4]
        alts = [b for b in BASES if b != ref][:n_alts]
        if k % 6 == 4:
            ref, alts = ref + "T", [ref, "*"]  # a deletion and a spanning deletion
        freqs = rng.dirichlet([4.0] + [1.0] * n_alts)
        if k % 9 == 8:  # 3 ALTs, the third never called
            freqs[-1] = 0.0
            freqs /= freqs.sum()
        chrom, pos = ("1", 1000 + 37 * k) if k < N_RECORDS // 2 else ("2", 500 + 53 * k)
        vid = f"rs{k}" if k % 5 else "."
        out.append((chrom, pos, vid, ref, alts, freqs))
    return out


def _call(rng: np.random.Generator, freqs: np.ndarray) -> str:
    a, b = rng.choice(len(freqs), size=2, p=freqs)
    u = rng.random()
    if u < 0.03:
        return "./." if u < 0.015 else "."
    if u < 0.05:
        return str(a)  # haploid: counts as homozygous, as plink2 codes it
    if u < 0.06:
        return f"./{a}" if u < 0.055 else f"{a}/."  # a half-call: missing
    return f"{a}{'|' if rng.random() < 0.5 else '/'}{b}"


def _write_calls(path: Path, samples: list[str], rng: np.random.Generator, records: list) -> Path:
    lines = [HEADER + "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO"])]
    lines[0] += "\tFORMAT\t" + "\t".join(samples)
    for chrom, pos, vid, ref, alts, freqs in records:
        calls = [_call(rng, freqs) for _ in samples]
        fixed = [chrom, str(pos), vid, ref, ",".join(alts), ".", "PASS", ".", "GT"]
        lines.append("\t".join(fixed + calls))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def federation(
    plink2: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[tuple[Path, ...], Path, Path]:
    """``(site directories, plink2's --out prefix on the split file, the unsplit pooled VCF)``."""
    root = tmp_path_factory.mktemp("multi")
    cohort = write_cohorts(
        root / "cohorts", sites=3, samples=600, variants=20, seed=13, genotype_format="vcf"
    )
    rng = np.random.default_rng(20)
    records = _records(rng)
    sites, pooled_samples, pooled_rows = [], [], []
    for k, site in enumerate(cohort.sites):
        config = load_site(site)
        with VcfFile(config.genotypes) as synth_calls:
            samples = synth_calls.samples.iid.tolist()
        data = root / f"site{k}"
        data.mkdir()
        plain = _write_calls(data / "calls.vcf", samples, rng, records)
        forms = vcf_forms(plain)
        genotypes = (forms["vcf.gz"], forms["bcf"], plain)[k]
        summary = init_site(
            data / "site",
            name=config.name,
            genotypes=genotypes,
            phenotypes=config.phenotypes,
            covariates=config.covariates,
            demo_policy=True,
        )
        assert (summary.n_split_records, summary.n_split_variants) == (80, 200)
        sites.append(summary.config.directory)
        pooled_samples += samples
        pooled_rows.append([line.split("\t")[9:] for line in plain.read_text().splitlines()[5:]])
    pooled = root / "pooled.vcf"
    header = plain.read_text().splitlines()[:5]
    header[4] = "\t".join(header[4].split("\t")[:9] + pooled_samples)
    body = [
        "\t".join(line.split("\t")[:9] + [c for rows in pooled_rows for c in rows[i]])
        for i, line in enumerate(plain.read_text().splitlines()[5:])
    ]
    pooled.write_text("\n".join(header + body) + "\n")
    (root / "split").mkdir()
    split = split_by_bcftools(pooled, root / "split" / "pooled.vcf")
    out = root / "p2" / "pooled"
    out.parent.mkdir()
    inputs = ["--vcf", str(split), "--double-id", "--vcf-half-call", "m"]
    run_plink2_on_pooled(plink2, inputs, cohort.pooled, out)
    return tuple(sites), out, pooled


@pytest.fixture(scope="module")
def outcome(
    federation: tuple[tuple[Path, ...], Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> StudyOutcome:
    sites = federation[0]
    return run_study(_study(), InProcessTransport(sites), tmp_path_factory.mktemp("r"), engine="t")


def test_multi_allelic_sites__counts_and_glm_equal_plink2_on_the_bcftools_split_file(
    federation: tuple[tuple[Path, ...], Path, Path], outcome: StudyOutcome
) -> None:
    _assert_equal_to_plink2(outcome, federation[1])
    header, rows = _read(outcome.out / "freq.afreq")
    assert len(rows) == 40 + 40 * 2 + 40 * 3  # 200 split variants of 80 records, 40 biallelic
    alt = header.index("ALT")
    assert "*" in {r[alt] for r in rows}


def test_multi_allelic_freq__equals_plink2s_per_alt_freqs_on_the_unsplit_file(
    federation: tuple[tuple[Path, ...], Path, Path],
    outcome: StudyOutcome,
    plink2: Path,
    tmp_path: Path,
) -> None:
    pooled = federation[2]
    subprocess.run(
        [
            str(plink2),
            "--vcf",
            str(pooled),
            "--vcf-half-call",
            "m",
            "--freq",
            "--threads",
            "1",
            "--out",
            str(tmp_path / "unsplit"),
        ],
        check=True,
        capture_output=True,
    )
    header, rows = _read(tmp_path / "unsplit.afreq")
    col = {name: j for j, name in enumerate(header)}
    expanded = []
    for r in rows:
        alts, freqs = r[col["ALT"]].split(","), r[col["ALT_FREQS"]].split(",")
        assert len(alts) == len(freqs)
        for a, f in zip(alts, freqs, strict=True):
            expanded.append((r[col["#CHROM"]], r[col["ID"]], r[col["REF"]], a, f, r[col["OBS_CT"]]))
    ours_header, ours = _read(outcome.out / "freq.afreq")
    assert ours_header == header
    assert [(*r[:4], r[5]) for r in ours] == [(*e[:4], e[5]) for e in expanded]
    got = np.array([float(r[col["ALT_FREQS"]]) for r in ours])
    np.testing.assert_allclose(got, np.array([float(e[4]) for e in expanded]), rtol=1e-5, atol=0)
    never_called = [e for e in expanded if e[4] == "0"]
    assert len(never_called) >= N_RECORDS // 9  # the third ALT of every ninth record, at least


def test_multi_allelic_pgen_sites__plink2s_conversion_of_the_vcfs_equals_plink2(
    federation: tuple[tuple[Path, ...], Path, Path], plink2: Path, tmp_path: Path
) -> None:
    """Sites 0 and 2 on the multi-allelic .pgen plink2 makes of their VCF, site 1 on its BCF."""
    sites = list(federation[0])
    for k in (0, 2):
        config = load_site(sites[k])
        data = tmp_path / f"pgen{k}"
        data.mkdir()
        subprocess.run(
            [
                str(plink2),
                "--vcf",
                str(config.directory.parent / "calls.vcf"),
                "--vcf-half-call",
                "m",
                "--make-pgen",
                "--threads",
                "1",
                "--out",
                str(data / "calls"),
            ],
            check=True,
            capture_output=True,
        )
        summary = init_site(
            data / "site",
            name=config.name,
            genotypes=data / "calls.pgen",
            phenotypes=config.phenotypes,
            covariates=config.covariates,
            demo_policy=True,
        )
        assert summary.genotype_format == "PLINK 2 .pgen"
        assert (summary.n_split_records, summary.n_split_variants, summary.max_alts) == (80, 200, 3)
        sites[k] = summary.config.directory
    outcome = run_study(_study(), InProcessTransport(sites), tmp_path / "r", engine="t")
    _assert_equal_to_plink2(outcome, federation[1])
