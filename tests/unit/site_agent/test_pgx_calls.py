"""Star-allele calling from unphased genotypes with the shipped PyPGx tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from genofed.common.errors import ConfigError
from genofed.common.study import study_from_mapping
from genofed.site_agent.requests.pgx_tables import (
    GENES,
    INDETERMINATE,
    gene_definition,
    table_source,
)
from genofed.site_agent.stats.pgx import (
    CALLED,
    NOT_CALLED_AMBIGUOUS,
    NOT_CALLED_MISSING,
    NOT_CALLED_UNEXPLAINED,
    call_diplotypes,
)


def _genotype(gene: str, *alleles: str) -> np.ndarray:
    d = gene_definition(gene, "GRCh38")
    return sum(d.cores[d.alleles.index(a)].astype(np.int8) for a in alleles)  # type: ignore[return-value]


def _call(gene: str, genotypes: list[np.ndarray]) -> list[str]:
    d = gene_definition(gene, "GRCh38")
    calls = call_diplotypes(d.cores, np.stack(genotypes).astype(np.int8))
    return [
        d.diplotype(a, b) if r == CALLED else f"not called {r}"
        for a, b, r in zip(calls.first, calls.second, calls.reason, strict=True)
    ]


def test_tables__six_genes_with_source_and_phenotype_rules() -> None:
    assert "PyPGx 0.27.0" in table_source()
    for gene in GENES:
        d = gene_definition(gene, "GRCh38")
        assert d.cores.shape == (len(d.alleles), len(d.variants))
        assert (d.cores.sum(axis=1) == 0).sum() == 1  # one reference-genome allele
    cyp2c19 = gene_definition("CYP2C19", "GRCh38")
    assert cyp2c19.unsupported == ("*36", "*37")  # structural: never called
    assert {v[0] for v in cyp2c19.variants} == {"10"}  # chromosome 10
    i = cyp2c19.alleles.index
    assert cyp2c19.phenotype(i("*2"), i("*2")) == "Poor Metabolizer"
    assert cyp2c19.phenotype(i("*1"), i("*17")) == "Rapid Metabolizer"
    cyp2c9 = gene_definition("CYP2C9", "GRCh38")
    j = cyp2c9.alleles.index
    assert cyp2c9.phenotype(j("*1"), j("*1")) == "Normal Metabolizer"  # score 2
    assert cyp2c9.phenotype(j("*1"), j("*3")) == "Intermediate Metabolizer"  # score 1
    assert cyp2c9.phenotype(j("*3"), j("*3")) == "Poor Metabolizer"  # score 0
    assert cyp2c9.phenotype(j("*1"), j("*7")) == INDETERMINATE  # no activity value
    tpmt = gene_definition("TPMT", "GRCh37")
    assert tpmt.variants != gene_definition("TPMT", "GRCh38").variants


def test_call_diplotypes__exact_missing_unexplained_and_ambiguous() -> None:
    genotypes = [
        _genotype("CYP2C19", "*1", "*2"),
        _genotype("CYP2C19", "*2", "*17"),
        _genotype("CYP2C19", "*38", "*38"),
        _genotype("CYP2C19", "*2", "*3", "*17"),  # three non-reference alleles
    ]
    missing = _genotype("CYP2C19", "*1", "*1").copy()
    missing[0] = -9
    got = _call("CYP2C19", [*genotypes, missing])
    assert got == [
        "*1/*2",
        "*2/*17",
        "*38/*38",
        f"not called {NOT_CALLED_UNEXPLAINED}",
        f"not called {NOT_CALLED_MISSING}",
    ]
    # unphased: *1/*3A and *3B/*3C carry the same two variants: never guessed
    assert _call("TPMT", [_genotype("TPMT", "*1", "*3A"), _genotype("TPMT", "*3A", "*3A")]) == [
        f"not called {NOT_CALLED_AMBIGUOUS}",
        "*3A/*3A",
    ]


def test_pgx_params__checked_together() -> None:
    ok = {"kind": "pgx", "outcome": "CLOP_EVENT", "covariates": ["AGE"]}
    study = study_from_mapping({"study": {"name": "p"}, "analysis": [ok]}, path=Path("s.toml"))
    assert study.analyses[0].params["genes"] == GENES
    for bad in (
        {"genes": ["CYP2D6"]},
        {"build": "hg19"},
        {"covariates": ["AGE"]},  # covariates without an outcome
        {"outcome": "CLOP_EVENT", "test_gene": "TPMT", "genes": ["CYP2C19"]},
    ):
        with pytest.raises(ConfigError):
            study_from_mapping(
                {"study": {"name": "p"}, "analysis": [{"kind": "pgx", **bad}]}, path=Path("s")
            )
