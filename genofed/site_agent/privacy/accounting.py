"""Privacy accounting for Gaussian releases, with Google's ``dp-accounting``.

Every DP release of a site is a Gaussian mechanism (discrete Gaussian for
integer counts), described by its noise multiplier ``z = sigma / sensitivity``
under add/remove-one-individual neighbouring. Releases compose through the
RDP accountant, and a budget is checked as (epsilon, delta) of the whole
composition in a period. The discrete Gaussian satisfies the same
concentrated-DP bound as the continuous one with the same sigma (Canonne,
Kamath and Steinke, 2020), so the continuous accountant is a valid, not
merely approximate, bound for it.

Pure: numbers in, numbers out. ``dp_accounting`` is imported when first
used: it takes about a second to import (scipy.signal), and the ClientApp
process that answers each request starts afresh, so a plain-mode round
should not pay for it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

#: Bounds of the noise-multiplier search; outside them the request is unreasonable.
_Z_MIN, _Z_MAX = 1e-3, 1e6
#: DP-SGD noise multipliers searched (below 0.1 the subsampled RDP bound is useless).
_SGD_Z_MIN, _SGD_Z_MAX = 0.1, 1e3


def epsilon_of(noise_multipliers: Sequence[float], delta: float) -> float:
    """Epsilon at ``delta`` of composing Gaussian releases with these multipliers."""
    return epsilon_of_events([(z, 1.0, 1) for z in noise_multipliers], delta)


#: One charge: (noise multiplier, Poisson sampling rate, steps). Rate 1.0 is a plain
#: Gaussian release; a rate below 1 is ``steps`` DP-SGD steps, each a Poisson-subsampled
#: Gaussian (Opacus's model, so this accountant and Opacus's RDP accountant agree).
Event = tuple[float, float, int]


def epsilon_of_events(events: Sequence[Event], delta: float) -> float:
    """Epsilon at ``delta`` of composing these events with dp-accounting's RDP accountant."""
    if not events:
        return 0.0
    from dp_accounting.rdp import rdp_privacy_accountant as rdp  # slow import: see above

    total = np.zeros(len(rdp.DEFAULT_RDP_ORDERS))
    for (z, q, steps), count in sorted(Counter(events).items()):
        total = total + _rdp_of_step(float(z), min(float(q), 1.0)) * (int(steps) * count)
    epsilon, _order = rdp.compute_epsilon(rdp.DEFAULT_RDP_ORDERS, total, delta)
    return float(epsilon)


@lru_cache(maxsize=256)
def _rdp_of_step(z: float, q: float) -> np.ndarray:
    """RDP curve (dp-accounting's default orders) of one (subsampled) Gaussian step."""
    import dp_accounting
    from dp_accounting.rdp import RdpAccountant

    gaussian = dp_accounting.GaussianDpEvent(z)
    event = gaussian if q >= 1.0 else dp_accounting.PoissonSampledDpEvent(q, gaussian)
    curve = np.array(RdpAccountant().compose(event).rdp, dtype=np.float64)
    curve.setflags(write=False)
    return curve


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
