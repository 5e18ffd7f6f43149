"""Variant harmonization across sites."""

from __future__ import annotations

import numpy as np
import pytest

from genofed.common.errors import HarmonizationError
from genofed.coordinator.combine.harmonize import VariantTable, harmonize


def _table(rows: list[tuple[str, int, str, str, str]]) -> VariantTable:
    chrom, pos, ids, ref, alt = zip(*rows, strict=True)
    return VariantTable(
        np.array(chrom), np.array(pos, dtype=np.int64), np.array(ids), np.array(ref), np.array(alt)
    )


REF = [("1", 100, "v1", "A", "G"), ("1", 200, "v2", "C", "T"), ("2", 50, "v3", "G", "A")]


def test_harmonize__identical_sites_map_one_to_one() -> None:
    h = harmonize(["a", "b"], [_table(REF), _table(REF)], allow_intersection=False)
    assert list(h.variants.id) == ["v1", "v2", "v3"]
    for plan in h.plans:
        assert plan.index.tolist() == [0, 1, 2]
        assert not plan.flip.any()
    assert all(r.clean for r in h.reports)


def test_harmonize__swapped_alleles_and_other_order_are_aligned() -> None:
    other = [
        ("chr2", 50, "x3", "A", "G"),
        ("chr1", 100, "x1", "A", "G"),
        ("chr1", 200, "x2", "T", "C"),
    ]
    h = harmonize(["a", "b"], [_table(REF), _table(other)], allow_intersection=False)
    assert h.plans[1].index.tolist() == [1, 2, 0]
    assert h.plans[1].flip.tolist() == [False, True, True]
    assert h.reports[1].n_swapped == 2
    assert list(h.variants.chrom) == ["1", "1", "2"]  # the first site's naming


def test_harmonize__missing_variant_stops_with_counts_per_site() -> None:
    with pytest.raises(HarmonizationError) as info:
        harmonize(["a", "b"], [_table(REF), _table(REF[:2])], allow_intersection=False)
    text = str(info.value)
    assert "b: 2 variants, 2 match the first site, 1 missing" in text
    assert "b lacks v3" in text
    assert "intersect" in text


def test_harmonize__intersection_when_allowed() -> None:
    other = [*REF[:2], ("2", 50, "v3", "G", "C"), ("3", 7, "v4", "A", "C")]
    h = harmonize(["a", "b"], [_table(REF), _table(other)], allow_intersection=True)
    assert list(h.variants.id) == ["v1", "v2"]
    report = h.reports[1]
    assert (report.n_missing, report.n_extra, report.n_allele_mismatch) == (1, 2, 1)


def test_harmonize__duplicate_variant_always_stops() -> None:
    with pytest.raises(HarmonizationError, match="duplicated"):
        harmonize(["a", "b"], [_table(REF), _table([*REF, REF[0]])], allow_intersection=True)


def test_harmonize__non_autosomal_variant_stops_with_fix() -> None:
    rows = [*REF, ("X", 10, "vx", "A", "C")]
    with pytest.raises(HarmonizationError, match="--autosome"):
        harmonize(["a", "b"], [_table(rows), _table(rows)], allow_intersection=False)


def test_harmonize__nothing_in_common_stops() -> None:
    with pytest.raises(HarmonizationError, match="no variant in common"):
        harmonize(["a", "b"], [_table(REF[:1]), _table(REF[1:])], allow_intersection=True)


def test_harmonize__split_multi_allelic_variants_with_repeated_ids_match_by_alleles() -> None:
    """Two ALTs of one VCF record (the record's ID on each) are two variants, like any."""
    first = [("1", 100, "rs1", "A", "G"), ("1", 100, "rs1", "A", "T"), ("1", 200, "v2", "C", "T")]
    other = [("1", 100, "rs1", "A", "T"), ("chr1", 100, "rs1", "A", "G"), ("1", 200, "x", "C", "T")]
    h = harmonize(["a", "b"], [_table(first), _table(other)], allow_intersection=False)
    assert h.plans[1].index.tolist() == [1, 0, 2]
    assert not h.plans[1].flip.any() and all(r.clean for r in h.reports)


def test_harmonize__a_swap_at_a_site_holding_another_alt_there_stops_with_fix() -> None:
    """Swapped, ``2 - g`` would count the site's other ALT with the first site's REF."""
    first = [("1", 100, "rs1", "A", "G"), ("1", 200, "v2", "C", "T")]
    other = [("1", 100, "rs1", "G", "A"), ("1", 100, "rs1", "G", "T"), ("1", 200, "v2", "C", "T")]
    with pytest.raises(HarmonizationError, match="its alleles cannot be swapped") as info:
        harmonize(["a", "b"], [_table(first), _table(other)], allow_intersection=True)
    assert "b holds rs1 (1:100 G/A) with REF G where the first site's REF is A" in str(info.value)
    assert "bcftools norm -f reference.fa -c s" in str(info.value)
    swapped_alone = [("1", 100, "rs1", "G", "A"), ("1", 100, "rs9", "GT", "G"), first[1]]
    h = harmonize(["a", "b"], [_table(first), _table(swapped_alone)], allow_intersection=True)
    assert h.plans[1].flip.tolist() == [True, False]  # an indel at that position is no other ALT
