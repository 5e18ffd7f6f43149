"""The survival summable forms: their sum over sites pools as the per-site pooling did.

The coordinator used to take each site's ``km_counts`` (counts with withheld
cells at -1, a ``suppressed`` mask, a ``merged`` mask when the site's policy
coarsens the grid), put every site's counts on the common grid and add them
up, and to add the sites' ``cox_step`` sums one by one; now it receives only
the sum of each site's summable form (:mod:`genofed.common.wire.survival`).
These tests build replies as the site does and check that the two give the
same curves' counts, the same withheld cells and the same Cox sums, that the
forms' shapes depend only on the study and the request, and that ``run_km``
and ``run_cox`` never ask for a site's arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genofed.common.messages import Reply
from genofed.common.study import AnalysisSpec, study_from_mapping
from genofed.common.wire.records import NamedArrays
from genofed.common.wire.summable import secure_analysis_kinds, summed
from genofed.common.wire.survival import (
    COX_STEP_KIND,
    KM_COUNTS_KIND,
    SUMMABLE_FORMS,
    SUPPRESSED_VALUE,
    withheld_cells,
)
from genofed.coordinator.combine.survival import PooledCounts, pool_counts, pool_sums
from genofed.coordinator.protocols.job import Answer, Pooled
from genofed.coordinator.protocols.survival import run_cox, run_km
from genofed.site_agent.requests.survival import SurvivalSamples, _km_counts
from genofed.site_agent.stats.survival import cox_derivatives

km_form = SUMMABLE_FORMS[KM_COUNTS_KIND]
cox_form = SUMMABLE_FORMS[COX_STEP_KIND]
GRID = [float(t) for t in range(30, 1230, 30)]  # 40 monthly times


def _spec(**params: object) -> AnalysisSpec:
    analysis = {"kind": "km", "time": "T", "event": "E", "grid": GRID, **params}
    study = study_from_mapping({"study": {"name": "t"}, "analysis": [analysis]}, path=Path("t"))
    return study.analyses[0]


SPEC = _spec(group="G", levels=[1, 2, 3])


def _site_reply(rng: np.random.Generator, min_cell: int, step: float) -> NamedArrays:
    """A ``km_counts`` reply as the site builds it, for random times, events and groups."""
    n = int(rng.integers(0, 80))
    samples = SurvivalSamples(
        time=rng.exponential(500.0, size=n),
        event=rng.random(n) < 0.6,
        columns=rng.integers(1, 4, size=(n, 1)).astype(np.float64),
    )
    return _km_counts(SPEC, samples, min_cell, step)


def _old_coarsen(
    counts: tuple[np.ndarray, np.ndarray, np.ndarray], merged: np.ndarray, kept: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The protocol's former per-site move onto the common grid."""
    n_risk, n_event, suppressed = counts
    ends = np.flatnonzero(kept)
    starts = np.concatenate([[0], ends[:-1] + 1])
    g = n_risk.shape[0]
    out_risk = np.zeros((g, len(ends)), dtype=np.int64)
    out_event = np.zeros((g, len(ends)), dtype=np.int64)
    out_hidden = np.zeros((g, len(ends)), dtype=np.bool_)
    for k, (a, b) in enumerate(zip(starts, ends, strict=True)):
        cols = np.arange(a, b + 1)
        first = cols[~merged[cols]][0]
        hidden = suppressed[:, cols].any(axis=1)
        out_hidden[:, k] = hidden
        out_risk[:, k] = np.where(hidden, SUPPRESSED_VALUE, n_risk[:, first])
        out_event[:, k] = np.where(
            hidden, SUPPRESSED_VALUE, np.where(suppressed[:, cols], 0, n_event[:, cols]).sum(1)
        )
    return out_risk, out_event, out_hidden


def _old_pooling(
    replies: Sequence[NamedArrays], j: int = len(GRID), g: int = 3
) -> tuple[PooledCounts, np.ndarray, int]:
    """The former pooling: counts, the common grid and the cells the sites withheld."""
    released = [(r["n_risk"], r["n_event"], r["suppressed"]) for r in replies]
    merged = [r.get("merged", np.zeros(j, dtype=np.bool_)) for r in replies]
    kept = ~np.any(merged, axis=0)
    if not kept.all():
        released = [_old_coarsen(r, m, kept) for r, m in zip(released, merged, strict=True)]
    pooled = pool_counts(released, (g, int(kept.sum())))
    return pooled, kept, int(sum(int(s.sum()) for _, _, s in released))


