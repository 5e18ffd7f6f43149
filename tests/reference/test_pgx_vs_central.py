"""Federated pharmacogenomics (``pgx``) on 3 synthetic sites vs central computation on pooled/.

The synthetic cohort records every individual's true diplotypes
(``pgx/diplotypes.tsv``). Central reference, per gene: the expected call is
the true diplotype when no other pair of the gene's alleles (the shipped
PyPGx tables) gives the same unphased genotype, else *not called:
ambiguous*; its phenotype follows CPIC's table or activity score. Expected
tables by outcome come from the pooled ``pheno.tsv``. The federated tables
must equal them exactly (the demo policy withholds nothing); the 2 x k
chi-square, Fisher's test and the logistic regression of ``CLOP_EVENT`` on
``[1, CYP2C19 poor metabolizer, AGE]`` (central Newton with numpy) must
agree to relative 1e-6.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from genofed.common.study import study_from_mapping
from genofed.coordinator.runner import StudyOutcome, run_study
from genofed.site_agent.io.pheno import read_pheno_table
from genofed.site_agent.requests.pgx_tables import GENES, gene_definition
from genofed.synth import SynthSummary, write_cohorts
from tests.harness import InProcessTransport


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    return write_cohorts(
        tmp_path_factory.mktemp("pgx") / "cohorts",
        sites=3,
        samples=600,
        variants=300,
        seed=13,
        pgx=True,
    )


@pytest.fixture(scope="module")
def federated(cohort: SynthSummary, tmp_path_factory: pytest.TempPathFactory) -> StudyOutcome:
    analysis = {"kind": "pgx", "outcome": "CLOP_EVENT", "covariates": ["AGE"]}
    study = study_from_mapping({"study": {"name": "pgx"}, "analysis": [analysis]}, path=Path("t"))
    out = tmp_path_factory.mktemp("fed") / "results"
    return run_study(study, InProcessTransport(cohort.sites), out, engine="in-process")


def _expected(gene: str, truth: list[str]) -> tuple[list[str], list[str]]:
    """Expected call and phenotype per individual ("" when not called)."""
    d = gene_definition(gene, "GRCh38")
    index = {a: i for i, a in enumerate(d.alleles)}
    explain: dict[bytes, int] = {}
    for a, b in itertools.combinations_with_replacement(range(len(d.alleles)), 2):
        key = (d.cores[a].astype(np.int16) + d.cores[b]).astype(np.int8).tobytes()
        explain[key] = explain.get(key, 0) + 1
    calls, phenos = [], []
    for dip in truth:
        x, y = (index[a] for a in dip.split("/"))
        x, y = min(x, y), max(x, y)
        key = (d.cores[x].astype(np.int16) + d.cores[y]).astype(np.int8).tobytes()
        unique = explain[key] == 1
        calls.append(d.diplotype(x, y) if unique else "")
        phenos.append(d.phenotype(x, y) if unique else "")
    return calls, phenos


def _table(path: Path) -> dict[tuple[str, str], list[int]]:
    rows = [line.split("\t") for line in path.read_text().splitlines()[1:]]
    return {(r[0], r[1]): [int(r[4]), int(r[5]), int(r[6])] for r in rows if r[2] != "NA"}


@pytest.fixture(scope="module")
def central(cohort: SynthSummary):  # type: ignore[no-untyped-def]
    lines = (cohort.out / "pgx" / "diplotypes.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    truth = {g: [line.split("\t")[header.index(g)] for line in lines[1:]] for g in GENES}
    pheno = read_pheno_table(cohort.pooled / "pheno.tsv")
    covar = read_pheno_table(cohort.pooled / "covar.tsv")
    assert list(pheno.iid) == [line.split("\t")[1] for line in lines[1:]]
    outcome = pheno.column("CLOP_EVENT")
    col = np.where(np.isnan(outcome), 2, outcome - 1).astype(int)
    dip, phe = {}, {}
    calls = {}
    for g in GENES:
        c, p = _expected(g, truth[g])
        calls[g] = (c, p)
        for values, target in ((c, dip), (p, phe)):
            for v, o in zip(values, col, strict=True):
                if v:
                    target.setdefault((g, v), [0, 0, 0])[o] += 1
    return dip, phe, calls, outcome, covar.column("AGE")


def test_pgx_tables__equal_central_calls_from_the_true_diplotypes(
    federated: StudyOutcome, central
) -> None:  # type: ignore[no-untyped-def]
    dip, phe, calls, _, _ = central
    got_dip = _table(federated.out / "pgx.diplotypes.tsv")
    got_phe = {k: v for k, v in _table(federated.out / "pgx.phenotypes.tsv").items() if sum(v)}
    assert got_dip == dip
    assert got_phe == phe
    summary = json.loads((federated.out / "pgx.summary.json").read_text())
    for g in GENES:
        ambiguous = sum(1 for c in calls[g][0] if not c)
        assert summary["genes"][g]["not_called"]["ambiguous phase"] == ambiguous
    assert summary["genes"]["TPMT"]["not_called"]["ambiguous phase"] > 0  # *1/*3A vs *3B/*3C
    assert summary["genes"]["CYP2C19"]["unsupported_alleles"] == ["*36", "*37"]  # structural
    assert {g for g, _ in dip} == set(GENES)


def test_pgx_association__equals_central_tests_and_logistic(
    federated: StudyOutcome, central
) -> None:  # type: ignore[no-untyped-def]
    _, phe, calls, outcome, age = central
    assoc = json.loads((federated.out / "pgx.summary.json").read_text())["association"]
    rows = sorted(v for (g, _), v in phe.items() if g == "CYP2C19")
    obs = np.array([[r[0] for r in rows], [r[1] for r in rows]])
    obs = obs[:, obs.sum(axis=0) > 0]
    chi = stats.chi2_contingency(obs, correction=False)
    assert assoc["chi2_2xk"]["chi2"] == pytest.approx(chi.statistic, rel=1e-9)
    assert assoc["chi2_2xk"]["p"] == pytest.approx(chi.pvalue, rel=1e-9)
    pm = phe[("CYP2C19", "Poor Metabolizer")]
    rest = np.sum([v for (g, _), v in phe.items() if g == "CYP2C19"], axis=0) - pm
    grid = [[pm[1], pm[0]], [rest[1], rest[0]]]
    assert assoc["fisher_2x2"]["table"] == grid
    assert assoc["fisher_2x2"]["p"] == pytest.approx(stats.fisher_exact(grid).pvalue, rel=1e-9)
    c, p = calls["CYP2C19"]
    keep = ~np.isnan(outcome) & ~np.isnan(age) & np.array([bool(x) for x in c])
    x = np.column_stack(
        [np.ones(keep.sum()), (np.array(p) == "Poor Metabolizer")[keep], age[keep]]
    ).astype(float)
    y = outcome[keep] - 1.0
    beta = np.zeros(3)
    for _ in range(30):
        mu = 1 / (1 + np.exp(-(x @ beta)))
        info = x.T @ (x * (mu * (1 - mu))[:, None])
        beta += np.linalg.solve(info, x.T @ (y - mu))
    se = np.sqrt(np.diag(np.linalg.inv(info)))
    lg = assoc["logistic"]
    assert lg["n"] == keep.sum()
    assert lg["odds_ratio"] == pytest.approx(np.exp(beta[1]), rel=1e-6)
    assert lg["se"] == pytest.approx(se[1], rel=1e-5)
    assert lg["odds_ratio"] > 1.0  # poor metabolizers have more events (truth: OR e^1.0)


def test_pgx_cohort__plink2_reads_variants_in_chromosome_order(
    cohort: SynthSummary, plink2: Path, tmp_path: Path
) -> None:
    bim = [
        line.split("\t")
        for line in cohort.pooled_prefix.with_suffix(".bim").read_text().splitlines()
    ]
    keys = [(int(r[0]), int(r[3])) for r in bim]
    assert keys == sorted(keys) and {"6", "10", "12", "16"} <= {r[0] for r in bim}
    subprocess.run(
        [str(plink2), "--bfile", str(cohort.pooled_prefix), "--freq", "--out", str(tmp_path / "f")],
        check=True,
        capture_output=True,
    )
    freq = {
        r.split("\t")[1]: float(r.split("\t")[4])
        for r in (tmp_path / "f.afreq").read_text().splitlines()[1:]
    }
    assert 0.1 < freq["10:94781859:G:A"] < 0.4  # CYP2C19*2 (rs4244285), A and B populations


def test_pgx__small_rows_withheld_under_min_cell_count(
    cohort: SynthSummary, federated: StudyOutcome, tmp_path: Path
) -> None:
    sites = []
    for site in cohort.sites:
        copy = tmp_path / site.name
        shutil.copytree(site, copy)
        policy = copy / "policy.toml"
        policy.write_text(policy.read_text().replace("min_cell_count = 0", "min_cell_count = 10"))
        sites.append(copy)
    analysis = {"kind": "pgx", "genes": ["CYP2C19", "TPMT"]}
    study = study_from_mapping({"study": {"name": "p"}, "analysis": [analysis]}, path=Path("t"))
    out = run_study(study, InProcessTransport(sites), tmp_path / "r", engine="in-process").out
    rows = [r.split("\t") for r in (out / "pgx.diplotypes.tsv").read_text().splitlines()[1:]]
    full = _table(federated.out / "pgx.diplotypes.tsv")
    summary = json.loads((out / "pgx.summary.json").read_text())
    withheld = summary["genes"]["CYP2C19"]["diplotype_rows_withheld"]
    assert withheld > 0  # rows withheld over all sites (a sum: the sites are masked apart)
    everywhere = [r for r in rows if r[-1] == "3"]  # reported by all three sites: complete
    assert everywhere and all(int(r[2]) == sum(full[(r[0], r[1])]) for r in everywhere)
    partial = [r for r in rows if r[-1] != "3"]
    assert all(int(r[2]) <= sum(full[(r[0], r[1])]) for r in partial)
    rare = {k for k, v in full.items() if sum(v) < 10}
    assert not rare & {(r[0], r[1]) for r in rows}  # no rare diplotype's name left any site
