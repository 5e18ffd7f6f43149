"""Benchmark: the time SecAgg+ adds to the freq study (``exact``, ``distributed-dp`` vs ``plain``).

Makes a synthetic 3-site cohort and runs the same ``freq`` study in
``plain`` mode (per-site counts summed by the coordinator), ``exact`` mode
(counts summed with Flower's SecAgg+: four message stages, masking,
unmasking) and ``distributed-dp`` mode (the same, plus each site's noise
share), ``--repeats`` times each:

* on Flower's **simulation engine** (one Ray start per study), and
* with ``--deployment``, on a real loopback **deployment** (SuperLink with
  TLS and node auth, three SuperNodes: the e2e harness
  ``tests/e2e/federation.py``), one federation for all studies.

It reports, per mode, the median wall time of the genotype-counts round
(from ``provenance.json``: for SecAgg+ the whole four-stage protocol), of
the whole study, and the bytes of the counts arrays from the busiest site,
and checks that the ``exact`` tables equal the ``plain`` ones byte for byte.

    .venv/bin/python bench/secagg.py                         # 3 x 500 samples, 2,000 variants
    .venv/bin/python bench/secagg.py --variants 2000 20000 --repeats 3 --deployment

Results go to ``bench/out/secagg.json``.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from genofed.common.study import study_from_mapping  # noqa: E402
from genofed.simulation import run_simulated_study  # noqa: E402
from genofed.synth import write_cohorts  # noqa: E402

MODES = {
    "plain": {"mode": "plain"},
    "exact": {"mode": "exact"},
    "distributed-dp": {"mode": "distributed-dp", "epsilon": 10.0, "noise_shares": 3},
}
SITES = ("a", "b", "c")


def _toml(name: str, privacy: dict[str, object]) -> str:
    lines = [f'[study]\nname = "{name}"\n', "[privacy]"]
    for key, value in privacy.items():
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + '\n\n[[analysis]]\nkind = "freq"\n'


def _round(out: Path) -> dict[str, float]:
    rounds = json.loads((out / "provenance.json").read_text())["rounds"]
    counts = next(r for r in rounds if r["step"] == "genotype_counts")
    return {
        "counts_round_s": float(counts["seconds"]),
        "array_bytes_from_site": float(counts["array_bytes_from_site"]),
    }


def _summary(runs: list[dict[str, float]]) -> dict[str, float]:
    keys = runs[0].keys()
    return {f"{k}_median": round(statistics.median(r[k] for r in runs), 3) for k in keys} | {
        "counts_round_s_min": min(r["counts_round_s"] for r in runs),
        "counts_round_s_max": max(r["counts_round_s"] for r in runs),
        "repeats": len(runs),
    }


def _measure(
    run: Callable[[str, dict[str, object], Path], None], work: Path, repeats: int
) -> dict[str, dict[str, float]]:
    """Each mode ``repeats`` times, interleaved so that drift hits every mode alike."""
    runs: dict[str, list[dict[str, float]]] = {m: [] for m in MODES}
    for i in range(repeats):
        for mode, privacy in MODES.items():
            out = work / f"{mode}-{i}"
            started = time.monotonic()
            run(f"secagg-{mode}-{i}", privacy, out)
            runs[mode].append({"study_s": time.monotonic() - started, **_round(out)})
    for i in range(repeats):
        for table in ("freq.afreq",):
            if not filecmp.cmp(work / f"plain-{i}" / table, work / f"exact-{i}" / table, False):
                raise SystemExit(f"exact {table} differs from plain (repeat {i})")
    return {mode: _summary(r) for mode, r in runs.items()}


def simulation(sites: list[Path], work: Path, repeats: int) -> dict[str, dict[str, float]]:
    def run(name: str, privacy: dict[str, object], out: Path) -> None:
        study = study_from_mapping(
            {"study": {"name": name}, "privacy": privacy, "analysis": [{"kind": "freq"}]},
            path=Path("<bench>"),
        )
        run_simulated_study(study, sites, out)

    return _measure(run, work, repeats)


def deployment(sites: list[Path], work: Path, repeats: int) -> dict[str, object]:
    from tests.e2e.federation import make_federation

    started = time.monotonic()
    fed = make_federation(work, SITES, site_dirs=sites)
    try:
        fed.start_coordinator()
        for name in SITES:
            fed.register(f"site-{name}", fed.pki.node_keys[name][1])
        for name, site_dir in zip(SITES, sites, strict=True):
            fed.start_site(name, site_dir, fed.pki.node_keys[name][0])
        for proc in fed.sites.values():
            if not proc.wait_for("connected to the coordinator", 120):
                raise RuntimeError(proc.text())
        startup = time.monotonic() - started

        def run(name: str, privacy: dict[str, object], out: Path) -> None:
            study = work / f"{name}.toml"
            study.write_text(_toml(name, privacy))
            res = fed.genofed(
                "study", "run", str(study), "--superlink", fed.control, "--ca-cert",
                str(fed.pki.ca_cert), "--sites", "3", "--out", str(out), timeout=600,
            )  # fmt: skip
            if res.returncode != 0:
                raise RuntimeError(res.stdout + res.stderr)

        modes = _measure(run, work, repeats)
    finally:
        fed.stop_all()
    return {"federation_start_s": round(startup, 2), **modes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1500, help="total over the 3 sites")
    parser.add_argument("--variants", type=int, nargs="+", default=[2000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--deployment", action="store_true", help="also on a loopback deployment")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "out")
    args = parser.parse_args()
    work = args.out / "secagg"
    shutil.rmtree(work, ignore_errors=True)
    report: dict[str, object] = {"sites": 3, "samples": args.samples, "by_variants": {}}
    for variants in args.variants:
        cohort = write_cohorts(
            work / f"v{variants}" / "cohorts",
            sites=3,
            samples=args.samples,
            variants=variants,
            seed=args.seed,
        )
        sites = list(cohort.sites)
        entry: dict[str, object] = {
            "simulation": simulation(sites, work / f"v{variants}" / "sim", args.repeats)
        }
        if args.deployment:
            entry["deployment"] = deployment(sites, work / f"v{variants}" / "dep", args.repeats)
        report["by_variants"][str(variants)] = entry  # type: ignore[index]
        for engine, modes in entry.items():
            assert isinstance(modes, dict)
            plain = modes["plain"]["counts_round_s_median"]
            for mode in MODES:
                m = modes[mode]
                print(
                    f"{variants} variants, {engine}, {mode}: counts round "
                    f"{m['counts_round_s_median']} s median ({m['counts_round_s_min']:.3f}-"
                    f"{m['counts_round_s_max']:.3f}; x{m['counts_round_s_median'] / plain:.1f} "
                    f"plain), study {m['study_s_median']} s, "
                    f"{int(m['array_bytes_from_site_median'])} B from a site"
                )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "secagg.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"full report: {args.out / 'secagg.json'}")


if __name__ == "__main__":
    main()
