"""Benchmark: the time and bytes SecAgg+ adds to a study (``exact``, ``distributed-dp``, ``plain``).

``--kind`` picks the study: ``freq`` (the count analyses' one masked round),
``glm`` (a logistic GWAS with covariates: every Newton and Firth round
masked), ``pca`` (every PCA request masked). Makes a synthetic 3-site
cohort and runs the same study in
``plain`` mode (per-site counts summed by the coordinator), ``exact`` mode
(counts summed with Flower's SecAgg+: four message stages, masking,
unmasking) and ``distributed-dp`` mode (the same, plus each site's noise
share), ``--repeats`` times each:

* on Flower's **simulation engine** (one Ray start per study), and
* with ``--deployment``, on a real loopback **deployment** (SuperLink with
  TLS and node auth, three SuperNodes: the e2e harness
  ``tests/e2e/federation.py``), one federation for all studies.

It reports, per mode, the median wall time of the rounds (from
``provenance.json``: for SecAgg+ the whole four-stage protocol of each), of
the whole study, the bytes the busiest site sent over all rounds, the number
of rounds, and the load average; and checks that the ``exact`` tables equal
the ``plain`` ones byte for byte (``distributed-dp`` runs for ``freq`` only:
the other analyses have no distributed-noise form).

    .venv/bin/python bench/secagg.py                         # 3 x 500 samples, 2,000 variants
    .venv/bin/python bench/secagg.py --variants 2000 20000 --repeats 3 --deployment
    .venv/bin/python bench/secagg.py --kind glm --samples 10000 --variants 100000 --repeats 1

Results go to ``bench/out/secagg.json``.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from genofed.common.study import load_study  # noqa: E402
from genofed.simulation import run_simulated_study  # noqa: E402
from genofed.synth import write_cohorts  # noqa: E402

MODES = {
    "plain": {"mode": "plain"},
    "exact": {"mode": "exact"},
    "distributed-dp": {"mode": "distributed-dp", "epsilon": 10.0, "noise_shares": 3},
}
SITES = ("a", "b", "c")
#: The study of each ``--kind``: its analyses as TOML lines.
KINDS = {
    "freq": 'kind = "freq"\n',
    "glm": 'kind = "glm"\nphenotype = "DISEASE"\ncovariates = ["AGE", "SEX"]\n',
    "pca": 'kind = "pca"\nn_pcs = 10\n',
}


def _modes(kind: str) -> dict[str, dict[str, object]]:
    return MODES if kind == "freq" else {m: MODES[m] for m in ("plain", "exact")}


def _toml(name: str, privacy: dict[str, object], kind: str) -> str:
    lines = [f'[study]\nname = "{name}"\n', "[privacy]"]
    for key, value in privacy.items():
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n\n[[analysis]]\n" + KINDS[kind]


def _rounds(out: Path) -> dict[str, float]:
    rounds = json.loads((out / "provenance.json").read_text())["rounds"]
    work = [r for r in rounds if r["step"] != "variants"]  # round 1 is never masked
    return {
        "rounds_s": round(sum(float(r["seconds"]) for r in work), 3),
        "rounds": float(len(work)),
        "array_bytes_from_site": float(sum(r["array_bytes_from_site"] for r in work)),
    }


def _summary(runs: list[dict[str, float]]) -> dict[str, float]:
    keys = runs[0].keys()
    return {f"{k}_median": round(statistics.median(r[k] for r in runs), 3) for k in keys} | {
        "rounds_s_min": min(r["rounds_s"] for r in runs),
        "rounds_s_max": max(r["rounds_s"] for r in runs),
        "repeats": len(runs),
    }


def _measure(
    run: Callable[[str, dict[str, object], Path], None], work: Path, repeats: int, kind: str
) -> dict[str, dict[str, float]]:
    """Each mode ``repeats`` times, interleaved so that drift hits every mode alike."""
    modes = _modes(kind)
    runs: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    for i in range(repeats):
        for mode, privacy in modes.items():
            out = work / f"{mode}-{i}"
            started = time.monotonic()
            run(f"secagg-{i}", privacy, out)  # one name: pca's random start follows the study
            runs[mode].append({"study_s": time.monotonic() - started, **_rounds(out)})
    for i in range(repeats):
        plain = work / f"plain-{i}"
        for table in sorted(p.name for p in plain.iterdir()):
            if table.endswith((".json", ".html", ".png", ".npz", ".pt")):
                continue  # run facts, plots, model files carry the study hash
            if not filecmp.cmp(plain / table, work / f"exact-{i}" / table, False):
                raise SystemExit(f"exact {table} differs from plain (repeat {i})")
    return {mode: _summary(r) for mode, r in runs.items()}


def simulation(
    sites: list[Path], work: Path, repeats: int, kind: str
) -> dict[str, dict[str, float]]:
    def run(name: str, privacy: dict[str, object], out: Path) -> None:
        path = out.parent / f"{out.name}.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_toml(name, privacy, kind))
        run_simulated_study(load_study(path), sites, out)

    return _measure(run, work, repeats, kind)


def deployment(sites: list[Path], work: Path, repeats: int, kind: str) -> dict[str, object]:
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
            study = work / f"{out.name}.toml"
            study.write_text(_toml(name, privacy, kind))
            res = fed.genofed(
                "study", "run", str(study), "--superlink", fed.control, "--ca-cert",
                str(fed.pki.ca_cert), "--sites", "3", "--out", str(out), timeout=7200,
            )  # fmt: skip
            if res.returncode != 0:
                raise RuntimeError(res.stdout + res.stderr)

        modes = _measure(run, work, repeats, kind)
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
    parser.add_argument("--kind", choices=sorted(KINDS), default="freq", help="the study")
    parser.add_argument("--out", type=Path, default=HERE / "out")
    args = parser.parse_args()
    work = args.out / f"secagg-{args.kind}"
    shutil.rmtree(work, ignore_errors=True)
    report: dict[str, object] = {
        "kind": args.kind,
        "sites": 3,
        "samples": args.samples,
        "load_before": os.getloadavg(),
        "by_variants": {},
    }
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
            "simulation": simulation(sites, work / f"v{variants}" / "sim", args.repeats, args.kind)
        }
        if args.deployment:
            entry["deployment"] = deployment(
                sites, work / f"v{variants}" / "dep", args.repeats, args.kind
            )
        report["by_variants"][str(variants)] = entry  # type: ignore[index]
        for engine, modes in entry.items():
            assert isinstance(modes, dict)
            plain = modes["plain"]
            for mode in _modes(args.kind):
                m = modes[mode]
                by = m["array_bytes_from_site_median"] / plain["array_bytes_from_site_median"]
                print(
                    f"{args.kind}, {args.samples} x {variants}, {engine}, {mode}: "
                    f"{int(m['rounds_median'])} rounds, {m['rounds_s_median']} s in rounds "
                    f"(x{m['rounds_s_median'] / max(plain['rounds_s_median'], 1e-9):.2f} plain), "
                    f"study {m['study_s_median']} s "
                    f"(x{m['study_s_median'] / plain['study_s_median']:.2f} plain), "
                    f"{int(m['array_bytes_from_site_median'])} B from the busiest site "
                    f"(x{by:.1f})"
                )
    report["load_after"] = os.getloadavg()
    print(f"load average before {report['load_before']}, after {report['load_after']}")
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"secagg-{args.kind}.json"
    target.write_text(json.dumps(report, indent=2) + "\n")
    print(f"full report: {target}")


if __name__ == "__main__":
    main()
