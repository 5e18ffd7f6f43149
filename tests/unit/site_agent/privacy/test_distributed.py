"""Distributed discrete Gaussian: share sizes, the charged guarantee, the sum's distribution."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from genofed.site_agent.privacy.accounting import calibrate_noise_multiplier, epsilon_of
from genofed.site_agent.privacy.distributed import noise_share
from genofed.site_agent.privacy.noise import opendp_discrete_gaussian


def test_noise_share__shares_add_up_to_the_target_variance() -> None:
    z = calibrate_noise_multiplier(1.0, 1e-6)
    share = noise_share(z, math.sqrt(100), shares=3, dimension=400)
    assert 3 * share.share_scale**2 == pytest.approx((z * 10) ** 2)
    # tau is negligible at this scale: the sum is charged as the target Gaussian
    assert share.tau < 1e-100
    assert share.charged_noise_multiplier == pytest.approx(z, rel=1e-12)
    # alone, one share is worth sqrt(3) less noise, so more epsilon
    assert share.alone_noise_multiplier == pytest.approx(z / math.sqrt(3))
    assert epsilon_of([share.alone_noise_multiplier], 1e-6) > 1.5


def test_noise_share__tiny_shares_are_charged_more_than_the_target() -> None:
    share = noise_share(0.5, 1.0, shares=10, dimension=1000)  # share scale ~0.16
    assert share.tau > 1e-3
    assert share.charged_noise_multiplier < 0.5


def test_noise_share__rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        noise_share(1.0, 1.0, shares=0, dimension=4)


def test_sum_of_three_opendp_shares__has_the_target_variance() -> None:
    target = 6.0
    share = noise_share(target, 1.0, shares=3, dimension=1)
    draws = sum(
        opendp_discrete_gaussian(np.zeros(20_000, dtype=np.int64), share.share_scale)
        for _ in range(3)
    )
    assert abs(draws.mean()) < 0.2
    # variance within a 99.9% chi-square interval around target**2
    n = draws.size
    lo, hi = stats.chi2.ppf([0.0005, 0.9995], n - 1) / (n - 1)
    assert lo * target**2 < draws.var(ddof=1) < hi * target**2
