"""The prs summable forms: their sum over sites gives the plan, the ROC and the tables.

The coordinator used to read each site's ``prs_match`` row codes and
``prs_stats`` ROC counts and pool them itself; now it receives only the sum
of each site's summable form (:mod:`genofed.common.wire.prs`). These tests
build replies as the site does and check that the sums give the same row
plan and AUC as the site-by-site pooling, that the forms' shapes do not
depend on what a site withheld, and that a malformed reply is refused.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genofed.common.wire.prs import (
    MATCH_NAMES,
    PRS_CALIBRATION_KIND,
    PRS_MATCH_KIND,
    PRS_STATS_KIND,
    SUMMABLE_FORMS,
    match_counts,
    roc_thresholds,
)
from genofed.common.wire.records import NamedArrays
from genofed.common.wire.summable import secure_analysis_kinds, summed
from genofed.coordinator.combine.prs import auc_from_sums, plan_from_sums, plan_rows, pooled_auc

R, T, B = 30, 9, 8


def _match_reply(rng: np.random.Generator) -> NamedArrays:
    status = rng.choice(list(MATCH_NAMES), size=R, p=[0.1, 0.5, 0.2, 0.05, 0.05, 0.05, 0.05])
    called = rng.integers(0, 300, size=R)
    counts = np.stack([called, rng.integers(0, 2 * called + 1)], axis=1).astype(np.int64)
    withheld = rng.random(R) < 0.2
    counts[withheld] = 0
    return {
        "row_status": status.astype(np.int8),
        "effect_counts": counts,
        "effect_counts_withheld": withheld,
    }


def _stats_reply(rng: np.random.Generator, released_share: float) -> NamedArrays:
    totals = rng.integers(20, 200, size=2).astype(np.int64)
    counts = np.stack(
        [np.sort(rng.integers(0, t + 1, size=T))[::-1] for t in totals], axis=1
    ).astype(np.int64)
    released = rng.random((T, 2)) < released_share
    released[T // 2] = True  # every site releases some threshold of each class
    hist_hidden = rng.random(B + 2) < 0.3
    return {
        "histogram": np.where(hist_hidden, 0, rng.integers(0, 50, size=B + 2)).astype(np.int64),
        "histogram_suppressed": hist_hidden,
        "gz": rng.normal(size=4),
        "gg": rng.normal(size=1),
        "zz": rng.normal(size=10),
        "roc_counts": np.where(released, counts, 0),
        "roc_released": released,
        "class_totals": totals,
    }


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_sites=st.integers(1, 5))
def test_match_form__sums_give_the_site_by_site_plan(seed: int, n_sites: int) -> None:
    rng = np.random.default_rng(seed)
    replies = [_match_reply(rng) for _ in range(n_sites)]
    sites = [f"s{i}" for i in range(n_sites)]
    total = summed([SUMMABLE_FORMS[PRS_MATCH_KIND](r, {}) for r in replies], sites)
    want = plan_rows(
        [r["row_status"] for r in replies],
        [r["effect_counts"] for r in replies],
        [r["effect_counts_withheld"] for r in replies],
    )
    got = plan_from_sums(
        total["matched_sites"],
        total["effect_counts"],
        total["effect_counts_withheld"],
        n_sites,
        [match_counts(r["row_status"]) for r in replies],
    )
    np.testing.assert_array_equal(got.use, want.use)
    np.testing.assert_array_equal(got.withheld, want.withheld)
    np.testing.assert_array_equal(got.impute_freq, want.impute_freq)
    assert [site["used"] for site in got.per_site] == [int(want.use.sum())] * n_sites
    assert total["effect_counts"].dtype == np.int64


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_sites=st.integers(1, 5),
    share=st.sampled_from([1.0, 0.6, 0.2]),
)
def test_stats_form__summed_roc_gives_the_site_by_site_auc(
    seed: int, n_sites: int, share: float
) -> None:
    rng = np.random.default_rng(seed)
    replies = [_stats_reply(rng, share) for _ in range(n_sites)]
    sites = [f"s{i}" for i in range(n_sites)]
    inputs = {"roc": np.array([True])}
    total = summed([SUMMABLE_FORMS[PRS_STATS_KIND](r, inputs) for r in replies], sites)
    thresholds = roc_thresholds(T)
    want = pooled_auc(
        [r["roc_counts"] for r in replies],
        [r["roc_released"] for r in replies],
        [r["class_totals"] for r in replies],
        thresholds,
    )
    got = auc_from_sums(
        total["roc_filled"], total["roc_released"], total["class_totals"], n_sites, thresholds
    )
    assert got[0] == pytest.approx(want[0], rel=1e-12)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12, atol=1e-15)
    assert got[2] == want[2]
    hist = np.sum([r["histogram"] for r in replies], axis=0)
    np.testing.assert_array_equal(total["histogram"], hist)
    hidden = np.sum([r["histogram_suppressed"] for r in replies], axis=0)
    np.testing.assert_array_equal(total["histogram_suppressed"], hidden)


def test_forms__shapes_fixed_by_the_request_not_by_what_a_site_withheld() -> None:
    rng = np.random.default_rng(7)
    layouts: dict[str, set[tuple[object, ...]]] = {PRS_MATCH_KIND: set(), PRS_STATS_KIND: set()}
    for share in (1.0, 0.5, 0.0):
        match = SUMMABLE_FORMS[PRS_MATCH_KIND](_match_reply(rng), {})
        stats_ = SUMMABLE_FORMS[PRS_STATS_KIND](_stats_reply(rng, share), {"roc": np.array([True])})
        for kind, form in ((PRS_MATCH_KIND, match), (PRS_STATS_KIND, stats_)):
            layouts[kind].add(tuple(sorted((n, a.shape, a.dtype.str) for n, a in form.items())))
            assert all(np.isfinite(a).all() for a in form.values())
    assert all(len(v) == 1 for v in layouts.values())
    no_roc = SUMMABLE_FORMS[PRS_STATS_KIND](_stats_reply(rng, 1.0), {"roc": np.array([False])})
    assert not {"roc_filled", "roc_released", "class_totals"} & set(no_roc)


@pytest.mark.parametrize(
    ("kind", "edit", "inputs", "message"),
    [
        (PRS_MATCH_KIND, lambda r: r.pop("effect_counts"), {}, "effect_counts is missing"),
        (
            PRS_MATCH_KIND,
            lambda r: r.update({"effect_counts_withheld": np.zeros(R, np.int64)}),
            {},
            "effect_counts_withheld must have shape",
        ),
        (PRS_STATS_KIND, lambda r: None, {}, "roc flag"),
        (
            PRS_STATS_KIND,
            lambda r: r.update({"roc_released": np.ones((T - 1, 2), bool)}),
            {"roc": np.array([True])},
            "roc_released must have shape",
        ),
        (
            PRS_STATS_KIND,
            lambda r: r.pop("roc_counts"),
            {"roc": np.array([True])},
            "case/control",
        ),
        (
            PRS_CALIBRATION_KIND,
            lambda r: r.update({"calibration": np.zeros((3, 2))}),
            {},
            "calibration must have shape",
        ),
    ],
)
def test_forms__malformed_reply_is_refused(
    kind: str, edit: Callable[[NamedArrays], object], inputs: NamedArrays, message: str
) -> None:
    rng = np.random.default_rng(3)
    reply = {
        PRS_MATCH_KIND: _match_reply(rng),
        PRS_STATS_KIND: _stats_reply(rng, 1.0),
        PRS_CALIBRATION_KIND: {
            "calibration": np.zeros((4, 3)),
            "calibration_suppressed": np.zeros(4, bool),
        },
    }[kind]
    edit(reply)
    with pytest.raises(ValueError, match=message):
        SUMMABLE_FORMS[kind](reply, inputs)


def test_prs__admitted_in_exact_mode() -> None:
    assert "prs" in secure_analysis_kinds()
