"""Combine half of ``train``: initial weights, FedAvg, and evaluation from histograms.

Pure: arrays and explicit parameters in, arrays out.

**Why FedAvg is here and not ``flwr.serverapp.strategy.FedAvg``.** Flower's
Message-API strategies drive the ``Grid`` themselves (``strategy.start``
sends its own ``ArrayRecord`` + ``ConfigRecord`` train messages to every
node and aggregates the replies). GenoFed's requests must carry the signed
study and go through each site's policy checks, ledger and audit log, and
every reply's receipt is verified before it is used (``runner.py``, one
transport seam for simulation and deployment); a strategy that talks to the
Grid directly would bypass all of that, and its ``aggregate_train`` needs
Flower ``Message`` objects, which exist only inside a Flower run. So the
weighted average is done here, on the arrays the sites released, with the
same rule as Flower's ``aggregate_arrayrecords`` (weights proportional to
each site's training samples); a unit test checks that both give the same
average. The coordinator holds only sums over sites (secure aggregation:
:mod:`genofed.common.wire.summable`), so the average is computed as
``sum_k n_k w_k / sum_k n_k`` (:func:`fedavg_from_sums`).

**Evaluation.** Each site sends, per bin of the model's logit
(:data:`~genofed.common.wire.train.EVAL_LOGIT_EDGES`), its numbers of
controls and cases; the coordinator receives only their sum over sites.
The AUC is the Mann-Whitney probability over bins (pairs in the same bin
count one half), so the pooled AUC comes from summed counts only; with
bins 0.25 logit wide the AUC differs from the per-patient value by far
less than 0.01. Calibration: cases observed against
expected (bin count x the bin's midpoint probability) in ten groups of
predicted risk (0-0.1, ..., 0.9-1), calibration-in-the-large (observed /
expected) and the Hosmer-Lemeshow statistic over the groups with counts.
Noisy histograms are clipped at 0 first (post-processing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

from genofed.common.wire.train import EVAL_LOGIT_EDGES, parameter_shapes

#: Upper edges of the calibration groups on the predicted-risk scale.
CALIBRATION_EDGES = np.linspace(0.1, 1.0, 10)


def initial_weights(model: str, n_features: int, hidden: int, seed: int) -> dict[str, np.ndarray]:
    """Zeros for logistic regression; torch's default uniform(+-1/sqrt(fan_in)) for the MLP."""
    shapes = parameter_shapes(model, n_features, hidden)
    if model == "logistic":
        return {k: np.zeros(s, dtype=np.float32) for k, s in shapes.items()}
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in shapes.items():
        fan_in = n_features if name.startswith("hidden") else hidden
        bound = 1.0 / np.sqrt(fan_in)
        weights[name] = rng.uniform(-bound, bound, size=shape).astype(np.float32)
    return weights


def fedavg_from_sums(weighted: Mapping[str, np.ndarray], n_total: int) -> dict[str, np.ndarray]:
    """FedAvg from sums over sites: ``sum_k n_k w_k / sum_k n_k`` per parameter, as float32.

    ``weighted`` holds, per parameter, the sum over sites of each site's
    training samples times its weights (the ``train_round`` summable form,
    :mod:`genofed.common.wire.train`); ``n_total`` the sum of the samples.
    """
    if n_total < 1:
        raise ValueError(f"FedAvg needs a positive number of training samples, not {n_total}")
    total = float(n_total)
    return {
        name: (np.asarray(s, np.float64) / total).astype(np.float32) for name, s in weighted.items()
    }


def fedavg(
    updates: Sequence[Mapping[str, np.ndarray]], n_samples: Sequence[int]
) -> dict[str, np.ndarray]:
    """Average of the sites' weights, weighted by their training samples (FedAvg).

    The same rule as :func:`fedavg_from_sums`, from the sites' own updates
    (their weighted sum in float64, in site order).
    """
    if not updates or len(updates) != len(n_samples) or min(n_samples) < 1:
        raise ValueError("FedAvg needs one update and a positive sample count per site")
    weighted = {
        name: np.sum(
            [np.asarray(u[name], np.float64) * n for u, n in zip(updates, n_samples, strict=True)],
            axis=0,
        )
        for name in updates[0]
    }
    return fedavg_from_sums(weighted, sum(n_samples))


def bin_probabilities() -> np.ndarray:
    """Predicted risk at the middle of each logit bin (open end bins: their finite edge)."""
    edges = EVAL_LOGIT_EDGES
    mids = np.concatenate([[edges[0]], (edges[:-1] + edges[1:]) / 2, [edges[-1]]])
    return np.asarray(1.0 / (1.0 + np.exp(-mids)))


def auc_from_histogram(histogram: np.ndarray) -> float:
    """Mann-Whitney AUC from ``(2, B)`` control/case counts per ordered bin; NaN without both."""
    h = np.maximum(np.asarray(histogram, dtype=np.float64), 0.0)
    controls, cases = h[0], h[1]
    if controls.sum() <= 0 or cases.sum() <= 0:
        return float("nan")
    below = np.concatenate([[0.0], np.cumsum(controls)[:-1]])
    pairs = float(np.sum(cases * (below + controls / 2)))
    return pairs / float(controls.sum() * cases.sum())


def calibration_from_histogram(histogram: np.ndarray) -> dict[str, object]:
    """Observed and expected cases per risk group, O/E and Hosmer-Lemeshow (see module doc)."""
    h = np.maximum(np.asarray(histogram, dtype=np.float64), 0.0)
    n = h.sum(axis=0)
    p = bin_probabilities()
    group = np.searchsorted(CALIBRATION_EDGES, p, side="left")
    rows = []
    chi2, used = 0.0, 0
    for g in range(len(CALIBRATION_EDGES)):
        sel = group == g
        count = float(n[sel].sum())
        observed = float(h[1, sel].sum())
        expected = float((n[sel] * p[sel]).sum())
        rows.append(
            {
                "group": g + 1,
                "risk_low": round(float(g / 10), 1),
                "risk_high": round(float((g + 1) / 10), 1),
                "n": count,
                "observed_cases": observed,
                "expected_cases": expected,
            }
        )
        if count > 0 and 0 < expected < count:
            chi2 += (observed - expected) ** 2 / (expected * (1 - expected / count))
            used += 1
    total_expected = float((n * p).sum())
    df = max(used - 2, 1)
    return {
        "groups": rows,
        "observed_over_expected": float(h[1].sum()) / total_expected if total_expected else None,
        "hosmer_lemeshow_chi2": chi2,
        "hosmer_lemeshow_df": df,
        "hosmer_lemeshow_p": float(stats.chi2.sf(chi2, df)),
    }


__all__ = [
    "CALIBRATION_EDGES",
    "auc_from_histogram",
    "bin_probabilities",
    "calibration_from_histogram",
    "fedavg",
    "fedavg_from_sums",
    "initial_weights",
]
