"""``provenance.json`` and ``harmonization.tsv``: how a result came to be.

Provenance names the study (its hash and canonical form), the run, the
engine, every site with what it reported about itself and what it released
(array names, shapes, SHA-256), the harmonization outcome, and the versions
of the software involved, so that a result can be traced and re-checked.
"""

from __future__ import annotations

import json
import math
import platform
from collections.abc import Mapping, Sequence
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from genofed.common.receipts import DOSAGES_FACT, GENOME_BUILD_FACT
from genofed.common.study import Study
from genofed.coordinator.combine.harmonize import Harmonization
from genofed.coordinator.site_record import SiteRecord
from genofed.coordinator.writers.atomic import atomic_write_text

PROVENANCE_FILE = "provenance.json"
HARMONIZATION_FILE = "harmonization.tsv"
PROVENANCE_SCHEMA = "genofed.provenance/v1"
_PACKAGES = ("genofed", "flwr", "numpy", "scipy", "protobuf", "grpcio", "pgenlib", "bed-reader")


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def write_harmonization(out_dir: Path, harmonization: Harmonization) -> str:
    """One row per site: how its variants matched the study's."""
    lines = ["#SITE\tN_VARIANTS\tN_MATCHED\tN_SWAPPED\tN_MISSING\tN_EXTRA\tN_ALLELE_MISMATCH"]
    for r in harmonization.reports:
        lines.append(
            f"{r.site}\t{r.n_variants}\t{r.n_matched}\t{r.n_swapped}\t{r.n_missing}\t"
            f"{r.n_extra}\t{r.n_allele_mismatch}"
        )
    atomic_write_text(out_dir / HARMONIZATION_FILE, "\n".join(lines) + "\n")
    return HARMONIZATION_FILE


def provenance_doc(
    *,
    study: Study,
    run_id: str,
    engine: str,
    started: datetime,
    finished: datetime,
    sites: Sequence[SiteRecord],
    harmonization: Harmonization,
    outputs: Sequence[str],
    signer: str | None = None,
    missing: Sequence[Mapping[str, object]] = (),
    rounds: Sequence[Mapping[str, object]] = (),
    train_epsilon: Mapping[str, object] | None = None,
    summary: Mapping[str, object] | None = None,
    analysis_outputs: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """The content of ``provenance.json`` (:func:`write_provenance` writes it).

    ``signer`` is the analyst's public key (``ed25519:...``) for a signed study.
    ``missing`` lists the sites that dropped out of the study (round, reason);
    each such site's own record also carries ``missing``, and it is left out
    of ``n_samples_total``. ``rounds`` records each round's wall time and the
    array bytes sent to and received from the busiest site (payload sizes,
    without the message framing). ``train_epsilon`` maps each ``train``
    analysis to the epsilon each site's ledger charged for it (None: no noise).
    ``summary`` is the run's summary (non-finite numbers become null) and
    ``analysis_outputs`` the files each analysis wrote, so that the results
    directory can be described again later (``genofed study report``).
    """
    demo_sites = [s.name for s in sites if s.facts.get("policy", "").startswith("demo")]
    doc: dict[str, Any] = {
        "schema": PROVENANCE_SCHEMA,
        "study": {
            "name": study.name,
            "sha256": study.sha256,
            "signed": signer is not None,
            "signer_public_key": signer,
            "canonical": json.loads(study.canonical_json()),
        },
        "run": {
            "run_id": run_id,
            "engine": engine,
            "started": started.isoformat(),
            "finished": finished.isoformat(),
        },
        "sites": [
            {
                "name": s.name,
                "node_id": s.node_id,
                "software_version": s.software_version,
                "n_samples": int(s.facts.get("n_samples", 0)),
                "n_variants": int(s.facts.get("n_variants", 0)),
                "policy": s.facts.get("policy", ""),
                "releases": s.replies,
                **({"missing": s.missing} if s.missing else {}),
                **({DOSAGES_FACT: s.facts[DOSAGES_FACT]} if DOSAGES_FACT in s.facts else {}),
                GENOME_BUILD_FACT: s.facts.get(GENOME_BUILD_FACT, "unknown"),
            }
            for s in sites
        ],
        "sites_missing": [dict(m) for m in missing],
        "rounds": [dict(r) for r in rounds],
        "n_samples_total": sum(int(s.facts.get("n_samples", 0)) for s in sites if not s.missing),
        "harmonization": {
            "n_study_variants": len(harmonization.variants),
            "sites": [r.__dict__ for r in harmonization.reports],
        },
        "privacy": {
            "release_mode": study.privacy.mode,
            "release_mode_description": _RELEASE_MODE_TEXT.get(study.privacy.mode, ""),
            "demo_policy_sites": demo_sites,
            "note": (
                "sites under the demo policy accept unsigned studies; "
                "that policy is for synthetic data only"
            )
            if demo_sites
            else "",
            **({"train_epsilon_per_site": dict(train_epsilon)} if train_epsilon else {}),
        },
        "outputs": sorted([*outputs, PROVENANCE_FILE]),
        "analysis_outputs": {k: list(v) for k, v in (analysis_outputs or {}).items()},
        "summary": _json_safe(dict(summary or {})),
        "versions": _versions(),
    }
    return doc


def write_provenance(out_dir: Path, doc: Mapping[str, Any]) -> str:
    """Write ``provenance.json`` (from :func:`provenance_doc`); returns its file name."""
    atomic_write_text(out_dir / PROVENANCE_FILE, json.dumps(doc, indent=2) + "\n")
    return PROVENANCE_FILE


def _json_safe(value: object) -> object:
    """Plain JSON: numpy scalars and arrays as Python values, NaN and infinity as null."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


#: What each release mode means for what the coordinator saw (docs/privacy-officer.md).
_RELEASE_MODE_TEXT = {
    "plain": "per-site sums (small cells suppressed as each site's policy says)",
    "dp": "per-site sums, each with the site's calibrated discrete Gaussian noise",
    "exact": "only the sum over all sites, through Flower's SecAgg+ (no per-site counts)",
    "distributed-dp": (
        "only the sum over all sites, through Flower's SecAgg+, carrying every site's "
        "discrete Gaussian noise share"
    ),
}


__all__ = [
    "HARMONIZATION_FILE",
    "PROVENANCE_FILE",
    "PROVENANCE_SCHEMA",
    "provenance_doc",
    "write_harmonization",
    "write_provenance",
]
