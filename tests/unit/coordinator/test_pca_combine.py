"""The PCA math cores: site standardization and pair sums; coordinator iteration and pruning."""

from __future__ import annotations

import numpy as np
import pytest

from genofed.coordinator.combine.pca import (
    ProductBounds,
    prune_pairwise,
    r_squared,
    ritz,
    variant_weights,
    whiten,
)
from genofed.site_agent.stats.pca import ld_pair_sums, relationship_terms, standardized


def _genotypes(rng: np.random.Generator, v: int, n: int, missing: float) -> np.ndarray:
    f = rng.uniform(0.05, 0.5, size=(v, 1))
    g = rng.binomial(2, f, size=(v, n)).astype(np.int8)
    g[rng.random((v, n)) < missing] = -9
    return g


def _pooled_freq(g: np.ndarray) -> np.ndarray:
    called = (g >= 0).sum(axis=1)
    return np.where(g >= 0, g, 0).sum(axis=1) / (2.0 * called)


def test_standardized__centres_scales_and_zeroes_missing_and_monomorphic() -> None:
    g = np.array([[0, 1, 2, -9], [0, 0, 0, 0]], dtype=np.int8)
    x, called = standardized(g, np.array([False, False]), np.array([0.5, 0.0]))
    np.testing.assert_allclose(x[0], [-1 / np.sqrt(0.5), 0, 1 / np.sqrt(0.5), 0])
    np.testing.assert_array_equal(x[1], 0.0)
    np.testing.assert_array_equal(called[0], [True, True, True, False])
    flipped, _ = standardized(2 - g[:1], np.array([True]), np.array([0.5]))
    np.testing.assert_allclose(flipped[0, :3], x[0, :3])


