"""Withheld (small-cell suppressed) variants on the coordinator: checks, NA rows, listing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from genofed.common.errors import SiteFailure
from genofed.common.study import AnalysisSpec
from genofed.coordinator.combine.harmonize import VariantTable
from genofed.coordinator.protocols.counts import write_count_outputs
from genofed.coordinator.writers.suppressed import (
    POOLED_REASON,
    site_withheld,
    suppression_summary,
    write_suppressed,
)

VARIANTS = VariantTable(
    chrom=np.array(["1", "1", "2"]),
    pos=np.array([10, 20, 30]),
    id=np.array(["rs1", "rs2", "rs3"]),
    ref=np.array(["A", "C", "G"]),
    alt=np.array(["G", "T", "A"]),
)
POOLED = np.array([[50, 30, 20, 0], [60, 30, 10, 0], [90, 10, 0, 0]], dtype=np.int64)


def test_site_withheld__reads_the_mask_or_none() -> None:
    counts = np.array([[1, 2, 3, 0], [0, 0, 0, 0], [5, 5, 5, 5]])
    mask = np.array([False, True, False])
    got = site_withheld("a", {"genotype_counts": counts, "suppressed": mask}, 3)
    assert got.tolist() == [False, True, False]
    assert not site_withheld("a", {"genotype_counts": counts}, 3).any()  # dp: no mask


@pytest.mark.parametrize(
    "mask",
    [np.array([True, False, False]), np.array([1, 0, 0]), np.array([False, False])],
)
def test_site_withheld__a_mask_over_counts_or_of_bad_shape_is_a_bad_reply(mask) -> None:
    counts = np.array([[1, 2, 3, 0], [0, 0, 0, 0], [5, 5, 5, 5]])
    with pytest.raises(SiteFailure) as info:
        site_withheld("a", {"genotype_counts": counts, "suppressed": mask}, 3)
    assert info.value.reason_code == "BAD_REPLY"


def test_write_suppressed__lists_each_variant_with_how_many_sites_withheld_it_not_which(
    tmp_path: Path,
) -> None:
    masks = [np.array([False, True, False]), np.array([False, True, True])]
    assert write_suppressed(tmp_path, VARIANTS, ["a", "b"], masks) == ["suppressed.tsv"]
    lines = (tmp_path / "suppressed.tsv").read_text().splitlines()
    assert lines[0] == "#CHROM\tPOS\tID\tREF\tALT\tN_SITES\tREASON"
    assert [line.split("\t")[:6] for line in lines[1:]] == [
        ["1", "20", "rs2", "C", "T", "2"],
        ["2", "30", "rs3", "G", "A", "1"],
    ]
    assert suppression_summary(["a", "b"], masks) == {"a": 1, "b": 2, "any site": 2}
    none = [np.zeros(3, dtype=bool)] * 2
    assert write_suppressed(tmp_path / "x", VARIANTS, ["a", "b"], none) == []
    # exact mode: small pooled cells, withheld by the coordinator
    (tmp_path / "y").mkdir()
    pooled = np.array([True, False, False])
    assert write_suppressed(tmp_path / "y", VARIANTS, ["a", "b"], none, pooled) == [
        "suppressed.tsv"
    ]
    (row,) = (tmp_path / "y" / "suppressed.tsv").read_text().splitlines()[1:]
    assert row.split("\t")[5:] == ["0", POOLED_REASON]


@pytest.mark.parametrize(
    ("kind", "name", "lead"),
    [("freq", "freq.afreq", 4), ("missing", "missing.vmiss", 2), ("gcount", "geno.gcount", 4),
     ("hardy", "hardy.hardy", 4)],
)  # fmt: skip
def test_count_tables__withheld_rows_print_na_and_others_are_unchanged(
    tmp_path: Path, kind: str, name: str, lead: int
) -> None:
    spec = AnalysisSpec(id=kind, kind=kind, params={"midp": False} if kind == "hardy" else {})
    withheld = np.array([False, True, False])
    (tmp_path / "plain").mkdir()
    (tmp_path / "marked").mkdir()
    write_count_outputs(tmp_path / "plain", spec, VARIANTS, POOLED)
    _, stats = write_count_outputs(tmp_path / "marked", spec, VARIANTS, POOLED, withheld)
    plain = (tmp_path / "plain" / name).read_text().splitlines()
    marked = (tmp_path / "marked" / name).read_text().splitlines()
    assert plain[0] == marked[0] and plain[1] == marked[1] and plain[3] == marked[3]
    fields = marked[2].split("\t")
    assert fields[:lead] == plain[2].split("\t")[:lead]
    assert set(fields[lead:]) == {"NA"}
    if kind == "freq":
        assert stats["variants"] == 2
