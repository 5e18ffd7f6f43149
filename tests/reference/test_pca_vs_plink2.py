"""Federated PCA on 3 synthetic sites against plink2 on the pooled cohort.

The reference is ``plink2 --pca K meanimpute biallelic-var-wts``: plink2's
exact eigendecomposition of the mean-imputed relationship matrix, the matrix
its ``--pca approx`` always uses (:mod:`genofed.common.wire.pca`). It is a
sum over variants, so the federated matrix is plink2's exactly however the
missing calls fall. plink2's default ``--pca`` divides each entry by the
variants called in both samples, which no variant-sized release carries;
with missing calls its eigenvalues are larger (measured on these cohorts:
by up to 5.7 % with 3 % uniform missing calls, 11 % and 14 % with the
concentrated missingness below, where some of its components are at |cos|
0.92 and 0.20 from ``meanimpute``'s), so it is not the reference.

Cohorts: the glm reference test's (600 samples, 800 variants, two
populations, 3 % missing calls), and two copies in which 60 samples (10 %)
also miss 30 % of their calls: spread over the three sites, each missing its
own calls; or all at site-b, missing the same variants (a batch on another
array; :mod:`tests.reference.missing_calls`).

Tolerances and why:

* against ``--pca meanimpute``: eigenvalues relative 1e-5 (plink2 prints 6
  digits; the iteration stops at relative residual 1e-4, whose eigenvalue
  error is about its square; measured: the same printed digits on all three
  cohorts); variant weights (``.eigenvec.var``): same variants, MAJ/NONMAJ
  columns and header, the same norms within 1e-4 (measured: 3.5e-7) and
  |cosine| >= 0.99999 with plink2's column for every component whose
  eigenvalue is at least 1 % from its neighbours (measured: 1 - 2.3e-9 or
  closer for all ten).
* against ``--pca approx`` (randomized, on the same matrix) on the
  concentrated cohorts: eigenvalues relative 1e-3, |cosine| >= 0.999
  (measured: as against ``meanimpute``; plink2's approximation is that good
  at 600 samples).
* LD pruning (``indep_pairwise``) keeps exactly plink2's ``prune.in``.
* GWAS with ``PC1..PC5`` as covariates (linear, QPHENO) against plink2
  ``--glm`` with plink2's own (``meanimpute``) PCs: OBS_CT, A1 and ERRCODE
  equal; ADD rows' T_STAT within ``3e-4 * max(1, |T|)`` and log10 P within
  ``3e-4 * max(1, |log10 P|)`` (measured: up to 5.9e-5); covariate rows'
  T_STAT within ``5e-4 * max(1, |T|)`` (measured: up to 1.0e-4, on PC5;
  before GenoFed used this matrix, 1.3e-3 and 2.2e-3 against plink2's
  default PCs). The PCs differ only by plink2 printing them to 6 digits.
  plink2 needs ``--covar-variance-standardize`` for covariates on such
  different scales; that reparametrizes the covariate rows only, so they are
  compared by T_STAT (scale-free; sign up to the PC's sign).
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
from tests.reference.missing_calls import concentrate

PCS = [f"PC{j}" for j in range(1, 6)]


def _pca(k: int, *more: str) -> tuple[str, ...]:
    """plink2's arguments for the reference: exact eigendecomposition, mean imputation."""
    return ("--pca", str(k), "meanimpute", *more)


def _cohort(factory: pytest.TempPathFactory, name: str, missing_rate: float = 0.03) -> SynthSummary:
    return write_cohorts(
        factory.mktemp(name) / "cohorts",
        sites=3,
        samples=600,
        variants=800,
        seed=11,
        missing_rate=missing_rate,
    )


