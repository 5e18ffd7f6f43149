"""Membership inference: the power of the likelihood-ratio test on one release of counts.

Homer et al. (2008) showed that a cohort's allele frequencies tell whether a
given person's genome is in it; Sankararaman et al. (2009, "Genomic privacy
and limits of individual detection in a pool", Nat Genet: SecureGenome)
showed that the likelihood-ratio (LR) test is the most powerful such test and
that its power, at a false-positive rate alpha, follows in closed form from
the number of people and of variants. This module estimates that power for
exactly one release (its variants, per-variant sample counts and genotype
counts) and chooses variants to withhold so that it stays under a limit.

The attack. For a target genotype vector g (0, 1, 2 ALT copies), the released
frequencies p̂ and the attacker's reference frequencies q (what a non-member
looks like), the LR statistic is, summed over the released variants,

    L(g) = Σ_j  g_j log(p̃_j / q_j) + (2 − g_j) log((1 − p̃_j) / (1 − q_j)),

with p̃ = (2 n p̂ + ½) / (2 n + 1) (the attacker's add-half estimate: a count
of 0 does not give an infinite weight). L = Σ a_j g_j + const with
a_j = logit p̃_j − logit q_j. The attacker calls "member" when L exceeds its
(1 − alpha) quantile among non-members.

The normal approximation (the paper's closed form). Given the release,
the per-variant terms are independent across variants, so L is approximately
normal under H0 (g drawn from the reference population: mean 2 q_j,
variance 2 q_j (1 − q_j) per variant) and under H1 (g one of the n people
counted: the released counts give its mean and variance exactly). With
Δ = Σ a_j (m1_j − 2 q_j), σ0² = Σ a_j² 2 q_j (1 − q_j), σ1² = Σ a_j² v1_j,

    power = Φ((Δ − z_{1−alpha'} σ0) / σ1),

where alpha' = alpha / (1 − c) ≥ alpha accounts for the variants every
member shares one homozygous genotype at: they clear the non-members who
carry the other allele (chance c), and are kept out of Δ and the variances
(:func:`power`).

Two references (the policy's choice):

* ``panel`` (:func:`panel_terms`): the attacker's reference is a public panel's
  frequencies; the terms above are conditional on this very release.
* ``site`` (:func:`site_terms`, the default): no panel is named, so the
  population is taken to have the site's own frequencies and the attacker to
  know them exactly (the strongest attacker of this family). The released
  frequencies are then a sample of 2 n alleles from it, and each variant's
  terms are their expectations over that sample (a sum over the binomial
  count, computed once per distinct site count). This is the expected power
  over cohorts of this size drawn from such a population, which is
  Sankararaman's setting; for common variants it is close to
  Φ(sqrt(M / n) − z_{1−alpha}).

Linkage disequilibrium. SecureGenome thins variants in strong LD because its
formula assumes independent variants. Here every released variant counts as
independent, which is the conservative choice: in the normal model the pool's
deviations from the population have the genotypes' own covariance Σ / 2n, so
the LD-aware optimal test (weights Σ⁻¹ δ) has noncentrality rank(Σ) / n ≤ M / n,
and the per-variant LR test above loses power under LD (its variance grows
by the squared correlations). In this model LD therefore lowers the true
power below the estimate, never above it; ``tests/privacy/test_membership_attack.py``
measures it on correlated genotypes (blocks, and coalescent cohorts).

What it does not cover: several releases combined (this core takes one
release, plus the summed terms of earlier ones as ``prior``:
:mod:`genofed.site_agent.privacy.membership_history` keeps those per sample
set), relatives of a member, and a reference panel from another ancestry
than the cohort's (the panel estimate then flags everyone of the cohort's
ancestry, which only makes it higher).

Written here rather than taken from a library because no maintained package
implements this estimate; the normal CDF and quantile are scipy's and the
binomial sums use scipy's pmf. A pure core: arrays and parameters in, arrays out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.stats import binom, norm

#: Floor (and 1 − ceiling) of a reference frequency: a panel's 0 would give an infinite weight.
REFERENCE_FLOOR = 1e-4
#: Binomial counts farther than this many standard deviations from the mean are left out
#: of the expectations (their probability is below 1e-20).
_TAIL_SD = 10.0
#: Distinct site counts per block of the binomial sums (bounds memory at large n).
_BLOCK = 256
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class LRTerms:
    """Per-variant terms: LR separation, variances under H0 and H1, and exclusion.

    ``exclusion``: the variant's part of −log P(a non-member carries no allele
    that the release shows absent from every member); see :func:`power`.
    """

    shift: Floats
    var0: Floats
    var1: Floats
    exclusion: Floats

    def __len__(self) -> int:
        return len(self.shift)

    def subset(self, keep: npt.NDArray[np.bool_]) -> LRTerms:
        return LRTerms(self.shift[keep], self.var0[keep], self.var1[keep], self.exclusion[keep])

    def sums(self) -> Floats:
        """The four totals, in field order."""
        return np.array([self.shift.sum(), self.var0.sum(), self.var1.sum(), self.exclusion.sum()])

    def table(self) -> Floats:
        """``(V, 4)``: one row of terms per variant, in field order."""
        return np.stack([self.shift, self.var0, self.var1, self.exclusion], axis=1)


def power(terms: LRTerms, alpha: float) -> float:
    """The LR test's power at false-positive rate ``alpha`` on the variants of ``terms``.

    A variant every member has the same genotype at (monomorphic in the
    release) tells nothing about a member, but it clears a non-member who
    carries the other allele: the attacker calls "member" only for people who
    carry no allele the release shows absent, and then needs a false-positive
    rate of only alpha / (1 − c) from the LR test among the rest, where c is
    the chance that a non-member carries such an allele (c = 1 − exp(−Σ
    exclusion)). Those variants are kept out of the normal approximation (whose
    mean shift there comes from the excluded non-members' very low scores,
    which do not help call anyone a member).
    """
    return float(_power(terms.sums()[None, :], alpha)[0])


def _power(sums: Floats, alpha: float) -> Floats:
    """Power for each row of ``(k, 4)`` totals (shift, var0, var1, exclusion)."""
    shift, var0, var1, exclusion = (np.asarray(sums[:, i], dtype=np.float64) for i in range(4))
    level = np.minimum(alpha * np.exp(np.maximum(exclusion, 0.0)), 1.0)  # alpha / (1 - c)
    z = norm.isf(level)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = (shift - z * np.sqrt(np.maximum(var0, 0))) / np.sqrt(np.maximum(var1, 0))
    # nothing released that varies: the attacker can only guess among the not excluded
    return np.where((var0 > 0) & (var1 > 0), norm.sf(-score), level)


def _called(counts: npt.NDArray[np.integer]) -> tuple[Floats, Floats, Floats]:
    """Called samples, mean and variance of the ALT copies per variant, from ``(V, >=3)`` counts."""
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] < 3:
        raise ValueError(f"genotype counts must be a (V, 3) or (V, 4) table, not {c.shape}")
    n = np.rint(c[:, 0] + c[:, 1] + c[:, 2])  # whole people (expected counts may be given)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(n > 0, (c[:, 1] + 2 * c[:, 2]) / n, 0.0)
        second = np.where(n > 0, (c[:, 1] + 4 * c[:, 2]) / n, 0.0)
    return n, mean, np.maximum(second - mean**2, 0.0)


def attacker_frequency(alt_copies: Floats, called: Floats) -> Floats:
    """The attacker's add-half estimate p̃ = (alt copies + ½) / (2 n + 1)."""
    return (alt_copies + 0.5) / (2 * called + 1)


