"""Benchmark: federated survival analyses (``km``, ``cox``) against lifelines on pooled data.

Makes (or reuses) a synthetic 3-site cohort (few variants: survival reads
only the phenotype and covariate tables), runs a study with a Kaplan-Meier
analysis by genomic risk group and a Cox model stratified by site in one
process through the record codec and the site handler, and fits the same
models centrally with lifelines on ``pooled/`` (KM and log-rank on the
grid-coarsened times, ``CoxPHFitter(strata=["SITE"])``).

Reports, per analysis: each site's local-step wall time (all rounds), the
coordinator's time (everything that is not a site), rounds, bytes released
per site, lifelines' wall time, and the accuracy against lifelines (largest
absolute difference of the KM estimates and bands, relative difference of
the log-rank statistic, largest relative error of the Cox coefficients and
standard errors).

Then the cost of the grid: ``km`` estimates are at the grid's resolution
(event and censoring times rounded up to the grid, follow-up beyond its last
time censored there; :mod:`genofed.common.wire.survival`). On a real cohort,
lifelines' GBSG2 breast cancer trial (686 patients, recurrence-free survival
in days up to 2,659, by hormonal therapy), split into 3 sites, the site and
coordinator cores (exactly what a ``km`` round computes) run on several grids
and are compared with the ordinary Kaplan-Meier estimate and log-rank test
on the raw times (lifelines): the largest survival difference at the grid
times and over the whole curve (the grid curve as a step function), the
largest difference between ``N_RISK`` and lifelines' number at risk at the
grid time, and the log-rank statistic and p. The check that the grid curves
equal lifelines on the rounded-up times is reported too.

    .venv/bin/python bench/survival.py --samples 30000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.datasets import load_gbsg2
from lifelines.statistics import multivariate_logrank_test
from timed import TimedTransport  # bench/timed.py: python puts bench/ on sys.path

from genofed.common.study import study_from_mapping
from genofed.common.wire.survival import MAX_GRID, default_grid
from genofed.coordinator.combine.survival import kaplan_meier, log_rank, pool_counts
from genofed.coordinator.runner import run_study
from genofed.site_agent.stats.survival import grid_counts
from genofed.synth import write_cohorts

HERE = Path(__file__).resolve().parent
GRID = [182, 365, 730, 1095, 1461, 1826, 2191, 2557, 2922, 3287, 3652]
CUTS = [18, 31]
COVARIATES = ["RSCORE", "AGE", "SEX"]
LABELS = ["RSCORE<18", "18<=RSCORE<31", "RSCORE>=31"]


def pooled_table(cohort_dir: Path) -> pd.DataFrame:
    pheno = pd.read_csv(cohort_dir / "pooled" / "pheno.tsv", sep="\t", na_values=["NA"])
    covar = pd.read_csv(cohort_dir / "pooled" / "covar.tsv", sep="\t")
    sites = pd.read_csv(cohort_dir / "populations.tsv", sep="\t")[["IID", "SITE"]]
    return pheno.merge(covar, on=["#FID", "IID"]).merge(sites, on="IID")


def run(kind: str, analysis: dict[str, object], sites: list[Path], out: Path):  # type: ignore[no-untyped-def]
    study = study_from_mapping(
        {"study": {"name": f"bench-{kind}"}, "analysis": [analysis]}, path=Path("<bench>")
    )
    request_kind = "km_counts" if kind == "km" else "cox_step"
    transport = TimedTransport(sites, (request_kind,))
    start = time.perf_counter()
    outcome = run_study(study, transport, out, engine="bench", overwrite=True)
    total = time.perf_counter() - start
    return outcome, transport, total


def km_reference(df: pd.DataFrame) -> tuple[dict[str, np.ndarray], float, float]:
    """Lifelines on grid-coarsened times: {label: surv, lower, upper}, log-rank, seconds."""
    start = time.perf_counter()
    df = df.dropna(subset=["RSCORE"])
    grid = np.asarray(GRID, dtype=float)
    slot = np.searchsorted(grid, df["RFS_DAYS"].to_numpy(float), side="left")
    t = grid[np.minimum(slot, len(grid) - 1)]
    e = np.where(slot == len(grid), 0, df["RFS_EVENT"].to_numpy(int))
    score = df["RSCORE"].to_numpy(float)
    group = np.digitize(score, CUTS)
    curves = {}
    for g, label in enumerate(LABELS):
        kmf = KaplanMeierFitter().fit(t[group == g], e[group == g])
        cols = [
            kmf.survival_function_.iloc[:, 0],
            *(kmf.confidence_interval_.iloc[:, i] for i in (0, 1)),
        ]
        curves[label] = np.column_stack([c.reindex(GRID, method="ffill").to_numpy() for c in cols])
    test = multivariate_logrank_test(t, group, e)
    return curves, float(test.test_statistic), time.perf_counter() - start


#: GBSG2's follow-up horizon for the grids below: 8 years, in days.
GBSG2_HORIZON = 2922
#: The whole-curve comparison stops where fewer are at risk (the default min_cell_count).
CURVE_MIN_AT_RISK = 10


def resolution_grids(horizon: int) -> dict[str, tuple[float, ...]]:
    """Grids up to ``horizon`` days: 6-monthly, monthly, weekly, and ``horizon``'s default."""

    def steps(width: float) -> tuple[float, ...]:
        n = int(np.ceil(horizon / width))
        return tuple(float(width * k) for k in range(1, n + 1))

    return {
        "6-monthly": steps(365.25 / 2),
        "monthly": steps(365.25 / 12),
        "weekly": steps(7.0),
        f"horizon = {horizon} ({MAX_GRID} points)": default_grid(horizon),
    }


