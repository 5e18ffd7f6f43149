"""The VCF/BCF reader: BedFile's interface and chunks on the same data, GT rules, loud errors.

The comparisons with ``plink2 --vcf`` on the same files (odd files, plink2-exported
cohorts, a real 1000 Genomes VCF) are in ``tests/reference/test_vcf_vs_plink2.py``.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pysam
import pysam.bcftools
import pytest

from genofed.common.errors import InputError
from genofed.site_agent.io import vcf as vcf_module
from genofed.site_agent.io.plink import MISSING, BedFile
from genofed.site_agent.io.vcf import VcfFile
from tests.unit.site_agent.test_plink import write_fileset

HEADER = (
    "##fileformat=VCFv4.2\n"
    "##contig=<ID=1,length=248956422>\n"
    "##contig=<ID=X,length=156040895>\n"
    "##contig=<ID=Y,length=57227415>\n"
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
    '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Read depth">\n'
)
COLUMNS = "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT"


def vcf_text(
    rows: list[str], samples: tuple[str, ...] = ("A", "B", "C"), header: str = HEADER
) -> str:
    """A VCF: the header, the #CHROM line for ``samples`` and tab-joined ``rows``."""
    return header + "\t".join((COLUMNS, *samples)) + "\n" + "".join(r + "\n" for r in rows)


def write(path: Path, rows: list[str], **kwargs: object) -> Path:
    path.write_text(vcf_text(rows, **kwargs))  # type: ignore[arg-type]
    return path


def record(chrom: str, pos: int, calls: str, vid: str = ".", ref: str = "A", alt: str = "G") -> str:
    """One data line; ``calls`` are space-separated GT values (FORMAT GT)."""
    return "\t".join((chrom, str(pos), vid, ref, alt, ".", "PASS", ".", "GT", *calls.split()))


def collect(reader: VcfFile | BedFile, variant_idx=None, sample_idx=None, chunk=1024) -> np.ndarray:
    blocks, offset = [], 0
    for start, block in reader.iter_dosages(
        variant_idx, sample_idx=sample_idx, chunk_variants=chunk
    ):
        assert start == offset
        assert block.dtype == np.int8
        assert 1 <= block.shape[0] <= chunk
        blocks.append(block)
        offset += block.shape[0]
    return np.concatenate(blocks)


# --- the same genotypes as a .bed and as VCF / bgzipped VCF / BCF, indexed or not ---------


