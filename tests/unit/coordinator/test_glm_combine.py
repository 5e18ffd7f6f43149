"""The glm cores together: site statistics pooled by the coordinator equal a centralized fit.

Sites are simulated by splitting samples; the site core
(``site_agent.stats.glm``) computes each part's sums and the combine core
(``coordinator.combine.glm``) pools and solves, as the protocol would.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genofed.common.errors import ConfigError
from genofed.common.study import study_from_mapping
from genofed.common.wire.glm import count_dtype, miss_center
from genofed.coordinator.combine.glm import (
    ERR_CONST_OMITTED,
    ERR_NONE,
    LogisticFit,
    genomic_inflation,
    linear_regression,
    pool_stats,
)
from genofed.site_agent.stats.glm import (
    allele_counts,
    gram_upper,
    linear_chunk,
    logistic_chunk,
    oriented,
)


def _cohort(rng: np.random.Generator, n: int, v: int, k: int, miss: float, binary: bool):
    freq = rng.uniform(0.05, 0.95, v)
    dos = rng.binomial(2, freq[:, None], (v, n)).astype(np.int8)
    dos[rng.random((v, n)) < miss] = -9
    cov = rng.normal(size=(n, k)) + np.arange(k)
    g = np.where(dos < 0, 0, dos).astype(float)
    lin = 0.3 * g[0] + cov @ np.linspace(0.2, -0.2, k)
    y = (
        (rng.random(n) < 1 / (1 + np.exp(-lin))).astype(float)
        if binary
        else lin + rng.normal(size=n)
    )
    return dos, cov, y


def _site_stats(dos, cov, y, parts, flip, miss_dtype=np.float64, other=None):
    """What each site would send for glm_stats (flip: file alleles swapped at that site).

    ``miss_dtype``: float64 as on the wire; float32 to show what centring buys.
    ``other``: per site, extra genotyped samples outside the analysis (dosages).
    """
    out = []
    for i, (part, swapped) in enumerate(zip(parts, flip, strict=True)):
        d = dos[:, part]
        if swapped:  # the site's file counts the other allele; its plan flips it back
            d = np.where(d < 0, d, 2 - d).astype(np.int8)
        f = np.full(len(d), swapped)
        z = np.column_stack([np.ones(len(part)), cov[part], y[part]])
        g, missing = oriented(d, f)
        zz = gram_upper(z)
        chunk = linear_chunk(g, missing, z, miss_center=miss_center(zz))
        extra = None if other is None else other[i]
        if extra is not None and swapped:
            extra = np.where(extra < 0, extra, 2 - extra).astype(np.int8)
        out.append(
            {
                "gz": chunk.gz,
                "gg": chunk.gg,
                "zz": zz,
                "miss_rows": np.packbits(np.isin(np.arange(len(d)), chunk.miss_rows)),
                "miss_zz": chunk.miss_zz.astype(miss_dtype),
                "other_counts": (
                    np.zeros((0, 2), np.uint8)
                    if extra is None
                    else allele_counts(extra, f).astype(count_dtype(extra.shape[1]))
                ),
            }
        )
    return out


def _parts(rng: np.random.Generator, n: int, sites: int) -> list[np.ndarray]:
    cuts = np.sort(rng.choice(np.arange(10, n - 10), sites - 1, replace=False))
    return np.split(rng.permutation(n), cuts)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    sites=st.integers(1, 4),
    k=st.integers(0, 3),
    miss=st.sampled_from([0.0, 0.05, 0.3]),
)
def test_linear__pooled_sites_equal_ols_on_pooled_samples(seed, sites, k, miss) -> None:
    rng = np.random.default_rng(seed)
    n, v = 80, 6
    dos, cov, y = _cohort(rng, n, v, k, miss, binary=False)
    parts = _parts(rng, n, sites)
    flip = rng.random(sites) < 0.5
    gram = pool_stats(_site_stats(dos, cov, y, parts, flip), v, k)
    result = linear_regression(gram)
    for j in range(v):
        ok = dos[j] >= 0
        ref_is_minor = (2 * np.sum(dos[j][ok] == 0) + np.sum(dos[j][ok] == 1)) < np.sum(ok)
        g = dos[j][ok].astype(float)
        assert gram.a1_is_ref[j] == ref_is_minor
        if ref_is_minor:
            g = 2 - g
        x = np.column_stack([np.ones(ok.sum()), g, cov[ok]])
        assert result.obs_ct[j] == ok.sum()
        if result.errcode[j] != ERR_NONE:
            continue
        beta, *_ = np.linalg.lstsq(x, y[ok], rcond=None)
        resid = y[ok] - x @ beta
        s2 = resid @ resid / (ok.sum() - x.shape[1])
        se = np.sqrt(np.diag(np.linalg.inv(x.T @ x)) * s2)
        np.testing.assert_allclose(result.beta[j], beta[1:], rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(result.se[j], se[1:], rtol=1e-8)


def test_linear__centred_corrections_keep_ols_precision_for_large_means() -> None:
    # a phenotype far from zero (height in mm) and an age covariate: the corrections
    # are centred on each site's means, so even rounded to float32 their error does
    # not scale with those means (the wire sends float64: see
    # tests/reference/test_glm_precision_vs_plink2.py for where float32 is not enough)
    rng = np.random.default_rng(3)
    n, v, k = 600, 8, 2
    dos, cov, y = _cohort(rng, n, v, k, 0.05, binary=False)
    cov[:, 1] = 60.0 + 10.0 * cov[:, 1]
    y = 1700.0 + 10.0 * y
    parts = _parts(rng, n, 3)
    flip = [False, True, False]
    exact = linear_regression(pool_stats(_site_stats(dos, cov, y, parts, flip), v, k))
    wire = linear_regression(
        pool_stats(_site_stats(dos, cov, y, parts, flip, miss_dtype=np.float32), v, k)
    )
    assert list(wire.errcode) == list(exact.errcode)
    # float32 rounding of the corrections: ~1e-8 relative, 1,000x below plink2's printed digits
    np.testing.assert_allclose(wire.beta, exact.beta, rtol=1e-6)
    np.testing.assert_allclose(wire.se, exact.se, rtol=1e-6)
    np.testing.assert_allclose(wire.p, exact.p, rtol=1e-5)


def test_pool_stats__allele_counts_include_genotyped_samples_outside_the_analysis() -> None:
    # A1 is chosen over every genotyped sample: three extra samples, homozygous for
    # the study ALT allele, make ALT the major allele of variant 0
    dos = np.array([[0] * 10 + [1] * 5], dtype=np.int8)  # REF frequency 25/30 over the analysis
    extra = np.full((1, 20), 2, dtype=np.int8)
    rng = np.random.default_rng(0)
    cov, y = rng.normal(size=(15, 1)), rng.normal(size=15)
    parts = [np.arange(15)]
    alone = pool_stats(_site_stats(dos, cov, y, parts, [False]), 1, 1)
    assert not alone.a1_is_ref[0]
    with_extra = pool_stats(_site_stats(dos, cov, y, parts, [False], other=[extra]), 1, 1)
    assert with_extra.a1_is_ref[0]
    assert with_extra.obs_ct[0] == 15  # the regression still uses the analysis samples


def test_linear__constant_genotype_and_too_few_samples_get_plink2_errcodes() -> None:
    rng = np.random.default_rng(1)
    dos, cov, y = _cohort(rng, 40, 3, 2, 0.0, binary=False)
    dos[1] = 1  # every sample heterozygous
    dos[2, 4:] = -9  # four samples left for four predictors
    result = linear_regression(pool_stats(_site_stats(dos, cov, y, [np.arange(40)], [False]), 3, 2))
    assert list(result.errcode) == [ERR_NONE, ERR_CONST_OMITTED, "SAMPLE_CT<=PREDICTOR_CT"]
    assert np.isnan(result.beta[1:]).all() and np.isfinite(result.beta[0]).all()
    assert result.obs_ct.tolist() == [40, 40, 4]


def _fit_logistic(dos, cov, y, parts, firth_mode="fallback"):
    gram = pool_stats(_site_stats(dos, cov, y, parts, [False] * len(parts)), len(dos), cov.shape[1])
    fit = LogisticFit(gram, firth_mode)
    while (pending := fit.pending()) is not None:
        sums = None
        for part in parts:
            g, missing = oriented(dos[pending.index][:, part], np.zeros(len(pending.index), bool))
            c = logistic_chunk(g, missing, cov[part], y[part], pending.beta, pending.firth)
            arrays = (c.grad, c.hess, c.loglik, c.third)
            sums = (
                arrays if sums is None else tuple(a + b for a, b in zip(sums, arrays, strict=True))
            )
        assert sums is not None
        fit.receive(pending, *sums)
    return fit.result(), fit


def _irls(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    beta = np.zeros(x.shape[1])
    for _ in range(50):
        mu = 1 / (1 + np.exp(-x @ beta))
        h = (x.T * (mu * (1 - mu))) @ x
        beta = beta + np.linalg.solve(h, x.T @ (y - mu))
    mu = 1 / (1 + np.exp(-x @ beta))
    return beta, np.sqrt(np.diag(np.linalg.inv((x.T * (mu * (1 - mu))) @ x)))


def test_logistic__newton_across_sites_equals_centralized_mle() -> None:
    rng = np.random.default_rng(7)
    n = 600
    dos, cov, y = _cohort(rng, n, 8, 2, 0.02, binary=True)
    result, fit = _fit_logistic(dos, cov, y, _parts(rng, n, 3))
    assert not result.firth.any()
    for j in range(8):
        ok = dos[j] >= 0
        g = dos[j][ok].astype(float)
        if result.a1_is_ref[j]:
            g = 2 - g
        beta, se = _irls(np.column_stack([np.ones(ok.sum()), g, cov[ok]]), y[ok])
        np.testing.assert_allclose(result.beta[j], beta[1:], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(result.se[j], se[1:], rtol=1e-3)  # information of the last step
    assert 3 <= fit.rounds <= 10


def test_logistic__separation_falls_back_to_firth_at_penalized_optimum() -> None:
    rng = np.random.default_rng(3)
    n = 300
    dos, cov, y = _cohort(rng, n, 2, 1, 0.0, binary=True)
    dos[1] = 0
    dos[1, np.flatnonzero(y == 0)[:3]] = 1  # the minor allele only in controls: separation
    result, fit = _fit_logistic(dos, cov, y, _parts(rng, n, 2))
    assert result.firth.tolist() == [False, True]
    assert result.errcode[1] in (ERR_NONE, "UNFINISHED")
    assert not result.a1_is_ref[1]
    # Firth's penalized score (logistf's U*) vanishes at the fitted coefficients
    x = np.column_stack([np.ones(n), dos[1].astype(float), cov])
    beta = fit.coef[1]
    mu = 1 / (1 + np.exp(-x @ beta))
    w = mu * (1 - mu)
    h = w * np.einsum("ij,jk,ik->i", x, np.linalg.inv((x.T * w) @ x), x)
    score = x.T @ (y - mu + h * (0.5 - mu))
    assert np.abs(score).max() < 1e-3
    assert result.beta[1, 0] < 0


def test_genomic_inflation__is_one_for_median_chisq() -> None:
    rng = np.random.default_rng(0)
    dos, cov, y = _cohort(rng, 200, 40, 1, 0.0, binary=False)
    y = rng.normal(size=200)
    result = linear_regression(
        pool_stats(_site_stats(dos, cov, y, [np.arange(200)], [False]), 40, 1)
    )
    assert 0.3 < genomic_inflation(result) < 3


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "missing key 'phenotype'"),
        ({"phenotype": "Q", "model": "probit"}, "model must be one of"),
        ({"phenotype": "Q", "firth": "sometimes"}, "firth must be one of"),
        ({"phenotype": "Q", "model": "linear", "firth": "always"}, "firth applies to logistic"),
        ({"phenotype": "Q", "covariates": ["AGE", "AGE"]}, "distinct"),
        ({"phenotype": "Q", "covariates": "AGE"}, "covariates must be list"),
    ],
)
def test_glm_study__bad_parameters_name_the_file_and_the_fix(params, message) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        study_from_mapping(
            {"study": {"name": "s"}, "analysis": [{"kind": "glm", **params}]},
            path=Path("study.toml"),
        )
    assert "study.toml" in str(info.value)
