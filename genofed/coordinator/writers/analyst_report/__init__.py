"""``report.html``: the analyst's self-contained page describing a study's results.

The page shows the study (name, hash, signer), the run (id, engine, times),
the sites (samples, policy, any site that dropped out), the release mode and
privacy costs, then one section per analysis in study order with its summary
statistics and key outputs: count tables (rows, rows withheld), glm (lambda,
top hits, Manhattan and QQ plots), pca (eigenvalues), prs (score summary and
plot), pgx (association, phenotype table), km (plot, log-rank test, curves),
cox (hazard ratios), train (AUC, calibration, epsilon per site); any other
kind gets its summary, plots and files. Which renderer shows which kind is
passed in (``sections``): the coordinator's registry says it
(:data:`genofed.coordinator.protocols.REPORT_SECTIONS`).

Self-contained: inline CSS, PNGs embedded as base64, no script and no
external resource. The run writes it from its provenance record just before
``provenance.json`` (:func:`write_report`); :func:`rewrite_report` renders it
again from a results directory's ``provenance.json`` and files
(``genofed study report``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from genofed.common.errors import InputError
from genofed.coordinator.writers.analyst_report.page import render_page
from genofed.coordinator.writers.analyst_report.sections import Renderer
from genofed.coordinator.writers.atomic import atomic_write_text
from genofed.coordinator.writers.provenance import PROVENANCE_FILE, PROVENANCE_SCHEMA

REPORT_FILE = "report.html"


def write_report(
    out_dir: Path, provenance: Mapping[str, Any], *, sections: Mapping[str, Renderer]
) -> str:
    """Write ``out_dir/report.html`` from the run's provenance record; returns its name."""
    atomic_write_text(out_dir / REPORT_FILE, render_page(out_dir, provenance, sections=sections))
    return REPORT_FILE


def rewrite_report(
    results_dir: Path, out: Path | None = None, *, sections: Mapping[str, Renderer]
) -> Path:
    """Render the report of an existing results directory to ``out`` (default: its report.html)."""
    source = results_dir / PROVENANCE_FILE
    try:
        doc = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(
            "is not a results directory (no provenance.json)",
            path=results_dir,
            hint="pass the --out directory of genofed study run",
        ) from exc
    except ValueError as exc:
        raise InputError(f"is not valid JSON: {exc}", path=source) from exc
    if not isinstance(doc, dict) or doc.get("schema") != PROVENANCE_SCHEMA:
        raise InputError(f"is not a GenoFed provenance record ({PROVENANCE_SCHEMA})", path=source)
    target = out if out is not None else results_dir / REPORT_FILE
    if target.is_dir():
        raise InputError("is a directory", path=target, hint="pass a file name, e.g. report.html")
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, render_page(results_dir, doc, sections=sections))
    return target


__all__ = ["REPORT_FILE", "rewrite_report", "write_report"]
