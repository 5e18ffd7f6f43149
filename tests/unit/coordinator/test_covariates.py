"""Covariate checks on the pooled covariate Gram make plink2's decisions, and Design is exact.

:func:`check_covariates` leaves out constant covariates and stops on the
covariates plink2 stops on (CORR_TOO_HIGH, VIF_INFINITE, VIF_TOO_HIGH, in
plink2's order for each model); :class:`Design` lets the coordinator fit
the model without a left-out covariate from sums the sites compute with it.
"""

from __future__ import annotations

import numpy as np
import pytest

from genofed.common.errors import InputError
from genofed.coordinator.combine.covariates import (
    SUMMARY_KEY,
    TAKEN_BACK_KEY,
    CovariateCheck,
    Design,
    check_covariates,
    checked_design,
    separated_covariates,
    separation_request,
    take_back,
)
from genofed.coordinator.combine.glm import linear_regression, pool_stats
from genofed.site_agent.stats.glm import gram_upper, logistic_chunk
from tests.unit.coordinator.test_glm_combine import _cohort, _parts, _site_stats

WHAT = "glm analysis 'gwas'"


def _zz(cov: np.ndarray, y: np.ndarray) -> np.ndarray:
    return gram_upper(np.column_stack([np.ones(len(y)), cov, y]))


def _covariates(rng: np.random.Generator, n: int = 500) -> tuple[np.ndarray, np.ndarray]:
    age = np.round(rng.uniform(20, 80, n))
    sex = rng.integers(1, 3, n).astype(float)
    bmi = rng.normal(27, 4, n)
    return np.column_stack([age, sex, bmi]), rng.normal(size=n)


@pytest.mark.parametrize("value", [0.0, 1.0, 0.1, 1987.3])
def test_check__a_constant_covariate_is_left_out_and_named(value: float) -> None:
    cov, y = _covariates(np.random.default_rng(1))
    cov = np.column_stack([cov[:, :1], np.full(len(y), value), cov[:, 1:]])
    names = ("AGE", "BATCH", "SEX", "BMI")
    check = check_covariates(_zz(cov, y), names, linear=True, what=WHAT)
    assert check.keep == (0, 2, 3)
    assert check.constant == ("BATCH",)
    assert check.summary() == {SUMMARY_KEY: "BATCH"}
    warning = check.warning(WHAT)
    assert warning is not None and "'BATCH'" in warning and "500 analysis samples" in warning


def test_check__varying_covariates_are_all_kept_and_nothing_is_said() -> None:
    cov, y = _covariates(np.random.default_rng(2))
    check = check_covariates(_zz(cov, y), ("AGE", "SEX", "BMI"), linear=False, what=WHAT)
    assert check.keep == (0, 1, 2) and check.constant == ()
    assert check.warning(WHAT) is None and check.summary() == {}


@pytest.mark.parametrize(
    ("linear", "code"),
    [(True, "VIF_INFINITE"), (False, "CORR_TOO_HIGH")],  # plink2's order for each model
)
def test_check__an_exact_linear_function_of_another_covariate_stops_naming_both(
    linear: bool, code: str
) -> None:
    cov, y = _covariates(np.random.default_rng(3))
    cov = np.column_stack([cov, 2.0 * cov[:, 0] + 1.0])
    with pytest.raises(InputError) as err:
        check_covariates(_zz(cov, y), ("AGE", "SEX", "BMI", "AGE2"), linear=linear, what=WHAT)
    text = str(err.value)
    assert code in text and "'AGE'" in text and "'AGE2'" in text
    assert "'SEX'" not in text.split("fix:")[0] and "'BMI'" not in text.split("fix:")[0]
    assert text.startswith(WHAT) and "fix: remove" in text


@pytest.mark.parametrize("linear", [True, False])
def test_check__a_combination_of_covariates_stops_with_vif_infinite_naming_them(
    linear: bool,
) -> None:
    cov, y = _covariates(np.random.default_rng(4))
    cov = np.column_stack([cov, cov[:, 0] + 20.0 * cov[:, 1]])  # pairwise |r| < 0.999
    with pytest.raises(InputError, match="VIF_INFINITE") as err:
        check_covariates(_zz(cov, y), ("AGE", "SEX", "BMI", "X"), linear=linear, what=WHAT)
    message = str(err.value).split("\n")[0]
    assert "'AGE', 'SEX' and 'X'" in message and "'BMI'" not in message


