"""Sites holding PLINK 2 filesets (.pgen/.pvar/.psam) equal plink2 on the pooled .pgen.

The synthetic cohort is written with ``genotype_format="pgen"`` (every
site's and the pooled fileset as pgen, hard calls, 3 % missing); plink2 runs
with ``--pfile`` on ``pooled/pooled``. Tolerances are those of the PLINK 1
comparisons (:mod:`tests.reference.test_study_vs_plink2` for the counts,
:mod:`tests.reference.test_glm_vs_plink2` for glm): counts exactly, floats to
plink2's printed precision, logistic as documented there.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pgenlib
import pytest

from genofed.common.study import Study, study_from_mapping
from genofed.coordinator.runner import StudyOutcome, run_study
from genofed.site_agent.io.genotypes import detect_format
from genofed.site_agent.io.pgen import read_pgen_header
from genofed.site_agent.sitedir import init_site, load_site
from genofed.synth import SynthSummary, write_cohorts
from tests.harness import InProcessTransport
from tests.reference.test_glm_vs_plink2 import assert_linear_matches, assert_logistic_matches
from tests.reference.test_study_vs_plink2 import TABLES, assert_tables_match


def _study() -> Study:
    analyses = [
        {"kind": "freq"},
        {"kind": "missing"},
        {"kind": "gcount"},
        {"kind": "hardy"},
        {"kind": "glm", "id": "gwas_q", "phenotype": "QPHENO", "covariates": ["AGE", "SEX"]},
        {"kind": "glm", "id": "gwas_d", "phenotype": "DISEASE", "covariates": ["AGE", "SEX"]},
    ]
    return study_from_mapping({"study": {"name": "pgen"}, "analysis": analyses}, path=Path("<t>"))


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    return write_cohorts(
        tmp_path_factory.mktemp("pgen") / "cohorts",
        sites=3,
        samples=600,
        variants=500,
        seed=11,
        missing_rate=0.03,
        genotype_format="pgen",
    )


def run_plink2_on_pooled(plink2: Path, inputs: list[str], pooled: Path, out: Path) -> Path:
    """plink2 ``inputs`` (e.g. ``--pfile X``) with the count tables and glm of :func:`_study`."""
    subprocess.run(
        [
            str(plink2),
            *inputs,
            "--freq",
            "--missing",
            "--geno-counts",
            "--hardy",
            "--pheno",
            str(pooled / "pheno.tsv"),
            "--pheno-name",
            "QPHENO,DISEASE",
            "--covar",
            str(pooled / "covar.tsv"),
            "--glm",
            "--threads",
            "1",
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    return out


@pytest.fixture(scope="module")
def plink2_pooled(
    cohort: SynthSummary, plink2: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("p2") / "pooled"
    return run_plink2_on_pooled(plink2, ["--pfile", str(cohort.pooled_prefix)], cohort.pooled, out)


def _assert_equal_to_plink2(outcome: StudyOutcome, plink2_pooled: Path) -> None:
    for ours, ext in TABLES.items():
        assert_tables_match(outcome.out / ours, plink2_pooled.with_suffix("." + ext))
    assert_linear_matches(
        outcome.out / "gwas.QPHENO.glm.linear",
        plink2_pooled.with_name("pooled.QPHENO.glm.linear"),
    )
    assert_logistic_matches(
        outcome.out / "gwas.DISEASE.glm.logistic.hybrid",
        plink2_pooled.with_name("pooled.DISEASE.glm.logistic.hybrid"),
    )


def test_pgen_sites__counts_and_glm_equal_plink2_on_pooled_pgen(
    cohort: SynthSummary, plink2_pooled: Path, tmp_path: Path
) -> None:
    for site in cohort.sites:
        assert detect_format(load_site(site).genotypes)[0] == "pgen"
    outcome = run_study(_study(), InProcessTransport(cohort.sites), tmp_path / "r", engine="t")
    _assert_equal_to_plink2(outcome, plink2_pooled)


def test_one_site_as_bed__mixed_formats_equal_plink2(
    cohort: SynthSummary, plink2_pooled: Path, plink2: Path, tmp_path: Path
) -> None:
    """One site converted to a PLINK 1 fileset by plink2; the federation's results do not move."""
    site = cohort.sites[1]
    data = tmp_path / site.name / "data"
    data.mkdir(parents=True)
    subprocess.run(
        [
            str(plink2),
            "--pfile",
            str(site / "data" / "genotypes"),
            "--make-bed",
            "--out",
            str(data / "genotypes"),
        ],
        check=True,
        capture_output=True,
    )
    for table in ("pheno.tsv", "covar.tsv"):
        (data / table).write_bytes((site / "data" / table).read_bytes())
    as_bed = init_site(
        tmp_path / site.name,
        name=site.name,
        genotypes=data / "genotypes.bed",
        phenotypes=data / "pheno.tsv",
        covariates=data / "covar.tsv",
        demo_policy=True,
    ).config.directory
    sites = [cohort.sites[0], as_bed, cohort.sites[2]]
    assert [detect_format(load_site(s).genotypes)[0] for s in sites] == ["pgen", "bed", "pgen"]
    outcome = run_study(_study(), InProcessTransport(sites), tmp_path / "r", engine="t")
    _assert_equal_to_plink2(outcome, plink2_pooled)


def test_dosage_track_found_past_the_first_index_blocks_with_per_variant_flags(
    plink2: Path, tmp_path: Path
) -> None:
    """The .pgen index walk (types, lengths, non-REF flags per block) on a plink2-written file."""
    n, m = 20, 140_000  # three index blocks
    calls = np.random.default_rng(1).integers(0, 3, size=(m, n)).astype(np.float32)
    calls[-5:, 3] = 0.6  # dosages only in the last block
    src = tmp_path / "late"
    writer = pgenlib.PgenWriter(
        bytes(src.with_suffix(".pgen")), n, m, nonref_flags=False, dosage_present=True
    )
    writer.append_dosages_batch(calls)
    writer.close()
    rows = "".join(f"1\t{i + 1}\tv{i}\tA\tC\n" for i in range(m))
    src.with_suffix(".pvar").write_text("#CHROM\tPOS\tID\tREF\tALT\n" + rows)
    src.with_suffix(".psam").write_text("#IID\n" + "".join(f"p{i}\n" for i in range(n)))
    # REF swapped at every third variant: plink2 then stores a non-REF flag per variant
    (tmp_path / "ref.txt").write_text("".join(f"v{i}\tC\n" for i in range(0, m, 3)))
    flagged, erased = tmp_path / "flagged", tmp_path / "erased"
    for args in (
        [
            "--pfile",
            str(src),
            "--ref-allele",
            "force",
            str(tmp_path / "ref.txt"),
            "2",
            "1",
            "--make-pgen",
            "--out",
            str(flagged),
        ],
        ["--pfile", str(flagged), "--make-pgen", "erase-dosage", "--out", str(erased)],
    ):
        subprocess.run([str(plink2), *args], check=True, capture_output=True)
    header = read_pgen_header(flagged.with_suffix(".pgen"))
    assert header.n_variants == m and header.n_samples == n
    assert flagged.with_suffix(".pgen").read_bytes()[11] >> 6 == 3  # explicit per-variant flags
    assert header.has_dosages
    assert not read_pgen_header(erased.with_suffix(".pgen")).has_dosages
