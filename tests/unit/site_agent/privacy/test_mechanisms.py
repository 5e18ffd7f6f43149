"""Noise calibration, accounting and the secure discrete Gaussian sampler."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from genofed.site_agent.privacy.accounting import calibrate_noise_multiplier, epsilon_of
from genofed.site_agent.privacy.noise import add_discrete_gaussian, opendp_discrete_gaussian


@pytest.mark.parametrize("epsilon", [0.5, 1.0, 3.0, 10.0])
def test_calibrate__single_release_costs_at_most_epsilon_and_barely_less(epsilon: float) -> None:
    z = calibrate_noise_multiplier(epsilon, 1e-6)
    assert epsilon_of([z], 1e-6) <= epsilon
    assert epsilon_of([z * 0.99], 1e-6) > epsilon


def test_epsilon_of__composition_grows_and_empty_is_zero() -> None:
    assert epsilon_of([], 1e-6) == 0.0
    one = epsilon_of([4.0], 1e-6)
    assert epsilon_of([4.0, 4.0], 1e-6) > one
    assert epsilon_of([4.0, 4.0], 1e-6) < 2 * one  # RDP composition beats naive summing


def test_calibrate__rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        calibrate_noise_multiplier(0.0, 1e-6)


def test_discrete_gaussian__matches_its_distribution() -> None:
    scale = 4.0
    draws = opendp_discrete_gaussian(np.zeros(40_000, dtype=np.int64), scale)
    assert draws.dtype == np.int64
    support = np.arange(-20, 21)
    pmf = np.exp(-(support**2) / (2 * scale**2))
    pmf /= pmf.sum()
    counts = np.array([(draws == k).sum() for k in support])
    assert counts.sum() > 39_990  # mass beyond 5 sigma is negligible
    # bins with |k| <= 10 each, and the two tails pooled: every expected count is then >= 5,
    # which the chi-square approximation needs (single tail bins of expected 0.01 made its
    # p-value far from uniform, and the test failed far more often than its threshold says)
    core = np.abs(support) <= 10
    observed = np.r_[counts[support < -10].sum(), counts[core], counts[support > 10].sum()]
    expected = np.r_[pmf[support < -10].sum(), pmf[core], pmf[support > 10].sum()]
    chi2 = stats.chisquare(observed, expected * counts.sum())
    assert chi2.pvalue > 1e-4  # a fixed threshold: fails about once in 10,000 runs
    assert abs(draws.mean()) < 0.1
    assert abs(draws.var() / scale**2 - 1) < 0.05


def test_add_discrete_gaussian__keeps_shape_and_scale_zero_is_identity() -> None:
    values = np.arange(12, dtype=np.int64).reshape(3, 4)
    assert np.array_equal(add_discrete_gaussian(values, 0.0), values)
    noisy = add_discrete_gaussian(values, 2.0)
    assert noisy.shape == values.shape
    assert not np.array_equal(noisy, values)
