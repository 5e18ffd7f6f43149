"""Local half of the GWAS (``--glm``): sufficient statistics for linear and logistic regression.

Layouts and meanings are in :mod:`genofed.common.glm_wire`. Everything is
a matrix product over a chunk of variants (BLAS), never a per-variant loop,
and every array released is sized by variants and covariates, not samples.

A sample enters only when its phenotype and every covariate are present (the
caller selects those samples); for each variant, a sample whose genotype call
is missing is left out of that variant, as plink2 does. Linear statistics
handle that by releasing the covariate Gram totals once plus, for each
variant with missing calls, the Gram of just the samples missing it.

Pure core: arrays in, arrays out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import expit, log_expit

from genofed.common.glm_wire import multisets

__all__ = [
    "LinearChunk",
    "LogisticChunk",
    "allele_counts",
    "gram_upper",
    "linear_chunk",
    "logistic_chunk",
    "oriented",
]

F64 = npt.NDArray[np.float64]


def oriented(
    dosages: npt.NDArray[np.int8], flip: npt.NDArray[np.bool_]
) -> tuple[F64, npt.NDArray[np.bool_]]:
    """Study-ALT dosages as float64 with 0 at missing calls, and the missing mask.

    ``dosages`` holds the file's A1 count (0, 1, 2) or -9; ``flip`` marks the
    variants whose file alleles are swapped relative to the study.
    """
    d = np.asarray(dosages)
    missing = d < 0
    g = d.astype(np.float64)
    flip = np.asarray(flip, dtype=np.bool_)
    if flip.any():
        g[flip] = 2.0 - g[flip]
    g[missing] = 0.0
    return g, missing


def allele_counts(
    dosages: npt.NDArray[np.int8], flip: npt.NDArray[np.bool_]
) -> npt.NDArray[np.int64]:
    """(V, 2): called samples and study-ALT dosage, over every sample in ``dosages``."""
    d = np.asarray(dosages)
    het = np.count_nonzero(d == 1, axis=1)
    hom = np.count_nonzero(d == 2, axis=1)
    called = np.count_nonzero(d >= 0, axis=1)
    alt = het + 2 * hom
    alt = np.where(np.asarray(flip, dtype=np.bool_), 2 * called - alt, alt)
    return np.stack([called, alt], axis=1).astype(np.int64)


def _pair_products(z: F64) -> F64:
    """(n, T): the products z_a z_b for a <= b, in :func:`multisets` order."""
    pairs = multisets(z.shape[1], 2)
    a = np.fromiter((i for i, _ in pairs), dtype=np.intp, count=len(pairs))
    b = np.fromiter((j for _, j in pairs), dtype=np.intp, count=len(pairs))
    return z[:, a] * z[:, b]


def gram_upper(z: F64) -> F64:
    """(T,): sum over samples of z z^T, upper triangle in :func:`multisets` order."""
    return np.asarray(_pair_products(np.asarray(z, dtype=np.float64)).sum(axis=0), np.float64)


@dataclass(frozen=True)
class LinearChunk:
    """Linear-regression statistics of one chunk (see :mod:`genofed.common.glm_wire`)."""

    gz: F64
    gg: F64
    miss_rows: npt.NDArray[np.int64]
    miss_zz: F64


def linear_chunk(g: F64, missing: npt.NDArray[np.bool_], z: F64) -> LinearChunk:
    """Statistics for ``g`` (V, n; 0 at missing) against ``z = [1, C, y]`` (n, k+2)."""
    gz = g @ z
    gg = np.einsum("ij,ij->i", g, g)
    rows = np.flatnonzero(missing.any(axis=1))
    if rows.size:
        miss_zz = missing[rows].astype(np.float64) @ _pair_products(z)
    else:
        miss_zz = np.zeros((0, len(multisets(z.shape[1], 2))))
    return LinearChunk(gz=gz, gg=gg, miss_rows=rows.astype(np.int64), miss_zz=miss_zz)


@dataclass(frozen=True)
class LogisticChunk:
    """Score, information, log-likelihood (and Firth third moments) at the given betas."""

    grad: F64
    hess: F64
    loglik: F64
    third: F64


def _moments(u: F64, g: F64, q_monomials: list[F64], p: int, degree: int) -> F64:
    """(V, len(multisets(p, degree))): sum_i u_i prod_{a in S} x_ia for each multiset S.

    ``x = [1, g, C]``; a multiset with ``c`` copies of the genotype index is
    ``sum_i u_i g_i^c m_i`` for a covariate monomial ``m`` of degree
    ``degree - c`` over ``Q = [1, C]``, so one GEMM per ``c`` covers all.
    """
    q = p - 1
    blocks = []
    weighted = u
    for c in range(degree + 1):
        if c:
            weighted = weighted * g
        blocks.append(weighted @ q_monomials[degree - c])
    lookup = {(c, m): j for c in range(degree + 1) for j, m in enumerate(multisets(q, degree - c))}
    out = np.empty((u.shape[0], len(multisets(p, degree))))
    for col, s in enumerate(multisets(p, degree)):
        c = s.count(1)
        rest = tuple(0 if a == 0 else a - 1 for a in s if a != 1)
        out[:, col] = blocks[c][:, lookup[(c, rest)]]
    return out


def _q_monomials(q_cols: F64, degree: int) -> list[F64]:
    """For e = 0..degree, (n, #multisets(q, e)) products of covariate columns."""
    n = q_cols.shape[0]
    out = []
    for e in range(degree + 1):
        cols = [
            np.prod(q_cols[:, list(m)], axis=1) if m else np.ones(n)
            for m in multisets(q_cols.shape[1], e)
        ]
        out.append(np.stack(cols, axis=1))
    return out


def logistic_chunk(
    g: F64,
    missing: npt.NDArray[np.bool_],
    covariates: F64,
    y: F64,
    beta: F64,
    firth: npt.NDArray[np.bool_],
) -> LogisticChunk:
    """Logistic statistics at ``beta`` (V, p) for predictors ``[1, g, C]``.

    ``covariates`` is (n, k), ``y`` is 0/1. Samples with a missing call for
    a variant get weight zero for it.
    """
    n, k = covariates.shape
    p = k + 2
    q_cols = np.column_stack([np.ones(n), covariates])
    eta = beta[:, :1] + beta[:, 1:2] * g + beta[:, 2:] @ covariates.T
    mu = expit(eta)
    present = ~missing
    resid = np.where(present, y - mu, 0.0)
    w = np.where(present, mu * (1.0 - mu), 0.0)
    ll_terms = y * log_expit(eta) + (1.0 - y) * log_expit(-eta)
    loglik = np.where(present, ll_terms, 0.0).sum(axis=1)
    degree = 3 if firth.any() else 2
    monomials = _q_monomials(q_cols, degree)
    grad = _moments(resid, g, monomials, p, 1)
    hess = _moments(w, g, monomials, p, 2)
    if firth.any():
        rows = np.flatnonzero(firth)
        third = _moments(w[rows] * (0.5 - mu[rows]), g[rows], monomials, p, 3)
    else:
        third = np.zeros((0, len(multisets(p, 3))))
    return LogisticChunk(grad=grad, hess=hess, loglik=loglik, third=third)