def _same_known(got: PooledCounts, want: PooledCounts) -> None:
    """Equal where known (the only cells the outputs show), and known in the same cells."""
    np.testing.assert_array_equal(got.known, want.known)
    np.testing.assert_array_equal(got.n_risk[got.known], want.n_risk[want.known])
    np.testing.assert_array_equal(got.n_event[got.known], want.n_event[want.known])
    assert got.n_risk.dtype == np.int64 and got.n_event.dtype == np.int64


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_sites=st.integers(1, 5),
    cells=st.lists(st.sampled_from([0, 3, 8, 30]), min_size=5, max_size=5),
    steps=st.lists(st.sampled_from([0.0, 0.0, 50.0, 100.0, 200.0]), min_size=5, max_size=5),
)
def test_km_form__sum_over_sites_pools_as_the_per_site_pooling(
    seed: int, n_sites: int, cells: list[int], steps: list[float]
) -> None:
    rng = np.random.default_rng(seed)
    replies = [_site_reply(rng, cells[i], steps[i]) for i in range(n_sites)]
    total = summed([km_form(r, {}) for r in replies], [f"s{i}" for i in range(n_sites)])
    got, kept = pool_sums(total["n_risk"], total["n_event"], total["suppressed"], total["merged"])
    want, want_kept, want_withheld = _old_pooling(replies)
    np.testing.assert_array_equal(kept, want_kept)
    _same_known(got, want)
    runs, span = total["suppressed_runs"], total["suppressed_span"]
    assert withheld_cells(runs, span, kept) == want_withheld


def test_km_form__a_site_hiding_several_merged_cells_counts_once_per_common_cell() -> None:
    """Withheld cells on the common grid, when one site's run spans times another merged."""
    j = 6
    fine = {
        "n_risk": np.array([[20, 15, -1, -1, -1, 0]]),
        "n_event": np.array([[2, 1, -1, -1, -1, 0]]),
        "suppressed": np.array([[False, False, True, True, True, False]]),
    }
    coarse = {  # keeps times 1, 3 and 5 only
        "n_risk": np.array([[0, 30, 0, 25, 0, 20]]),
        "n_event": np.array([[0, 3, 0, 2, 0, 1]]),
        "suppressed": np.zeros((1, j), dtype=np.bool_),
        "merged": np.array([True, False, True, False, True, False]),
    }
    replies = [fine, coarse]
    total = summed([km_form(r, {}) for r in replies], ["a", "b"])
    got, kept = pool_sums(total["n_risk"], total["n_event"], total["suppressed"], total["merged"])
    assert kept.tolist() == [False, True, False, True, False, True]
    # the common cells (.., t1], (t1, t3], (t3, t5]: the first site hid the last two
    assert got.known.tolist() == [[True, False, False]]
    assert got.n_risk[0, 0] == 50 and got.n_event[0, 0] == 6
    want_withheld = 2  # not 3: its cells at t2 and t3 are one cell of the common grid
    assert withheld_cells(total["suppressed_runs"], total["suppressed_span"], kept) == 2
    want, _, old_withheld = _old_pooling(replies, j, 1)
    assert old_withheld == want_withheld
    _same_known(got, want)


def test_km_form__shapes_fixed_by_the_study_not_the_data() -> None:
    rng = np.random.default_rng(1)
    layouts = set()
    for min_cell, step in ((0, 0.0), (10, 0.0), (1000, 0.0), (0, 100.0), (30, 200.0)):
        form = km_form(_site_reply(rng, min_cell, step), {})
        layouts.add(tuple(sorted((n, a.shape, a.dtype.str) for n, a in form.items())))
    assert len(layouts) == 1
    (layout,) = layouts
    shapes = {n: s for n, s, _ in layout}
    assert shapes == {
        "n_risk": (3, 40),
        "n_event": (3, 40),
        "suppressed": (3, 40),
        "suppressed_runs": (3,),
        "suppressed_span": (3, 40),
        "merged": (40,),
    }
    empty = SurvivalSamples(np.zeros(0), np.zeros(0, dtype=bool), np.zeros((0, 1)))
    form = km_form(_km_counts(SPEC, empty, 10, 0.0), {})  # nobody at this site: zeros
    assert all(a.shape == shapes[n] and not a.any() for n, a in form.items())


def _valid() -> NamedArrays:
    return {
        "n_risk": np.array([[10, 8, -1]]),
        "n_event": np.array([[2, 1, -1]]),
        "suppressed": np.array([[False, False, True]]),
    }


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r.pop("n_event"), "n_event is missing"),
        (lambda r: r.update({"n_risk": np.array([10, 8, 0])}), "n_risk must be a"),
        (lambda r: r.update({"n_event": np.zeros((1, 2), dtype=np.int64)}), "shape"),
        (lambda r: r.update({"suppressed": np.zeros((1, 3), dtype=np.int64)}), "suppressed"),
        (lambda r: r.update({"n_risk": np.array([[10, 8, 0]])}), "must hold -1"),
        (lambda r: r.update({"n_event": np.array([[11, 1, -1]])}), "events <= at risk"),
        (lambda r: r.update({"n_risk": np.array([[10, 8.0, -1]])}), "n_risk must be"),
        (lambda r: r.update({"merged": np.array([False, False, True])}), "last time"),
        (lambda r: r.update({"merged": np.array([True, False, False])}), "merged km grid"),
        (lambda r: r.update({"merged": np.array([0, 0, 0])}), "merged must have"),
    ],
)
def test_km_form__malformed_reply_is_refused(
    edit: Callable[[NamedArrays], object], message: str
) -> None:
    reply = _valid()
    edit(reply)
    with pytest.raises(ValueError, match=message):
        km_form(reply, {})


