"""A prs study in ``exact`` mode on Flower's simulation engine: every round masked, same tables.

The row matching, the score moments, the histogram and regression sums with
the ROC counts, every Newton round of the logistic fit and the calibration
groups go through SecAgg+; the tables must equal the ``plain`` study's byte
for byte, in as many rounds, and no site's counts reach the coordinator in
the clear.
"""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import pytest

from genofed.common.study import Study, study_from_mapping
from genofed.coordinator.runner import run_study
from genofed.simulation import run_simulated_study
from genofed.synth import SynthSummary, write_cohorts
from tests.harness import InProcessTransport


def _study(cohort: SynthSummary, mode: str) -> Study:
    analysis = {
        "kind": "prs",
        "scoring_file": str(cohort.scoring_file),
        "phenotype": "DISEASE",
        "covariates": ["AGE", "SEX"],
    }
    return study_from_mapping(
        {"study": {"name": "score"}, "privacy": {"mode": mode}, "analysis": [analysis]},
        path=Path("<test>"),
    )


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    root = tmp_path_factory.mktemp("secprs")
    return write_cohorts(root / "c", sites=3, samples=200, variants=150, seed=5, missing_rate=0.02)


def test_exact_prs__every_round_masked_and_tables_equal_plain(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    sites = list(cohort.sites)
    plain = run_study(
        _study(cohort, "plain"), InProcessTransport(sites), tmp_path / "p", engine="t"
    )
    run_simulated_study(_study(cohort, "exact"), sites, tmp_path / "e")
    tables = [f for f in plain.outputs if not f.endswith((".json", ".html", ".png"))]
    assert {"prs.histogram.tsv", "prs.calibration.tsv"} <= set(tables)
    for name in tables:
        assert filecmp.cmp(tmp_path / "p" / name, tmp_path / "e" / name, shallow=False), name
    p_sum = json.loads((tmp_path / "p" / "prs.summary.json").read_text())
    e_sum = json.loads((tmp_path / "e" / "prs.summary.json").read_text())
    assert p_sum == e_sum
    assert p_sum["rounds"] > 4  # match, moments, stats, Newton rounds, calibration
    doc = json.loads((tmp_path / "e" / "provenance.json").read_text())
    assert doc["summary"]["prs"]["rounds"] == p_sum["rounds"]
    for record in doc["sites"]:
        kinds = [r["request"] for r in record["releases"] if r["request"].startswith("prs")]
        assert kinds[:3] == ["prs_match", "prs_moments", "prs_stats"]
        assert kinds[-1] == "prs_calibration" and "prs_logistic" in kinds
        for release in record["releases"]:
            if release["request"].startswith("prs"):
                assert all(a["name"].startswith("secagg_masked_") for a in release["arrays"])
                assert release["receipt"]["receipt_check"] == "verified"
