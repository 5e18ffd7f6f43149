"""A survival study in ``exact`` mode on Flower's simulation engine, through real SecAgg+.

A grouped ``km`` analysis (one site withholding small risk sets, another
merging grid times under its ``km_min_grid_step``) and a ``cox`` model
(every Newton round masked): the tables must equal the ``plain`` study's
byte for byte, with the same summary, and every survival release must have
left its site masked.
"""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import pytest

from genofed.common.study import Study, study_from_mapping
from genofed.coordinator.runner import run_study
from genofed.simulation import run_simulated_study
from genofed.site_agent.privacy.policy import POLICY_FILE
from genofed.synth import write_cohorts
from tests.harness import InProcessTransport

COMMON = {"time": "RFS_DAYS", "event": "RFS_EVENT"}
ANALYSES = [
    {
        "kind": "km",
        **COMMON,
        "group": "RSCORE",
        "cuts": [18, 31],
        "grid": [float(t) for t in range(60, 3300, 60)],
    },
    {"kind": "cox", **COMMON, "covariates": ["RSCORE", "AGE", "SEX"]},
]


def _study(mode: str) -> Study:
    return study_from_mapping(
        {"study": {"name": "surv"}, "privacy": {"mode": mode}, "analysis": ANALYSES},
        path=Path("<test>"),
    )


def _set_policy(site: Path, new: str) -> None:
    path = site / POLICY_FILE
    text = path.read_text()
    assert "min_cell_count = 0" in text
    path.write_text(text.replace("min_cell_count = 0", new))


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("secsurv")
    made = list(write_cohorts(root / "c", sites=3, samples=300, variants=10, seed=9).sites)
    _set_policy(made[0], "min_cell_count = 0\nkm_min_grid_step = 100\naudit_sample_sets = false")
    _set_policy(made[1], "min_cell_count = 6\naudit_sample_sets = false")
    return made


def test_exact_survival__every_round_masked_and_tables_equal_plain(
    sites: list[Path], tmp_path: Path
) -> None:
    plain = run_study(_study("plain"), InProcessTransport(sites), tmp_path / "p", engine="t")
    run_simulated_study(_study("exact"), sites, tmp_path / "e")

    tables = [f for f in plain.outputs if not f.endswith((".json", ".html"))]
    assert {"km.tsv", "logrank.tsv", "cox.tsv"} <= set(tables)
    for name in tables:
        assert filecmp.cmp(tmp_path / "p" / name, tmp_path / "e" / name, shallow=False), name

    p_sum = json.loads((tmp_path / "p" / "provenance.json").read_text())
    e_sum = json.loads((tmp_path / "e" / "provenance.json").read_text())
    assert p_sum["summary"]["km"] == e_sum["summary"]["km"]
    assert p_sum["summary"]["cox"] == e_sum["summary"]["cox"]
    km = e_sum["summary"]["km"]
    assert "of the study's" in km["grid points"] and km["cells withheld by sites"] > 0
    rounds = e_sum["summary"]["cox"]["rounds"]
    assert rounds > 1
    for record in e_sum["sites"]:
        kinds = [r["request"] for r in record["releases"]]
        assert kinds.count("km_counts") == 1 and kinds.count("cox_step") == rounds
        for release in record["releases"]:
            if release["request"] in ("km_counts", "cox_step"):
                assert all(a["name"].startswith("secagg_masked_") for a in release["arrays"])
                assert release["receipt"]["receipt_check"] == "verified"
