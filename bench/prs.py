"""Benchmark: federated polygenic risk score (``prs``) against ``plink2 --score`` on pooled data.

Makes (or reuses) a synthetic 3-site cohort and a PGS Catalog scoring file
with a weight for every variant of it (effect allele ALT or REF at random,
a fifth of the rows on the other strand), runs the ``prs`` study in one
process through the record codec and the site handler (no Ray), and runs
``plink2 --score ... cols=+scoresums`` on ``pooled/``, one thread each.

Reports each site's local-step wall time (all rounds), the coordinator's
time, bytes each site released and bytes sent to each site (the scoring file
travels with every request), rounds, plink2's wall time and peak memory, and
the ratio of the slowest site to plink2 (which only scores; the statistics
after it are not timed).

    .venv/bin/python bench/prs.py --samples 3000 --variants 20000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from measure import measure  # bench/measure.py: python puts bench/ on sys.path
from timed import TimedTransport  # bench/timed.py: python puts bench/ on sys.path

from genofed.common.study import study_from_mapping
from genofed.coordinator.runner import run_study
from genofed.synth import write_cohorts

HERE = Path(__file__).resolve().parent
_COMPLEMENT = str.maketrans("ACGT", "TGCA")


def write_scoring_files(cohort: Path, work: Path, seed: int) -> tuple[Path, Path]:
    """A PGS-format file over every variant, and its plink2 translation (ID, allele, weight)."""
    rng = np.random.default_rng(seed)
    bim = [line.split("\t") for line in (cohort / "pooled" / "pooled.bim").read_text().splitlines()]
    pgs = [
        "#format_version=2.0",
        "#pgs_id=BENCH",
        "#genome_build=NR",
        "rsID\tchr_name\tchr_position\teffect_allele\tother_allele\teffect_weight",
    ]
    p2 = []
    for chrom, vid, _, pos, alt, ref in bim:
        w = float(rng.normal(0, 0.05))
        effect, other = (ref, alt) if rng.random() < 0.5 else (alt, ref)
        p2.append(f"{vid}\t{effect}\t{w!r}")
        if rng.random() < 0.2 and effect.translate(_COMPLEMENT) != other:
            effect, other = effect.translate(_COMPLEMENT), other.translate(_COMPLEMENT)
        pgs.append(f"{vid}\t{chrom}\t{pos}\t{effect}\t{other}\t{w!r}")
    work.mkdir(parents=True, exist_ok=True)
    (work / "bench.pgs.txt").write_text("\n".join(pgs) + "\n")
    (work / "bench.plink2.txt").write_text("\n".join(p2) + "\n")
    return work / "bench.pgs.txt", work / "bench.plink2.txt"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--samples", type=int, default=3000)
    ap.add_argument("--variants", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--work", type=Path, default=HERE / "out" / "prs")
    args = ap.parse_args()
    cohort_dir = args.work / f"cohort-{args.samples}x{args.variants}-s{args.seed}"
    if not (cohort_dir / "pooled").is_dir():
        write_cohorts(
            cohort_dir, sites=3, samples=args.samples, variants=args.variants, seed=args.seed
        )
    pgs, p2_file = write_scoring_files(cohort_dir, args.work, args.seed)
    sites = sorted(p for p in cohort_dir.glob("site-*") if p.is_dir())
    study = study_from_mapping(
        {
            "study": {"name": "bench-prs"},
            "analysis": [
                {
                    "kind": "prs",
                    "scoring_file": str(pgs),
                    "phenotype": "DISEASE",
                    "covariates": ["AGE", "SEX"],
                }
            ],
        },
        path=Path("<bench>"),
    )
    transport = TimedTransport(sites, ("prs",))
    start = time.perf_counter()
    outcome = run_study(study, transport, args.work / "results", engine="bench", overwrite=True)
    total = time.perf_counter() - start
    p2 = measure(
        [
            "plink2",
            "--bfile",
            str(cohort_dir / "pooled" / "pooled"),
            "--score",
            str(p2_file),
            "1",
            "2",
            "3",
            "cols=+scoresums",
            "--threads",
            "1",
            "--out",
            str(args.work / "plink2"),
        ]
    )
    site_s = dict(transport.seconds)
    prs = outcome.summary["prs"]
    report = {
        "samples": args.samples,
        "variants_scored": args.variants,
        "sites": 3,
        "site_local_s": {k: round(v, 2) for k, v in site_s.items()},
        "coordinator_s": round(total - sum(site_s.values()), 2),
        "end_to_end_in_process_s": round(total, 2),
        "plink2_score_s": round(p2["wall_s"], 2),
        "plink2_peak_mib": round(p2["peak_mib"], 1),
        "slowest_site_over_plink2": round(max(site_s.values()) / p2["wall_s"], 2),
        "bytes_released_per_site": dict(transport.released),
        "bytes_sent_to_each_site": dict(transport.received),
        "summary": prs,
    }
    (args.work / "prs.json").write_text(json.dumps(report, indent=2) + "\n")
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
