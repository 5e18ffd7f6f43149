"""How a synthetic consortium's individuals are spread over its sites.

Real consortia are unbalanced: one large hospital, smaller ones, and patient
populations of different ancestry. Here site ``k`` (0-based, of ``K``) gets a
share of the total proportional to ``1 / (1 + 0.35 k)`` (for three sites:
43 %, 32 %, 25 %), and a fraction of population-A ancestry falling linearly
from 85 % at the first site to 15 % at the last (50 % when there is one site).
So ``site-a`` is mostly population A and the last site mostly population B:
allele frequencies differ between sites, and pooling them produces population
stratification that a study must adjust for.

Individuals are ``FID = IID = s<k>_<nnnnnn>`` (site number from 1, serial
from 1), unique across sites. Within a site, ancestries are shuffled so that
the file order says nothing about population.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np

__all__ = ["CohortLayout", "SiteLayout", "plan_layout", "site_name"]

_SIZE_DECAY = 0.35
_A_SHARE_FIRST = 0.85
_A_SHARE_LAST = 0.15


def site_name(index: int) -> str:
    """``site-a``, ``site-b``, … for 0-based ``index`` (at most 26 sites)."""
    return f"site-{string.ascii_lowercase[index]}"


@dataclass(frozen=True)
class SiteLayout:
    """One site: its name, 1-based number, sample range and ancestry counts."""

    name: str
    number: int
    start: int
    stop: int
    n_a: int
    n_b: int

    @property
    def n_samples(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class CohortLayout:
    """All individuals in file order (site by site).

    ``individual[i]`` is the msprime individual of cohort sample ``i``
    (msprime individuals ``0..n_a-1`` are population A, the rest B) and
    ``population[i]`` is 0 for A, 1 for B.
    """

    sites: tuple[SiteLayout, ...]
    iids: tuple[str, ...]
    individual: np.ndarray
    population: np.ndarray
    n_a: int
    n_b: int


def _site_sizes(samples: int, sites: int) -> list[int]:
    weights = 1.0 / (1.0 + _SIZE_DECAY * np.arange(sites))
    exact = samples * weights / weights.sum()
    sizes = np.floor(exact).astype(np.int64)
    # Largest remainder; ties go to the earlier site.
    order = np.argsort(-(exact - sizes), kind="stable")
    sizes[order[: samples - int(sizes.sum())]] += 1
    return [int(s) for s in sizes]


def plan_layout(samples: int, sites: int, rng: np.random.Generator) -> CohortLayout:
    """Split ``samples`` individuals over ``sites`` sites with different ancestry mixes."""
    sizes = _site_sizes(samples, sites)
    shares = np.array([0.5]) if sites == 1 else np.linspace(_A_SHARE_FIRST, _A_SHARE_LAST, sites)
    n_a_per_site = [round(share * size) for share, size in zip(shares, sizes, strict=True)]
    n_a = sum(n_a_per_site)
    n_b = samples - n_a
    next_a, next_b, start = 0, n_a, 0
    layouts: list[SiteLayout] = []
    iids: list[str] = []
    individuals: list[np.ndarray] = []
    populations: list[np.ndarray] = []
    for k, (size, site_a) in enumerate(zip(sizes, n_a_per_site, strict=True)):
        site_b = size - site_a
        members = np.concatenate(
            [np.arange(next_a, next_a + site_a), np.arange(next_b, next_b + site_b)]
        )
        next_a += site_a
        next_b += site_b
        members = rng.permutation(members)
        individuals.append(members)
        populations.append((members >= n_a).astype(np.int8))
        iids.extend(f"s{k + 1}_{j:06d}" for j in range(1, size + 1))
        layouts.append(SiteLayout(site_name(k), k + 1, start, start + size, site_a, site_b))
        start += size
    return CohortLayout(
        sites=tuple(layouts),
        iids=tuple(iids),
        individual=np.concatenate(individuals),
        population=np.concatenate(populations),
        n_a=n_a,
        n_b=n_b,
    )
