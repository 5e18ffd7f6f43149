"""Benchmark: federated GWAS (linear, logistic glm) against ``plink2 --glm`` on pooled data.

Makes (or reuses) a synthetic 3-site cohort, runs the study in one process
through the record codec and the site handler (no Ray, so each site's local
step can be timed on its own), and runs ``plink2 --glm`` with the same
phenotypes and covariates on ``pooled/``, one thread each
(``OPENBLAS_NUM_THREADS=1``; Debian's plink2 should use libopenblas0-pthread).

Reports, per model: each site's local-step wall time (all rounds), the
coordinator's time (everything that is not a site), peak memory of this
process and of plink2, bytes released per site (and per variant), rounds,
and the ratios to plink2 from the same run.

    .venv/bin/python bench/glm.py --samples 3000 --variants 20000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from measure import measure  # bench/measure.py: python puts bench/ on sys.path
from timed import TimedTransport  # bench/timed.py: python puts bench/ on sys.path

from genofed.common.study import study_from_mapping
from genofed.coordinator.runner import run_study
from genofed.synth import write_cohorts

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--samples", type=int, default=3000)
    ap.add_argument("--variants", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--work", type=Path, default=HERE / "out" / "glm")
    args = ap.parse_args()
    cohort_dir = args.work / f"cohort-{args.samples}x{args.variants}-s{args.seed}"
    if not (cohort_dir / "pooled").is_dir():
        write_cohorts(
            cohort_dir, sites=3, samples=args.samples, variants=args.variants, seed=args.seed
        )
    sites = sorted(p for p in cohort_dir.glob("site-*") if p.is_dir())
    report: dict[str, object] = {"samples": args.samples, "variants": args.variants, "sites": 3}
    for phenotype, model in (("QPHENO", "linear"), ("DISEASE", "logistic")):
        study = study_from_mapping(
            {
                "study": {"name": f"bench-{model}"},
                "analysis": [{"kind": "glm", "phenotype": phenotype, "covariates": ["AGE", "SEX"]}],
            },
            path=Path("<bench>"),
        )
        transport = TimedTransport(sites, ("glm",))
        out = args.work / f"results-{model}"
        start = time.perf_counter()
        outcome = run_study(study, transport, out, engine="bench", overwrite=True)
        total = time.perf_counter() - start
        p2 = measure(
            [
                "plink2",
                "--bfile",
                str(cohort_dir / "pooled" / "pooled"),
                "--pheno",
                str(cohort_dir / "pooled" / "pheno.tsv"),
                "--pheno-name",
                phenotype,
                "--covar",
                str(cohort_dir / "pooled" / "covar.tsv"),
                "--glm",
                "--threads",
                "1",
                "--out",
                str(args.work / f"plink2-{model}"),
            ]
        )
        site_s = dict(transport.seconds)
        slowest = max(site_s.values())
        row = {
            "site_local_s": {k: round(v, 2) for k, v in site_s.items()},
            "coordinator_s": round(total - sum(site_s.values()), 2),
            "end_to_end_in_process_s": round(total, 2),
            "plink2_s": round(p2["wall_s"], 2),
            "plink2_peak_mib": round(p2["peak_mib"], 1),
            "slowest_site_over_plink2": round(slowest / p2["wall_s"], 2),
            "bytes_per_site": dict(transport.released),
            "bytes_per_variant_per_site": round(
                max(transport.released.values()) / args.variants, 1
            ),
            "rounds": outcome.summary["glm"]["rounds"],  # type: ignore[index]
            "lambda_gc": outcome.summary["glm"]["lambda_gc"],  # type: ignore[index]
        }
        report[model] = row
    report["process_peak_rss_mib"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
    )
    (args.work / "glm.json").write_text(json.dumps(report, indent=2) + "\n")
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
