"""The site's answers to ``train_round`` and ``train_eval`` (the ``train`` analysis).

Checks, in order, before anything is computed: the analysis is in the study
and allowed by the policy; the release mode of its updates is allowed
(``dp`` when the study asks for noise, else the study's ``exact`` or
``plain``; a ``dp`` study's ``train`` must ask for noise; a site with
``require_secure_aggregation`` sends exact updates only in an ``exact``
study, where they leave masked by SecAgg+); the training cohort is at least
``min_cohort_size``; and, for noisy updates, the ledger can still cover this
round (``BUDGET_EXCEEDED`` otherwise, nothing charged). A noisy round is then
trained with DP-SGD (:mod:`genofed.site_agent.stats.dpsgd`), its
Poisson-subsampled Gaussian steps are **charged and committed** to the
ledger, and only then are the weights returned. The evaluation round returns
a histogram of the model's logits for cases and controls (never a score per
patient), noised with OpenDP's discrete Gaussian and charged in a noisy
``train``. Layouts and summable forms: :mod:`genofed.common.wire.train`
(in an ``exact`` study only the masked form leaves the site).

Not built: small-cell suppression of the evaluation histogram in ``plain``
mode (its cells are exact counts; use a noisy ``train`` where that matters).
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from genofed.common.errors import InputError, PolicyRefusal
from genofed.common.messages import Request
from genofed.common.reasons import (
    BAD_REQUEST,
    NOT_INSTALLED,
    RELEASE_MODE_NOT_ALLOWED,
    SECURE_AGGREGATION_REQUIRED,
)
from genofed.common.study import RELEASE_MODES, AnalysisSpec
from genofed.common.wire.records import NamedArrays
from genofed.common.wire.train import (
    EVAL_HISTOGRAM,
    EVAL_LOGIT_EDGES,
    TRAIN_KIND,
    TRAIN_REQUEST_KINDS,
    TRAIN_ROUND_KIND,
    TRAIN_SAMPLES,
    WEIGHT_PREFIX,
    model_logits,
    noisy,
    parameter_shapes,
    scale_covariates,
)
from genofed.site_agent.context import Answer, RequestContext, Server
from genofed.site_agent.io.genotypes import GenotypeFile
from genofed.site_agent.privacy.accounting import (
    calibrate_dpsgd_noise,
    calibrate_noise_multiplier,
)
from genofed.site_agent.privacy.dp_release import DpPlan, release_counts
from genofed.site_agent.privacy.guard import CLINICAL, GENOTYPES
from genofed.site_agent.privacy.ledger import Charge, Ledger, Release
from genofed.site_agent.privacy.policy import (
    check_cohort_size,
    check_release_mode,
)
from genofed.site_agent.requests.glm import aligned_samples, glm_samples
from genofed.site_agent.sitedir import SITE_CONFIG, SiteConfig

if TYPE_CHECKING:
    import torch
from genofed.site_agent.stats.glm import oriented

#: What provenance says about the DP-SGD noise's randomness (see stats/dpsgd.py).
NOISE_RNG = (
    "torch.Generator (Mersenne Twister) seeded from os.urandom per update; Opacus secure_mode "
    "is off because torchcsprng is not installable (not in the package index; archived upstream)"
)
DPSGD_MECHANISM = "dpsgd: Poisson-subsampled Gaussian (Opacus PrivacyEngine, RDP accountant)"


def serve_train(ctx: RequestContext) -> Answer:
    """A DP-SGD (or exact) model update, or the final model's evaluation histogram."""
    spec, bed, request, policy, config = ctx.analysis, ctx.bed, ctx.request, ctx.policy, ctx.site
    index, flip = ctx.variant_plan
    inputs = {**ctx.inputs, "variant_index": index, "flip": flip}
    params = spec.params
    if any(importlib.util.find_spec(m) is None for m in ("torch", "opacus")):
        raise PolicyRefusal(
            NOT_INSTALLED,
            "this site's install has no genofed[train] (PyTorch and Opacus), which train "
            "needs; its IT can run the site-train image or pip install 'genofed[train]'",
        )
    dp = noisy(params)
    if ctx.mode == "dp" and not dp:
        raise PolicyRefusal(
            RELEASE_MODE_NOT_ALLOWED,
            f'analysis {spec.id!r} releases exact model updates, but the study asks for mode "dp"',
        )
    secure = ctx.mode == "exact"  # the updates leave only masked, summed over sites
    check_release_mode(policy, "dp" if dp else "exact" if secure else "plain")
    if not dp and not secure and policy.require_secure_aggregation:
        raise PolicyRefusal(
            SECURE_AGGREGATION_REQUIRED,
            "this site releases exact model updates only under secure aggregation: ask for "
            '[privacy] mode = "exact" (SecAgg+ sums over >= 3 sites), or for DP-SGD noise '
            "(noise_multiplier > 0 or target_epsilon)",
        )
    facts: dict[str, str] = {}
    x, y = _training_data(config, bed, spec, inputs, ctx, facts)
    check_cohort_size(policy, len(y))
    weights = _weights(inputs, params, x.shape[1])
    if request.kind == TRAIN_ROUND_KIND:
        started = time.monotonic()
        arrays, charge = _round(ctx, facts, params, x, y, weights)
        facts["train_seconds"] = f"{time.monotonic() - started:.3f}"
        # the FedAvg weight: an array, so that it is summed over sites with the weights
        arrays[TRAIN_SAMPLES] = np.array([len(y)], dtype=np.int64)
        return Answer(arrays, facts, charge)
    arrays, charge = _evaluate(ctx, facts, params, x, y, weights)
    return Answer(arrays, facts, charge)


