"""The pooled variant QC's files and summary (``[qc]``, :mod:`..combine.qc`).

* ``qc.snplist``: the IDs of the variants QC kept, one per line, in the
  study's variant order (plink2 ``--write-snplist``);
* ``qc.removed.tsv``: each variant QC removed and the first rule it failed;
* the summary's ``qc`` key: the rules, and the funnel (variants in, removed
  by each rule, left), which the analyst's report shows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genofed.common.study import QCSpec
from genofed.coordinator.combine.harmonize import VariantTable
from genofed.coordinator.combine.qc import QCResult
from genofed.coordinator.writers.atomic import atomic_write_text

SNPLIST_FILE = "qc.snplist"
REMOVED_FILE = "qc.removed.tsv"
REMOVED_HEADER = "#CHROM\tPOS\tID\tREF\tALT\tRULE"


def active_rules(spec: QCSpec) -> list[str]:
    """The rules the study's ``[qc]`` turns on, in the order they apply."""
    on = {
        "extract": spec.extract is not None,
        "exclude": bool(spec.exclude),
        "geno": spec.geno is not None,
        "hwe": spec.hwe is not None,
        "maf": spec.maf is not None,
        "mac": spec.mac is not None,
    }
    return [rule for rule, is_on in on.items() if is_on]


def write_qc(out_dir: Path, variants: VariantTable, result: QCResult) -> list[str]:
    """Write ``qc.snplist`` and ``qc.removed.tsv``; return their names."""
    kept = variants.id[result.keep].astype(str).tolist()
    atomic_write_text(out_dir / SNPLIST_FILE, "".join(f"{v}\n" for v in kept))
    lines = [REMOVED_HEADER]
    rule_of = np.full(len(variants), "", dtype=object)
    for rule, mask in result.removed:
        rule_of[mask] = rule
    for i in np.flatnonzero(~result.keep).tolist():
        lines.append(
            f"{variants.chrom[i]}\t{variants.pos[i]}\t{variants.id[i]}\t{variants.ref[i]}"
            f"\t{variants.alt[i]}\t{rule_of[i]}"
        )
    atomic_write_text(out_dir / REMOVED_FILE, "\n".join(lines) + "\n")
    return [SNPLIST_FILE, REMOVED_FILE]


def qc_summary(spec: QCSpec, result: QCResult) -> dict[str, object]:
    """The run summary's ``qc`` key: rules, variants in, the funnel, variants left."""
    return {
        "rules": {
            k: (f"{len(v)} IDs" if isinstance(v, list) else v) for k, v in spec.to_json().items()
        },
        "variants_in": int(result.keep.size),
        "funnel": result.funnel(active_rules(spec)),
        "variants_left": int(result.keep.sum()),
    }


__all__ = ["REMOVED_FILE", "SNPLIST_FILE", "active_rules", "qc_summary", "write_qc"]
