"""Federated GWAS (``glm``) on 3 synthetic sites equals ``plink2 --glm`` on the pooled cohort.

plink2 runs with its defaults (``--glm`` with the synth's ``pheno.tsv``
phenotypes QPHENO and DISEASE and ``covar.tsv``; AGE and SEX are not
variance-standardized on either side, and plink2 prints no scale warning
for them). The cohort has 3 % missing calls,
so most variants drop a few samples, and rare variants that need Firth.

Tolerances:

* linear: BETA, SE, T_STAT, P to plink2's printed precision (relative
  1e-5 on the printed values); OBS_CT, A1, TEST, ERRCODE exactly.
* logistic, rows fitted by Newton: OR, LOG(OR)_SE and Z_STAT to relative
  1e-4. plink2 fits in single precision, so its Z carries ~1e-5 relative
  error and its P inherits ``|d ln P| ~ z^2 |dz/z|``: P is compared as
  ``|ln P - ln P_plink2| <= 1e-4 * max(1, z^2)``.
* logistic, Firth rows: plink2 stops its single-precision Firth iterations
  once a step is below 1e-4, so its estimates lie within about 1e-3 of the
  optimum this double-precision fit reaches: |d log OR| <= 2e-3, SE relative
  1e-3, |dZ| and |dP| <= 1e-3. FIRTH? flags must be equal. Where plink2's
  single-precision Firth flails and reports UNFINISHED, a double-precision
  fit may converge: those rows may read '.' here (values still compared).
"""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import bed_reader
import numpy as np
import pytest

from genofed.common.study import Study, study_from_mapping
from genofed.coordinator.runner import StudyOutcome, run_study
from genofed.site_agent.sitedir import init_site
from genofed.synth import SynthSummary, write_cohorts
from tests.harness import InProcessTransport

COVARIATES = ["AGE", "SEX"]


def _study(**logistic: str) -> Study:
    analyses = [
        {"kind": "glm", "id": "gwas_q", "phenotype": "QPHENO", "covariates": COVARIATES},
        {
            "kind": "glm",
            "id": "gwas_d",
            "phenotype": "DISEASE",
            "covariates": COVARIATES,
            **logistic,
        },
    ]
    return study_from_mapping({"study": {"name": "gwas"}, "analysis": analyses}, path=Path("<t>"))


def _rows(path: Path) -> tuple[list[str], list[list[str]]]:
    lines = path.read_text().splitlines()
    return lines[0].split("\t"), [line.split("\t") for line in lines[1:]]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    return write_cohorts(
        tmp_path_factory.mktemp("glm") / "cohorts",
        sites=3,
        samples=600,
        variants=800,
        seed=11,
        missing_rate=0.03,
    )


