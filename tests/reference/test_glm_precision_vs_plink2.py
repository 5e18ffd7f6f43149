"""Linear glm equals plink2's printed digits under heavy, uneven missingness, near-zero BETAs too.

A tenth of the pooled samples miss 30 % of their calls (spread over the
three sites, each missing its own calls: :mod:`tests.reference.missing_calls`),
so nearly every variant's Gram matrix is the site totals minus a large
missing-call correction. plink2 solves each variant in double precision;
the federated BETA, SE, T_STAT and P must equal its printed values to 1e-5
relative, including the BETAs near zero, whose relative error a correction
rounded to single precision blew up to about 1e-4.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from genofed.common.study import study_from_mapping
from genofed.coordinator.runner import run_study
from genofed.synth import SynthSummary, write_cohorts
from tests.harness import InProcessTransport
from tests.reference.missing_calls import concentrate
from tests.reference.test_glm_vs_plink2 import _plink2_glm, _rows, assert_linear_matches

N_SAMPLES = 1200  # over 3 sites


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    summary = write_cohorts(
        tmp_path_factory.mktemp("prec") / "cohorts",
        sites=3,
        samples=N_SAMPLES,
        variants=1500,
        seed=23,
        missing_rate=0.01,
    )
    chosen = np.sort(np.random.default_rng(5).choice(N_SAMPLES, N_SAMPLES // 10, replace=False))
    concentrate(summary.out, chosen, 0.30, seed=9, same_variants=False)
    _shift_phenotype(summary, chosen, "QPHENO", 3.0)
    return summary


def _shift_phenotype(cohort: SynthSummary, samples: np.ndarray, column: str, by: float) -> None:
    """Add ``by`` to ``column`` for ``samples`` (pooled .fam order), pooled and at the sites.

    The batch that misses calls also differs in phenotype (another array,
    another case mix), so its missing-call sums lie far from the site's means.
    """
    fam = (cohort.pooled_prefix.with_suffix(".fam")).read_text().splitlines()
    shifted = {fam[i].split()[1] for i in samples.tolist()}
    for table in [cohort.pooled / "pheno.tsv", *(s / "data" / "pheno.tsv" for s in cohort.sites)]:
        lines = table.read_text().splitlines()
        col = lines[0].split("\t").index(column)
        out = [lines[0]]
        for line in lines[1:]:
            row = line.split("\t")
            if row[1] in shifted and row[col] != "NA":
                row[col] = f"{float(row[col]) + by:.6f}"
            out.append("\t".join(row))
        table.write_text("\n".join(out) + "\n")


def test_linear_glm__heavy_uneven_missingness__equals_plink2_printed_digits(
    cohort: SynthSummary, plink2: Path, tmp_path: Path
) -> None:
    _plink2_glm(plink2, cohort, tmp_path / "p2")
    study = study_from_mapping(
        {
            "study": {"name": "gwas"},
            "analysis": [{"kind": "glm", "phenotype": "QPHENO", "covariates": ["AGE", "SEX"]}],
        },
        path=Path("<t>"),
    )
    run_study(study, InProcessTransport(cohort.sites), tmp_path / "fed", engine="in-process")
    ours, theirs = tmp_path / "fed" / "gwas.QPHENO.glm.linear", tmp_path / "p2.QPHENO.glm.linear"
    header, rows = _rows(theirs)
    add = [r for r in rows if r[header.index("TEST")] == "ADD"]
    beta = np.array(
        [float(r[header.index("BETA")]) for r in add if r[header.index("BETA")] != "NA"]
    )
    obs = np.array([int(r[header.index("OBS_CT")]) for r in add])
    # the case this test is for: most variants lose many samples, many BETAs near zero
    assert np.mean(obs < N_SAMPLES - 40) > 0.9
    assert np.sum(np.abs(beta) < 0.01) >= 10
    assert_linear_matches(ours, theirs)
