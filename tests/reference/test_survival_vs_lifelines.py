"""Federated survival analyses on 3 synthetic sites equal lifelines on the pooled cohort.

The reference is a central fit on ``pooled/`` with lifelines 0.30:

* ``km``: the federated curves are on the study's grid, so the reference
  gets the same information: each time is moved up to the grid point that
  closes its interval, and follow-up beyond the last grid point is censored
  there. ``KaplanMeierFitter`` per group on those times must give the same
  estimates and 95 % bands (lifelines' default log(-log) Greenwood band) at
  every grid point, and ``multivariate_logrank_test`` the same statistic, to
  the 10 significant digits the tables hold. ``N_RISK``/``N_EVENT`` are
  checked exactly against counts taken directly from the pooled table. A
  ``horizon`` instead of a grid gives the 1000-point grid to it, checked the
  same way. On lifelines' Rossi recidivism data (times in whole weeks) the
  site and coordinator cores on a grid holding every week give lifelines'
  estimate and test on the raw times exactly.
* ``cox``: ``CoxPHFitter(strata=["SITE"])`` (Efron ties, lifelines' only
  option) fitted to convergence; coefficients and standard errors to
  relative error 1e-6 (the issue's bound; the fits agree far closer).
  lifelines offers no Breslow ties, so ``ties = "breslow"`` is compared with
  statsmodels' ``PHReg(ties="breslow", strata=SITE)`` to the same bound.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.datasets import load_rossi
from lifelines.statistics import multivariate_logrank_test
from statsmodels.duration.hazard_regression import PHReg

from genofed.common.study import study_from_mapping
from genofed.common.wire.survival import default_grid
from genofed.coordinator.combine.survival import kaplan_meier, log_rank, pool_counts
from genofed.coordinator.runner import StudyOutcome, run_study
from genofed.site_agent.stats.survival import grid_counts
from genofed.synth import SynthSummary, write_cohorts
from tests.harness import InProcessTransport

GRID = [91.0, 182.0, 365.0, 548.0, 730.0, 1095.0, 1461.0, 1826.0, 2191.0, 2557.0, 2922.0, 3287.0]
CUTS = [18.0, 31.0]
COVARIATES = ["RSCORE", "AGE", "SEX"]
TIGHT = {"precision": 1e-20, "r_precision": 1e-16}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    # seed 6: some event times tie within a site, so Efron and Breslow differ
    return write_cohorts(
        tmp_path_factory.mktemp("surv") / "cohorts", sites=3, samples=900, variants=40, seed=6
    )


@pytest.fixture(scope="module")
def federated(cohort: SynthSummary, tmp_path_factory: pytest.TempPathFactory) -> StudyOutcome:
    common = {"time": "RFS_DAYS", "event": "RFS_EVENT"}
    analyses = [
        {"kind": "km", **common, "group": "RSCORE", "cuts": CUTS, "grid": GRID},
        {"kind": "km", "id": "km_sex", **common, "group": "SEX", "levels": [1, 2], "grid": GRID},
        {"kind": "km", "id": "km_all", **common, "grid": GRID[::2]},
        {
            "kind": "km",
            "id": "km_fine",
            **common,
            "group": "SEX",
            "levels": [1, 2],
            "horizon": 3000,  # within everyone's follow-up: no empty risk sets
        },
        {"kind": "cox", **common, "covariates": COVARIATES},
        {"kind": "cox", "id": "cox_breslow", **common, "covariates": COVARIATES, "ties": "breslow"},
    ]
    study = study_from_mapping({"study": {"name": "surv"}, "analysis": analyses}, path=Path("<t>"))
    out = tmp_path_factory.mktemp("fed") / "results"
    return run_study(study, InProcessTransport(cohort.sites), out, engine="in-process")


@pytest.fixture(scope="module")
def pooled(cohort: SynthSummary) -> pd.DataFrame:
    pheno = pd.read_csv(cohort.pooled / "pheno.tsv", sep="\t", na_values=["NA"])
    covar = pd.read_csv(cohort.pooled / "covar.tsv", sep="\t")
    sites = pd.read_csv(cohort.out / "populations.tsv", sep="\t")
    df = pheno.merge(covar, on=["#FID", "IID"]).merge(sites[["IID", "SITE"]], on="IID")
    return df


def _table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def _on_grid(time: np.ndarray, event: np.ndarray, grid: list[float]) -> tuple[np.ndarray, ...]:
    """Times moved up to the grid point closing their interval; censored beyond the grid."""
    g = np.asarray(grid)
    slot = np.searchsorted(g, time, side="left")
    beyond = slot == len(g)
    return g[np.minimum(slot, len(g) - 1)], np.where(beyond, 0, event)


def _check_km(out: Path, name: str, groups: dict[str, np.ndarray], df: pd.DataFrame, grid) -> None:
    table = _table(out / name)
    assert list(table.columns) == ["GROUP", "TIME", "N_RISK", "N_EVENT", "SURV", "LOWER", "UPPER"]
    assert list(table["GROUP"].unique()) == list(groups)
    t, e = _on_grid(df["RFS_DAYS"].to_numpy(float), df["RFS_EVENT"].to_numpy(int), grid)
    for label, mask in groups.items():
        rows = table[table["GROUP"] == label]
        assert rows["TIME"].astype(float).tolist() == grid
        raw = df["RFS_DAYS"].to_numpy(float)[mask]
        ev = df["RFS_EVENT"].to_numpy(int)[mask] == 1
        lower_edges = np.concatenate([[-np.inf], grid[:-1]])
        at_risk = [int((raw > lo).sum()) for lo in lower_edges]
        events = [
            int(((raw > lo) & (raw <= hi) & ev).sum())
            for lo, hi in zip(lower_edges, grid, strict=True)
        ]
        assert rows["N_RISK"].astype(int).tolist() == at_risk
        assert rows["N_EVENT"].astype(int).tolist() == events
        kmf = KaplanMeierFitter().fit(t[mask], e[mask])
        surv = kmf.survival_function_.iloc[:, 0]
        band = kmf.confidence_interval_
        want = surv.reindex(grid, method="ffill").to_numpy()
        lo = band.iloc[:, 0].reindex(grid, method="ffill").to_numpy()
        hi = band.iloc[:, 1].reindex(grid, method="ffill").to_numpy()
        np.testing.assert_allclose(rows["SURV"].astype(float), want, rtol=1e-9, atol=0)
        np.testing.assert_allclose(rows["LOWER"].astype(float), lo, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(rows["UPPER"].astype(float), hi, rtol=1e-9, atol=1e-12)
    if len(groups) > 1:
        labels = np.full(len(df), "", dtype=object)
        for label, mask in groups.items():
            labels[mask] = label
        keep = labels != ""
        ref = multivariate_logrank_test(t[keep], labels[keep], e[keep])
        lr = _table(out / name.replace("km.tsv", "logrank.tsv"))
        assert lr["GROUP"].tolist() == list(groups)
        assert float(lr["CHISQ"][0]) == pytest.approx(ref.test_statistic, rel=1e-9)
        assert float(lr["P"][0]) == pytest.approx(ref.p_value, rel=1e-8)
        assert int(lr["DF"][0]) == len(groups) - 1


def test_km__score_groups_equal_lifelines_on_the_same_grid(
    federated: StudyOutcome, pooled: pd.DataFrame
) -> None:
    df = pooled.dropna(subset=["RSCORE"])
    score = df["RSCORE"].to_numpy(float)
    groups = {
        "RSCORE<18": score < 18,
        "18<=RSCORE<31": (score >= 18) & (score < 31),
        "RSCORE>=31": score >= 31,
    }
    _check_km(federated.out, "km.tsv", groups, df, GRID)
    assert (federated.out / "km.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert federated.summary["km"]["cells withheld by sites"] == 0  # type: ignore[index]


def test_km__categorical_and_ungrouped_curves_equal_lifelines(
    federated: StudyOutcome, pooled: pd.DataFrame
) -> None:
    sex = pooled["SEX"].to_numpy(int)
    _check_km(federated.out, "km_sex.km.tsv", {"SEX=1": sex == 1, "SEX=2": sex == 2}, pooled, GRID)
    everyone = {"ALL": np.ones(len(pooled), dtype=bool)}
    _check_km(federated.out, "km_all.km.tsv", everyone, pooled, GRID[::2])


def test_km_with_horizon__the_finest_grid_equals_lifelines_on_times_rounded_up_to_it(
    federated: StudyOutcome, pooled: pd.DataFrame
) -> None:
    sex = pooled["SEX"].to_numpy(int)
    grid = list(default_grid(3000))
    groups = {"SEX=1": sex == 1, "SEX=2": sex == 2}
    _check_km(federated.out, "km_fine.km.tsv", groups, pooled, grid)
    stats = federated.summary["km_fine"]
    assert stats["grid points"] == 1000  # type: ignore[index]
    assert stats["time resolution"] == (  # type: ignore[index]
        "grid: event and censoring times rounded up to the next grid time, "
        "follow-up beyond 3000 censored there"
    )


def test_km_cores_on_a_grid_of_every_week__equal_lifelines_on_raw_times_of_real_data() -> None:
    """Rossi (432 released prisoners, weeks to arrest 1..52, by financial aid), at 3 sites.

    Every week a grid time: the raw estimate and test. Every 4th week: the
    estimate at the grid times is still the raw one (Rossi censors only at
    week 52, so no censoring precedes an event within an interval), but the
    log-rank test, which compares the groups at each event time, differs.
    """
    df = load_rossi()
    weeks = df["week"].to_numpy(np.float64)
    arrest = df["arrest"].to_numpy(np.int64) == 1
    fin = df["fin"].to_numpy(np.int64)
    site = np.arange(len(df)) % 3
    for grid, exact in ((np.arange(1.0, 53.0), True), (np.arange(4.0, 53.0, 4.0), False)):
        released = []
        for s in range(3):
            mine = site == s
            n_risk, n_event = grid_counts(weeks[mine], arrest[mine], fin[mine], 2, grid)
            released.append((n_risk, n_event, np.zeros(n_risk.shape, dtype=np.bool_)))
        pooled = pool_counts(released, (2, len(grid)))
        km, test = kaplan_meier(pooled), log_rank(pooled)
        t, e = _on_grid(weeks, arrest.astype(int), list(grid))
        if exact:
            np.testing.assert_array_equal(t, weeks)  # every week is a grid time
        for g in (0, 1):
            ref = KaplanMeierFitter().fit(t[fin == g], e[fin == g])
            want = ref.survival_function_at_times(grid).to_numpy()
            np.testing.assert_allclose(km.surv[g], want, rtol=1e-12, atol=0)
            raw = KaplanMeierFitter().fit(weeks[fin == g], arrest[fin == g])
            np.testing.assert_allclose(km.surv[g], raw.survival_function_at_times(grid), rtol=1e-12)
        ref_test = multivariate_logrank_test(t, fin, e)
        assert test.chisq == pytest.approx(ref_test.test_statistic, rel=1e-10)
        raw_test = multivariate_logrank_test(weeks, fin, arrest)
        gap = abs(test.chisq / raw_test.test_statistic - 1)
        assert gap < 1e-10 if exact else gap > 1e-3


def test_cox__stratified_by_site_equals_lifelines(
    federated: StudyOutcome, pooled: pd.DataFrame
) -> None:
    df = pooled.dropna(subset=COVARIATES)[[*COVARIATES, "RFS_DAYS", "RFS_EVENT", "SITE"]]
    ref = CoxPHFitter().fit(df, "RFS_DAYS", "RFS_EVENT", strata=["SITE"], fit_options=TIGHT)
    table = _table(federated.out / "cox.tsv")
    assert list(table.columns)[:5] == ["TERM", "COEF", "SE", "HR", "P"]
    assert table["TERM"].tolist() == COVARIATES
    coef = table["COEF"].astype(float).to_numpy()
    want = ref.params_[COVARIATES].to_numpy()
    assert np.max(np.abs(coef / want - 1)) <= 1e-6
    se = table["SE"].astype(float).to_numpy()
    assert np.max(np.abs(se / ref.standard_errors_[COVARIATES].to_numpy() - 1)) <= 1e-6
    np.testing.assert_allclose(table["HR"].astype(float), np.exp(want), rtol=1e-6)
    np.testing.assert_allclose(
        table["P"].astype(float), ref.summary.loc[COVARIATES, "p"], rtol=1e-5
    )
    lower = ref.summary.loc[COVARIATES, "exp(coef) lower 95%"].to_numpy()
    np.testing.assert_allclose(table["HR_LOWER95"].astype(float), lower, rtol=1e-6)
    # the simulated effect of the score is recovered (truth: log HR 0.05 per point)
    assert 0.02 < coef[0] < 0.08


def test_cox__breslow_ties_equal_statsmodels_phreg_stratified_by_site(
    federated: StudyOutcome, pooled: pd.DataFrame
) -> None:
    df = pooled.dropna(subset=COVARIATES)
    ref = PHReg(
        df["RFS_DAYS"].to_numpy(float),
        df[COVARIATES].to_numpy(float),
        status=df["RFS_EVENT"].to_numpy(float),
        strata=df["SITE"].to_numpy(),
        ties="breslow",
    ).fit(tol=1e-14)
    table = _table(federated.out / "cox_breslow.cox.tsv")
    coef = table["COEF"].astype(float).to_numpy()
    assert np.max(np.abs(coef / ref.params - 1)) <= 1e-6
    assert np.max(np.abs(table["SE"].astype(float).to_numpy() / ref.bse - 1)) <= 1e-6
    efron = _table(federated.out / "cox.tsv")["COEF"].astype(float).to_numpy()
    assert not np.array_equal(coef, efron)  # the synthetic times have ties
