"""Genome build: told from header lines, declared in site.toml, and the two checked."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from genofed.common.errors import ConfigError, InputError
from genofed.site_agent.io.build import build_from_header_lines, file_build
from genofed.site_agent.sitedir import load_site

V = "##fileformat=VCFv4.2"


@pytest.mark.parametrize(
    ("contig", "expected"),
    [
        ("##contig=<ID=1,length=249250621>", "GRCh37"),
        ("##contig=<ID=chr1,length=249250621>", "GRCh37"),
        ("##contig=<ID=1,length=248956422>", "GRCh38"),
        ("##contig=<ID=chr1,length=248956422,assembly=hg38>", "GRCh38"),
    ],
)
def test_chr1_length_tells_the_build(contig: str, expected: str) -> None:
    lines = [V, "##contig=<ID=2,length=1000>", contig, "#CHROM\tPOS"]
    assert build_from_header_lines(lines) == expected


def test_length_decides_over_a_reference_name() -> None:
    lines = [V, "##reference=GRCh38.fa", "##contig=<ID=1,length=249250621>"]
    assert build_from_header_lines(lines) == "GRCh37"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("##reference=file:///ref/human_g1k_v37.fasta", "GRCh37"),
        ("##reference=GRCh38_full_analysis_set.fa", "GRCh38"),
        ("##reference=hg19", "GRCh37"),
        ("##contig=<ID=22,length=51304566,assembly=b37>", "GRCh37"),
    ],
)
def test_reference_or_assembly_names_the_build(line: str, expected: str) -> None:
    assert build_from_header_lines([V, line, "#CHROM\tPOS"]) == expected


def test_no_build_information_is_none() -> None:
    assert build_from_header_lines([V, "##contig=<ID=1,length=1000>", "#CHROM\tPOS"]) is None
    assert build_from_header_lines([]) is None


def test_only_header_lines_are_read() -> None:
    lines = ["#CHROM\tPOS", "##contig=<ID=1,length=248956422>"]
    assert build_from_header_lines(lines) is None


def test_file_build_reads_gzipped_vcf_and_pvar(tmp_path: Path) -> None:
    text = (
        f"{V}\n##contig=<ID=chr1,length=248956422>\n#CHROM\tPOS\tID\tREF\tALT\nchr1\t1\t.\tA\tG\n"
    )
    vcf = tmp_path / "a.vcf.gz"
    with gzip.open(vcf, "wt") as fh:
        fh.write(text)
    pvar = tmp_path / "a.pvar"
    pvar.write_text(text.replace("chr1", "1").replace("248956422", "249250621"))
    assert file_build(vcf) == "GRCh38"
    assert file_build(pvar) == "GRCh37"


def test_file_build_reads_a_bcf_header(tmp_path: Path) -> None:
    pysam = pytest.importorskip("pysam")
    text = (
        f"{V}\n##contig=<ID=chr1,length=248956422>\n"
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\n"
        "chr1\t1\t.\tA\tG\t.\t.\t.\tGT\t0/1\n"
    )
    vcf = tmp_path / "a.vcf"
    vcf.write_text(text)
    for name, mode in (("a.bcf", "wb"), ("u.bcf", "wb0")):
        bcf = tmp_path / name
        with (
            pysam.VariantFile(str(vcf)) as src,
            pysam.VariantFile(str(bcf), mode, header=src.header) as dst,
        ):
            for rec in src:
                dst.write(rec)
        assert file_build(bcf) == "GRCh38"
    vcf.write_text(text.replace("chr1,length=248956422", "chr1"))  # a contig, no length
    bare = tmp_path / "bare.bcf"
    with (
        pysam.VariantFile(str(vcf)) as src,
        pysam.VariantFile(str(bare), "wb", header=src.header) as dst,
    ):
        for rec in src:
            dst.write(rec)
    assert file_build(bare) is None


def _site(tmp_path: Path, build: str) -> Path:
    (tmp_path / "site.toml").write_text(
        f'[site]\nname = "a"\n[data]\ngenotypes = "x.bed"\nbuild = "{build}"\n'
    )
    return tmp_path


def test_site_toml_build_is_read(tmp_path: Path) -> None:
    assert load_site(_site(tmp_path, "GRCh37")).build == "GRCh37"


def test_site_toml_bad_build_names_file_and_allowed_values(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_site(_site(tmp_path, "hg19"))
    text = str(exc.value)
    assert "site.toml" in text and "'GRCh37'" in text and "'GRCh38'" in text and "hg19" in text


def test_init_refuses_a_build_the_header_contradicts(tmp_path: Path) -> None:
    from genofed.site_agent.sitedir import SiteConfig, genome_build

    vcf = tmp_path / "a.vcf"
    vcf.write_text(f"{V}\n##contig=<ID=1,length=249250621>\n#CHROM\tPOS\n")
    config = SiteConfig(name="a", directory=tmp_path, genotypes=vcf, build="GRCh38")
    with pytest.raises(InputError) as exc:
        genome_build(config)
    assert "GRCh37" in str(exc.value) and "GRCh38" in str(exc.value)
    ok = SiteConfig(name="a", directory=tmp_path, genotypes=vcf)
    assert genome_build(ok) == "GRCh37"
