"""Logistic ``glm`` when a covariate alone separates cases from controls, against plink2.

plink2 v2.00a3.5 checks every covariate, before any variant, over the
analysis samples (``GlmDetermineCovars`` in ``plink2_glm.cc``, with
``CheckForSeparatedCovar`` / ``CheckForSeparatedQtCovar``): a covariate
separates when the cases' range and the controls' range do not overlap
(complete) or touch at one value (quasi). Then:

* ``firth-fallback``: ``separation_found`` is set and GlmLogisticThread
  (``plink2_glm_logistic.cc``, ``cur_is_always_firth = is_always_firth ||
  ctx->separation_found``) fits every variant by Firth without trying
  Newton; FIRTH? reads Y on every row.
* ``firth``: no check (every variant is Firth anyway).
* ``no-firth``: complete separation stops the run (``Error: (Quasi-)separated
  covariate(s) were present``, exit 7); quasi-separation is handled by
  dropping the covariate and the samples off the tie value
  (``CheckForAndHandleSeparatedCovar``), but the loop around it re-iterates
  with a stale bit iterator and v2.00a3.5 crashes (exit 139 here).

GenoFed's coordinator makes that check exactly for two-valued covariates,
from the sites' ``glm_separation`` sums (:mod:`genofed.common.wire.glm`):
no range leaves a site. Where the covariate is continuous Newton fails for
every variant anyway (plink2's own rules), so every row falls back to Firth
in both and the flags agree (second test). A 0/1 covariate equal to the
phenotype, or 1 in every case and a few controls, would let Newton run to
its iteration limit; the check finds them and every row is Firth, as in
plink2 (third test).

Those Firth fits sit at the edge of the parameter space (odds ratios of
10^3 to 10^5 for the separating covariate), where plink2's single-precision
Firth stops a step earlier or later than GenoFed's double-precision one: on
a few rows one reads ``UNFINISHED`` and the other ``.``, with estimates
within 0.005 on the log-odds scale. The third test allows that on at most a
quarter of the rows and compares the numbers wherever plink2 finished.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from genofed.common.errors import InputError
from genofed.common.study import study_from_mapping
from genofed.coordinator.runner import run_study
from genofed.synth import SynthSummary, write_cohorts
from tests.harness import InProcessTransport
from tests.reference.planted import add_covariate, pooled_column

#: the separating covariates planted into the cohort
SEPARATING = ("QT_SEP", "QT_QSEP", "BIN_SEP", "BIN_QSEP")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    """3 sites, 600 samples, 40 variants, no missing calls (plink2 runs every variant at
    once, and v2.00a3.5's buffer reuse moves estimates only after a variant with more
    called samples: none here)."""
    summary = write_cohorts(
        tmp_path_factory.mktemp("sep") / "cohorts",
        sites=3,
        samples=600,
        variants=40,
        seed=11,
        missing_rate=0.0,
    )
    pooled = summary.pooled.parent
    case = pooled_column(pooled, "pheno.tsv", "DISEASE") == 2
    rng = np.random.default_rng(5)
    n = len(case)
    qt = np.where(case, rng.random(n), -rng.random(n))
    quasi = qt.copy()
    quasi[np.flatnonzero(case)[:3]] = 0.0
    quasi[np.flatnonzero(~case)[:3]] = 0.0
    columns = {
        "QT_SEP": qt,  # cases in (0, 1), controls in (-1, 0)
        "QT_QSEP": quasi,  # the same, three of each at 0
        "BIN_SEP": case.astype(float),
        "BIN_QSEP": np.where(case, 1.0, (rng.random(n) < 0.1).astype(float)),
    }
    for name, values in columns.items():
        add_covariate(pooled, name, np.round(values, 4))
    return summary


def _plink2(plink2: Path, cohort: SynthSummary, covariate: str | None, out: Path) -> Path:
    pooled = cohort.pooled
    subprocess.run(
        [
            str(plink2),
            "--bfile",
            str(cohort.pooled_prefix),
            "--pheno",
            str(pooled / "pheno.tsv"),
            "--pheno-name",
            "DISEASE",
            "--covar",
            str(pooled / "covar.tsv"),
            "--covar-name",
            ",".join(_covariates(covariate)),
            "--glm",
            "firth-fallback",
            "--threads",
            "1",
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    return out.with_name(f"{out.name}.DISEASE.glm.logistic.hybrid")


def _covariates(covariate: str | None) -> list[str]:
    return ["AGE", "SEX"] + ([covariate] if covariate else [])


def _federated(cohort: SynthSummary, covariate: str | None, out: Path) -> Path:
    study = study_from_mapping(
        {
            "study": {"name": "sep"},
            "analysis": [
                {
                    "kind": "glm",
                    "id": "g",
                    "phenotype": "DISEASE",
                    "covariates": _covariates(covariate),
                    "firth": "fallback",
                }
            ],
        },
        path=Path("<t>"),
    )
    fed = run_study(study, InProcessTransport(cohort.sites), out, engine="in-process")
    return fed.out / "gwas.DISEASE.glm.logistic.hybrid"


def _compare(ours: Path, theirs: Path) -> None:
    """FIRTH?, ERRCODE and OBS_CT exactly; OR and SE to 1e-3 (relative) on finished rows."""
    rows = [line.split("\t") for line in ours.read_text().splitlines()]
    ref = [line.split("\t") for line in theirs.read_text().splitlines()]
    assert rows[0] == ref[0] and len(rows) == len(ref)
    col = {name: j for j, name in enumerate(ref[0])}
    for r, w in zip(rows[1:], ref[1:], strict=True):
        for name in ("ID", "A1", "TEST", "FIRTH?", "ERRCODE", "OBS_CT"):
            assert r[col[name]] == w[col[name]], (name, r, w)
        if w[col["ERRCODE"]] == "." and w[col["OR"]] != "NA":
            for name in ("OR", "LOG(OR)_SE"):
                o, t = float(r[col[name]]), float(w[col[name]])
                assert abs(o - t) <= 1e-3 * abs(t), (name, r, w)


def _flags(table: Path) -> set[str]:
    return {line.split("\t")[6] for line in table.read_text().splitlines()[1:]}


@pytest.mark.parametrize("covariate", SEPARATING)
def test_separating_covariate__plink2_fits_every_variant_by_firth(
    cohort: SynthSummary, plink2: Path, tmp_path: Path, covariate: str
) -> None:
    assert _flags(_plink2(plink2, cohort, covariate, tmp_path / "p2")) == {"Y"}


@pytest.mark.parametrize("covariate", ["QT_SEP", "QT_QSEP"])
def test_continuous_separating_covariate__every_variant_firth_as_in_plink2(
    cohort: SynthSummary, plink2: Path, tmp_path: Path, covariate: str
) -> None:
    theirs = _plink2(plink2, cohort, covariate, tmp_path / "p2")
    ours = _federated(cohort, covariate, tmp_path / "fed")
    _compare(ours, theirs)


def _compare_at_the_edge(ours: Path, theirs: Path) -> None:
    """FIRTH? and OBS_CT exactly; ERRCODE equal but for a few UNFINISHED/``.`` pairs; numbers
    where plink2 finished: OR, SE to 2e-3 (relative) on rows both finished, log-odds to 0.005
    and SE to 2e-3 on rows only plink2 finished."""
    rows = [line.split("\t") for line in ours.read_text().splitlines()]
    ref = [line.split("\t") for line in theirs.read_text().splitlines()]
    assert rows[0] == ref[0] and len(rows) == len(ref)
    col = {name: j for j, name in enumerate(ref[0])}
    edge = 0
    for r, w in zip(rows[1:], ref[1:], strict=True):
        for name in ("ID", "A1", "TEST", "FIRTH?", "OBS_CT"):
            assert r[col[name]] == w[col[name]], (name, r, w)
        assert r[col["FIRTH?"]] == "Y"
        ours_err, their_err = r[col["ERRCODE"]], w[col["ERRCODE"]]
        if ours_err != their_err:
            assert {ours_err, their_err} == {"UNFINISHED", "."}, (r, w)
            edge += 1
        if their_err != "." or w[col["OR"]] == "NA":
            continue
        o_or, t_or = float(r[col["OR"]]), float(w[col["OR"]])
        o_se, t_se = float(r[col["LOG(OR)_SE"]]), float(w[col["LOG(OR)_SE"]])
        assert abs(o_se - t_se) <= 2e-3 * t_se, (r, w)
        if ours_err == ".":
            assert abs(o_or - t_or) <= 2e-3 * t_or, (r, w)
        else:
            assert abs(np.log(o_or) - np.log(t_or)) <= 5e-3, (r, w)
    assert edge <= (len(rows) - 1) // 4, f"{edge} of {len(rows) - 1} rows differ in ERRCODE"


@pytest.mark.parametrize("covariate", ["BIN_SEP", "BIN_QSEP"])
def test_binary_separating_covariate__every_variant_firth_as_in_plink2(
    cohort: SynthSummary, plink2: Path, tmp_path: Path, covariate: str
) -> None:
    theirs = _plink2(plink2, cohort, covariate, tmp_path / "p2")
    ours = _federated(cohort, covariate, tmp_path / "fed")
    _compare_at_the_edge(ours, theirs)


def test_binary_separating_covariate_with_firth_never__stops_as_plink2(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    """plink2 --glm no-firth stops on a separating covariate (exit 7); so does GenoFed."""
    study = study_from_mapping(
        {
            "study": {"name": "sep"},
            "analysis": [
                {
                    "kind": "glm",
                    "id": "g",
                    "phenotype": "DISEASE",
                    "covariates": ["AGE", "SEX", "BIN_QSEP"],
                    "firth": "never",
                }
            ],
        },
        path=Path("<t>"),
    )
    with pytest.raises(InputError, match=r"'BIN_QSEP' separate cases from controls") as got:
        run_study(study, InProcessTransport(cohort.sites), tmp_path / "fed", engine="in-process")
    assert "fallback" in (got.value.hint or "")


def test_two_valued_covariate_that_does_not_separate__newton_as_before(
    cohort: SynthSummary, plink2: Path, tmp_path: Path
) -> None:
    """SEX (1/2, both in cases and in controls) passes the check: rows as plink2's."""
    theirs = _plink2(plink2, cohort, None, tmp_path / "p2")
    ours = _federated(cohort, None, tmp_path / "fed")
    _compare(ours, theirs)
    assert "N" in _flags(ours)  # Newton where no genotype separates, as in plink2
