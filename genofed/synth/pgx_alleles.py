"""Pharmacogenomic genotypes and a drug-response outcome for synthetic cohorts.

Each individual gets two star-allele haplotypes per gene, drawn from
population-specific allele frequencies (population A European-like, B
East-Asian-like), rounded from CPIC's allele frequency tables:

=========  ==========================================  =========================
gene       A (European)                                B (East Asian)
=========  ==========================================  =========================
CYP2C19    *2 .15, *17 .21, *38 .02, *1 rest            *2 .29, *3 .07, *17 .02,
                                                        *38 .02, *1 rest
CYP2C9     *2 .12, *3 .07, *1 rest                      *3 .04, *1 rest
VKORC1     rs9923231 .39, Reference rest                rs9923231 .90
SLCO1B1    *15 .15, *37 .26, *5 .01, *1 rest            *15 .12, *37 .62, *1 rest
DPYD       c.1905+1G>A (*2A) .01, HapB3 .024,           Reference
           c.2846A>T .004, Reference rest
TPMT       *3A .035, *2 .002, *1 rest                   *3C .016, *1 rest
=========  ==========================================  =========================

Genotypes are the sums of the two haplotypes' core variants (the allele
definitions the sites use, GRCh38, :mod:`genofed.site_agent.requests.pgx_tables`);
only the variants of these alleles are written, with no missing calls.

``CLOP_EVENT`` (1 none, 2 event; about 1 % missing) is a binary response to
clopidogrel driven by CYP2C19 metabolizer status:
``logit P(event) = -1.6 + 1.0 [poor] + 0.5 [intermediate or likely
intermediate] + 0.3 (AGE - 55) / 10``.

Pure apart from :func:`add_outcome_column`, which appends the outcome to a
written ``pheno.tsv``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from genofed.site_agent.requests.pgx_tables import GENES, gene_definition

__all__ = [
    "BUILD",
    "FREQUENCIES",
    "OUTCOME",
    "MergedVariants",
    "PgxCohort",
    "add_outcome_column",
    "merge_variants",
    "pgx_truth",
    "simulate_pgx",
    "write_truth_table",
]

BUILD = "GRCh38"
OUTCOME = "CLOP_EVENT"
#: gene -> (population A, population B) -> {allele: frequency}; the default allele takes the rest.
FREQUENCIES: dict[str, tuple[dict[str, float], dict[str, float]]] = {
    "CYP2C19": (
        {"*2": 0.15, "*17": 0.21, "*38": 0.02},
        {"*2": 0.29, "*3": 0.07, "*17": 0.02, "*38": 0.02},
    ),
    "CYP2C9": ({"*2": 0.12, "*3": 0.07}, {"*3": 0.04}),
    "VKORC1": ({"rs9923231": 0.39}, {"rs9923231": 0.90}),
    "SLCO1B1": ({"*15": 0.15, "*37": 0.26, "*5": 0.01}, {"*15": 0.12, "*37": 0.62}),
    "DPYD": (
        {
            "c.1905+1G>A (*2A)": 0.01,
            "c.1129-5923C>G, c.1236G>A (HapB3)": 0.024,
            "c.2846A>T": 0.004,
        },
        {},
    ),
    "TPMT": ({"*3A": 0.035, "*2": 0.002}, {"*3C": 0.016}),
}
_DEFAULT = {
    "CYP2C19": "*1",
    "CYP2C9": "*1",
    "VKORC1": "Reference",
    "SLCO1B1": "*1",
    "DPYD": "Reference",
    "TPMT": "*1",
}
_POOR = 1.0
_INTERMEDIATE = 0.5
_AGE = 0.3
_INTERCEPT = -1.6
_MISSING_RATE = 0.01


@dataclass(frozen=True)
class PgxCohort:
    """Variants (chrom, pos, ref, alt) in (chrom, pos) order, dosages, truth, outcome."""

    variants: tuple[tuple[str, int, str, str], ...]
    dosages: np.ndarray  # (variants, individuals) int8, ALT counts
    diplotypes: dict[str, list[str]]  # gene -> per individual "A/B" (alleles as drawn)
    phenotypes: dict[str, list[str]]
    outcome: np.ndarray  # int8: 1 none, 2 event, -9 missing


def simulate_pgx(population: np.ndarray, age: np.ndarray, rng: np.random.Generator) -> PgxCohort:
    """PGx genotypes and ``CLOP_EVENT`` for individuals of ``population`` (0 A, 1 B)."""
    n = len(population)
    per_variant: dict[tuple[str, int, str, str], np.ndarray] = {}
    diplotypes: dict[str, list[str]] = {}
    phenotypes: dict[str, list[str]] = {}
    for gene in GENES:
        d = gene_definition(gene, BUILD)
        draws = np.empty((n, 2), dtype=np.int64)
        for pop in (0, 1):
            table = FREQUENCIES[gene][pop]
            names = [_DEFAULT[gene], *table]
            probs = np.array([1.0 - sum(table.values()), *table.values()])
            idx = np.array([d.alleles.index(a) for a in names])
            rows = np.flatnonzero(population == pop)
            draws[rows] = idx[rng.choice(len(names), size=(len(rows), 2), p=probs)]
        draws.sort(axis=1)
        dosage = d.cores[draws[:, 0]].astype(np.int16) + d.cores[draws[:, 1]]
        used = {int(a) for a in np.unique(draws)}
        for k, variant in enumerate(d.variants):
            if any(d.cores[a, k] for a in used):
                per_variant[variant] = dosage[:, k].astype(np.int8)
        diplotypes[gene] = [d.diplotype(int(a), int(b)) for a, b in draws]
        phenotypes[gene] = [d.phenotype(int(a), int(b)) for a, b in draws]
    order = sorted(per_variant, key=lambda v: (int(v[0]), v[1]))
    status = np.array(phenotypes["CYP2C19"])
    poor = status == "Poor Metabolizer"
    intermediate = np.isin(status, ["Intermediate Metabolizer", "Likely Intermediate Metabolizer"])
    logit = _INTERCEPT + _POOR * poor + _INTERMEDIATE * intermediate + _AGE * (age - 55.0) / 10.0
    outcome = np.where(rng.random(n) < expit(logit), 2, 1).astype(np.int8)
    outcome[rng.random(n) < _MISSING_RATE] = -9
    return PgxCohort(
        variants=tuple(order),
        dosages=np.stack([per_variant[v] for v in order]) if order else np.zeros((0, n), np.int8),
        diplotypes=diplotypes,
        phenotypes=phenotypes,
        outcome=outcome,
    )


@dataclass(frozen=True)
class MergedVariants:
    """Where the PGx variants go among the coalescent ones (both in (chrom, pos) order)."""

    bim: dict[str, object]
    before: dict[int, list[int]]  # coalescent row -> PGx rows written just before it
    after: list[int]  # PGx rows written after every coalescent row

    @property
    def n_variants(self) -> int:
        return len(self.bim["sid"])  # type: ignore[arg-type]


def merge_variants(bim: dict[str, object], cohort: PgxCohort) -> MergedVariants:
    """The ``.bim`` properties with the PGx variants placed in (chromosome, position) order."""
    chrom = [int(c) for c in bim["chromosome"]]  # type: ignore[attr-defined]
    pos = [int(p) for p in bim["bp_position"]]  # type: ignore[attr-defined]
    keys = list(zip(chrom, pos, strict=True))
    before: dict[int, list[int]] = {}
    after: list[int] = []
    for k, (c, p, _, _) in enumerate(cohort.variants):
        at = int(np.searchsorted(np.array([a * 10**10 + b for a, b in keys]), int(c) * 10**10 + p))
        if at < len(keys):
            before.setdefault(at, []).append(k)
        else:
            after.append(k)
    order: list[tuple[str, int]] = []  # ("c", row) or ("p", row), in file order
    for row in range(len(keys)):
        order += [("p", k) for k in before.get(row, [])]
        order.append(("c", row))
    order += [("p", k) for k in after]
    columns = ("chromosome", "sid", "cm_position", "bp_position", "allele_1", "allele_2")
    merged: dict[str, list[object]] = {c: [] for c in columns}
    for source, row in order:
        if source == "c":
            for c in columns:
                merged[c].append(bim[c][row])  # type: ignore[index]
        else:
            vc, vp, ref, alt = cohort.variants[row]
            values = (vc, f"{vc}:{vp}:{ref}:{alt}", 0.0, vp, alt, ref)
            for c, v in zip(columns, values, strict=True):
                merged[c].append(v)
    out: dict[str, object] = dict(merged)
    out["cm_position"] = np.asarray(merged["cm_position"], dtype=np.float32)
    out["bp_position"] = np.asarray(merged["bp_position"], dtype=np.int32)
    return MergedVariants(out, before, after)


def pgx_truth(cohort: PgxCohort) -> dict[str, object]:
    """What ``truth.json`` records: frequencies, the outcome model, counts of true phenotypes."""
    from collections import Counter

    return {
        "build": BUILD,
        "tables": "PyPGx 0.27.0 (genofed/site_agent/pgx_data)",
        "allele_frequencies": {g: {"A": f[0], "B": f[1]} for g, f in FREQUENCIES.items()},
        "variants": ["{}:{}:{}:{}".format(*v) for v in cohort.variants],
        "phenotype_counts": {g: dict(Counter(p)) for g, p in cohort.phenotypes.items()},
        "outcome": {
            "column": OUTCOME,
            "logit": f"{_INTERCEPT} + {_POOR} [CYP2C19 Poor Metabolizer] + {_INTERMEDIATE} "
            f"[CYP2C19 (Likely) Intermediate Metabolizer] + {_AGE} (AGE - 55) / 10",
            "coding": "1 none, 2 event, -9 missing",
        },
    }


def add_outcome_column(pheno_path: object, outcome: np.ndarray) -> None:
    """Append ``CLOP_EVENT`` to a written ``pheno.tsv`` (rows in the same individual order)."""
    from pathlib import Path

    path = Path(str(pheno_path))
    lines = path.read_text(encoding="utf-8").splitlines()
    values = ["NA" if v < 0 else str(int(v)) for v in outcome.tolist()]
    if len(lines) != len(values) + 1:
        raise ValueError(f"{path}: {len(lines) - 1} rows, {len(values)} outcomes")
    out = [lines[0] + f"\t{OUTCOME}"] + [
        f"{a}\t{b}" for a, b in zip(lines[1:], values, strict=True)
    ]
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


def write_truth_table(path: object, iids: tuple[str, ...], cohort: PgxCohort) -> None:
    """``#FID IID <gene>...``: every individual's true diplotype (as drawn)."""
    from pathlib import Path

    genes = list(cohort.diplotypes)
    lines = ["\t".join(["#FID", "IID", *genes])]
    for i, iid in enumerate(iids):
        lines.append("\t".join([iid, iid, *(cohort.diplotypes[g][i] for g in genes)]))
    out = Path(str(path))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
