"""Logistic ``firth = "fallback"`` fits by Firth exactly where ``plink2 --glm firth-fallback`` does.

plink2 v2.00a3.5 (``plink2_glm_logistic.cc``, GlmLogisticThread) fits a
variant by Firth instead of Newton when an allele that is not constant, A1
or the omitted major allele, has a case dosage of 0 or equal to its total
dosage (every single carrier, every variant whose carriers are all cases or
all controls, a variant whose cases are all homozygous for A1), and after
Newton when Newton fails (LogisticRegressionF returns 1). A Newton fit that
reaches the iteration limit is reported ``UNFINISHED``, not refitted.

The cohort is a synthetic one (3 sites, 600 samples, 3 % missing calls)
with planted rare variants in both orientations (the carrier allele is ALT,
so A1 is ALT; or REF, so A1 is REF) and with or without extra missing
calls: single heterozygous and homozygous carriers among cases and among
controls, a few carriers all cases or all controls, carriers all cases but
one (Newton converges), and every case homozygous for A1 (the major
allele's case dosage is 0). A REF A1 at a variant with missing calls is the
case where the pooled sums are not exact integers (the sites send the sums
over missing calls in single precision) and Newton used to run.

Compared with plink2: A1, FIRTH?, OBS_CT and ERRCODE exactly, OR and SE
with :func:`assert_logistic_matches` (plink2's single-precision Firth
estimates move by up to about 1e-3 in log OR with the variants around them
in its batch: the same variant alone gives a different last digit). Every
Firth row is also compared with a double-precision Firth fit of the pooled
data in this file, to 1e-5.
"""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import bed_reader
import numpy as np
import numpy.typing as npt
import pytest
from scipy import optimize

from genofed.common.study import study_from_mapping
from genofed.coordinator.runner import StudyOutcome, run_study
from genofed.synth import SynthSummary, write_cohorts
from tests.harness import InProcessTransport
from tests.reference.planted import plant_genotypes, pooled_column
from tests.reference.test_glm_vs_plink2 import assert_logistic_matches

F64 = npt.NDArray[np.float64]
#: variant index -> (configuration, carrier allele is REF, extra missing calls, ALT counts)
Planted = dict[int, tuple[str, bool, bool, npt.NDArray[np.int64]]]

COVARIATES = ("AGE", "SEX")
N_VARIANTS = 200
#: (case genotypes, control genotypes) of the carriers, in copies of the carrier allele
CONFIGURATIONS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "one het case": ((1,), ()),
    "one het control": ((), (1,)),
    "one hom case": ((2,), ()),
    "one hom control": ((), (2,)),
    "two het cases": ((1, 1), ()),
    "three het controls": ((), (1, 1, 1)),
    "eight carriers, all cases": ((1, 1, 2, 1, 1, 2, 1, 1), ()),
    "seven cases, one control": ((1, 1, 1, 1, 1, 1, 1), (1,)),
    "one case, six controls": ((1,), (1, 1, 1, 1, 1, 1)),
}
#: configurations whose carrier allele has no copy in the cases or none in the controls
SEPARATED = {
    name for name, (cases, controls) in CONFIGURATIONS.items() if not cases or not controls
}
PLANTED_MISSING_RATE = 0.05