def _logit(p: Floats) -> Floats:
    return np.asarray(np.log(p) - np.log1p(-p), dtype=np.float64)


def panel_terms(counts: npt.NDArray[np.integer], reference: Floats) -> LRTerms:
    """Terms for this release against a panel's ALT frequencies ``reference`` (one per variant).

    ``counts``: the release's genotype counts, ``(V, 3)`` or ``(V, 4)`` (hom-ref,
    het, hom-alt[, missing]). A variant without calls contributes nothing.
    """
    n, mean, var = _called(counts)
    q = np.clip(np.asarray(reference, dtype=np.float64), REFERENCE_FLOOR, 1 - REFERENCE_FLOOR)
    if q.shape != n.shape:
        raise ValueError(f"{len(q)} reference frequencies for {len(n)} variants")
    fixed = _monomorphic(counts, n)
    a = np.where((n > 0) & ~fixed, _logit(attacker_frequency(mean * n, n)) - _logit(q), 0.0)
    # absent allele: ALT at an all hom-ref variant, REF at an all hom-alt one
    absent = np.where(mean > 1, 1 - q, q)
    return LRTerms(
        shift=a * (mean - 2 * q),
        var0=a**2 * 2 * q * (1 - q),
        var1=a**2 * var,
        exclusion=np.where(fixed, -2 * np.log1p(-absent), 0.0),
    )