SERVER = Server(
    analyses=frozenset({TRAIN_KIND}),
    request_kinds=TRAIN_REQUEST_KINDS,
    # the release mode of its updates is checked by serve_train: DP-SGD or exact, by parameters
    modes=frozenset(RELEASE_MODES),
    unsupported="",
    serve=serve_train,
)


def _training_data(
    config: SiteConfig,
    bed: GenotypeFile,
    spec: AnalysisSpec,
    inputs: NamedArrays,
    ctx: RequestContext | None = None,
    facts: dict[str, str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Features (study-ALT dosage - 1, scaled covariates) and 0/1 labels of the samples.

    With ``ctx``, the samples are as its guard serves them (an earlier release's
    set inside the cohort, the number left out in ``facts``) and are declared.
    """
    params = spec.params
    as_glm = AnalysisSpec(
        spec.id,
        "glm",
        {"phenotype": params["target"], "covariates": params["covariates"], "model": "auto"},
    )
    samples = glm_samples(config, bed, as_glm)
    if ctx is not None:
        samples = aligned_samples(
            samples, ctx.guard, (CLINICAL, GENOTYPES), facts if facts is not None else {}
        )
        ctx.declare(CLINICAL, samples.index)
        ctx.declare(GENOTYPES, samples.index)
    if not samples.binary:
        raise InputError(
            f"train target {params['target']!r} is not a case/control column "
            "(values other than 1/2 or 0/1)",
            path=config.phenotypes,
            hint="code cases 2 and controls 1 (missing -9 or NA), or choose another target",
        )
    if not len(samples.index):
        raise InputError(
            f"no genotyped sample has target {params['target']!r} and every covariate",
            path=config.directory / SITE_CONFIG,
            hint="check that the phenotype and covariate files use the .fam sample IDs",
        )
    index, flip = inputs.get("variant_index"), inputs.get("flip")
    if index is None or flip is None or len(index) != len(params["variants"]):
        raise PolicyRefusal(BAD_REQUEST, "the train request's variant plan is malformed")
    dosages = np.zeros((len(index), len(samples.index)))
    for start, chunk in bed.iter_dosages(index, sample_idx=samples.index):
        g, missing = oriented(chunk, flip[start : start + len(chunk)])
        g -= 1.0
        g[missing] = 0.0  # a missing call sits at the centre of [-1, 1]
        dosages[start : start + len(chunk)] = g
    covariates = scale_covariates(samples.covariates, params["covariate_ranges"])
    x = np.column_stack([dosages.T, covariates]) if len(index) else covariates
    return np.ascontiguousarray(x, dtype=np.float32), samples.y.astype(np.float32)


def _weights(inputs: NamedArrays, params: Any, n_features: int) -> dict[str, np.ndarray]:
    shapes = parameter_shapes(params["model"], n_features, params["hidden_units"])
    weights = {}
    for name, shape in shapes.items():
        w = inputs.get(WEIGHT_PREFIX + name)
        if w is None or w.shape != shape or w.dtype != np.float32 or not np.isfinite(w).all():
            raise PolicyRefusal(BAD_REQUEST, f"the request's weight {name!r} is malformed")
        weights[name] = w
    return weights


def _secure_generator() -> torch.Generator:
    import torch

    return torch.Generator().manual_seed(int.from_bytes(os.urandom(8), "little") >> 1)


def _round(
    ctx: RequestContext,
    facts: dict[str, str],
    params: Any,
    x: np.ndarray,
    y: np.ndarray,
    weights: dict[str, np.ndarray],
) -> tuple[NamedArrays, Charge | None]:
    import torch  # genofed[train]: only a site that trains needs it

    from genofed.site_agent.stats.dpsgd import expected_steps, local_update

    common = {
        "model": params["model"],
        "hidden": params["hidden_units"],
        "local_epochs": params["local_epochs"],
        "batch_size": params["batch_size"],
        "learning_rate": params["learning_rate"],
        "clipping_norm": params["clipping_norm"],
    }
    if not noisy(params):
        seed = (params["seed"] * 1_000_003 + ctx.request.round) & 0x7FFFFFFF
        update = local_update(
            x, y, weights, **common, noise_multiplier=0.0,
            generator=torch.Generator().manual_seed(seed),
        )  # fmt: skip
        return _as_arrays(update.weights), None
    request = ctx.request
    ledger = ctx.ledger()
    delta = ledger.budget.delta
    rate, steps = expected_steps(len(y), params["batch_size"], params["local_epochs"])
    z = float(params["noise_multiplier"])
    if params["target_epsilon"] > 0:  # this site's noise for the whole training
        z = calibrate_dpsgd_noise(params["target_epsilon"], delta, rate, steps * params["rounds"])
    ledger.check(z, sampling_rate=rate, steps=steps)  # refuse before any computation
    update = local_update(
        x, y, weights, **common, noise_multiplier=z, generator=_secure_generator()
    )
    recorded = sum(n for zz, q, n in update.opacus_history if (zz, q) == (z, rate))
    if update.steps != steps or recorded != steps or len(update.opacus_history) != 1:
        # never sent: Opacus's accountant must have seen exactly what the ledger charges
        raise RuntimeError(f"Opacus recorded {update.opacus_history}, the site charges {steps}")
    receipt = ledger.charge(
        Release(
            study_sha256=request.study.sha256,
            analysis_id=request.analysis_id,
            run_id=request.run_id,
            noise_multiplier=z,
            sensitivity=params["clipping_norm"],
            mechanism="dpsgd_poisson_gaussian",
            sampling_rate=rate,
            steps=steps,
        )
    )
    facts["noise"] = json.dumps(
        {
            "mechanism": DPSGD_MECHANISM,
            "noise_multiplier": z,
            "clipping_norm": params["clipping_norm"],
            "noise_std": z * params["clipping_norm"],
            "sampling_rate": rate,
            "steps": steps,
            "epsilon_this_round": receipt.epsilon,
            "epsilon_train_so_far": ledger.spent_on(*_run_key(request)),
            "delta": delta,
            "randomness": NOISE_RNG,
            "neighbouring": "add/remove one individual",
        },
        sort_keys=True,
    )
    facts["epsilon_spent_in_period"] = f"{receipt.spent:.6g}"
    facts["budget_period"] = receipt.period
    return _as_arrays(update.weights), Charge(receipt.epsilon, delta)


def _run_key(request: Request) -> tuple[str, str, str]:
    return request.study.sha256, request.run_id, request.analysis_id


def _run_events(ledger: Ledger, request: Request) -> list[tuple[float, float, int]]:
    study, run, analysis = _run_key(request)
    return [
        (float(str(e["noise_multiplier"])), float(str(e["sampling_rate"])), int(str(e["steps"])))
        for e in ledger.entries()
        if (e["study_sha256"], e["run_id"], e["analysis_id"]) == (study, run, analysis)
    ]


def _opacus_epsilon(events: list[tuple[float, float, int]], delta: float) -> float:
    """The same charges through Opacus's RDP accountant (a cross-check recorded in provenance)."""
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    accountant.history = [(z, q, steps) for z, q, steps in events]
    return float(accountant.get_epsilon(delta))


def _evaluate(
    ctx: RequestContext,
    facts: dict[str, str],
    params: Any,
    x: np.ndarray,
    y: np.ndarray,
    weights: dict[str, np.ndarray],
) -> tuple[NamedArrays, Charge | None]:
    logits = model_logits(params["model"], weights, x.astype(np.float64))
    bins = np.digitize(logits, EVAL_LOGIT_EDGES)
    histogram = np.zeros((2, len(EVAL_LOGIT_EDGES) + 1), dtype=np.int64)
    np.add.at(histogram, (y.astype(np.int64), bins), 1)
    if not noisy(params):
        return {EVAL_HISTOGRAM: histogram}, None
    request = ctx.request
    ledger = ctx.ledger()
    plan = DpPlan(calibrate_noise_multiplier(params["eval_epsilon"], ledger.budget.delta), 1.0)
    ledger.check(plan.noise_multiplier)  # refuse before releasing anything
    noised, charge = release_counts(ledger, plan, histogram, request, facts)  # charged first
    delta = ledger.budget.delta
    facts["epsilon_train_total"] = repr(ledger.spent_on(*_run_key(request)))
    facts["opacus_epsilon_train_total"] = repr(_opacus_epsilon(_run_events(ledger, request), delta))
    facts["train_delta"] = repr(delta)
    return {EVAL_HISTOGRAM: noised}, charge


def _as_arrays(weights: dict[str, np.ndarray]) -> NamedArrays:
    return {
        WEIGHT_PREFIX + k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()
    }


__all__ = ["DPSGD_MECHANISM", "NOISE_RNG", "SERVER", "serve_train"]
