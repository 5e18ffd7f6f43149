"""The membership-power estimator's core: closed form, edge cases, greedy withholding."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from genofed.common.membership import (
    LRTerms,
    panel_terms,
    power,
    site_terms,
    withhold_for_power,
)


def _counts(rng: np.random.Generator, n: int, p: np.ndarray) -> np.ndarray:
    g = rng.binomial(2, p, size=(n, len(p)))
    return np.stack([(g == 0).sum(0), (g == 1).sum(0), (g == 2).sum(0), np.zeros(len(p))], 1)


@pytest.mark.parametrize(("n", "m"), [(500, 1000), (2000, 4000)])
def test_site_terms__common_variants_give_the_papers_closed_form(n: int, m: int) -> None:
    rng = np.random.default_rng(3)
    counts = _counts(rng, n, rng.uniform(0.1, 0.5, m))
    closed = norm.cdf(np.sqrt(m / n) - norm.isf(0.05))
    assert power(site_terms(counts), 0.05) == pytest.approx(closed, abs=0.02)


def test_power__more_variants_or_fewer_people_give_more_power() -> None:
    rng = np.random.default_rng(4)
    p = rng.uniform(0.05, 0.5, 2000)
    small, large = _counts(rng, 100, p), _counts(rng, 1000, p)
    assert power(site_terms(small), 0.05) > power(site_terms(large), 0.05)
    assert power(site_terms(large), 0.05) > power(site_terms(large[:500]), 0.05)


def test_power__nothing_released_or_no_calls_is_the_false_positive_rate() -> None:
    empty = LRTerms(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0))
    assert power(empty, 0.05) == 0.05
    uncalled = np.array([[0, 0, 0, 50], [0, 0, 0, 50]])
    assert power(site_terms(uncalled), 0.05) == 0.05
    assert power(panel_terms(uncalled, np.array([0.2, 0.3])), 0.05) == 0.05


def test_panel_terms__a_release_far_from_the_panel_has_more_power_than_one_near_it() -> None:
    rng = np.random.default_rng(5)
    p = rng.uniform(0.1, 0.5, 500)
    counts = _counts(rng, 200, p)
    near = power(panel_terms(counts, p), 0.05)
    far = power(panel_terms(counts, np.clip(p + 0.1, 0, 1)), 0.05)
    assert far > near > 0.05


def test_panel_terms__one_reference_frequency_per_variant() -> None:
    with pytest.raises(ValueError, match="reference frequencies"):
        panel_terms(np.array([[1, 2, 3, 0]]), np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="genotype counts"):
        site_terms(np.array([1, 2, 3]))


def test_withhold__brings_the_power_under_the_limit_and_keeps_the_rest() -> None:
    rng = np.random.default_rng(6)
    n = 2000
    counts = _counts(rng, n, rng.uniform(0.1, 0.5, 3000))
    terms = site_terms(counts)
    out = withhold_for_power(terms, 0.05, 0.1)
    assert out.power_before > 0.3
    assert out.power_after <= 0.1
    assert power(terms.subset(~out.withheld), 0.05) == pytest.approx(out.power_after)
    # common variants weigh alike: as many are kept as the closed form allows,
    # sqrt(M / n) = z(0.95) + z(0.1), i.e. M = 0.132 n
    allowed = n * (norm.isf(0.05) + norm.ppf(0.1)) ** 2
    assert len(terms) - out.n_withheld == pytest.approx(allowed, rel=0.05)


def test_exclusion__monomorphic_variants_count_through_the_unseen_allele_mass() -> None:
    fixed = np.array([[100, 0, 0, 0]] * 50 + [[0, 0, 100, 0]] * 50)
    assert power(site_terms(fixed), 0.05) == 0.05  # no singleton: no unseen mass
    singletons = np.array([[99, 1, 0, 0]] * 60)
    both = np.concatenate([fixed, singletons])
    terms = site_terms(both)
    # 60 singletons in 100 people: a newcomer carries an unseen allele with chance 1 - e^-0.6
    assert terms.exclusion.sum() == pytest.approx(0.6)
    only_fixed = terms.subset(np.arange(len(both)) < 100)
    assert power(only_fixed, 0.05) == pytest.approx(0.05 / np.exp(-0.6))
    # against a panel: the absent allele's panel frequency (ALT 0.01 at the hom-ref ones)
    panel = panel_terms(fixed[:50], np.full(50, 0.01))
    assert power(panel, 0.05) == pytest.approx(0.05 / 0.99**100)


def test_withhold__under_the_limit_nothing_and_below_alpha_everything() -> None:
    rng = np.random.default_rng(7)
    terms = site_terms(_counts(rng, 5000, rng.uniform(0.1, 0.5, 200)))
    assert withhold_for_power(terms, 0.05, 0.5).n_withheld == 0
    assert withhold_for_power(terms, 0.05, 0.01).n_withheld == len(terms)


def test_withhold__variants_already_withheld_count_for_nothing() -> None:
    rng = np.random.default_rng(8)
    terms = site_terms(_counts(rng, 200, rng.uniform(0.1, 0.5, 2000)))
    released = np.zeros(len(terms), dtype=np.bool_)
    released[:100] = True
    out = withhold_for_power(terms, 0.05, 0.2, released=released)
    assert out.power_before == pytest.approx(power(terms.subset(released), 0.05))
    assert not out.withheld[~released].any()


def test_withhold__usefulness_keeps_the_useful_variants() -> None:
    terms = LRTerms(np.full(4, 0.01), np.full(4, 0.01), np.full(4, 0.01), np.zeros(4))
    useful = np.array([1.0, 5.0, 1.0, 5.0])
    out = withhold_for_power(
        terms, 0.05, power(terms.subset(np.arange(4) < 2), 0.05), usefulness=useful
    )
    assert out.withheld.tolist() == [True, False, True, False]
