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
from lifelines.statistics import multivariate_logrank_test
from timed import TimedTransport  # bench/timed.py: python puts bench/ on sys.path

from genofed.common.study import study_from_mapping
from genofed.coordinator.runner import run_study
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
    (args.work / "survival.json").write_text(json.dumps(report, indent=2) + "\n")
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
