"""Small-cell suppression primitive (site_agent/privacy/suppression.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from genofed.site_agent.privacy.suppression import (
    GENOTYPE_CELLS,
    small_cell_rows,
    suppress_small_cells,
)


def test_suppress__withholds_rows_with_a_nonzero_cell_below_the_threshold() -> None:
    counts = np.array(
        [
            [100, 20, 10, 0],  # every nonzero cell >= 10: released
            [120, 9, 0, 1],  # het 9 and missing 1: withheld
            [130, 0, 0, 0],  # monomorphic, zeros are not small cells: released
            [50, 40, 30, 5],  # 5 missing calls: withheld
        ]
    )
    result = suppress_small_cells(counts, 10)
    assert result.withheld.tolist() == [False, True, False, True]
    assert result.n_withheld == 2
    assert result.counts[[0, 2]].tolist() == counts[[0, 2]].tolist()
    assert not result.counts[[1, 3]].any()
    assert counts[1, 1] == 9  # the input is not modified


def test_suppress__genotype_cells_only_leave_a_small_missing_count_alone() -> None:
    counts = np.array([[50, 40, 30, 5], [50, 40, 3, 20]])
    result = suppress_small_cells(counts, 10, GENOTYPE_CELLS)
    assert result.withheld.tolist() == [False, True]  # 5 missing calls: released
    assert result.counts[0].tolist() == [50, 40, 30, 5]


@pytest.mark.parametrize("threshold", [0, 1])
def test_suppress__threshold_0_or_1_withholds_nothing(threshold: int) -> None:
    counts = np.array([[1, 1, 1, 1], [0, 0, 0, 0]])
    assert not small_cell_rows(counts, threshold).any()


def test_small_cell_rows__rejects_bad_shapes_and_thresholds() -> None:
    with pytest.raises(ValueError, match="2-D"):
        small_cell_rows(np.zeros(3, dtype=np.int64), 10)
    with pytest.raises(ValueError, match=">= 0"):
        small_cell_rows(np.zeros((3, 4), dtype=np.int64), -1)


@given(
    counts=arrays(
        np.int64, st.tuples(st.integers(0, 30), st.integers(1, 6)), elements=st.integers(0, 40)
    ),
    threshold=st.integers(0, 25),
)
def test_suppress__released_rows_never_hold_a_small_nonzero_cell(
    counts: np.ndarray, threshold: int
) -> None:
    result = suppress_small_cells(counts, threshold)
    released = result.counts
    assert not ((released > 0) & (released < threshold)).any()
    kept = ~result.withheld
    assert np.array_equal(released[kept], counts[kept])  # nothing else changes
    assert not released[result.withheld].any()
