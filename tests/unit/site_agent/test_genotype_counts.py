"""Local genotype counts: the site half of --freq / --missing / --geno-counts / --hardy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from genofed.site_agent.stats.genotype_counts import (
    COUNT_COLUMNS,
    accumulate,
    flip_counts,
    genotype_counts,
)

_CODES = st.sampled_from([0, 1, 2, -9])


def test_genotype_counts__known_matrix() -> None:
    d = np.array([[0, 1, 2, -9, 1], [2, 2, 2, 2, 2], [-9, -9, 0, 0, 1]], dtype=np.int8)
    got = genotype_counts(d)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, [[1, 2, 1, 1], [0, 0, 5, 0], [2, 1, 0, 2]])
    assert len(COUNT_COLUMNS) == got.shape[1]


@given(hnp.arrays(np.int8, hnp.array_shapes(min_dims=2, max_dims=2, max_side=12), elements=_CODES))
def test_genotype_counts__matches_per_code_loop(d: np.ndarray) -> None:
    got = genotype_counts(d)
    for row in range(d.shape[0]):
        expect = [int(np.sum(d[row] == code)) for code in (0, 1, 2, -9)]
        assert got[row].tolist() == expect
    assert (got.sum(axis=1) == d.shape[1]).all()


@pytest.mark.parametrize("bad", [3, -1, 5])
def test_genotype_counts__rejects_invalid_codes(bad: int) -> None:
    d = np.zeros((2, 4), dtype=np.int8)
    d[1, 2] = bad
    with pytest.raises(ValueError, match=r"row 1 .*invalid codes \[" + str(bad)):
        genotype_counts(d)


def test_genotype_counts__rejects_wrong_dtype_or_rank() -> None:
    with pytest.raises(ValueError, match="int8"):
        genotype_counts(np.zeros((2, 3), dtype=np.int16))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="2-D"):
        genotype_counts(np.zeros(3, dtype=np.int8))


def test_flip_counts__swaps_homozygotes_only_where_flagged() -> None:
    c = np.array([[5, 3, 1, 2], [7, 0, 4, 1]], dtype=np.int64)
    got = flip_counts(c, np.array([True, False]))
    np.testing.assert_array_equal(got, [[1, 3, 5, 2], [7, 0, 4, 1]])
    np.testing.assert_array_equal(c, [[5, 3, 1, 2], [7, 0, 4, 1]])  # input untouched


def test_flip_counts__equals_counts_of_recoded_dosages() -> None:
    rng = np.random.default_rng(3)
    d = rng.choice(np.array([0, 1, 2, -9], dtype=np.int8), size=(20, 30))
    flip = rng.random(20) < 0.5
    recoded = d.copy()
    sel = flip[:, None] & (d >= 0)
    recoded[sel] = 2 - d[sel]
    np.testing.assert_array_equal(flip_counts(genotype_counts(d), flip), genotype_counts(recoded))


def test_flip_counts__rejects_mask_of_wrong_length() -> None:
    with pytest.raises(ValueError, match="flip_mask"):
        flip_counts(np.zeros((3, 4), dtype=np.int64), np.array([True]))


def test_accumulate__sums_sample_batches() -> None:
    rng = np.random.default_rng(4)
    d = rng.choice(np.array([0, 1, 2, -9], dtype=np.int8), size=(6, 40))
    total = None
    for part in np.array_split(d, 3, axis=1):
        total = accumulate(total, genotype_counts(part))
    assert total is not None
    np.testing.assert_array_equal(total, genotype_counts(d))
    with pytest.raises(ValueError, match="shapes differ"):
        accumulate(total, np.zeros((5, 4), dtype=np.int64))
