"""Benchmark: federated GWAS (``glm``, linear and logistic) against ``plink2 --glm`` on pooled data.

For each size (``--size SAMPLESxVARIANTS``, repeatable; 3 sites), makes or
reuses a synthetic cohort under ``bench/out/gwas/`` (msprime; large sizes take
minutes) and, for the linear (``QPHENO``) and the logistic (``DISEASE``,
Firth fallback) model with covariates ``AGE SEX``:

* runs the study in process with one worker **process per site**, asked
  one after another so that no site's timing includes another's (as a
  deployed site answers each round in a fresh ClientApp process, nothing is
  kept in memory between rounds; the logistic rounds read the site's on-disk
  genotype cache, :mod:`genofed.site_agent.requests.glm_cache`), and reports each
  site's local-step wall time over all rounds, its peak RSS (``VmHWM`` of
  the worker), the same before its first request (the site agent's imports)
  and the growth between the two (what the analysis itself holds), the bytes it released
  (and per variant for ``glm_stats``), and the coordinator's time (everything
  but waiting for the sites);
* runs the same study end to end on Flower's simulation engine
  (:func:`genofed.simulation.run_simulated_study`, Ray included);
* runs ``plink2 --glm`` on ``pooled/`` with ``--threads 1`` and
  ``OPENBLAS_NUM_THREADS=1`` (Debian's plink2 needs ``libopenblas0-pthread``
  for its logistic regression to use an optimised BLAS), wall time and peak RSS;

and prints every figure next to plink2's from the same run, as ratios, with
the load average before and after (a shared machine's timings are noisy).
Results go to ``bench/out/gwas/gwas.json``, one row per size and model; rows
of earlier runs for other sizes or models are kept.

    .venv/bin/python bench/gwas.py --size 3000x20000
    .venv/bin/python bench/gwas.py --size 10000x100000 --size 50000x500000
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import sys
import time
from collections import defaultdict
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from measure import measure  # bench/measure.py: python puts bench/ on sys.path

from genofed.common.study import Study, study_from_mapping
from genofed.common.wire.proto import reply_from_bytes
from genofed.coordinator.transport import Incoming, Outgoing

# The site workers are spawned processes, which import this module again:
# the coordinator's and the simulation's imports (Flower, Ray: about 400 MiB)
# are made inside the functions that use them, so that a worker's peak RSS
# is the site agent's own.

HERE = Path(__file__).resolve().parent
MODELS = (("QPHENO", "linear"), ("DISEASE", "logistic"))
COVARIATES = ["AGE", "SEX"]


def _peak_rss_mib() -> float:
    """This process's peak RSS (VmHWM; ``ru_maxrss`` would carry the parent's over exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _site_worker(conn: Connection, site_dir: str) -> None:
    """One site's process: answer requests, report seconds and peak RSS for each."""
    from genofed.common.wire.proto import reply_to_bytes
    from genofed.site_agent.release import handle_request

    conn.send(_peak_rss_mib())
    while (msg := conn.recv()) is not None:
        request, inputs = msg  # plain dataclasses: they pickle
        start = time.perf_counter()
        reply, arrays = handle_request(Path(site_dir), request, inputs)
        seconds = time.perf_counter() - start
        peak = _peak_rss_mib()
        conn.send((reply_to_bytes(reply), arrays, seconds, peak))  # facts are read-only maps


class SiteProcesses:
    """Transport with one worker process per site; times and measures each site's local step."""

    def __init__(self, site_dirs: list[Path]) -> None:
        ctx = mp.get_context("spawn")
        self.names = {i + 1: d.name for i, d in enumerate(site_dirs)}
        self.conns: dict[int, Connection] = {}
        self.procs = []
        self.start_mib: dict[str, float] = {}
        for node, d in zip(self.names, site_dirs, strict=True):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_site_worker, args=(child, str(d)), daemon=True)
            proc.start()
            self.conns[node], self.procs = parent, [*self.procs, proc]
            self.start_mib[self.names[node]] = parent.recv()
        self.seconds: dict[str, float] = defaultdict(float)
        self.peak_mib: dict[str, float] = defaultdict(float)
        self.bytes: dict[str, int] = defaultdict(int)
        self.stats_bytes: dict[str, int] = defaultdict(int)
        self.waiting = 0.0

    def nodes(self) -> list[int]:
        return sorted(self.names)

    def exchange(self, outgoing: dict[int, Outgoing], *, timeout: float) -> dict[int, Incoming]:
        start = time.perf_counter()
        result = {}
        for node, o in outgoing.items():  # one site at a time: no site slows another
            self.conns[node].send((o.request, o.inputs))
            data, arrays, seconds, peak = self.conns[node].recv()
            reply = reply_from_bytes(data)
            name = self.names[node]
            if o.request.kind.startswith("glm"):
                self.seconds[name] += seconds
                released = sum(a.nbytes for a in arrays.values())
                self.bytes[name] += released
                if o.request.kind == "glm_stats":
                    self.stats_bytes[name] += released
            self.peak_mib[name] = max(self.peak_mib[name], peak)
            result[node] = Incoming(reply, arrays)
        self.waiting += time.perf_counter() - start
        return result

    def close(self) -> None:
        for conn in self.conns.values():
            conn.send(None)
        for proc in self.procs:
            proc.join(timeout=30)


