"""The PLINK 1 reader: equal to bed-reader, streamed in chunks, and loud about bad files."""

from __future__ import annotations

from pathlib import Path

import bed_reader
import numpy as np
import pytest

from genofed.common.errors import InputError
from genofed.site_agent.io import plink
from genofed.site_agent.io.plink import MISSING, BedFile, count_lines

N_SAMPLES, N_VARIANTS = 23, 37  # neither divides by 4 nor by the chunk sizes below


def write_fileset(
    directory: Path, n_samples: int = N_SAMPLES, n_variants: int = N_VARIANTS, seed: int = 0
) -> tuple[Path, np.ndarray]:
    """A random fileset with ~15% missing calls; returns the .bed path and the genotypes."""
    rng = np.random.default_rng(seed)
    genotypes = rng.integers(0, 3, size=(n_samples, n_variants)).astype(np.float32)
    genotypes[rng.random(genotypes.shape) < 0.15] = np.nan
    bed = directory / "cohort.bed"
    bed_reader.to_bed(
        bed,
        genotypes,
        properties={
            "fid": [f"fam{i // 2}" for i in range(n_samples)],
            "iid": [f"s{i}" for i in range(n_samples)],
            "sex": [1 + i % 2 for i in range(n_samples)],
            "chromosome": ["1"] * (n_variants - 1) + ["X"],
            "sid": [f"rs{i}" for i in range(n_variants)],
            "bp_position": [1000 + 10 * i for i in range(n_variants)],
            "allele_1": ["A"] * n_variants,
            "allele_2": ["G"] * n_variants,
        },
        count_A1=True,
    )
    return bed, genotypes


def _expected(bed: Path) -> np.ndarray:
    """bed-reader's answer, variants x samples, with -9 for missing."""
    with bed_reader.open_bed(bed, count_A1=True, num_threads=1) as ref:
        values = ref.read(dtype="int8").T
    return np.where(values == -127, MISSING, values).astype(np.int8)


def _collect(bed: BedFile, variant_idx, sample_idx, chunk: int) -> np.ndarray:
    blocks, offset = [], 0
    for start, block in bed.iter_dosages(variant_idx, sample_idx=sample_idx, chunk_variants=chunk):
        assert start == offset
        assert block.dtype == np.int8
        assert 1 <= block.shape[0] <= chunk
        blocks.append(block)
        offset += block.shape[0]
    return np.concatenate(blocks)


@pytest.mark.parametrize("chunk", [1, 5, 16, 4096])
@pytest.mark.parametrize("variant_order", ["all", "shuffled", "subset_unsorted"])
@pytest.mark.parametrize("samples", ["all", "subset"])
def test_bedfile__matches_bed_reader_for_any_variant_order_sample_subset_and_chunk(
    tmp_path: Path, chunk: int, variant_order: str, samples: str
) -> None:
    bed_path, _ = write_fileset(tmp_path)
    expected = _expected(bed_path)
    assert (expected == MISSING).any()
    rng = np.random.default_rng(chunk)
    variant_idx = {
        "all": None,
        "shuffled": rng.permutation(N_VARIANTS),
        "subset_unsorted": np.array([30, 2, 17, 2, 36, 0, 9]),
    }[variant_order]
    sample_idx = None if samples == "all" else np.sort(rng.choice(N_SAMPLES, 11, replace=False))
    with BedFile(bed_path) as bed:
        got = _collect(bed, variant_idx, sample_idx, chunk)
    rows = np.arange(N_VARIANTS) if variant_idx is None else variant_idx
    cols = np.arange(N_SAMPLES) if sample_idx is None else sample_idx
    np.testing.assert_array_equal(got, expected[np.ix_(rows, cols)])


