"""What the risk-model training protocol (``train``) exchanges, and its parameters.

Both halves read this module; a privacy officer reads it to know what leaves
the site for a ``train`` analysis.

Features, in order: the study-ALT dosage of each listed variant minus 1
(missing calls 0, so dosages lie in [-1, 1]), then each covariate mapped
from the analyst's public range ``[lo, hi]`` to [-1, 1] and clipped there.
The ranges are part of the study, not estimated from data, so scaling
releases nothing. The target is a plink case/control column (1/2 or 0/1).

``train_round`` (one per FedAvg round; inputs ``variant_index``, ``flip`` and
the global weights ``w.<parameter>`` float32)::

    w.<parameter>  float32      the site's updated weights, same names and shapes
    train_samples  int64 (1,)   the samples the site trained on (its FedAvg weight)

with, for a noisy update, the fact ``noise`` (mechanism, noise multiplier,
sampling rate, steps, clipping norm, epsilon of the study's rounds so far at
this site).
With ``noise_multiplier = 0`` the update is an exact function of the data
(a ``plain`` release, or ``exact``: masked by SecAgg+); otherwise it is
DP-SGD (Opacus, Poisson sampling) and the subsampled Gaussian steps are
charged to the site's ledger before the update leaves.

``train_eval`` (once, with the final weights)::

    eval_histogram  int64 (2, B)  controls (row 0) and cases (row 1) per bin of
                                  the model's logit, bins EVAL_LOGIT_EDGES

Never a per-patient score. In a noisy ``train`` the histogram carries
discrete Gaussian noise (L2 sensitivity 1) calibrated to ``eval_epsilon``
and charged to the ledger as well.

Summable forms (:mod:`genofed.common.wire.summable`; the coordinator
receives only their sums over sites, so FedAvg is computed from sums and
the evaluation is of the pooled histogram only). ``train_round``, for each
``w.<parameter>`` of the request (its shape fixed by the request's global
weights)::

    w.<parameter>  float64  train_samples x the site's weights (exact in float64:
                            a float32 times an integer below 2**29), summing to
                            sum_k n_k w_k; FedAvg = that / sum_k n_k
    train_samples  int64 (1,)  sums to the samples trained on over all sites

``train_eval``: ``eval_histogram`` int64 (2, B) as sent (noisy counts may be
negative; the sum is clipped at 0 only when it is used). A noisy ``train``
in ``exact`` mode masks the DP-SGD weights as well; its DP charge is the
same.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Final

import numpy as np

from genofed.common.errors import ParamError
from genofed.common.wire.checked import checked_array

TRAIN_KIND: Final = "train"
TRAIN_ROUND_KIND: Final = "train_round"
TRAIN_EVAL_KIND: Final = "train_eval"
TRAIN_REQUEST_KINDS: Final = frozenset({TRAIN_ROUND_KIND, TRAIN_EVAL_KIND})

MODELS: Final = ("logistic", "mlp")
#: Prefix of weight array names on the wire.
WEIGHT_PREFIX: Final = "w."
#: Array of ``train_round``: the samples a site trained on (its FedAvg weight), int64 (1,).
TRAIN_SAMPLES: Final = "train_samples"
#: Largest training sample count a site may send: ``n * w`` stays exact in float64.
MAX_TRAIN_SAMPLES: Final = 2**29
EVAL_HISTOGRAM: Final = "eval_histogram"
#: Edges of the evaluation histogram's logit bins (plus an open bin at each end).
EVAL_LOGIT_EDGES: Final = np.linspace(-8.0, 8.0, 65)
N_EVAL_BINS: Final = len(EVAL_LOGIT_EDGES) + 1
#: noise_multiplier's "not given" value (0.0 means: no noise).
UNSET_NOISE: Final = -1.0


def parameter_shapes(model: str, n_features: int, hidden: int) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the model's parameters (the torch ``state_dict`` keys)."""
    if model == "logistic":
        return {"linear.weight": (1, n_features), "linear.bias": (1,)}
    return {
        "hidden.weight": (hidden, n_features),
        "hidden.bias": (hidden,),
        "output.weight": (1, hidden),
        "output.bias": (1,),
    }


def noisy(params: dict[str, Any] | Any) -> bool:
    """True when the updates are DP-SGD (noise multiplier > 0 or a target epsilon)."""
    return bool(params["target_epsilon"] > 0 or params["noise_multiplier"] > 0)


