"""Benchmark: federated risk-model training (``train``): time per round per site, AUC vs epsilon.

Makes (or reuses) a synthetic 3-site cohort with ``--samples-per-site``
individuals at each site (default 10,000), then runs the same ``train``
study (logistic model on the simulated causal variants, AGE and SEX) in one
process through the record codec and the site handler:

* without noise (exact updates), and
* with DP-SGD calibrated by each site to ``target_epsilon`` 1, 3 and 8 for
  its training rounds (the noisy evaluation histogram adds ``eval_epsilon``;
  the table shows the total each site's ledger charged).

Every run starts from fresh copies of the site directories (fresh ledgers).
Reports, per run: seconds per round per site (median over rounds of the
site's whole ``train_round`` request, and of the local update alone), the
pooled AUC and observed/expected from the federated evaluation, each site's
epsilon, and, as reference, the AUC of a logistic regression fitted
centrally (Newton) on the pooled cohort. Writes ``bench/out/train/train.json``,
``train.md`` (table) and ``auc_vs_epsilon.png``.

    .venv/bin/python bench/train.py                 # 3 x 10,000 samples
    .venv/bin/python bench/train.py --samples-per-site 2000 --rounds 3   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from timed import TimedTransport  # bench/timed.py: python puts bench/ on sys.path

from genofed.common.study import study_from_mapping
from genofed.common.wire.train import scale_covariates
from genofed.coordinator.runner import run_study
from genofed.site_agent.io.pheno import match_samples, read_pheno_table
from genofed.site_agent.io.plink import BedFile
from genofed.synth import SynthSummary, write_cohorts

HERE = Path(__file__).resolve().parent
RANGES = [[30, 80], [1, 2]]
EPSILONS = (1.0, 3.0, 8.0)


def pooled_data(cohort: SynthSummary) -> tuple[np.ndarray, np.ndarray]:
    """Pooled features (as train_wire defines them) and 0/1 labels, read from ``pooled/``."""
    with BedFile(next(cohort.pooled.glob("*.bed"))) as bed:
        pheno = read_pheno_table(cohort.pooled / "pheno.tsv")
        covar = read_pheno_table(cohort.pooled / "covar.tsv")
        match = match_samples(bed.samples, pheno, covar)
        y = pheno.column("DISEASE")[match.table_idx[0]]
        cov = np.column_stack([covar.column(c)[match.table_idx[1]] for c in ("AGE", "SEX")])
        ids = list(bed.variants.id)
        index = np.array([ids.index(v) for v in cohort.causal_variants])
        dosages = np.concatenate([d for _, d in bed.iter_dosages(index)], axis=0)
    keep = ~np.isnan(y) & ~np.isnan(cov).any(axis=1)
    g = dosages[:, match.genotype_idx].T.astype(np.float64)
    g = np.where(g < 0, 0.0, g - 1.0)
    return np.column_stack([g, scale_covariates(cov, RANGES)])[keep], (y[keep] == 2).astype(float)


def central_auc(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """AUC of a maximum-likelihood logistic regression on the pooled cohort, and seconds."""
    start = time.perf_counter()
    design = np.column_stack([np.ones(len(y)), x])
    beta = np.zeros(design.shape[1])
    for _ in range(50):
        mu = 1 / (1 + np.exp(-design @ beta))
        step = np.linalg.solve((design.T * (mu * (1 - mu))) @ design, design.T @ (y - mu))
        beta += step
        if np.abs(step).max() < 1e-10:
            break
    score = design @ beta
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score))
    ranks[order] = np.arange(1, len(score) + 1)
    n1 = y.sum()
    auc = (ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * (len(y) - n1))
    return float(auc), time.perf_counter() - start


def run_one(
    cohort: SynthSummary, work: Path, label: str, params: dict[str, object]
) -> dict[str, object]:
    sites = []
    for site in cohort.sites:
        copy = work / "sites" / label / site.name
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(site, copy)
        sites.append(copy)
    analysis = {
        "kind": "train",
        "target": "DISEASE",
        "variants": list(cohort.causal_variants),
        "covariates": ["AGE", "SEX"],
        "covariate_ranges": RANGES,
        **params,
    }
    study = study_from_mapping(
        {"study": {"name": f"bench-train-{label}"}, "analysis": [analysis]}, path=Path("<bench>")
    )
    transport = TimedTransport(sites, ("train_round",))
    start = time.perf_counter()
    run_study(study, transport, work / "results" / label, engine="bench", overwrite=True)
    total = time.perf_counter() - start
    summary = json.loads((work / "results" / label / "train.summary.json").read_text())
    return {
        "label": label,
        "params": params,
        "auc": summary["auc"],
        "observed_over_expected": summary["calibration"]["observed_over_expected"],
        "epsilon_per_site": summary["epsilon_per_site"],
        "opacus_epsilon_per_site": {
            s: v.get("opacus_epsilon") for s, v in summary["sites"].items()
        },
        "auc_per_site": {s: v["auc"] for s, v in summary["sites"].items()},
        "seconds_per_round_per_site": {
            s: round(statistics.median(v), 3) for s, v in transport.request_s.items()
        },
        "local_update_seconds_per_round_per_site": {
            s: round(
                statistics.median(float(f["train_seconds"]) for f in facts if "train_seconds" in f),
                3,
            )
            for s, facts in transport.facts.items()
        },
        "bytes_released_per_round_per_site": {
            s: b // int(params["rounds"])
            for s, b in transport.released.items()  # type: ignore[call-overload]
        },
        "wall_seconds": round(total, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--samples-per-site", type=int, default=10_000)
    ap.add_argument("--variants", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--learning-rate", type=float, default=1.0)
    ap.add_argument("--eval-epsilon", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--work", type=Path, default=HERE / "out" / "train")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    cohort_dir = args.work / f"cohort-{args.samples_per_site}x3x{args.variants}-s{args.seed}"
    if (cohort_dir / "truth.json").exists():
        truth = json.loads((cohort_dir / "truth.json").read_text())
        cohort = SynthSummary(
            out=cohort_dir,
            sites=tuple(sorted(p for p in cohort_dir.glob("site-*") if p.is_dir())),
            pooled=cohort_dir / "pooled",
            n_samples=3 * args.samples_per_site,
            n_variants=args.variants,
            seed=args.seed,
            causal_variants=tuple(c["id"] for c in truth["causal"]),
        )
    else:
        cohort = write_cohorts(
            cohort_dir,
            sites=3,
            samples=3 * args.samples_per_site,
            variants=args.variants,
            seed=args.seed,
        )
    common = {
        "rounds": args.rounds,
        "local_epochs": 1,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "clipping_norm": 1.0,
        "eval_epsilon": args.eval_epsilon,
    }
    x, y = pooled_data(cohort)
    reference_auc, reference_s = central_auc(x, y)
    runs = [run_one(cohort, args.work, "no-noise", {**common, "noise_multiplier": 0.0})]
    for eps in EPSILONS:
        runs.append(run_one(cohort, args.work, f"eps{eps:g}", {**common, "target_epsilon": eps}))
    report = {
        "samples_per_site": args.samples_per_site,
        "features": len(cohort.causal_variants) + 2,
        "cpu_count": os.cpu_count(),
        "central_logistic_auc": round(reference_auc, 6),
        "central_seconds": round(reference_s, 3),
        "runs": runs,
    }
    (args.work / "train.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"train bench: 3 sites x {args.samples_per_site} samples, "
        f"{report['features']} features, {args.rounds} rounds, batch {args.batch_size}; "
        f"central logistic AUC {reference_auc:.4f}",
        "",
        "| run | target eps (DP-SGD) | eps charged per site (+ eval) | pooled AUC | "
        "O/E | s/round/site (request) | s/round/site (local update) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in runs:
        eps = r["epsilon_per_site"]
        charged = (
            "none"
            if all(v is None for v in eps.values())  # type: ignore[union-attr]
            else ", ".join(f"{v:.2f}" for v in eps.values())  # type: ignore[union-attr]
        )
        target = r["params"].get("target_epsilon", "none")  # type: ignore[union-attr]
        secs = ", ".join(f"{v:.2f}" for v in r["seconds_per_round_per_site"].values())  # type: ignore[union-attr]
        local = ", ".join(f"{v:.2f}" for v in r["local_update_seconds_per_round_per_site"].values())  # type: ignore[union-attr]
        lines.append(
            f"| {r['label']} | {target} | {charged} | {r['auc']:.4f} | "
            f"{r['observed_over_expected']:.3f} | {secs} | {local} |"
        )
    (args.work / "train.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    fig, ax = plt.subplots(figsize=(5, 3.5))
    noisy = [r for r in runs if r["label"] != "no-noise"]
    ax.plot(
        [r["params"]["target_epsilon"] for r in noisy],  # type: ignore[index]
        [r["auc"] for r in noisy],
        "o-",
        label="DP-SGD (target epsilon per site)",
    )
    ax.axhline(runs[0]["auc"], color="grey", ls="--", label="federated, no noise")  # type: ignore[arg-type]
    ax.axhline(reference_auc, color="black", ls=":", label="central logistic regression")
    ax.set_xscale("log")
    ax.set_xticks(list(EPSILONS), [f"{e:g}" for e in EPSILONS])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("epsilon per site (DP-SGD rounds)")
    ax.set_ylabel("pooled AUC (federated evaluation)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.work / "auc_vs_epsilon.png", dpi=120)
    json.dump(report, sys.stdout, indent=2)


if __name__ == "__main__":
    main()
