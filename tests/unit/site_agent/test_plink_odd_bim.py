"""Odd ``.bim`` content, handled as plink2 v2.00a3.5 handles it or refused with file and line.

What plink2 does was measured on this machine (``tests/reference/test_odd_bim_vs_plink2.py``
checks it again): it keeps position 0 and alleles of any spelling, writes PLINK 1's
missing allele ``0`` as ``.``, skips a variant with a negative position, and refuses a
``.bim`` that starts with a UTF-8 byte-order mark (the mark becomes part of the first
chromosome code).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from genofed.common.errors import InputError
from genofed.site_agent.io import plink
from genofed.site_agent.io.plink import BedFile
from tests.unit.site_agent.test_plink import write_fileset


def _edit(bim: Path, line: int, column: int, value: str) -> None:
    lines = bim.read_text().splitlines()
    fields = lines[line].split("\t")
    fields[column] = value
    lines[line] = "\t".join(fields)
    bim.write_text("\n".join(lines) + "\n")


def test_bim_negative_position__is_refused_naming_file_line_and_plink2s_fix(
    tmp_path: Path,
) -> None:
    bed_path, _ = write_fileset(tmp_path)
    bim = tmp_path / "cohort.bim"
    _edit(bim, 9, 3, "-1")
    with pytest.raises(InputError, match=r"column 4 \(position\) is '-1'") as info:
        _ = BedFile(bed_path).variants
    assert str(info.value).startswith(f"{bim}:10: ")
    assert "plink2 skips" in str(info.value)
    assert f"plink2 --bfile {tmp_path / 'cohort'} --make-bed" in str(info.value.hint)


def test_bim_negative_position__in_a_later_block_after_blank_lines_names_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plink, "BIM_BLOCK_LINES", 4)
    bed_path, _ = write_fileset(tmp_path)
    bim = tmp_path / "cohort.bim"
    lines = bim.read_text().splitlines()
    fields = lines[22].split("\t")
    fields[3] = "-1220"
    lines[22] = "\t".join(fields)
    bim.write_text("\n".join(lines[:3]) + "\n\n  \n" + "\n".join(lines[3:]) + "\n")
    with pytest.raises(InputError, match="'-1220'") as info:
        _ = BedFile(bed_path).variants
    assert str(info.value).startswith(f"{bim}:25: ")


def test_bim_a_bad_column_count_later_still_wins_over_a_negative_position(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same order as for any bad position: the first short line of the file first."""
    monkeypatch.setattr(plink, "BIM_BLOCK_LINES", 4)
    bed_path, _ = write_fileset(tmp_path)
    bim = tmp_path / "cohort.bim"
    _edit(bim, 2, 3, "-5")
    lines = bim.read_text().splitlines()
    lines[30] = lines[30].rsplit("\t", 1)[0]
    bim.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="expected 6 columns") as info:
        _ = BedFile(bed_path).variants
    assert str(info.value).startswith(f"{bim}:31: ")


def test_bim_position_zero__is_kept_as_plink2_keeps_it(tmp_path: Path) -> None:
    bed_path, _ = write_fileset(tmp_path)
    _edit(tmp_path / "cohort.bim", 0, 3, "0")
    variants = BedFile(bed_path).variants
    assert variants.pos[0] == 0 and len(variants) == 37


@pytest.mark.parametrize("separator", ["\t", " "])
def test_bim_byte_order_mark__is_refused_at_line_1_not_read_into_the_chromosome(
    tmp_path: Path, separator: str
) -> None:
    bed_path, _ = write_fileset(tmp_path)
    bim = tmp_path / "cohort.bim"
    text = bim.read_text().replace("\t", separator)
    bim.write_bytes(b"\xef\xbb\xbf" + text.encode())
    opened = BedFile(bed_path)  # counting lines is unaffected
    assert opened.n_variants == 37
    with pytest.raises(InputError, match="byte-order mark") as info:
        _ = opened.variants
    assert str(info.value).startswith(f"{bim}:1: ")
    assert "sed -i" in str(info.value.hint)


def test_bim_odd_alleles__kept_as_written_and_plink1s_missing_allele_becomes_a_dot(
    tmp_path: Path,
) -> None:
    write_fileset(tmp_path)
    bim = tmp_path / "cohort.bim"
    odd = ["0", "N", "AT", "a", "<DEL>", "*", "."]
    for i, allele in enumerate(odd):
        _edit(bim, i, 4, allele)  # column 5: A1, read as ALT
    _edit(bim, 7, 5, "0")  # column 6: A2, read as REF
    variants = plink.read_bim(bim)
    assert variants.alt[:7].tolist() == [".", "N", "AT", "a", "<DEL>", "*", "."]
    assert variants.ref[7] == "." and variants.ref[0] == "G"
    assert variants.alt[8:].tolist() == ["A"] * 29


def test_bim_without_odd_content__arrays_are_the_very_same(tmp_path: Path) -> None:
    """No ``0`` allele: the columns are returned untouched (same dtype and values)."""
    write_fileset(tmp_path)
    variants = plink.read_bim(tmp_path / "cohort.bim")
    assert variants.alt.dtype == np.dtype("<U1") and variants.ref.dtype == np.dtype("<U1")
    assert variants.pos.tolist() == [1000 + 10 * i for i in range(37)]


def test_fam_byte_order_mark__is_refused_at_line_1_not_read_into_the_fid(tmp_path: Path) -> None:
    _, _ = write_fileset(tmp_path)
    fam = tmp_path / "cohort.fam"
    fam.write_bytes(b"\xef\xbb\xbf" + fam.read_bytes())
    with pytest.raises(InputError, match="byte-order mark") as info:
        plink.read_fam(fam)
    assert str(info.value).startswith(f"{fam}:1: ") and "FID" in str(info.value)


def test_pheno_byte_order_mark__a_spreadsheet_export_reads_as_without_it(tmp_path: Path) -> None:
    from genofed.site_agent.io.pheno import read_pheno_table

    plain = tmp_path / "plain.tsv"
    plain.write_text("#FID\tIID\tQ\nf1\ti1\t1.5\nf2\ti2\tNA\n")
    marked = tmp_path / "marked.tsv"
    marked.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    a, b = read_pheno_table(plain), read_pheno_table(marked)
    assert list(b.columns) == list(a.columns) == ["Q"]
    assert b.fid.tolist() == a.fid.tolist() and b.has_fid == a.has_fid
    np.testing.assert_array_equal(b.column("Q"), a.column("Q"))
