"""The summable form of each site reply: what the coordinator needs is the sum over sites.

Every analysis pools its sites' statistics by adding them up (DESIGN.md,
"Analyses: exact federated forms"), but a site's reply is not always dense:
``glm_stats`` sends the rows with missing calls as a bit mask and a sparse
block, for example. A **summable form** turns one site's reply (and the
request's inputs) into dense arrays, of shapes every site agrees on, whose
element-wise sum over the sites is everything the coordinator's pooling
uses. It is one pure function per request kind, used on both sides:

* ``plain`` mode: the coordinator applies it to each site's reply and adds
  the results up (:func:`summed`) through the same fixed-point encoding, so
  the pooling code is the same in both modes and so are its inputs, bit for
  bit (a float sum would differ from the exact one in the last place, and
  an iterative fit could then take another round);
* ``exact`` mode: each site applies it to its own reply, encodes the result
  in fixed point (:mod:`genofed.common.fixed_point`) and masks it with
  SecAgg+; the coordinator learns only the sum.

Each analysis's wire module holds its forms in ``SUMMABLE_FORMS`` (request
kind -> form); :data:`SUMMABLE_FORMS` here gathers them. An analysis runs
in the secure modes when every one of its request kinds has a form
(:func:`secure_analysis_kinds`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType

import numpy as np

from genofed.common.fixed_point import Exponents, decode, encode, layout_of, range_problem
from genofed.common.wire import glm as glm_wire
from genofed.common.wire import pca as pca_wire
from genofed.common.wire import pgx as pgx_wire
from genofed.common.wire import prs as prs_wire
from genofed.common.wire import survival as survival_wire
from genofed.common.wire import train as train_wire

NamedArrays = dict[str, np.ndarray]

#: One site's reply arrays and the request's inputs -> dense arrays to add up over sites.
SummableForm = Callable[[Mapping[str, np.ndarray], Mapping[str, np.ndarray]], NamedArrays]


def _gather() -> dict[str, SummableForm]:
    forms: dict[str, SummableForm] = {}
    for module in (glm_wire, pca_wire, pgx_wire, prs_wire, survival_wire, train_wire):
        forms.update(getattr(module, "SUMMABLE_FORMS", {}))
    return forms


#: Request kind -> its summable form.
SUMMABLE_FORMS: MappingProxyType[str, SummableForm] = MappingProxyType(_gather())


def _gather_exponents() -> dict[str, Callable[[Mapping[str, np.ndarray]], dict[str, int]]]:
    found: dict[str, Callable[[Mapping[str, np.ndarray]], dict[str, int]]] = {}
    for module in (glm_wire, pca_wire, pgx_wire, prs_wire, survival_wire, train_wire):
        found.update(getattr(module, "FIXED_POINT_EXPONENTS", {}))
    return found


_EXPONENTS = MappingProxyType(_gather_exponents())


def fixed_point_exponents(request_kind: str, inputs: Mapping[str, np.ndarray]) -> dict[str, int]:
    """The scale exponents the request's inputs give its reply's real arrays (often none).

    Both sides encode with them: the site its masked vector, the coordinator
    the plain replies it adds up. ValueError on malformed exponents.
    """
    exponents = _EXPONENTS.get(request_kind)
    return exponents(inputs) if exponents is not None else {}


#: Request kinds of each multi-round analysis kind.
ANALYSIS_REQUESTS: MappingProxyType[str, frozenset[str]] = MappingProxyType(
    {
        "glm": frozenset(glm_wire.GLM_REQUEST_KINDS),
        pca_wire.PCA_KIND: frozenset(pca_wire.PCA_REQUEST_KINDS),
        "pgx": frozenset(pgx_wire.PGX_REQUEST_KINDS),
        "prs": frozenset(prs_wire.PRS_REQUEST_KINDS),
        survival_wire.KM_KIND: frozenset({survival_wire.KM_COUNTS_KIND}),
        survival_wire.COX_KIND: frozenset({survival_wire.COX_STEP_KIND}),
        train_wire.TRAIN_KIND: frozenset(train_wire.TRAIN_REQUEST_KINDS),
    }
)


def secure_analysis_kinds() -> frozenset[str]:
    """The multi-round analysis kinds whose every request kind has a summable form."""
    return frozenset(
        kind
        for kind, requests in ANALYSIS_REQUESTS.items()
        if all(r in SUMMABLE_FORMS for r in requests)
    )


def summable_form(request_kind: str) -> SummableForm:
    """The form of ``request_kind``; KeyError names a kind that has none."""
    try:
        return SUMMABLE_FORMS[request_kind]
    except KeyError:
        raise KeyError(f"request kind {request_kind!r} has no summable form") from None


def summed(
    forms: Sequence[Mapping[str, np.ndarray]],
    sites: Sequence[str],
    exponents: Exponents | None = None,
) -> NamedArrays:
    """The sites' summable forms added up (integers stay integers), as SecAgg+ would.

    Each form is encoded in fixed point (:func:`genofed.common.fixed_point.encode`,
    with the request's scale ``exponents``),
    the limbs are added as integers and the total decoded: exactly the sum
    an ``exact`` study decodes from the masked vectors. When a site's values
    leave the fixed-point range (which an ``exact`` site would refuse to
    send), the floats are added in site order instead.

    Raises ValueError naming the first site whose arrays differ in names or
    shapes from the first site's: the sites and the coordinator disagree on
    the request.
    """
    if not forms:
        raise ValueError("no site replied")
    first = forms[0]
    total: NamedArrays = {
        name: np.array(a, dtype=np.int64 if a.dtype.kind in "biu" else np.float64, copy=True)
        for name, a in first.items()
    }
    for site, form in zip(sites[1:], forms[1:], strict=True):
        if set(form) != set(total):
            raise ValueError(f"{site} sent arrays {sorted(form)}, the first site {sorted(total)}")
        for name, value in form.items():
            if value.shape != total[name].shape:
                raise ValueError(
                    f"{site}: {name} has shape {value.shape}, the first site's {total[name].shape}"
                )
            total[name] += value
    if any(range_problem(form, exponents) is not None for form in forms):
        return total
    limbs = None
    for form in forms:
        vector, _ = encode(form, exponents)
        limbs = vector if limbs is None else limbs + vector
    return decode(limbs, layout_of(first, exponents)) if limbs is not None else total


__all__ = [
    "ANALYSIS_REQUESTS",
    "SUMMABLE_FORMS",
    "SummableForm",
    "fixed_point_exponents",
    "secure_analysis_kinds",
    "summable_form",
    "summed",
]
