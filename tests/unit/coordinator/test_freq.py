"""Combine half of --freq / --missing / --geno-counts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from genofed.common.errors import HarmonizationError
from genofed.coordinator.combine.freq import (
    allele_frequencies,
    genotype_count_table,
    sum_site_counts,
    variant_missingness,
)

_COUNTS = hnp.arrays(
    np.int64, st.tuples(st.integers(1, 8), st.just(4)), elements=st.integers(0, 1000)
)


def test_sum_site_counts__adds_sites() -> None:
    a = np.array([[1, 2, 3, 4]], dtype=np.int64)
    b = np.array([[10, 20, 30, 40]], dtype=np.int32)
    np.testing.assert_array_equal(sum_site_counts([a, b]), [[11, 22, 33, 44]])


def test_sum_site_counts__refuses_mismatched_sites() -> None:
    with pytest.raises(HarmonizationError, match="site #1"):
        sum_site_counts([np.zeros((3, 4), np.int64), np.zeros((2, 4), np.int64)])
    with pytest.raises(ValueError, match="no site counts"):
        sum_site_counts([])
    with pytest.raises(ValueError, match="negative"):
        sum_site_counts([np.array([[1, -1, 0, 0]])])


def test_allele_frequencies__known_values() -> None:
    c = np.array([[3, 14, 24, 9], [0, 0, 0, 7], [5, 0, 0, 0]], dtype=np.int64)
    got = allele_frequencies(c)
    np.testing.assert_array_equal(got.obs_ct, [82, 0, 10])
    assert got.alt_freqs[0] == pytest.approx(62 / 82)
    assert np.isnan(got.alt_freqs[1])
    assert got.alt_freqs[2] == 0.0


def test_variant_missingness__obs_ct_counts_all_samples() -> None:
    got = variant_missingness(np.array([[3, 14, 24, 9], [0, 0, 0, 50]], dtype=np.int64))
    np.testing.assert_array_equal(got.missing_ct, [9, 50])
    np.testing.assert_array_equal(got.obs_ct, [50, 50])
    np.testing.assert_allclose(got.f_miss, [0.18, 1.0])


@given(_COUNTS, _COUNTS)
def test_combine__pooled_equals_sum_of_sites(a: np.ndarray, b: np.ndarray) -> None:
    b = b[: a.shape[0]] if b.shape[0] >= a.shape[0] else np.resize(b, a.shape)
    pooled = sum_site_counts([a, b])
    table = genotype_count_table(pooled)
    np.testing.assert_array_equal(
        table.hom_ref_ct + table.het_ref_alt_ct, pooled[:, 0] + pooled[:, 1]
    )
    freq = allele_frequencies(pooled)
    called = pooled[:, :3].sum(axis=1)
    assert (freq.obs_ct == 2 * called).all()
    ok = called > 0
    assert ((freq.alt_freqs[ok] >= 0) & (freq.alt_freqs[ok] <= 1)).all()
    assert np.isnan(freq.alt_freqs[~ok]).all()
