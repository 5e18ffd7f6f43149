"""Privacy accounting for Gaussian releases, with Google's ``dp-accounting``.

Every DP release of a site is a Gaussian mechanism (discrete Gaussian for
integer counts), described by its noise multiplier ``z = sigma / sensitivity``
under add/remove-one-individual neighbouring. Releases compose through the
RDP accountant, and a budget is checked as (epsilon, delta) of the whole
composition in a period. The discrete Gaussian satisfies the same
concentrated-DP bound as the continuous one with the same sigma (Canonne,
Kamath and Steinke, 2020), so the continuous accountant is a valid, not
merely approximate, bound for it.

The composition itself (:func:`epsilon_of_events`) lives in
:mod:`genofed.common.accounting`, so that the coordinator's report composes
a study's releases with the same accountant; it is re-exported here.

Pure: numbers in, numbers out. ``dp_accounting`` is imported when first
used (see :mod:`genofed.common.accounting`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

from genofed.common.accounting import Event, epsilon_of_events

#: Bounds of the noise-multiplier search; outside them the request is unreasonable.
_Z_MIN, _Z_MAX = 1e-3, 1e6
#: DP-SGD noise multipliers searched (below 0.1 the subsampled RDP bound is useless).
_SGD_Z_MIN, _SGD_Z_MAX = 0.1, 1e3


def epsilon_of(noise_multipliers: Sequence[float], delta: float) -> float:
    """Epsilon at ``delta`` of composing Gaussian releases with these multipliers."""
    return epsilon_of_events([(z, 1.0, 1) for z in noise_multipliers], delta)


@lru_cache(maxsize=64)
def calibrate_dpsgd_noise(
    epsilon: float, delta: float, sampling_rate: float, steps: int, *, tol: float = 1e-3
) -> float:
    """The smallest noise multiplier (to ``tol``) whose subsampled ``steps`` cost <= epsilon."""
    if epsilon <= 0 or not 0 < delta < 1 or not 0 < sampling_rate <= 1 or steps < 1:
        raise ValueError(
            f"need epsilon > 0, 0 < delta < 1, 0 < rate <= 1, steps >= 1, not "
            f"({epsilon}, {delta}, {sampling_rate}, {steps})"
        )
    from scipy.optimize import brentq

    def excess(log_z: float) -> float:
        return epsilon_of_events([(math.exp(log_z), sampling_rate, steps)], delta) - epsilon

    lo, hi = math.log(_SGD_Z_MIN), math.log(_SGD_Z_MAX)
    if excess(hi) > 0:
        raise ValueError(f"epsilon {epsilon} at delta {delta} is too small to calibrate")
    if excess(lo) <= 0:
        return _SGD_Z_MIN
    z = math.exp(brentq(excess, lo, hi, xtol=tol / 2))
    while excess(math.log(z)) > 0:  # root-finding may land just below: step up to cover
        z *= 1 + tol
    return z


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


__all__ = [
    "Event",
    "calibrate_dpsgd_noise",
    "calibrate_noise_multiplier",
    "epsilon_of",
    "epsilon_of_events",
]
