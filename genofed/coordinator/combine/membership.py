"""The sites' membership limits applied to ``exact``-mode pooled counts.

In ``exact`` mode no site sees its counts leave in the clear, so no site runs
its membership check (``site_agent/privacy/membership_release.py``); the
coordinator, which alone sees the pooled counts, runs the same estimate
(:mod:`genofed.common.membership`, site-frequency reference, the pooled
people as the cohort) under each limit a site reported and withholds the
union of what they choose, as it applies the sites' ``min_cell_count`` to the
pooled table. Pure: arrays and parameters in, arrays out.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from genofed.common.membership import site_terms, withhold_for_power


def parse_limit(text: str) -> tuple[float, float] | None:
    """``(max_power, fpr)`` from a site's ``membership_limit`` fact; None if malformed."""
    try:
        limit, fpr = (float(x) for x in text.split())
    except ValueError:
        return None
    return (limit, fpr) if 0 < fpr < limit <= 1 else None


def pooled_withheld(
    pooled: npt.NDArray[np.integer],
    limits: Iterable[tuple[float, float]],
    withheld: npt.NDArray[np.bool_],
) -> tuple[npt.NDArray[np.bool_], float]:
    """Variants to withhold from the pooled ``(V, 4)`` counts, and the highest power left.

    ``withheld``: variants already withheld (small pooled cells); the power left
    is the largest over the limits' false-positive rates.
    """
    terms = site_terms(pooled)
    out = np.zeros(len(pooled), dtype=np.bool_)
    highest = 0.0
    for limit, fpr in sorted(set(limits)):
        chosen = withhold_for_power(terms, fpr, limit, released=~(withheld | out))
        out |= chosen.withheld
        highest = max(highest, chosen.power_after)
    return out, highest


__all__ = ["parse_limit", "pooled_withheld"]
