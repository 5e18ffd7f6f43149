"""VcfFile against ``plink2 --vcf`` (v2.00a3.5) on the same files, bit for bit.

* a synthetic cohort written by ``genofed synth``'s writer as a .bed, exported by
  plink2 as bgzipped VCF, plain VCF and BCF: equal to the .bed it came from and to
  plink2's own re-import;
* hand-written odd files (phased and unphased calls, missing and half calls,
  haploid chrY, mixed ploidy on chrX, ``.`` IDs, duplicate positions, unsorted
  records, CRLF line ends, FILTER values, other FORMAT fields, a record without
  ALT): equal to plink2's conversion of each;
* a real VCF: ``/usr/share/doc/python3-vcf/test/1kg.vcf.gz`` (629 samples x 381
  variants of 1000 Genomes chr2, plain gzip, from the Debian package
  ``python-pyvcf-examples``), equal to plink2's conversion of it;
* multi-allelic records (2 and 3 ALTs, ``*``, an ALT never called, missing,
  haploid and half calls) read unsplit from VCF, bgzipped VCF and BCF: equal to
  plink2's conversion of the file ``bcftools norm -m-`` splits (the analyses on
  such files: ``test_vcf_multiallelic_vs_plink2.py``).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from genofed.common.chromosomes import bare_chrom
from genofed.site_agent.io.plink import BedFile
from genofed.site_agent.io.vcf import VcfFile
from genofed.synth.cohort import write_cohorts
from tests.unit.site_agent.test_vcf_reader import (
    MULTI_ROWS,
    MULTI_SAMPLES,
    collect,
    record,
    split_by_bcftools,
    vcf_forms,
    vcf_text,
    write,
)

REAL_VCF = Path("/usr/share/doc/python3-vcf/test/1kg.vcf.gz")
REAL_VCF_PACKAGE = "python-pyvcf-examples"


def _plink2(plink2: Path, *args: str | Path) -> None:
    done = subprocess.run(
        [str(plink2), "--threads", "1", *map(str, args)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _converted(plink2: Path, vcf: Path, out: Path, *flags: str) -> BedFile:
    """plink2's reading of ``vcf``, written as a .bed (A1 = ALT, A2 = REF)."""
    kind = "--bcf" if vcf.suffix == ".bcf" else "--vcf"
    _plink2(plink2, kind, vcf, *flags, "--make-bed", "--out", out)
    return BedFile(out.with_suffix(".bed"))


def _psam_iids(plink2: Path, vcf: Path, out: Path) -> list[str]:
    kind = "--bcf" if vcf.suffix == ".bcf" else "--vcf"
    _plink2(plink2, kind, vcf, "--make-pgen", "--out", out)
    lines = out.with_suffix(".psam").read_text().splitlines()
    assert lines[0].split("\t")[0] == "#IID"  # plink2 writes no FID for a VCF's samples
    return [line.split("\t")[0] for line in lines[1:]]


def _assert_same(reader: VcfFile, bed: BedFile) -> None:
    assert np.array_equal(collect(reader), collect(bed))
    assert reader.samples.iid.tolist() == bed.samples.iid.tolist()
    assert reader.samples.fid.tolist() == bed.samples.fid.tolist()  # plink2's .fam: FID 0
    got, want = reader.variants, bed.variants
    assert [bare_chrom(c) for c in got.chrom.tolist()] == want.chrom.tolist()
    for name in ("pos", "id", "ref", "alt"):
        assert getattr(got, name).tolist() == getattr(want, name).tolist(), name


