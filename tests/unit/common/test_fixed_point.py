"""Fixed-point limbs: per-site vectors added limb by limb decode to the exact sum."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genofed.common.fixed_point import (
    FRAC_BITS,
    LIMB_BITS,
    MAX_FLOAT,
    SCALED_LIMBS,
    decode,
    encode,
    layout_from_text,
    layout_text,
    range_problem,
)

reals = st.floats(min_value=-1e15, max_value=1e15, allow_nan=False, allow_subnormal=True)
ints = st.integers(min_value=-(2**40), max_value=2**40)


def _exact_fixed(x: float) -> Fraction:
    """round(x * 2**FRAC_BITS) / 2**FRAC_BITS, in exact arithmetic (ties to even)."""
    return Fraction(round(Fraction(x) * 2**FRAC_BITS), 2**FRAC_BITS)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(reals, min_size=4, max_size=4), min_size=1, max_size=7), st.data())
def test_sum_of_encoded_sites__decodes_to_the_exact_fixed_point_sum(
    sites: list[list[float]], data: st.DataObject
) -> None:
    counts = [data.draw(st.lists(ints, min_size=3, max_size=3)) for _ in sites]
    vectors = []
    layout = None
    for real, count in zip(sites, counts, strict=True):
        vector, layout = encode(
            {"x": np.array(real).reshape(2, 2), "n": np.array(count, dtype=np.int64)}
        )
        # every limb is an integer inside SecAgg+'s clipping range
        assert np.all(vector == np.rint(vector))
        assert np.abs(vector).max(initial=0) < 2**LIMB_BITS
        vectors.append(vector)
    assert layout is not None
    got = decode(np.sum(vectors, axis=0), layout_from_text(layout_text(layout)))
    exact = [sum(_exact_fixed(s[i]) for s in sites) for i in range(4)]
    for value, want in zip(got["x"].ravel(), exact, strict=True):
        # the conversion of the exact sum to float64 costs a few units in the last place
        assert abs(Fraction(float(value)) - want) <= 4 * abs(want) * Fraction(2) ** -53
    assert got["n"].tolist() == [sum(c[i] for c in counts) for i in range(3)]
    assert got["n"].dtype == np.int64 and got["x"].dtype == np.float64


def test_resolution_and_relative_precision() -> None:
    x = np.array([1.0 / 3.0, -2.5e-9, 123456.789, 7.0e13])
    vector, layout = encode({"x": x})
    back = decode(vector, layout)["x"]
    assert np.all(np.abs(back - x) <= 2.0 ** -(FRAC_BITS + 1) + np.abs(x) * 2**-51)
    assert np.allclose(back, x, rtol=1e-14, atol=0)


@pytest.mark.parametrize(
    ("value", "reason"),
    [(np.nan, "not finite"), (np.inf, "not finite"), (MAX_FLOAT, "fixed-point range")],
)
def test_values_that_cannot_be_carried_are_refused_not_clipped(value: float, reason: str) -> None:
    arrays = {"score": np.array([1.0, value])}
    problem = range_problem(arrays)
    assert problem is not None and reason in problem and "score" in problem
    with pytest.raises(ValueError, match=reason):
        encode(arrays)


def test_integer_sum_beyond_int64__refused_at_decode() -> None:
    big = np.array([2**62], dtype=np.int64)
    vector, layout = encode({"n": big})
    with pytest.raises(ValueError, match="int64"):
        decode(vector * 2, layout)


def test_decode__refuses_a_vector_of_the_wrong_length() -> None:
    vector, layout = encode({"x": np.ones(3)})
    with pytest.raises(ValueError, match="limbs"):
        decode(vector[:-1], layout)


def test_empty_and_scalar_arrays_round_trip() -> None:
    arrays = {"e": np.zeros((0, 3)), "s": np.float64(2.5).reshape(()), "b": np.array([True, False])}
    vector, layout = encode(arrays)
    back = decode(vector, layout_from_text(layout_text(layout)))
    assert back["e"].shape == (0, 3) and back["s"].shape == () and float(back["s"]) == 2.5
    assert back["b"].tolist() == [1, 0]


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=-20, max_value=40),
    st.lists(st.lists(st.floats(-1.0, 1.0), min_size=5, max_size=5), min_size=1, max_size=7),
)
def test_scaled_field__four_limbs_decode_to_the_exact_fixed_point_sum(
    exponent: int, sites: list[list[float]]
) -> None:
    frac = SCALED_LIMBS * LIMB_BITS - 1 - exponent
    bound = 2.0**exponent
    vectors = []
    layout = None
    for site in sites:
        x = np.nextafter(np.array(site) * bound, 0.0)  # strictly inside the bound
        vector, layout = encode({"p": x}, {"p": exponent})
        assert vector.size == SCALED_LIMBS * x.size
        assert np.all(vector == np.rint(vector)) and np.abs(vector).max() < 2**LIMB_BITS
        vectors.append((x, vector))
    assert layout is not None and layout_text(layout) == f"p:f@{exponent}:5"
    got = decode(np.sum([v for _, v in vectors], axis=0), layout_from_text(layout_text(layout)))
    for i, value in enumerate(got["p"]):
        want = sum(Fraction(round(Fraction(float(x[i])) * 2**frac), 2**frac) for x, _ in vectors)
        assert abs(Fraction(float(value)) - want) <= 4 * abs(want) * Fraction(2) ** -53
        # and the fixed-point sum is within the resolution of the true sum, per site
        true = sum(Fraction(float(x[i])) for x, _ in vectors)
        assert abs(want - true) <= len(vectors) * Fraction(1, 2 ** (frac + 1))


def test_scaled_field__a_value_at_the_bound_is_refused_not_clipped() -> None:
    x = np.array([0.5, -8.0, 3.0])
    assert range_problem({"p": x}, {"p": 4}) is None
    assert range_problem({"p": x}, {"p": 3}) is not None and "2**3" in str(
        range_problem({"p": x}, {"p": 3})
    )
    with pytest.raises(ValueError, match="bound 2\\*\\*3"):
        encode({"p": x}, {"p": 3})
    with pytest.raises(ValueError, match="outside"):
        encode({"p": x}, {"p": 99})
    # integer arrays and unnamed real arrays keep their encodings
    vector, layout = encode({"p": x, "n": np.array([3]), "q": x}, {"p": 4})
    assert layout_text(layout) == "n:i:1;p:f@4:3;q:f:3"
    assert vector.size == 4 + 4 * 3 + 7 * 3
    for bad in ("p:i@4:3", "p:f@x:3", "p:f@99:3"):
        with pytest.raises(ValueError):
            layout_from_text(bad)
