"""The rounds of one risk-model training (``train``) analysis, as the coordinator drives them.

1. ``rounds`` x ``train_round``: the coordinator sends the global weights
   (and each site's variant plan for the study's feature variants); each site
   trains locally (DP-SGD with Opacus, or plain SGD without noise) and sends
   its weights and its number of training samples; the coordinator averages
   them (FedAvg, :mod:`genofed.coordinator.combine.train`).
2. ``train_eval``: the final weights go out once more; each site sends a
   case/control histogram of the model's logits. AUC and calibration per
   site and pooled come from those counts.

Outputs: ``model.pt`` (torch: weights and the feature specification),
``train.summary.json`` (AUC, calibration, epsilon per site) and
``train.calibration.tsv``; ``model.<id>.pt`` and ``train.<id>.*`` for an
analysis whose id is not ``train``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from genofed.common.errors import InputError, SiteFailure
from genofed.common.messages import Reply
from genofed.common.study import AnalysisSpec
from genofed.common.wire.records import NamedArrays
from genofed.common.wire.train import (
    EVAL_HISTOGRAM,
    N_EVAL_BINS,
    TRAIN_EVAL_KIND,
    TRAIN_ROUND_KIND,
    TRAIN_SAMPLES_FACT,
    WEIGHT_PREFIX,
    noisy,
    parameter_shapes,
)
from genofed.coordinator.combine import train as combine
from genofed.coordinator.combine.harmonize import Harmonization
from genofed.coordinator.protocols.job import AskSites, AskSum
from genofed.coordinator.writers.atomic import atomic_write_text
from genofed.coordinator.writers.train_outputs import write_model


def run_train(
    spec: AnalysisSpec,
    harmonization: Harmonization,
    out_dir: Path,
    ask: AskSites,
    *,
    ask_sum: AskSum | None = None,
    study_sha256: str,
) -> tuple[list[str], dict[str, object]]:
    """Run one train analysis over the harmonization's sites; return files and summary."""
    params = spec.params
    sites = [r.site for r in harmonization.reports]
    positions = _feature_variants(spec, harmonization)
    plans = [
        {"variant_index": plan.index[positions], "flip": plan.flip[positions]}
        for plan in harmonization.plans
    ]
    n_features = len(positions) + len(params["covariates"])
    shapes = parameter_shapes(params["model"], n_features, params["hidden_units"])
    weights = combine.initial_weights(
        params["model"], n_features, params["hidden_units"], params["seed"]
    )
    n_train: list[int] = []
    for _round in range(params["rounds"]):
        replies = ask(TRAIN_ROUND_KIND, spec.id, [{**p, **_wire(weights)} for p in plans])
        updates = [
            _update(site, arrays, shapes) for site, (_, arrays) in zip(sites, replies, strict=True)
        ]
        n_train = [_samples(site, reply) for site, (reply, _) in zip(sites, replies, strict=True)]
        weights = combine.fedavg(updates, n_train)
    replies = ask(TRAIN_EVAL_KIND, spec.id, [{**p, **_wire(weights)} for p in plans])
    histograms = [
        _histogram(site, arrays) for site, (_, arrays) in zip(sites, replies, strict=True)
    ]
    pooled = np.sum(histograms, axis=0)
    per_site = {}
    for site, (reply, _), h, n in zip(sites, replies, histograms, n_train, strict=True):
        per_site[site] = {
            "train_samples": n,
            "auc": _number(combine.auc_from_histogram(h)),
            "calibration": combine.calibration_from_histogram(h),
            **_privacy(reply, params),
        }
    suffix = "" if spec.id == "train" else f".{spec.id}"
    summary: dict[str, object] = {
        "model": params["model"],
        "n_features": n_features,
        "rounds": params["rounds"],
        "auc": _number(combine.auc_from_histogram(pooled)),
        "calibration": combine.calibration_from_histogram(pooled),
        "dp": noisy(params),
        "epsilon_per_site": {s: v.get("epsilon") for s, v in per_site.items()},
        "sites": per_site,
        "evaluation": "from summed per-bin case/control counts of the model's logit "
        "(never a per-patient score); on the training samples",
    }
    files = [
        write_model(
            out_dir / f"model{suffix}.pt",
            spec=spec,
            harmonization=harmonization,
            positions=positions,
            weights=weights,
            study_sha256=study_sha256,
            epsilon_per_site=summary["epsilon_per_site"],  # type: ignore[arg-type]
        )
    ]
    name = f"train{suffix}.summary.json"
    atomic_write_text(out_dir / name, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    files.append(name)
    files.append(_write_calibration(out_dir / f"train{suffix}.calibration.tsv", per_site, summary))
    stats = {
        "auc": summary["auc"],
        "epsilon_per_site": summary["epsilon_per_site"],
        "rounds": params["rounds"],
    }
    return files, stats


def _feature_variants(spec: AnalysisSpec, harmonization: Harmonization) -> np.ndarray:
    ids = harmonization.variants.id.astype(str)
    where = {v: i for i, v in enumerate(ids)}
    missing = [v for v in spec.params["variants"] if v not in where]
    if missing:
        raise InputError(
            f"train analysis {spec.id!r}: variant {missing[0]!r} "
            f"({len(missing)} in all) is not among the study's variants",
            hint="use IDs from the sites' .bim files that every site has "
            "(see harmonization.tsv), or drop them from variants = [...]",
        )
    return np.array([where[v] for v in spec.params["variants"]], dtype=np.int64)


def _wire(weights: dict[str, np.ndarray]) -> NamedArrays:
    return {WEIGHT_PREFIX + k: np.ascontiguousarray(v, np.float32) for k, v in weights.items()}


def _update(
    site: str, arrays: NamedArrays, shapes: dict[str, tuple[int, ...]]
) -> dict[str, np.ndarray]:
    update = {}
    for name, shape in shapes.items():
        w = arrays.get(WEIGHT_PREFIX + name)
        if w is None or w.shape != shape or not np.isfinite(w).all():
            raise SiteFailure(site, "BAD_REPLY", f"weights {name!r} missing or malformed")
        update[name] = w
    return update


def _samples(site: str, reply: Reply) -> int:
    try:
        n = int(reply.facts[TRAIN_SAMPLES_FACT])
    except (KeyError, ValueError) as exc:
        raise SiteFailure(site, "BAD_REPLY", "no training sample count") from exc
    if n < 1:
        raise SiteFailure(site, "BAD_REPLY", "training sample count must be positive")
    return n


def _histogram(site: str, arrays: NamedArrays) -> np.ndarray:
    h = arrays.get(EVAL_HISTOGRAM)
    if h is None or h.shape != (2, N_EVAL_BINS) or h.dtype.kind not in "iu":
        raise SiteFailure(site, "BAD_REPLY", f"{EVAL_HISTOGRAM} must be (2, {N_EVAL_BINS}) ints")
    return h.astype(np.int64)


def _privacy(reply: Reply, params: object) -> dict[str, object]:
    facts = reply.facts
    if "epsilon_train_total" not in facts:
        return {"epsilon": None, "noise": "none (exact updates, plain release)"}
    return {
        "epsilon": float(facts["epsilon_train_total"]),
        "delta": float(facts["train_delta"]),
        "opacus_epsilon": float(facts["opacus_epsilon_train_total"]),
        "accountant": "dp-accounting RDP (site ledger): DP-SGD rounds composed with the "
        "noisy evaluation",
    }


def _number(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 6)


def _write_calibration(
    path: Path, per_site: dict[str, dict[str, object]], summary: dict[str, object]
) -> str:
    lines = ["SITE\tGROUP\tRISK_LOW\tRISK_HIGH\tN\tOBSERVED\tEXPECTED"]
    parts = [
        *((s, v["calibration"]) for s, v in per_site.items()),
        ("pooled", summary["calibration"]),
    ]
    for site, calibration in parts:
        for row in calibration["groups"]:  # type: ignore[index]
            lines.append(
                f"{site}\t{row['group']}\t{row['risk_low']}\t{row['risk_high']}\t"
                f"{row['n']:g}\t{row['observed_cases']:g}\t{row['expected_cases']:.4f}"
            )
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path.name


__all__ = ["run_train"]