def _planted_rows(cohort: Path) -> Planted:
    """The planted variants (every fifth from the first), with what each is."""
    disease = pooled_column(cohort, "pheno.tsv", "DISEASE")
    cases, controls = np.flatnonzero(disease == 2), np.flatnonzero(disease == 1)
    n = len(disease)
    rng = np.random.default_rng(2024)
    rows: Planted = {}
    variant = 0
    for carrier_is_ref in (False, True):
        for missing in (False, True):
            for name, (case_g, control_g) in CONFIGURATIONS.items():
                copies = np.zeros(n, dtype=np.int64)  # of the carrier allele
                # carriers spread over the sites (the pooled order is site by site)
                who_case = cases[np.linspace(0, len(cases) - 1, len(case_g)).astype(int)]
                who_ctrl = controls[np.linspace(0, len(controls) - 1, len(control_g)).astype(int)]
                copies[who_case] = case_g
                copies[who_ctrl] = control_g
                alt = 2 - copies if carrier_is_ref else copies
                if missing:
                    drop = rng.random(n) < PLANTED_MISSING_RATE
                    drop[who_case] = drop[who_ctrl] = False  # keep the carriers
                    alt[drop] = -1
                rows[variant] = (name, carrier_is_ref, missing, alt)
                variant += 5
            # every case homozygous for the minor allele, some controls too (so that the
            # genotype does not separate cases from controls): the major allele's case
            # dosage is 0 while A1's is neither 0 nor its total
            copies = np.zeros(n, dtype=np.int64)
            copies[cases] = 2
            copies[controls[::4]] = 1
            copies[controls[::20]] = 2
            alt = 2 - copies if carrier_is_ref else copies
            if missing:
                alt[rng.random(n) < PLANTED_MISSING_RATE] = -1
            rows[variant] = ("every case homozygous", carrier_is_ref, missing, alt)
            variant += 5
    assert variant <= N_VARIANTS
    return rows


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[SynthSummary, Planted]:
    cohort = write_cohorts(
        tmp_path_factory.mktemp("firth") / "cohorts",
        sites=3,
        samples=600,
        variants=N_VARIANTS,
        seed=11,
        missing_rate=0.03,
    )
    rows = _planted_rows(cohort.pooled.parent)
    plant_genotypes(cohort.pooled.parent, {v: r[3] for v, r in rows.items()})
    return cohort, rows


