"""DP-SGD charges: the ledger's subsampled-Gaussian accounting, dp-accounting and Opacus agree."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import dp_accounting
import numpy as np
import pytest
import torch
from dp_accounting.rdp import RdpAccountant
from opacus.accountants import RDPAccountant

from genofed.common.errors import PolicyRefusal
from genofed.common.wire.train import parameter_shapes
from genofed.site_agent.privacy.accounting import calibrate_dpsgd_noise, epsilon_of_events
from genofed.site_agent.privacy.ledger import Budget, Ledger, Release
from genofed.site_agent.stats.dpsgd import expected_steps, local_update

DELTA = 1e-5
WHEN = datetime(2026, 5, 1, tzinfo=UTC)


def _independent(z: float, q: float, steps: int, delta: float = DELTA) -> float:
    accountant = RdpAccountant()
    accountant.compose(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(z)), steps
    )
    return float(accountant.get_epsilon(delta))


@pytest.mark.parametrize(("z", "q", "steps"), [(1.1, 0.05, 40), (0.8, 0.01, 300), (2.0, 0.2, 5)])
def test_epsilon_of_events__equals_dp_accounting_and_agrees_with_opacus(
    z: float, q: float, steps: int
) -> None:
    ours = epsilon_of_events([(z, q, steps)], DELTA)
    assert ours == pytest.approx(_independent(z, q, steps), rel=1e-12)
    opacus = RDPAccountant()
    opacus.history = [(z, q, steps)]
    assert ours == pytest.approx(opacus.get_epsilon(DELTA), rel=2e-3)


def test_epsilon_of_events__rounds_compose_like_one_long_run() -> None:
    assert epsilon_of_events([(1.0, 0.1, 10)] * 3, DELTA) == pytest.approx(
        epsilon_of_events([(1.0, 0.1, 30)], DELTA), rel=1e-12
    )


def test_calibrate_dpsgd_noise__smallest_multiplier_within_target() -> None:
    z = calibrate_dpsgd_noise(3.0, DELTA, 0.05, 200)
    assert epsilon_of_events([(z, 0.05, 200)], DELTA) <= 3.0
    assert epsilon_of_events([(z * 0.99, 0.05, 200)], DELTA) > 3.0


def test_ledger__charges_dpsgd_rounds_and_refuses_the_round_over_budget(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite", Budget(10.0, DELTA), clock=lambda: WHEN)
    release = Release("s" * 64, "train", "run1", 1.0, 1.0, "dpsgd", sampling_rate=0.1, steps=10)
    first = ledger.charge(release)
    assert first.epsilon == pytest.approx(_independent(1.0, 0.1, 10), rel=1e-12)
    ledger.charge(release)
    assert ledger.spent_on("s" * 64, "run1", "train") == pytest.approx(
        _independent(1.0, 0.1, 20), rel=1e-12
    )
    with pytest.raises(PolicyRefusal) as refused:
        ledger.check(1.0, sampling_rate=0.1, steps=400)
    assert refused.value.reason_code == "BUDGET_EXCEEDED"
    with pytest.raises(PolicyRefusal):
        ledger.charge(Release("s" * 64, "train", "run1", 1.0, 1.0, sampling_rate=0.1, steps=400))
    assert len(ledger.entries()) == 2  # the refused round left no charge


def test_ledger__old_ledger_without_subsampling_columns_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE charges (id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, "
            "period TEXT NOT NULL, study_sha256 TEXT NOT NULL, analysis_id TEXT NOT NULL, "
            "run_id TEXT NOT NULL, mechanism TEXT NOT NULL, noise_multiplier REAL NOT NULL, "
            "sensitivity REAL NOT NULL, scale REAL NOT NULL, epsilon REAL NOT NULL, "
            "delta REAL NOT NULL)"
        )
        db.execute(
            "INSERT INTO charges VALUES (NULL, 't', '2026', 'x', 'freq', 'r', 'dg', 3.0, 1.0, "
            "3.0, 1.0, 1e-5)"
        )
    db.close()
    ledger = Ledger(path, Budget(50.0, DELTA), clock=lambda: WHEN)
    assert ledger.entries()[0]["sampling_rate"] == 1.0 and ledger.entries()[0]["steps"] == 1
    gaussian = RdpAccountant()
    gaussian.compose(dp_accounting.GaussianDpEvent(3.0))
    assert ledger.spent() == pytest.approx(gaussian.get_epsilon(DELTA), rel=1e-12)


def test_local_update__opacus_runs_exactly_the_steps_the_ledger_charges() -> None:
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, (130, 4)).astype(np.float32)
    y = (rng.uniform(size=130) < 0.3).astype(np.float32)
    weights = {k: np.zeros(s, np.float32) for k, s in parameter_shapes("logistic", 4, 1).items()}
    update = local_update(
        x, y, weights, model="logistic", hidden=1, local_epochs=2, batch_size=25,
        learning_rate=0.5, clipping_norm=1.0, noise_multiplier=1.3,
        generator=torch.Generator().manual_seed(5),
    )  # fmt: skip
    rate, steps = expected_steps(130, 25, 2)
    assert (update.sampling_rate, update.steps) == (rate, steps) == (1 / 6, 12)
    assert update.opacus_history == ((1.3, rate, steps),)
    assert all(np.isfinite(w).all() for w in update.weights.values())
    assert any(w.any() for w in update.weights.values())
