"""Benchmark: what the disclosure guard costs in refusals, withheld variants and time.

Issue 17 item 9. Two parts, both through the real coordinator and site
handler (in process), under a realistic policy (``min_cell_count = 10``,
``min_cohort_size = 50``, signed and auto-approved studies), each run with
the guard on (the policy default) and off (``audit_sample_sets = false``):

1. **A year of studies.** On a synthetic 3-site federation
   (``--samples`` in all, ``--variants``; msprime, 0.5% missing calls) 20
   realistic studies in order (QC over everyone and over the GWAS's samples,
   GWAS linear and logistic, PCA, GWAS with PCs, PRS, survival curves and
   Cox models, reruns, covariates changed, group cuts): per study, whether
   it ran or which site refused it and why, and for every glm analysis the
   variants printed NA in its ``.glm.linear`` / ``.glm.logistic`` table.
2. **Guard time per release** at ``--big`` (default 10,000 samples x
   100,000 variants, one site): the time spent in the guard (declare,
   checks, per-variant offers and called-set rules, commit) during a
   linear GWAS's ``glm_stats`` release, next to the release's total time.

Times are wall-clock on this machine; the load average is printed. Results
go to ``bench/out/guard_studies.json`` and a markdown table to stdout.

    .venv/bin/python bench/guard_studies.py
    .venv/bin/python bench/guard_studies.py --samples 3000 --variants 2000 --big 10000x100000
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from genofed.common.errors import GenoFedError, SiteFailure  # noqa: E402
from genofed.common.signing import generate_private_key, public_key_text, sign_study  # noqa: E402
from genofed.common.study import Study, study_from_mapping  # noqa: E402
from genofed.coordinator.runner import run_study  # noqa: E402
from genofed.site_agent.privacy import guard as guard_module  # noqa: E402
from genofed.site_agent.privacy.policy import POLICY_FILE  # noqa: E402
from genofed.synth import write_cohorts  # noqa: E402
from tests.harness import InProcessTransport  # noqa: E402

OUT = ROOT / "bench" / "out"
KEY = generate_private_key()


def policy(guard: bool) -> str:
    return f"""
[policy]
version = 1
allowed_analyses = ["variants", "freq", "hardy", "missing", "gcount", "glm", "pca", "prs",
                    "km", "cox", "pgx", "train"]
allowed_release_modes = ["plain", "dp"]
min_cohort_size = 50
min_cell_count = 10
audit_sample_sets = {"true" if guard else "false"}
# 0: every study's own verdict is measured (the default, 3, would stop auto-approving
# alice after her third refused study: a realistic officer then looks at them)
guard_refusals_before_review = 0

[policy.budget]
epsilon = 100.0
delta = 1e-5
period = "year"

[[policy.trusted_analysts]]
name = "alice"
public_key = "{public_key_text(KEY.public_key())}"

[[policy.auto_approve]]
name = "alice"
analysts = ["alice"]
"""


def study(name: str, *analyses: dict[str, Any]) -> Study:
    return study_from_mapping(
        {"study": {"name": name}, "analysis": list(analyses)}, path=Path(name)
    )


def studies(scoring: Path) -> list[Study]:
    # few_missing = "impute": under min_cell_count = 10 a 1,000-sample site would
    # otherwise withhold every variant that 1..9 of its samples miss (nearly all)
    few = {"few_missing": args_few_missing()}
    glm = {"kind": "glm", "phenotype": "QPHENO", "covariates": ["AGE", "SEX"], **few}
    logit = {"kind": "glm", "phenotype": "DISEASE", "covariates": ["AGE", "SEX"], **few}
    pcs = ["AGE", "SEX", "PC1", "PC2", "PC3"]
    pca = {"kind": "pca", "id": "pca", "n_pcs": 3}
    grid = {"grid": [365, 730, 1095, 1461, 1826]}
    km = {"kind": "km", "time": "RFS_DAYS", "event": "RFS_EVENT", **grid}
    cox = {"kind": "cox", "time": "RFS_DAYS", "event": "RFS_EVENT", "covariates": ["AGE", "SEX"]}
    prs = {"kind": "prs", "scoring_file": str(scoring), "phenotype": "QPHENO"}
    qc_gwas = {"samples_with": ["QPHENO", "AGE", "SEX"]}
    return [
        # QC over the GWAS's samples first (the guard-aware order), then over everyone
        study("qc-gwas", *({"kind": k, **qc_gwas} for k in ("freq", "hardy", "missing"))),
        study("qc", {"kind": "freq"}, {"kind": "hardy"}, {"kind": "missing"}),
        study("gwas-linear", glm),
        study("gwas-logistic", logit),
        study("pca", pca),
        study("gwas-pcs", pca, {**glm, "covariates": pcs}),
        study("prs", prs),
        study("km", km),
        study("km-by-sex", {**km, "group": "SEX", "levels": [1, 2]}),
        study("cox", cox),
        study("gwas-linear-rerun", glm),
        study("gwas-age-only", {**glm, "covariates": ["AGE"]}),
        study("qc-rerun", {"kind": "freq"}, {"kind": "hardy"}, {"kind": "missing"}),
        study("prs-logistic", {**prs, "phenotype": "DISEASE"}),
        study("km-by-age", {**km, "group": "AGE", "cuts": [50, 65]}),
        study("cox-age", {**cox, "covariates": ["AGE"]}),
        study("gcount", {"kind": "gcount"}),
        study("gwas-sex-only", {**glm, "covariates": ["SEX"]}),
        study("km-by-age-70", {**km, "group": "AGE", "cuts": [70]}),
        study("gwas-logistic-rerun", logit),
    ]


_FEW_MISSING = ["impute"]


def args_few_missing() -> str:
    return _FEW_MISSING[0]


class Timer:
    """Wall time spent inside the guard's methods (patched in place)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._depth = 0

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._depth += 1
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self.seconds += time.perf_counter() - started

        return timed