def _plink2_glm(plink2: Path, cohort: SynthSummary, out: Path, *modifiers: str) -> Path:
    pooled = cohort.pooled
    subprocess.run(
        [
            str(plink2),
            "--bfile",
            str(cohort.pooled_prefix),
            "--pheno",
            str(pooled / "pheno.tsv"),
            # the GWAS phenotypes only (pheno.tsv also holds the survival columns)
            "--pheno-name",
            "QPHENO,DISEASE",
            "--covar",
            str(pooled / "covar.tsv"),
            "--glm",
            *modifiers,
            "--threads",
            "1",
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    return out


@pytest.fixture(scope="module")
def plink2_glm(
    cohort: SynthSummary, plink2: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return _plink2_glm(plink2, cohort, tmp_path_factory.mktemp("p2") / "pooled")


@pytest.fixture(scope="module")
def federated(cohort: SynthSummary, tmp_path_factory: pytest.TempPathFactory) -> StudyOutcome:
    out = tmp_path_factory.mktemp("fed") / "results"
    return run_study(_study(), InProcessTransport(cohort.sites), out, engine="in-process")


def assert_linear_matches(ours: Path, theirs: Path) -> None:
    header, rows = _rows(ours)
    ref_header, ref_rows = _rows(theirs)
    assert header == ref_header
    assert len(rows) == len(ref_rows)
    for col, name in enumerate(header):
        got, want = [r[col] for r in rows], [r[col] for r in ref_rows]
        if name in {"BETA", "SE", "T_STAT", "P"}:
            assert [g == "NA" for g in got] == [w == "NA" for w in want], name
            g = np.array([float(x) for x in got if x != "NA"])
            w = np.array([float(x) for x in want if x != "NA"])
            np.testing.assert_allclose(g, w, rtol=1.01e-5, atol=0, err_msg=name)
        else:
            assert got == want, name


def assert_logistic_matches(ours: Path, theirs: Path) -> None:
    header, rows = _rows(ours)
    ref_header, ref_rows = _rows(theirs)
    assert header == ref_header
    assert len(rows) == len(ref_rows)
    col = {name: j for j, name in enumerate(header)}
    firth_col = col.get("FIRTH?")
    exact = [c for c in ("#CHROM", "POS", "ID", "REF", "ALT", "A1", "FIRTH?", "TEST", "OBS_CT")]
    for r, w in zip(rows, ref_rows, strict=True):
        for name in exact:
            if name in col:
                assert r[col[name]] == w[col[name]], (name, r, w)
        firth = firth_col is not None and w[firth_col] == "Y"
        err, want_err = r[col["ERRCODE"]], w[col["ERRCODE"]]
        assert err == want_err or (firth and want_err == "UNFINISHED" and err == "."), (r, w)
        if w[col["OR"]] == "NA":
            assert r[col["OR"]] == "NA", (r, w)
            continue
        o, se, z, p = (float(r[col[c]]) for c in ("OR", "LOG(OR)_SE", "Z_STAT", "P"))
        wo, wse, wz, wp = (float(w[col[c]]) for c in ("OR", "LOG(OR)_SE", "Z_STAT", "P"))
        if firth:
            assert abs(math.log(o) - math.log(wo)) <= 2e-3, (r, w)
            assert abs(se - wse) <= 1e-3 * wse, (r, w)
            assert abs(z - wz) <= 1e-3 and abs(p - wp) <= 1e-3, (r, w)
        else:
            assert abs(o - wo) <= 1e-4 * wo and abs(se - wse) <= 1e-4 * wse, (r, w)
            assert abs(z - wz) <= 1e-4 * abs(wz) + 1e-6, (r, w)
            assert abs(math.log(p) - math.log(wp)) <= 1e-4 * max(1.0, wz * wz) + 2e-5, (r, w)


def test_linear_glm__equals_plink2_on_pooled(federated: StudyOutcome, plink2_glm: Path) -> None:
    ours = federated.out / "gwas.QPHENO.glm.linear"
    assert_linear_matches(ours, plink2_glm.with_name("pooled.QPHENO.glm.linear"))
    _, rows = _rows(ours)
    obs = {int(r[7]) for r in rows}
    assert len(obs) > 5  # missing calls drop different samples at different variants
    assert any(r[5] == r[3] for r in rows)  # some variants test REF (the minor allele) as A1


def test_logistic_glm__equals_plink2_firth_fallback_on_pooled(
    federated: StudyOutcome, plink2_glm: Path
) -> None:
    ours = federated.out / "gwas.DISEASE.glm.logistic.hybrid"
    assert_logistic_matches(ours, plink2_glm.with_name("pooled.DISEASE.glm.logistic.hybrid"))
    _, rows = _rows(ours)
    assert sum(r[6] == "Y" and r[7] == "ADD" for r in rows) > 20  # Firth fallback is exercised
    assert any(r[-1] == "CONST_OMITTED_ALLELE" for r in rows)


def test_glm_outputs__ssf_plots_and_lambda(federated: StudyOutcome) -> None:
    out = federated.out
    for pheno in ("QPHENO", "DISEASE"):
        for suffix in ("manhattan.png", "qq.png"):
            assert (out / f"gwas.{pheno}.{suffix}").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    header, rows = _rows(out / "gwas.QPHENO.ssf.tsv")
    assert header[:8] == [
        "chromosome",
        "base_pair_location",
        "effect_allele",
        "other_allele",
        "beta",
        "standard_error",
        "effect_allele_frequency",
        "p_value",
    ]
    _, linear = _rows(out / "gwas.QPHENO.glm.linear")
    add = [r for r in linear if r[6] == "ADD"]
    assert len(rows) == len(add)
    assert [(r[2], r[4], r[7]) for r in rows] == [
        (a[5], a[8].replace("NA", "#NA"), a[11].replace("NA", "#NA")) for a in add
    ]
    assert _rows(out / "gwas.DISEASE.ssf.tsv")[0][4] == "odds_ratio"
    summary = federated.summary
    assert summary["gwas_q"]["model"] == "linear"  # type: ignore[index]
    assert summary["gwas_d"]["model"] == "logistic"  # type: ignore[index]
    lam = summary["gwas_q"]["lambda_gc"]  # type: ignore[index]
    assert isinstance(lam, float) and lam > 0


def _swapped_site(site: Path, out: Path) -> Path:
    """A copy of ``site`` whose .bim lists the alleles the other way round, genotypes recoded."""
    src = site / "data" / "genotypes"
    (out / "data").mkdir(parents=True)
    with bed_reader.open_bed(src.with_suffix(".bed"), count_A1=True) as bed:
        g = bed.read(dtype="int8")
        props = {
            k: getattr(bed, k) for k in ("fid", "iid", "sex", "chromosome", "sid", "bp_position")
        }
        a1, a2 = bed.allele_1, bed.allele_2
    dst = out / "data" / "genotypes.bed"
    bed_reader.to_bed(
        dst,
        np.where(g < 0, g, 2 - g).astype(np.int8),
        properties={**props, "allele_1": a2, "allele_2": a1},
        count_A1=True,
    )
    for table in ("pheno.tsv", "covar.tsv"):
        shutil.copy(site / "data" / table, out / "data" / table)
    return init_site(
        out,
        name=site.name,
        genotypes=dst,
        phenotypes=out / "data" / "pheno.tsv",
        covariates=out / "data" / "covar.tsv",
        demo_policy=True,
    ).config.directory


def test_swapped_alleles_at_one_site__glm_equals_plink2(
    cohort: SynthSummary, plink2_glm: Path, tmp_path: Path
) -> None:
    swapped = _swapped_site(cohort.sites[1], tmp_path / cohort.sites[1].name)
    sites = [cohort.sites[0], swapped, cohort.sites[2]]
    outcome = run_study(_study(), InProcessTransport(sites), tmp_path / "r", engine="in-process")
    assert {r.site: r.n_swapped for r in outcome.harmonization.reports}["site-b"] > 0
    assert_linear_matches(
        outcome.out / "gwas.QPHENO.glm.linear", plink2_glm.with_name("pooled.QPHENO.glm.linear")
    )
    assert_logistic_matches(
        outcome.out / "gwas.DISEASE.glm.logistic.hybrid",
        plink2_glm.with_name("pooled.DISEASE.glm.logistic.hybrid"),
    )
