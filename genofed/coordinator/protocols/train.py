"""The rounds of one risk-model training (``train``) analysis, as the coordinator drives them.

1. ``rounds`` x ``train_round``: the coordinator sends the global weights
   (and each site's variant plan for the study's feature variants); each site
   trains locally (DP-SGD with Opacus, or plain SGD without noise) and sends
   its weights and its number of training samples; the coordinator receives
   the sum over sites of the samples and of samples x weights, and divides
   (FedAvg, :mod:`genofed.coordinator.combine.train`).
2. ``train_eval``: the final weights go out once more; each site sends a
   case/control histogram of the model's logits, and the coordinator
   receives their sum: the pooled AUC and calibration come from it.

Every round asks for the sum over sites of the replies' summable forms
(``ask_sum``, :mod:`genofed.common.wire.train`): in ``plain`` mode the
coordinator adds them up, in ``exact`` mode SecAgg+ does, and the
coordinator never holds a site's own weights, sample count or histogram (so
there is no AUC or calibration per site). Only the sites' privacy
accounting (epsilon per site of a noisy ``train``) is per site.

Outputs: ``model.pt`` (torch: weights and the feature specification),
``train.summary.json`` (AUC, calibration, epsilon per site) and
``train.calibration.tsv`` (pooled); ``model.<id>.pt`` and ``train.<id>.*``
for an analysis whose id is not ``train``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from genofed.common.errors import GenoFedError, InputError
from genofed.common.messages import Reply
from genofed.common.study import AnalysisSpec
from genofed.common.wire.records import NamedArrays
from genofed.common.wire.train import (
    EVAL_HISTOGRAM,
    N_EVAL_BINS,
    TRAIN_EVAL_KIND,
    TRAIN_ROUND_KIND,
    TRAIN_SAMPLES,
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
    ask_sum: AskSum,
    study_sha256: str,
) -> tuple[list[str], dict[str, object]]:
    """Run one train analysis over the harmonization's sites; return files and summary.

    ``ask`` is unused: every round is a sum over sites (``ask_sum``).
    """
    params = spec.params
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
    n_train = 0
    for _round in range(params["rounds"]):
        pooled = ask_sum(TRAIN_ROUND_KIND, spec.id, [{**p, **_wire(weights)} for p in plans])
        n_train = int(pooled.array(TRAIN_SAMPLES, (1,))[0])
        if n_train < 1:
            raise GenoFedError(f"the sites trained on {n_train} samples in all")
        weighted = {n: pooled.array(WEIGHT_PREFIX + n, sh) for n, sh in shapes.items()}
        weights = combine.fedavg_from_sums(weighted, n_train)
    evaluation = ask_sum(TRAIN_EVAL_KIND, spec.id, [{**p, **_wire(weights)} for p in plans])
    histogram = evaluation.array(EVAL_HISTOGRAM, (2, N_EVAL_BINS))
    per_site = {
        site: _privacy(reply, params)
        for site, reply in zip(evaluation.sites, evaluation.replies, strict=True)
    }
    suffix = "" if spec.id == "train" else f".{spec.id}"
    summary: dict[str, object] = {
        "model": params["model"],
        "n_features": n_features,
        "rounds": params["rounds"],
        "train_samples": n_train,
        "auc": _number(combine.auc_from_histogram(histogram)),
        "calibration": combine.calibration_from_histogram(histogram),
        "dp": noisy(params),
        "epsilon_per_site": {s: v.get("epsilon") for s, v in per_site.items()},
        "sites": per_site,
        "evaluation": "from summed per-bin case/control counts of the model's logit "
        "(never a per-patient score); on the training samples; pooled only (the "
        "coordinator receives only the sum over sites)",
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
    files.append(_write_calibration(out_dir / f"train{suffix}.calibration.tsv", summary))
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
            "(see harmonization.tsv) and that the study's [qc] keeps (qc.removed.tsv names "
            "the filter that removed one; a variant withheld for small cells cannot be "
            "checked, so [qc] removes it), or drop them from variants = [...]",
        )
    return np.array([where[v] for v in spec.params["variants"]], dtype=np.int64)


def _wire(weights: dict[str, np.ndarray]) -> NamedArrays:
    return {WEIGHT_PREFIX + k: np.ascontiguousarray(v, np.float32) for k, v in weights.items()}


def _privacy(reply: Reply, params: object) -> dict[str, object]:
    facts = reply.facts
    if "epsilon_train_total" not in facts:
        mode = "exact" if facts.get("release_mode") == "exact" else "plain"
        return {"epsilon": None, "noise": f"none (exact updates, {mode} release)"}
    return {
        "epsilon": float(facts["epsilon_train_total"]),
        "delta": float(facts["train_delta"]),
        "opacus_epsilon": float(facts["opacus_epsilon_train_total"]),
        "accountant": "dp-accounting RDP (site ledger): DP-SGD rounds composed with the "
        "noisy evaluation",
    }


def _number(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 6)


def _write_calibration(path: Path, summary: dict[str, object]) -> str:
    """The pooled calibration groups (``SITE`` is ``pooled``: there are no per-site rows)."""
    lines = ["SITE\tGROUP\tRISK_LOW\tRISK_HIGH\tN\tOBSERVED\tEXPECTED"]
    for row in summary["calibration"]["groups"]:  # type: ignore[index]
        lines.append(
            f"pooled\t{row['group']}\t{row['risk_low']}\t{row['risk_high']}\t"
            f"{row['n']:g}\t{row['observed_cases']:g}\t{row['expected_cases']:.4f}"
        )
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path.name


__all__ = ["run_train"]
