"""Privacy accounting for Gaussian releases, with Google's ``dp-accounting``.

Every DP release of a site is a Gaussian mechanism (discrete Gaussian for
integer counts), described by its noise multiplier ``z = sigma / sensitivity``
under add/remove-one-individual neighbouring. Releases compose through the
RDP accountant, and a budget is checked as (epsilon, delta) of the whole
composition in a period. The discrete Gaussian satisfies the same
concentrated-DP bound as the continuous one with the same sigma (Canonne,
Kamath and Steinke, 2020), so the continuous accountant is a valid, not
merely approximate, bound for it.

Pure: numbers in, numbers out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import dp_accounting
from dp_accounting.rdp import RdpAccountant

#: Bounds of the noise-multiplier search; outside them the request is unreasonable.
_Z_MIN, _Z_MAX = 1e-3, 1e6


def epsilon_of(noise_multipliers: Sequence[float], delta: float) -> float:
    """Epsilon at ``delta`` of composing Gaussian releases with these multipliers."""
    if not noise_multipliers:
        return 0.0
    accountant = RdpAccountant()
    for z, count in sorted(Counter(noise_multipliers).items()):
        accountant.compose(dp_accounting.GaussianDpEvent(z), count)
    return float(accountant.get_epsilon(delta))


def calibrate_noise_multiplier(epsilon: float, delta: float, *, tol: float = 1e-4) -> float:
    """The smallest noise multiplier (to ``tol`` relative) whose single release costs <= epsilon."""
    if epsilon <= 0 or not 0 < delta < 1:
        raise ValueError(f"need epsilon > 0 and 0 < delta < 1, not ({epsilon}, {delta})")
    lo, hi = _Z_MIN, _Z_MAX
    if epsilon_of([hi], delta) > epsilon:
        raise ValueError(f"epsilon {epsilon} at delta {delta} is too small to calibrate")
    while hi / lo > 1 + tol:
        mid = (lo * hi) ** 0.5
        if epsilon_of([mid], delta) <= epsilon:
            hi = mid
        else:
            lo = mid
    return hi


__all__ = ["calibrate_noise_multiplier", "epsilon_of"]
