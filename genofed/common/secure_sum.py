"""What both sides agree on for sums through Flower's SecAgg+ (``exact`` and ``distributed-dp``).

SecAgg+ (``flwr.server.workflow.SecAggPlusWorkflow`` with the client's
``secaggplus_mod``) sums float vectors after clipping each value to
``[-clipping_range, clipping_range]``, quantizing it to
``[0, quantization_range]`` and weighting it by ``num_examples / max_weight``;
the coordinator unmasks the *mean* of the dequantized vectors. With the
settings below the quantization step is exactly 1 and the weight exactly 1,
so an integer vector is carried without rounding, and ``mean * n`` rounded is
the exact integer sum (../shared/FLOWER_NOTES.md, "Secure aggregation and DP").

Values outside the clipping range would be clipped *silently* by Flower, so a
site checks its vector against :data:`CLIPPING_RANGE` and refuses
(``VALUE_OUT_OF_RANGE``) rather than send a clipped one; it also checks that
the coordinator configured the protocol with exactly these settings and with
at least :data:`MIN_SECURE_SITES` participants (``SECURE_AGGREGATION_SETTINGS``).

Range arithmetic: each quantized value lies in ``[0, 2 * CLIPPING_RANGE]``
(an ``int32`` in Flower's quantizer), and the masked sum is taken modulo
:data:`MODULUS_RANGE`, so ``n_sites * QUANTIZATION_RANGE < MODULUS_RANGE``
holds for up to 2,047 sites.

The genotype-counts request travels to each site inside the SecAgg+ fit
instruction (its config record), as the serialized ``AnalysisRequest`` plus
its input arrays, checked against the request's manifest like every other
GenoFed message (:func:`request_to_config`, :func:`request_from_config`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from genofed.common.errors import IntegrityError
from genofed.common.messages import Request
from genofed.common.wire.proto import request_from_bytes, request_to_bytes
from genofed.common.wire.records import NamedArrays, array_spec

#: Largest absolute value a site may put in the secure sum (Flower clips beyond it).
CLIPPING_RANGE = 2**20
#: ``2 * CLIPPING_RANGE``: a quantization step of exactly 1.
QUANTIZATION_RANGE = 2**21
#: Masks are drawn modulo this (Flower's maximum).
MODULUS_RANGE = 2**32
#: Weight of every site's vector: ``num_examples / max_weight`` = 1.
MAX_WEIGHT = 1.0
NUM_EXAMPLES = 1
#: Fewest sites a secure sum may have (the issue, DESIGN.md "Privacy"); with two,
#: each site could subtract its own vector from the sum and learn the other's.
MIN_SECURE_SITES = 3
#: Most sites the range arithmetic above allows.
MAX_SECURE_SITES = MODULUS_RANGE // QUANTIZATION_RANGE - 1

#: Fit-instruction config key holding the serialized request.
REQUEST_CONFIG_KEY = "genofed.request"
#: Prefix of the config keys holding the request's input arrays (raw C-order bytes).
INPUT_CONFIG_PREFIX = "genofed.input."
#: Field of the config record holding a serialized proto (as :mod:`genofed.common.wire.records`
#: encodes them); a site's reply rides beside its masked vector under ``REPLY_KEY``.
PROTO_FIELD = "proto"
#: Reply fact naming the arrays of an ``exact`` reply's masked vector, as
#: :func:`genofed.common.fixed_point.layout_text` writes them.
SECAGG_LAYOUT_FACT = "secagg_layout"
#: Name prefix of the masked arrays a site's reply lists (its audit entry records them).
MASKED_PREFIX = "secagg_masked_"


def secaggplus_settings(n_sites: int) -> dict[str, float | int]:
    """Keyword arguments for ``SecAggPlusWorkflow`` for ``n_sites`` sites.

    Every site holds a share of every other site's keys (``num_shares`` =
    ``n_sites``), and unmasking needs all but one of them
    (``reconstruction_threshold`` = ``n_sites - 1``, at least 2): the
    coordinator learns a site's vector only by colluding with that many sites.
    """
    if not MIN_SECURE_SITES <= n_sites <= MAX_SECURE_SITES:
        raise ValueError(
            f"a secure sum needs between {MIN_SECURE_SITES} and {MAX_SECURE_SITES} sites, "
            f"not {n_sites}"
        )
    return {
        "num_shares": n_sites,
        "reconstruction_threshold": max(2, n_sites - 1),
        "max_weight": MAX_WEIGHT,
        "clipping_range": float(CLIPPING_RANGE),
        "quantization_range": QUANTIZATION_RANGE,
        "modulus_range": MODULUS_RANGE,
    }


def settings_problem(
    *,
    sample_num: int,
    clipping_range: float,
    target_range: int,
    mod_range: int,
    max_weight: float,
    min_participants: int = MIN_SECURE_SITES,
) -> str | None:
    """Why a site must not take part in a SecAgg+ round configured like this, or None.

    ``min_participants``: at least :data:`MIN_SECURE_SITES`; a ``distributed-dp``
    study's ``noise_shares`` when larger (fewer shares would not make up its noise).
    """
    need = max(MIN_SECURE_SITES, min_participants)
    if sample_num < need:
        return (
            f"the secure sum has {sample_num} participants; this site takes part in this "
            f"study's sums only over at least {need} sites"
        )
    expected = (float(CLIPPING_RANGE), QUANTIZATION_RANGE, MODULUS_RANGE, MAX_WEIGHT)
    got = (float(clipping_range), int(target_range), int(mod_range), float(max_weight))
    if got != expected:
        return (
            "the coordinator configured SecAgg+ with clipping_range, quantization_range, "
            f"modulus_range, max_weight = {got}, not {expected}: the sum would not be exact"
        )
    return None


def range_problem(values: np.ndarray) -> str | None:
    """Why ``values`` cannot go into the secure sum unclipped, or None."""
    if values.size == 0:
        return None
    if values.dtype.kind not in "iu":
        return f"secure sums carry integers, not {values.dtype}"
    biggest = int(np.abs(values.astype(np.int64)).max())
    if biggest > CLIPPING_RANGE:
        return (
            f"a value of magnitude {biggest} exceeds SecAgg+'s clipping range {CLIPPING_RANGE}; "
            "it would be clipped silently, so nothing is sent"
        )
    return None


def exact_sum(mean: np.ndarray, n_sites: int) -> np.ndarray:
    """The integer sum from SecAgg+'s unmasked mean of ``n_sites`` integer vectors.

    Raises :class:`IntegrityError` when the result is not integral, which
    means the protocol was not run with :func:`secaggplus_settings`.
    """
    total = np.asarray(mean, dtype=np.float64) * n_sites
    rounded = np.rint(total)
    if total.size and float(np.abs(total - rounded).max()) > 1e-6:
        raise IntegrityError()
    return rounded.astype(np.int64)


def request_to_config(request: Request, inputs: Mapping[str, np.ndarray]) -> dict[str, bytes]:
    """A request and its inputs as config values (bytes) for a SecAgg+ fit instruction."""
    config = {}
    specs = []
    for name, array in inputs.items():
        data = np.ascontiguousarray(array)
        specs.append(array_spec(name, data))
        config[INPUT_CONFIG_PREFIX + name] = data.tobytes()
    config[REQUEST_CONFIG_KEY] = request_to_bytes(replace(request, inputs=tuple(specs)))
    return config


def request_from_config(config: Mapping[str, object]) -> tuple[Request, NamedArrays]:
    """The request and inputs of :func:`request_to_config`, checked against its manifest."""
    raw = config.get(REQUEST_CONFIG_KEY)
    if not isinstance(raw, bytes):
        raise IntegrityError()
    request = request_from_bytes(raw)
    inputs: NamedArrays = {}
    names = {k[len(INPUT_CONFIG_PREFIX) :] for k in config if k.startswith(INPUT_CONFIG_PREFIX)}
    if names != {s.name for s in request.inputs}:
        raise IntegrityError()
    for spec in request.inputs:
        data = config[INPUT_CONFIG_PREFIX + spec.name]
        try:
            assert isinstance(data, bytes)
            array = np.frombuffer(data, dtype=np.dtype(spec.dtype)).reshape(tuple(spec.shape))
        except (AssertionError, TypeError, ValueError) as exc:
            raise IntegrityError() from exc
        if array_spec(spec.name, array) != spec:
            raise IntegrityError()
        inputs[spec.name] = array.copy()
    return request, inputs


def masked_arrays(vectors: list[np.ndarray]) -> NamedArrays:
    """The masked vectors a site sends, named as its reply and audit entry list them."""
    return {f"{MASKED_PREFIX}{i}": np.ascontiguousarray(v) for i, v in enumerate(vectors)}


__all__ = [
    "CLIPPING_RANGE",
    "INPUT_CONFIG_PREFIX",
    "MASKED_PREFIX",
    "MAX_SECURE_SITES",
    "MAX_WEIGHT",
    "MIN_SECURE_SITES",
    "MODULUS_RANGE",
    "NUM_EXAMPLES",
    "PROTO_FIELD",
    "QUANTIZATION_RANGE",
    "REQUEST_CONFIG_KEY",
    "SECAGG_LAYOUT_FACT",
    "exact_sum",
    "masked_arrays",
    "range_problem",
    "request_from_config",
    "request_to_config",
    "secaggplus_settings",
    "settings_problem",
]
