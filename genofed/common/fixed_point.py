"""Fixed-point limbs: real and integer arrays through SecAgg+'s integer sum, exactly.

Flower's SecAgg+ with GenoFed's settings (:mod:`genofed.common.secure_sum`)
adds integer vectors exactly, element by element, as long as each site's
element lies within ``±CLIPPING_RANGE`` (2**20). A real-valued statistic
(a Gram matrix, a score, a log-likelihood) is carried as a fixed-point
integer ``round(x * 2**FRAC_BITS)`` written in base ``2**LIMB_BITS``:

* the limbs are the digits of the value's magnitude, each with the value's
  sign (integers: two's-complement digits, the top limb signed), so every
  limb lies inside the clipping range;
* each limb is summed over the sites *separately* by SecAgg+ (no limb sum
  can wrap: it is below ``n_sites * 2**21`` and SecAgg+ works modulo 2**32);
* the coordinator propagates the carries in 64-bit integers and reads the
  exact fixed-point sum, which it converts to float64 once.

So the only rounding is each site's ``round(x * 2**FRAC_BITS)`` (absolute
error at most ``2**-(FRAC_BITS + 1)`` per site and element, about 7e-24)
and the final conversion to float64 (a few units in the last place). A site refuses
(``VALUE_OUT_OF_RANGE``) a value that is not finite or whose magnitude
reaches :data:`MAX_FLOAT`; nothing is ever clipped or wrapped.

Integer arrays (counts, flags) are carried exactly in :data:`INT_LIMBS`
limbs of the same base, any int64 value.

**Scaled reals.** A real array whose magnitude both sides know a bound for
(``|x| < 2**e``, the bound from pooled public sums: PCA's products, see
:mod:`genofed.common.wire.pca`) is carried in :data:`SCALED_LIMBS` limbs
as ``round(x * 2**(79 - e))``: 80 bits spent on the range the values can
take rather than on 2**-76 .. 2**60, a resolution of ``2**(e - 79)``
(``e = 20``: 1.7e-18, finer than float64's own rounding of any value above
1e-2). The exponent travels in the layout (``name:f@e:shape``); a site
refuses a value at or beyond ``2**e`` (``VALUE_OUT_OF_RANGE``) as it
refuses one beyond :data:`MAX_FLOAT`, so nothing is clipped either way.

Why by hand: Flower's quantizer is built for model weights (stochastic
rounding to a grid of ``quantization_range`` steps over the clipping range)
and cannot carry 64 bits; neither Flower nor a well-kept library offers a
multi-limb exact encoding for it. The arithmetic is a few vectorized numpy
operations, checked by property tests (tests/unit/common/test_fixed_point.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

#: Bits per limb: every limb a site sends lies in ``(-2**LIMB_BITS, 2**LIMB_BITS)``.
LIMB_BITS = 20
_BASE = float(1 << LIMB_BITS)
_MASK = (1 << LIMB_BITS) - 1
#: Limbs of a real value: 140 bits.
FLOAT_LIMBS = 7
#: Fractional bits of a real value: a resolution of 2**-76 (1.3e-23), so a
#: value of magnitude 1e-9 still keeps 14 significant digits.
FRAC_BITS = 76
#: Largest magnitude a site may encode (2**60, about 1.2e18); the sum over sites may exceed it.
MAX_FLOAT = float(2**60)
#: Limbs of an integer value: 80 bits, any int64.
INT_LIMBS = 4
#: Limbs of a scaled real value (``|x| < 2**exponent``): 80 bits.
SCALED_LIMBS = 4
#: Exponents a scaled field may have (beyond them the generic encoding is as good).
MIN_EXPONENT, MAX_EXPONENT = -60, 60


def scaled_frac_bits(exponent: int) -> int:
    """Fractional bits of a scaled real with ``|x| < 2**exponent``: the top limb stays in range."""
    return SCALED_LIMBS * LIMB_BITS - 1 - exponent


@dataclass(frozen=True)
class Field:
    """One array of a fixed-point vector: its name, ``"f"`` (real) or ``"i"`` (integer), shape."""

    name: str
    kind: str
    shape: tuple[int, ...]
    #: a scaled real's bound ``|x| < 2**exponent`` (None: the generic real encoding)
    exponent: int | None = None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def limbs(self) -> int:
        if self.kind != "f":
            return INT_LIMBS
        return FLOAT_LIMBS if self.exponent is None else SCALED_LIMBS

    @property
    def frac_bits(self) -> int:
        return FRAC_BITS if self.exponent is None else scaled_frac_bits(self.exponent)


#: The arrays of a vector, in order.
Layout = tuple[Field, ...]


#: Array name -> the exponent of its scaled encoding (real arrays only).
Exponents = Mapping[str, int]


def layout_of(arrays: Mapping[str, np.ndarray], exponents: Exponents | None = None) -> Layout:
    """The layout of ``arrays`` (sorted by name; booleans and integers are ``"i"``).

    A real array named in ``exponents`` is a scaled field with that exponent.
    """
    fields = []
    for name in sorted(arrays):
        kind = "i" if arrays[name].dtype.kind in "biu" else "f"
        exponent = (exponents or {}).get(name) if kind == "f" else None
        if exponent is not None and not MIN_EXPONENT <= exponent <= MAX_EXPONENT:
            raise ValueError(
                f"{name}'s scale exponent {exponent} lies outside {MIN_EXPONENT}..{MAX_EXPONENT}"
            )
        fields.append(Field(name, kind, tuple(arrays[name].shape), exponent))
    return tuple(fields)


def layout_text(layout: Layout) -> str:
    """``layout`` as one line (a reply fact): ``name:kind[@exponent]:d1xd2;...``."""
    return ";".join(
        f"{f.name}:{f.kind}{'' if f.exponent is None else f'@{f.exponent}'}:"
        f"{'x'.join(map(str, f.shape))}"
        for f in layout
    )


def layout_from_text(text: str) -> Layout:
    """The layout of :func:`layout_text`; ValueError on anything else."""
    fields = []
    for item in text.split(";") if text else []:
        name, kind, dims = item.split(":")
        kind, at, power = kind.partition("@")
        if kind not in ("f", "i") or not name or (at and kind != "f"):
            raise ValueError(f"bad layout field {item!r}")
        exponent = int(power) if at else None
        if exponent is not None and not MIN_EXPONENT <= exponent <= MAX_EXPONENT:
            raise ValueError(f"bad layout field {item!r}")
        shape = tuple(int(d) for d in dims.split("x")) if dims else ()
        if any(d < 0 for d in shape):
            raise ValueError(f"bad layout field {item!r}")
        fields.append(Field(name, kind, shape, exponent))
    return tuple(fields)


def vector_length(layout: Layout) -> int:
    """How many limbs a vector of ``layout`` has."""
    return sum(f.size * f.limbs for f in layout)


def range_problem(
    arrays: Mapping[str, np.ndarray], exponents: Exponents | None = None
) -> str | None:
    """Why ``arrays`` cannot be encoded without clipping, or None."""
    for name in sorted(arrays):
        a = np.asarray(arrays[name])
        if a.dtype.kind == "u" and a.dtype.itemsize == 8 and a.size and int(a.max()) >= 2**63:
            return f"{name} holds an unsigned value beyond the int64 range"
        if a.dtype.kind in "biu" or a.size == 0:
            continue
        if a.dtype.kind != "f":
            return f"{name} has dtype {a.dtype}, which a secure sum cannot carry"
        if not np.all(np.isfinite(a)):
            return f"{name} holds a value that is not finite (NaN or infinity)"
        biggest = float(np.abs(a).max())
        exponent = (exponents or {}).get(name)
        if exponent is not None and biggest >= 2.0**exponent:
            return (
                f"{name} holds a value of magnitude {biggest:.3g}, at or beyond the bound "
                f"2**{exponent} its scaled encoding was given; nothing is sent rather than a "
                "clipped value (the bound comes from the pooled counts: are the sites on the "
                "same software version?)"
            )
        if biggest >= MAX_FLOAT:
            return (
                f"{name} holds a value of magnitude {biggest:.3g}, beyond the secure sum's "
                f"fixed-point range ({MAX_FLOAT:.3g}); nothing is sent rather than a clipped value"
            )
    return None


def encode(
    arrays: Mapping[str, np.ndarray], exponents: Exponents | None = None
) -> tuple[np.ndarray, Layout]:
    """``arrays`` as one vector of limbs (float64 holding integers) and its layout.

    Real arrays named in ``exponents`` are scaled fields (module docstring).
    Raises ValueError with :func:`range_problem`'s reason when a value cannot be carried.
    """
    problem = range_problem(arrays, exponents)
    if problem is not None:
        raise ValueError(problem)
    layout = layout_of(arrays, exponents)
    parts = [
        _float_limbs(np.asarray(arrays[f.name], dtype=np.float64).ravel(), f.limbs, f.frac_bits)
        if f.kind == "f"
        else _int_limbs(np.asarray(arrays[f.name]).astype(np.int64).ravel())
        for f in layout
    ]
    vector = np.concatenate([p.ravel() for p in parts]) if parts else np.zeros(0)
    return vector, layout


def decode(total: np.ndarray, layout: Layout) -> dict[str, np.ndarray]:
    """The arrays whose per-site vectors add up to ``total`` (limb sums, integers).

    Real arrays come back as float64, integer arrays as int64. Raises
    ValueError when ``total`` does not fit ``layout`` or an integer sum
    leaves the int64 range.
    """
    limbs = np.asarray(total)
    if limbs.dtype.kind == "f":
        rounded = np.rint(limbs)
        if limbs.size and float(np.abs(limbs - rounded).max()) > 1e-6:
            raise ValueError("the limb sums are not integers")
        limbs = rounded.astype(np.int64)
    limbs = limbs.astype(np.int64, copy=False)
    if limbs.ndim != 1 or limbs.size != vector_length(layout):
        raise ValueError(
            f"the secure sum has {limbs.size} limbs, the layout {vector_length(layout)}"
        )
    out: dict[str, np.ndarray] = {}
    at = 0
    for f in layout:
        n = f.size * f.limbs
        part = _carried(limbs[at : at + n].reshape(f.limbs, f.size))
        at += n
        value = _float_value(part, f.frac_bits) if f.kind == "f" else _int_value(part, f.name)
        out[f.name] = value.reshape(f.shape)
    return out


def _float_limbs(x: np.ndarray, n_limbs: int = FLOAT_LIMBS, frac: int = FRAC_BITS) -> np.ndarray:
    """Limbs (n_limbs, n) of round(x * 2**frac): the digits of its magnitude, signed.

    Digits are taken from the magnitude (for a negative value, the remainder
    below a power of two would need more bits than float64 has); each limb
    carries the value's sign, so it lies in ``(-2**LIMB_BITS, 2**LIMB_BITS)``.
    """
    magnitude = np.rint(np.ldexp(np.abs(x), frac))
    sign = np.sign(x)
    limbs = np.empty((n_limbs, x.size))
    for level in range(n_limbs - 1, 0, -1):
        scale = float(2 ** (LIMB_BITS * level))
        digit = np.floor(magnitude / scale)  # exact: division by a power of two
        limbs[level] = sign * digit
        magnitude = magnitude - digit * scale  # exact: the bits below 2**(20 * level)
    limbs[0] = sign * magnitude
    return limbs


def _int_limbs(x: np.ndarray) -> np.ndarray:
    limbs = np.empty((INT_LIMBS, x.size))
    for level in range(INT_LIMBS - 1):
        limbs[level] = (x >> (LIMB_BITS * level)) & _MASK
    limbs[INT_LIMBS - 1] = x >> (LIMB_BITS * (INT_LIMBS - 1))
    return limbs


def _carried(limbs: np.ndarray) -> np.ndarray:
    """Limb sums with carries propagated: every limb but the top in ``[0, 2**LIMB_BITS)``."""
    out = limbs.copy()
    for level in range(len(out) - 1):
        carry = out[level] >> LIMB_BITS
        out[level] &= _MASK
        out[level + 1] += carry
    return out


def _float_value(limbs: np.ndarray, frac: int = FRAC_BITS) -> np.ndarray:
    value = np.zeros(limbs.shape[1])
    for level in range(len(limbs) - 1, -1, -1):  # most significant first: a few ulps at most
        value += np.ldexp(limbs[level].astype(np.float64), LIMB_BITS * level - frac)
    return value


def _int_value(limbs: np.ndarray, name: str) -> np.ndarray:
    top = limbs[-1]
    shift = LIMB_BITS * (len(limbs) - 1)
    if top.size and (int(top.max()) >= 2 ** (63 - shift) or int(top.min()) < -(2 ** (63 - shift))):
        raise ValueError(f"the secure sum of {name} leaves the int64 range")
    value: np.ndarray = top << shift
    for level in range(len(limbs) - 1):
        value = value + (limbs[level] << (LIMB_BITS * level))
    return value


__all__ = [
    "FLOAT_LIMBS",
    "FRAC_BITS",
    "INT_LIMBS",
    "LIMB_BITS",
    "MAX_EXPONENT",
    "MAX_FLOAT",
    "MIN_EXPONENT",
    "SCALED_LIMBS",
    "Exponents",
    "Field",
    "Layout",
    "decode",
    "encode",
    "layout_from_text",
    "layout_of",
    "layout_text",
    "range_problem",
    "scaled_frac_bits",
    "vector_length",
]
