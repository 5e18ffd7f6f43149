"""``coordinator.combine.survival``: pooling with suppression, KM, log-rank, Cox Newton."""

from __future__ import annotations

import numpy as np
import pytest

from genofed.coordinator.combine.survival import (
    CoxNewton,
    PooledCounts,
    kaplan_meier,
    log_rank,
    pool_counts,
)


def _site(risk, event, suppressed=None):
    risk, event = np.array(risk, np.int64), np.array(event, np.int64)
    mask = np.zeros(risk.shape, bool) if suppressed is None else np.array(suppressed)
    return risk, event, mask


def test_pool_counts__a_withheld_cell_makes_the_pooled_cell_unknown_not_zero() -> None:
    a = _site([[20, 15, 12]], [[2, 1, 0]])
    b = _site([[30, 9, -1]], [[3, 2, -1]], [[False, False, True]])
    pooled = pool_counts([a, b], (1, 3))
    assert pooled.known.tolist() == [[True, True, False]]
    assert pooled.n_risk[0, :2].tolist() == [50, 24]
    km = kaplan_meier(pooled)
    assert km.shown.tolist() == [[True, True, False]]
    assert np.isnan(km.surv[0, 2]) and np.isnan(km.lower[0, 2])
    assert km.surv[0, 1] == pytest.approx((1 - 5 / 50) * (1 - 3 / 24))


def test_pool_counts__rejects_bad_shapes_and_impossible_counts() -> None:
    with pytest.raises(ValueError, match="shape"):
        pool_counts([_site([[1, 2]], [[0, 0]])], (1, 3))
    with pytest.raises(ValueError, match="events"):
        pool_counts([_site([[5]], [[6]])], (1, 1))


def test_kaplan_meier__greenwood_log_log_band_by_hand() -> None:
    pooled = PooledCounts(np.array([[10, 8, 5]]), np.array([[1, 2, 0]]), np.ones((1, 3), bool))
    km = kaplan_meier(pooled)
    s = np.array([0.9, 0.9 * 0.75, 0.9 * 0.75])
    var = np.cumsum([1 / (10 * 9), 2 / (8 * 6), 0.0])
    z = 1.959963984540054
    v = np.log(s)
    lower = np.exp(-np.exp(np.log(-v) - z * np.sqrt(var) / v))
    upper = np.exp(-np.exp(np.log(-v) + z * np.sqrt(var) / v))
    np.testing.assert_allclose(km.surv[0], s, rtol=1e-14)
    np.testing.assert_allclose(km.lower[0], np.minimum(lower, upper), rtol=1e-12)
    np.testing.assert_allclose(km.upper[0], np.maximum(lower, upper), rtol=1e-12)


def test_kaplan_meier__nobody_at_risk_is_na_and_all_events_reach_zero() -> None:
    pooled = PooledCounts(np.array([[3, 2, 0]]), np.array([[1, 2, 0]]), np.ones((1, 3), bool))
    km = kaplan_meier(pooled)
    assert km.surv[0, 1] == 0 and km.lower[0, 1] == 0 and km.upper[0, 1] == 0
    assert np.isnan(km.surv[0, 2])


def test_log_rank__two_groups_by_hand_and_one_group_has_no_test() -> None:
    n = np.array([[10, 7], [12, 11]])
    d = np.array([[2, 1], [1, 0]])
    test = log_rank(PooledCounts(n, d, np.ones((2, 2), bool)))
    tot_n, tot_d = n.sum(0), d.sum(0)
    e0 = np.sum(n[0] * tot_d / tot_n)
    v0 = np.sum(tot_d * (tot_n - tot_d) / (tot_n - 1) * n[0] * n[1] / tot_n**2)
    assert test.chisq == pytest.approx((d[0].sum() - e0) ** 2 / v0, rel=1e-12)
    assert test.df == 1 and test.n_points == 2
    single = log_rank(PooledCounts(n[:1], d[:1], np.ones((1, 2), bool)))
    assert np.isnan(single.chisq) and single.df == 0


def test_log_rank__stops_at_the_first_grid_point_any_group_lacks() -> None:
    n = np.array([[10, 7, 5], [12, 11, 9]])
    d = np.array([[2, 1, 1], [1, 0, 2]])
    known = np.array([[True, True, True], [True, False, False]])
    test = log_rank(PooledCounts(n, d, known))
    assert test.n_points == 1
    full = log_rank(PooledCounts(n[:, :1], d[:, :1], np.ones((2, 1), bool)))
    assert test.chisq == pytest.approx(full.chisq, rel=1e-14)


def _quadratic(beta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """A concave stand-in for a log partial likelihood, optimum at (1, -2)."""
    h = np.array([[-3.0, 0.5], [0.5, -2.0]])
    delta = beta - np.array([1.0, -2.0])
    return (
        float(0.5 * delta @ h @ delta - 0.1 * np.sum(delta**4)),
        h @ delta - 0.4 * delta**3,
        (h - np.diag(1.2 * delta**2)),
    )


def test_cox_newton__converges_to_the_optimum_and_reports_wald_statistics() -> None:
    fit = CoxNewton(2)
    while (beta := fit.pending()) is not None:
        fit.receive(*_quadratic(beta))
    result = fit.result()
    np.testing.assert_allclose(result.coef, [1.0, -2.0], atol=1e-10)
    cov = np.linalg.inv(-_quadratic(result.coef)[2])
    np.testing.assert_allclose(result.se, np.sqrt(np.diag(cov)), rtol=1e-8)
    np.testing.assert_allclose(result.hr, np.exp(result.coef))
    assert result.rounds < 20


def test_cox_newton__refuses_to_finish_early_or_accept_nan() -> None:
    fit = CoxNewton(1)
    with pytest.raises(ValueError, match="not finished"):
        fit.result()
    with pytest.raises(ValueError, match="not finite"):
        fit.receive(float("nan"), np.zeros(1), -np.ones((1, 1)))
