"""train's combine half: FedAvg (against Flower's own aggregation), AUC and calibration."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, MetricRecord, RecordDict
from flwr.serverapp.strategy.strategy_utils import aggregate_arrayrecords

from genofed.common.wire.train import EVAL_LOGIT_EDGES, N_EVAL_BINS, parameter_shapes
from genofed.coordinator.combine.train import (
    auc_from_histogram,
    bin_probabilities,
    calibration_from_histogram,
    fedavg,
    initial_weights,
)


def test_fedavg__equals_flower_aggregate_arrayrecords_weighted_by_samples() -> None:
    rng = np.random.default_rng(4)
    shapes = parameter_shapes("mlp", 7, 5)
    updates = [
        {k: rng.normal(size=s).astype(np.float32) for k, s in shapes.items()} for _ in range(3)
    ]
    n = [120, 300, 45]
    ours = fedavg(updates, n)
    records = [
        RecordDict(
            {
                "arrays": ArrayRecord({k: Array(v) for k, v in u.items()}),
                "metrics": MetricRecord({"num-examples": m}),
            }
        )
        for u, m in zip(updates, n, strict=True)
    ]
    flower = aggregate_arrayrecords(records, "num-examples")
    assert set(ours) == set(flower)
    for name, value in ours.items():
        np.testing.assert_allclose(value, flower[name].numpy(), rtol=1e-6, atol=1e-7)


def test_fedavg__refuses_missing_counts() -> None:
    with pytest.raises(ValueError, match="positive sample count"):
        fedavg([{"a": np.zeros(1)}], [0])


def test_initial_weights__zeros_for_logistic_and_seeded_uniform_for_mlp() -> None:
    logistic = initial_weights("logistic", 4, 8, seed=1)
    assert all(not w.any() for w in logistic.values())
    a, b = initial_weights("mlp", 4, 8, seed=1), initial_weights("mlp", 4, 8, seed=1)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert np.abs(a["hidden.weight"]).max() <= 0.5  # 1/sqrt(fan_in = 4)


def _histogram(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    h = np.zeros((2, N_EVAL_BINS), dtype=np.int64)
    np.add.at(h, (y, np.digitize(logits, EVAL_LOGIT_EDGES)), 1)
    return h


def _exact_auc(scores: np.ndarray, y: np.ndarray) -> float:
    cases, controls = scores[y == 1], scores[y == 0]
    greater = (cases[:, None] > controls[None, :]).sum()
    ties = (cases[:, None] == controls[None, :]).sum()
    return float((greater + ties / 2) / (len(cases) * len(controls)))


def test_auc_from_histogram__within_0p005_of_the_per_patient_auc() -> None:
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 4000)
    logits = rng.normal(-1.0 + 1.2 * y, 1.0)
    assert abs(auc_from_histogram(_histogram(logits, y)) - _exact_auc(logits, y)) < 0.005


def test_auc_from_histogram__pooled_equals_auc_of_summed_site_counts() -> None:
    rng = np.random.default_rng(8)
    parts = []
    for shift in (0.0, 0.5, -0.3):
        y = rng.integers(0, 2, 500)
        parts.append((rng.normal(shift + y, 1.0), y))
    summed = sum(_histogram(lg, y) for lg, y in parts)
    pooled = _histogram(
        np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    )
    assert np.array_equal(summed, pooled)
    assert auc_from_histogram(summed) == pytest.approx(auc_from_histogram(pooled))


def test_auc_from_histogram__nan_without_cases() -> None:
    h = np.zeros((2, N_EVAL_BINS), dtype=np.int64)
    h[0, 3] = 10
    assert np.isnan(auc_from_histogram(h))


def test_calibration__perfectly_calibrated_model_has_observed_near_expected() -> None:
    rng = np.random.default_rng(9)
    logits = rng.normal(-1.0, 1.5, 60_000)
    y = (rng.uniform(size=logits.size) < 1 / (1 + np.exp(-logits))).astype(np.int64)
    cal = calibration_from_histogram(_histogram(logits, y))
    assert cal["observed_over_expected"] == pytest.approx(1.0, abs=0.02)
    for row in cal["groups"]:  # type: ignore[union-attr]
        if row["n"] > 2000:
            assert row["observed_cases"] == pytest.approx(row["expected_cases"], rel=0.06)
    assert sum(r["n"] for r in cal["groups"]) == logits.size  # type: ignore[union-attr]


def test_calibration__miscalibrated_model_is_flagged() -> None:
    rng = np.random.default_rng(10)
    logits = rng.normal(-1.0, 1.5, 20_000)
    y = (rng.uniform(size=logits.size) < 1 / (1 + np.exp(-(logits + 1.0)))).astype(np.int64)
    cal = calibration_from_histogram(_histogram(logits, y))
    assert cal["observed_over_expected"] > 1.3
    assert cal["hosmer_lemeshow_p"] < 1e-6


def test_bin_probabilities__increase_with_the_logit() -> None:
    p = bin_probabilities()
    assert len(p) == N_EVAL_BINS and np.all(np.diff(p) > 0)
