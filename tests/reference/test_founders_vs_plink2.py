"""Sample files that list parents: founders-only tables equal plink2, as does ``nonfounders``.

plink2 computes ``--freq``, ``--hardy``, ``--maf``, ``--mac`` and ``--hwe``
on founders only (a sample is a founder when its ``.fam`` names no father
and no mother, whether or not they are in the file) and ``--missing``,
``--geno-counts`` and ``--geno`` on every sample; ``--nonfounders`` counts
every sample everywhere. One in eight samples of each synthetic site is made
a nonfounder (a parent named, at one site a parent absent from the file),
in the sites' and the pooled ``.fam`` alike; the federated tables, with and
without ``[study] nonfounders = true``, must equal plink2's with and without
``--nonfounders``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from genofed.common.errors import InputError, SiteFailure
from genofed.common.study import study_from_mapping
from genofed.coordinator.runner import StudyOutcome, run_study
from genofed.synth import SynthSummary, write_cohorts
from tests.harness import InProcessTransport
from tests.reference.test_glm_vs_plink2 import assert_linear_matches
from tests.reference.test_pca_vs_plink2 import assert_pca_matches
from tests.reference.test_study_vs_plink2 import TABLES, assert_tables_match

QC = {"maf": 0.05, "mac": 30, "geno": 0.04, "hwe": 1e-3}
FLAGS = ["--maf", "0.05", "--mac", "30", "--geno", "0.04", "--hwe", "1e-3"]
COUNTS = [{"kind": "freq"}, {"kind": "missing"}, {"kind": "gcount"}, {"kind": "hardy"}]


def _with_parents(fam: Path, parents: dict[str, tuple[str, str]]) -> None:
    lines = []
    for line in fam.read_text().splitlines():
        f = line.split()
        if f[1] in parents:
            f[2], f[3] = parents[f[1]]
        lines.append("\t".join(f))
    fam.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    summary = write_cohorts(
        tmp_path_factory.mktemp("founders") / "c",
        sites=3,
        samples=600,
        variants=300,
        seed=13,
        missing_rate=0.02,
    )
    parents: dict[str, tuple[str, str]] = {}
    for k, site in enumerate(summary.sites):
        fam = next((site / "data").glob("*.fam"))
        iids = [line.split()[1] for line in fam.read_text().splitlines()]
        for i in range(0, len(iids) - 1, 8):
            if k == 1:  # a father who is not in the file still makes a nonfounder
                parents[iids[i]] = ("absent-father", "0")
            else:
                parents[iids[i]] = (iids[i + 1], "0" if i % 16 else iids[i - 1])
        _with_parents(fam, parents)
    _with_parents(summary.pooled_prefix.with_suffix(".fam"), parents)
    return summary


def _plink2(plink2: Path, cohort: SynthSummary | Path, out: Path, *flags: str) -> None:
    """plink2 on the pooled fileset (or on the fileset prefix given)."""
    bfile = cohort if isinstance(cohort, Path) else cohort.pooled_prefix
    subprocess.run(
        [
            str(plink2),
            "--bfile",
            str(bfile),
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


def _run(cohort: SynthSummary, out: Path, *, nonfounders: bool, **tables: object) -> StudyOutcome:
    head = {"name": "founders", **({"nonfounders": True} if nonfounders else {})}
    study = study_from_mapping(
        {"study": head, "analysis": COUNTS, **tables}, path=Path("<founders>")
    )
    return run_study(study, InProcessTransport(cohort.sites), out, engine="in-process")


@pytest.mark.parametrize("nonfounders", [False, True], ids=["founders only", "--nonfounders"])
def test_count_tables_and_qc__equal_plink2(
    cohort: SynthSummary, plink2: Path, tmp_path: Path, nonfounders: bool
) -> None:
    extra = ["--nonfounders"] if nonfounders else []
    ours = _run(cohort, tmp_path / "r", nonfounders=nonfounders, qc=QC)
    _plink2(plink2, cohort, tmp_path / "p2", *FLAGS, *extra, "--freq", "--missing")
    _plink2(plink2, cohort, tmp_path / "p3", *FLAGS, *extra, "--geno-counts", "--hardy")
    _plink2(plink2, cohort, tmp_path / "p4", *FLAGS, *extra, "--write-snplist")
    for table, ext in TABLES.items():
        theirs = tmp_path / ("p2" if ext in ("afreq", "vmiss") else "p3")
        assert_tables_match(ours.out / table, theirs.with_suffix("." + ext))
    assert (ours.out / "qc.snplist").read_text() == (tmp_path / "p4.snplist").read_text()
    if nonfounders:
        assert "founders_only" not in ours.summary
    else:
        note = ours.summary["founders_only"]
        assert isinstance(note, dict) and note["sites"] == ["site-a", "site-b", "site-c"]
        # the founders' tables are not every sample's: the comparison tells them apart
        _plink2(plink2, cohort, tmp_path / "all", "--nonfounders", "--freq")
        assert (ours.out / "freq.afreq").read_text() != (tmp_path / "all.afreq").read_text()


def test_secure_and_dp_modes__say_that_founders_tables_are_plain_only(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    study = study_from_mapping(
        {
            "study": {"name": "f"},
            "privacy": {"mode": "dp", "epsilon": 1.0, "delta": 1e-6},
            "analysis": [{"kind": "freq"}],
        },
        path=Path("<founders>"),
    )
    with pytest.raises(SiteFailure) as info:
        run_study(study, InProcessTransport(cohort.sites), tmp_path / "r", engine="t")
    assert "lists parents" in str(info.value) and "nonfounders = true" in str(info.value)
    assert not (tmp_path / "r").exists()


def test_glm__regresses_every_sample_and_picks_a1_from_the_founders_as_plink2(
    cohort: SynthSummary, plink2: Path, tmp_path: Path
) -> None:
    glm = {"kind": "glm", "id": "gwas", "phenotype": "QPHENO", "covariates": ["AGE", "SEX"]}
    study = study_from_mapping({"study": {"name": "g"}, "analysis": [glm]}, path=Path("<f>"))
    ours = run_study(study, InProcessTransport(cohort.sites), tmp_path / "r", engine="t")
    pooled = cohort.pooled
    _plink2(
        plink2,
        cohort,
        tmp_path / "p2",
        "--pheno",
        str(pooled / "pheno.tsv"),
        "--pheno-name",
        "QPHENO",
        "--covar",
        str(pooled / "covar.tsv"),
        "--covar-name",
        "AGE,SEX",
        "--glm",
    )
    assert_linear_matches(ours.out / "gwas.QPHENO.glm.linear", tmp_path / "p2.QPHENO.glm.linear")


@pytest.mark.parametrize("nonfounders", [False, True], ids=["founders only", "--nonfounders"])
def test_het_sd__uses_the_founders_frequencies_as_plink2_het(
    cohort: SynthSummary, plink2: Path, tmp_path: Path, nonfounders: bool
) -> None:
    sd = 1.5  # low, so that every synthetic site has outliers
    head = {"name": "het", **({"nonfounders": True} if nonfounders else {})}
    study = study_from_mapping(
        {"study": head, "sample_qc": {"het_sd": sd}, "analysis": [{"kind": "freq"}]},
        path=Path("<founders>"),
    )
    outcome = run_study(study, InProcessTransport(cohort.sites), tmp_path / "r", engine="t")
    by_site = {s["site"]: s for s in outcome.summary["cohort"]["sites"]}  # type: ignore[index]
    for site in cohort.sites:
        out = tmp_path / site.name
        bfile = next((site / "data").glob("*.bed")).with_suffix("")
        extra = ["--nonfounders"] if nonfounders else []
        _plink2(plink2, bfile, out, "--het", *extra)
        rows = [line.split("\t") for line in out.with_suffix(".het").read_text().splitlines()[1:]]
        f = np.array([float(r[-1]) for r in rows])
        outliers = int((np.abs(f - f.mean()) > sd * f.std(ddof=1)).sum())
        assert outliers > 0
        assert by_site[site.name]["removed"] == {"het": outliers}


@pytest.mark.parametrize("nonfounders", [False, True], ids=["founders only", "--nonfounders"])
def test_pca__standardizes_with_the_founders_frequencies_as_plink2(
    cohort: SynthSummary, plink2: Path, tmp_path: Path, nonfounders: bool
) -> None:
    head = {"name": "pca", **({"nonfounders": True} if nonfounders else {})}
    pca = {"kind": "pca", "n_pcs": 3, "maf": 0.01}
    study = study_from_mapping({"study": head, "analysis": [pca]}, path=Path("<founders>"))
    ours = run_study(study, InProcessTransport(cohort.sites), tmp_path / "r", engine="t")
    extra = ["--nonfounders"] if nonfounders else []
    _plink2(
        plink2,
        cohort,
        tmp_path / "p2",
        "--maf",
        "0.01",
        *extra,
        "--pca",
        "3",
        "meanimpute",
        "biallelic-var-wts",
    )
    assert_pca_matches(ours.out / "pca", tmp_path / "p2")


def test_pca__a_variant_monomorphic_among_the_founders_only_stops_as_plink2(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    study = study_from_mapping(
        {"study": {"name": "pca"}, "analysis": [{"kind": "pca", "n_pcs": 3}]},
        path=Path("<founders>"),
    )
    with pytest.raises(InputError) as info:
        run_study(study, InProcessTransport(cohort.sites), tmp_path / "r", engine="t")
    assert "monomorphic among the founders" in str(info.value) and "maf" in str(info.value)