def patch_guard(timer: Timer) -> None:
    cls = guard_module.ReleaseGuard
    for name in ("open", "declare", "check_declared", "offer", "unsafe_variants", "commit"):
        original = getattr(cls, name)
        if isinstance(cls.__dict__[name], classmethod):
            setattr(cls, name, classmethod(timer.wrap(original.__func__)))
        else:
            setattr(cls, name, timer.wrap(original))


def federation(cohort_sites: list[Path], root: Path, guard: bool) -> list[Path]:
    shutil.rmtree(root, ignore_errors=True)
    out = []
    for site in cohort_sites:
        target = root / site.name
        shutil.copytree(site, target)
        (target / POLICY_FILE).write_text(policy(guard))
        out.append(target)
    return out


def na_variants(result: Path) -> int:
    """Variants whose ADD row prints P = NA in the study's glm tables."""
    total = 0
    for path in [*result.glob("*.glm.linear"), *result.glob("*.glm.logistic*")]:
        lines = path.read_text().splitlines()
        if not lines:
            continue
        header = lines[0].split("\t")
        if "P" not in header or "TEST" not in header:
            continue
        p, test = header.index("P"), header.index("TEST")
        rows = [line.split("\t") for line in lines[1:]]
        total += sum(1 for r in rows if r[test] == "ADD" and r[p] == "NA")
    return total


def year(args: argparse.Namespace, timer: Timer) -> list[dict[str, Any]]:
    shutil.rmtree(OUT / "guard_studies" / "cohort", ignore_errors=True)
    cohort = write_cohorts(
        OUT / "guard_studies" / "cohort",
        sites=3,
        samples=args.samples,
        variants=args.variants,
        seed=11,
    )
    rows = []
    for guard in (False, True):
        sites = federation(list(cohort.sites), OUT / "guard_studies" / f"sites-{guard}", guard)
        for number, s in enumerate(studies(cohort.scoring_file), 1):
            out = OUT / "guard_studies" / f"r-{guard}-{number}"
            shutil.rmtree(out, ignore_errors=True)
            timer.seconds = 0.0
            started = time.perf_counter()
            try:
                run_study(
                    s, InProcessTransport(sites), out, engine="t", signature=sign_study(s, KEY)
                )
                outcome, na = "ran", na_variants(out)
            except SiteFailure as exc:
                outcome, na = refusal(exc), None
            except GenoFedError as exc:  # e.g. every scoring row withheld somewhere
                outcome, na = f"stopped: {str(exc).splitlines()[0][:200]}", None
            rows.append(
                {
                    "guard": guard,
                    "study": s.name,
                    "outcome": outcome,
                    "glm_na_variants": na,
                    "seconds": round(time.perf_counter() - started, 3),
                    "guard_seconds": round(timer.seconds, 3),
                }
            )
            print(rows[-1], flush=True)
    return rows


#: The table columns the demo study's analyses use: ``--demo``'s second pass requires them.
DEMO_COLUMNS = ["QPHENO", "DISEASE", "AGE", "SEX", "RFS_DAYS", "RFS_EVENT", "RSCORE", "CLOP_EVENT"]


