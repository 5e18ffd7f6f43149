"""Local half of the population-structure PCA: standardized genotypes and their products.

Layouts and the model are in :mod:`genofed.common.wire.pca`. Every function
works on one chunk of variants (a matrix product, never a per-variant loop)
so the site streams its genotypes with bounded memory; the per-sample blocks
(``n x l``) are the only sample-sized arrays, and they stay at the site.

Pure core: arrays in, arrays out.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from genofed.site_agent.stats.glm import oriented

__all__ = ["ld_pair_sums", "relationship_terms", "standardized"]

F64 = npt.NDArray[np.float64]


def standardized(
    dosages: npt.NDArray[np.int8], flip: npt.NDArray[np.bool_], freq: F64
) -> tuple[F64, npt.NDArray[np.bool_]]:
    """plink2's PCA standardization of a chunk (V, n), and the called mask.

    ``x = (g - 2 f) / sqrt(2 f (1 - f))`` for the study-ALT dosage ``g``; a
    missing call, and every call of a variant with ``f`` 0 or 1, is 0.
    """
    g, missing = oriented(dosages, flip)
    f = np.asarray(freq, dtype=np.float64)[:, None]
    var = 2.0 * f * (1.0 - f)
    scale = np.divide(1.0, np.sqrt(var), out=np.zeros_like(var), where=var > 0)
    x = (g - 2.0 * f) * scale
    x[missing] = 0.0
    return x, ~missing


def relationship_terms(sumsq: F64, n_variants: int) -> tuple[F64, F64]:
    """Row scale of ``A`` and the diagonal term ``delta`` of each sample, for ``K = X X^T / M``.

    ``sumsq`` is each sample's ``sum x^2`` over the ``n_variants`` (``M``)
    PCA variants. ``K = A A^T + diag(delta)`` with ``A = diag(row_scale) X``
    is plink2's mean-imputed relationship matrix (``--pca meanimpute``, the
    matrix ``--pca approx`` always uses), whatever calls are missing:
    ``row_scale = 1 / sqrt(M)`` and ``delta = 0``. Both are computed as the
    earlier ``sqrt(M) / c`` and ``s / c - s M / c^2`` with every ``c = M``,
    so that a cohort without missing calls gives the same bits as before
    (``delta`` is zero up to rounding).
    """
    s = np.asarray(sumsq, dtype=np.float64)
    m = float(n_variants)
    row_scale = np.full(s.shape, np.sqrt(m) / m)
    delta = s / m - s * m / (m * m)
    return row_scale, delta


def ld_pair_sums(
    g: F64, called: npt.NDArray[np.bool_], rows: int, window: int, same_chrom: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.int64], F64]:
    """Pair sums for rows ``0..rows-1`` of ``g`` against the next ``window - 1`` rows.

    ``g`` (R, n) holds study-ALT dosages with 0 at missing calls and
    ``called`` the called mask; rows past ``rows`` are the look-ahead.
    ``same_chrom[i, d - 1]`` says whether rows ``i`` and ``i + d`` lie on one
    chromosome; other pairs are left at zero. Returns ``ld_n`` (rows, w-1)
    and ``ld_sum`` (rows, w-1, 5) as :mod:`genofed.common.wire.pca` lays out.
    """
    total = g.shape[0]
    n_out = np.zeros((rows, window - 1), dtype=np.int64)
    sums = np.zeros((rows, window - 1, 5))
    c = called.astype(np.float64)
    g2 = g * g
    for d in range(1, window):
        stop = min(rows, total - d)
        if stop <= 0:
            break
        a, b = slice(0, stop), slice(d, d + stop)
        ca, cb = c[a], c[b]
        block = np.stack(
            [
                np.einsum("ij,ij->i", g[a], cb),
                np.einsum("ij,ij->i", ca, g[b]),
                np.einsum("ij,ij->i", g2[a], cb),
                np.einsum("ij,ij->i", ca, g2[b]),
                np.einsum("ij,ij->i", g[a], g[b]),
            ],
            axis=1,
        )
        keep = same_chrom[:stop, d - 1]
        n_out[:stop, d - 1] = np.where(keep, np.einsum("ij,ij->i", ca, cb), 0).astype(np.int64)
        sums[:stop, d - 1] = np.where(keep[:, None], block, 0.0)
    return n_out, sums
