"""RDP composition of Gaussian releases: the one accountant both sides use.

A site's ledger charges every DP release as one event (noise multiplier,
Poisson sampling rate, steps) and composes a period's events with Google's
``dp-accounting`` RDP accountant
(:mod:`genofed.site_agent.privacy.accounting` calibrates noise with it). The
coordinator's report composes the releases of a study the same way, from the
noise records the sites return (:func:`charged_event`), so the analyst and
the privacy officer see the same number for the same charges.

Pure: numbers in, numbers out. ``dp_accounting`` is imported when first
used: it takes about a second to import (scipy.signal), and the ClientApp
process that answers each request starts afresh, so a plain-mode round
should not pay for it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np

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


def _positive(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number > 0 else None


def charged_event(noise: Mapping[str, object]) -> Event | None:
    """The ledger event of a charged release, from the noise record its reply carries.

    The sites' records: dp counts (``noise_multiplier``), distributed-dp noise
    shares (``charged_noise_multiplier``: what the site charges for its share),
    DP-SGD (``noise_multiplier``, ``sampling_rate``, ``steps``; under a SecAgg+
    mask, the same record as ``local``). None when the record does not say
    (then the event cannot be composed here).
    """
    z = _positive(noise.get("charged_noise_multiplier", noise.get("noise_multiplier")))
    local = noise.get("local")
    if z is None and isinstance(local, Mapping):
        return charged_event(local)
    if z is None:
        return None
    rate = _positive(noise.get("sampling_rate", 1.0))
    steps = _positive(noise.get("steps", 1))
    if rate is None or steps is None or rate > 1 or steps != int(steps):
        return None
    return (z, rate, int(steps))


def charges_text(charges: Sequence[float], *, limit: int = 8) -> str:
    """Each charge's epsilon alone, oldest first, as both reports show them: ``0.5 + 0.5``.

    Shown beside the composed epsilon, never instead of it: the plain sum of the
    charges is an upper bound that RDP composition tightens (two releases of
    0.5 compose to about 0.72, not 1).
    """
    if not charges:
        return "none"
    shown = " + ".join(f"{c:.4g}" for c in charges[:limit])
    more = len(charges) - limit
    return shown + (f" + … ({more} more)" if more > 0 else "")


__all__ = ["Event", "charged_event", "charges_text", "epsilon_of_events"]
