"""``site_agent.stats.survival``: grid counts, risk-set suppression, Cox derivatives."""

from __future__ import annotations

import numpy as np
import pytest

from genofed.site_agent.stats.survival import (
    cox_derivatives,
    grid_counts,
    suppress_small_risk_sets,
)


def test_grid_counts__intervals_close_on_the_right_and_late_times_stay_at_risk() -> None:
    time = np.array([1.0, 5.0, 5.0, 7.0, 10.0, 12.0, 30.0])
    event = np.array([True, True, False, True, True, False, True])
    group = np.array([0, 0, 0, 1, 1, 1, -1])  # the last sample is in no group
    n_risk, n_event = grid_counts(time, event, group, 2, np.array([5.0, 10.0, 20.0]))
    # group 0: (-inf, 5] holds 1, 5, 5 (two events); nobody after
    np.testing.assert_array_equal(n_risk[0], [3, 0, 0])
    np.testing.assert_array_equal(n_event[0], [2, 0, 0])
    # group 1: 7 and 10 in (5, 10] (both events), 12 censored in (10, 20]
    np.testing.assert_array_equal(n_risk[1], [3, 3, 1])
    np.testing.assert_array_equal(n_event[1], [0, 2, 0])


def test_grid_counts__follow_up_beyond_the_grid_is_at_risk_never_an_event() -> None:
    n_risk, n_event = grid_counts(
        np.array([50.0, 60.0]), np.array([True, True]), np.zeros(2, np.int64), 1, np.array([10.0])
    )
    assert n_risk.tolist() == [[2]] and n_event.tolist() == [[0]]


def test_suppress_small_risk_sets__withholds_small_nonzero_risk_sets_only() -> None:
    n_risk = np.array([[40, 12, 9, 3, 0]])
    n_event = np.array([[2, 1, 3, 1, 0]])
    risk, event, mask = suppress_small_risk_sets(n_risk, n_event, 10, -1)
    assert mask.tolist() == [[False, False, True, True, False]]
    assert risk.tolist() == [[40, 12, -1, -1, 0]]
    assert event.tolist() == [[2, 1, -1, -1, 0]]
    _, _, off = suppress_small_risk_sets(n_risk, n_event, 0, -1)
    assert not off.any()


def _data(seed: int = 0, n: int = 120, p: int = 3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p))
    time = np.ceil(rng.exponential(20, size=n))  # whole units: many tied times
    event = rng.random(n) < 0.7
    return time, event, x


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_cox_derivatives__gradient_and_hessian_match_finite_differences(ties: str) -> None:
    time, event, x = _data()
    beta = np.array([0.3, -0.2, 0.1])
    d = cox_derivatives(time, event, x, beta, ties)
    h = 1e-6
    for i in range(3):
        e = np.eye(3)[i] * h
        up, down = (
            cox_derivatives(time, event, x, beta + e, ties),
            cox_derivatives(time, event, x, beta - e, ties),
        )
        assert (up.loglik - down.loglik) / (2 * h) == pytest.approx(d.grad[i], rel=1e-6)
        np.testing.assert_allclose((up.grad - down.grad) / (2 * h), d.hess[i], rtol=1e-5)
    np.testing.assert_allclose(d.hess, d.hess.T, rtol=1e-12)


def test_cox_derivatives__loglik_matches_the_definition_on_a_tiny_tied_example() -> None:
    # times 1, 2, 2, 3 with events at 1, 2, 2; one covariate; beta = 0.5
    time = np.array([1.0, 2.0, 2.0, 3.0])
    event = np.array([True, True, True, False])
    x = np.array([[1.0], [0.0], [2.0], [1.0]])
    b = 0.5
    r = np.exp(b * x[:, 0])
    first = b * 1.0 - np.log(r.sum())
    tied = b * 2.0
    breslow = first + tied - 2 * np.log(r[1:].sum())
    efron = first + tied - np.log(r[1:].sum()) - np.log(r[1:].sum() - 0.5 * (r[1] + r[2]))
    assert cox_derivatives(time, event, x, np.array([b]), "breslow").loglik == pytest.approx(
        breslow, rel=1e-14
    )
    assert cox_derivatives(time, event, x, np.array([b]), "efron").loglik == pytest.approx(
        efron, rel=1e-14
    )


def test_cox_derivatives__ties_agree_without_tied_events_and_differ_with_them() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 2))
    distinct = rng.permutation(50).astype(float) + 1
    event = rng.random(50) < 0.6
    beta = np.array([0.2, -0.4])
    a = cox_derivatives(distinct, event, x, beta, "efron")
    b = cox_derivatives(distinct, event, x, beta, "breslow")
    assert a.loglik == pytest.approx(b.loglik, rel=1e-13)
    np.testing.assert_allclose(a.hess, b.hess, rtol=1e-12)
    time, event, x3 = _data()
    beta3 = np.zeros(3)
    assert cox_derivatives(time, event, x3, beta3, "efron").loglik != pytest.approx(
        cox_derivatives(time, event, x3, beta3, "breslow").loglik
    )


def test_cox_derivatives__large_linear_predictors_do_not_overflow() -> None:
    time, event, x = _data()
    beta = np.array([5.0, 0.0, 0.0])
    shifted = x.copy()
    shifted[:, 0] += 200  # exp(x beta) ~ exp(1000) overflows unless scaled
    d = cox_derivatives(time, event, shifted, beta, "efron")
    ref = cox_derivatives(time, event, x, beta, "efron")  # a constant shift cancels
    assert d.loglik == pytest.approx(ref.loglik, rel=1e-9)
    np.testing.assert_allclose(d.grad, ref.grad, rtol=1e-7, atol=1e-7)


def test_cox_derivatives__no_events_gives_zeros_and_bad_ties_are_rejected() -> None:
    d = cox_derivatives(
        np.array([1.0, 2.0]), np.zeros(2, bool), np.ones((2, 1)), np.zeros(1), "efron"
    )
    assert d.loglik == 0 and not d.grad.any() and not d.hess.any()
    with pytest.raises(ValueError, match="ties"):
        cox_derivatives(np.array([1.0]), np.ones(1, bool), np.ones((1, 1)), np.zeros(1), "exact")
