"""A study with ``[qc]`` on 3 synthetic sites equals plink2 with the same filters.

plink2 runs on the pooled cohort (3 % missing calls) with ``--geno --hwe
--maf --mac``: the kept variants (``qc.snplist``) equal its
``--write-snplist``, the funnel its log, a linear and a logistic ``glm``
after QC its ``--glm`` with the filters, and the count tables list the rows
plink2 lists when the filters are given with ``--freq --missing
--geno-counts --hardy`` (all variants after ``--extract``/``--exclude``;
``.hardy`` after ``--geno`` too).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from genofed.common.study import study_from_mapping
from genofed.coordinator.runner import StudyOutcome, run_study
from genofed.synth import SynthSummary, write_cohorts
from tests.harness import InProcessTransport
from tests.reference.test_glm_vs_plink2 import assert_linear_matches, assert_logistic_matches
from tests.reference.test_study_vs_plink2 import TABLES, assert_tables_match

# mac 40 of ~1,150 alleles binds above maf 0.02, so every rule removes variants
QC = {"maf": 0.02, "mac": 40, "geno": 0.04, "hwe": 1e-3, "hwe_midp": True}
FLAGS = ["--maf", "0.02", "--mac", "40", "--geno", "0.04", "--hwe", "1e-3", "midp"]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    return write_cohorts(
        tmp_path_factory.mktemp("qc") / "cohorts",
        sites=3,
        samples=600,
        variants=800,
        seed=11,
        missing_rate=0.03,
    )


def _plink2(plink2: Path, cohort: SynthSummary, out: Path, *flags: str) -> str:
    pooled = cohort.pooled
    done = subprocess.run(
        [
            str(plink2),
            "--bfile",
            str(cohort.pooled_prefix),
            "--pheno",
            str(pooled / "pheno.tsv"),
            "--pheno-name",
            "QPHENO,DISEASE",
            "--covar",
            str(pooled / "covar.tsv"),
            *flags,
            "--threads",
            "1",
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout


@pytest.fixture(scope="module")
def federated(cohort: SynthSummary, tmp_path_factory: pytest.TempPathFactory) -> StudyOutcome:
    analyses = [
        {"kind": "freq"},
        {"kind": "missing"},
        {"kind": "gcount"},
        {"kind": "hardy"},
        {"kind": "glm", "id": "gwas_q", "phenotype": "QPHENO", "covariates": ["AGE", "SEX"]},
        {"kind": "glm", "id": "gwas_d", "phenotype": "DISEASE", "covariates": ["AGE", "SEX"]},
    ]
    study = study_from_mapping(
        {"study": {"name": "qc"}, "qc": QC, "analysis": analyses}, path=Path("<t>")
    )
    out = tmp_path_factory.mktemp("fed") / "results"
    return run_study(study, InProcessTransport(cohort.sites), out, engine="in-process")


def test_qc_snplist_and_funnel__equal_plink2(
    cohort: SynthSummary, federated: StudyOutcome, plink2: Path, tmp_path: Path
) -> None:
    log = _plink2(plink2, cohort, tmp_path / "p2", *FLAGS, "--write-snplist")
    theirs = (tmp_path / "p2.snplist").read_text().split()
    ours = (federated.out / "qc.snplist").read_text().split()
    assert ours == theirs
    qc = federated.summary["qc"]
    assert isinstance(qc, dict)
    removed = {row["rule"]: row["removed"] for row in qc["funnel"]}
    assert removed["geno"] == int(re.search(r"--geno: (\d+) variants", log)[1])  # type: ignore[index]
    assert removed["hwe"] == int(re.search(r"--hwe[^:]*: (\d+) variants", log)[1])  # type: ignore[index]
    freq = int(re.search(r"(\d+) variants? removed due to allele freq", log)[1])  # type: ignore[index]
    assert removed["maf"] + removed["mac"] == freq
    assert all(removed[r] > 0 for r in ("geno", "hwe", "maf", "mac"))
    assert (
        qc["variants_left"]
        == len(theirs)
        == int(
            re.search(r"(\d+) variants remaining after main filters", log)[1]  # type: ignore[index]
        )
    )


def test_glm_after_qc__equals_plink2_glm_with_the_filters(
    cohort: SynthSummary, federated: StudyOutcome, plink2: Path, tmp_path: Path
) -> None:
    _plink2(plink2, cohort, tmp_path / "p2", *FLAGS, "--glm")
    assert_linear_matches(
        federated.out / "gwas.QPHENO.glm.linear", tmp_path / "p2.QPHENO.glm.linear"
    )
    assert_logistic_matches(
        federated.out / "gwas.DISEASE.glm.logistic.hybrid",
        tmp_path / "p2.DISEASE.glm.logistic.hybrid",
    )


def test_count_tables_with_qc__list_plink2s_rows(
    cohort: SynthSummary, federated: StudyOutcome, plink2: Path, tmp_path: Path
) -> None:
    _plink2(
        plink2, cohort, tmp_path / "p2", *FLAGS, "--freq", "--missing", "--geno-counts", "--hardy"
    )
    for ours, ext in TABLES.items():
        assert_tables_match(federated.out / ours, (tmp_path / "p2").with_suffix("." + ext))
    n_all = len((federated.out / "freq.afreq").read_text().splitlines())
    n_hardy = len((federated.out / "hardy.hardy").read_text().splitlines())
    assert n_hardy < n_all  # --hardy comes after --geno in plink2


def test_extract_exclude__equal_plink2(cohort: SynthSummary, plink2: Path, tmp_path: Path) -> None:
    bim = cohort.pooled_prefix.with_suffix(".bim").read_text().splitlines()
    ids = [line.split("\t")[1] for line in bim]
    extract, exclude = ids[100:500], ids[150:170]
    (tmp_path / "extract.txt").write_text("\n".join(extract) + "\n")
    (tmp_path / "exclude.txt").write_text("\n".join(exclude) + "\n")
    qc = {"maf": 0.1, "extract": extract, "exclude": exclude}
    study = study_from_mapping(
        {"study": {"name": "qc"}, "qc": qc, "analysis": [{"kind": "freq"}, {"kind": "hardy"}]},
        path=Path("<t>"),
    )
    outcome = run_study(study, InProcessTransport(cohort.sites), tmp_path / "r", engine="t")
    _plink2(
        plink2,
        cohort,
        tmp_path / "p2",
        "--maf",
        "0.1",
        "--extract",
        str(tmp_path / "extract.txt"),
        "--exclude",
        str(tmp_path / "exclude.txt"),
        "--freq",
        "--hardy",
        "--write-snplist",
    )
    assert (outcome.out / "qc.snplist").read_text() == (tmp_path / "p2.snplist").read_text()
    assert_tables_match(outcome.out / "freq.afreq", tmp_path / "p2.afreq")
    assert_tables_match(outcome.out / "hardy.hardy", tmp_path / "p2.hardy")
    funnel = outcome.summary["qc"]["funnel"]  # type: ignore[index]
    assert [r["rule"] for r in funnel] == ["extract", "exclude", "maf"]
    assert [r["removed"] for r in funnel][:2] == [len(ids) - 400, 20]


def test_hwe_controls__tests_hwe_on_the_controls_as_plink2_keep_controls(
    cohort: SynthSummary, plink2: Path, tmp_path: Path
) -> None:
    """hwe_controls = "DISEASE": HWE on DISEASE == 1, geno and maf on every sample."""
    qc = {"geno": 0.04, "maf": 0.02, "hwe": 1e-2, "hwe_controls": "DISEASE"}
    study = study_from_mapping(
        {"study": {"name": "qc-controls"}, "qc": qc, "analysis": [{"kind": "freq"}]},
        path=Path("<t>"),
    )
    outcome = run_study(study, InProcessTransport(cohort.sites), tmp_path / "r", engine="t")
    ours = (outcome.out / "qc.snplist").read_text().split()
    header, *rows = (cohort.pooled / "pheno.tsv").read_text().splitlines()
    at = header.split("\t").index("DISEASE")
    controls = [r.split("\t")[:2] for r in rows if r.split("\t")[at] == "1"]
    (tmp_path / "controls.txt").write_text("\n".join("\t".join(c) for c in controls) + "\n")
    _plink2(plink2, cohort, tmp_path / "all", "--geno", "0.04", "--maf", "0.02", "--write-snplist")
    _plink2(
        plink2,
        cohort,
        tmp_path / "ctl",
        "--keep",
        str(tmp_path / "controls.txt"),
        "--hwe",
        "1e-2",
        "--write-snplist",
    )
    _plink2(plink2, cohort, tmp_path / "every", "--hwe", "1e-2", "--write-snplist")
    kept_all = set((tmp_path / "all.snplist").read_text().split())
    hwe_controls = set((tmp_path / "ctl.snplist").read_text().split())
    hwe_every = set((tmp_path / "every.snplist").read_text().split())
    assert set(ours) == kept_all & hwe_controls
    assert kept_all & hwe_controls != kept_all & hwe_every  # the controls' test differs
    removed = {r["rule"]: r["removed"] for r in outcome.summary["qc"]["funnel"]}  # type: ignore[index]
    assert removed["hwe"] > 0