def _raw_surv(kmf: KaplanMeierFitter, t: np.ndarray) -> np.ndarray:
    return np.asarray(kmf.survival_function_at_times(t), dtype=np.float64)


def grid_resolution(sites: int = 3) -> dict[str, object]:
    """KM and log-rank on GBSG2 at several grids against lifelines on the raw times."""
    df = load_gbsg2()
    time_ = df["time"].to_numpy(np.float64)
    event = df["cens"].to_numpy(np.int64) == 1
    group = (df["horTh"] == "yes").to_numpy(np.int64)  # 0: no hormonal therapy, 1: therapy
    site_of = np.arange(len(df)) % sites
    raw = [KaplanMeierFitter().fit(time_[group == g], event[group == g]) for g in (0, 1)]
    raw_test = multivariate_logrank_test(time_, group, event)
    raw_chisq = float(raw_test.test_statistic)
    rows: dict[str, object] = {}
    for label, grid_t in resolution_grids(GBSG2_HORIZON).items():
        grid = np.asarray(grid_t)
        released = []
        for s in range(sites):
            mine = site_of == s
            n_risk, n_event = grid_counts(time_[mine], event[mine], group[mine], 2, grid)
            released.append((n_risk, n_event, np.zeros(n_risk.shape, dtype=np.bool_)))
        pooled = pool_counts(released, (2, len(grid)))
        km = kaplan_meier(pooled)
        test = log_rank(pooled)
        slot = np.searchsorted(grid, time_, side="left")  # the times rounded up to the grid
        rounded = grid[np.minimum(slot, len(grid) - 1)]
        kept = np.where(slot == len(grid), False, event)
        at_grid = curve = vs_rounded = 0.0
        risk = 0
        for g in (0, 1):
            surv = km.surv[g]
            at_grid = max(at_grid, float(np.nanmax(np.abs(surv - _raw_surv(raw[g], grid)))))
            # the grid curve as a step function against the raw one, at every jump of
            # either while at least CURVE_MIN_AT_RISK are at risk (at the tail one
            # event among a few moves the raw curve more than any grid step explains)
            mine = time_[group == g]
            points = np.union1d(grid, mine[mine <= grid[-1]])
            at_risk = (mine[None, :] >= points[:, None]).sum(axis=1)
            points = points[at_risk >= CURVE_MIN_AT_RISK]
            where = np.searchsorted(grid, points, side="right") - 1
            step = np.where(where >= 0, surv[np.maximum(where, 0)], 1.0)
            curve = max(curve, float(np.max(np.abs(step - _raw_surv(raw[g], points)))))
            at_t = np.array([int(((group == g) & (time_ >= t)).sum()) for t in grid])
            risk = max(risk, int(np.max(np.abs(pooled.n_risk[g] - at_t))))
            ref = KaplanMeierFitter().fit(rounded[group == g], kept[group == g])
            vs_rounded = max(vs_rounded, float(np.nanmax(np.abs(surv - _raw_surv(ref, grid)))))
        rows[label] = {
            "grid_points": len(grid),
            "step": round(float(grid[1] - grid[0]), 3),
            "max_abs_surv_diff_at_grid_times": float(f"{at_grid:.3g}"),
            f"max_abs_surv_diff_over_the_curve_{CURVE_MIN_AT_RISK}_at_risk": float(f"{curve:.3g}"),
            "max_abs_n_risk_diff_at_grid_times": risk,
            "logrank_chisq": round(test.chisq, 4),
            "logrank_chisq_rel_diff": float(f"{abs(test.chisq / raw_chisq - 1):.3g}"),
            "logrank_p": float(f"{test.p:.4g}"),
            "max_abs_surv_diff_vs_lifelines_on_rounded_times": float(f"{vs_rounded:.3g}"),
        }
    return {
        "dataset": "lifelines.datasets.load_gbsg2 (686 patients, time in days, by horTh)",
        "sites": sites,
        "raw_logrank_chisq": round(raw_chisq, 4),
        "raw_logrank_p": float(f"{raw_test.p_value:.4g}"),
        "grids": rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--samples", type=int, default=30000)
    ap.add_argument("--variants", type=int, default=20)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--work", type=Path, default=HERE / "out" / "survival")
    args = ap.parse_args()
    cohort_dir = args.work / f"cohort-{args.samples}x{args.variants}-s{args.seed}"
    if not (cohort_dir / "pooled").is_dir():
        write_cohorts(
            cohort_dir, sites=3, samples=args.samples, variants=args.variants, seed=args.seed
        )
    sites = sorted(p for p in cohort_dir.glob("site-*") if p.is_dir())
    df = pooled_table(cohort_dir)
    common = {"time": "RFS_DAYS", "event": "RFS_EVENT"}
    report: dict[str, object] = {"samples": args.samples, "sites": 3, "grid_points": len(GRID)}

    km_spec = {"kind": "km", **common, "group": "RSCORE", "cuts": CUTS, "grid": GRID}
    outcome, transport, total = run("km", km_spec, sites, args.work / "results-km")
    curves, chisq, ref_s = km_reference(df)
    table = pd.read_csv(outcome.out / "km.tsv", sep="\t")
    worst = 0.0
    for label in LABELS:
        got = table[table["GROUP"] == label][["SURV", "LOWER", "UPPER"]].to_numpy(float)
        worst = max(worst, float(np.nanmax(np.abs(got - curves[label]))))
    logrank = pd.read_csv(outcome.out / "logrank.tsv", sep="\t")
    report["km"] = {
        "site_local_s": {k: round(v, 3) for k, v in transport.seconds.items()},
        "coordinator_s": round(total - sum(transport.seconds.values()), 3),
        "rounds": 1,
        "bytes_per_site": dict(transport.released),
        "lifelines_s": round(ref_s, 3),
        "max_abs_diff_surv_and_band": worst,
        "logrank_rel_diff": abs(float(logrank["CHISQ"][0]) / chisq - 1),
    }

    cox_spec = {"kind": "cox", **common, "covariates": COVARIATES}
    outcome, transport, total = run("cox", cox_spec, sites, args.work / "results-cox")
    start = time.perf_counter()
    data = df.dropna(subset=COVARIATES)[[*COVARIATES, "RFS_DAYS", "RFS_EVENT", "SITE"]]
    ref = CoxPHFitter().fit(
        data,
        "RFS_DAYS",
        "RFS_EVENT",
        strata=["SITE"],
        fit_options={"precision": 1e-20, "r_precision": 1e-16},
    )
    ref_s = time.perf_counter() - start
    cox = pd.read_csv(outcome.out / "cox.tsv", sep="\t").set_index("TERM")
    report["cox"] = {
        "site_local_s": {k: round(v, 3) for k, v in transport.seconds.items()},
        "coordinator_s": round(total - sum(transport.seconds.values()), 3),
        "rounds": outcome.summary["cox"]["rounds"],  # type: ignore[index]
        "bytes_per_site": dict(transport.released),
        "lifelines_s": round(ref_s, 3),
        "coef_max_rel_err": float(
            np.max(np.abs(cox.loc[COVARIATES, "COEF"] / ref.params_[COVARIATES] - 1))
        ),
        "se_max_rel_err": float(
            np.max(np.abs(cox.loc[COVARIATES, "SE"] / ref.standard_errors_[COVARIATES] - 1))
        ),
        "hr": {t: round(float(cox.loc[t, "HR"]), 4) for t in COVARIATES},
    }
    report["km_grid_resolution"] = grid_resolution()
    (args.work / "survival.json").write_text(json.dumps(report, indent=2) + "\n")
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
