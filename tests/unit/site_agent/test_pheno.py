"""plink-style phenotype/covariate tables and matching them to the .fam samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from genofed.common.errors import InputError
from genofed.site_agent.io.pheno import match_samples, read_pheno_table
from genofed.site_agent.io.plink import Samples


def _write(tmp_path: Path, text: str, name: str = "pheno.tsv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _samples(fid: list[str], iid: list[str]) -> Samples:
    return Samples(fid=np.array(fid), iid=np.array(iid), sex=np.zeros(len(iid), dtype=np.int8))


@pytest.mark.parametrize("first", ["#FID", "FID"])
def test_read_pheno_table__reads_plink_header_tabs_spaces_and_missing_tokens(
    tmp_path: Path, first: str
) -> None:
    path = _write(
        tmp_path,
        f"## exported 2024\n{first}\tIID\tbmi age\n"
        "f1\ts1\t22.5 40\nf1 s2 -9 NA\nf2\ts3\tnan .\n\nf2 s4 1e1 -9.0\n",
    )
    table = read_pheno_table(path)
    assert table.path == path and table.has_fid
    assert table.fid.tolist() == ["f1", "f1", "f2", "f2"]
    assert table.iid.tolist() == ["s1", "s2", "s3", "s4"]
    assert list(table.columns) == ["bmi", "age"]
    np.testing.assert_array_equal(table.column("bmi"), [22.5, np.nan, np.nan, 10.0])
    np.testing.assert_array_equal(table.column("age"), [40.0, np.nan, np.nan, np.nan])
    assert table.column("bmi").dtype == np.float64


@pytest.mark.parametrize("first", ["#IID", "IID"])
def test_read_pheno_table__iid_only_header_sets_fid_to_iid(tmp_path: Path, first: str) -> None:
    table = read_pheno_table(_write(tmp_path, f"{first} y\ns1 1\ns2 2\n"))
    assert not table.has_fid
    assert table.fid.tolist() == table.iid.tolist() == ["s1", "s2"]
    np.testing.assert_array_equal(table.column("y"), [1.0, 2.0])


def test_read_pheno_table__non_numeric_value_names_file_line_column_and_value(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path, "#FID IID bmi age\nf1 s1 22 40\nf1 s2 23 forty\n")
    with pytest.raises(InputError) as info:
        read_pheno_table(path)
    message = str(info.value)
    assert message.startswith(f"{path}:3: ")
    assert "column 'age' (column 4) has 'forty'" in message
    assert "-9, NA" in message


def test_read_pheno_table__sex_letters_hint_numeric_codes(tmp_path: Path) -> None:
    path = _write(tmp_path, "#FID IID SEX\nf1 s1 M\n")
    with pytest.raises(InputError, match="1 = male, 2 = female") as info:
        read_pheno_table(path)
    assert str(info.value).startswith(f"{path}:2: ")


def test_read_pheno_table__row_with_wrong_field_count_names_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "#FID IID a b\nf1 s1 1 2\nf1 s2 1\n")
    with pytest.raises(InputError, match="3 fields but the header has 4 columns") as info:
        read_pheno_table(path)
    assert str(info.value).startswith(f"{path}:3: ")


def test_read_pheno_table__duplicate_sample_ids_name_both_lines(tmp_path: Path) -> None:
    path = _write(tmp_path, "#FID IID a\nf1 s1 1\nf1 s2 1\nf1 s1 2\n")
    with pytest.raises(InputError, match=r"FID='f1' IID='s1' \(lines 2 and 4\)") as info:
        read_pheno_table(path)
    assert str(info.value).startswith(f"{path}:4: ")


def test_read_pheno_table__duplicate_column_names_name_both_columns(tmp_path: Path) -> None:
    path = _write(tmp_path, "#FID IID a b a\nf1 s1 1 2 3\n")
    with pytest.raises(InputError, match=r"'a' appears twice \(columns 3 and 5\)") as info:
        read_pheno_table(path)
    assert str(info.value).startswith(f"{path}:1: ")


def test_read_pheno_table__empty_file_says_header_needed(tmp_path: Path) -> None:
    path = _write(tmp_path, "\n\n")
    with pytest.raises(InputError, match="empty file") as info:
        read_pheno_table(path)
    assert str(info.value).startswith(f"{path}: ") and "#FID IID" in str(info.value)


@pytest.mark.parametrize("header", ["s1 s2 1.5", "#FID sample y"])
def test_read_pheno_table__missing_fid_iid_header_names_line(tmp_path: Path, header: str) -> None:
    path = _write(tmp_path, f"{header}\nf1 s1 1\n")
    with pytest.raises(InputError, match="FID") as info:
        read_pheno_table(path)
    assert str(info.value).startswith(f"{path}:1: ")


def test_pheno_table__missing_column_lists_available_columns(tmp_path: Path) -> None:
    path = _write(tmp_path, "#FID IID bmi age\nf1 s1 1 2\n")
    table = read_pheno_table(path)
    with pytest.raises(InputError, match="no column 'BMI'; the columns are: bmi, age") as info:
        table.column("BMI")
    assert str(info.value).startswith(f"{path}: ")


def test_pheno_table__is_binary_for_case_control_and_zero_one_codings(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "#FID IID cc zo q empty\nf s1 1 0 1 NA\nf s2 2 1 2 NA\nf s3 -9 NA 0.5 NA\n",
    )
    table = read_pheno_table(path)
    assert table.is_binary("cc") and table.is_binary("zo")
    assert not table.is_binary("q") and not table.is_binary("empty")


def test_match_samples__keeps_fam_order_and_intersects_every_table(tmp_path: Path) -> None:
    samples = _samples(["f"] * 5, ["s0", "s1", "s2", "s3", "s4"])
    pheno = read_pheno_table(_write(tmp_path, "#FID IID y\nf s3 1\nf s1 2\nf s0 3\nf x9 4\n"))
    covar = read_pheno_table(_write(tmp_path, "#IID age\ns0 1\ns3 2\ns4 3\n", "covar.tsv"))
    match = match_samples(samples, pheno, covar)
    assert match.genotype_idx.tolist() == [0, 3]
    assert match.genotype_idx.dtype == np.int64
    assert [t.tolist() for t in match.table_idx] == [[2, 0], [0, 1]]
    assert (match.n_genotyped, match.n_in_tables, match.n_matched) == (5, (4, 3), 2)


def test_match_samples__fid_must_agree_when_table_has_fid(tmp_path: Path) -> None:
    samples = _samples(["0", "0"], ["s0", "s1"])
    table = read_pheno_table(_write(tmp_path, "#FID IID y\ns0 s0 1\n0 s1 2\n"))
    assert match_samples(samples, table).genotype_idx.tolist() == [1]


def test_match_samples__iid_only_table_with_ambiguous_fam_iids_names_table(
    tmp_path: Path,
) -> None:
    samples = _samples(["a", "b"], ["s0", "s0"])
    path = _write(tmp_path, "#IID y\ns0 1\n")
    with pytest.raises(InputError, match="no FID column") as info:
        match_samples(samples, read_pheno_table(path))
    assert str(info.value).startswith(f"{path}: ")


def test_read_pheno_table__first_problem_is_reported_whichever_comes_first(
    tmp_path: Path,
) -> None:
    """A bad value before a short row is the error, as when rows are read one by one."""
    path = tmp_path / "p.tsv"
    path.write_text("#FID IID A B\nf1 s1 1 2\nf2 s2 x 2\nf3 s3 1\nf4 s4 inf 1\n")
    with pytest.raises(InputError, match="has 'x', which is not a number") as info:
        read_pheno_table(path)
    assert str(info.value).startswith(f"{path}:3: ")
    path.write_text("#FID IID A B\nf1 s1 1 2\nf2 s2 1e999 2\nf1 s1 1 2\n")
    with pytest.raises(InputError, match="not finite") as info:
        read_pheno_table(path)
    assert str(info.value).startswith(f"{path}:3: ")


def test_read_pheno_table__every_missing_spelling_and_number_reads_as_one_by_one(
    tmp_path: Path,
) -> None:
    tokens = ["NA", "na", "Na", "nA", ".", "nan", "NaN", "-nan", "-9", "-9.0", "-9e0", "1", "2.5"]
    tokens += ["-8.99", "1e-3", "+4", "0", "-0"]
    path = tmp_path / "p.tsv"
    lines = [f"f{i} s{i} {t} {t}" for i, t in enumerate(tokens)]
    path.write_text("#FID IID A B\n" + "\n".join(lines) + "\n")
    table = read_pheno_table(path)
    want = [
        np.nan if t.upper() in {"NA", "NAN", ".", "-NAN"} or float(t) == -9 else float(t)
        for t in tokens
    ]
    np.testing.assert_array_equal(table.column("A"), want)
    np.testing.assert_array_equal(table.column("B"), want)