def _gt(value: int, rng: np.random.Generator, chrom: str, male: bool) -> str:
    if chrom == "X" and male and value in (0, 2):
        return "0" if value == 0 else "1"  # a male's hemizygous call, as plink2 exports it
    phased = rng.random() < 0.5
    sep = "|" if phased else "/"
    if value == MISSING:
        return rng.choice(["./.", ".|.", "."])
    if value == 1:
        return sep.join(("0", "1") if rng.random() < 0.5 else ("1", "0"))
    return sep.join(("0", "0") if value == 0 else ("1", "1"))


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A .bed (61 samples x 150 variants, ~15% missing) and the same calls in each VCF form."""
    root = tmp_path_factory.mktemp("vcf-cohort")
    bed_path, _ = write_fileset(root, n_samples=61, n_variants=150, seed=4)
    with BedFile(bed_path) as bed:
        expected = collect(bed)
        variants, samples = bed.variants, bed.samples
    rng = np.random.default_rng(1)
    rows = []
    for k in range(len(variants)):
        chrom = str(variants.chrom[k])
        calls = [
            _gt(int(expected[k, i]), rng, chrom, samples.sex[i] == 1) for i in range(len(samples))
        ]
        rows.append(
            "\t".join(
                (
                    chrom,
                    *(str(getattr(variants, c)[k]) for c in ("pos", "id", "ref", "alt")),
                    *("50", "PASS", ".", "GT"),
                    *calls,
                )
            )
        )
    plain = write(root / "cohort.vcf", rows, samples=tuple(samples.iid.tolist()))
    gz = root / "cohort.vcf.gz"
    pysam.tabix_compress(str(plain), str(gz))
    indexed = root / "indexed.vcf.gz"
    pysam.tabix_compress(str(plain), str(indexed))
    pysam.tabix_index(str(indexed), preset="vcf")
    gzipped = root / "gzip.vcf.gz"  # plain gzip, not BGZF: read, never seeked
    gzipped.write_bytes(gzip.compress(plain.read_bytes()))
    bcf = root / "cohort.bcf"
    with (
        pysam.VariantFile(str(plain)) as src,
        pysam.VariantFile(str(bcf), "wb", header=src.header) as dst,
    ):
        for rec in src:
            dst.write(rec)
    indexed_bcf = root / "indexed.bcf"
    indexed_bcf.write_bytes(bcf.read_bytes())
    pysam.tabix_index(str(indexed_bcf), preset="vcf", csi=True)
    return {
        "bed": bed_path,
        "vcf": plain,
        "vcf.gz": gz,
        "indexed.vcf.gz": indexed,
        "gzip": gzipped,
        "bcf": bcf,
        "indexed.bcf": indexed_bcf,
    }


FORMS = ["vcf", "vcf.gz", "indexed.vcf.gz", "gzip", "bcf", "indexed.bcf"]


@pytest.mark.parametrize("form", FORMS)
def test_genotypes_variants_and_counts__equal_the_bed_of_the_same_calls(cohort, form) -> None:
    with BedFile(cohort["bed"]) as bed, VcfFile(cohort[form]) as reader:
        expected = collect(bed)
        assert reader.n_samples == bed.n_samples and reader.n_variants == bed.n_variants
        for chunk in (1, 7, 1024):
            assert np.array_equal(collect(reader, chunk=chunk), expected)
        for name in ("chrom", "pos", "id", "ref", "alt"):
            assert np.array_equal(getattr(reader.variants, name), getattr(bed.variants, name))
        assert reader.samples.iid.tolist() == bed.samples.iid.tolist()
        assert set(reader.samples.fid.tolist()) == {"0"}  # plink2 --vcf: no FID, 0 in a .fam
        assert not reader.samples.sex.any()  # a VCF holds no sex


@pytest.mark.parametrize("form", FORMS)
def test_any_variant_order_repeats_and_sample_subsets__equal_the_bed(
    cohort, form, monkeypatch
) -> None:
    monkeypatch.setattr(vcf_module, "JUMP_RECORDS", {"vcf": 3, "bcf": 3})  # seek by the index often
    rng = np.random.default_rng(7)
    with BedFile(cohort["bed"]) as bed, VcfFile(cohort[form]) as reader:
        n = bed.n_variants
        orders = [
            rng.permutation(n),
            rng.integers(0, n, 90),  # repeats
            np.arange(n)[::-1].copy(),
            np.array([n - 1, 0, n - 1, 5, 5, 140, 2]),
        ]
        subsets = [None, np.array([0, 3, 60]), np.sort(rng.choice(61, 30, replace=False))]
        for order in orders:
            for subset in subsets:
                for chunk in (4, 64):
                    got = collect(reader, order, subset, chunk)
                    assert np.array_equal(got, collect(bed, order, subset, chunk))


def test_the_index_is_used_for_a_sorted_bgzipped_file_only(cohort) -> None:
    assert VcfFile(cohort["indexed.vcf.gz"])._index_path() is None  # before the first pass
    for form, index in (("indexed.vcf.gz", ".tbi"), ("indexed.bcf", ".csi")):
        reader = VcfFile(cohort[form])
        _ = reader.variants
        assert reader._index_path() == cohort[form].with_name(cohort[form].name + index)
    for form in ("vcf", "vcf.gz", "gzip", "bcf"):
        reader = VcfFile(cohort[form])
        _ = reader.variants
        assert reader._index_path() is None


@pytest.mark.parametrize(("form", "opens"), [("indexed.vcf.gz", 1), ("indexed.bcf", 1), ("bcf", 2)])
def test_backward_jumps_seek_by_the_index_or_reopen_the_file(
    cohort, form, opens, monkeypatch
) -> None:
    reader = VcfFile(cohort[form])
    _ = reader.variants
    calls = []
    real_open = reader._open
    monkeypatch.setattr(reader, "_open", lambda **kw: calls.append(kw) or real_open(**kw))
    with BedFile(cohort["bed"]) as bed:
        order = np.array([149, 0, 100, 3])
        assert np.array_equal(collect(reader, order, chunk=2), collect(bed, order, chunk=2))
    assert len(calls) == opens  # one reader moved by region queries, else reopened per chunk


def test_fileset__is_the_file_and_the_indexes_beside_it(cohort) -> None:
    assert vcf_module.fileset(cohort["vcf.gz"]) == (cohort["vcf.gz"],)
    for form, suffix in (("indexed.vcf.gz", ".tbi"), ("indexed.bcf", ".csi")):
        path = cohort[form]
        assert vcf_module.fileset(path) == (path, path.with_name(path.name + suffix))


def test_close_refuses_further_reads_and_bad_arguments_are_refused(cohort) -> None:
    reader = VcfFile(cohort["vcf.gz"])
    with pytest.raises(ValueError, match="chunk_variants"):
        reader.iter_dosages(chunk_variants=0)
    with pytest.raises(IndexError):
        reader.iter_dosages(np.array([150]))
    with pytest.raises(ValueError, match="sorted"):
        reader.iter_dosages(sample_idx=np.array([3, 1]))
    chunks = reader.iter_dosages(chunk_variants=10)
    next(chunks)
    reader.close()
    with pytest.raises(ValueError, match="closed during iteration"):
        next(chunks)
    with VcfFile(cohort["bcf"]) as other:
        pass
    with pytest.raises(ValueError, match="is closed"):
        next(other.iter_dosages())


# --- GT rules --------------------------------------------------------------------------


def test_gt_rules__phasing_haploid_missing_and_half_calls(tmp_path: Path) -> None:
    path = write(
        tmp_path / "rules.vcf",
        [
            record("1", 10, "0|1 1|0 1|1"),
            record("1", 20, "0/0 ./. .|."),
            record(
                "1", 30, "./1 1/. 0/1"
            ),  # half-calls are missing (plink2 --vcf-half-call missing)
            record("Y", 40, "1 0 ."),  # haploid: homozygous, as plink2 codes it
            record("X", 50, "0/1 1 ."),  # mixed ploidy in one record
            record("1", 60, "0/0 0/0 0/0", alt="."),  # no ALT
        ],
    )
    with VcfFile(path) as reader:
        got = collect(reader)
        assert reader.variants.alt.tolist() == ["G"] * 5 + ["."]
    assert got.tolist() == [[1, 1, 2], [0, -9, -9], [-9, -9, 1], [2, 0, -9], [1, 2, -9], [0, 0, 0]]


def test_other_format_fields_filter_and_ids__are_kept_as_plink2_keeps_them(tmp_path: Path) -> None:
    rows = [
        "1\t5\t.\tC\tT\t.\tLowQual\t.\tGT:DP\t0/1:7\t1/1:.\t.:3",
        "1\t5\trs2;rs3\tC\tA\t10\tq10;s50\tAC=1\tGT:DP\t1|1:3\t0|0:.\t.:.",
        "1\t3\trs1\tG\tA\t.\t.\t.\tGT\t0/1\t0/0\t0/0",  # unsorted: read in file order
    ]
    header = HEADER + '##FILTER=<ID=LowQual,Description="low">\n'
    with VcfFile(write(tmp_path / "odd.vcf", rows, header=header)) as reader:
        assert collect(reader).tolist() == [[1, 2, -9], [2, 0, -9], [1, 0, 0]]
        assert reader.variants.id.tolist() == [".", "rs2;rs3", "rs1"]
        assert reader.variants.pos.tolist() == [5, 5, 3]
        assert reader._index_path() is None


def test_crlf_line_ends__are_read_as_lf(tmp_path: Path) -> None:
    rows = [record("1", 10, "0/1 1/1 ./."), record("1", 20, "0|0 1|0 1")]
    lf = write(tmp_path / "lf.vcf", rows)
    crlf = tmp_path / "crlf.vcf"
    crlf.write_bytes(lf.read_bytes().replace(b"\n", b"\r\n"))
    with VcfFile(lf) as a, VcfFile(crlf) as b:
        assert np.array_equal(collect(a), collect(b))
        assert b.samples.iid.tolist() == ["A", "B", "C"]
        assert b.variants.alt.tolist() == ["G", "G"]


# --- multi-allelic records, split as bcftools norm -m- splits them --------------------

MULTI_SAMPLES = ("A", "B", "C", "D", "E", "F")
MULTI_ROWS = [
    record("1", 100, "0/1 1/1 0/0 0/1 ./. 1|1", vid="rs1"),
    record("1", 150, "0/1 1/2 2/2 0/0 0/2 ./1", vid="rs2", alt="G,T"),  # a half-call
    record("1", 160, "0/3 1|3 3/3 0|0 3 1", alt="G,T,C"),  # T never called; haploid calls
    record("1", 170, "0/1 2/2 ./. 0/2 . 1/2", vid="rs4", ref="AT", alt="A,*"),  # spanning del
    record("1", 210, "0/0 0|0 . 1/1 0/1 1|0", vid="rs5", ref="C", alt="T"),
]


def split_by_bcftools(src: Path, out: Path) -> Path:
    """``bcftools norm -m- src`` (the bcftools that pysam bundles), as a plain VCF."""
    pysam.bcftools.norm("-m-", "-o", str(out), str(src), catch_stdout=False)
    return out


def vcf_forms(plain: Path) -> dict[str, Path]:
    """``plain`` as bgzipped + tabix-indexed VCF and as csi-indexed BCF, beside it."""
    gz = plain.with_name(plain.stem + ".vcf.gz")
    pysam.tabix_compress(str(plain), str(gz))
    pysam.tabix_index(str(gz), preset="vcf")
    bcf = plain.with_name(plain.stem + ".bcf")
    with (
        pysam.VariantFile(str(plain)) as src,
        pysam.VariantFile(str(bcf), "wb", header=src.header) as dst,
    ):
        for rec in src:
            dst.write(rec)
    pysam.tabix_index(str(bcf), preset="vcf", csi=True)
    return {"vcf": plain, "vcf.gz": gz, "bcf": bcf}


@pytest.mark.parametrize("form", ["vcf", "vcf.gz", "bcf"])
def test_multi_allelic_records__split_per_alt_equal_the_file_bcftools_norm_splits(
    tmp_path: Path, form: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vcf_module, "JUMP_RECORDS", {"vcf": 1, "bcf": 1})  # seek by the index
    multi = vcf_forms(write(tmp_path / "multi.vcf", MULTI_ROWS, samples=MULTI_SAMPLES))[form]
    split_dir = tmp_path / "split"
    split_dir.mkdir()
    split = split_by_bcftools(tmp_path / "multi.vcf", split_dir / "split.vcf")
    with VcfFile(multi) as reader, VcfFile(split) as by_bcftools:
        assert by_bcftools.split_records == 0 and by_bcftools.n_variants == 9
        for name in ("chrom", "pos", "id", "ref", "alt"):
            got = getattr(reader.variants, name).tolist()
            assert got == getattr(by_bcftools.variants, name).tolist(), name
        assert reader.variants.alt.tolist() == ["G", "G", "T", "G", "T", "C", "A", "*", "T"]
        assert reader.variants.id.tolist()[1:3] == ["rs2", "rs2"]  # the record's ID, each ALT
        assert (reader.n_records, reader.n_variants) == (5, 9)
        assert (reader.split_records, reader.split_variants, reader.max_alts) == (3, 7, 3)
        expected = collect(by_bcftools)
        for chunk in (1, 2, 1024):
            assert np.array_equal(collect(reader, chunk=chunk), expected)
        rng = np.random.default_rng(3)
        for order in (
            rng.permutation(9),
            np.array([8, 2, 2, 1, 0, 7, 6, 3]),
            rng.integers(0, 9, 20),
        ):
            for subset in (None, np.array([1, 4, 5])):
                got = collect(reader, order, subset, 3)
                want = expected[order] if subset is None else expected[order][:, subset]
                assert np.array_equal(got, want)
    # each ALT counts its own copies; REF and every other ALT count as not-ALT
    assert expected[1:3].tolist() == [[1, 1, 0, 0, 0, -9], [0, 1, 2, 0, 1, -9]]
    assert expected[3:6].tolist() == [[0, 1, 0, 0, 0, 2], [0] * 6, [1, 1, 2, 0, 2, 0]]
    assert expected[6:8].tolist() == [[1, 0, -9, 0, -9, 1], [0, 2, -9, 1, -9, 1]]


def test_a_records_alts_straddling_two_chunks__are_read_in_one_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = VcfFile(write(tmp_path / "multi.vcf", MULTI_ROWS, samples=MULTI_SAMPLES))
    _ = reader.variants
    opens = []
    real_open = reader._open
    monkeypatch.setattr(reader, "_open", lambda **kw: opens.append(kw) or real_open(**kw))
    whole = collect(reader, chunk=1024)
    assert np.array_equal(collect(reader, chunk=2), whole)  # records of 2 and 3 ALTs cut
    assert len(opens) == 2  # one pass each, not a reopen at each cut record


def test_a_multi_allelic_allele_index_beyond_its_alts__is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path / "bad.vcf",
        [record("1", 10, "0/1 0/0 1/1"), record("1", 20, "0/3 1/2 0/0", alt="G,T")],
    )
    err = _refused(path, "allele index is above 2, but the record has 2 ALT alleles", read=True)
    assert err.line == 9


@pytest.mark.parametrize(
    ("alt", "what"), [("G,T,G", "ALT G is listed twice"), ("G,A", "ALT A is also the REF")]
)
def test_a_multi_allelic_record_repeating_an_allele__is_refused_at_the_first_pass(
    tmp_path: Path, alt: str, what: str
) -> None:
    path = write(
        tmp_path / "rep.vcf",
        [record("1", 10, "0/1 0/0 1/1"), record("1", 20, "0/1 0/0 1/1", alt=alt)],
    )
    err = _refused(path, what)
    assert err.line == 9 and "cannot tell apart" in str(err)


def test_a_record_whose_alts_changed_after_opening__is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "m.vcf", [record("1", 10, "0/1 0/2 1/1", alt="G,T")])
    reader = VcfFile(path)
    assert reader.n_variants == 2
    write(path, [record("1", 10, "0/1 0/2 1/1", alt="G,T,C")])
    with pytest.raises(InputError, match="with 3 ALT, but the file held 1:10 A with 2 ALT"):
        collect(reader)


# --- refusals ---------------------------------------------------------------------------


def _refused(path: Path, match: str, *, read: bool = False) -> InputError:
    with pytest.raises(InputError, match=match) as info:
        reader = VcfFile(path)
        _ = reader.variants
        if read:
            collect(reader)
    return info.value


def test_header_only_vcf__is_refused(tmp_path: Path) -> None:
    err = _refused(write(tmp_path / "empty.vcf", []), "no variant records")
    assert err.path == str(tmp_path / "empty.vcf")


def test_no_gt_in_header_or_record__is_refused(tmp_path: Path) -> None:
    no_gt_header = HEADER.replace(
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n', ""
    )
    rows = ["1\t10\t.\tA\tG\t.\t.\t.\tDP\t3\t4\t5"]
    err = _refused(write(tmp_path / "a.vcf", rows, header=no_gt_header), "no GT FORMAT field")
    assert err.line == 6  # the #CHROM line
    path = write(tmp_path / "b.vcf", [record("1", 5, "0/1 0/0 1/1"), *rows])
    err = _refused(path, "record has no GT field", read=True)
    assert err.line == 9


def test_gt_not_first_in_format__is_refused_as_plink2_reads_no_calls_there(
    tmp_path: Path,
) -> None:
    rows = [record("1", 5, "0/1 0/0 1/1"), "1\t10\t.\tA\tG\t.\t.\t.\tDP:GT\t3:0/1\t4:1/1\t5:0/0"]
    err = _refused(
        write(tmp_path / "order.vcf", rows), "GT is not the first FORMAT field", read=True
    )
    assert err.line == 9


def test_ploidy_above_two__is_refused_naming_the_sample_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "p3.vcf", [record("1", 10, "0/1 0/1/1 0/0")])
    err = _refused(path, "sample 'B' has a call of more than two alleles", read=True)
    assert err.line == 8


def test_allele_index_beyond_alt__is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.vcf", [record("1", 10, "0/2 0/1 0/0")])
    assert _refused(path, "allele index is above 1", read=True).line == 8


def test_duplicate_sample_names__are_refused_naming_the_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "dup.vcf", [record("1", 10, "0/1 0/0 1/1")], samples=("A", "B", "A"))
    err = _refused(path, r"duplicate sample name 'A' \(columns 10 and 12")
    assert err.line == 7
    assert "bcftools reheader" in str(err.hint)
    spaced = write(
        tmp_path / "space.vcf", [record("1", 10, "0/1 0/0 1/1")], samples=("A", "N 1", "C")
    )
    assert _refused(spaced, "sample name 'N 1' .column 11 of the #CHROM line. is empty").line == 7


def test_malformed_lines__are_refused_naming_their_line(tmp_path: Path) -> None:
    good = record("1", 10, "0/1 0/0 1/1")
    bad_pos = write(tmp_path / "pos.vcf", [good, good.replace("\t10\t", "\tten\t")])
    assert _refused(bad_pos, "htslib cannot parse this record").line == 9
    short = write(tmp_path / "short.vcf", [good, good, "1\t30\t.\tA\tG\t.\t.\t.\tGT\t0/1"])
    assert _refused(short, "htslib cannot parse this record", read=True).line == 10


def test_chunks_are_streamed__a_bad_sample_column_fails_only_the_chunk_that_reaches_it(
    tmp_path: Path,
) -> None:
    rows = [record("1", 10 * i, "0/1 0/0 1/1") for i in range(1, 10)]
    rows.append("1\t100\t.\tA\tG\t.\t.\t.\tGT\t0/1")  # one sample column of three
    chunks = VcfFile(write(tmp_path / "late.vcf", rows)).iter_dosages(chunk_variants=3)
    assert [next(chunks)[0] for _ in range(3)] == [0, 3, 6]
    with pytest.raises(InputError, match="htslib cannot parse this record") as info:
        next(chunks)
    assert info.value.line == 17


def test_not_a_vcf_empty_file_and_directory__are_refused(tmp_path: Path) -> None:
    (tmp_path / "x.vcf").write_text("chrom\tpos\n1\t2\n")
    _refused(tmp_path / "x.vcf", "is not a VCF or BCF")
    (tmp_path / "zero.vcf").write_bytes(b"")
    _refused(tmp_path / "zero.vcf", "is empty")
    _refused(tmp_path, "is a directory")
    _refused(tmp_path / "absent.vcf", "file not found")


def test_truncated_bgzip_and_bcf__are_refused(cohort, tmp_path: Path) -> None:
    for form in ("vcf.gz", "bcf"):
        cut = tmp_path / f"cut.{form}"
        cut.write_bytes(cohort[form].read_bytes()[:-100])
        err = _refused(cut, "is truncated")
        assert "copy the file again" in str(err.hint)
    gzipped = tmp_path / "cut.gzip.vcf.gz"  # plain gzip has no end block: cut mid-stream
    data = cohort["gzip"].read_bytes()
    gzipped.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError):
        collect(VcfFile(gzipped))


def test_a_file_changed_after_opening__is_refused(cohort, tmp_path: Path) -> None:
    path = tmp_path / "changing.vcf"
    path.write_bytes(cohort["vcf"].read_bytes())
    reader = VcfFile(path)
    _ = reader.variants
    text = path.read_text().splitlines(keepends=True)
    path.write_text("".join(text[:-10]))
    with pytest.raises(InputError, match="ends after 140 records, but it held 150"):
        collect(reader)
