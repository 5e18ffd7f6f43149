"""Covariates plink2 leaves out or refuses: GenoFed's glm does the same, on the same data.

plink2 v2.00a3.5, checked here on the pooled cohort with one more covariate
``X`` next to AGE and SEX:

* ``X`` constant: plink2 warns ``Excluding constant covariate 'X' from
  --glm.``, fits the model without it and writes the tables it writes
  without ``X`` (byte for byte). GenoFed leaves ``X`` out, logs a warning
  naming it, names it in the analysis's summary, and its tables equal
  plink2's (tolerances of :mod:`tests.reference.test_glm_vs_plink2`, whose
  cohort this is).
* ``X`` collinear with AGE and SEX, or nearly: plink2 stops (exit 7) with
  CORR_TOO_HIGH, VIF_INFINITE or VIF_TOO_HIGH, by model as it orders its
  checks. GenoFed stops before any table is written with an InputError
  that gives the same code, names the covariates plink2 names (and, for
  VIF_INFINITE, which plink2 does not name, the collinear ones) and says
  what to remove.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from genofed.common.errors import InputError
from genofed.common.study import study_from_mapping
from genofed.coordinator.combine.covariates import SUMMARY_KEY, TAKEN_BACK_KEY
from genofed.coordinator.runner import run_study
from genofed.synth import write_cohorts
from tests.harness import InProcessTransport
from tests.reference.planted import add_covariate, pooled_column
from tests.reference.test_glm_vs_plink2 import assert_linear_matches, assert_logistic_matches

PHENOTYPES = {"QPHENO": "glm.linear", "DISEASE": "glm.logistic.hybrid"}
PLINK2_CODE = re.compile(r"\((CORR_TOO_HIGH|VIF_INFINITE|VIF_TOO_HIGH)\)")


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cohort of test_glm_vs_plink2 (whose federated tables equal plink2's)."""
    cohort = write_cohorts(
        tmp_path_factory.mktemp("cov") / "cohorts",
        sites=3,
        samples=600,
        variants=800,
        seed=11,
        missing_rate=0.03,
    )
    return cohort.pooled.parent