def refusal(exc: SiteFailure) -> str:
    """``refused by SITE: CODE [RULE] at KIND``: the guard's rule, or the policy's key."""
    text = str(exc)
    rule = re.search(r"\[(SMALL_SET|SMALL_DIFFERENCE|DETERMINED|SMALL_ATOM)\]", text)
    key = re.search(r"\((min_score_rows|max_weight_ratio)\)", text)
    kind = re.search(r"failed at round \d+ \(([a-z_]+)\)", text)
    out = f"refused by {exc.site}: {exc.reason_code}"
    if rule or key:
        out += f" [{(rule or key).group(1)}]"  # type: ignore[union-attr]
    return out + (f" at {kind.group(1)}" if kind else "")


def demo(args: argparse.Namespace, timer: Timer) -> list[dict[str, Any]]:
    """The demo study (``genofed demo``'s cohort and study) under the realistic policy.

    Once whole (a refusal stops it: its outcome names the first), then each
    analysis as a study of its own in the demo's order with the demo's
    [qc]/[cohort]/[sample_qc] (the PCA and the GWAS on its PCs together), on
    the same sites, so that each verdict is measured against the history
    before it. Twice: as the demo writes it, and with ``[cohort] require``
    listing every table column its analyses use (one set for all of them).
    """
    import tomllib

    from genofed.cli.analyst import (
        DEMO_SAMPLES,
        DEMO_SCORING_FILE,
        DEMO_STUDY,
        DEMO_TRAIN_VARIANTS,
        DEMO_VARIANTS,
    )

    root = OUT / "guard_studies" / "demo"
    shutil.rmtree(root, ignore_errors=True)
    cohort = write_cohorts(
        root / "cohort", sites=3, samples=DEMO_SAMPLES, variants=DEMO_VARIANTS, seed=1, pgx=True
    )
    causal = ", ".join(f'"{v}"' for v in cohort.causal_variants)
    text = DEMO_STUDY.replace(DEMO_SCORING_FILE, str(cohort.scoring_file)).replace(
        DEMO_TRAIN_VARIANTS, f"variants = [{causal}]"
    )
    doc = tomllib.loads(text)
    analyses = list(doc["analysis"])
    groups: list[list[dict[str, Any]]] = []
    for a in analyses:
        if groups and a.get("id") == "gwas_qpheno_pcs":
            groups[-1].append(a)
        else:
            groups.append([a])
    plan = [("whole-demo", analyses)] + [
        ("-".join(str(a.get("id") or a["kind"]) for a in g), g) for g in groups
    ]
    rows = []
    for variant in ("as written", "require"):
        head = {k: v for k, v in doc.items() if k != "analysis"}
        if variant == "require":
            head["cohort"] = {**head["cohort"], "require": DEMO_COLUMNS}
        for guard in (False, True):
            tag = f"{guard}-{variant.replace(' ', '_')}"
            sites = federation(list(cohort.sites), root / f"sites-{tag}", guard)
            for number, (name, group) in enumerate(plan):
                if number == 0:  # the whole study on fresh sites of its own
                    target = federation(list(cohort.sites), root / f"whole-{tag}", guard)
                else:
                    target = sites
                s = study_from_mapping(
                    {**head, "study": {**head["study"], "name": name}, "analysis": group},
                    path=Path(name),
                )
                out = root / f"r-{tag}-{number}"
                timer.seconds = 0.0
                started = time.perf_counter()
                na: int | None = None
                try:
                    run_study(
                        s, InProcessTransport(target), out, engine="t", signature=sign_study(s, KEY)
                    )
                    outcome, na = "ran", na_variants(out)
                    left = json.loads((out / "provenance.json").read_text())["summary"].get(
                        "guard_left_out"
                    )
                    if left:
                        outcome += f" ({sum(e['samples'] for e in left)} left out)"
                except SiteFailure as exc:
                    outcome = refusal(exc)
                except GenoFedError as exc:
                    outcome = f"stopped: {str(exc).splitlines()[0][:200]}"
                rows.append(
                    {
                        "variant": variant,
                        "guard": guard,
                        "study": name,
                        "outcome": outcome,
                        "glm_na_variants": na,
                        "seconds": round(time.perf_counter() - started, 3),
                        "guard_seconds": round(timer.seconds, 3),
                    }
                )
                print(rows[-1], flush=True)
    return rows


