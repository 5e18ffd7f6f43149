"""The linear glm kernel over int8 codes equals the direct dense sums.

:class:`LinearKernel` never builds the float64 study-ALT dosages of a chunk:
it converts the file's counts block by block, zeroes the missing calls in
place, applies the allele flip to the sums, and sums the missing calls'
covariate products sparsely (or, in a block with many missing calls, with
the dense indicator). Whatever the path, its sums must be the direct ones.
"""

from __future__ import annotations

import numpy as np
import pytest

from genofed.common.wire.glm import miss_center, multisets
from genofed.site_agent.stats.glm import (
    LinearKernel,
    gram_upper,
    linear_chunk,
    oriented,
    oriented_codes,
    oriented_codes_at,
)


def _z(rng: np.random.Generator, n: int) -> np.ndarray:
    age = rng.normal(50.0, 10.0, n)
    sex = rng.integers(0, 2, n).astype(np.float64)
    y = rng.normal(3.0, 2.0, n)
    return np.column_stack([np.ones(n), age, sex, y])


def _codes(rng: np.random.Generator, v: int, n: int, miss: float) -> np.ndarray:
    d = rng.integers(0, 3, (v, n)).astype(np.int8)
    d[rng.random((v, n)) < miss] = -9
    return d


def _direct(
    codes: np.ndarray, flip: np.ndarray, z: np.ndarray, center: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Dense float64 sums straight from the definitions in glm_wire."""
    missing = codes < 0
    g = codes.astype(np.float64)
    g[flip] = 2.0 - g[flip]
    g[missing] = 0.0
    zc = z - center
    pairs = np.stack([zc[:, a] * zc[:, b] for a, b in multisets(z.shape[1], 2)], axis=1)
    rows = np.flatnonzero(missing.any(axis=1))
    return g @ z, (g * g).sum(axis=1), rows, missing[rows].astype(np.float64) @ pairs


def _check(codes: np.ndarray, flip: np.ndarray, z: np.ndarray, **kw: int) -> None:
    center = miss_center(gram_upper(z))
    gz, gg, rows, miss_zz = _direct(codes, flip, z, center)
    out = LinearKernel(z, miss_center=center, **kw).evaluate(codes, flip, calls=True)
    scale = np.abs(z).sum(axis=0) * 2.0  # bound on |sum g z| per column
    np.testing.assert_allclose(out.stats.gz, gz, rtol=0, atol=1e-13 * scale.max())
    np.testing.assert_array_equal(out.stats.gg, gg)  # sums of integers: exact
    np.testing.assert_array_equal(out.stats.miss_rows, rows)
    assert out.stats.miss_zz.shape == (len(rows), len(multisets(z.shape[1], 2)))
    pair_scale = np.abs(miss_zz).max() if miss_zz.size else 1.0
    np.testing.assert_allclose(out.stats.miss_zz, miss_zz, rtol=0, atol=1e-13 * pair_scale)
    np.testing.assert_array_equal(out.n_missing, (codes < 0).sum(axis=1))
    want_rows, want_cols = np.nonzero(codes < 0)
    np.testing.assert_array_equal(out.call_rows, want_rows)
    np.testing.assert_array_equal(out.call_cols, want_cols)
    # the same as the float64 reference path the other requests use
    ref = linear_chunk(*oriented(codes, flip), z, miss_center=center)
    np.testing.assert_allclose(out.stats.gz, ref.gz, rtol=0, atol=1e-13 * scale.max())
    np.testing.assert_array_equal(out.stats.gg, ref.gg)


@pytest.mark.parametrize("block_elements", [1, 50, 1 << 17])
def test_kernel__equals_direct_sums_with_missing_calls_and_flips(block_elements: int) -> None:
    rng = np.random.default_rng(7)
    n, v = 53, 40
    z = _z(rng, n)
    codes = _codes(rng, v, n, 0.03)
    codes[3] = -9  # no call at all, not flipped
    codes[4] = -9  # no call at all, flipped
    codes[5:8] = np.abs(codes[5:8])  # every call present
    codes[5:8][codes[5:8] == 9] = 2
    codes[10:14][rng.random((4, n)) < 0.5] = -9  # heavy missingness: the dense path
    flip = rng.random(v) < 0.5
    flip[3], flip[4] = False, True
    _check(codes, flip, z, block_elements=block_elements)
    out = LinearKernel(z).evaluate(codes, flip)
    assert out.stats.gz[3:5].tolist() == [[0.0] * 4] * 2
    assert out.stats.gg[3:5].tolist() == [0.0, 0.0]


def test_kernel__chunk_without_missing_calls() -> None:
    rng = np.random.default_rng(8)
    n, v = 31, 17
    z = _z(rng, n)
    codes = rng.integers(0, 3, (v, n)).astype(np.int8)
    flip = rng.random(v) < 0.5
    _check(codes, flip, z, block_elements=64)
    out = LinearKernel(z).evaluate(codes, flip)
    assert out.stats.miss_rows.size == 0
    assert out.stats.miss_zz.shape == (0, 10)
    assert out.call_rows.size == 0 and out.call_cols.size == 0


def test_kernel__all_missing_variants_and_sparse_dense_blocks_agree() -> None:
    rng = np.random.default_rng(9)
    n, v = 29, 12
    z = _z(rng, n)
    codes = np.full((v, n), -9, dtype=np.int8)
    flip = np.zeros(v, dtype=np.bool_)
    flip[::2] = True
    _check(codes, flip, z, block_elements=n)
    codes = _codes(rng, v, n, 0.02)
    codes[:, 0] = -9  # one sample missing everywhere: a sparse block per row
    _check(codes, flip, z, block_elements=n)
    _check(codes, flip, z, block_elements=10 * n)


def test_kernel__empty_chunk() -> None:
    z = _z(np.random.default_rng(1), 5)
    out = LinearKernel(z).evaluate(np.zeros((0, 5), np.int8), np.zeros(0, np.bool_))
    assert out.stats.gz.shape == (0, 4) and out.stats.gg.shape == (0,)
    assert out.stats.miss_zz.shape == (0, 10)


def test_oriented_codes_at__equals_oriented_codes() -> None:
    rng = np.random.default_rng(3)
    d = _codes(rng, 9, 21, 0.1)
    flip = rng.random(9) < 0.5
    codes, rows, cols = oriented_codes(d, flip)
    np.testing.assert_array_equal(oriented_codes_at(d, flip, rows, cols), codes)