def _with_x(base: Path, out: Path, x: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Path:
    """A copy of the cohort with covariate X = x(AGE, SEX)."""
    cohort = out / "cohorts"
    shutil.copytree(base, cohort)
    age = pooled_column(cohort, "covar.tsv", "AGE")
    sex = pooled_column(cohort, "covar.tsv", "SEX")
    add_covariate(cohort, "X", x(age, sex))
    return cohort


def _plink2(
    plink2: Path, cohort: Path, out: Path, phenotypes: str, covar: Path | None = None
) -> subprocess.CompletedProcess[str]:
    pooled = cohort / "pooled"
    return subprocess.run(
        [
            str(plink2),
            "--bfile",
            str(pooled / "pooled"),
            "--pheno",
            str(pooled / "pheno.tsv"),
            "--pheno-name",
            phenotypes,
            "--covar",
            str(covar or pooled / "covar.tsv"),
            "--glm",
            "--threads",
            "1",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def _study(phenotypes: list[str], covariates: list[str]):  # type: ignore[no-untyped-def]
    analyses = [
        {"kind": "glm", "id": f"gwas_{p.lower()}", "phenotype": p, "covariates": covariates}
        for p in phenotypes
    ]
    return study_from_mapping({"study": {"name": "gwas"}, "analysis": analyses}, path=Path("<t>"))


def _sites(cohort: Path) -> list[Path]:
    return sorted(p for p in cohort.glob("site-*") if p.is_dir())


def test_constant_covariate__left_out_with_a_warning_and_tables_equal_plink2(
    base: Path, plink2: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cohort = _with_x(base, tmp_path, lambda age, _: np.full(len(age), 1.5))
    run = _plink2(plink2, cohort, tmp_path / "with_x", "QPHENO,DISEASE")
    assert run.returncode == 0
    assert "Warning: Excluding constant covariate 'X' from --glm." in run.stdout + run.stderr
    without = _plink2(
        plink2, cohort, tmp_path / "without_x", "QPHENO,DISEASE", base / "pooled" / "covar.tsv"
    )
    assert without.returncode == 0
    for phenotype, suffix in PHENOTYPES.items():
        with_x = (tmp_path / f"with_x.{phenotype}.{suffix}").read_bytes()
        assert with_x == (tmp_path / f"without_x.{phenotype}.{suffix}").read_bytes()

    study = _study(list(PHENOTYPES), ["AGE", "SEX", "X"])
    with caplog.at_level(logging.WARNING, logger="genofed.coordinator"):
        outcome = run_study(
            study, InProcessTransport(_sites(cohort)), tmp_path / "r", engine="in-process"
        )
    assert_linear_matches(
        outcome.out / "gwas.QPHENO.glm.linear", tmp_path / "with_x.QPHENO.glm.linear"
    )
    assert_logistic_matches(
        outcome.out / "gwas.DISEASE.glm.logistic.hybrid",
        tmp_path / "with_x.DISEASE.glm.logistic.hybrid",
    )
    for analysis in ("gwas_qpheno", "gwas_disease"):
        assert outcome.summary[analysis][SUMMARY_KEY] == "X"  # type: ignore[index]
        assert any(
            f"'{analysis}'" in r.message and "covariate 'X' is constant" in r.message
            for r in caplog.records
        )
    tests = {line.split("\t")[6] for line in (outcome.out / "gwas.QPHENO.glm.linear").open()}
    assert tests == {"TEST", "ADD", "AGE", "SEX"}


#: X as a function of AGE and SEX, plink2's code by phenotype, and the covariates GenoFed names
COLLINEAR = {
    "a linear function of AGE": (
        lambda age, sex, rng: 2.0 * age + 1.0,
        {"QPHENO": "VIF_INFINITE", "DISEASE": "CORR_TOO_HIGH"},
        ("AGE", "X"),
    ),
    "a copy of SEX": (
        lambda age, sex, rng: sex.copy(),
        {"QPHENO": "VIF_INFINITE", "DISEASE": "CORR_TOO_HIGH"},
        ("SEX", "X"),
    ),
    "AGE + 20 SEX": (
        lambda age, sex, rng: age + 20.0 * sex,
        {"QPHENO": "VIF_INFINITE", "DISEASE": "VIF_INFINITE"},
        ("AGE", "SEX", "X"),
    ),
    "AGE plus a little noise": (
        lambda age, sex, rng: age + rng.normal(0.0, 0.3, len(age)),
        {"QPHENO": "CORR_TOO_HIGH", "DISEASE": "CORR_TOO_HIGH"},
        ("AGE", "X"),
    ),
    "AGE + 15 SEX plus noise": (
        lambda age, sex, rng: age + 15.0 * sex + rng.normal(0.0, 0.5, len(age)),
        {"QPHENO": "VIF_TOO_HIGH", "DISEASE": "VIF_TOO_HIGH"},
        ("AGE",),
    ),
}


@pytest.mark.parametrize("case", list(COLLINEAR))
def test_collinear_covariates__stop_with_plink2s_code_naming_the_covariates(
    case: str, base: Path, plink2: Path, tmp_path: Path
) -> None:
    make_x, codes, named = COLLINEAR[case]
    rng = np.random.default_rng(9)
    cohort = _with_x(base, tmp_path, lambda age, sex: make_x(age, sex, rng))
    for phenotype, code in codes.items():
        run = _plink2(plink2, cohort, tmp_path / phenotype, phenotype)
        said = " ".join((run.stdout + run.stderr).split())
        assert run.returncode == 7, said
        found = PLINK2_CODE.search(said)
        assert found is not None and found.group(1) == code, said
        plink2_names = re.findall(r"covariates? '(\w+)'", said)
        out = tmp_path / f"results_{phenotype}"
        with pytest.raises(InputError) as err:
            run_study(
                _study([phenotype], ["AGE", "SEX", "X"]),
                InProcessTransport(_sites(cohort)),
                out,
                engine="in-process",
            )
        message = str(err.value)
        first_line = message.split("\n")[0]
        assert f"({code})" in first_line, message
        for name in plink2_names:
            assert f"'{name}'" in first_line, (message, said)
        assert {n for n in ("AGE", "SEX", "X") if f"'{n}'" in first_line} == set(named), message
        assert "fix: remove" in message
        assert not out.exists()


def _constant_but_missing_for(n: int, picks: list[int]) -> np.ndarray:
    x = np.full(n, 1.5)
    x[picks] = np.nan
    return x


def test_constant_covariate_missing_for_some__those_samples_taken_back_as_plink2_does(
    base: Path, plink2: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """X is 1.5 wherever it is known and missing for 12 samples (4 a site) that have the rest.

    plink2 leaves X out ("Excluding constant covariate") and then analyses
    the 12 samples too (GlmDetermineCovars only requires the covariates it
    keeps): OBS_CT counts them. GenoFed asks a glm_covariates round, then
    glm_stats (and every logistic round) again with X unused, and its tables
    equal plink2's.
    """
    sizes = [len((s / "data" / "genotypes.fam").read_text().splitlines()) for s in _sites(base)]
    starts = np.cumsum([0, *sizes[:-1]])
    q = pooled_column(base, "pheno.tsv", "QPHENO")
    d = pooled_column(base, "pheno.tsv", "DISEASE")
    age = pooled_column(base, "covar.tsv", "AGE")
    sex = pooled_column(base, "covar.tsv", "SEX")
    complete = ~np.isnan(q) & ~np.isnan(d) & ~np.isnan(age) & ~np.isnan(sex)
    picks: list[int] = []
    for start, size in zip(starts, sizes, strict=True):
        picks += [int(i) for i in np.flatnonzero(complete[start : start + size])[3:7] + start]
    cohort = _with_x(base, tmp_path, lambda a, _: _constant_but_missing_for(len(a), picks))
    run = _plink2(plink2, cohort, tmp_path / "with_x", "QPHENO,DISEASE")
    said = " ".join((run.stdout + run.stderr).split())
    assert run.returncode == 0, said
    # v2.00a3.5 leaves X out per phenotype (GlmDetermineCovars), later builds in GlmMain
    assert (
        "Warning: Not including covariate 'X' in --glm regression on phenotype 'QPHENO'." in said
        or "Warning: Excluding constant covariate 'X' from --glm." in said
    ), said
    without = _plink2(
        plink2, cohort, tmp_path / "without_x", "QPHENO,DISEASE", base / "pooled" / "covar.tsv"
    )
    assert without.returncode == 0
    for phenotype, suffix in PHENOTYPES.items():  # the 12 are analysed: as if X were not there
        with_x = (tmp_path / f"with_x.{phenotype}.{suffix}").read_bytes()
        assert with_x == (tmp_path / f"without_x.{phenotype}.{suffix}").read_bytes()

    study = _study(list(PHENOTYPES), ["AGE", "SEX", "X"])
    with caplog.at_level(logging.WARNING, logger="genofed.coordinator"):
        outcome = run_study(
            study, InProcessTransport(_sites(cohort)), tmp_path / "r", engine="in-process"
        )
    assert_linear_matches(
        outcome.out / "gwas.QPHENO.glm.linear", tmp_path / "with_x.QPHENO.glm.linear"
    )
    assert_logistic_matches(
        outcome.out / "gwas.DISEASE.glm.logistic.hybrid",
        tmp_path / "with_x.DISEASE.glm.logistic.hybrid",
    )
    for analysis in ("gwas_qpheno", "gwas_disease"):
        summary = outcome.summary[analysis]
        assert summary[SUMMARY_KEY] == "X"  # type: ignore[index]
        assert summary[TAKEN_BACK_KEY] == 12  # type: ignore[index]
        assert any(f"'{analysis}': 12 sample(s)" in r.message for r in caplog.records)


def test_left_out_covariate_that_varies_over_the_taken_back_samples__used_again_as_plink2(
    base: Path, plink2: Path, tmp_path: Path
) -> None:
    """W is 1.5 where known, missing for 12 samples; X is 0 but for those 12.

    Over the samples with every covariate both are constant: plink2 leaves
    both out, takes the 12 back (they miss only W), and since X is known
    for all of them and now varies, uses X again (GlmDetermineCovars step 2).
    GenoFed's glm_covariates round finds the same, and the tables (with
    their X rows) equal plink2's.
    """
    sizes = [len((s / "data" / "genotypes.fam").read_text().splitlines()) for s in _sites(base)]
    starts = np.cumsum([0, *sizes[:-1]])
    present = [pooled_column(base, t, c) for t, c in _NEEDED]
    complete = ~np.isnan(np.column_stack(present)).any(axis=1)
    picks: list[int] = []
    for start, size in zip(starts, sizes, strict=True):
        picks += [int(i) for i in np.flatnonzero(complete[start : start + size])[3:7] + start]
    cohort = _with_x(base, tmp_path, lambda a, _: _constant_but_missing_for(len(a), picks))
    x = np.zeros(len(complete))
    x[picks] = np.linspace(-1.0, 2.0, len(picks))
    add_covariate(cohort, "X2", x)
    run = _plink2(plink2, cohort, tmp_path / "plink2", "QPHENO,DISEASE")
    said = " ".join((run.stdout + run.stderr).split())
    assert run.returncode == 0, said
    assert "covariate 'X2'" not in said, said  # left out, then used again without a word

    study = _study(list(PHENOTYPES), ["AGE", "SEX", "X", "X2"])
    outcome = run_study(
        study, InProcessTransport(_sites(cohort)), tmp_path / "r", engine="in-process"
    )
    assert_linear_matches(
        outcome.out / "gwas.QPHENO.glm.linear", tmp_path / "plink2.QPHENO.glm.linear"
    )
    assert_logistic_matches(
        outcome.out / "gwas.DISEASE.glm.logistic.hybrid",
        tmp_path / "plink2.DISEASE.glm.logistic.hybrid",
    )
    tests = {line.split("\t")[6] for line in (outcome.out / "gwas.QPHENO.glm.linear").open()}
    assert tests == {"TEST", "ADD", "AGE", "SEX", "X2"}
    for analysis in ("gwas_qpheno", "gwas_disease"):
        summary = outcome.summary[analysis]
        assert summary[SUMMARY_KEY] == "X"  # type: ignore[index]
        assert summary[TAKEN_BACK_KEY] == 12  # type: ignore[index]


_NEEDED = [
    ("pheno.tsv", "QPHENO"),
    ("pheno.tsv", "DISEASE"),
    ("covar.tsv", "AGE"),
    ("covar.tsv", "SEX"),
]
