"""Exact Hardy–Weinberg test (Wigginton et al. 2005) with PLINK 2's conventions."""

from __future__ import annotations

from fractions import Fraction
from math import comb, factorial

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genofed.coordinator.combine.hardy import hardy, hwe_exact_p


def _brute_force(het: int, hom1: int, hom2: int, *, midp: bool) -> float:
    """Enumerate every outcome with the same n and allele counts, in exact arithmetic."""
    n = het + hom1 + hom2
    rare = min(2 * hom1 + het, 2 * hom2 + het)
    probs: dict[int, Fraction] = {}
    for h in range(rare % 2, rare + 1, 2):
        hr, hc = (rare - h) // 2, n - h - (rare - h) // 2
        probs[h] = Fraction(
            factorial(n) * 2**h, factorial(hr) * factorial(h) * factorial(hc)
        ) / comb(2 * n, rare)
    total = sum(probs.values(), Fraction(0))
    assert total == 1
    p_obs = probs[het]
    p = sum((q for q in probs.values() if q <= p_obs), Fraction(0))
    if midp:
        p -= Fraction(1, 2) * sum((q for q in probs.values() if q == p_obs), Fraction(0))
    return float(p)


# (het, hom_ref, hom_alt) -> P and MIDP printed by plink2 v2.00a3.5 --hardy [midp]
_PLINK2_PRINTED = [
    ((14, 3, 24), 0.673593, None),
    ((24, 8, 13), 0.764323, None),
    ((148, 77, 67), 0.90667, 0.861163),
    ((291, 0, 0), 7.6029e-87, 3.80145e-87),
    ((0, 139, 157), 1.91994e-89, 9.59968e-90),
    ((143, 0, 149), 7.92792e-11, 4.53459e-11),
    ((1000, 19000, 0), 6.3415e-06, 4.97338e-06),
    ((0, 19998, 2), 1.87519e-09, 9.37594e-10),
    ((0, 19999, 1), 2.50006e-05, 1.25003e-05),
    ((10000, 5000, 5000), 1.0, 0.994358),
    ((11000, 5000, 4000), 7.70728e-48, 7.04213e-48),
    ((460, 19500, 40), 5.82234e-30, 3.10293e-30),
    ((20000, 0, 0), 0.0, 0.0),  # below the double range: plink2 prints 0
    ((0, 10000, 10000), 0.0, 0.0),
    ((0, 0, 0), 1.0, 0.5),  # no calls
    ((0, 299, 0), 1.0, 0.5),  # monomorphic
]


@pytest.mark.parametrize(("geno", "p", "midp"), _PLINK2_PRINTED)
def test_hwe_exact_p__matches_plink2_printed_values(
    geno: tuple[int, int, int], p: float, midp: float | None
) -> None:
    het, h1, h2 = (np.array([x]) for x in geno)
    assert hwe_exact_p(het, h1, h2)[0] == pytest.approx(p, rel=1e-5, abs=0)
    if midp is not None:
        got = hwe_exact_p(het, h1, h2, midp=True)[0]
        assert got == pytest.approx(midp, rel=1e-5, abs=0)


def test_hwe_exact_p__matches_brute_force_on_all_small_cohorts() -> None:
    genos = [(h, a, b) for n in range(0, 13) for h in range(n + 1) for a in range(n - h + 1)
             for b in [n - h - a]]  # fmt: skip
    het, h1, h2 = (np.array(x) for x in zip(*genos, strict=True))
    for midp in (False, True):
        got = hwe_exact_p(het, h1, h2, midp=midp)
        want = [1.0 if sum(g) == 0 and not midp else 0.5 if sum(g) == 0 else
                _brute_force(*g, midp=midp) for g in genos]  # fmt: skip
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


def test_hwe_exact_p__matches_brute_force_with_ties_and_far_tails() -> None:
    # (4, 2, 0) ties with another outcome; (0, 30, 30) is far below the mode.
    genos = [(4, 2, 0), (2, 1, 1), (0, 30, 30), (60, 0, 0), (1, 40, 3), (9, 20, 11)]
    het, h1, h2 = (np.array(x) for x in zip(*genos, strict=True))
    for midp in (False, True):
        got = hwe_exact_p(het, h1, h2, midp=midp)
        want = [_brute_force(*g, midp=midp) for g in genos]
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=0)


_GENO = st.tuples(st.integers(0, 400), st.integers(0, 400), st.integers(0, 400))


@settings(max_examples=60, deadline=None)
@given(st.lists(_GENO, min_size=1, max_size=20))
def test_hwe_exact_p__properties(genos: list[tuple[int, int, int]]) -> None:
    het, h1, h2 = (np.array(x) for x in zip(*genos, strict=True))
    p = hwe_exact_p(het, h1, h2)
    mid = hwe_exact_p(het, h1, h2, midp=True)
    assert ((p >= 0) & (p <= 1)).all()
    assert ((mid >= 0) & (mid <= p)).all()
    np.testing.assert_array_equal(hwe_exact_p(het, h2, h1), p)  # allele swap
    # Each variant's p-value does not depend on the others in the batch.
    single = [
        hwe_exact_p(het[i : i + 1], h1[i : i + 1], h2[i : i + 1])[0] for i in range(len(genos))
    ]
    np.testing.assert_array_equal(single, p)


def test_hardy__columns_follow_plink2() -> None:
    c = np.array([[3, 14, 24, 9], [0, 0, 0, 5], [7, 0, 0, 0]], dtype=np.int64)
    got = hardy(c)
    np.testing.assert_array_equal(got.hom_a1_ct, [3, 0, 7])  # A1 = REF
    np.testing.assert_array_equal(got.two_ax_ct, [24, 0, 0])
    assert got.o_het_a1[0] == pytest.approx(14 / 41)
    assert got.e_het_a1[0] == pytest.approx(2 * (20 / 82) * (62 / 82))
    assert np.isnan(got.o_het_a1[1]) and got.e_het_a1[1] == 0.0
    assert got.e_het_a1[2] == 0.0
    np.testing.assert_allclose(got.p, [0.673593, 1.0, 1.0], rtol=1e-5)


def test_hwe_exact_p__rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        hwe_exact_p(np.array([-1]), np.array([0]), np.array([0]))
    with pytest.raises(ValueError, match="one length"):
        hwe_exact_p(np.array([1, 2]), np.array([0]), np.array([0]))