@pytest.fixture(scope="module")
def exported(plink2: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("vcf-export")
    summary = write_cohorts(root / "synth", sites=1, samples=300, variants=400, seed=5)
    prefix = summary.pooled_prefix
    out = root / "cohort"
    _plink2(plink2, "--bfile", prefix, "--export", "vcf", "bgz", "--out", out)
    _plink2(plink2, "--bfile", prefix, "--export", "vcf", "--out", out)
    _plink2(plink2, "--bfile", prefix, "--export", "bcf", "--out", out)
    return {
        "bed": prefix.with_suffix(".bed"),
        "vcf.gz": out.with_suffix(".vcf.gz"),
        "vcf": out.with_suffix(".vcf"),
        "bcf": out.with_suffix(".bcf"),
    }


@pytest.mark.parametrize("form", ["vcf.gz", "vcf", "bcf"])
def test_plink2_exported_cohort__equals_its_bed_and_plink2s_reimport(
    plink2: Path, exported: dict[str, Path], form: str, tmp_path: Path
) -> None:
    with VcfFile(exported[form]) as reader, BedFile(exported["bed"]) as original:
        assert np.array_equal(collect(reader, chunk=97), collect(original))
        for name in ("chrom", "pos", "id", "ref", "alt"):
            assert np.array_equal(getattr(reader.variants, name), getattr(original.variants, name))
        _assert_same(reader, _converted(plink2, exported[form], tmp_path / "re"))
        assert reader.samples.iid.tolist() == _psam_iids(plink2, exported[form], tmp_path / "p")


ODD = {
    "phased_unphased_missing": [
        record("1", 100, "0|1 1/0 1|1 ./. .|. 0/0"),
        record("1", 200, "0/0 0|0 . 1/1 0/1 1|0"),
    ],
    "haploid_and_mixed_ploidy": [
        record("1", 100, "0/1 1/1 0/0 0/1 ./. 1|1"),
        record("X", 300, "1 0 0/1 . 1/1 0"),
        record("Y", 200, "1 0 . 1 0 1", vid="rsY", ref="C", alt="T"),
    ],
    "missing_ids_duplicate_positions_unsorted": [
        record("1", 500, "0/1 1/1 0/0 0/1 ./. 1|1"),
        record("1", 500, "1/1 0/0 0/1 0/1 1/1 0|0"),
        record("1", 500, "0/0 0/0 0/1 ./. 1/1 0|1", alt="T"),
        record("1", 50, "0/1 0/1 0/1 0/1 0/1 0/1", vid="rs50"),
        record("1", 7, "1/1 1/1 1/1 0/0 0/0 ./."),
        record("2", 10, "0/0 1/1 0/0 1/1 0/0 1/1"),
    ],
    "filters_other_fields_no_alt": [
        "1\t10\trs1\tC\tT\t3\tLowQual\tAC=2\tGT:DP\t0/1:7\t1/1:.\t.:3\t0|1:2\t.:.\t1/1:9",
        "1\t20\trs2\tG\t.\t.\t.\t.\tGT:DP\t0/0:1\t0/0\t0|0:.\t./.:.\t0/0:4\t0/0:4",
        "1\t30\trs3\tG\tA\t.\tq10;s50\t.\tGT\t0/1\t0/1\t1/1\t0/0\t0/0\t0/0",
    ],
    "chr_prefix": [
        record("chr1", 100, "0/1 1/1 0/0 0/1 ./. 1|1", vid="rs1"),
        record("chr1", 200, "0/0 0|0 . 1/1 0/1 1|0", vid="rs2"),
    ],
}
SAMPLES = ("S1", "S2", "S3", "S4", "S5", "S6")
ODD_HEADER = (
    "##fileformat=VCFv4.2\n"
    '##FILTER=<ID=LowQual,Description="low quality">\n'
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
    '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Read depth">\n'
)


@pytest.mark.parametrize("name", sorted(ODD))
@pytest.mark.parametrize("line_end", ["\n", "\r\n"])
def test_odd_files__equal_plink2s_conversion(
    plink2: Path, tmp_path: Path, name: str, line_end: str
) -> None:
    vcf = tmp_path / f"{name}.vcf"
    text = vcf_text(ODD[name], samples=SAMPLES, header=ODD_HEADER)
    vcf.write_bytes(text.replace("\n", line_end).encode())
    with VcfFile(vcf) as reader:
        _assert_same(reader, _converted(plink2, vcf, tmp_path / "conv"))
        assert reader.samples.iid.tolist() == _psam_iids(plink2, vcf, tmp_path / "p")


def test_half_calls__are_missing_as_plink2_vcf_half_call_missing(
    plink2: Path, tmp_path: Path
) -> None:
    vcf = tmp_path / "half.vcf"
    rows = [record("1", 100, "./1 0/. 1|. .|0 0/1 1/1"), record("1", 200, "0/0 ./. 1/. 0/1 . 0|1")]
    vcf.write_text(vcf_text(rows, samples=SAMPLES, header=ODD_HEADER))
    with pytest.raises(AssertionError, match="half-call"):  # plink2's default: stop
        _converted(plink2, vcf, tmp_path / "default")
    with VcfFile(vcf) as reader:
        _assert_same(reader, _converted(plink2, vcf, tmp_path / "conv", "--vcf-half-call", "m"))


@pytest.mark.parametrize("form", ["vcf", "vcf.gz", "bcf"])
def test_multi_allelic_records__equal_plink2s_conversion_of_the_bcftools_split_file(
    plink2: Path, tmp_path: Path, form: str
) -> None:
    """Read unsplit (VCF, bgzipped VCF, BCF), equal to plink2 on ``bcftools norm -m-``'s output."""
    multi = vcf_forms(write(tmp_path / "multi.vcf", MULTI_ROWS, samples=MULTI_SAMPLES))[form]
    (tmp_path / "split").mkdir()
    split = split_by_bcftools(tmp_path / "multi.vcf", tmp_path / "split" / "split.vcf")
    with VcfFile(multi) as reader:
        assert reader.split_records == 3
        conv = _converted(plink2, split, tmp_path / "conv", "--vcf-half-call", "m")
        _assert_same(reader, conv)


def test_real_1000_genomes_vcf__equals_plink2s_conversion(plink2: Path, tmp_path: Path) -> None:
    if not REAL_VCF.is_file():
        pytest.fail(f"{REAL_VCF} not found; install it with: apt-get install -y {REAL_VCF_PACKAGE}")
    with VcfFile(REAL_VCF) as reader:
        assert (reader.n_samples, reader.n_variants) == (629, 381)
        _assert_same(reader, _converted(plink2, REAL_VCF, tmp_path / "kg"))
        assert reader.samples.iid.tolist() == _psam_iids(plink2, REAL_VCF, tmp_path / "p")
        rng = np.random.default_rng(0)
        order, subset = rng.permutation(381), np.sort(rng.choice(629, 100, replace=False))
        with BedFile(tmp_path / "kg.bed") as bed:
            got = collect(reader, order, subset, 50)
            assert np.array_equal(got, collect(bed, order, subset, 50))
        assert (collect(reader) == -9).mean() > 0.3  # the file's many ./. calls, kept missing
