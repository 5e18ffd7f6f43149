"""Benchmark: the sample-set guard core (issue 17 item 9) at 10,000 persons.

Synthetic membership only: the guard never reads a value, so no genotype or
phenotype is drawn, only who is missing what. Three parts:

(a) **A study sequence through the store.** 20 releases' base sets, as a
    year of ordinary studies would declare them, each passed to
    :meth:`SampleSetStore.guard_and_record` on a fresh SQLite store in a
    temporary directory (one release per study; the rounds of one analysis
    sum over the same sets, which are free). Run twice: one family per data
    column (``genotype``, ``phenotype``, ``AGE``, ..., ``time``, ``event``),
    and with every non-genotype column in one family, as
    ``site_agent/privacy/guard.py`` groups them (``clinical``/``genotypes``).
    The cohort: 3% of phenotypes missing, AGE 1%, BMI 4%, SEX unknown for
    ``--sex-unknown`` (4) people, survival time/event 2.5%; PCs complete.
(b) **Per-variant missing-call sets, greedily audited.** ``--variants``
    (100,000) variants; 80% have no missing call, the rest 1 to 40 missing
    (log-uniform), drawn without replacement with per-sample weights that
    vary (lognormal, plus ``--bad-samples`` samples at 200x the mean and 100
    at 10x: a few samples fail many calls). Each variant's missing set
    within the GWAS cohort ``A`` is offered to a :class:`SetFamily` of column
    ``phenotype`` holding ``A`` (:meth:`SetFamily.check`, then
    :meth:`SetFamily.admit`: check, and add if it passes), as
    ``ReleaseGuard.offer`` does. With
    ``A`` released, offering ``A & M`` or the called set ``A - M`` spans the
    same sums and meets the same rules. After ``--cap`` distinct sets have
    passed, the remaining variants with missing calls count as withheld.
(c) **Reload cost.** The sets that passed in (b) are recorded in a store
    with (b)'s family as the column's snapshot (``record_if_unchanged``, as
    ``ReleaseGuard.commit`` does); then the family is resumed from that
    snapshot (``store.family``, what every request does), rebuilt by
    replaying its sets (what a stale snapshot costs, and what every request
    cost before snapshots), and a rerun of a GWAS (identical sets, so it
    passes) is timed through ``guard_and_record``.

    .venv/bin/python bench/disclosure.py                 # 10,000 persons, 100,000 variants
    .venv/bin/python bench/disclosure.py --variants 20000 --cap 500

Prints a markdown report; it and a JSON copy go to ``bench/out/disclosure.{md,json}``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from genofed.site_agent.privacy import sample_sets
from genofed.site_agent.privacy.disclosure import SetFamily, fingerprint
from genofed.site_agent.privacy.guard import DEFAULT_FAMILY_CAP
from genofed.site_agent.privacy.sample_sets import ReleaseKey, SampleSetStore

HERE = Path(__file__).resolve().parent
BoolArray = np.ndarray
PCS = [f"PC{i}" for i in range(1, 11)]
RELOAD_KEYS = (
    "recorded_sets",
    "record_s",
    "snapshot_mb",
    "load_family_s",
    "replay_family_s",
    "family_sets",
    "rerun_guard_s",
)


@dataclass(frozen=True)
class Cohort:
    """Who has which column (True: the value is present)."""

    n: int
    pheno: BoolArray
    age: BoolArray
    bmi: BoolArray
    sex_known: BoolArray
    male: BoolArray
    surv: BoolArray
    old: BoolArray  # AGE >= 60 (only meaningful where age is present)


def make_cohort(n: int, sex_unknown: int, rng: np.random.Generator) -> Cohort:
    def present(share: float) -> BoolArray:
        out = np.ones(n, dtype=np.bool_)
        out[rng.choice(n, round(share * n), replace=False)] = False
        return out

    sex_known = np.ones(n, dtype=np.bool_)
    sex_known[rng.choice(n, sex_unknown, replace=False)] = False
    return Cohort(
        n=n,
        pheno=present(0.03),
        age=present(0.01),
        bmi=present(0.04),
        sex_known=sex_known,
        male=rng.random(n) < 0.48,
        surv=present(0.025),
        old=rng.random(n) < 0.35,
    )


def studies(c: Cohort) -> list[tuple[str, dict[str, list[BoolArray]]]]:
    """20 releases: (label, data column -> sets its sums go over)."""
    everyone = np.ones(c.n, dtype=np.bool_)
    gwas = c.pheno & c.age & c.sex_known  # y ~ g + AGE + SEX (+ PCs: complete)
    prs = c.pheno  # score association, no covariates
    gwas_bmi = gwas & c.bmi
    gwas_sex = c.pheno & c.sex_known
    km = c.surv
    km_m, km_f = c.surv & c.sex_known & c.male, c.surv & c.sex_known & ~c.male
    cox = c.surv & c.age & c.sex_known
    km_age = c.surv & c.age
    young, old = km_age & ~c.old, km_age & c.old

    def cols(names: list[str], *sets: BoolArray) -> dict[str, list[BoolArray]]:
        return {name: list(sets) for name in names}

    base = ["genotype", "phenotype", "AGE", "SEX"]
    qc = ("qc: freq/missing/hardy, all samples", cols(["genotype"], everyone))
    glm = ("gwas linear: AGE + SEX", cols(base, gwas))
    glm_pc = ("gwas linear: AGE + SEX + 10 PCs", cols(base + PCS, gwas))
    score = ("prs: score association, no covariates", cols(["genotype", "phenotype"], prs))
    km0 = ("km ungrouped", cols(["time", "event"], km))
    km_sex = ("km by SEX (2 groups)", {**cols(["time", "event"], km_m, km_f), "SEX": [km]})
    cox_ = ("cox: AGE + SEX", cols(["time", "event", "AGE", "SEX"], cox))
    return [
        qc,
        glm,
        glm_pc,
        score,
        km0,
        km_sex,
        cox_,
        ("gwas logistic: AGE + SEX (same cohort)", cols(base, gwas)),
        ("rerun: " + qc[0], qc[1]),
        ("rerun: " + glm_pc[0], glm_pc[1]),
        ("gwas linear: AGE + SEX + BMI", cols([*base, "BMI"], gwas_bmi)),
        ("gwas linear: SEX only", cols(["genotype", "phenotype", "SEX"], gwas_sex)),
        ("rerun: " + km_sex[0], km_sex[1]),
        ("rerun: " + cox_[0], cox_[1]),
        ("rerun: " + score[0], score[1]),
        ("km by AGE >= 60 (public cut)", {**cols(["time", "event"], young, old), "AGE": [km_age]}),
        ("rerun: " + qc[0], qc[1]),
        ("rerun: " + glm[0], glm[1]),
        ("rerun: " + cox_[0], cox_[1]),
        ("rerun: " + km0[0], km0[1]),
    ]


def grouped(uses: dict[str, list[BoolArray]]) -> dict[str, list[BoolArray]]:
    """Every non-genotype column in one family, as guard.py's CLINICAL/GENOTYPES."""
    out: dict[str, list[BoolArray]] = {}
    for column, sets in uses.items():
        out.setdefault("genotypes" if column == "genotype" else "clinical", []).extend(sets)
    return out