def test_bedfile__dosages_count_bim_column5_allele_as_alt(tmp_path: Path) -> None:
    bed_path, genotypes = write_fileset(tmp_path)
    with BedFile(bed_path) as bed:
        (_, block), *_ = bed.iter_dosages(chunk_variants=N_VARIANTS)
        variants, samples = bed.variants, bed.samples
    truth = np.where(np.isnan(genotypes), MISSING, genotypes).astype(np.int8).T
    np.testing.assert_array_equal(block, truth)
    assert variants.alt[0] == "A" and variants.ref[0] == "G"
    assert variants.chrom[-1] == "X" and variants.pos.dtype == np.int64
    assert variants.pos[3] == 1030 and variants.id[3] == "rs3"
    assert len(variants) == N_VARIANTS and len(samples) == N_SAMPLES
    assert samples.fid[3] == "fam1" and samples.iid[3] == "s3"
    assert samples.sex.tolist()[:3] == [1, 2, 1] and samples.sex.dtype == np.int8


def test_bedfile__accepts_prefix_without_bed_suffix(tmp_path: Path) -> None:
    bed_path, _ = write_fileset(tmp_path)
    with BedFile(tmp_path / "cohort") as bed:
        assert bed.path == bed_path
        assert (bed.n_samples, bed.n_variants) == (N_SAMPLES, N_VARIANTS)


def test_bedfile__rejects_unsorted_sample_idx(tmp_path: Path) -> None:
    bed_path, _ = write_fileset(tmp_path)
    with BedFile(bed_path) as bed, pytest.raises(ValueError, match="sorted"):
        bed.iter_dosages(sample_idx=np.array([3, 1]))


def test_bedfile__closed_file_refuses_to_read(tmp_path: Path) -> None:
    bed_path, _ = write_fileset(tmp_path)
    bed = BedFile(bed_path)
    chunks = bed.iter_dosages()
    bed.close()
    with pytest.raises(ValueError, match="closed"):
        next(chunks)


def test_bedfile__missing_fam_names_file(tmp_path: Path) -> None:
    bed_path, _ = write_fileset(tmp_path)
    (tmp_path / "cohort.fam").unlink()
    with pytest.raises(InputError, match="file not found") as info:
        BedFile(bed_path)
    assert info.value.path == str(tmp_path / "cohort.fam")


def test_bedfile__truncated_bed_names_file_and_sizes(tmp_path: Path) -> None:
    bed_path, _ = write_fileset(tmp_path)
    data = bed_path.read_bytes()
    bed_path.write_bytes(data[:-5])
    with pytest.raises(InputError) as info:
        BedFile(bed_path)
    message = str(info.value)
    assert str(bed_path) in message
    assert f"size is {len(data) - 5} bytes" in message
    assert f"need {len(data)} bytes" in message
    assert f"{N_VARIANTS} variants" in message and f"{N_SAMPLES} samples" in message


def test_bedfile__wrong_magic_bytes_names_file(tmp_path: Path) -> None:
    bed_path, _ = write_fileset(tmp_path)
    data = bytearray(bed_path.read_bytes())
    data[0:3] = b"ABC"
    bed_path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"not a PLINK 1 \.bed") as info:
        BedFile(bed_path)
    assert str(info.value).startswith(f"{bed_path}: ")
    assert "41 42 43" in str(info.value)


def test_bedfile__individual_major_bed_says_convert(tmp_path: Path) -> None:
    bed_path, _ = write_fileset(tmp_path)
    data = bytearray(bed_path.read_bytes())
    data[2] = 0x00
    bed_path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="individual-major") as info:
        BedFile(bed_path)
    assert str(bed_path) in str(info.value) and "--make-bed" in str(info.value)


@pytest.mark.parametrize("which", ["bim", "fam"])
def test_bedfile__bim_or_fam_line_count_disagreeing_with_bed_size_names_both_counts(
    tmp_path: Path, which: str
) -> None:
    bed_path, _ = write_fileset(tmp_path)
    side = tmp_path / f"cohort.{which}"
    lines = side.read_text().splitlines(keepends=True)
    side.write_text("".join(lines[:-4]))  # 23 -> 19 samples changes ceil(n/4) too
    n_variants = N_VARIANTS - 4 if which == "bim" else N_VARIANTS
    n_samples = N_SAMPLES - 4 if which == "fam" else N_SAMPLES
    with pytest.raises(InputError) as info:
        BedFile(bed_path)
    message = str(info.value)
    assert message.startswith(f"{bed_path}: ")
    assert f"cohort.bim has {n_variants} variants" in message
    assert f"cohort.fam has {n_samples} samples" in message