def _study(phenotype: str, model: str) -> Study:
    return study_from_mapping(
        {
            "study": {"name": f"bench-gwas-{model}"},
            "analysis": [
                {
                    "kind": "glm",
                    "id": "gwas",
                    "phenotype": phenotype,
                    "covariates": COVARIATES,
                    "model": model,
                }
            ],
        },
        path=Path("<bench>"),
    )


def _plink2(cohort: Path, phenotype: str, out: Path) -> dict[str, float]:
    pooled = cohort / "pooled"
    return measure(
        [
            "plink2",
            "--bfile",
            str(pooled / "pooled"),
            "--pheno",
            str(pooled / "pheno.tsv"),
            "--pheno-name",
            phenotype,
            "--covar",
            str(pooled / "covar.tsv"),
            "--glm",
            "--threads",
            "1",
            "--out",
            str(out),
        ]
    )


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run_model(
    cohort: Path, sites: list[Path], work: Path, phenotype: str, model: str, simulation: bool
) -> dict[str, Any]:
    from genofed.coordinator.runner import run_study
    from genofed.simulation import run_simulated_study

    study = _study(phenotype, model)
    n_variants = len((cohort / "pooled" / "pooled.bim").read_text(encoding="utf-8").splitlines())
    row: dict[str, Any] = {"load_before": _load()}
    transport = SiteProcesses(sites)
    try:
        start = time.perf_counter()
        outcome = run_study(
            study, transport, work / f"results-{model}", engine="bench", overwrite=True
        )
        total = time.perf_counter() - start
    finally:
        transport.close()
    p2 = _plink2(cohort, phenotype, work / f"plink2-{model}")
    row["load_after_in_process"] = _load()
    sim_s = None
    if simulation:
        start = time.perf_counter()
        run_simulated_study(study, sites, work / f"results-sim-{model}", overwrite=True)
        sim_s = time.perf_counter() - start
        row["load_after_simulation"] = _load()
    slowest = max(transport.seconds.values())
    summary = outcome.summary["gwas"]  # type: ignore[index]
    row.update(
        {
            "plink2_s": round(p2["wall_s"], 2),
            "plink2_peak_mib": round(p2["peak_mib"], 1),
            "site_local_s": {k: round(v, 2) for k, v in transport.seconds.items()},
            "slowest_site_over_plink2": round(slowest / p2["wall_s"], 3),
            "site_peak_rss_mib": {k: round(v, 1) for k, v in transport.peak_mib.items()},
            "site_rss_before_first_request_mib": {
                k: round(v, 1) for k, v in transport.start_mib.items()
            },
            "site_peak_rss_growth_mib": {
                k: round(v - transport.start_mib[k], 1) for k, v in transport.peak_mib.items()
            },
            "coordinator_s": round(total - transport.waiting, 2),
            "coordinator_over_plink2": round((total - transport.waiting) / p2["wall_s"], 3),
            "in_process_end_to_end_s": round(total, 2),
            "bytes_per_site": dict(transport.bytes),
            "glm_stats_bytes_per_variant_per_site": {
                k: round(v / n_variants, 2) for k, v in transport.stats_bytes.items()
            },
            "rounds": summary["rounds"],
            "firth": summary["firth"],
            "lambda_gc": summary["lambda_gc"],
        }
    )
    if sim_s is not None:
        row["simulation_end_to_end_s"] = round(sim_s, 2)
        row["simulation_over_plink2"] = round(sim_s / p2["wall_s"], 3)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", action="append", help="SAMPLESxVARIANTS (default 10000x100000)")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--model", choices=["linear", "logistic"], action="append")
    ap.add_argument("--no-simulation", action="store_true", help="skip the Flower simulation run")
    ap.add_argument("--work", type=Path, default=HERE / "out" / "gwas")
    args = ap.parse_args()
    from genofed.synth import write_cohorts

    out_json = args.work / "gwas.json"
    report: dict[str, Any] = {"sites": 3, "threads": 1, "cpus": os.cpu_count(), "runs": {}}
    if out_json.is_file():  # keep the other sizes' and models' rows
        report["runs"] = json.loads(out_json.read_text()).get("runs", {})
    models = [m for m in MODELS if not args.model or m[1] in args.model]
    for size in args.size or ["10000x100000"]:
        samples, variants = (int(x) for x in size.lower().split("x"))
        cohort = args.work / f"cohort-{samples}x{variants}-s{args.seed}"
        if not (cohort / "pooled").is_dir():
            start = time.perf_counter()
            write_cohorts(cohort, sites=3, samples=samples, variants=variants, seed=args.seed)
            print(f"cohort {size}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
        sites = sorted(p for p in cohort.glob("site-*") if p.is_dir())
        work = args.work / f"run-{size}"
        work.mkdir(parents=True, exist_ok=True)
        for phenotype, model in models:
            row = run_model(cohort, sites, work, phenotype, model, not args.no_simulation)
            report["runs"][f"{size} {model}"] = row
            print(f"{size} {model}: {json.dumps(row)}", file=sys.stderr)
            out_json.write_text(json.dumps(report, indent=2) + "\n")
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
