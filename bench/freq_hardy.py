"""Benchmark: the freq + hardy study against plink2 on the pooled cohort.

Makes (or reuses) a synthetic 3-site cohort, runs the federated study on
Flower's simulation engine with ``genofed study run``, runs
``plink2 --freq --hardy`` on the pooled fileset, and reports wall time, peak
memory (summed RSS over each command's whole process tree, sampled every
0.1 s) and their ratios, plus the bytes each site released.

    .venv/bin/python bench/freq_hardy.py                    # 10,000 x 100,000
    .venv/bin/python bench/freq_hardy.py --samples 2000 --variants 5000
    .venv/bin/python bench/freq_hardy.py --qc    # with [qc] maf/geno/hwe (issue 27)

With ``--qc`` the study carries a ``[qc]`` table (``maf = 0.01``, ``geno =
0.05``, ``hwe = 1e-6``), plink2 runs with the same filters and
``--write-snplist``, and the report says whether the kept variant sets are
equal and how many bytes the counts round (the QC's only release) sent.

Results go to ``bench/out/freq_hardy.json`` and are printed as a table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
STUDY = """[study]
name = "bench-freq-hardy"

[[analysis]]
kind = "freq"

[[analysis]]
kind = "hardy"
"""

QC = """
[qc]
maf = 0.01
geno = 0.05
hwe = 1e-6
"""
QC_FLAGS = ["--maf", "0.01", "--geno", "0.05", "--hwe", "1e-6", "--write-snplist"]


def measure(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Run ``cmd``; return wall seconds and peak summed RSS (MiB) of its process tree."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    root = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            procs = [root, *root.children(recursive=True)]
            rss = 0
            for p in procs:
                with contextlib.suppress(psutil.Error):
                    rss += p.memory_info().rss
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.1)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(
            f"{' '.join(cmd)} failed:\n{proc.stderr.read().decode() if proc.stderr else ''}"
        )
    return {"wall_s": round(wall, 2), "peak_rss_mib": round(peak / 2**20, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--variants", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument("--qc", action="store_true", help="add [qc] maf/geno/hwe filters")
    args = parser.parse_args()

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    cohort = out / f"cohort-{args.samples}x{args.variants}-s{args.seed}"
    synth = None
    if not (cohort / "truth.json").exists():
        shutil.rmtree(cohort, ignore_errors=True)
        synth = measure(
            [
                str(BIN / "genofed"),
                "synth",
                "--sites",
                "3",
                "--samples",
                str(args.samples),
                "--variants",
                str(args.variants),
                "--seed",
                str(args.seed),
                "--out",
                str(cohort),
            ]
        )
    study = out / "bench-study.toml"
    study.write_text(STUDY + (QC if args.qc else ""))
    results = out / ("results-freq-hardy" + ("-qc" if args.qc else ""))
    sites = sorted(p for p in cohort.iterdir() if p.name.startswith("site-"))
    federated = measure(
        [
            str(BIN / "genofed"),
            "study",
            "run",
            str(study),
            "--simulation",
            "--overwrite",
            "--json",
            "--out",
            str(results),
            *[a for s in sites for a in ("--site", str(s))],
        ]
    )
    plink_out = out / "plink2-pooled"
    plink = measure(
        [
            "plink2",
            "--bfile",
            str(cohort / "pooled" / "pooled"),
            "--freq",
            "--hardy",
            *(QC_FLAGS if args.qc else []),
            "--threads",
            str(os.cpu_count() or 1),
            "--out",
            str(plink_out),
        ]
    )
    prov = json.loads((results / "provenance.json").read_text())
    sent = {}
    for site in prov["sites"]:
        total = 0
        for release in site["releases"]:
            for a in release["arrays"]:
                total += int(np.prod(a["shape"])) * np.dtype(a["dtype"]).itemsize
        sent[site["name"]] = total
    qc_report = None
    if args.qc:
        ours = (results / "qc.snplist").read_text().split()
        theirs = plink_out.with_suffix(".snplist").read_text().split()
        qc_report = {
            "variants_kept": len(ours),
            "equal_to_plink2": ours == theirs,
            "funnel": prov["summary"]["qc"]["funnel"],
        }
    report = {
        "load_average": os.getloadavg(),
        "qc": qc_report,
        "samples": args.samples,
        "variants": args.variants,
        "sites": len(sites),
        "cpus": os.cpu_count(),
        "synth": synth,
        "federated_simulation": federated,
        "plink2_pooled": plink,
        "ratio_wall": round(federated["wall_s"] / plink["wall_s"], 2),
        "ratio_peak_rss": (
            round(federated["peak_rss_mib"] / plink["peak_rss_mib"], 2)
            if plink["peak_rss_mib"]
            else None  # plink2 ended before the first 0.1 s sample
        ),
        "bytes_released_per_site": sent,
    }
    (out / "freq_hardy.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