def _monomorphic(counts: npt.NDArray[np.integer], called: Floats) -> npt.NDArray[np.bool_]:
    """Variants whose called samples all have the same homozygous genotype."""
    c = np.asarray(counts)
    return np.asarray((called > 0) & ((c[:, 0] == called) | (c[:, 2] == called)), dtype=np.bool_)


def site_terms(counts: npt.NDArray[np.integer]) -> LRTerms:
    """Expected terms when the population has the site's own frequencies (see the module doc).

    For a variant with n called samples and site frequency p (the add-half
    estimate, so that a count of 0 keeps a small population frequency), the
    released ALT count K is Binomial(2 n, p); the terms are E_K of
    a(K) (K / n − 2 p), a(K)² 2 p (1 − p) and a(K)² 2 p̂ (1 − p̂), with p̂ = K / 2n.
    Computed once per distinct (n, ALT count) pair.

    Monomorphic variants enter through ``exclusion`` instead (see :func:`power`).
    The chance that a new person carries an allele absent from n people is the
    Good–Turing missing mass: each of their 2 alleles is unseen with
    probability about N1 / 2n summed over variants, N1 being the variants
    whose allele is seen exactly once (either allele), so Σ exclusion = Σ over
    those variants of 1 / n, shared equally among the monomorphic variants of
    ``counts`` (pass every study variant, withheld ones too: their singletons
    count).
    """
    n, mean, _ = _called(counts)
    alt = np.rint(mean * n)
    fixed = _monomorphic(counts, n)
    singletons = (n > 0) & ((alt == 1) | (alt == 2 * n - 1))
    mass = float((1 / n[singletons]).sum())
    exclusion = np.where(fixed, mass / max(int(fixed.sum()), 1), 0.0)
    pairs, inverse = np.unique(np.stack([n, alt], axis=1), axis=0, return_inverse=True)
    shift = np.zeros(len(pairs))
    var0 = np.zeros(len(pairs))
    var1 = np.zeros(len(pairs))
    for start in range(0, len(pairs), _BLOCK):
        block = pairs[start : start + _BLOCK]
        s, v0, v1 = _expected_terms(block[:, 0], block[:, 1])
        shift[start : start + len(block)] = s
        var0[start : start + len(block)] = v0
        var1[start : start + len(block)] = v1
    inverse = inverse.reshape(-1)
    kept = ~fixed
    return LRTerms(
        np.where(kept, shift[inverse], 0.0),
        np.where(kept, var0[inverse], 0.0),
        np.where(kept, var1[inverse], 0.0),
        exclusion,
    )