def test_bedfile__bim_line_with_wrong_column_count_names_file_and_line(tmp_path: Path) -> None:
    bed_path, _ = write_fileset(tmp_path)
    bim = tmp_path / "cohort.bim"
    lines = bim.read_text().splitlines()
    lines[4] = lines[4].rsplit("\t", 1)[0]
    bim.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="expected 6 columns") as info:
        _ = BedFile(bed_path).variants  # the .bim is parsed on first use
    assert str(info.value).startswith(f"{bim}:5: ")
    assert "found 5" in str(info.value)


def test_bedfile__bim_non_integer_position_names_file_line_and_column(tmp_path: Path) -> None:
    bed_path, _ = write_fileset(tmp_path)
    bim = tmp_path / "cohort.bim"
    lines = bim.read_text().splitlines()
    fields = lines[6].split("\t")
    fields[3] = "12.5kb"
    lines[6] = "\t".join(fields)
    bim.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"column 4 \(position\) is '12.5kb'") as info:
        _ = BedFile(bed_path).variants  # the .bim is parsed on first use
    assert str(info.value).startswith(f"{bim}:7: ")


def test_bedfile__fam_line_with_wrong_column_count_names_file_and_line(tmp_path: Path) -> None:
    bed_path, _ = write_fileset(tmp_path)
    fam = tmp_path / "cohort.fam"
    lines = fam.read_text().splitlines()
    lines[1] += " extra"
    fam.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="found 7") as info:
        BedFile(bed_path)
    assert str(info.value).startswith(f"{fam}:2: ")


def test_bedfile__duplicate_sample_ids_name_both_lines(tmp_path: Path) -> None:
    bed_path, _ = write_fileset(tmp_path)
    fam = tmp_path / "cohort.fam"
    lines = fam.read_text().splitlines()
    lines[9] = lines[2]
    fam.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"FID='fam1' IID='s2' \(lines 3 and 10\)") as info:
        BedFile(bed_path)
    assert str(info.value).startswith(f"{fam}:10: ")


def test_bedfile__bim_with_crlf_and_blank_lines_reads_the_same(tmp_path: Path) -> None:
    bed_path, _ = write_fileset(tmp_path)
    with BedFile(bed_path) as bed:
        before = bed.variants
    bim = tmp_path / "cohort.bim"
    lines = bim.read_text().splitlines()
    bim.write_bytes(("\r\n".join(lines[:3]) + "\r\n\r\n  \n" + "\n".join(lines[3:])).encode())
    with BedFile(bed_path) as bed:
        after = bed.variants
    for field in ("chrom", "pos", "id", "ref", "alt"):
        np.testing.assert_array_equal(getattr(after, field), getattr(before, field))


def test_bedfile__bad_bim_line_opens_but_variants_name_file_and_line(tmp_path: Path) -> None:
    bed_path, _ = write_fileset(tmp_path)
    bim = tmp_path / "cohort.bim"
    lines = bim.read_text().splitlines()
    lines[4] = lines[4].rsplit("\t", 1)[0]
    bim.write_text("\n".join(lines) + "\n")
    bed = BedFile(bed_path)  # only counted at open: requests that need no variant table work
    assert (bed.n_samples, bed.n_variants) == (N_SAMPLES, N_VARIANTS)
    np.testing.assert_array_equal(_collect(bed, None, None, 16), _expected(bed_path))
    for _ in range(2):  # every read of the table fails the same way
        with pytest.raises(InputError, match="expected 6 columns") as info:
            _ = bed.variants
        assert str(info.value).startswith(f"{bim}:5: ")
        assert "found 5" in str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        "a\nb\nc\n",
        "a\nb\nc",
        "\n\na\n\n  \nb\r\n\r\n\t\nc\n  ",
        "  \na\n",
        "a\r\nb\r\n",
        "",
        "\n \n",
    ],
)
def test_count_lines__counts_the_lines_the_parser_keeps(tmp_path: Path, text: str) -> None:
    path = tmp_path / "x.txt"
    path.write_bytes(text.encode())
    assert count_lines(path) == sum(1 for line in text.splitlines() if line.strip())