def check_train(params: dict[str, Any]) -> dict[str, Any]:
    """Check a ``train`` analysis's parameters together; raise ``ParamError``."""
    if not params["target"]:
        raise ParamError("missing key 'target'", 'name the case/control column: target = "DISEASE"')
    variants, covariates = params["variants"], params["covariates"]
    for name, values in (("variants", variants), ("covariates", covariates)):
        if not all(isinstance(v, str) and v for v in values) or len(set(values)) != len(values):
            raise ParamError(f"{name} must be a list of distinct names", f"list each {name} once")
    if not variants and not covariates:
        raise ParamError("the model has no features", "list variants = [...] and/or covariates")
    if params["target"] in covariates:
        raise ParamError("covariates must not include the target", "remove it from covariates")
    ranges = params["covariate_ranges"]
    if len(ranges) != len(covariates) or not all(
        isinstance(r, list | tuple)
        and len(r) == 2
        and all(isinstance(x, int | float) and not isinstance(x, bool) for x in r)
        and math.isfinite(r[0])
        and math.isfinite(r[1])
        and r[0] < r[1]
        for r in ranges
    ):
        raise ParamError(
            "covariate_ranges must give one [lo, hi] (lo < hi) per covariate, in order",
            'e.g. covariates = ["AGE", "SEX"] with covariate_ranges = [[30, 80], [1, 2]]; '
            "the ranges scale the features and must not come from the data",
        )
    if params["model"] not in MODELS:
        raise ParamError(f"model must be one of {MODELS}, not {params['model']!r}")
    for key in ("hidden_units", "rounds", "local_epochs", "batch_size"):
        if params[key] < 1:
            raise ParamError(f"{key} must be at least 1, not {params[key]}")
    for key in ("learning_rate", "clipping_norm", "eval_epsilon"):
        if not params[key] > 0:
            raise ParamError(f"{key} must be > 0, not {params[key]}")
    z, eps = params["noise_multiplier"], params["target_epsilon"]
    if (z == UNSET_NOISE) == (eps == 0.0) or (z != UNSET_NOISE and z < 0) or eps < 0:
        raise ParamError(
            "give exactly one of noise_multiplier (>= 0) and target_epsilon (> 0)",
            "noise_multiplier = 1.1 (DP-SGD), target_epsilon = 3.0 (each site calibrates its "
            "noise), or noise_multiplier = 0.0 for exact updates without noise",
        )
    return {
        **params,
        "variants": tuple(variants),
        "covariates": tuple(covariates),
        "covariate_ranges": tuple(tuple(float(x) for x in r) for r in ranges),
    }


def model_logits(model: str, weights: Any, x: np.ndarray) -> np.ndarray:
    """The model's logits for features ``x`` (n, p), in numpy (as the torch model computes)."""
    w = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
    if model == "logistic":
        out = x @ w["linear.weight"].T + w["linear.bias"]
    else:
        h = np.maximum(x @ w["hidden.weight"].T + w["hidden.bias"], 0.0)
        out = h @ w["output.weight"].T + w["output.bias"]
    return np.asarray(out[:, 0])


def scale_covariates(values: np.ndarray, ranges: Any) -> np.ndarray:
    """Covariates ``(n, k)`` mapped from their ``[lo, hi]`` ranges to [-1, 1], clipped."""
    lo = np.array([r[0] for r in ranges], dtype=np.float64)
    hi = np.array([r[1] for r in ranges], dtype=np.float64)
    scaled = (np.asarray(values, dtype=np.float64) - (lo + hi) / 2) / ((hi - lo) / 2)
    return np.clip(scaled, -1.0, 1.0)


def round_shapes(inputs: Mapping[str, np.ndarray]) -> dict[str, tuple[int, ...]]:
    """The weights' names (with :data:`WEIGHT_PREFIX`) and shapes, as the request sent them."""
    shapes = {n: tuple(a.shape) for n, a in inputs.items() if n.startswith(WEIGHT_PREFIX)}
    if not shapes:
        raise ValueError(f"the train_round request has no weights ({WEIGHT_PREFIX}<parameter>)")
    return shapes


def _round_form(
    reply: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """``train_samples`` x each weight of the request (float64), and ``train_samples``."""
    n = checked_array(reply, TRAIN_SAMPLES, (1,), "iu").astype(np.int64)
    if not 1 <= int(n[0]) < MAX_TRAIN_SAMPLES:
        raise ValueError(f"{TRAIN_SAMPLES} must be in [1, {MAX_TRAIN_SAMPLES}), not {int(n[0])}")
    out: dict[str, np.ndarray] = {TRAIN_SAMPLES: n}
    for name, shape in round_shapes(inputs).items():
        w = checked_array(reply, name, shape, "f").astype(np.float64)
        if not np.isfinite(w).all():
            raise ValueError(f"{name} holds a value that is not finite")
        out[name] = w * float(n[0])  # exact: 24 significant bits times fewer than 29
    extra = sorted(set(reply) - set(out))
    if extra:
        raise ValueError(f"the reply has arrays the request did not ask for: {extra[:3]}")
    return out


def _eval_form(
    reply: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """``eval_histogram`` (2, B) as sent."""
    histogram = checked_array(reply, EVAL_HISTOGRAM, (2, N_EVAL_BINS), "iu")
    return {EVAL_HISTOGRAM: histogram.astype(np.int64)}


#: Request kind -> its summable form (:mod:`genofed.common.wire.summable`).
SUMMABLE_FORMS: Final[
    Mapping[
        str, Callable[[Mapping[str, np.ndarray], Mapping[str, np.ndarray]], dict[str, np.ndarray]]
    ]
] = {
    TRAIN_ROUND_KIND: _round_form,
    TRAIN_EVAL_KIND: _eval_form,
}


__all__ = [
    "EVAL_HISTOGRAM",
    "EVAL_LOGIT_EDGES",
    "MAX_TRAIN_SAMPLES",
    "MODELS",
    "N_EVAL_BINS",
    "SUMMABLE_FORMS",
    "TRAIN_EVAL_KIND",
    "TRAIN_KIND",
    "TRAIN_REQUEST_KINDS",
    "TRAIN_ROUND_KIND",
    "TRAIN_SAMPLES",
    "UNSET_NOISE",
    "WEIGHT_PREFIX",
    "check_train",
    "model_logits",
    "noisy",
    "parameter_shapes",
    "round_shapes",
    "scale_covariates",
]