def big(args: argparse.Namespace, timer: Timer) -> dict[str, Any]:
    samples, variants = (int(x) for x in args.big.split("x"))
    shutil.rmtree(OUT / "guard_studies" / f"big-{args.big}", ignore_errors=True)
    cohort = write_cohorts(
        OUT / "guard_studies" / f"big-{args.big}",
        sites=1,
        samples=samples,
        variants=variants,
        seed=5,
    )
    result: dict[str, Any] = {"size": args.big}
    gwas = {
        "kind": "glm",
        "phenotype": "QPHENO",
        "covariates": ["AGE", "SEX"],
        "few_missing": args.few_missing,
    }
    s = study("gwas", gwas)
    for guard in (False, True):
        sites = federation(list(cohort.sites), OUT / "guard_studies" / f"big-sites-{guard}", guard)
        runs = []
        for run in range(args.big_reruns if guard else 1):
            out = OUT / "guard_studies" / f"big-r-{guard}-{run}"
            shutil.rmtree(out, ignore_errors=True)
            # a new study each time (an identical one would be answered from the site's
            # replay record): the same cohort and variants, so the same sets are offered
            again = s if run == 0 else study(f"gwas-again-{run}", gwas)
            timer.seconds = 0.0
            started = time.perf_counter()
            run_study(
                again, InProcessTransport(sites), out, engine="t", signature=sign_study(again, KEY)
            )
            runs.append(
                {
                    "study_seconds": round(time.perf_counter() - started, 2),
                    "guard_seconds": round(timer.seconds, 2),
                    "na_variants": na_variants(out),
                    "load": os.getloadavg()[0],
                }
            )
            print({"guard": guard, "run": run + 1, **runs[-1]}, flush=True)
        on_off = "on" if guard else "off"
        result[f"study_seconds_guard_{on_off}"] = runs[0]["study_seconds"]
        result[f"guard_seconds_guard_{on_off}"] = runs[0]["guard_seconds"]
        result[f"na_variants_guard_{on_off}"] = runs[0]["na_variants"]
        if guard and len(runs) > 1:
            # the same GWAS again: its released missing-call sets are free, and up to
            # DEFAULT_OFFER_CAP more pass, over a family that grows toward its cap
            result["reruns_guard_on"] = runs[1:]
    print(result, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3000)
    parser.add_argument("--variants", type=int, default=2000)
    parser.add_argument("--big", default="10000x100000")
    parser.add_argument("--skip-big", action="store_true")
    parser.add_argument("--skip-year", action="store_true")
    parser.add_argument("--demo", action="store_true", help="also the demo study (issue 17)")
    parser.add_argument(
        "--big-reruns",
        type=int,
        default=1,
        help="run the big GWAS this many times with the guard on (the family grows)",
    )
    parser.add_argument(
        "--few-missing", default="impute", choices=["impute", "withhold", "impute-unreleasable"]
    )
    args = parser.parse_args()
    _FEW_MISSING[0] = args.few_missing
    timer = Timer()
    patch_guard(timer)
    load = os.getloadavg()
    doc: dict[str, Any] = {"load_before": load}
    if not args.skip_year:
        doc["year"] = year(args, timer)
    if args.demo:
        doc["demo"] = demo(args, timer)
    if not args.skip_big:
        doc["big"] = big(args, timer)
    doc["load_after"] = os.getloadavg()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "guard_studies.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(f"\nload average before {load[0]:.2f}, after {doc['load_after'][0]:.2f}\n")
    print("| study | guard off | glm NA | guard on | glm NA | guard time (s) |")
    print("| --- | --- | --- | --- | --- | --- |")
    off = [r for r in doc.get("year", []) if not r["guard"]]
    on = [r for r in doc.get("year", []) if r["guard"]]
    for a, b in zip(off, on, strict=True):
        print(
            f"| {a['study']} | {a['outcome']} | {a['glm_na_variants']} | {b['outcome']} "
            f"| {b['glm_na_variants']} | {b['guard_seconds']} |"
        )
    if "demo" in doc:
        print("\n| demo | guard off | glm NA | guard on | glm NA | guard time (s) |")
        print("| --- | --- | --- | --- | --- | --- |")
        for variant in ("as written", "require"):
            off = [r for r in doc["demo"] if not r["guard"] and r["variant"] == variant]
            on = [r for r in doc["demo"] if r["guard"] and r["variant"] == variant]
            for a, b in zip(off, on, strict=True):
                print(
                    f"| {a['study']} ({variant}) | {a['outcome']} | {a['glm_na_variants']} "
                    f"| {b['outcome']} | {b['glm_na_variants']} | {b['guard_seconds']} |"
                )
    if "big" in doc:
        print("\n", doc["big"])


if __name__ == "__main__":
    main()
