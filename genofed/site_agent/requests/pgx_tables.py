"""The shipped pharmacogenomic tables (``pgx_data/``, PyPGx 0.27.0, MIT), as gene definitions.

For each gene and genome build: its variants (chromosome, position, REF,
ALT as the build writes them), the alleles it can call (their core variants
in that build; the allele the build's reference genome carries has none),
the alleles it cannot (structural or copy-number alleles, and alleles
without a definition in that build), allele functions and activity values,
and how a diplotype becomes a phenotype:

* ``Diplotype`` genes (CYP2C19, SLCO1B1, TPMT): CPIC's diplotype table;
  a diplotype not in it is ``Indeterminate``;
* ``Score`` genes (CYP2C9, DPYD): the two alleles' activity values summed
  and mapped by CPIC's activity-score ranges; an allele without a value
  makes the phenotype ``Indeterminate``;
* VKORC1 has no phenotype in these tables: its phenotype is its diplotype
  (the rs9923231 genotype that dosing guidelines use).
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np

from genofed.common.wire.pgx import diplotype_names

__all__ = ["GENES", "INDETERMINATE", "GeneDefinition", "gene_definition", "table_source"]

#: Genes with shipped tables, in report order.
GENES = ("CYP2C19", "CYP2C9", "VKORC1", "SLCO1B1", "DPYD", "TPMT")
INDETERMINATE = "Indeterminate"
BUILDS = ("GRCh37", "GRCh38")
_PACKAGE = "genofed.site_agent.pgx_data"


def table_source() -> str:
    """The tables' source, as reports name it."""
    return "PyPGx 0.27.0 (MIT): PharmVar allele definitions, CPIC phenotypes"


def _rows(name: str) -> list[dict[str, str]]:
    text = resources.files(_PACKAGE).joinpath(name).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


@dataclass(frozen=True)
class GeneDefinition:
    """One gene in one build; see the module docstring."""

    gene: str
    build: str
    variants: tuple[tuple[str, int, str, str], ...]
    alleles: tuple[str, ...]
    cores: np.ndarray  # (alleles, variants) int8
    activity: np.ndarray  # (alleles,) float64, NaN where the table has none
    unsupported: tuple[str, ...]
    method: str
    diplotype_phenotype: dict[str, str]
    ranges: tuple[tuple[str, float, float], ...]  # phenotype, low (incl.), high (excl.)

    def diplotype(self, a: int, b: int) -> str:
        return f"{self.alleles[a]}/{self.alleles[b]}"

    def phenotypes(self) -> tuple[str, ...]:
        """Every phenotype this gene can have, in a fixed order."""
        if self.method == "Diplotype":
            names = sorted(set(self.diplotype_phenotype.values()) - {INDETERMINATE})
        elif self.method == "Score":
            names = [p for p, _, _ in self.ranges]
        else:
            return diplotype_names(self.alleles)
        return (*names, INDETERMINATE)

    def phenotype(self, a: int, b: int) -> str:
        """The phenotype of diplotype (a, b)."""
        if self.method == "Diplotype":
            x, y = self.alleles[a], self.alleles[b]
            return self.diplotype_phenotype.get(
                f"{x}/{y}", self.diplotype_phenotype.get(f"{y}/{x}", INDETERMINATE)
            )
        if self.method == "Score":
            score = float(self.activity[a] + self.activity[b])
            if math.isnan(score):
                return INDETERMINATE
            for name, low, high in self.ranges:
                if low <= score < high:
                    return name
            return INDETERMINATE
        return self.diplotype(a, b)


def _variant(text: str) -> tuple[str, int, str, str]:
    chrom, pos, ref, alt = text.split("-")
    return chrom, int(pos), ref, alt


def _ranges(gene: str) -> tuple[tuple[str, float, float], ...]:
    out = []
    for row in _rows("equations.csv"):
        if row["Gene"] != gene:
            continue
        eq = row["Equation"].replace(" ", "")
        if m := re.fullmatch(r"([\d.]+)<=score<([\d.]+)", eq):
            out.append((row["Phenotype"], float(m[1]), float(m[2])))
        elif m := re.fullmatch(r"([\d.]+)<=score", eq):
            out.append((row["Phenotype"], float(m[1]), math.inf))
        elif m := re.fullmatch(r"([\d.]+)==score", eq):
            value = float(m[1])
            out.append((row["Phenotype"], value, math.nextafter(value, math.inf)))
        else:
            raise ValueError(f"unreadable equation {row['Equation']!r} for {gene}")
    return tuple(out)


@cache
def gene_definition(gene: str, build: str) -> GeneDefinition:
    """The definition of ``gene`` in ``build`` (GRCh37 or GRCh38)."""
    if gene not in GENES or build not in BUILDS:
        raise ValueError(f"no PGx table for {gene} in {build}")
    info = next(r for r in _rows("genes.csv") if r["Gene"] == gene)
    default = info[f"{build}Default"]
    names: list[str] = []
    cores_text: list[list[str]] = []
    activity: list[float] = []
    unsupported: list[str] = []
    for row in _rows("alleles.csv"):
        if row["Gene"] != gene:
            continue
        core = row[f"{build}Core"]
        if row["SV"] == "TRUE" or (core == "N/A" and row["StarAllele"] != default):
            unsupported.append(row["StarAllele"])
            continue
        names.append(row["StarAllele"])
        cores_text.append([] if core == "N/A" else core.split(","))
        value = row["ActivityScore"]
        activity.append(float(value) if value not in ("N/A", "") else math.nan)
    variants = sorted({_variant(v) for core in cores_text for v in core}, key=lambda v: v[1])
    where = {v: k for k, v in enumerate(variants)}
    cores = np.zeros((len(names), len(variants)), dtype=np.int8)
    for a, members in enumerate(cores_text):
        for v in members:
            cores[a, where[_variant(v)]] = 1
    return GeneDefinition(
        gene=gene,
        build=build,
        variants=tuple(variants),
        alleles=tuple(names),
        cores=cores,
        activity=np.array(activity, dtype=np.float64),
        unsupported=tuple(unsupported),
        method=info["PhenotypeMethod"],
        diplotype_phenotype={
            r["Diplotype"]: r["Phenotype"] for r in _rows("diplotypes.csv") if r["Gene"] == gene
        },
        ranges=_ranges(gene),
    )