def _expected_terms(n: Floats, alt: Floats) -> tuple[Floats, Floats, Floats]:
    """E over K ~ Binomial(2n, p) of the three per-variant terms, for arrays ``n``, ``alt``."""
    alleles = 2 * n
    p = attacker_frequency(alt, n)
    sd = np.sqrt(alleles * p * (1 - p))
    low = np.maximum(np.floor(alleles * p - _TAIL_SD * sd - 1), 0)
    width = int(np.max(np.minimum(alleles, np.ceil(alleles * p + _TAIL_SD * sd + 1)) - low)) + 1
    k = np.minimum(low[:, None] + np.arange(width)[None, :], alleles[:, None])
    inside = (low[:, None] + np.arange(width)[None, :]) <= alleles[:, None]
    weight = np.where(inside, binom.pmf(k, alleles[:, None], p[:, None]), 0.0)
    safe_n = np.maximum(n, 1)[:, None]
    a = _logit(attacker_frequency(k, safe_n)) - _logit(p)[:, None]
    p_hat = np.minimum(k / (2 * safe_n), 1.0)
    shift = (weight * a * (k / safe_n - 2 * p[:, None])).sum(axis=1)
    var0 = (weight * a**2).sum(axis=1) * 2 * p * (1 - p)
    var1 = (weight * a**2 * 2 * p_hat * (1 - p_hat)).sum(axis=1)
    called = n > 0
    return np.where(called, shift, 0.0), np.where(called, var0, 0.0), np.where(called, var1, 0.0)


@dataclass(frozen=True)
class Withholding:
    """What :func:`withhold_for_power` chose: variants withheld, power before and after."""

    withheld: npt.NDArray[np.bool_]
    power_before: float
    power_after: float

    @property
    def n_withheld(self) -> int:
        return int(self.withheld.sum())


def withhold_for_power(
    terms: LRTerms,
    alpha: float,
    limit: float,
    *,
    usefulness: Floats | None = None,
    released: npt.NDArray[np.bool_] | None = None,
    prior: Floats | None = None,
) -> Withholding:
    """Withhold the fewest useful variants that bring the LR test's power to ``limit`` or below.

    Greedy: each variant's marginal effect on the power (the power with every
    variant minus the power without that one) per unit of usefulness (default
    1 for every variant) orders the variants, and the shortest prefix of that
    order after which the power is at most ``limit`` is withheld (every prefix
    is evaluated at once from cumulative sums). ``released``: variants that
    would leave (default: all); the others are already withheld and count for
    nothing. ``prior``: the four summed terms (shift, var0, var1, exclusion) of
    variants released before over the same people, which cannot be withheld
    any more; when they alone exceed the limit, every variant is withheld.
    Since power is at least ``alpha`` (the attacker can guess), a ``limit``
    below ``alpha`` withholds all.
    """
    keep = np.ones(len(terms), dtype=np.bool_) if released is None else released.copy()
    value = np.ones(len(terms)) if usefulness is None else np.asarray(usefulness, dtype=np.float64)
    rows = np.where(keep[:, None], terms.table(), 0.0)
    base = np.zeros(4) if prior is None else np.asarray(prior, dtype=np.float64)
    total = rows.sum(axis=0) + base
    before = float(_power(total[None, :], alpha)[0])
    withheld = np.zeros(len(terms), dtype=np.bool_)
    if before <= limit:
        return Withholding(withheld, before, before)
    candidates = np.flatnonzero(keep)
    gain = before - _power(total[None, :] - rows[candidates], alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(value[candidates] > 0, gain / value[candidates], np.inf)
    # ties (equal gains): the larger separation first
    order = candidates[np.lexsort((-rows[candidates, 0], -score))]
    # power after dropping the first i variants of the order, i = 0 .. len(order)
    left = total[None, :] - np.concatenate([np.zeros((1, 4)), np.cumsum(rows[order], axis=0)])
    powers = _power(left, alpha)
    if prior is None:
        powers[-1] = alpha  # nothing left to release
    ok = np.flatnonzero(powers <= limit)
    drop = int(ok[0]) if ok.size else len(order)
    withheld[order[:drop]] = True
    return Withholding(withheld, before, float(powers[drop]))


__all__ = [
    "REFERENCE_FLOOR",
    "LRTerms",
    "Withholding",
    "attacker_frequency",
    "panel_terms",
    "power",
    "site_terms",
    "withhold_for_power",
]