@pytest.fixture(scope="module")
def complete(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    """No missing call: LD pair sums over every sample are plink2's pair-wise sums."""
    return _cohort(tmp_path_factory, "complete", missing_rate=0.0)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    return _cohort(tmp_path_factory, "pca")


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


def pca_agreement(ours: Path, theirs: Path) -> tuple[float, float, float]:
    """Largest relative eigenvalue and norm differences, least |cos|, over clear components.

    ``ours`` and ``theirs`` are output prefixes (``.eigenval``, ``.eigenvec.var``);
    the variant columns and header must be equal. A component is clear when
    its eigenvalue is at least 1 % from its neighbours' (else its direction
    is not defined to the test's precision).
    """
    got = np.loadtxt(f"{ours}.eigenval", ndmin=1)
    want = np.loadtxt(f"{theirs}.eigenval", ndmin=1)
    header, rows = _table(Path(f"{ours}.eigenvec.var"))
    ref_header, ref_rows = _table(Path(f"{theirs}.eigenvec.var"))
    assert header == ref_header
    assert [r[:4] for r in rows] == [r[:4] for r in ref_rows]
    a = np.array([[float(x) for x in r[4:]] for r in rows])
    b = np.array([[float(x) for x in r[4:]] for r in ref_rows])
    na, nb = np.linalg.norm(a, axis=0), np.linalg.norm(b, axis=0)
    cos = np.abs((a * b).sum(axis=0)) / (na * nb)
    gaps = np.abs(np.diff(want)) / want[:-1]
    clear = [
        j
        for j in range(len(want))
        if (j == 0 or gaps[j - 1] >= 0.01) and (j == len(want) - 1 or gaps[j] >= 0.01)
    ]
    assert len(clear) >= len(want) // 2, "the test cohort should have clear eigen-gaps"
    return (
        float(np.max(np.abs(got / want - 1.0))),
        float(np.max(np.abs(na / nb - 1.0))),
        float(cos[clear].min()),
    )


def assert_pca_matches(
    ours: Path, theirs: Path, *, rtol: float = 1e-5, cos_min: float = 0.99999
) -> None:
    eig, norm, cos = pca_agreement(ours, theirs)
    assert eig <= rtol, f"eigenvalues differ by {eig:.3g} (relative)"
    assert norm <= max(rtol, 1e-4), f"weight norms differ by {norm:.3g} (relative)"
    assert cos >= cos_min, f"least |cos| {cos:.8f}"


@pytest.fixture(scope="module")
def spread(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    """60 of 600 samples (10 %, at every site) each miss 30 % of their calls."""
    summary = _cohort(tmp_path_factory, "spread")
    chosen = np.sort(np.random.default_rng(3).choice(600, 60, replace=False))
    concentrate(summary.out, chosen, 0.30, seed=7, same_variants=False)
    return summary


@pytest.fixture(scope="module")
def one_site(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    """60 of site-b's samples miss the same 30 % of the variants (a batch on another array)."""
    summary = _cohort(tmp_path_factory, "one-site")
    start = len((summary.sites[0] / "data" / "genotypes.fam").read_text().splitlines())
    concentrate(summary.out, np.arange(start, start + 60), 0.30, seed=8, same_variants=True)
    return summary


def _sample_missing_rates(plink2: Path, cohort: SynthSummary, out: Path) -> np.ndarray:
    _plink2(plink2, cohort, out, "--missing", "sample-only")
    _, rows = _table(Path(f"{out}.smiss"))
    return np.array([float(r[-1]) for r in rows])


def test_pca__eigenvalues_and_weights_match_plink2_on_pooled(
    cohort: SynthSummary, plink2: Path, tmp_path: Path
) -> None:
    outcome = _run(cohort, tmp_path / "r", {"kind": "pca"})
    ref = _plink2(plink2, cohort, tmp_path / "p2", *_pca(10, "biallelic-var-wts"))
    assert_pca_matches(outcome.out / "pca", ref)
    stats = outcome.summary["pca"]
    assert stats["converged"] is True and stats["variants"] == 800  # type: ignore[index]
    assert not list(outcome.out.glob("*.eigenvec"))  # no per-sample file is written
    for site in cohort.sites:  # each site keeps its own scores
        (scores,) = (site / "state" / "pca").glob(f"{outcome.study.sha256}/pca/scores.npz")
        with np.load(scores) as z:
            assert z["scores"].shape[1] == 10


@pytest.mark.parametrize("which", ["spread", "one_site"])
def test_pca_with_missing_calls_concentrated_in_10pct_of_samples__matches_plink2(
    which: str, request: pytest.FixtureRequest, plink2: Path, tmp_path: Path
) -> None:
    """plink2 --pca meanimpute (exact) and --pca approx, with 30 % missing in 10 % of samples."""
    cohort: SynthSummary = request.getfixturevalue(which)
    rates = _sample_missing_rates(plink2, cohort, tmp_path / "miss")
    heavy = np.sort(rates)[-60:]
    assert heavy.min() > 0.25 and np.sort(rates)[-61] < 0.1  # the cohort is what it claims
    outcome = _run(cohort, tmp_path / "r", {"kind": "pca"})
    assert outcome.summary["pca"]["converged"] is True  # type: ignore[index]
    exact = _plink2(plink2, cohort, tmp_path / "p2", *_pca(10, "biallelic-var-wts"))
    assert_pca_matches(outcome.out / "pca", exact)
    approx = _plink2(
        plink2, cohort, tmp_path / "approx", "--pca", "10", "approx", "biallelic-var-wts"
    )
    assert_pca_matches(outcome.out / "pca", approx, rtol=1e-3, cos_min=0.999)


def test_ld_pruning_with_missing_calls__close_to_plink2s_prune_in(
    cohort: SynthSummary, plink2: Path, tmp_path: Path
) -> None:
    """3 % missing calls: a missing call counts at the pooled mean (plink2: pair-wise)."""
    outcome = _run(
        cohort,
        tmp_path / "r",
        {"kind": "pca", "n_pcs": 5, "maf": 0.02, "indep_pairwise": [50, 5, 0.5]},
    )
    prune = _plink2(
        plink2, cohort, tmp_path / "prune", "--maf", "0.02", "--indep-pairwise", "50", "5", "0.5"
    )
    kept = set(Path(f"{prune}.prune.in").read_text().split())
    _, rows = _table(outcome.out / "pca.eigenvec.var")
    ours = {r[1] for r in rows}
    assert len(ours & kept) / len(ours | kept) >= 0.9  # measured 0.92 (133 shared of 141, 136)


def test_pca_with_maf_and_ld_pruning__keeps_plink2s_prune_in(
    complete: SynthSummary, plink2: Path, tmp_path: Path
) -> None:
    cohort = complete
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
        *_pca(5, "biallelic-var-wts"),
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
        *_pca(4, "biallelic-var-wts"),
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
    pca = _plink2(plink2, cohort, tmp_path / "pcs", *_pca(5))
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
        tol = 3e-4 if r[col["TEST"]] == "ADD" else 5e-4
        assert abs(t - wt) <= tol * max(1.0, abs(wt)), (r, w)
        if r[col["TEST"]] == "ADD":
            lp, wlp = np.log10(float(r[col["P"]])), np.log10(float(w[col["P"]]))
            assert abs(lp - wlp) <= 3e-4 * max(1.0, abs(wlp)), (r, w)
    with_pcs = outcome.summary["pcs"]["lambda_gc"]  # type: ignore[index]
    assert with_pcs < outcome.summary["nopcs"]["lambda_gc"]  # type: ignore[index]
