"""Benchmark: federated PCA against ``plink2 --pca approx`` (and exact ``--pca``) on pooled data.

Makes (or reuses) a synthetic 3-site cohort, runs a ``pca`` study in one
process through the record codec and the site handler (no Ray, so each
site's local step can be timed on its own), and runs plink2 on ``pooled/``
with one thread each (``OPENBLAS_NUM_THREADS=1``).

Reports: each site's local-step wall time (all pca rounds), the coordinator's
time (everything that is not a site), end-to-end time, rounds and
iterations, bytes each site released and received (per round and in all),
plink2's wall time and peak memory for ``--pca approx`` and ``--pca``, the
ratios from the same run, and the largest relative eigenvalue difference to
each plink2 run, ``--pca meanimpute`` included: GenoFed's matrix is plink2's
mean-imputed one (the reference; ``approx`` uses it too), and the default
``--pca`` differs from it when calls are missing.

    .venv/bin/python bench/pca.py --samples 3000 --variants 10000
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
from measure import measure  # bench/measure.py: python puts bench/ on sys.path
from timed import TimedTransport  # bench/timed.py: python puts bench/ on sys.path

from genofed.common.study import study_from_mapping
from genofed.coordinator.runner import run_study
from genofed.synth import write_cohorts

HERE = Path(__file__).resolve().parent


def _max_rel(ours: Path, theirs: Path) -> float:
    a, b = np.loadtxt(ours, ndmin=1), np.loadtxt(theirs, ndmin=1)
    return float(np.max(np.abs(a / b - 1.0)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--samples", type=int, default=3000)
    ap.add_argument("--variants", type=int, default=10000)
    ap.add_argument("--n-pcs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--work", type=Path, default=HERE / "out" / "pca")
    args = ap.parse_args()
    cohort_dir = args.work / f"cohort-{args.samples}x{args.variants}-s{args.seed}"
    if not (cohort_dir / "pooled").is_dir():
        write_cohorts(
            cohort_dir, sites=3, samples=args.samples, variants=args.variants, seed=args.seed
        )
    sites = sorted(p for p in cohort_dir.glob("site-*") if p.is_dir())
    study = study_from_mapping(
        {"study": {"name": "bench-pca"}, "analysis": [{"kind": "pca", "n_pcs": args.n_pcs}]},
        path=Path("<bench>"),
    )
    transport = TimedTransport(sites, ("pca",))
    out = args.work / "results"
    start = time.perf_counter()
    outcome = run_study(study, transport, out, engine="bench", overwrite=True)
    total = time.perf_counter() - start
    pooled = str(cohort_dir / "pooled" / "pooled")
    runs = {}
    for label, extra in (("approx", ["approx"]), ("meanimpute", ["meanimpute"]), ("exact", [])):
        prefix = args.work / f"plink2-{label}"
        cmd = ["plink2", "--bfile", pooled, "--pca", str(args.n_pcs), *extra, "--threads", "1"]
        runs[label] = measure([*cmd, "--out", str(prefix)])
        runs[label]["max_rel_eigenvalue_diff"] = _max_rel(
            out / "pca.eigenval", Path(f"{prefix}.eigenval")
        )
    site_s = dict(transport.seconds)
    slowest = max(site_s.values())
    stats = outcome.summary["pca"]
    rounds = stats["rounds"]  # type: ignore[index]
    report = {
        "samples": args.samples,
        "variants": args.variants,
        "n_pcs": args.n_pcs,
        "sites": len(sites),
        "rounds": rounds,
        "iterations": stats["iterations"],  # type: ignore[index]
        "converged": stats["converged"],  # type: ignore[index]
        "site_local_s": {k: round(v, 2) for k, v in site_s.items()},
        "coordinator_s": round(total - sum(site_s.values()), 2),
        "end_to_end_in_process_s": round(total, 2),
        "bytes_released_per_site": dict(transport.released),
        "bytes_received_per_site": dict(transport.received),
        "bytes_released_per_site_per_round": round(max(transport.released.values()) / rounds),
        "plink2_approx_s": round(runs["approx"]["wall_s"], 2),
        "plink2_approx_peak_mib": round(runs["approx"]["peak_mib"], 1),
        "plink2_exact_s": round(runs["exact"]["wall_s"], 2),
        "slowest_site_over_plink2_approx": round(slowest / runs["approx"]["wall_s"], 2),
        "end_to_end_over_plink2_approx": round(total / runs["approx"]["wall_s"], 2),
        "max_rel_eigenvalue_diff_vs_plink2_meanimpute": float(
            f"{runs['meanimpute']['max_rel_eigenvalue_diff']:.3g}"
        ),
        "max_rel_eigenvalue_diff_vs_plink2_exact": float(
            f"{runs['exact']['max_rel_eigenvalue_diff']:.3g}"
        ),
        "max_rel_eigenvalue_diff_vs_plink2_approx": float(
            f"{runs['approx']['max_rel_eigenvalue_diff']:.3g}"
        ),
    }
    (args.work / "pca.json").write_text(json.dumps(report, indent=2) + "\n")
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
