"""``[cohort]`` and ``[sample_qc]`` on 3 synthetic sites equal plink2 on the same samples.

Some samples miss 30 % of their calls (so ``--mind 0.1`` removes them).
Each site's QC counts equal plink2 on that site's files: ``--mind`` its
log's count, the heterozygosity outliers the rule applied to plink2's
``--het`` F after ``--mind``. The federated ``freq`` and ``glm`` over the
cohort equal plink2 on the pooled fileset with ``--keep-if`` (the cohort's
conditions), ``--remove`` (the samples each site's QC removed, from
plink2's own ``.mindrem.id`` and ``.het``).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from genofed.common.study import study_from_mapping
from genofed.coordinator.runner import StudyOutcome, run_study
from genofed.synth import SynthSummary, write_cohorts
from tests.harness import InProcessTransport
from tests.reference.missing_calls import concentrate
from tests.reference.test_glm_vs_plink2 import assert_linear_matches
from tests.reference.test_study_vs_plink2 import assert_tables_match

HET_SD = 2.0  # low, so that the synthetic sites have outliers


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    summary = write_cohorts(
        tmp_path_factory.mktemp("cohort") / "cohorts",
        sites=3,
        samples=600,
        variants=800,
        seed=11,
        missing_rate=0.03,
    )
    concentrate(summary.out, np.arange(0, 600, 37), 0.3, 5, same_variants=False)
    return summary


def _plink2(plink2: Path, *args: str) -> str:
    done = subprocess.run(
        [str(plink2), *args, "--threads", "1"], check=True, capture_output=True, text=True
    )
    return done.stdout


def _site_qc(plink2: Path, bfile: Path, out: Path) -> tuple[int, list[str], list[str]]:
    """plink2 --mind 0.1 --het on one fileset: (mind count, removed IIDs, het outlier IIDs)."""
    log = _plink2(
        plink2,
        "--bfile",
        str(bfile),
        "--mind",
        "0.1",
        "--het",
        "--out",
        str(out),
    )
    found = re.search(r"(\d+) samples? removed due to missing genotype data", log)
    n_mind = int(found[1]) if found else 0
    mind_ids = Path(f"{out}.mindrem.id")
    lines = mind_ids.read_text().splitlines()[1:] if mind_ids.exists() else []  # no header
    removed = [line.split("\t")[-1] for line in lines]
    rows = [line.split("\t") for line in Path(f"{out}.het").read_text().splitlines()[1:]]
    f = np.array([float(r[-1]) for r in rows])
    outliers = np.abs(f - f.mean()) > HET_SD * f.std(ddof=1)
    return n_mind, removed, [r[1] for r, o in zip(rows, outliers, strict=True) if o]


@pytest.fixture(scope="module")
def federated(cohort: SynthSummary, tmp_path_factory: pytest.TempPathFactory) -> StudyOutcome:
    study = study_from_mapping(
        {
            "study": {"name": "cohort"},
            "cohort": {"where": ["AGE >= 45", "SEX in [1, 2]"]},
            "sample_qc": {"mind": 0.1, "het_sd": HET_SD},
            "analysis": [
                {"kind": "freq"},
                {"kind": "glm", "phenotype": "QPHENO", "covariates": ["AGE", "SEX"]},
            ],
        },
        path=Path("<t>"),
    )
    out = tmp_path_factory.mktemp("fed") / "results"
    return run_study(study, InProcessTransport(cohort.sites), out, engine="in-process")


def test_sample_qc_counts__equal_plink2_mind_and_het_on_each_site(
    cohort: SynthSummary, plink2: Path, tmp_path: Path
) -> None:
    study = study_from_mapping(
        {
            "study": {"name": "qc-only"},
            "sample_qc": {"mind": 0.1, "het_sd": HET_SD},
            "analysis": [{"kind": "freq"}],
        },
        path=Path("<t>"),
    )
    outcome = run_study(study, InProcessTransport(cohort.sites), tmp_path / "r", engine="t")
    funnel = outcome.summary["cohort"]
    assert isinstance(funnel, dict)
    by_site = {s["site"]: s for s in funnel["sites"]}
    total_mind = 0
    for site in cohort.sites:
        n_mind, _, het = _site_qc(plink2, site / "data" / "genotypes", tmp_path / site.name)
        assert by_site[site.name]["removed"] == {"mind": n_mind, "het": len(het)}
        total_mind += n_mind
    assert total_mind > 0  # the concentrated missing calls fail --mind
    assert (
        sum(
            len(_site_qc(plink2, s / "data" / "genotypes", tmp_path / s.name)[2])
            for s in cohort.sites
        )
        > 0
    )
    assert funnel["pooled"]["removed"]["mind"] == total_mind
    assert funnel["pooled"]["left"] == cohort.n_samples - sum(
        sum(s["removed"].values()) for s in funnel["sites"]
    )


def _removed_file(plink2: Path, cohort: SynthSummary, tmp_path: Path) -> Path:
    """The samples each site's QC removes, among its cohort (plink2 on the site's files)."""
    ids = []
    for site in cohort.sites:
        keep = tmp_path / f"{site.name}.cohort"
        _plink2(
            plink2,
            "--bfile",
            str(site / "data" / "genotypes"),
            "--covar",
            str(site / "data" / "covar.tsv"),
            "--keep-if",
            "AGE >= 45",
            "--make-bed",
            "--out",
            str(keep),
        )
        _, removed, het = _site_qc(plink2, keep, tmp_path / f"{site.name}.qc")
        ids.extend(removed + het)
    path = tmp_path / "remove.txt"
    path.write_text("".join(f"{i}\t{i}\n" for i in ids))
    return path


def test_freq_and_glm_over_the_cohort__equal_plink2_keep_if_and_remove(
    cohort: SynthSummary, federated: StudyOutcome, plink2: Path, tmp_path: Path
) -> None:
    pooled = cohort.pooled
    remove = _removed_file(plink2, cohort, tmp_path)
    _plink2(
        plink2,
        "--bfile",
        str(cohort.pooled_prefix),
        "--pheno",
        str(pooled / "pheno.tsv"),
        "--pheno-name",
        "QPHENO",
        "--covar",
        str(pooled / "covar.tsv"),
        "--keep-if",
        "AGE >= 45",
        "--remove",
        str(remove),
        "--freq",
        "--glm",
        "--out",
        str(tmp_path / "p2"),
    )
    assert_tables_match(federated.out / "freq.afreq", tmp_path / "p2.afreq")
    assert_linear_matches(
        federated.out / "gwas.QPHENO.glm.linear", tmp_path / "p2.QPHENO.glm.linear"
    )
    funnel = federated.summary["cohort"]
    assert isinstance(funnel, dict)
    n_removed = len(remove.read_text().splitlines())
    assert sum(funnel["pooled"]["removed"][r] for r in ("mind", "het")) == n_removed
    assert funnel["definition"] == "AGE >= 45 and SEX in [1, 2]"
