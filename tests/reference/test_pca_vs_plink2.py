"""Federated PCA on 3 synthetic sites against ``plink2 --pca`` on the pooled cohort.

The cohort (600 samples, 800 variants, two populations, 3 % missing calls)
is the one the glm reference test uses. plink2 runs ``--pca K
biallelic-var-wts`` (exact eigendecomposition) on ``pooled/``.

Tolerances and why:

* eigenvalues: relative 1e-3 (measured: ~1e-4). plink2 divides each
  relationship entry by the number of variants called in both samples,
  which across sites would need every sample's missingness pattern; GenoFed
  uses ``c_j c_k / M`` off the diagonal (exact on it, and exact everywhere
  when no call is missing), see :mod:`genofed.common.wire.pca`. The
  iteration itself stops at relative residual 1e-4, far below that.
* variant weights (``.eigenvec.var``): same variants, MAJ/NONMAJ columns and
  header; |cosine| >= 0.999 with plink2's column for every component whose
  eigenvalue is at least 1 % from its neighbours (measured >= 0.99999),
  and the same scale (norms within 1e-3).
* LD pruning (``indep_pairwise``) keeps exactly plink2's ``prune.in``.
* GWAS with ``PC1..PC5`` as covariates (linear, QPHENO) against plink2
  ``--glm`` with plink2's own PCs: OBS_CT, A1 and ERRCODE equal; ADD rows'
  T_STAT within ``3e-3 * max(1, |T|)`` and log10 P within
  ``3e-3 * max(1, |log10 P|)`` (measured: up to 1.3e-3); covariate rows'
  T_STAT within ``5e-3 * max(1, |T|)`` (measured: up to 2.2e-3, on PC4).
  The difference is the PCs' (each at an angle of a few 1e-4 from plink2's,
  from the missing-call approximation above, plus plink2 printing them to 6
  digits). plink2 needs ``--covar-variance-standardize`` for covariates on
  such different scales; that reparametrizes the covariate rows only, so
  they are compared by T_STAT (scale-free; sign up to the PC's sign).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from genofed.common.study import study_from_mapping
from genofed.coordinator.runner import StudyOutcome, run_study
from genofed.synth import SynthSummary, write_cohorts
from tests.harness import InProcessTransport

PCS = [f"PC{j}" for j in range(1, 6)]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    return write_cohorts(
        tmp_path_factory.mktemp("pca") / "cohorts",
        sites=3,
        samples=600,
        variants=800,
        seed=11,
        missing_rate=0.03,
    )


def _plink2(plink2: Path, cohort: SynthSummary, out: Path, *args: str) -> Path:
    subprocess.run(
        [
            str(plink2),
            "--bfile",
            str(cohort.pooled_prefix),
            *args,
            "--threads",
            "1",
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    return out


def _run(cohort: SynthSummary, out: Path, *analyses: dict[str, object]) -> StudyOutcome:
    study = study_from_mapping(
        {"study": {"name": "pca"}, "analysis": list(analyses)}, path=Path("<test>")
    )
    return run_study(study, InProcessTransport(cohort.sites), out, engine="in-process")


def _table(path: Path) -> tuple[list[str], list[list[str]]]:
    lines = path.read_text().splitlines()
    return lines[0].split("\t"), [line.split("\t") for line in lines[1:]]


def assert_pca_matches(ours: Path, theirs: Path) -> None:
    """``ours`` and ``theirs`` are output prefixes (``.eigenval``, ``.eigenvec.var``)."""
    got = np.loadtxt(f"{ours}.eigenval", ndmin=1)
    want = np.loadtxt(f"{theirs}.eigenval", ndmin=1)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=0)
    header, rows = _table(Path(f"{ours}.eigenvec.var"))
    ref_header, ref_rows = _table(Path(f"{theirs}.eigenvec.var"))
    assert header == ref_header
    assert [r[:4] for r in rows] == [r[:4] for r in ref_rows]
    a = np.array([[float(x) for x in r[4:]] for r in rows])
    b = np.array([[float(x) for x in r[4:]] for r in ref_rows])
    na, nb = np.linalg.norm(a, axis=0), np.linalg.norm(b, axis=0)
    np.testing.assert_allclose(na, nb, rtol=1e-3)
    cos = np.abs((a * b).sum(axis=0)) / (na * nb)
    gaps = np.abs(np.diff(want)) / want[:-1]
    clear = [
        j
        for j in range(len(want))
        if (j == 0 or gaps[j - 1] >= 0.01) and (j == len(want) - 1 or gaps[j] >= 0.01)
    ]
    assert len(clear) >= len(want) // 2, "the test cohort should have clear eigen-gaps"
    assert cos[clear].min() >= 0.999, cos


def test_pca__eigenvalues_and_weights_match_plink2_on_pooled(
    cohort: SynthSummary, plink2: Path, tmp_path: Path
) -> None:
    outcome = _run(cohort, tmp_path / "r", {"kind": "pca"})
    ref = _plink2(plink2, cohort, tmp_path / "p2", "--pca", "10", "biallelic-var-wts")
    assert_pca_matches(outcome.out / "pca", ref)
    stats = outcome.summary["pca"]
    assert stats["converged"] is True and stats["variants"] == 800  # type: ignore[index]
    assert not list(outcome.out.glob("*.eigenvec"))  # no per-sample file is written
    for site in cohort.sites:  # each site keeps its own scores
        (scores,) = (site / "state" / "pca").glob(f"{outcome.study.sha256}/pca/scores.npz")
        with np.load(scores) as z:
            assert z["scores"].shape[1] == 10


def test_pca_with_maf_and_ld_pruning__keeps_plink2s_prune_in(
    cohort: SynthSummary, plink2: Path, tmp_path: Path
) -> None:
    outcome = _run(
        cohort,
        tmp_path / "r",
        {"kind": "pca", "n_pcs": 5, "maf": 0.02, "indep_pairwise": [50, 5, 0.5]},
    )
    prune = _plink2(
        plink2, cohort, tmp_path / "prune", "--maf", "0.02", "--indep-pairwise", "50", "5", "0.5"
    )
    kept = Path(f"{prune}.prune.in").read_text().split()
    _, rows = _table(outcome.out / "pca.eigenvec.var")
    assert [r[1] for r in rows] == kept
    assert 0 < len(kept) < 800
    ref = _plink2(
        plink2,
        cohort,
        tmp_path / "p2",
        "--extract",
        f"{prune}.prune.in",
        "--pca",
        "5",
        "biallelic-var-wts",
    )
    assert_pca_matches(outcome.out / "pca", ref)


def test_pca_on_listed_variants__matches_plink2_extract(
    cohort: SynthSummary, plink2: Path, tmp_path: Path
) -> None:
    ids = [
        line.split("\t")[1] for line in Path(f"{cohort.pooled_prefix}.bim").read_text().splitlines()
    ]
    listed = ids[::2]
    (tmp_path / "list.txt").write_text("\n".join(listed) + "\n")
    outcome = _run(cohort, tmp_path / "r", {"kind": "pca", "n_pcs": 4, "variants": listed})
    ref = _plink2(
        plink2,
        cohort,
        tmp_path / "p2",
        "--extract",
        str(tmp_path / "list.txt"),
        "--pca",
        "4",
        "biallelic-var-wts",
    )
    assert_pca_matches(outcome.out / "pca", ref)


def test_glm_with_pcs__matches_plink2_glm_with_plink2s_pcs(
    cohort: SynthSummary, plink2: Path, tmp_path: Path
) -> None:
    outcome = _run(
        cohort,
        tmp_path / "r",
        {"kind": "pca", "n_pcs": 5},
        {"kind": "glm", "id": "pcs", "phenotype": "QPHENO", "covariates": ["AGE", "SEX", *PCS]},
        {"kind": "glm", "id": "nopcs", "phenotype": "QPHENO", "covariates": ["AGE", "SEX"]},
    )
    pca = _plink2(plink2, cohort, tmp_path / "pcs", "--pca", "5")
    scores = {
        line.split("\t")[1]: line.split("\t")[2:]
        for line in Path(f"{pca}.eigenvec").read_text().splitlines()[1:]
    }
    covar = (cohort.pooled / "covar.tsv").read_text().splitlines()
    merged = [covar[0] + "\t" + "\t".join(PCS)]
    merged += [row + "\t" + "\t".join(scores[row.split("\t")[1]]) for row in covar[1:]]
    (tmp_path / "covar_pcs.tsv").write_text("\n".join(merged) + "\n")
    ref = _plink2(
        plink2,
        cohort,
        tmp_path / "glm",
        "--pheno",
        str(cohort.pooled / "pheno.tsv"),
        "--pheno-name",
        "QPHENO",
        "--covar",
        str(tmp_path / "covar_pcs.tsv"),
        "--covar-variance-standardize",
        "--glm",
    )
    header, rows = _table(outcome.out / "gwas.pcs.QPHENO.glm.linear")
    ref_header, ref_rows = _table(Path(f"{ref}.QPHENO.glm.linear"))
    assert header == ref_header
    assert len(rows) == len(ref_rows) == 800 * 8
    col = {name: j for j, name in enumerate(header)}
    for r, w in zip(rows, ref_rows, strict=True):
        for name in ("ID", "A1", "TEST", "OBS_CT", "ERRCODE"):
            assert r[col[name]] == w[col[name]], (name, r, w)
        if w[col["T_STAT"]] == "NA":
            assert r[col["T_STAT"]] == "NA", (r, w)
            continue
        t, wt = float(r[col["T_STAT"]]), float(w[col["T_STAT"]])
        if r[col["TEST"]] in PCS:
            t, wt = abs(t), abs(wt)
        tol = 3e-3 if r[col["TEST"]] == "ADD" else 5e-3
        assert abs(t - wt) <= tol * max(1.0, abs(wt)), (r, w)
        if r[col["TEST"]] == "ADD":
            lp, wlp = np.log10(float(r[col["P"]])), np.log10(float(w[col["P"]]))
            assert abs(lp - wlp) <= 3e-3 * max(1.0, abs(wlp)), (r, w)
    with_pcs = outcome.summary["pcs"]["lambda_gc"]  # type: ignore[index]
    assert with_pcs < outcome.summary["nopcs"]["lambda_gc"]  # type: ignore[index]