def key(label: str, i: int) -> ReleaseKey:
    sha = hashlib.sha256(label.encode()).hexdigest()
    return ReleaseKey(sha, "a1", "bench", 0, i, "snapshot-1", f"2027-01-{1 + i % 28:02d}T00:00:00Z")


def run_sequence(c: Cohort, ids: list[str], min_cell: int, group: bool) -> dict[str, object]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = SampleSetStore.open(Path(tmp) / "sample_sets.sqlite")
        t0 = time.perf_counter()
        store.person_indexes(ids)
        register_s = time.perf_counter() - t0
        for i, (label, uses) in enumerate(studies(c)):
            uses = grouped(uses) if group else uses
            t0 = time.perf_counter()
            outcome = store.guard_and_record(key(label, i), uses, min_cell)
            seconds = time.perf_counter() - t0
            rows.append(
                {
                    "release": i + 1,
                    "study": label,
                    "columns": len(uses),
                    "sets": sum(len(s) for s in uses.values()),
                    "verdict": "pass" if outcome.ok else outcome.verdict.rule,
                    "detail": outcome.verdict.detail,
                    "ms": 1000 * seconds,
                }
            )
        store.close()
    return {"register_ms": 1000 * register_s, "releases": rows}


def missing_sets(
    n: int, variants: int, share: float, bad: int, rng: np.random.Generator
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Variant indexes with missing calls and each one's missing persons (sorted)."""
    weights = rng.lognormal(0.0, 1.0, n)
    mean = weights.mean()
    order = rng.permutation(n)
    weights[order[:bad]] = 200 * mean
    weights[order[bad : bad + 100]] = 10 * mean
    log_w = np.log(weights)
    with_missing = np.sort(rng.choice(variants, round(share * variants), replace=False))
    k = np.clip(np.floor(np.exp(rng.uniform(0, np.log(41), len(with_missing)))), 1, 40)
    k = k.astype(np.int64)
    out: list[np.ndarray] = []
    for start in range(0, len(with_missing), 1000):  # Gumbel top-k: weighted, no replacement
        kk = k[start : start + 1000]
        keys = log_w[None, :] + rng.gumbel(size=(len(kk), n))
        top = np.argpartition(-keys, 40, axis=1)[:, :40]
        top_keys = np.take_along_axis(keys, top, axis=1)
        ranked = np.take_along_axis(top, np.argsort(-top_keys, axis=1), axis=1)
        out.extend(np.sort(ranked[j, : kk[j]]) for j in range(len(kk)))
    return with_missing, out


def run_variants(
    c: Cohort, args: argparse.Namespace, rng: np.random.Generator
) -> tuple[dict[str, object], SetFamily, list[BoolArray]]:
    cohort = c.pheno & c.age & c.sex_known
    t0 = time.perf_counter()
    variants, sets = missing_sets(c.n, args.variants, 0.2, args.bad_samples, rng)
    draw_s = time.perf_counter() - t0
    family = SetFamily(c.n, args.min_cell, [cohort])
    outcome: Counter[str] = Counter()
    check_s: list[tuple[int, str, float]] = []  # (distinct sets in family, verdict, seconds)
    passed: list[BoolArray] = []
    seen: set[str] = set()
    total0 = time.perf_counter()
    for members in sets:
        s = np.zeros(c.n, dtype=np.bool_)
        s[members] = True
        s &= cohort  # missing calls outside the analysis cohort do not enter its sums
        if not s.any():
            outcome["no missing call in the cohort"] += 1
            continue
        fp = fingerprint(s)
        if len(passed) >= args.cap:
            outcome["withheld: cap reached"] += 1
            outcome["withheld: cap reached, set already released"] += fp in seen
            continue
        t0 = time.perf_counter()
        size = family.n_sets
        verdict = family.admit([s])  # check, and add when it passes (ReleaseGuard.offer)
        check_s.append((size, verdict.rule or "pass", time.perf_counter() - t0))
        if not verdict.ok:
            outcome[f"refused: {verdict.rule}"] += 1
            continue
        if fp in seen:
            outcome["passed: set already released"] += 1
            continue
        seen.add(fp)
        passed.append(s)
        outcome["passed: new set"] += 1
    total_s = time.perf_counter() - total0
    full = [t for _, rule, t in check_s if rule in ("pass", "DETERMINED")]
    buckets = []
    for low, high in (
        (0, 250),
        (250, 500),
        (500, 1000),
        (1000, 1500),
        (1500, 2000),
        (2000, 3000),
        (3000, 4000),
        (4000, 10**9),
    ):
        ts = [t for size, rule, t in check_s if low <= size < high and rule != "SMALL_SET"]
        if ts:
            buckets.append(
                {
                    "family_sets": f"{low}-{min(high, args.cap + 1) - 1}",
                    "checks": len(ts),
                    "mean_ms": 1000 * float(np.mean(ts)),
                    "p95_ms": 1000 * float(np.percentile(ts, 95)),
                }
            )
    sizes = np.array([len(m) for m in sets])
    report = {
        "variants": args.variants,
        "variants_with_missing": len(variants),
        "missing_per_variant_median": float(np.median(sizes)),
        "share_with_10plus_missing": float(np.mean(sizes >= args.min_cell)),
        "distinct_missing_sets": len({fingerprint(_mask(c.n, m) & cohort) for m in sets}),
        "outcome": dict(sorted(outcome.items())),
        "withheld_variants": sum(v for k, v in outcome.items() if k.startswith("refused"))
        + outcome["withheld: cap reached"],
        "family_sets_at_end": family.n_sets,
        "family_atoms_at_end": family.n_atoms,
        "draw_s": draw_s,
        "total_s": total_s,
        "checks": len(check_s),
        "check_s_total": sum(t for _, _, t in check_s),
        "check_ms_mean": 1000 * float(np.mean([t for _, _, t in check_s])) if check_s else 0.0,
        "full_check_ms_mean": 1000 * float(np.mean(full)) if full else 0.0,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "by_family_size": buckets,
    }
    return report, family, passed


def _mask(n: int, members: np.ndarray) -> BoolArray:
    s = np.zeros(n, dtype=np.bool_)
    s[members] = True
    return s


def run_reload(
    c: Cohort, ids: list[str], family: SetFamily, passed: list[BoolArray], min_cell: int
) -> dict[str, float]:
    """Record (b)'s sets with ``family`` as snapshot; resume, replay, and a GWAS rerun."""
    label, uses = studies(c)[1]
    out: dict[str, float] = {"recorded_sets": float(len(passed))}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sample_sets.sqlite"
        store = SampleSetStore.open(path)
        store.person_indexes(ids)
        first = store.guard_and_record(key(label, 0), uses, min_cell)
        assert first.ok, first.verdict
        # (b)'s family holds the GWAS cohort and the passed sets: what the store now records
        t0 = time.perf_counter()
        since = store.last_release_id()
        store.record_if_unchanged(
            key("variants", 1), {"phenotype": passed}, since, {"phenotype": family}
        )
        out["record_s"] = time.perf_counter() - t0
        assert store.snapshot_release("phenotype") == since + 1, "snapshot not saved"
        (blob,) = store._db.execute(
            "SELECT length(state) FROM family_snapshots WHERE column_name = 'phenotype'"
        ).fetchone()
        out["snapshot_mb"] = blob / 2**20
        t0 = time.perf_counter()
        resumed = store.family("phenotype", min_cell)
        out["load_family_s"] = time.perf_counter() - t0
        out["family_sets"] = float(resumed.n_sets)
        t0 = time.perf_counter()
        n = store.n_persons()
        SetFamily(n, min_cell, sample_sets._family_sets(store._db, "phenotype", n))
        out["replay_family_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        rerun = store.guard_and_record(key(label, 2), uses, min_cell)
        out["rerun_guard_s"] = time.perf_counter() - t0
        out["rerun_ok"] = float(rerun.ok)
        store.close()
    return out


def markdown(report: dict[str, object]) -> str:
    lines = [
        f"# Sample-set guard at {report['persons']} persons (min_cell {report['min_cell']})",
        "",
        f"Load average (1, 5, 15 min) at start {report['load_start']}, at end "
        f"{report['load_end']}; {report['cpus']} CPUs.",
        "",
    ]
    for mode, title in (
        ("per_column", "one family per data column"),
        ("grouped", "clinical/genotypes families (guard.py)"),
    ):
        seq = report[mode]
        assert isinstance(seq, dict)
        lines += [
            f"## (a) 20 studies through `guard_and_record`: {title}",
            "",
            f"Registering the persons: {seq['register_ms']:.0f} ms.",
            "",
            "| # | study | columns | sets | verdict | ms |",
            "| ---: | --- | ---: | ---: | --- | ---: |",
        ]
        for r in seq["releases"]:
            verdict = (
                r["verdict"] if r["verdict"] == "pass" else f"refused {r['verdict']}: {r['detail']}"
            )
            lines.append(
                f"| {r['release']} | {r['study']} | {r['columns']} | {r['sets']} "
                f"| {verdict} | {r['ms']:.1f} |"
            )
        ms = [r["ms"] for r in seq["releases"]]
        lines += ["", f"Per release: median {np.median(ms):.1f} ms, max {max(ms):.1f} ms.", ""]
    v = report["variants"]
    assert isinstance(v, dict)
    lines += [
        f"## (b) per-variant missing-call sets, greedy, cap {report['cap']}",
        "",
        f"{v['variants']:,} variants, {v['variants_with_missing']:,} with a missing call "
        f"(median {v['missing_per_variant_median']:.0f} missing; "
        f"{100 * v['share_with_10plus_missing']:.0f}% with {report['min_cell']} or more; "
        f"{v['distinct_missing_sets']:,} distinct sets). Drawing them: {v['draw_s']:.1f} s.",
        "",
        "| outcome | variants |",
        "| --- | ---: |",
    ]
    for k, n in v["outcome"].items():
        lines.append(f"| {k} | {n:,} |")
    lines += [
        f"| **withheld (refused + cap)** | **{v['withheld_variants']:,}** |",
        "",
        f"Total {v['total_s']:.1f} s: {v['checks']:,} checks, {v['check_s_total']:.1f} s "
        f"(mean {v['check_ms_mean']:.2f} ms; {v['full_check_ms_mean']:.2f} ms for the checks "
        f"that reach rule 3, which add the set when it passes). Family at the end: "
        f"{v['family_sets_at_end']:,} sets, {v['family_atoms_at_end']:,} atoms.",
        "",
        "| family size (sets) | checks past rule 1 | mean ms | p95 ms |",
        "| --- | ---: | ---: | ---: |",
    ]
    for b in v["by_family_size"]:
        lines.append(
            f"| {b['family_sets']} | {b['checks']:,} | {b['mean_ms']:.2f} | {b['p95_ms']:.2f} |"
        )
    r = report["reload"]
    assert isinstance(r, dict)
    if not r["recorded_sets"]:
        return "\n".join([*lines, "", "## (c) reload: skipped", ""])
    lines += [
        "",
        f"## (c) reload: `phenotype` holding the {int(r['recorded_sets']):,} sets of (b)",
        "",
        f"Recording them with the family's snapshot: {r['record_s']:.2f} s "
        f"(snapshot {r['snapshot_mb']:.1f} MB); resuming it (`store.family('phenotype')`, "
        f"every request): {r['load_family_s']:.2f} s ({int(r['family_sets']):,} sets); "
        f"rebuilding it by replay (a stale snapshot): {r['replay_family_s']:.2f} s; GWAS rerun "
        f"through `guard_and_record`: {r['rerun_guard_s']:.2f} s "
        f"({'pass' if r['rerun_ok'] else 'refused'}). Peak memory of the process: "
        f"{v['max_rss_mb']:.0f} MB.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=10_000)
    parser.add_argument("--variants", type=int, default=100_000)
    parser.add_argument(
        "--cap", type=int, default=DEFAULT_FAMILY_CAP, help="distinct missing-call sets to pass"
    )
    parser.add_argument("--min-cell", type=int, default=10)
    parser.add_argument("--sex-unknown", type=int, default=4)
    parser.add_argument("--bad-samples", type=int, default=10)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--skip-reload", action="store_true", help="skip part (c)")
    parser.add_argument("--out", type=Path, default=HERE / "out")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    load_start = tuple(round(x, 2) for x in os.getloadavg())
    cohort = make_cohort(args.persons, args.sex_unknown, rng)
    ids = [f"F{i}\tI{i}" for i in range(args.persons)]
    report: dict[str, object] = {
        "persons": args.persons,
        "min_cell": args.min_cell,
        "cap": args.cap,
        "cpus": os.cpu_count(),
        "load_start": load_start,
        "per_column": run_sequence(cohort, ids, args.min_cell, group=False),
        "grouped": run_sequence(cohort, ids, args.min_cell, group=True),
    }
    variants, family, passed = run_variants(cohort, args, rng)
    report["variants"] = variants
    skipped = dict.fromkeys(RELOAD_KEYS, 0.0) | {"rerun_ok": 1.0}
    report["reload"] = (
        skipped if args.skip_reload else run_reload(cohort, ids, family, passed, args.min_cell)
    )
    report["load_end"] = tuple(round(x, 2) for x in os.getloadavg())
    text = markdown(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "disclosure.md").write_text(text)
    (args.out / "disclosure.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(text)


if __name__ == "__main__":
    main()
