"""The prs and pgx association models treat covariates as glm does (and plink2 --glm would).

A constant covariate is left out: the association equals the one fitted
without it, and the summary names it. A covariate that is a linear
function of another stops the analysis with an error naming both, before
any output is written. (The glm side, against plink2 itself, is
:mod:`tests.reference.test_glm_covariates_vs_plink2`.)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from genofed.common.errors import InputError
from genofed.common.study import study_from_mapping
from genofed.coordinator.combine.covariates import SUMMARY_KEY
from genofed.coordinator.runner import StudyOutcome, run_study
from genofed.synth import SynthSummary, write_cohorts
from tests.harness import InProcessTransport
from tests.reference.planted import add_covariate, pooled_column


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    return write_cohorts(
        tmp_path_factory.mktemp("cov") / "cohorts",
        sites=3,
        samples=600,
        variants=300,
        seed=13,
        missing_rate=0.03,
        pgx=True,
    )


def _analyses(cohort: SynthSummary, covariates: list[str]) -> list[dict[str, object]]:
    prs = {"kind": "prs", "scoring_file": str(cohort.scoring_file), "covariates": covariates}
    return [
        {**prs, "phenotype": "DISEASE"},
        {**prs, "id": "prs_q", "phenotype": "QPHENO"},
        {"kind": "pgx", "outcome": "CLOP_EVENT", "covariates": covariates},
    ]


def _run(cohort: SynthSummary, root: Path, covariates: list[str]) -> StudyOutcome:
    study = study_from_mapping(
        {"study": {"name": "cov"}, "analysis": _analyses(cohort, covariates)}, path=Path("<t>")
    )
    sites = sorted(p for p in root.glob("site-*") if p.is_dir())
    return run_study(study, InProcessTransport(sites), root.parent / "results", engine="in-process")


def _with_x(cohort: SynthSummary, out: Path, constant: bool) -> Path:
    root = out / "cohorts"
    shutil.copytree(cohort.pooled.parent, root)
    age = pooled_column(root, "covar.tsv", "AGE")
    add_covariate(root, "X", np.full(len(age), 2.5) if constant else 3.0 * age - 4.0)
    return root


def test_constant_covariate__prs_and_pgx_associations_equal_the_fits_without_it(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    without = _run(cohort, _with_x(cohort, tmp_path / "a", constant=True), ["AGE", "SEX"])
    with_x = _run(cohort, _with_x(cohort, tmp_path / "b", constant=True), ["AGE", "X", "SEX"])
    for analysis in ("prs", "prs_q", "pgx"):
        assert with_x.summary[analysis][SUMMARY_KEY] == "X"  # type: ignore[index]
        assert SUMMARY_KEY not in without.summary[analysis]  # type: ignore[operator]
    for name in ("prs.summary.json", "prs.prs_q.summary.json", "pgx.summary.json"):
        got = json.loads((with_x.out / name).read_text())
        want = json.loads((without.out / name).read_text())
        assoc = got["association"] if name.startswith("prs") else got["association"]["logistic"]
        ref = want["association"] if name.startswith("prs") else want["association"]["logistic"]
        assert assoc.pop("covariates_left_out_constant", None) == (
            None if name.startswith("prs") else ["X"]
        )
        for key, value in ref.items():
            if key == "covariates":
                continue
            if isinstance(value, float | list):
                assert assoc[key] == pytest.approx(value, rel=1e-7, abs=1e-12), (name, key)
            else:
                assert assoc[key] == value, (name, key)
        if name.startswith("prs"):
            assert got["covariates_left_out_constant"] == ["X"]


def test_collinear_covariates__prs_and_pgx_stop_naming_them(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    root = _with_x(cohort, tmp_path, constant=False)
    study_analyses = _analyses(cohort, ["AGE", "SEX", "X"])
    sites = sorted(p for p in root.glob("site-*") if p.is_dir())
    for analysis in study_analyses:
        study = study_from_mapping(
            {"study": {"name": "cov"}, "analysis": [analysis]}, path=Path("<t>")
        )
        out = tmp_path / f"results_{analysis.get('id', analysis['kind'])}"
        with pytest.raises(
            InputError, match=r"covariates 'AGE' and 'X' .*\((VIF_INFINITE|CORR_TOO_HIGH)\)"
        ):
            run_study(study, InProcessTransport(sites), out, engine="in-process")
        assert not out.exists()
