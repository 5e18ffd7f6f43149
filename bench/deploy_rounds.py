"""Benchmark: the fixed cost of a round in a real deployment on loopback.

Starts a real federation on 127.0.0.1 (``genofed coordinator up`` with TLS
and node authentication, three ``genofed-site up``), the same harness as the
end-to-end tests, and runs over gRPC:

* a ``freq`` study (two rounds: variant harmonization, genotype counts);
* a logistic ``glm`` study on a tiny cohort, whose Newton rounds carry a
  few hundred bytes each: nearly empty rounds, so their wall time is the
  fixed cost of a round.

The coordinator records each round's wall time and the array bytes to and
from the busiest site in ``provenance.json``; this script reads them and
reports the median, mean and range of round time, the analyst's wall time
per study (submission, ServerApp start-up and all rounds), the federation's
start-up time, and the start-up time of the ClientApp process each message
spawns at a site (Python imports).

    .venv/bin/python bench/deploy_rounds.py [--out bench/out/deploy_rounds.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from genofed.synth import write_cohorts  # noqa: E402
from tests.e2e.federation import BIN, Federation, make_federation  # noqa: E402

SITES = ("a", "b", "c")
FREQ = '[study]\nname = "bench-freq"\n\n[[analysis]]\nkind = "freq"\n'
GLM = (
    '[study]\nname = "bench-glm"\n\n[[analysis]]\nkind = "glm"\n'
    'phenotype = "DISEASE"\ncovariates = ["AGE", "SEX"]\nmodel = "logistic"\nfirth = "never"\n'
)


def start(root: Path, samples: int, variants: int) -> tuple[Federation, float]:
    cohorts = write_cohorts(root / "cohorts", sites=3, samples=samples, variants=variants, seed=5)
    started = time.monotonic()
    fed = make_federation(root, SITES, site_dirs=list(cohorts.sites))
    fed.start_coordinator()
    for name in SITES:
        fed.register(f"site-{name}", fed.pki.node_keys[name][1])
    for name, site_dir in zip(SITES, cohorts.sites, strict=True):
        fed.start_site(name, site_dir, fed.pki.node_keys[name][0])
    for proc in fed.sites.values():
        if not proc.wait_for("connected to the coordinator", 120):
            raise RuntimeError(proc.text())
    return fed, time.monotonic() - started


def run(fed: Federation, root: Path, name: str, text: str) -> dict[str, object]:
    study = root / f"{name}.toml"
    study.write_text(text)
    out = root / f"results-{name}"
    started = time.monotonic()
    res = fed.genofed(
        "study", "run", str(study), "--superlink", fed.control, "--ca-cert",
        str(fed.pki.ca_cert), "--sites", "3", "--out", str(out), timeout=600,
    )  # fmt: skip
    wall = time.monotonic() - started
    if res.returncode != 0:
        raise RuntimeError(res.stdout + res.stderr)
    rounds = json.loads((out / "provenance.json").read_text())["rounds"]
    secs = [float(r["seconds"]) for r in rounds]
    return {
        "study_wall_s": round(wall, 2),
        "rounds": len(rounds),
        "round_s_median": round(statistics.median(secs), 3),
        "round_s_mean": round(statistics.fmean(secs), 3),
        "round_s_min": min(secs),
        "round_s_max": max(secs),
        "array_bytes_to_site_max": max(int(r["array_bytes_to_site"]) for r in rounds),
        "array_bytes_from_site_max": max(int(r["array_bytes_from_site"]) for r in rounds),
        "per_round": rounds,
    }


def site_times(site_dir: Path) -> dict[str, float]:
    """From a site's time-stamped SuperNode log: message received -> reply sent, per message.

    That span is the site's whole share of a round (app gate poll, ClientApp
    process start, imports, the handler, the reply); the rest of a round is
    polling and transport.
    """
    received: list[datetime] = []
    spans: list[float] = []
    for line in (site_dir / ".genofed-node" / "supernode.log").read_text().splitlines():
        stamp, _, text = line.partition(" ")
        if "Receiving:" in text:
            received.append(datetime.fromisoformat(stamp))
        elif "Sent successfully" in text and received:
            spans.append((datetime.fromisoformat(stamp) - received[-1]).total_seconds())
    if not spans:
        return {}
    return {
        "messages": len(spans),
        "received_to_sent_s_median": round(statistics.median(spans), 3),
        "received_to_sent_s_mean": round(statistics.fmean(spans), 3),
    }


def clientapp_import_s(repeats: int = 3) -> float:
    """Wall time of importing the site's ClientApp in a fresh interpreter (best of ``repeats``)."""
    best = float("inf")
    for _ in range(repeats):
        started = time.monotonic()
        subprocess.run([str(BIN / "python"), "-c", "import genofed.site_agent.app"], check=True)
        best = min(best, time.monotonic() - started)
    return round(best, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=HERE / "out" / "deploy_rounds")
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--variants", type=int, default=100)
    parser.add_argument("--out", type=Path, default=HERE / "out" / "deploy_rounds.json")
    args = parser.parse_args()
    if args.root.exists():
        import shutil

        shutil.rmtree(args.root)
    args.root.mkdir(parents=True)
    fed, startup = start(args.root, args.samples, args.variants)
    try:
        report = {
            "cohort": {"sites": 3, "samples": args.samples, "variants": args.variants},
            "federation_start_s": round(startup, 2),
            "clientapp_import_s": clientapp_import_s(),
            "freq": run(fed, args.root, "freq", FREQ),
            "glm_logistic": run(fed, args.root, "glm", GLM),
            "site_a": site_times(args.root / "cohorts" / "site-a"),
        }
    finally:
        fed.stop_all()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for key in ("freq", "glm_logistic"):
        r = report[key]
        assert isinstance(r, dict)
        print(
            f"{key}: {r['rounds']} rounds, round median {r['round_s_median']} s "
            f"(mean {r['round_s_mean']}, {r['round_s_min']}-{r['round_s_max']}), "
            f"study wall {r['study_wall_s']} s, max array bytes to/from a site "
            f"{r['array_bytes_to_site_max']}/{r['array_bytes_from_site_max']}"
        )
    print(f"site a, message received -> reply sent: {report['site_a']}")
    print(f"federation start {report['federation_start_s']} s; ClientApp import "
          f"{report['clientapp_import_s']} s; full report: {args.out}")  # fmt: skip


if __name__ == "__main__":
    main()