def test_relationship_terms__give_plink2s_mean_imputed_matrix_with_missing_calls() -> None:
    """``A A^T + diag(delta)`` is ``X^T X / M`` (plink2 ``--pca meanimpute``), missing or not."""
    rng = np.random.default_rng(1)
    for missing in (0.1, 0.0):
        g = _genotypes(rng, 60, 25, missing=missing)
        x, _ = standardized(g, np.zeros(60, bool), _pooled_freq(g))
        scale, delta = relationship_terms((x * x).sum(axis=0), 60)
        a = scale[:, None] * x.T
        np.testing.assert_allclose(a @ a.T + np.diag(delta), x.T @ x / 60, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(scale, np.sqrt(60.0) / 60.0)


def test_relationship_terms__a_sample_with_a_missing_call_is_not_rescaled() -> None:
    """The same genotypes with one more missing call change only that call's term."""
    rng = np.random.default_rng(4)
    g = _genotypes(rng, 40, 10, missing=0.0)
    freq = _pooled_freq(g)
    x, _ = standardized(g, np.zeros(40, bool), freq)
    g[3, 0] = -9
    y, _ = standardized(g, np.zeros(40, bool), freq)
    s1, _ = relationship_terms((x * x).sum(axis=0), 40)
    s2, _ = relationship_terms((y * y).sum(axis=0), 40)
    np.testing.assert_array_equal(s1, s2)
    k1, k2 = x.T @ x / 40, (s2[:, None] * y.T) @ (s2[:, None] * y.T).T
    np.testing.assert_allclose(k2[1:, 1:], k1[1:, 1:], rtol=0, atol=1e-12)
    np.testing.assert_allclose(k2[0, 0], k1[0, 0] - x[3, 0] ** 2 / 40, rtol=1e-12)


def test_subspace_iteration_over_site_blocks__finds_the_top_eigenpairs() -> None:
    """Drive whiten/ritz as the protocol does, with K held as three row blocks."""
    rng = np.random.default_rng(2)
    g = _genotypes(rng, 300, 90, missing=0.05)
    x, _ = standardized(g, np.zeros(300, bool), _pooled_freq(g))
    scale, delta = relationship_terms((x * x).sum(axis=0), 300)
    a = scale[:, None] * x.T  # (n, V)
    blocks = np.array_split(np.arange(90), 3)
    k_full = a @ a.T + np.diag(delta)
    want = np.linalg.eigvalsh(k_full)[::-1][:4]
    omega = rng.standard_normal((300, 18))
    u = [a[b] @ omega for b in blocks]
    for _ in range(60):
        gram = sum(ub.T @ ub for ub in u)
        t = whiten(gram)
        wts = sum(a[b].T @ ub for b, ub in zip(blocks, u, strict=True)) @ t
        q = [ub @ t for ub in u]
        u = [a[b] @ wts + delta[b, None] * qb for b, qb in zip(blocks, q, strict=True)]
        pairs = ritz(
            sum(qb.T @ ub for qb, ub in zip(q, u, strict=True)), sum(ub.T @ ub for ub in u)
        )
        if pairs.residuals[:4].max() < 1e-6:
            break
    np.testing.assert_allclose(pairs.values[:4], want, rtol=1e-9)
    vectors = np.concatenate(q) @ pairs.vectors[:, :4]
    true = np.linalg.eigh(k_full)[1][:, ::-1][:, :4]
    np.testing.assert_allclose(np.abs((vectors * true).sum(axis=0)), 1.0, atol=1e-8)


def test_whiten__refuses_a_rank_deficient_block() -> None:
    u = np.ones((5, 2))
    with pytest.raises(ValueError, match="lost rank"):
        whiten(u.T @ u)


def test_ld_pair_sums__match_correlations_over_jointly_called_samples() -> None:
    rng = np.random.default_rng(3)
    d = _genotypes(rng, 12, 40, missing=0.1)
    g = np.where(d >= 0, d, 0).astype(float)
    called = d >= 0
    same = np.ones((12, 4), dtype=bool)
    same[5:, :] = False  # rows 5.. pretend to start another chromosome
    n, sums = ld_pair_sums(g, called, 12, 5, same)
    r2 = r_squared(n, sums)
    for i, dist in ((0, 1), (2, 3), (3, 4)):
        both = called[i] & called[i + dist]
        want = np.corrcoef(g[i, both], g[i + dist, both])[0, 1] ** 2
        assert r2[i, dist - 1] == pytest.approx(want, rel=1e-12)
        assert n[i, dist - 1] == both.sum()
    assert (n[5:] == 0).all() and (r2[10:, 2:] == 0).all()


def test_prune_pairwise__drops_the_lower_maf_variant_and_the_later_on_ties() -> None:
    chrom = np.array(["1"] * 4 + ["2"] * 2)
    maf = np.array([0.3, 0.1, 0.2, 0.2, 0.4, 0.4])
    variable = np.array([True, True, True, True, True, True])
    r2 = np.zeros((6, 3))
    r2[0, 0] = 0.9  # 0-1: 1 has the lower MAF
    r2[2, 0] = 0.9  # 2-3: tie, the later (3) goes
    r2[3, 0] = 0.9  # 3-4 crosses chromosomes: ignored whatever it says
    r2[4, 0] = 0.1  # 4-5 below the threshold
    keep = prune_pairwise(chrom, maf, variable, r2, window=3, step=1, threshold=0.5)
    np.testing.assert_array_equal(keep, [True, False, True, False, True, True])
    variable[5] = False  # all calls alike: pruned outright, as plink2 does
    keep = prune_pairwise(chrom, maf, variable, r2, window=3, step=1, threshold=0.5)
    assert not keep[5]


def test_variant_weights__refer_to_the_non_major_allele() -> None:
    x_t_e = np.array([[2.0], [2.0]])
    w = variant_weights(x_t_e, np.array([4.0]), np.array([0.2, 0.7]))
    np.testing.assert_allclose(w[:, 0], [1.0, -1.0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_product_bounds__every_sites_products_lie_below_their_exponents(seed: int) -> None:
    """The scaled bounds hold for each site's products at every step, skewed sites too."""
    rng = np.random.default_rng(seed)
    v, n, width = 300, 240, 12
    g = _genotypes(rng, v, n, missing=0.05)
    g[:5, :200] = 0  # rare variants: big standardized values in a few samples
    g[:5, 200:] = rng.integers(1, 3, size=(5, 40))
    freq = _pooled_freq(g)
    counts = np.stack([(g == d).sum(axis=1) for d in (0, 1, 2, -9)], axis=1)
    bounds = ProductBounds.from_counts(counts, freq)
    x, _ = standardized(g, np.zeros(v, dtype=np.bool_), freq)
    a = x.T / np.sqrt(v)  # samples x variants
    sites = [np.arange(0, 40), np.arange(40, 200), np.arange(200, n)]  # a site of outliers
    wts = rng.standard_normal((v, width)) * 3.0
    q = None
    for step in range(4):
        exps = bounds.iterate(step, wts)
        us = [a[s] @ wts for s in sites]
        for s, u in zip(sites, us, strict=True):
            products = {
                "a_t_u": a[s].T @ u,
                "cross": np.zeros((width, width)) if q is None else q[s].T @ u,
                "gram": u.T @ u,
            }
            for e, (name, p) in zip(exps, products.items(), strict=True):
                assert np.abs(p).max() < 2.0 ** int(e), (step, name)
        u = np.concatenate(us)
        transform = whiten(u.T @ u)
        q = u @ transform
        wts = a.T @ q
    e = bounds.finish()[0]
    _, vectors = np.linalg.eigh(a @ a.T)
    top = vectors[:, -3:]
    for s in sites:
        assert np.abs(x[:, s] @ top[s]).max() < 2.0 ** int(e)