def _plink2_glm(plink2: Path, cohort: SynthSummary, variant_id: str, out: Path) -> list[str]:
    """plink2 ``--glm firth-fallback`` on one variant of the pooled cohort: its table's rows."""
    pooled = cohort.pooled
    subprocess.run(
        [
            str(plink2),
            "--bfile",
            str(cohort.pooled_prefix),
            "--snp",
            variant_id,
            "--pheno",
            str(pooled / "pheno.tsv"),
            "--pheno-name",
            "DISEASE",
            "--covar",
            str(pooled / "covar.tsv"),
            "--glm",
            "firth-fallback",
            "--threads",
            "1",
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    return out.with_name(f"{out.name}.DISEASE.glm.logistic.hybrid").read_text().splitlines()


@pytest.fixture(scope="module")
def plink2_table(
    planted: tuple[SynthSummary, Planted],
    plink2: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """plink2's rows for the planted variants, each variant run alone, in variant order.

    One variant per run: plink2 v2.00a3.5 reuses its buffers from the
    variant before in the batch without zeroing the entries past the current
    variant's called samples (fixed upstream on 9 Oct 2024, "--glm
    logistic/Firth trailing-zero bugfix", plink-ng commit 46050243). A variant
    with fewer called samples than the one before it then gets wrong
    covariate standard errors (5 % off here) and moved Firth estimates.
    """
    cohort, rows = planted
    ids = [line.split()[1] for line in cohort.pooled_prefix.with_suffix(".bim").open()]
    directory = tmp_path_factory.mktemp("p2")
    lines: list[str] = []
    for v in sorted(rows):
        table = _plink2_glm(plink2, cohort, ids[v], directory / f"v{v}")
        lines = lines or table[:1]
        lines += table[1:]
    path = directory / "planted.DISEASE.glm.logistic.hybrid"
    path.write_text("\n".join(lines) + "\n")
    return path


def _planted_table(federated: StudyOutcome, rows: Planted, out: Path) -> Path:
    """The federated table's rows of the planted variants (three per variant), as a table."""
    lines = (federated.out / "gwas.DISEASE.glm.logistic.hybrid").read_text().splitlines()
    per_variant = 1 + len(COVARIATES)
    keep = [lines[0]]
    for v in sorted(rows):
        keep += lines[1 + v * per_variant : 1 + (v + 1) * per_variant]
    out.write_text("\n".join(keep) + "\n")
    return out


@pytest.fixture(scope="module")
def federated(
    planted: tuple[SynthSummary, Planted],
    tmp_path_factory: pytest.TempPathFactory,
) -> StudyOutcome:
    cohort, _ = planted
    study = study_from_mapping(
        {
            "study": {"name": "firth"},
            "analysis": [
                {
                    "kind": "glm",
                    "id": "gwas_d",
                    "phenotype": "DISEASE",
                    "covariates": list(COVARIATES),
                    "firth": "fallback",
                }
            ],
        },
        path=Path("<t>"),
    )
    out = tmp_path_factory.mktemp("fed") / "results"
    return run_study(study, InProcessTransport(cohort.sites), out, engine="in-process")


def _add_rows(path: Path) -> list[list[str]]:
    lines = path.read_text().splitlines()
    return [line.split("\t") for line in lines[1:] if line.split("\t")[7] == "ADD"]


def test_firth_fallback__flags_errcodes_and_estimates_equal_plink2(
    planted: tuple[SynthSummary, Planted],
    federated: StudyOutcome,
    plink2_table: Path,
    tmp_path: Path,
) -> None:
    _, rows = planted
    ours = _planted_table(federated, rows, tmp_path / "ours.glm.logistic.hybrid")
    assert_logistic_matches(ours, plink2_table)
    firth = sum(r[6] == "Y" for r in _add_rows(federated.out / "gwas.DISEASE.glm.logistic.hybrid"))
    assert federated.summary["gwas_d"]["firth"] == firth  # type: ignore[index]


def test_firth_fallback__every_separated_planted_variant_uses_firth_in_both(
    planted: tuple[SynthSummary, Planted],
    federated: StudyOutcome,
    plink2_table: Path,
) -> None:
    _, rows = planted
    ours = _add_rows(federated.out / "gwas.DISEASE.glm.logistic.hybrid")
    theirs = dict(zip(sorted(rows), _add_rows(plink2_table), strict=True))
    separated_ref_with_missing = 0
    for v, (name, carrier_is_ref, missing, _) in rows.items():
        expected = "Y" if name in SEPARATED | {"every case homozygous"} else "N"
        assert (theirs[v][6], ours[v][6]) == (expected, expected), (name, theirs[v], ours[v])
        assert ours[v][5] == (ours[v][3] if carrier_is_ref else ours[v][4])  # A1: carrier allele
        if expected == "Y" and carrier_is_ref and missing:
            separated_ref_with_missing += 1
    assert separated_ref_with_missing == len(SEPARATED) + 1


def _firth_fit(x: F64, y: F64) -> tuple[float, float]:
    """Firth's penalized logistic regression in double precision: (beta, SE) of column 1.

    The estimate is the root of the modified score ``X^T (y - mu + h (1/2 - mu))``
    (the gradient of ``l + log|I| / 2``), found by ``scipy.optimize.root``
    from logistf's first steps to a score below 1e-9: near the optimum the
    penalized likelihood is too flat for step-halving on its values to
    settle the last digits (logistf's step, which ignores the penalty's
    curvature, cycles there).
    """

    def score(beta: F64) -> F64:
        mu = 1.0 / (1.0 + np.exp(-(x @ beta)))
        w = mu * (1.0 - mu)
        inv = np.linalg.inv(x.T @ (x * w[:, None]))
        h = w * np.einsum("ij,jk,ik->i", x, inv, x)
        return np.asarray(x.T @ (y - mu + h * (0.5 - mu)), dtype=np.float64)

    def information(beta: F64) -> F64:
        mu = 1.0 / (1.0 + np.exp(-(x @ beta)))
        return np.asarray(x.T @ (x * (mu * (1.0 - mu))[:, None]), dtype=np.float64)

    beta = np.zeros(x.shape[1])
    for _ in range(10):  # logistf's steps, capped at 5, to come near the optimum
        step = np.linalg.solve(information(beta), score(beta))
        beta = beta + step * min(1.0, 5.0 / np.abs(step).max())
    found = optimize.root(score, beta, method="hybr", tol=1e-14)
    assert np.abs(score(found.x)).max() < 1e-9, found
    cov = np.linalg.inv(information(found.x))
    return float(found.x[1]), float(math.sqrt(cov[1, 1]))


def test_firth_rows__equal_a_double_precision_firth_fit_of_the_pooled_data(
    planted: tuple[SynthSummary, Planted],
    federated: StudyOutcome,
) -> None:
    cohort, _ = planted
    pooled = cohort.pooled.parent
    y = pooled_column(pooled, "pheno.tsv", "DISEASE") - 1.0
    cov = np.column_stack([pooled_column(pooled, "covar.tsv", c) for c in COVARIATES])
    with bed_reader.open_bed(cohort.pooled_prefix.with_suffix(".bed"), count_A1=True) as bed:
        alt = bed.read(dtype="float64")  # copies of the .bim's first allele, ALT to plink2
    checked = 0
    for v, row in enumerate(_add_rows(federated.out / "gwas.DISEASE.glm.logistic.hybrid")):
        if row[6] != "Y" or row[-1] != ".":
            continue
        g = alt[:, v] if row[5] == row[4] else 2.0 - alt[:, v]
        keep = ~np.isnan(y) & ~np.isnan(g)
        x = np.column_stack([np.ones(keep.sum()), g[keep], cov[keep]])
        beta, se = _firth_fit(x, y[keep])
        assert int(row[8]) == keep.sum()
        assert abs(math.log(float(row[9])) - beta) <= 1e-5 * max(1.0, abs(beta)), (row, beta)
        assert abs(float(row[10]) - se) <= 1e-5 * se, (row, se)
        checked += 1
    assert checked >= 2 * len(SEPARATED)


#: A variant of conform's synthetic federation (3 sites, 600 samples, 400 variants, seed 11,
#: 3 % missing calls): two heterozygous carriers, both cases, so fitted by Firth.
SLOW_VARIANT = "3:24910:T:C"


@pytest.fixture(scope="module")
def slow_cohort(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    return write_cohorts(
        tmp_path_factory.mktemp("slow") / "cohorts",
        sites=3,
        samples=600,
        variants=400,
        seed=11,
        missing_rate=0.03,
    )


def test_firth_slow_oscillation__converges_where_plink2_does(
    slow_cohort: SynthSummary, plink2: Path, tmp_path: Path
) -> None:
    """logistf's step overshoots this optimum (about -0.78 of the error per step): in
    double precision every step gains a little, so 25 full steps do not reach the 1e-4
    step threshold and the fit used to end UNFINISHED. plink2's single-precision
    log-likelihood cannot tell gains below its rounding from noise and half-steps
    there, which damps the oscillation: it converges ('.'). A gain below 2^-24 of
    the penalized log-likelihood is a tie here (a half step), as in plink2."""
    study = study_from_mapping(
        {
            "study": {"name": "slow"},
            "analysis": [
                {
                    "kind": "glm",
                    "id": "gwas_d",
                    "phenotype": "DISEASE",
                    "covariates": list(COVARIATES),
                    "firth": "fallback",
                }
            ],
        },
        path=Path("<t>"),
    )
    fed = run_study(
        study, InProcessTransport(slow_cohort.sites), tmp_path / "results", engine="in-process"
    )
    ours = [
        r for r in _add_rows(fed.out / "gwas.DISEASE.glm.logistic.hybrid") if r[2] == SLOW_VARIANT
    ]
    table = _plink2_glm(plink2, slow_cohort, SLOW_VARIANT, tmp_path / "p2")
    theirs = [line.split("\t") for line in table[1:] if line.split("\t")[7] == "ADD"]
    assert len(ours) == len(theirs) == 1
    (o,), (t,) = ours, theirs
    assert (o[6], o[8], o[-1]) == (t[6], t[8], t[-1]) == ("Y", o[8], "."), (o, t)
    assert abs(math.log(float(o[9])) - math.log(float(t[9]))) <= 2e-3
    assert abs(float(o[10]) - float(t[10])) <= 1e-3 * float(t[10])