def test_bedfile__bim_line_count_differing_from_the_parse_is_an_error(tmp_path: Path) -> None:
    bed_path, _ = write_fileset(tmp_path)
    bim = tmp_path / "cohort.bim"
    lines = bim.read_text().splitlines()
    bed = BedFile(bed_path)
    bim.write_text("\n".join(lines[:-1]) + "\n")  # changed after the fileset was opened
    with pytest.raises(InputError, match=f"has {N_VARIANTS - 1} variant lines") as info:
        _ = bed.variants
    assert str(info.value).startswith(f"{bim}: ")


def _bim_fields(variants: plink.Variants) -> list[tuple[str, list[object]]]:
    return [
        (getattr(variants, f).dtype.str, getattr(variants, f).tolist())
        for f in ("chrom", "pos", "id", "ref", "alt")
    ]


def test_read_bim__blocks_parse_as_the_whole_file(tmp_path: Path) -> None:
    lines = [f"1\trs{i}\t0\t{1000 + i}\tA\tG" for i in range(20)]
    lines[13] = "22\trs_much_longer_id_13\t0.5\t999999\tACGT\tT"  # widest strings in a late block
    lines[17] = "X\trsé17\t0\t5\tA\tC"  # not ASCII
    text = "\n\n" + "\n".join(lines[:6]) + "\n  \n\t\n" + "\r\n".join(lines[6:]) + "\r\n\r\n"
    bim = tmp_path / "x.bim"
    bim.write_bytes(text.encode())
    whole = _bim_fields(plink.read_bim(bim, block_lines=10**6))
    assert whole[2][0] == "<U20" and whole[1][1][:2] == [1000, 1001]
    for block_lines in (1, 2, 3, 4, 7, 16, 30):
        assert _bim_fields(plink.read_bim(bim, block_lines=block_lines)) == whole


def test_bedfile__bad_bim_line_in_a_later_block_names_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plink, "BIM_BLOCK_LINES", 4)
    bed_path, _ = write_fileset(tmp_path)
    bim = tmp_path / "cohort.bim"
    good = bim.read_text().splitlines()

    def write(lines: list[str]) -> None:
        # a CRLF head and two blank lines: lines[k] is file line k + 3 for k >= 3
        bim.write_text("\r\n".join(lines[:3]) + "\r\n\n  \n" + "\n".join(lines[3:]) + "\n")

    lines = good[:]
    lines[22] = lines[22].rsplit("\t", 1)[0]
    write(lines)
    with pytest.raises(InputError, match="expected 6 columns") as info:
        _ = BedFile(bed_path).variants
    assert str(info.value).startswith(f"{bim}:25: ")
    assert "found 5" in str(info.value)

    lines = good[:]
    lines[22] = lines[22].replace("\t1220\t", "\t12x20\t")
    write(lines)
    with pytest.raises(InputError, match=r"column 4 \(position\) is '12x20'") as info:
        _ = BedFile(bed_path).variants
    assert str(info.value).startswith(f"{bim}:25: ")

    # As in one parse of the whole file, a bad column count anywhere beats an earlier bad position.
    lines[33] += "\textra"
    write(lines)
    with pytest.raises(InputError, match="found 7") as info:
        _ = BedFile(bed_path).variants
    assert str(info.value).startswith(f"{bim}:36: ")
