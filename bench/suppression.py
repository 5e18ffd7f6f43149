"""Benchmark: what small-cell suppression costs, by threshold.

Makes a synthetic 3-site cohort, runs the four count analyses (freq,
missing, gcount, hardy) on Flower's simulation engine once per
``min_cell_count`` (0 = off, the demo's setting), and reports per threshold
how many variants each site withheld, how many print NA in the pooled tables
(withheld by any site), the share of variants lost, split by pooled minor
allele frequency, and the wall time next to the unsuppressed run.

    .venv/bin/python bench/suppression.py                      # 3 x 1,000 samples, 2,000 variants
    .venv/bin/python bench/suppression.py --thresholds 0 5 10 20 --samples 6000

Results go to ``bench/out/suppression.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

from genofed.common.study import study_from_mapping
from genofed.simulation import run_simulated_study
from genofed.site_agent.privacy.policy import POLICY_FILE
from genofed.synth import write_cohorts

HERE = Path(__file__).resolve().parent
STUDY = study_from_mapping(
    {
        "study": {"name": "suppression"},
        "analysis": [{"kind": k} for k in ("freq", "missing", "gcount", "hardy")],
    },
    path=Path("<bench>"),
)


def _column(path: Path, name: str) -> list[str]:
    lines = path.read_text().splitlines()
    col = lines[0].split("\t").index(name)
    return [line.split("\t")[col] for line in lines[1:]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3000)
    parser.add_argument("--variants", type=int, default=2000)
    parser.add_argument("--thresholds", type=int, nargs="+", default=[0, 5, 10, 20])
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "out")
    args = parser.parse_args()
    work = args.out / "suppression"
    shutil.rmtree(work, ignore_errors=True)
    cohort = write_cohorts(
        work / "cohorts", sites=3, samples=args.samples, variants=args.variants, seed=args.seed
    )
    maf: np.ndarray | None = None
    rows = []
    for threshold in args.thresholds:
        for site in cohort.sites:  # the demo policy, with this threshold
            policy = site / POLICY_FILE
            text = policy.read_text()
            start = text.index("min_cell_count = ")
            end = text.index("\n", start)
            policy.write_text(f"{text[:start]}min_cell_count = {threshold}{text[end:]}")
        t0 = time.perf_counter()
        outcome = run_simulated_study(STUDY, cohort.sites, work / f"min{threshold}")
        wall = time.perf_counter() - t0
        freqs = _column(outcome.out / "freq.afreq", "ALT_FREQS")
        na = np.array([f == "NA" for f in freqs])
        if maf is None:  # the first run is the reference (put 0 first)
            alt = np.array([float(f) for f in freqs])
            maf = np.minimum(alt, 1 - alt)
        summary = outcome.summary["suppressed"]
        assert isinstance(summary, dict)
        rows.append(
            {
                "min_cell_count": threshold,
                "withheld_per_site": {s.name: summary[s.name] for s in outcome.sites},
                "variants_na": int(na.sum()),
                "share_na": round(float(na.mean()), 4),
                "share_na_maf<0.01": round(float(na[maf < 0.01].mean()), 4),
                "share_na_0.01<=maf<0.05": round(float(na[(maf >= 0.01) & (maf < 0.05)].mean()), 4),
                "share_na_maf>=0.05": round(float(na[maf >= 0.05].mean()), 4),
                "wall_s": round(wall, 2),
            }
        )
    report = {
        "samples": args.samples,
        "variants": args.variants,
        "sites": 3,
        "engine": "simulation",
        "rule": "a variant is withheld at a site when any nonzero genotype or missing count "
        "is below min_cell_count; NA in the pooled tables when any site withheld it",
        "results": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "suppression.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
