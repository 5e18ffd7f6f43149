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
    .venv/bin/python bench/membership.py --release 10000x100000   # plus one whole release

``--release SAMPLESxVARIANTS`` also times a whole ``freq`` release through the
coordinator and the site's release path (in process, one synthetic msprime
site, ``min_cell_count = 10``, signed and auto-approved) without and with
``max_membership_power = 0.1``: the study's wall time, the time inside the
membership check, and the variants released.

Results go to ``bench/out/membership.json``, with the machine load (``uptime``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from genofed.common.signing import generate_private_key, public_key_text, sign_study  # noqa: E402
from genofed.common.study import study_from_mapping  # noqa: E402
from genofed.coordinator.runner import run_study  # noqa: E402
from genofed.site_agent.privacy import membership_release  # noqa: E402
from genofed.site_agent.privacy.membership_release import check_release  # noqa: E402
from genofed.site_agent.privacy.policy import POLICY_FILE, SitePolicy  # noqa: E402
from genofed.site_agent.privacy.suppression import (  # noqa: E402
    GENOTYPE_CELLS,
    suppress_small_cells,
)
from genofed.site_agent.requests import counts as counts_module  # noqa: E402
from genofed.synth import write_cohorts  # noqa: E402
from tests.harness import InProcessTransport  # noqa: E402

HERE = Path(__file__).resolve().parent
KEY = generate_private_key()


def hwe_counts(rng: np.random.Generator, n: int, p: np.ndarray) -> np.ndarray:
    """(M, 4) genotype counts of n people under HWE (no missing calls)."""
    hom_alt = rng.binomial(n, p**2)
    het = rng.binomial(n - hom_alt, 2 * p * (1 - p) / (1 - p**2))
    hom_ref = n - hom_alt - het
    return np.stack([hom_ref, het, hom_alt, np.zeros_like(het)], axis=1).astype(np.int64)


def release_policy(limit: float | None) -> str:
    check = "" if limit is None else f"max_membership_power = {limit}\nmembership_fpr = 0.05\n"
    return f"""
[policy]
version = 1
allowed_analyses = ["variants", "freq"]
allowed_release_modes = ["plain"]
min_cohort_size = 50
min_cell_count = 10
{check}
[[policy.trusted_analysts]]
name = "alice"
public_key = "{public_key_text(KEY.public_key())}"

[[policy.auto_approve]]
name = "alice"
analysts = ["alice"]
"""


def whole_release(size: str, out: Path) -> list[dict[str, Any]]:
    """A freq release without and with the limit, timed (see the module docstring)."""
    samples, variants = (int(x) for x in size.split("x"))
    work = out / "membership" / f"release-{size}"
    shutil.rmtree(work, ignore_errors=True)
    started = time.perf_counter()
    cohort = write_cohorts(work / "cohort", sites=1, samples=samples, variants=variants, seed=5)
    print(f"cohort {size} written in {time.perf_counter() - started:.0f} s", flush=True)
    spent = [0.0]
    original = membership_release.check_release

    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - t0

    counts_module.check_release = timed  # type: ignore[assignment]
    study = study_from_mapping(
        {"study": {"name": "freq"}, "analysis": [{"kind": "freq"}]}, path=Path("<bench>")
    )
    rows = []
    for limit in (None, 0.1):
        site = work / f"site-{limit}"
        shutil.copytree(cohort.sites[0], site)
        (site / POLICY_FILE).write_text(release_policy(limit))
        spent[0] = 0.0
        t0 = time.perf_counter()
        outcome = run_study(
            study,
            InProcessTransport([site]),
            work / f"out-{limit}",
            engine="t",
            signature=sign_study(study, KEY),
        )
        seconds = time.perf_counter() - t0
        freqs = (outcome.out / "freq.afreq").read_text().splitlines()[1:]
        released = sum(1 for line in freqs if not line.endswith("\tNA\tNA"))
        summary = outcome.summary.get("membership_power")
        row = {
            "size": size,
            "max_membership_power": limit,
            "study_seconds": round(seconds, 2),
            "check_seconds": round(spent[0], 2),
            "variants_released": released,
            "membership_power": summary,
        }
        print(row, flush=True)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 500, 2000, 10000])
    parser.add_argument("--variants", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--limits", type=float, nargs="+", default=[0.1, 0.2, 0.5])
    parser.add_argument("--min-cell-count", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument("--release", help="SAMPLESxVARIANTS: also time one whole release")
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
    releases = whole_release(args.release, args.out) if args.release else []
    load = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    doc = {"rows": rows, "releases": releases, "uptime": load, "cpus": os.cpu_count(), "fpr": 0.05}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "membership.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(load)


if __name__ == "__main__":
    main()