@pytest.mark.parametrize("linear", [True, False])
def test_check__near_duplicates_and_high_vifs_stop_as_plink2_does(linear: bool) -> None:
    rng = np.random.default_rng(5)
    cov, y = _covariates(rng)
    near = np.column_stack([cov, cov[:, 0] + rng.normal(0, 0.3, len(y))])  # r ~ 0.9996
    with pytest.raises(InputError, match=r"'AGE' and 'X'.*CORR_TOO_HIGH"):
        check_covariates(_zz(near, y), ("AGE", "SEX", "BMI", "X"), linear=linear, what=WHAT)
    vif = np.column_stack([cov, cov[:, 0] + 15.0 * cov[:, 1] + rng.normal(0, 0.5, len(y))])
    with pytest.raises(InputError, match=r"covariate 'AGE' has a variance inflation.*VIF_TOO_HIGH"):
        check_covariates(_zz(vif, y), ("AGE", "SEX", "BMI", "X"), linear=linear, what=WHAT)


def test_design__reduced_sums_equal_the_sums_of_the_smaller_model() -> None:
    rng = np.random.default_rng(6)
    n, v = 300, 5
    dos, cov, y = _cohort(rng, n, v, 2, 0.05, binary=True)
    with_const = np.column_stack([cov[:, 0], np.full(n, 3.5), cov[:, 1]])
    design = Design(k=3, keep=(0, 2))
    beta = rng.normal(0, 0.2, (v, 4))
    g = np.where(dos < 0, 0, dos).astype(float)
    firth = np.ones(v, dtype=bool)
    full = logistic_chunk(g, dos < 0, with_const, y, design.site_beta(beta), firth)
    small = logistic_chunk(g, dos < 0, cov, y, beta, firth)
    np.testing.assert_allclose(design.moments(full.grad, 1), small.grad, rtol=1e-12)
    np.testing.assert_allclose(design.moments(full.hess, 2), small.hess, rtol=1e-12)
    np.testing.assert_allclose(design.moments(full.third, 3), small.third, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(full.loglik, small.loglik, rtol=1e-12)


def test_checked_design__linear_fit_without_the_constant_equals_the_fit_without_it() -> None:
    rng = np.random.default_rng(7)
    n, v = 400, 6
    dos, cov, y = _cohort(rng, n, v, 2, 0.05, binary=False)
    with_const = np.column_stack([cov[:, 0], np.full(n, 1.7), cov[:, 1]])
    parts, flip = _parts(rng, n, 3), [False, True, False]
    pooled = pool_stats(_site_stats(dos, with_const, y, parts, flip), v, 3)
    gram, design, check = checked_design(pooled, ("A", "C", "B"), linear=True, what=WHAT)
    assert design.keep == (0, 2) and check.constant == ("C",) and gram.k == 2
    expected = linear_regression(pool_stats(_site_stats(dos, cov, y, parts, flip), v, 2))
    got = linear_regression(gram)
    assert (got.errcode == expected.errcode).all()
    np.testing.assert_allclose(got.beta, expected.beta, rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(got.se, expected.se, rtol=1e-9)


def _pooled(n: int, complete: list[int], values: dict[int, np.ndarray]) -> dict[str, np.ndarray]:
    k = len(complete)
    sums, squares = np.zeros(k), np.zeros(k)
    for j, v in values.items():
        sums[j], squares[j] = v.sum(), (v * v).sum()
    return {
        "n": np.array([n]),
        "complete": np.array(complete),
        "sums": sums,
        "squares": squares,
    }


def test_take_back__no_more_samples_keeps_the_first_rounds_model() -> None:
    check = CovariateCheck(keep=(0,), constant=("W", "X"), n=90)
    got = take_back(check, ["AGE", "W", "X"], 90, _pooled(90, [0, 3, 3], {}), 3)
    assert got.added == 0 and got.used.tolist() == [1, 0, 0] and got.summary() == {}


def test_take_back__a_left_out_covariate_that_varies_over_the_new_set_is_used_again() -> None:
    """plink2's step 2: complete on the new set at every site and not constant there."""
    check = CovariateCheck(keep=(0,), constant=("W", "X", "V"), n=90)
    x = np.r_[np.zeros(90), np.arange(12.0)]  # constant over the first 90, varies after
    v = np.full(102, 2.5)  # still constant
    pooled = _pooled(102, [0, 2, 3, 3], {2: x, 3: v})  # W: one site misses it on the new set
    got = take_back(check, ["AGE", "W", "X", "V"], 90, pooled, 3)
    assert got.added == 12 and got.n == 102
    assert got.used.tolist() == [1, 0, 1, 0] and got.restored == ("X",)
    assert got.summary() == {TAKEN_BACK_KEY: 12}


# -- covariate separation (glm_separation) -------------------------------------------------


def _separation(cov: np.ndarray, y: np.ndarray, sites: int = 3) -> tuple[list[int], list[int]]:
    """The coordinator's decision from per-site sums added up, as the rounds deliver them."""
    parts = np.array_split(np.arange(len(y)), sites)
    zz = sum(_zz(cov[p], y[p]) for p in parts)
    keep = tuple(range(cov.shape[1]))
    center, scale = separation_request(zz, cov.shape[1], keep)
    moments = np.zeros((cov.shape[1], 2))
    for p in parts:
        u = (cov[p] - center) / scale
        moments += np.column_stack([(u**3).sum(axis=0), (u**4).sum(axis=0)])
    return separated_covariates(zz, moments, center, scale, keep)


def _plink2_separated(values: np.ndarray, y: np.ndarray) -> bool:
    """plink2's CheckForSeparatedQtCovar: the cases' and controls' ranges do not interleave."""
    case, control = values[y == 1], values[y == 0]
    return bool(case.min() >= control.max() or control.min() >= case.max())


@pytest.mark.parametrize("low,high", [(0.0, 1.0), (1.0, 2.0), (-3.5, 1987.25)])
def test_separation__two_valued_covariates_decided_as_plink2(low: float, high: float) -> None:
    rng = np.random.default_rng(3)
    n = 600
    y = (rng.random(n) < 0.3).astype(float)
    age = np.round(rng.uniform(20, 80, n))
    mixed = np.where(rng.random(n) < 0.4, high, low)  # both values in both classes
    cases_high = np.where(y == 1, high, np.where(rng.random(n) < 0.1, high, low))  # quasi
    controls_low = np.where(y == 0, low, np.where(rng.random(n) < 0.5, high, low))  # quasi
    complete = np.where(y == 1, high, low)
    cov = np.column_stack([age, mixed, cases_high, controls_low, complete])
    quasi, full = _separation(cov, y)
    assert quasi == [j for j in range(cov.shape[1]) if _plink2_separated(cov[:, j], y)]
    assert quasi == [2, 3, 4] and full == [4]


def test_separation__three_values_or_continuous_are_not_checked() -> None:
    """A third value held by one sample in 600 makes a covariate three-valued: not checked,
    even though plink2 would call it separated (cases all at 1, controls at 0 and one at 2)."""
    rng = np.random.default_rng(4)
    n = 600
    y = (rng.random(n) < 0.3).astype(float)
    three = np.where(y == 1, 1.0, 0.0)
    three[np.flatnonzero(y == 0)[0]] = 2.0
    continuous = np.where(y == 1, rng.uniform(1, 2, n), rng.uniform(0, 1, n))
    quasi, full = _separation(np.column_stack([three, continuous]), y)
    assert quasi == [] and full == []


def test_separation__left_out_and_constant_covariates_are_not_read() -> None:
    rng = np.random.default_rng(5)
    n = 300
    y = (rng.random(n) < 0.5).astype(float)
    cov = np.column_stack([np.ones(n), y.copy()])  # constant; separating but left out
    zz = _zz(cov, y)
    center, scale = separation_request(zz, 2, keep=(0,))
    assert center.tolist() == [0.0, 0.0] and scale.tolist() == [1.0, 1.0]
    moments = np.zeros((2, 2))
    assert separated_covariates(zz, moments, center, scale, keep=(0,)) == ([], [])
