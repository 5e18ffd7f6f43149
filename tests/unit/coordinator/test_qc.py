"""The pooled QC's rules: withheld variants, the order a failure is counted in, keep-fewhet."""

from __future__ import annotations

import numpy as np

from genofed.coordinator.combine.qc import QC_RULES, variant_qc

# [HOM_REF, HET, HOM_ALT, MISSING] of 100 samples
COUNTS = np.array(
    [
        [49, 42, 9, 0],  # common, in HWE: kept
        [90, 0, 0, 10],  # monomorphic and 10 % missing: geno first
        [99, 1, 0, 0],  # MAF 0.005: maf
        [0, 0, 0, 100],  # no calls: geno; without geno kept by maf (0.5) and hwe
        [50, 0, 50, 0],  # no heterozygotes: hwe, unless keep-fewhet
        [0, 100, 0, 0],  # all heterozygous: hwe, also with keep-fewhet
        [97, 3, 0, 0],  # 3 minor alleles: mac 5
        [49, 42, 9, 0],  # withheld by a site
    ]
)
IDS = [f"v{i}" for i in range(len(COUNTS))]
WITHHELD = np.array([False] * 7 + [True])


def _rules(result) -> list[str]:
    rule_of = dict.fromkeys(IDS, "kept")
    for rule, mask in result.removed:
        for i in np.flatnonzero(mask):
            rule_of[IDS[i]] = rule
    return list(rule_of.values())


def test_each_variant__counted_against_the_first_rule_it_fails_in_plink2s_order() -> None:
    result = variant_qc(COUNTS, IDS, maf=0.01, mac=5, geno=0.05, hwe=1e-6, withheld=WITHHELD)
    assert _rules(result) == ["kept", "geno", "maf", "geno", "hwe", "hwe", "mac", "withheld"]
    assert [r for r, _ in result.removed] == list(QC_RULES)
    funnel = result.funnel(["geno", "hwe", "maf", "mac"])
    assert funnel == [
        {"rule": "withheld", "removed": 1, "left": 7},
        {"rule": "geno", "removed": 2, "left": 5},
        {"rule": "hwe", "removed": 2, "left": 3},
        {"rule": "maf", "removed": 1, "left": 2},
        {"rule": "mac", "removed": 1, "left": 1},
    ]


def test_keep_fewhet__keeps_a_het_deficit_and_an_all_missing_variant_passes_maf_and_hwe() -> None:
    result = variant_qc(COUNTS, IDS, maf=0.01, hwe=1e-6, hwe_keep_fewhet=True)
    assert _rules(result) == ["kept", "maf", "maf", "kept", "kept", "hwe", "kept", "kept"]


def test_extract_then_exclude__by_id() -> None:
    result = variant_qc(COUNTS, IDS, extract=["v0", "v1", "v2"], exclude=["v1"])
    assert _rules(result)[:3] == ["kept", "exclude", "kept"]
    assert result.removed_by("extract").sum() == 5
    assert list(np.flatnonzero(result.before("geno"))) == [0, 2]
