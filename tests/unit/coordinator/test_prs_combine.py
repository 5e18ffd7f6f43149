"""Combine half of prs: row plan, standardization, AUC from threshold counts, calibration."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from genofed.common.wire.prs import MATCH_ABSENT, MATCH_EXACT, MATCH_SWAPPED, roc_thresholds
from genofed.coordinator.combine.prs import (
    calibration,
    plan_rows,
    pooled_auc,
    standardization,
)
from genofed.site_agent.stats.prs import collapse_thresholds


def test_plan_rows__uses_rows_matched_at_every_site_with_pooled_frequency() -> None:
    a = np.array([MATCH_EXACT, MATCH_SWAPPED, MATCH_EXACT], dtype=np.int8)
    b = np.array([MATCH_EXACT, MATCH_EXACT, MATCH_ABSENT], dtype=np.int8)
    counts = [np.array([[10, 5], [10, 10], [10, 2]]), np.array([[30, 15], [20, 4], [0, 0]])]
    plan = plan_rows([a, b], counts, [np.zeros(3, bool), np.zeros(3, bool)])
    assert plan.use.tolist() == [True, True, False]
    hidden = plan_rows([a, b], counts, [np.array([False, True, False]), np.zeros(3, bool)])
    assert hidden.use.tolist() == [True, False, False] and hidden.per_site[0]["withheld"] == 1
    np.testing.assert_allclose(plan.impute_freq, [20 / 80, 14 / 60, 0.0])
    assert plan.per_site[1]["absent"] == 1 and plan.per_site[0]["matched"] == 3


def test_standardization__pooled_mean_and_sample_sd() -> None:
    rng = np.random.default_rng(3)
    parts = [rng.normal(2, 3, size=n) for n in (40, 25, 60)]
    s = standardization([np.array([len(p), p.sum(), p @ p]) for p in parts])
    pooled = np.concatenate(parts)
    assert s.n == 125
    assert s.mean == pytest.approx(pooled.mean(), rel=1e-12)
    assert s.sd == pytest.approx(pooled.std(ddof=1), rel=1e-12)


def _site(z: np.ndarray, case: np.ndarray, t: np.ndarray, m: int):  # type: ignore[no-untyped-def]
    counts, released = collapse_thresholds(z, case, t, m)
    return counts, released, np.array([case.sum(), (~case).sum()])


def test_pooled_auc__equals_mann_whitney_when_thresholds_separate_the_classes() -> None:
    z = np.array([-2.0, -1.0, -0.5, 0.2, 0.3, 1.0, 1.5, 2.5])
    case = np.array([0, 0, 1, 0, 1, 0, 1, 1], dtype=bool)
    t = (np.sort(z)[1:] + np.sort(z)[:-1]) / 2
    parts = [_site(z[:4], case[:4], t, 0), _site(z[4:], case[4:], t, 0)]
    auc, roc, exact = pooled_auc(*zip(*parts, strict=True), t)
    u = stats.mannwhitneyu(z[case], z[~case]).statistic
    assert auc == pytest.approx(u / (case.sum() * (~case).sum()), abs=1e-12)
    assert exact == len(t) and roc[0].tolist() == [0, 0] and roc[-1].tolist() == [1, 1]


def test_pooled_auc__withheld_counts_interpolated_close_to_exact() -> None:
    rng = np.random.default_rng(7)
    t = roc_thresholds(19)
    parts, zs, cases = [], [], []
    for n in (400, 300, 200):
        case = rng.random(n) < 0.3
        z = rng.standard_normal(n) + 0.9 * case
        parts.append(_site(z, case, t, 10))
        zs.append(z)
        cases.append(case)
    auc, _, exact = pooled_auc(*zip(*parts, strict=True), t)
    z, case = np.concatenate(zs), np.concatenate(cases)
    full, _, _ = pooled_auc(*zip(_site(z, case, t, 0), strict=True), t)
    assert exact < len(t)
    assert abs(auc - full) < 0.01


def test_calibration__pools_groups_and_hosmer_lemeshow() -> None:
    a = np.array([[50, 5, 6.0], [50, 20, 19.0], [50, 40, 38.0]])
    b = np.array([[0, 0, 0.0], [40, 15, 16.0], [30, 25, 24.0]])
    cal = calibration([a, b], [np.zeros(3, bool), np.array([True, False, False])])
    assert cal.n.tolist() == [50, 90, 80] and cal.withheld_at.tolist() == [1, 0, 0]
    e, o, n = cal.expected, cal.cases, cal.n
    assert cal.hl_statistic == pytest.approx(np.sum((o - e) ** 2 / (e * (1 - e / n))))
    assert cal.hl_df == 1
