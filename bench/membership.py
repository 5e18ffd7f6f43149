"""Benchmark: what the membership-inference limit costs, by limit and cohort size.

For each cohort size n and limit (``max_membership_power`` at
``membership_fpr = 0.05``), draws one site's genotype counts of M variants
under Hardy–Weinberg from an array-like allele-frequency spectrum (Beta(0.5,
2) clipped to [0.001, 0.999]), applies small-cell suppression
(``min_cell_count = 10``) and then the membership check exactly as a
``plain`` count release does (:func:`genofed.site_agent.privacy.membership_release.check_release`,
site-frequency reference), and reports the share of the M variants that
would leave, the power before and after, and the time the check took (the
counting itself is the release's usual cost, measured by
``bench/freq_hardy.py``, and is not included).

    .venv/bin/python bench/membership.py                          # the default grid
    .venv/bin/python bench/membership.py --sizes 10000 --variants 100000 --limits 0.1

Results go to ``bench/out/membership.json``, with the machine load (``uptime``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np

from genofed.site_agent.privacy.membership_release import check_release
from genofed.site_agent.privacy.policy import SitePolicy
from genofed.site_agent.privacy.suppression import GENOTYPE_CELLS, suppress_small_cells

HERE = Path(__file__).resolve().parent


def hwe_counts(rng: np.random.Generator, n: int, p: np.ndarray) -> np.ndarray:
    """(M, 4) genotype counts of n people under HWE (no missing calls)."""
    hom_alt = rng.binomial(n, p**2)
    het = rng.binomial(n - hom_alt, 2 * p * (1 - p) / (1 - p**2))
    hom_ref = n - hom_alt - het
    return np.stack([hom_ref, het, hom_alt, np.zeros_like(het)], axis=1).astype(np.int64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 500, 2000, 10000])
    parser.add_argument("--variants", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--limits", type=float, nargs="+", default=[0.1, 0.2, 0.5])
    parser.add_argument("--min-cell-count", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=HERE / "out")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    rows = []
    for m in args.variants:
        p = rng.beta(0.5, 2.0, m).clip(0.001, 0.999)
        ids = np.array([f"v{i}" for i in range(m)])
        ref, alt = np.full(m, "A"), np.full(m, "G")
        for n in args.sizes:
            counts = hwe_counts(rng, n, p)
            small = suppress_small_cells(counts, args.min_cell_count, GENOTYPE_CELLS)
            for limit in args.limits:
                policy = SitePolicy(
                    demo=False, allowed_analyses=frozenset({"freq"}), max_membership_power=limit
                )
                t0 = time.perf_counter()
                decision = check_release(policy, counts, small.withheld, ids, ref, alt)
                seconds = time.perf_counter() - t0
                record = json.loads(decision.facts["noise"])["membership"]
                released = m - small.n_withheld - int(decision.withheld.sum())
                row = {
                    "n": n,
                    "variants": m,
                    "limit": limit,
                    "small_cells_withheld": small.n_withheld,
                    "membership_withheld": int(decision.withheld.sum()),
                    "released": released,
                    "share_released": released / m,
                    "power_before": record["power_before"],
                    "power_after": record["power"],
                    "check_seconds": round(seconds, 3),
                }
                rows.append(row)
                print(
                    f"n={n:>6} M={m:>7} limit={limit:<4} released {released:>6} "
                    f"({100 * released / m:5.1f} %), small cells {small.n_withheld:>6}, "
                    f"power {record['power_before']:.3f} -> {record['power']:.3f}, "
                    f"{seconds:.2f} s",
                    flush=True,
                )
    load = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    doc = {"rows": rows, "uptime": load, "cpus": os.cpu_count(), "fpr": 0.05}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "membership.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(load)


if __name__ == "__main__":
    main()
