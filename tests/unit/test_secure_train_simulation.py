"""``train`` in ``exact`` mode on Flower's simulation engine, through real SecAgg+.

FedAvg from the SecAgg+ sums (samples x weights, samples) and the pooled
evaluation histogram must give the plain study's tables byte for byte and
the same model weights bit for bit (the model files differ only in the
study's hash, whose privacy mode differs); every train release leaves the
sites masked. One Ray start (tens of seconds on 2 cores).
"""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import pytest
import torch

from genofed.common.study import Study, study_from_mapping
from genofed.coordinator.runner import run_study
from genofed.simulation import run_simulated_study
from genofed.synth import SynthSummary, write_cohorts
from tests.harness import InProcessTransport


def _study(cohort: SynthSummary, mode: str) -> Study:
    base = {
        "kind": "train",
        "target": "DISEASE",
        "variants": list(cohort.causal_variants)[:6],
        "covariates": ["AGE", "SEX"],
        "covariate_ranges": [[30, 80], [1, 2]],
        "batch_size": 32,
        "noise_multiplier": 0.0,
        "rounds": 2,
    }
    analyses = [base, {**base, "id": "mlp", "model": "mlp", "hidden_units": 3}]
    return study_from_mapping(
        {"study": {"name": "t"}, "privacy": {"mode": mode}, "analysis": analyses},
        path=Path("<test>"),
    )


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    root = tmp_path_factory.mktemp("sectrain")
    return write_cohorts(root / "c", sites=3, samples=150, variants=40, seed=6)


def test_exact_train__secaggplus_fedavg_equals_plain_byte_for_byte(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    sites = list(cohort.sites)
    plain = run_study(
        _study(cohort, "plain"), InProcessTransport(sites), tmp_path / "p", engine="t"
    )
    run_simulated_study(_study(cohort, "exact"), sites, tmp_path / "e")
    tables = [f for f in plain.outputs if f.endswith(".tsv")]
    assert {"train.calibration.tsv", "train.mlp.calibration.tsv"} <= set(tables)
    for name in tables:
        assert filecmp.cmp(tmp_path / "p" / name, tmp_path / "e" / name, shallow=False), name
    for name in ("model.pt", "model.mlp.pt"):
        p, e = (torch.load(tmp_path / d / name, weights_only=True) for d in ("p", "e"))
        assert set(p["state_dict"]) == set(e["state_dict"])
        for key, value in p["state_dict"].items():
            assert value.numpy().tobytes() == e["state_dict"][key].numpy().tobytes(), key
        assert {k: v for k, v in p.items() if k not in ("state_dict", "study_sha256")} == {
            k: v for k, v in e.items() if k not in ("state_dict", "study_sha256")
        }
    for name in ("train.summary.json", "train.mlp.summary.json"):
        p, e = (json.loads((tmp_path / d / name).read_text()) for d in ("p", "e"))
        assert {k: v for k, v in p.items() if k != "sites"} == {
            k: v for k, v in e.items() if k != "sites"
        }
        assert all(v["noise"] == "none (exact updates, exact release)" for v in e["sites"].values())
    prov = json.loads((tmp_path / "e" / "provenance.json").read_text())
    assert prov["privacy"]["release_mode"] == "exact"
    for record in prov["sites"]:
        train = [r for r in record["releases"] if r["request"].startswith("train_")]
        assert len(train) == 2 * (2 + 1)  # two analyses: 2 rounds and an evaluation each
        for release in train:
            assert all(a["name"].startswith("secagg_masked_") for a in release["arrays"])
