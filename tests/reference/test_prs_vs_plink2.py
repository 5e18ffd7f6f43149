"""Federated polygenic risk scores (``prs``) on 3 synthetic sites vs ``plink2 --score`` on pooled/.

Reference: ``plink2 --score FILE 1 2 3 cols=+scoresums`` on the pooled
cohort, with plink2's defaults (missing calls mean-imputed from the cohort's
allele frequencies), on the synth's PGS Catalog scoring file translated to
pooled variant IDs and effect alleles by an independent lookup here
(position, then alleles as written or complemented). The statistics are then
computed centrally with numpy/scipy from plink2's ``SCORE1_SUM``:
standardization (mean, SD with ddof 1), logistic / linear regression on
``[1, z, AGE, SEX]`` by Newton / least squares, the exact (Mann-Whitney)
AUC, the histogram and the calibration groups.

Tolerances: plink2 prints ``SCORE1_SUM`` to 6 significant digits, so the
per-sample scores agree to 1e-5 relative (plus 1e-6 absolute), and the
statistics built from them to relative 1e-4 (mean, SD, OR per SD, CI, SE).
Histogram and calibration counts are equal exactly. The federated AUC is the
trapezoid through its thresholds; it equals the same trapezoid computed
centrally to 1e-9 and the exact AUC to 0.01 (the cohort has 594 samples and
19 thresholds).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from genofed.common.errors import GenoFedError, InputError
from genofed.common.messages import AuditKind, Request, Status
from genofed.common.pgs_scoring import parse_scoring_file
from genofed.common.study import Study, study_from_mapping
from genofed.common.wire.proto import audit_entry_from_bytes
from genofed.common.wire.prs import group_edges, histogram_edges, roc_thresholds
from genofed.common.wire.records import (
    request_from_recorddict,
    request_to_recorddict,
    signed_study,
)
from genofed.coordinator.runner import StudyOutcome, run_study
from genofed.site_agent.audit.log import read_site_log
from genofed.site_agent.io.pheno import read_pheno_table
from genofed.site_agent.io.plink import BedFile
from genofed.site_agent.release import handle_request
from genofed.site_agent.stats.prs import effect_dosage_counts, match_rows, score_chunk
from genofed.synth import SynthSummary, write_cohorts
from tests.harness import InProcessTransport

COVARIATES = ["AGE", "SEX"]
_COMPLEMENT = str.maketrans("ACGT", "TGCA")


def _study(cohort: SynthSummary) -> Study:
    common = {"kind": "prs", "scoring_file": str(cohort.scoring_file), "covariates": COVARIATES}
    analyses = [
        {**common, "phenotype": "DISEASE"},
        {**common, "id": "prs_q", "phenotype": "QPHENO"},
    ]
    return study_from_mapping({"study": {"name": "prs"}, "analysis": analyses}, path=Path("<t>"))


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    return write_cohorts(
        tmp_path_factory.mktemp("prs") / "cohorts",
        sites=3,
        samples=600,
        variants=800,
        seed=11,
        missing_rate=0.03,
    )


@pytest.fixture(scope="module")
def federated(cohort: SynthSummary, tmp_path_factory: pytest.TempPathFactory) -> StudyOutcome:
    out = tmp_path_factory.mktemp("fed") / "results"
    return run_study(_study(cohort), InProcessTransport(cohort.sites), out, engine="in-process")


def _plink2_score_file(cohort: SynthSummary, path: Path) -> int:
    """Scoring rows as pooled ``ID EFFECT_ALLELE WEIGHT``; returns the number of rows kept."""
    scoring = parse_scoring_file(cohort.scoring_file.read_bytes())
    bim = {}
    for line in cohort.pooled_prefix.with_suffix(".bim").read_text().splitlines():
        chrom, vid, _, pos, a1, a2 = line.split("\t")
        bim[(chrom, int(pos))] = (vid, {a1, a2})
    lines = []
    for c, p, ea, oa, w in zip(
        scoring.chrom,
        scoring.pos,
        scoring.effect_allele,
        scoring.other_allele,
        scoring.weight,
        strict=True,
    ):
        hit = bim.get((str(c), int(p)))
        if hit is None:
            continue
        vid, alleles = hit
        if {ea, oa} != alleles:
            ea, oa = ea.translate(_COMPLEMENT), oa.translate(_COMPLEMENT)
        assert {ea, oa} == alleles
        lines.append(f"{vid}\t{ea}\t{float(w)!r}")
    path.write_text("\n".join(lines) + "\n")
    return len(lines)


@pytest.fixture(scope="module")
def plink2_scores(
    cohort: SynthSummary, plink2: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, float]:
    work = tmp_path_factory.mktemp("p2")
    _plink2_score_file(cohort, work / "score.txt")
    subprocess.run(
        [
            str(plink2),
            "--bfile",
            str(cohort.pooled_prefix),
            "--score",
            str(work / "score.txt"),
            "1",
            "2",
            "3",
            "cols=+scoresums",
            "--threads",
            "1",
            "--out",
            str(work / "pooled"),
        ],
        check=True,
        capture_output=True,
    )
    lines = (work / "pooled.sscore").read_text().splitlines()
    header = lines[0].split("\t")
    col = header.index("SCORE1_SUM")
    return {line.split("\t")[1]: float(line.split("\t")[col]) for line in lines[1:]}


def _central(cohort: SynthSummary, scores: dict[str, float], phenotype: str):  # type: ignore[no-untyped-def]
    pheno = read_pheno_table(cohort.pooled / "pheno.tsv")
    covar = read_pheno_table(cohort.pooled / "covar.tsv")
    assert list(pheno.iid) == list(covar.iid)
    y = pheno.column(phenotype)
    c = np.column_stack([covar.column(name) for name in COVARIATES])
    keep = ~np.isnan(y) & ~np.isnan(c).any(axis=1)
    s = np.array([scores[i] for i in pheno.iid])[keep]
    z = (s - s.mean()) / s.std(ddof=1)
    x = np.column_stack([np.ones(len(z)), z, c[keep]])
    return s, z, x, y[keep]


def _logistic(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    beta = np.zeros(x.shape[1])
    for _ in range(50):
        mu = 1.0 / (1.0 + np.exp(-(x @ beta)))
        info = x.T @ (x * (mu * (1 - mu))[:, None])
        step = np.linalg.solve(info, x.T @ (y - mu))
        beta += step
        if np.abs(step).sum() < 1e-12:
            break
    mu = 1.0 / (1.0 + np.exp(-(x @ beta)))
    info = x.T @ (x * (mu * (1 - mu))[:, None])
    return beta, np.sqrt(np.diag(np.linalg.inv(info)))


def _summary(out: Path, name: str) -> dict:
    return json.loads((out / name).read_text())


def test_prs_score__site_scoring_equals_plink2_score_per_sample(
    cohort: SynthSummary, plink2_scores: dict[str, float]
) -> None:
    scoring = parse_scoring_file(cohort.scoring_file.read_bytes())
    with BedFile(cohort.pooled_prefix.with_suffix(".bed")) as bed:
        v = bed.variants
        m = match_rows(
            v.chrom, v.pos, v.ref, v.alt, scoring.chrom, scoring.pos,
            scoring.effect_allele, scoring.other_allele, drop_ambiguous=False,
        )  # fmt: skip
        rows = np.flatnonzero(m.index >= 0)
        ((_, dosages),) = bed.iter_dosages(m.index[rows])
        counts = effect_dosage_counts(dosages, m.effect_is_alt[rows])
        freq = counts[:, 1] / (2.0 * counts[:, 0])
        ours = score_chunk(dosages, m.effect_is_alt[rows], scoring.weight[rows], freq)
        iids = list(bed.samples.iid)
    assert (dosages < 0).any()  # mean imputation is exercised
    theirs = np.array([plink2_scores[i] for i in iids])
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_prs_logistic__equals_central_statistics_on_plink2_scores(
    federated: StudyOutcome, cohort: SynthSummary, plink2_scores: dict[str, float]
) -> None:
    got = _summary(federated.out, "prs.summary.json")
    s, z, x, y = _central(cohort, plink2_scores, "DISEASE")
    y = y - 1.0  # plink 1/2 coding
    assert got["n_variants_matched"] == 15 and got["n_variants_unmatched"] == 3
    for m in got["matching"].values():  # the synth file exercises every matching path
        assert m["absent"] == 3 and m["swapped"] > 0
        assert m["strand_flipped"] + m["strand_flipped_swapped"] > 0
    assert got["n_samples"] == len(s)
    np.testing.assert_allclose(got["score_mean"], s.mean(), rtol=1e-4)
    np.testing.assert_allclose(got["score_sd"], s.std(ddof=1), rtol=1e-4)
    beta, se = _logistic(x, y)
    want_or = np.exp(beta[1])
    want_ci = np.exp(beta[1] + np.array([-1, 1]) * stats.norm.ppf(0.975) * se[1])
    np.testing.assert_allclose(got["or_per_sd"], want_or, rtol=1e-4)
    np.testing.assert_allclose(got["or_per_sd_ci"], want_ci, rtol=1e-4)
    case = y > 0.5
    u = stats.mannwhitneyu(z[case], z[~case]).statistic
    exact_auc = u / (case.sum() * (~case).sum())
    t = roc_thresholds(19)
    tpr = np.array([(z[case] >= v).mean() for v in t])
    fpr = np.array([(z[~case] >= v).mean() for v in t])
    xs, ys = np.r_[0.0, fpr[::-1], 1.0], np.r_[0.0, tpr[::-1], 1.0]
    trapezoid = float(np.sum(np.diff(xs) * (ys[1:] + ys[:-1]) / 2))
    assert got["auc_thresholds_released_by_every_site"] == 19
    assert abs(got["auc"] - trapezoid) < 1e-9
    assert abs(got["auc"] - exact_auc) < 0.01
    assert got["auc"] > 0.65  # the weights are the simulated trait's true effects


def test_prs_histogram_and_calibration__equal_central_counts(
    federated: StudyOutcome, cohort: SynthSummary, plink2_scores: dict[str, float]
) -> None:
    _, z, x, y = _central(cohort, plink2_scores, "DISEASE")
    lines = (federated.out / "prs.histogram.tsv").read_text().splitlines()[1:]
    got = [int(line.split("\t")[2]) for line in lines]
    want = np.bincount(np.searchsorted(histogram_edges(12), z, side="right"), minlength=14)
    assert got == want.tolist()
    rows = [r.split("\t") for r in (federated.out / "prs.calibration.tsv").read_text().splitlines()]
    group = np.searchsorted(group_edges(10), z, side="right")
    beta, _ = _logistic(x, y - 1.0)
    fitted = 1.0 / (1.0 + np.exp(-(x @ beta)))
    for g, row in enumerate(rows[1:]):
        sel = group == g
        assert int(row[3]) == sel.sum() and int(row[4]) == (y[sel] == 2).sum()
        np.testing.assert_allclose(float(row[5]), fitted[sel].sum(), rtol=1e-4)
    assert (federated.out / "prs.png").stat().st_size > 10_000


def test_prs_linear__beta_per_sd_equals_central_ols(
    federated: StudyOutcome, cohort: SynthSummary, plink2_scores: dict[str, float]
) -> None:
    got = _summary(federated.out, "prs.prs_q.summary.json")
    _, _, x, y = _central(cohort, plink2_scores, "QPHENO")
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ beta
    df = len(y) - x.shape[1]
    se = np.sqrt(np.diag(np.linalg.inv(x.T @ x)) * (resid @ resid) / df)
    assoc = got["association"]
    np.testing.assert_allclose(assoc["beta_per_sd"], beta[1], rtol=1e-4)
    np.testing.assert_allclose(assoc["se"], se[1], rtol=1e-4)
    half = stats.t.ppf(0.975, df) * se[1]
    np.testing.assert_allclose(assoc["beta_per_sd_ci"], [beta[1] - half, beta[1] + half], rtol=1e-4)
    assert got["auc"] is None and "calibration" not in got


def test_prs__small_cells_withheld_under_min_cell_count(
    cohort: SynthSummary, federated: StudyOutcome, tmp_path: Path
) -> None:
    sites = []
    for site in cohort.sites:
        copy = tmp_path / site.name
        shutil.copytree(site, copy)
        policy = copy / "policy.toml"
        text = policy.read_text()
        assert "min_cell_count = 0" in text
        policy.write_text(
            text.replace("min_cell_count = 0", "min_cell_count = 10\naudit_sample_sets = false")
        )
        sites.append(copy)
    analysis = {
        "kind": "prs",
        "scoring_file": str(cohort.scoring_file),
        "phenotype": "DISEASE",
        "covariates": COVARIATES,
    }
    study = study_from_mapping({"study": {"name": "prs"}, "analysis": [analysis]}, path=Path("t"))
    out = run_study(study, InProcessTransport(sites), tmp_path / "res", engine="in-process").out
    got = _summary(out, "prs.summary.json")
    lines = [r.split("\t") for r in (out / "prs.histogram.tsv").read_text().splitlines()[1:]]
    withheld = [r for r in lines if r[3] != "0"]
    assert withheld and all(r[2] == "NA" for r in withheld)
    assert got["histogram_bins_withheld"] == len(withheld)
    assert got["auc_thresholds_released_by_every_site"] < 19
    cal = [r.split("\t") for r in (out / "prs.calibration.tsv").read_text().splitlines()[1:]]
    assert got["calibration"]["groups_withheld"] == sum(r[-1] != "0" for r in cal) > 0
    assert sum(int(r[3]) for r in cal if r[3] != "NA") < got["n_samples"]
    # the same rows, scored without suppression: only the released tables differ
    lines = set(got["rows_withheld_by_a_site"])
    assert got["n_variants_matched"] == 15 - len(lines)
    same_rows = tmp_path / "same_rows.txt"
    text = cohort.scoring_file.read_text().splitlines()
    same_rows.write_text("".join(t + "\n" for i, t in enumerate(text, 1) if i not in lines))
    full_out = run_study(
        _prs_study(same_rows, covariates=COVARIATES),
        InProcessTransport(cohort.sites),
        tmp_path / "full",
        engine="in-process",
    ).out
    full = _summary(full_out, "prs.summary.json")
    assert got["or_per_sd"] == pytest.approx(full["or_per_sd"], rel=1e-12)
    assert abs(got["auc"] - full["auc"]) < 0.02


def _prs_study(scoring_file: Path, **params: object) -> Study:
    analysis = {"kind": "prs", "scoring_file": str(scoring_file), "phenotype": "DISEASE", **params}
    return study_from_mapping({"study": {"name": "prs"}, "analysis": [analysis]}, path=Path("t"))


def test_prs__pinned_hash_mismatch_stops_before_any_site_computes(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    study = _prs_study(cohort.scoring_file, scoring_sha256="0" * 64)
    transport = InProcessTransport(cohort.sites)
    with pytest.raises(InputError, match="SHA-256"):
        run_study(study, transport, tmp_path / "r", engine="in-process")
    assert transport.sent == []  # checked before the first round
    assert not (tmp_path / "r").exists()


def test_prs__site_refuses_and_audits_a_file_other_than_the_pinned_one(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    data = cohort.scoring_file.read_bytes()
    study = _prs_study(cohort.scoring_file, scoring_sha256=hashlib.sha256(data).hexdigest())
    tampered = data.replace(b"#pgs_id=GENOFED_SIM", b"#pgs_id=OTHER")
    request = Request(
        study=signed_study(study, None), analysis_id="prs", kind="prs_match", step="x"
    )
    site = cohort.sites[0]
    before = len(read_site_log(site).leaves)
    inputs = {"scoring_file": np.frombuffer(tampered, dtype=np.uint8).copy()}
    reply, arrays = handle_request(
        site, *request_from_recorddict(request_to_recorddict(request, inputs))
    )
    assert reply.status == Status.REFUSED and reply.reason_code == "BAD_REQUEST"
    assert "pins" in reply.message and arrays == {}
    new = [audit_entry_from_bytes(leaf) for leaf in read_site_log(site).leaves[before:]]
    assert new[0].kind == AuditKind.REQUEST  # the request, with the file's hash
    assert [(a.name, a.sha256) for a in new[0].inputs] == [
        ("scoring_file", hashlib.sha256(tampered).hexdigest())
    ]
    assert new[-1].kind == AuditKind.REFUSAL


def test_prs__no_row_matching_names_the_build(cohort: SynthSummary, tmp_path: Path) -> None:
    moved = tmp_path / "moved.txt"
    text = cohort.scoring_file.read_text().replace("#genome_build=NR", "#genome_build=GRCh37")
    lines = [
        "\t".join([*f[:2], str(int(f[2]) + 10**7), *f[3:]])
        if len(f) == 6 and f[2].isdigit()
        else line
        for line in text.splitlines()
        for f in [line.split("\t")]
    ]
    moved.write_text("\n".join(lines) + "\n")
    with pytest.raises(GenoFedError, match="GRCh37"):
        run_study(_prs_study(moved), InProcessTransport(cohort.sites), tmp_path / "r", engine="x")


def test_prs_after_qc__scores_the_rows_plink2_scores_with_the_filters(
    cohort: SynthSummary, plink2: Path, tmp_path: Path
) -> None:
    """With ``[qc]`` the score uses only rows of QC-kept variants, as ``plink2 --maf --geno
    --score`` does: the same number of rows, and the association equals central OLS on
    plink2's scores (mean imputation from the filtered cohort's frequencies)."""
    prs = {
        "kind": "prs",
        "id": "prs_q",
        "scoring_file": str(cohort.scoring_file),
        "covariates": COVARIATES,
        "phenotype": "QPHENO",
    }
    study = study_from_mapping(
        {"study": {"name": "prs-qc"}, "qc": {"maf": 0.05, "geno": 0.04}, "analysis": [prs]},
        path=Path("<t>"),
    )
    outcome = run_study(
        study, InProcessTransport(cohort.sites), tmp_path / "fed", engine="in-process"
    )
    _plink2_score_file(cohort, tmp_path / "score.txt")
    done = subprocess.run(
        [
            str(plink2),
            "--bfile",
            str(cohort.pooled_prefix),
            "--maf",
            "0.05",
            "--geno",
            "0.04",
            "--score",
            str(tmp_path / "score.txt"),
            "1",
            "2",
            "3",
            "cols=+scoresums",
            "--threads",
            "1",
            "--out",
            str(tmp_path / "p2"),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    processed = int(re.search(r"--score: (\d+) variants? processed", done.stdout)[1])  # type: ignore[index]
    lines = (tmp_path / "p2.sscore").read_text().splitlines()
    col = lines[0].split("\t").index("SCORE1_SUM")
    scores = {line.split("\t")[1]: float(line.split("\t")[col]) for line in lines[1:]}
    summary = outcome.summary["prs_q"]
    assert isinstance(summary, dict)
    assert summary["rows removed by [qc]"] > 0
    got = _summary(outcome.out, "prs.prs_q.summary.json")
    assert got["n_variants_matched"] == processed
    _, _, x, y = _central(cohort, scores, "QPHENO")
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    np.testing.assert_allclose(got["association"]["beta_per_sd"], beta[1], rtol=1e-4)