def _cox_site(rng: np.random.Generator, n: int, p: int) -> SurvivalSamples:
    return SurvivalSamples(
        time=rng.integers(1, 40, size=n).astype(np.float64),  # ties
        event=rng.random(n) < 0.5,
        columns=rng.normal(size=(n, p)),
    )


def _cox_reply(s: SurvivalSamples, beta: np.ndarray) -> NamedArrays:
    d = cox_derivatives(s.time, s.event, s.columns, beta, "efron")
    return {"loglik": np.array([d.loglik]), "grad": d.grad, "hess": d.hess}


def test_cox_form__sum_equals_the_site_by_site_sum_and_checks_shapes() -> None:
    rng = np.random.default_rng(3)
    p = 3
    beta = rng.normal(size=p) * 0.1
    replies = [_cox_reply(_cox_site(rng, n, p), beta) for n in (30, 50, 70)]
    total = summed([cox_form(r, {"beta": beta}) for r in replies], ["a", "b", "c"])
    for name in ("loglik", "grad", "hess"):
        before = np.zeros_like(replies[0][name])
        for r in replies:  # the protocol's former loop, in site order
            before += r[name]
        # the exact sum, rounded once: at most the float loop's last-place error away
        np.testing.assert_allclose(total[name], before, rtol=1e-14, atol=1e-300)
        assert total[name].shape == before.shape and total[name].dtype == np.float64
    with pytest.raises(ValueError, match=r"hess must have shape \(3, 3\)"):
        cox_form({**replies[0], "hess": np.zeros((2, 2))}, {"beta": beta})
    with pytest.raises(ValueError, match="grad must have shape"):
        cox_form({**replies[0], "grad": np.zeros(3, dtype=np.int64)}, {"beta": beta})
    with pytest.raises(ValueError, match="loglik is missing"):
        cox_form({"grad": replies[0]["grad"], "hess": replies[0]["hess"]}, {"beta": beta})
    with pytest.raises(ValueError, match="beta"):
        cox_form(replies[0], {})


def test_survival__admitted_in_exact_mode() -> None:
    assert {"km", "cox"} <= secure_analysis_kinds()


def _never(kind: str, ident: str, inputs: Sequence[NamedArrays]) -> list[Answer]:
    raise AssertionError("the protocol asked for the sites' own arrays")


def test_run_km__curves_from_the_sums_only(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    replies = [_site_reply(rng, 8, 0.0), _site_reply(rng, 0, 100.0), _site_reply(rng, 3, 0.0)]
    sites = ["site-a", "site-b", "site-c"]
    asked: list[str] = []

    def ask_sum(kind: str, ident: str, inputs: Sequence[NamedArrays]) -> Pooled:
        asked.append(kind)
        total = summed(
            [SUMMABLE_FORMS[kind](r, x) for r, x in zip(replies, inputs, strict=True)], sites
        )
        return Pooled([Reply(site=s) for s in sites], total, sites)

    files, headline = run_km(SPEC, sites, tmp_path, _never, ask_sum=ask_sum)
    assert asked == [KM_COUNTS_KIND]
    assert files[:2] == ["km.tsv", "logrank.tsv"]
    want, kept, withheld = _old_pooling(replies)
    assert headline["cells withheld by sites"] == withheld
    assert headline["events"] == int(want.n_event[want.known].sum())
    rows = [r.split("\t") for r in (tmp_path / "km.tsv").read_text().splitlines()[1:]]
    assert len(rows) == 3 * int(kept.sum())
    shown = np.cumprod(want.known, axis=1).astype(bool)
    expected = [
        [str(want.n_risk[g, k]), str(want.n_event[g, k])] if shown[g, k] else ["SUPPRESSED"] * 2
        for g in range(3)
        for k in range(int(kept.sum()))
    ]
    assert [r[2:4] for r in rows] == expected
    assert shown.any() and not shown.all()


def test_run_cox__every_round_a_sum(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    cohorts = [_cox_site(rng, n, 2) for n in (40, 60, 80)]
    sites = ["site-a", "site-b", "site-c"]
    asked: list[str] = []

    def ask_sum(kind: str, ident: str, inputs: Sequence[NamedArrays]) -> Pooled:
        asked.append(kind)
        forms = [
            SUMMABLE_FORMS[kind](_cox_reply(c, x["beta"]), x)
            for c, x in zip(cohorts, inputs, strict=True)
        ]
        return Pooled([Reply(site=s) for s in sites], summed(forms, sites), sites)

    study = study_from_mapping(
        {
            "study": {"name": "t"},
            "analysis": [{"kind": "cox", "time": "T", "event": "E", "covariates": ["A", "B"]}],
        },
        path=Path("t"),
    )
    files, headline = run_cox(study.analyses[0], sites, tmp_path, _never, ask_sum=ask_sum)
    assert files == ["cox.tsv"]
    assert asked and set(asked) == {COX_STEP_KIND} and headline["rounds"] == len(asked)
