"""Distributed discrete Gaussian: each site's noise share and what it guarantees.

In ``distributed-dp`` mode the study names a target (epsilon, delta) and a
number of noise shares ``t``. The target needs Gaussian noise of scale
``sigma = z * sensitivity`` on the sum (``z`` calibrated as for ``dp``); each
site adds discrete Gaussian noise of scale ``sigma / sqrt(t)`` (variance
``sigma**2 / t``) to its counts before SecAgg+ masks them, so whenever the
shares of at least ``t`` sites are in the sum, the sum carries variance at
least ``sigma**2``.

A sum of discrete Gaussians is not itself a discrete Gaussian. Kairouz, Liu
and Steinke (2021, "The Distributed Discrete Gaussian Mechanism for Federated
Learning with Secure Aggregation", Theorem 1) bound it: the sum of ``t``
independent shares of variance ``s**2`` each, for a release of ``d`` values
with L2 sensitivity ``D``, is ``eps**2 / 2``-concentrated DP with::

    eps**2 = D**2 / (t * s**2) + tau * d / 2,
    tau = 10 * sum_{k=1}^{t-1} exp(-2 * pi**2 * s**2 * k / (k + 1)).

A Gaussian mechanism with noise multiplier ``z_eff = 1 / eps`` has the same
RDP curve (``alpha / (2 z_eff**2)``), so the site's ledger is charged for a
Gaussian release with multiplier ``z_eff`` (<= ``z``; equal to ``z`` up to
``tau``, which is below 1e-100 for any share scale >= 4).

Pure: numbers in, numbers out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class NoiseShare:
    """One site's share of the distributed noise and the guarantee it is charged for."""

    #: the target's noise multiplier (study epsilon, delta)
    noise_multiplier: float
    #: L2 sensitivity of the released vector
    sensitivity: float
    #: t: shares whose sum makes up the target noise
    shares: int
    #: number of values released (d)
    dimension: int

    @property
    def share_scale(self) -> float:
        """Scale (standard deviation) of this site's discrete Gaussian share."""
        return self.noise_multiplier * self.sensitivity / math.sqrt(self.shares)

    @property
    def tau(self) -> float:
        s2 = self.share_scale**2
        return 10.0 * sum(
            math.exp(-2 * math.pi**2 * s2 * k / (k + 1)) for k in range(1, self.shares)
        )

    @property
    def charged_noise_multiplier(self) -> float:
        """``z_eff``: the Gaussian multiplier whose RDP curve bounds ``t`` shares' sum."""
        eps2 = self.sensitivity**2 / (self.shares * self.share_scale**2)
        eps2 += self.tau * self.dimension / 2
        return 1.0 / math.sqrt(eps2)

    @property
    def alone_noise_multiplier(self) -> float:
        """The multiplier of this site's own share: its guarantee if no other share is honest."""
        return self.share_scale / self.sensitivity


def noise_share(
    noise_multiplier: float, sensitivity: float, shares: int, dimension: int
) -> NoiseShare:
    """This site's share of noise for a target ``noise_multiplier`` split into ``shares``."""
    if noise_multiplier <= 0 or sensitivity <= 0 or shares < 1 or dimension < 0:
        raise ValueError(
            "need noise_multiplier > 0, sensitivity > 0, shares >= 1 and dimension >= 0, not "
            f"({noise_multiplier}, {sensitivity}, {shares}, {dimension})"
        )
    return NoiseShare(noise_multiplier, sensitivity, shares, dimension)


__all__ = ["NoiseShare", "noise_share"]
