"""``model.pt``: the trained model's weights and the specification of its features.

A plain ``torch.save`` of a dict of tensors, strings and numbers, so it loads
with ``torch.load(path, weights_only=True)``::

    {"format": "genofed.train.model/v1", "model": "logistic" | "mlp",
     "hidden_units": int, "state_dict": {name: tensor},
     "features": [{"kind": "variant", "id", "chrom", "pos", "ref", "alt",
                   "coding": "ALT dosage - 1 (missing 0)"},
                  {"kind": "covariate", "name", "lo", "hi",
                   "coding": "2 (x - lo) / (hi - lo) - 1, clipped to [-1, 1]"}],
     "target": str, "output": "logit of P(case)", "study_sha256": str,
     "epsilon_per_site": {site: float | None}}

``state_dict`` keys are those of ``genofed.site_agent.stats.dpsgd.RiskModel``
(``linear.*`` or ``hidden.*`` / ``output.*``); ``genofed.common.wire.train.model_logits``
computes the same logits with numpy.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from genofed.common.study import AnalysisSpec
from genofed.coordinator.combine.harmonize import Harmonization

MODEL_FORMAT = "genofed.train.model/v1"


def write_model(
    path: Path,
    *,
    spec: AnalysisSpec,
    harmonization: Harmonization,
    positions: np.ndarray,
    weights: Mapping[str, np.ndarray],
    study_sha256: str,
    epsilon_per_site: Mapping[str, float | None],
) -> str:
    """Write ``model.pt`` atomically; returns its file name."""
    import torch

    v = harmonization.variants
    features: list[dict[str, object]] = [
        {
            "kind": "variant",
            "id": str(v.id[i]),
            "chrom": str(v.chrom[i]),
            "pos": int(v.pos[i]),
            "ref": str(v.ref[i]),
            "alt": str(v.alt[i]),
            "coding": "ALT dosage - 1 (missing 0)",
        }
        for i in positions
    ]
    for name, (lo, hi) in zip(
        spec.params["covariates"], spec.params["covariate_ranges"], strict=True
    ):
        features.append(
            {
                "kind": "covariate",
                "name": name,
                "lo": float(lo),
                "hi": float(hi),
                "coding": "2 (x - lo) / (hi - lo) - 1, clipped to [-1, 1]",
            }
        )
    doc = {
        "format": MODEL_FORMAT,
        "model": spec.params["model"],
        "hidden_units": int(spec.params["hidden_units"]),
        "state_dict": {k: torch.from_numpy(np.array(w, np.float32)) for k, w in weights.items()},
        "features": features,
        "target": spec.params["target"],
        "output": "logit of P(case)",
        "study_sha256": study_sha256,
        "epsilon_per_site": dict(epsilon_per_site),
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(doc, fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path.name


__all__ = ["MODEL_FORMAT", "write_model"]
