"""Pooled variant QC versus ``plink2 --geno --hwe --maf --mac --write-snplist``.

The 600-sample x 400-variant cohort of ``test_counts_vs_plink2`` (monomorphic,
rare, HWE-violating, all-heterozygous and no-heterozygote variants, ~2 %
missing calls, an all-missing variant and a single-call one), split into three
sites: the QC of the pooled counts keeps exactly the variants plink2 keeps,
and each rule removes as many as plink2's log says.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from genofed.coordinator.combine.qc import variant_qc
from genofed.coordinator.writers.plink_tables import VariantColumns
from tests.reference.test_counts_vs_plink2 import _run_plink2, _site_counts, pooled

__all__ = ["pooled"]  # the cohort fixture, shared with test_counts_vs_plink2

CASES = [
    ({"maf": 0.01}, ["--maf", "0.01"]),
    ({"maf": 0.2, "geno": 0.02}, ["--maf", "0.2", "--geno", "0.02"]),
    ({"geno": 0.1, "hwe": 1e-6}, ["--geno", "0.1", "--hwe", "1e-6"]),
    ({"hwe": 1e-3, "hwe_midp": True}, ["--hwe", "1e-3", "midp"]),
    ({"hwe": 1e-3, "hwe_keep_fewhet": True}, ["--hwe", "1e-3", "keep-fewhet"]),
    (
        {"hwe": 0.05, "hwe_midp": True, "hwe_keep_fewhet": True},
        ["--hwe", "0.05", "midp", "keep-fewhet"],
    ),
    ({"mac": 3}, ["--mac", "3"]),
    (
        {"maf": 0.05, "mac": 20, "geno": 0.025, "hwe": 1e-4},
        ["--maf", "0.05", "--mac", "20", "--geno", "0.025", "--hwe", "1e-4"],
    ),
    ({"geno": 0.005}, ["--geno", "0.005"]),  # at most 3 of 600 samples may miss
]


def _log_counts(log: str) -> dict[str, int]:
    found = {}
    for rule, pattern in (
        ("geno", r"--geno: (\d+) variants? removed"),
        ("hwe", r"--hwe[^:]*: (\d+) variants? removed"),
        ("freq", r"(\d+) variants? removed due to allele frequency"),
    ):
        m = re.search(pattern, log)
        if m:
            found[rule] = int(m[1])
    return found


@pytest.mark.parametrize(("params", "flags"), CASES, ids=[" ".join(f) for _, f in CASES])
def test_qc__keeps_plink2s_variants_and_counts_its_removals(
    plink2: Path,
    pooled: tuple[Path, np.ndarray, VariantColumns],
    tmp_path: Path,
    params: dict[str, object],
    flags: list[str],
) -> None:
    prefix, dos, variants = pooled
    result = variant_qc(_site_counts(dos), list(variants.id), **params)  # type: ignore[arg-type]
    out = tmp_path / "p2"
    _run_plink2(plink2, prefix, out, *flags, "--write-snplist")
    theirs = out.with_suffix(".snplist").read_text().split()
    ours = [v for v, k in zip(variants.id, result.keep, strict=True) if k]
    assert ours == theirs
    assert 0 < len(theirs) < len(variants.id)
    log = _log_counts(out.with_suffix(".log").read_text())
    removed = {rule: int(mask.sum()) for rule, mask in result.removed}
    if "geno" in params:
        assert removed["geno"] == log["geno"]
    if "hwe" in params:
        assert removed["hwe"] == log["hwe"]
    if "maf" in params or "mac" in params:
        assert removed["maf"] + removed["mac"] == log["freq"]
