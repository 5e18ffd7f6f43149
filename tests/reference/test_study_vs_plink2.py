"""A federated study on 3 synthetic sites equals plink2 on the pooled cohort.

The study runs on Flower's simulation engine (the same ServerApp and
ClientApp as in deployment); plink2 runs on ``pooled/``. Counts must be
equal, frequencies and p-values within plink2's printed precision (relative
error <= 1e-5), headers and column order identical.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import bed_reader
import numpy as np
import pytest

from genofed.common.study import Study, study_from_mapping
from genofed.coordinator.runner import run_study
from genofed.simulation import run_simulated_study
from genofed.site_agent.sitedir import init_site
from genofed.synth import SynthSummary, write_cohorts
from tests.harness import InProcessTransport

TABLES = {
    "freq.afreq": "afreq",
    "hardy.hardy": "hardy",
    "missing.vmiss": "vmiss",
    "geno.gcount": "gcount",
}
FLOAT_COLUMNS = {"ALT_FREQS", "O(HET_A1)", "E(HET_A1)", "P", "MIDP", "F_MISS"}


def _study(midp: bool = False) -> Study:
    kinds = [
        {"kind": "freq"},
        {"kind": "missing"},
        {"kind": "gcount"},
        {"kind": "hardy", "midp": midp},
    ]
    return study_from_mapping({"study": {"name": "ref"}, "analysis": kinds}, path=Path("<test>"))


def _read(path: Path) -> tuple[list[str], list[list[str]]]:
    lines = path.read_text().splitlines()
    return lines[0].split("\t"), [line.split("\t") for line in lines[1:]]


def assert_tables_match(ours: Path, theirs: Path) -> None:
    header, rows = _read(ours)
    ref_header, ref_rows = _read(theirs)
    assert header == ref_header
    assert len(rows) == len(ref_rows)
    for col, name in enumerate(header):
        got = [r[col] for r in rows]
        want = [r[col] for r in ref_rows]
        if name in FLOAT_COLUMNS:
            np.testing.assert_allclose(
                np.array(got, dtype=float),
                np.array(want, dtype=float),
                rtol=1e-5,
                atol=0,
                err_msg=name,
            )
        else:
            assert got == want, name


def _plink2(plink2: Path, bfile: Path, out: Path, *extra: str) -> Path:
    subprocess.run(
        [
            str(plink2),
            "--bfile",
            str(bfile),
            "--freq",
            "--missing",
            "--geno-counts",
            *extra,
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
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    # A higher missing rate than the demo so that many variants have missing calls.
    return write_cohorts(
        tmp_path_factory.mktemp("ref") / "cohorts",
        sites=3,
        samples=900,
        variants=1500,
        seed=11,
        missing_rate=0.03,
    )


@pytest.fixture(scope="module")
def plink2_pooled(
    cohort: SynthSummary, plink2: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return _plink2(
        plink2, cohort.pooled_prefix, tmp_path_factory.mktemp("p2") / "pooled", "--hardy"
    )


def test_simulation_study__equals_plink2_on_pooled(
    cohort: SynthSummary, plink2_pooled: Path, tmp_path: Path
) -> None:
    outcome = run_simulated_study(_study(), list(cohort.sites), tmp_path / "results")
    for ours, ext in TABLES.items():
        assert_tables_match(outcome.out / ours, plink2_pooled.with_suffix("." + ext))
    _, rows = _read(outcome.out / "missing.vmiss")
    assert (
        sum(int(r[2]) > 0 for r in rows) > len(rows) // 2
    )  # variants with missing calls are covered


def test_hardy_midp__equals_plink2_midp(cohort: SynthSummary, plink2: Path, tmp_path: Path) -> None:
    ref = _plink2(plink2, cohort.pooled_prefix, tmp_path / "p2", "--hardy", "midp")
    outcome = run_study(
        _study(midp=True), InProcessTransport(cohort.sites), tmp_path / "r", engine="in-process"
    )
    assert_tables_match(outcome.out / "hardy.hardy", ref.with_suffix(".hardy"))


def _swap_alleles(site: Path, out: Path) -> Path:
    """A copy of a site whose .bim lists the alleles the other way round, genotypes recoded."""
    src = site / "data" / "genotypes"
    (out / "data").mkdir(parents=True)
    with bed_reader.open_bed(src.with_suffix(".bed"), count_A1=True) as bed:
        g = bed.read(dtype="int8")
        props = {
            k: getattr(bed, k) for k in ("fid", "iid", "sex", "chromosome", "sid", "bp_position")
        }
        a1, a2 = bed.allele_1, bed.allele_2
    swapped = np.where(g < 0, g, 2 - g).astype(np.int8)
    dst = out / "data" / "genotypes.bed"
    bed_reader.to_bed(
        dst, swapped, properties={**props, "allele_1": a2, "allele_2": a1}, count_A1=True
    )
    return init_site(out, name=site.name, genotypes=dst, demo_policy=True).config.directory


def test_swapped_alleles_at_one_site__aligned_and_equal_to_plink2(
    cohort: SynthSummary, plink2_pooled: Path, tmp_path: Path
) -> None:
    swapped = _swap_alleles(cohort.sites[1], tmp_path / cohort.sites[1].name)
    sites = [cohort.sites[0], swapped, cohort.sites[2]]
    outcome = run_study(_study(), InProcessTransport(sites), tmp_path / "r", engine="in-process")
    report = {r.site: r for r in outcome.harmonization.reports}
    assert report["site-b"].n_swapped == len(outcome.harmonization.variants)
    assert report["site-a"].n_swapped == 0
    for ours, ext in TABLES.items():
        assert_tables_match(outcome.out / ours, plink2_pooled.with_suffix("." + ext))


def test_samples_with__equals_plink2_require_pheno_and_covar(
    cohort: SynthSummary, plink2: Path, tmp_path: Path
) -> None:
    """Counts over the samples with a phenotype and covariates (e.g. a GWAS's samples)."""
    pooled = cohort.pooled_prefix
    ref = _plink2(
        plink2,
        pooled,
        tmp_path / "p2",
        "--hardy",
        "--pheno",
        str(pooled.parent / "pheno.tsv"),
        "--require-pheno",
        "QPHENO",
        "--covar",
        str(pooled.parent / "covar.tsv"),
        "--require-covar",
        "AGE",
    )
    kinds = [{"kind": k, "samples_with": ["QPHENO", "AGE"]} for k in ("freq", "missing", "gcount")]
    kinds.append({"kind": "hardy", "samples_with": ["QPHENO", "AGE"]})
    study = study_from_mapping({"study": {"name": "ref"}, "analysis": kinds}, path=Path("<t>"))
    outcome = run_study(study, InProcessTransport(cohort.sites), tmp_path / "r", engine="t")
    for ours, ext in TABLES.items():
        assert_tables_match(outcome.out / ours, ref.with_suffix("." + ext))
    _, ours_rows = _read(outcome.out / "geno.gcount")
    _, all_rows = _read(
        run_study(_study(), InProcessTransport(cohort.sites), tmp_path / "a", engine="t").out
        / "geno.gcount"
    )
    assert ours_rows != all_rows  # some samples lack QPHENO: fewer were counted
