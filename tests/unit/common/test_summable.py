"""``summed``: the plain-mode sum is the secure sum, bit for bit; the glm forms pool as before.

In ``plain`` mode the coordinator adds the sites' summable forms itself; in
``exact`` mode SecAgg+ adds their fixed-point encodings and the coordinator
decodes the total. Both must hand the pooling code the same numbers, or an
iterative fit (logistic Newton, Firth) could take another round in one mode
than in the other.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genofed.common.fixed_point import decode, encode
from genofed.common.wire.glm import GLM_LOGISTIC_KIND, GLM_STATS_KIND, SUMMABLE_FORMS
from genofed.common.wire.summable import secure_analysis_kinds, summed

finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_subnormal=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(finite, min_size=4, max_size=4), min_size=3, max_size=6))
def test_summed__equals_the_decoded_secure_sum_and_is_correctly_rounded(
    rows: list[list[float]],
) -> None:
    forms = [{"x": np.array(r), "n": np.arange(4, dtype=np.int64) * i} for i, r in enumerate(rows)]
    sites = [f"s{i}" for i in range(len(forms))]
    got = summed(forms, sites)
    limbs = sum(encode(f)[0] for f in forms)
    secure = decode(limbs, encode(forms[0])[1])
    np.testing.assert_array_equal(got["x"], secure["x"])  # the same bits as exact mode
    np.testing.assert_array_equal(got["n"], secure["n"])
    assert got["n"].dtype == np.int64
    for j in range(4):  # as close to the true sum as float64 allows, but the 2^-77 rounding
        exact = math.fsum(r[j] for r in rows)  # of each site's value (exact when >= 2^-23)
        slack = 4 * math.ulp(abs(exact)) + len(rows) * 2.0**-77
        assert abs(got["x"][j] - exact) <= slack


def test_summed__values_beyond_the_fixed_point_range_are_added_as_floats() -> None:
    forms = [{"x": np.array([1e30, np.nan])}, {"x": np.array([1.0, 2.0])}, {"x": np.zeros(2)}]
    got = summed(forms, ["a", "b", "c"])
    assert got["x"][0] == 1e30 + 1.0 and np.isnan(got["x"][1])


def test_summed__a_site_with_other_arrays_is_named() -> None:
    forms = [{"x": np.zeros(2)}, {"x": np.zeros(3)}]
    with pytest.raises(ValueError, match=r"b: x has shape \(3,\)"):
        summed(forms, ["a", "b"])
    with pytest.raises(ValueError, match="b sent arrays"):
        summed([{"x": np.zeros(2)}, {"y": np.zeros(2)}], ["a", "b"])


def _glm_reply(rng: np.random.Generator, v: int, q: int, missing: list[int]) -> dict:
    t = q * (q + 1) // 2
    zz = rng.normal(size=t)
    zz[0] = 40.0
    bits = np.zeros(v, dtype=np.uint8)
    bits[missing] = 1
    miss = rng.normal(size=(len(missing), t)).astype(np.float32)
    miss[:, 0] = 2.0
    return {
        "gz": rng.normal(size=(v, q)),
        "gg": rng.normal(size=v),
        "zz": zz,
        "miss_rows": np.packbits(bits),
        "miss_zz": miss,
        "withheld": np.packbits(np.eye(1, v, 0, dtype=np.uint8)[0]),
        "other_counts": np.zeros((0, 2), dtype=np.uint8),
    }


def test_glm_stats_form__dense_over_the_request_and_malformed_replies_named() -> None:
    rng = np.random.default_rng(1)
    inputs = {"variant_index": np.arange(9, dtype=np.int64)}
    form = SUMMABLE_FORMS[GLM_STATS_KIND](_glm_reply(rng, 9, 3, [2, 5]), inputs)
    assert {k: v.shape for k, v in form.items()} == {
        "gz": (9, 3),
        "gg": (9,),
        "zz": (6,),
        "missing": (9, 6),
        "called": (9,),
        "alt": (9,),
        "withheld": (9,),
    }
    assert form["called"].tolist() == [40, 40, 38, 40, 40, 38, 40, 40, 40]
    assert form["withheld"].tolist() == [1] + [0] * 8
    assert not form["missing"][[0, 1, 3, 4, 6, 7, 8]].any()
    bad = _glm_reply(rng, 9, 3, [2, 5])
    bad["miss_zz"] = bad["miss_zz"][:1]
    with pytest.raises(ValueError, match="miss_zz must have one row"):
        SUMMABLE_FORMS[GLM_STATS_KIND](bad, inputs)
    with pytest.raises(ValueError, match=r"gz must have shape \(4, k\+2\)"):
        SUMMABLE_FORMS[GLM_STATS_KIND](_glm_reply(rng, 9, 3, []), {"variant_index": np.arange(4)})


def test_glm_logistic_form__shapes_from_the_request() -> None:
    beta, firth = np.zeros((5, 3)), np.array([True, False, False, True, False])
    reply = {
        "grad": np.ones((5, 3)),
        "hess": np.ones((5, 6)),
        "loglik": np.ones(2),
        "third": np.ones((2, 10)),
    }
    got = SUMMABLE_FORMS[GLM_LOGISTIC_KIND](reply, {"beta": beta, "firth": firth})
    assert {k: v.shape for k, v in got.items()} == {k: v.shape for k, v in reply.items()}
    reply["third"] = np.ones((5, 10))
    with pytest.raises(ValueError, match=r"third must have shape \(2, 10\)"):
        SUMMABLE_FORMS[GLM_LOGISTIC_KIND](reply, {"beta": beta, "firth": firth})


def test_glm_and_pgx_run_in_exact_mode() -> None:
    assert {"glm", "pgx"} <= secure_analysis_kinds()


def test_pca_forms__dense_as_sent_and_malformed_replies_named() -> None:
    from genofed.common.wire import pca

    forms = pca.SUMMABLE_FORMS
    index = {"variant_index": np.arange(5, dtype=np.int64)}
    counts = forms[pca.PCA_COUNTS_KIND]({"genotype_counts": np.ones((5, 4), dtype=np.int64)}, index)
    assert counts["withheld"].tolist() == [0] * 5  # a site that withholds nothing sends zeros
    held = np.array([True, False, False, True, False])
    got = forms[pca.PCA_COUNTS_KIND](
        {"genotype_counts": counts["genotype_counts"], "withheld": held}, index
    )
    assert got["withheld"].tolist() == [1, 0, 0, 1, 0] and got["withheld"].dtype == np.int64
    with pytest.raises(ValueError, match=r"genotype_counts must have shape \(5, 4\)"):
        forms[pca.PCA_COUNTS_KIND]({"genotype_counts": np.ones((4, 4), dtype=np.int64)}, index)
    step = {**index, "wts": np.zeros((5, 3))}
    reply = {"a_t_u": np.ones((5, 3)), "gram": np.eye(3), "cross": np.eye(3)}
    assert forms[pca.PCA_ITERATE_KIND](reply, step)["a_t_u"].shape == (5, 3)
    reply["gram"] = np.full((3, 3), np.nan)
    with pytest.raises(ValueError, match="gram holds a value that is not finite"):
        forms[pca.PCA_ITERATE_KIND](reply, step)
    with pytest.raises(ValueError, match="window"):
        forms[pca.PCA_LD_KIND]({}, index)
    finish = forms[pca.PCA_FINISH_KIND](
        {"x_t_e": np.ones((5, 2))}, {**index, "transform": np.eye(3)[:, :2]}
    )
    assert finish["x_t_e"].shape == (5, 2)
    assert "pca" in secure_analysis_kinds()
