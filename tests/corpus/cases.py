"""The malformed-input corpus: one small valid federation, and one mutation per case.

Each :class:`Case` writes its mutated inputs into a fresh folder and says how
to run the real command line on them (:class:`Run`): which CLI, its
arguments, the exit code, and what the message must name (the file, the line
or key). :mod:`tests.corpus.test_corpus` runs them all and also checks, for
every case, that there is no traceback, that the message carries a fix, and
that nothing was written.

:data:`CLASSES` orders the input classes for the README's table; ``python -m
tests.corpus.cases`` prints it.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: Documented exit codes: ``genofed`` (genofed.cli.analyst) and ``genofed-site``
#: (genofed.site_agent.cli.main, .audit); 1 is an unexpected error and no case's.
ANALYST_INPUT, ANALYST_SITE, ANALYST_HARMONIZATION, ANALYST_TOO_FEW_SITES = 2, 3, 4, 5
SITE_INPUT, SITE_AUDIT_FAILED = 2, 3

#: Input classes, in the README table's order.
CLASSES = {
    "bed": ".bed genotypes",
    "bim": ".bim variants",
    "fam": ".fam samples",
    "pgen": ".pgen/.pvar/.psam genotypes",
    "vcf": "VCF/BCF genotypes",
    "pheno": "phenotype table",
    "covar": "covariate table",
    "study": "study.toml",
    "policy": "policy.toml",
    "site": "site.toml",
    "coordinator": "coordinator.toml",
    "scoring": "PGS scoring file",
    "signed": "signed study (JSON)",
    "audit": "audit export",
}

#: A valid study that every study case mutates.
STUDY = """\
[study]
name = "corpus"
on_variant_mismatch = "stop"

[[analysis]]
kind = "freq"

[[analysis]]
kind = "hardy"
midp = false
"""

#: A valid PRS study naming ``pgs.txt`` beside it.
PRS_STUDY = """\
[study]
name = "corpus-prs"

[[analysis]]
kind = "prs"
scoring_file = "pgs.txt"
phenotype = "DISEASE"
covariates = ["AGE", "SEX"]
"""

#: A valid GWAS study (QPHENO on AGE and SEX).
GLM_STUDY = """\
[study]
name = "corpus-glm"

[[analysis]]
kind = "glm"
phenotype = "QPHENO"
covariates = ["AGE", "SEX"]
"""

#: The .bim line the .bim cases change: past line 99, so the message's
#: ``genotypes.bim:100:`` also shows that ``:100:`` is not read as an emoji code.
BIM_LINE = 100


@dataclass(frozen=True)
class Base:
    """The valid inputs every case starts from (never changed by a case)."""

    sites: tuple[Path, ...]  # two site directories (demo policy)
    scoring_file: Path  # a valid PGS Catalog scoring file
    signed_study: Path  # STUDY, signed with ``key``
    key: Path  # the analyst's private key (``key.pub`` beside it)
    other_key_pub: Path  # another analyst's public key file
    export: Path  # an audit export of sites[0]'s log, with entries

    @property
    def fileset(self) -> Path:
        return self.sites[0] / "data" / "genotypes"


@dataclass(frozen=True)
class Run:
    """How to run one case and what its output must show."""

    cli: str  # "site" (genofed-site) or "analyst" (genofed)
    args: tuple[str, ...]
    needles: tuple[str, ...]  # each must appear in the output (whitespace normalised)
    code: int = 2
    #: paths that must not exist afterwards (what the command would have written)
    absent: tuple[Path, ...] = ()
    #: folders whose changes are not checked (a site's audit log records a refused study)
    changing: tuple[Path, ...] = ()
    #: ``genofed study run --simulation``: run on the in-process engine
    engine: bool = False
    #: files the command may write even when it fails (the run log ``OUT.log``)
    logs: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Case:
    id: str
    klass: str
    build: Callable[[Base, Path], Run]
    xfail: str | None = None


CASES: list[Case] = []


def case(klass: str, *, xfail: str | None = None) -> Callable[[Callable[[Base, Path], Run]], None]:
    """Register ``build`` (named ``<klass>_<what>``) as the case ``<klass>-<what>``."""

    def register(build: Callable[[Base, Path], Run]) -> None:
        name = build.__name__.removeprefix(f"{klass}_")
        CASES.append(Case(f"{klass}-{name}", klass, build, xfail))

    return register


# ---------------------------------------------------------------- helpers


def lines_of(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def edit_line(path: Path, number: int, edit: Callable[[list[str]], list[str]]) -> None:
    """Replace the whitespace-separated fields of line ``number`` (1-based) by ``edit(fields)``."""
    lines = lines_of(path)
    fields = lines[number - 1].split()
    lines[number - 1] = "\t".join(edit(fields))
    write_lines(path, lines)


def set_field(path: Path, number: int, column: int, value: str) -> None:
    """Field ``column`` (1-based) of line ``number`` set to ``value``."""

    def edit(fields: list[str]) -> list[str]:
        fields[column - 1] = value
        return fields

    edit_line(path, number, edit)


def fileset(base: Base, folder: Path) -> Path:
    """A copy of the base fileset (and its tables) in ``folder``; its prefix."""
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".bed", ".bim", ".fam"):
        shutil.copy(base.fileset.with_suffix(suffix), folder / f"genotypes{suffix}")
    for table in ("pheno.tsv", "covar.tsv"):
        shutil.copy(base.sites[0] / "data" / table, folder / table)
    return folder / "genotypes"


def init(folder: Path, prefix: Path, needles: tuple[str, ...], *tables: str) -> Run:
    """``genofed-site init`` of ``prefix`` (and the named tables) into a new folder."""
    out = folder / "new-site"
    args = ["init", "--name", "hospital-x", "--genotypes", f"{prefix}.bed", "--out", str(out)]
    for option in tables:
        args += [
            f"--{option}",
            str(folder / ("pheno.tsv" if option == "phenotypes" else "covar.tsv")),
        ]
    return Run("site", tuple(args), needles, SITE_INPUT, absent=(out,))


def site_copy(base: Base, folder: Path, index: int = 0) -> Path:
    target = folder / base.sites[index].name
    shutil.copytree(base.sites[index], target)
    return target


def check(site: Path, needles: tuple[str, ...]) -> Run:
    return Run("site", ("check", str(site)), needles, SITE_INPUT)


def study_file(folder: Path, text: str, name: str = "study.toml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def show(path: Path, needles: tuple[str, ...]) -> Run:
    return Run("analyst", ("study", "show", str(path)), needles, ANALYST_INPUT)


def study_run(
    folder: Path, study: Path, sites: list[Path], needles: tuple[str, ...], code: int
) -> Run:
    """``genofed study run --simulation`` (in-process engine) into a new results folder."""
    out = folder / "results"
    args = ["study", "run", str(study), "--simulation", "--out", str(out), "--json"]
    for site in sites:
        args += ["--site", str(site)]
    return Run(
        "analyst",
        tuple(args),
        needles,
        code,
        absent=(out,),
        changing=tuple(sites),
        engine=True,
        logs=(out.with_name(out.name + ".log"),),
    )


def both_sites(base: Base, folder: Path) -> list[Path]:
    return [site_copy(base, folder, 0), site_copy(base, folder, 1)]


# ---------------------------------------------------------------- .pgen/.pvar/.psam


def pfileset(base: Base, folder: Path) -> Path:
    """The base fileset as a PLINK 2 fileset (and its tables) in ``folder``; its prefix."""
    from genofed.synth.pgen_format import bed_to_pgen

    prefix = fileset(base, folder)
    bed_to_pgen(prefix.with_suffix(".bed"), prefix, remove=True)
    return prefix


def init_pgen(folder: Path, genotypes: Path, needles: tuple[str, ...]) -> Run:
    """``genofed-site init --genotypes GENOTYPES`` (any member file or prefix) into a new folder."""
    out = folder / "new-site"
    args = ("init", "--name", "hospital-x", "--genotypes", str(genotypes), "--out", str(out))
    return Run("site", args, needles, SITE_INPUT, absent=(out,))


@case("pgen")
def pgen_pvar_position_not_a_number(base: Base, d: Path) -> Run:
    prefix = pfileset(base, d)
    pvar = prefix.with_suffix(".pvar")
    set_field(pvar, 51, 2, "12e5")
    return init_pgen(d, prefix, (f"{pvar}:51:", "POS is '12e5'", "base-pair position"))


@case("pgen")
def pgen_pvar_missing_column(base: Base, d: Path) -> Run:
    prefix = pfileset(base, d)
    pvar = prefix.with_suffix(".pvar")
    edit_line(pvar, 40, lambda fields: fields[:4])
    return init_pgen(d, prefix.with_suffix(".psam"), (f"{pvar}:40:", "expected 5 columns"))


@case("pgen")
def pgen_pvar_multiallelic_alt_listed_twice(base: Base, d: Path) -> Run:
    """A multi-allelic .pvar line is split per ALT; one listing an ALT twice cannot be."""
    prefix = pfileset(base, d)
    pvar = prefix.with_suffix(".pvar")
    edit_line(pvar, 30, lambda fields: [*fields[:4], f"{fields[4]},{fields[4]}"])
    return init_pgen(d, prefix, (f"{pvar}:30:", "is listed twice", "cannot tell apart"))


@case("pgen")
def pgen_pvar_header_without_ref(base: Base, d: Path) -> Run:
    prefix = pfileset(base, d)
    pvar = prefix.with_suffix(".pvar")
    write_lines(pvar, ["#CHROM\tPOS\tID\tALLELE\tALT", *lines_of(pvar)[1:]])
    return init_pgen(d, prefix, (f"{pvar}:1:", "lacks column(s) REF"))


@case("pgen")
def pgen_pvar_extra_variant(base: Base, d: Path) -> Run:
    prefix = pfileset(base, d)
    pvar = prefix.with_suffix(".pvar")
    write_lines(pvar, [*lines_of(pvar), "3\t99999999\trs_extra\tA\tG"])
    pgen = prefix.with_suffix(".pgen")
    return init_pgen(d, pgen, (str(pgen), "header says", "genotypes.pvar lists", "same plink2"))


@case("pgen")
def pgen_psam_duplicate_sample(base: Base, d: Path) -> Run:
    prefix = pfileset(base, d)
    psam = prefix.with_suffix(".psam")
    lines = lines_of(psam)
    lines[5] = lines[2]
    write_lines(psam, lines)
    return init_pgen(d, prefix, (f"{psam}:6:", "duplicate sample", "lines 3 and 6"))


@case("pgen")
def pgen_psam_wrong_column_count(base: Base, d: Path) -> Run:
    prefix = pfileset(base, d)
    psam = prefix.with_suffix(".psam")
    edit_line(psam, 8, lambda fields: fields[:2])
    return init_pgen(d, prefix, (f"{psam}:8:", "expected 3 columns", "found 2"))


@case("pgen")
def pgen_pvar_zst_only(base: Base, d: Path) -> Run:
    prefix = pfileset(base, d)
    pvar = prefix.with_suffix(".pvar")
    pvar.rename(pvar.with_name(pvar.name + ".zst"))
    return init_pgen(d, prefix, ("genotypes.pvar.zst", "zstd-compressed", "--zst-decompress"))


@case("pgen")
def pgen_prefix_of_two_filesets(base: Base, d: Path) -> Run:
    prefix = pfileset(base, d)
    for suffix in (".bed", ".bim", ".fam"):
        shutil.copy(base.fileset.with_suffix(suffix), prefix.with_suffix(suffix))
    return init_pgen(d, prefix, (str(prefix), "several genotype filesets", "X.pgen or X.bed"))


# ---------------------------------------------------------------- VCF / BCF

_VCF_HEADER = (
    "##fileformat=VCFv4.2\n##contig=<ID=1>\n"
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
)


@case("vcf")
def vcf_without_samples(base: Base, d: Path) -> Run:
    d.mkdir(parents=True, exist_ok=True)
    vcf = d / "calls.vcf.gz"
    with gzip.open(vcf, "wt") as fh:
        fh.write("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
    return init_pgen(d, vcf, (str(vcf), "has no samples", "fix:"))


@case("vcf")
def vcf_multiallelic_record_alt_listed_twice(base: Base, d: Path) -> Run:
    """A multi-allelic record is split per ALT; one listing an ALT twice cannot be."""
    d.mkdir(parents=True, exist_ok=True)
    vcf = d / "calls.vcf"
    vcf.write_text(
        _VCF_HEADER + "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tA\tB\n"
        "1\t10\trs1\tA\tG\t.\t.\t.\tGT\t0/1\t1/1\n"
        "1\t15\trs2\tA\tG,T\t.\t.\t.\tGT\t0/2\t1/1\n"
        "1\t20\trs3\tA\tG,T,G\t.\t.\t.\tGT\t0/2\t1/1\n"
    )
    return init_pgen(d, vcf, (f"{vcf}:7", "ALT G is listed twice", "cannot tell apart"))


@case("vcf")
def vcf_no_gt_field(base: Base, d: Path) -> Run:
    d.mkdir(parents=True, exist_ok=True)
    vcf = d / "calls.vcf"
    vcf.write_text(
        "##fileformat=VCFv4.2\n##contig=<ID=1>\n"
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tA\tB\n"
        "1\t10\trs1\tA\tG\t.\t.\t.\tDP\t3\t4\n"
    )
    return init_pgen(d, vcf, (str(vcf), "GT"))


# ---------------------------------------------------------------- .bed


@case("bed")
def bed_wrong_magic(base: Base, d: Path) -> Run:
    prefix = fileset(base, d)
    bed = prefix.with_suffix(".bed")
    data = bytearray(bed.read_bytes())
    data[0:3] = b"BED"
    bed.write_bytes(bytes(data))
    return init(d, prefix, (str(bed), "not a PLINK 1 .bed", "42 45 44"))


@case("bed")
def bed_individual_major(base: Base, d: Path) -> Run:
    prefix = fileset(base, d)
    bed = prefix.with_suffix(".bed")
    bed.write_bytes(b"\x6c\x1b\x00" + bed.read_bytes()[3:])
    return init(d, prefix, (str(bed), "individual-major", "plink --bfile"))


@case("bed")
def bed_pgen_magic(base: Base, d: Path) -> Run:
    prefix = fileset(base, d)
    bed = prefix.with_suffix(".bed")
    bed.write_bytes(b"\x6c\x1b\x10" + bed.read_bytes()[3:])
    return init(d, prefix, (str(bed), "PLINK 2 .pgen", "--make-bed"))


@case("bed")
def bed_truncated(base: Base, d: Path) -> Run:
    prefix = fileset(base, d)
    bed = prefix.with_suffix(".bed")
    bed.write_bytes(bed.read_bytes()[:-7])
    return init(d, prefix, (str(bed), "truncated", "bytes"))


@case("bed")
def bed_extra_bytes(base: Base, d: Path) -> Run:
    prefix = fileset(base, d)
    bed = prefix.with_suffix(".bed")
    bed.write_bytes(bed.read_bytes() + b"\x00" * 5)
    return init(d, prefix, (str(bed), "size is"))


@case("bed")
def bed_empty(base: Base, d: Path) -> Run:
    prefix = fileset(base, d)
    bed = prefix.with_suffix(".bed")
    bed.write_bytes(b"")
    return init(d, prefix, (str(bed), "empty"))


@case("bed")
def bed_two_bytes(base: Base, d: Path) -> Run:
    prefix = fileset(base, d)
    bed = prefix.with_suffix(".bed")
    bed.write_bytes(b"\x6c\x1b")
    return init(d, prefix, (str(bed), "not a PLINK 1 .bed"))


@case("bed")
def bed_text_file(base: Base, d: Path) -> Run:
    prefix = fileset(base, d)
    bed = prefix.with_suffix(".bed")
    bed.write_text("#CHROM POS ID REF ALT\n1 100 rs1 A G\n")
    return init(d, prefix, (str(bed), "not a PLINK 1 .bed"))


@case("bed")
def bed_missing(base: Base, d: Path) -> Run:
    prefix = fileset(base, d)
    prefix.with_suffix(".bed").unlink()
    return init(d, prefix, (str(prefix.with_suffix(".bed")), "file not found"))


@case("bed")
def bed_is_directory(base: Base, d: Path) -> Run:
    prefix = fileset(base, d)
    bed = prefix.with_suffix(".bed")
    bed.unlink()
    bed.mkdir()
    return init(d, prefix, (str(bed), "directory"))


@case("bed")
def bed_fam_of_other_fileset(base: Base, d: Path) -> Run:
    prefix = fileset(base, d)
    fam = prefix.with_suffix(".fam")
    write_lines(fam, lines_of(fam)[:-3])
    return init(d, prefix, (str(prefix.with_suffix(".bed")), "genotypes.fam has"))


# ---------------------------------------------------------------- .bim


def _bim(base: Base, d: Path) -> tuple[Path, Path]:
    prefix = fileset(base, d)
    return prefix, prefix.with_suffix(".bim")


@case("bim")
def bim_five_columns(base: Base, d: Path) -> Run:
    prefix, bim = _bim(base, d)
    edit_line(bim, BIM_LINE, lambda f: f[:5])
    return init(d, prefix, (f"{bim}:{BIM_LINE}:", "expected 6 columns", "found 5"))


@case("bim")
def bim_seven_columns(base: Base, d: Path) -> Run:
    prefix, bim = _bim(base, d)
    edit_line(bim, BIM_LINE, lambda f: [*f, "extra"])
    return init(d, prefix, (f"{bim}:{BIM_LINE}:", "found 7"))


@case("bim")
def bim_position_text(base: Base, d: Path) -> Run:
    prefix, bim = _bim(base, d)
    set_field(bim, BIM_LINE, 4, "pos")
    return init(d, prefix, (f"{bim}:{BIM_LINE}:", "'pos', not an integer"))


@case("bim")
def bim_position_decimal(base: Base, d: Path) -> Run:
    prefix, bim = _bim(base, d)
    set_field(bim, BIM_LINE, 4, "1234.5")
    return init(d, prefix, (f"{bim}:{BIM_LINE}:", "not an integer"))


@case("bim")
def bim_position_negative(base: Base, d: Path) -> Run:
    prefix, bim = _bim(base, d)
    set_field(bim, BIM_LINE, 4, "-5")
    return init(d, prefix, (f"{bim}:{BIM_LINE}:", "negative position"))


@case("bim")
def bim_position_past_int64(base: Base, d: Path) -> Run:
    prefix, bim = _bim(base, d)
    set_field(bim, BIM_LINE, 4, "99999999999999999999999")
    return init(d, prefix, (f"{bim}:{BIM_LINE}:", "99999999999999999999999", "larger"))


@case("bim")
def bim_position_past_plink2(base: Base, d: Path) -> Run:
    prefix, bim = _bim(base, d)
    set_field(bim, BIM_LINE, 4, "3000000000")
    return init(d, prefix, (f"{bim}:{BIM_LINE}:", "3000000000", "2147483646"))


@case("bim")
def bim_byte_order_mark(base: Base, d: Path) -> Run:
    prefix, bim = _bim(base, d)
    bim.write_bytes(b"\xef\xbb\xbf" + bim.read_bytes())
    return init(d, prefix, (f"{bim}:1:", "byte-order mark"))


@case("bim")
def bim_not_utf8(base: Base, d: Path) -> Run:
    prefix, bim = _bim(base, d)
    bim.write_bytes(bim.read_bytes().replace(b"\t", b"\t\xff", 1))
    return init(d, prefix, (str(bim), "not UTF-8"))


@case("bim")
def bim_empty(base: Base, d: Path) -> Run:
    prefix, bim = _bim(base, d)
    bim.write_text("")
    return init(d, prefix, (str(bim), "no variants"))


@case("bim")
def bim_missing(base: Base, d: Path) -> Run:
    prefix, bim = _bim(base, d)
    bim.unlink()
    return init(d, prefix, (str(bim), "file not found"))


@case("bim")
def bim_extra_line(base: Base, d: Path) -> Run:
    prefix, bim = _bim(base, d)
    write_lines(bim, [*lines_of(bim), "1\textra\t0\t999999\tA\tG"])
    return init(d, prefix, (str(prefix.with_suffix(".bed")), "genotypes.bim has"))


@case("bim")
def bim_old_mac_line_ends(base: Base, d: Path) -> Run:
    prefix, bim = _bim(base, d)
    bim.write_bytes(bim.read_bytes().replace(b"\n", b"\r"))
    return init(d, prefix, (str(bim),))


@case("bim")
def bim_is_directory(base: Base, d: Path) -> Run:
    prefix, bim = _bim(base, d)
    bim.unlink()
    bim.mkdir()
    return init(d, prefix, (str(bim), "directory"))


@case("bim")
def bim_duplicate_variant(base: Base, d: Path) -> Run:
    sites = both_sites(base, d)
    for site in sites:
        bim = site / "data" / "genotypes.bim"
        lines = lines_of(bim)
        lines[BIM_LINE] = lines[BIM_LINE - 1]
        write_lines(bim, lines)
    study = study_file(d, STUDY)
    return study_run(d, study, sites, ("duplicated", "site-a", "--rm-dup"), ANALYST_HARMONIZATION)


@case("bim")
def bim_unknown_contig(base: Base, d: Path) -> Run:
    sites = both_sites(base, d)
    for site in sites:
        set_field(site / "data" / "genotypes.bim", BIM_LINE, 1, "chrUn_gl000220")
    study = study_file(d, STUDY)
    return study_run(
        d,
        study,
        sites,
        ("'chrUn_gl000220'", "does not know", "--autosome"),
        ANALYST_HARMONIZATION,
    )


@case("bim")
def bim_sex_chromosome(base: Base, d: Path) -> Run:
    sites = both_sites(base, d)
    for site in sites:
        set_field(site / "data" / "genotypes.bim", BIM_LINE, 1, "X")
    study = study_file(d, STUDY)
    return study_run(
        d, study, sites, ("chromosome X", "not on autosomes", "--autosome"), ANALYST_HARMONIZATION
    )


@case("bim")
def bim_alleles_differ_between_sites(base: Base, d: Path) -> Run:
    sites = both_sites(base, d)
    set_field(sites[1] / "data" / "genotypes.bim", BIM_LINE, 5, "C")
    set_field(sites[1] / "data" / "genotypes.bim", BIM_LINE, 6, "C")
    study = study_file(d, STUDY)
    return study_run(d, study, sites, ("site-b", "intersect"), ANALYST_HARMONIZATION)


# ---------------------------------------------------------------- .fam


def _fam(base: Base, d: Path) -> tuple[Path, Path]:
    prefix = fileset(base, d)
    return prefix, prefix.with_suffix(".fam")


@case("fam")
def fam_five_columns(base: Base, d: Path) -> Run:
    prefix, fam = _fam(base, d)
    edit_line(fam, 7, lambda f: f[:5])
    return init(d, prefix, (f"{fam}:7:", "expected 6 columns", "found 5"))


@case("fam")
def fam_seven_columns(base: Base, d: Path) -> Run:
    prefix, fam = _fam(base, d)
    edit_line(fam, 7, lambda f: [*f, "x"])
    return init(d, prefix, (f"{fam}:7:", "found 7"))


@case("fam")
def fam_duplicate_sample(base: Base, d: Path) -> Run:
    prefix, fam = _fam(base, d)
    lines = lines_of(fam)
    lines[8] = lines[2]
    write_lines(fam, lines)
    return init(d, prefix, (f"{fam}:9:", "duplicate sample", "lines 3 and 9"))


@case("fam")
def fam_empty(base: Base, d: Path) -> Run:
    prefix, fam = _fam(base, d)
    fam.write_text("\n\n")
    return init(d, prefix, (str(fam), "no samples"))


@case("fam")
def fam_byte_order_mark(base: Base, d: Path) -> Run:
    prefix, fam = _fam(base, d)
    fam.write_bytes(b"\xef\xbb\xbf" + fam.read_bytes())
    return init(d, prefix, (f"{fam}:1:", "byte-order mark"))


@case("fam")
def fam_not_utf8(base: Base, d: Path) -> Run:
    prefix, fam = _fam(base, d)
    fam.write_bytes(fam.read_bytes().replace(b" ", b"\xe9 ", 1))
    return init(d, prefix, (str(fam), "not UTF-8"))


@case("fam")
def fam_missing(base: Base, d: Path) -> Run:
    prefix, fam = _fam(base, d)
    fam.unlink()
    return init(d, prefix, (str(fam), "file not found"))


@case("fam")
def fam_extra_sample(base: Base, d: Path) -> Run:
    prefix, fam = _fam(base, d)
    lines = lines_of(fam)
    # four more samples: one more byte per variant (1 to 3 fit in the last byte's padding)
    write_lines(fam, [*lines, *(f"extra{i} extra{i} 0 0 1 -9" for i in range(4))])
    return init(d, prefix, (str(prefix.with_suffix(".bed")), "genotypes.fam has"))


# ---------------------------------------------------------------- phenotype table


def _pheno(base: Base, d: Path) -> tuple[Path, Path]:
    prefix = fileset(base, d)
    return prefix, d / "pheno.tsv"


def _pheno_init(d: Path, prefix: Path, needles: tuple[str, ...]) -> Run:
    return init(d, prefix, needles, "phenotypes")


@case("pheno")
def pheno_no_header(base: Base, d: Path) -> Run:
    prefix, pheno = _pheno(base, d)
    write_lines(pheno, lines_of(pheno)[1:])
    return _pheno_init(d, prefix, (f"{pheno}:1:", "header does not start with FID/IID"))


@case("pheno")
def pheno_fid_without_iid(base: Base, d: Path) -> Run:
    prefix, pheno = _pheno(base, d)
    set_field(pheno, 1, 2, "SAMPLE")
    return _pheno_init(d, prefix, (f"{pheno}:1:", "FID but no IID"))


@case("pheno")
def pheno_empty(base: Base, d: Path) -> Run:
    prefix, pheno = _pheno(base, d)
    pheno.write_text("")
    return _pheno_init(d, prefix, (str(pheno), "empty file"))


@case("pheno")
def pheno_header_only(base: Base, d: Path) -> Run:
    prefix, pheno = _pheno(base, d)
    write_lines(pheno, lines_of(pheno)[:1])
    return _pheno_init(d, prefix, (str(pheno), "no genotyped sample appears"))


@case("pheno")
def pheno_duplicate_column(base: Base, d: Path) -> Run:
    prefix, pheno = _pheno(base, d)
    set_field(pheno, 1, 4, "QPHENO")
    return _pheno_init(d, prefix, (f"{pheno}:1:", "'QPHENO' appears twice"))


@case("pheno")
def pheno_column_named_iid(base: Base, d: Path) -> Run:
    prefix, pheno = _pheno(base, d)
    set_field(pheno, 1, 5, "IID")
    return _pheno_init(d, prefix, (f"{pheno}:1:", "repeats an ID column"))


@case("pheno")
def pheno_short_row(base: Base, d: Path) -> Run:
    prefix, pheno = _pheno(base, d)
    edit_line(pheno, 6, lambda f: f[:-1])
    return _pheno_init(d, prefix, (f"{pheno}:6:", "fields but the header has"))


@case("pheno")
def pheno_long_row(base: Base, d: Path) -> Run:
    prefix, pheno = _pheno(base, d)
    edit_line(pheno, 6, lambda f: [*f, "1"])
    return _pheno_init(d, prefix, (f"{pheno}:6:", "fields but the header has"))


@case("pheno")
def pheno_not_a_number(base: Base, d: Path) -> Run:
    prefix, pheno = _pheno(base, d)
    set_field(pheno, 6, 3, "high")
    return _pheno_init(d, prefix, (f"{pheno}:6:", "'QPHENO' (column 3)", "'high'"))


@case("pheno")
def pheno_infinite(base: Base, d: Path) -> Run:
    prefix, pheno = _pheno(base, d)
    set_field(pheno, 6, 3, "inf")
    return _pheno_init(d, prefix, (f"{pheno}:6:", "not finite"))


@case("pheno")
def pheno_duplicate_sample(base: Base, d: Path) -> Run:
    prefix, pheno = _pheno(base, d)
    lines = lines_of(pheno)
    lines[5] = lines[2]
    write_lines(pheno, lines)
    return _pheno_init(d, prefix, (f"{pheno}:6:", "duplicate sample", "lines 3 and 6"))


@case("pheno")
def pheno_binary(base: Base, d: Path) -> Run:
    prefix, pheno = _pheno(base, d)
    pheno.write_bytes(gzip.compress(pheno.read_bytes()))
    return _pheno_init(d, prefix, (str(pheno), "not a UTF-8 text file"))


@case("pheno")
def pheno_ids_do_not_match(base: Base, d: Path) -> Run:
    prefix, pheno = _pheno(base, d)
    lines = lines_of(pheno)
    write_lines(pheno, [lines[0], *("x" + line.replace("\t", "\tx", 1) for line in lines[1:])])
    return _pheno_init(d, prefix, (str(pheno), "no genotyped sample appears", "same FID and IID"))


@case("pheno")
def pheno_missing(base: Base, d: Path) -> Run:
    prefix, pheno = _pheno(base, d)
    pheno.unlink()
    return _pheno_init(d, prefix, (str(pheno), "file not found"))


@case("pheno")
def pheno_is_directory(base: Base, d: Path) -> Run:
    prefix, pheno = _pheno(base, d)
    pheno.unlink()
    pheno.mkdir()
    return _pheno_init(d, prefix, (str(pheno), "directory"))


@case("pheno")
def pheno_latin1(base: Base, d: Path) -> Run:
    prefix, pheno = _pheno(base, d)
    set_field(pheno, 1, 7, "ÉVÉNEMENT")
    pheno.write_bytes(pheno.read_text(encoding="utf-8").encode("latin-1"))
    return _pheno_init(d, prefix, (str(pheno), "not a UTF-8 text file"))


@case("pheno")
def pheno_all_missing_phenotype(base: Base, d: Path) -> Run:
    sites = both_sites(base, d)
    pheno = sites[0] / "data" / "pheno.tsv"
    lines = lines_of(pheno)
    write_lines(pheno, [lines[0], *(_set(line, 2, "NA") for line in lines[1:])])
    study = study_file(d, GLM_STUDY)
    return study_run(
        d, study, sites, (str(pheno), "'QPHENO'", "every genotyped sample"), ANALYST_SITE
    )


@case("pheno")
def pheno_phenotype_column_absent(base: Base, d: Path) -> Run:
    sites = both_sites(base, d)
    study = study_file(d, GLM_STUDY.replace('"QPHENO"', '"QPHENO_V2"'))
    pheno = sites[0] / "data" / "pheno.tsv"
    return study_run(d, study, sites, (str(pheno), "no column 'QPHENO_V2'"), ANALYST_SITE)


@case("pheno")
def pheno_logistic_on_quantitative(base: Base, d: Path) -> Run:
    sites = both_sites(base, d)
    study = study_file(d, GLM_STUDY + 'model = "logistic"\n')
    pheno = sites[0] / "data" / "pheno.tsv"
    return study_run(d, study, sites, (str(pheno), "not a case/control column"), ANALYST_SITE)


def _set(line: str, index: int, value: str) -> str:
    """Tab-separated ``line`` with field ``index`` (0-based) set to ``value``."""
    fields = line.split("\t")
    fields[index] = value
    return "\t".join(fields)


# ---------------------------------------------------------------- covariate table


def _covar(base: Base, d: Path) -> tuple[Path, Path]:
    prefix = fileset(base, d)
    return prefix, d / "covar.tsv"


def _covar_init(d: Path, prefix: Path, needles: tuple[str, ...]) -> Run:
    return init(d, prefix, needles, "phenotypes", "covariates")


@case("covar")
def covar_sex_as_letters(base: Base, d: Path) -> Run:
    prefix, covar = _covar(base, d)
    set_field(covar, 4, 4, "F")
    return _covar_init(d, prefix, (f"{covar}:4:", "'SEX'", "1 = male, 2 = female"))


@case("covar")
def covar_not_a_number(base: Base, d: Path) -> Run:
    prefix, covar = _covar(base, d)
    set_field(covar, 9, 3, "forty")
    return _covar_init(d, prefix, (f"{covar}:9:", "'AGE' (column 3)", "'forty'"))


@case("covar")
def covar_no_header(base: Base, d: Path) -> Run:
    prefix, covar = _covar(base, d)
    write_lines(covar, lines_of(covar)[1:])
    return _covar_init(d, prefix, (f"{covar}:1:", "header does not start"))


@case("covar")
def covar_duplicate_sample(base: Base, d: Path) -> Run:
    prefix, covar = _covar(base, d)
    lines = lines_of(covar)
    lines[10] = lines[4]
    write_lines(covar, lines)
    return _covar_init(d, prefix, (f"{covar}:11:", "duplicate sample"))


@case("covar")
def covar_short_row(base: Base, d: Path) -> Run:
    prefix, covar = _covar(base, d)
    edit_line(covar, 3, lambda f: f[:3])
    return _covar_init(d, prefix, (f"{covar}:3:", "3 fields but the header has 4"))


@case("covar")
def covar_ids_do_not_match(base: Base, d: Path) -> Run:
    prefix, covar = _covar(base, d)
    lines = lines_of(covar)
    write_lines(covar, [lines[0], *("z" + line.replace("\t", "\tz", 1) for line in lines[1:])])
    return _covar_init(d, prefix, (str(covar), "no genotyped sample appears"))


@case("covar")
def covar_header_with_spaces_in_name(base: Base, d: Path) -> Run:
    prefix, covar = _covar(base, d)
    lines = lines_of(covar)
    lines[0] = lines[0].replace("AGE", "AGE AT ENTRY")
    write_lines(covar, lines)
    return _covar_init(d, prefix, (f"{covar}:2:", "fields but the header has 6"))


@case("covar")
def covar_all_missing_covariate(base: Base, d: Path) -> Run:
    sites = both_sites(base, d)
    covar = sites[0] / "data" / "covar.tsv"
    lines = lines_of(covar)
    write_lines(covar, [lines[0], *(_set(line, 2, "-9") for line in lines[1:])])
    study = study_file(d, GLM_STUDY)
    return study_run(d, study, sites, (str(covar), "'AGE'", "every genotyped sample"), ANALYST_SITE)


@case("covar")
def covar_covariate_column_absent(base: Base, d: Path) -> Run:
    sites = both_sites(base, d)
    study = study_file(d, GLM_STUDY.replace('"SEX"', '"BMI"'))
    covar = sites[0] / "data" / "covar.tsv"
    return study_run(d, study, sites, (str(covar), "no column 'BMI'", "AGE, SEX"), ANALYST_SITE)


# ---------------------------------------------------------------- study.toml


def _study(d: Path, text: str, needles: tuple[str, ...]) -> Run:
    path = study_file(d, text)
    return show(path, (str(path), *needles))


@case("study")
def study_syntax_error(base: Base, d: Path) -> Run:
    return _study(d, STUDY.replace('kind = "hardy"', "kind = hardy"), (":9:", "not valid TOML"))


@case("study")
def study_binary(base: Base, d: Path) -> Run:
    path = d / "study.toml"
    path.write_bytes(bytes(range(256)) * 4)
    return show(path, (str(path), "not a TOML text file"))


@case("study")
def study_utf16(base: Base, d: Path) -> Run:
    path = d / "study.toml"
    path.write_bytes(STUDY.encode("utf-16"))
    return show(path, (str(path), "not a TOML text file", "UTF-8"))


@case("study")
def study_empty(base: Base, d: Path) -> Run:
    return _study(d, "", ("missing key 'study'",))


@case("study")
def study_unknown_table(base: Base, d: Path) -> Run:
    return _study(
        d, STUDY + "\n[analyses]\nkind = 'freq'\n", ("unknown key 'analyses'", "'analysis'")
    )


@case("study")
def study_unknown_study_key(base: Base, d: Path) -> Run:
    return _study(
        d, STUDY.replace("[study]\n", "[study]\nminsites = 2\n"), ("'minsites'", "'min_sites'")
    )


@case("study")
def study_name_missing(base: Base, d: Path) -> Run:
    return _study(d, STUDY.replace('name = "corpus"\n', ""), ("missing key 'name' in [study]",))


@case("study")
def study_name_invalid(base: Base, d: Path) -> Run:
    return _study(d, STUDY.replace('"corpus"', '"my study"'), ("'my study' is not a valid name",))


@case("study")
def study_qc_maf_out_of_range(base: Base, d: Path) -> Run:
    return _study(d, STUDY + "\n[qc]\nmaf = 0.7\n", ("qc.maf must lie in (0, 0.5]", "maf = 0.01"))


@case("study")
def study_qc_midp_without_hwe(base: Base, d: Path) -> Run:
    return _study(
        d, STUDY + "\n[qc]\nmaf = 0.01\nhwe_midp = true\n", ("qc.hwe is not set", "hwe = 1e-6")
    )


@case("study")
def study_name_not_a_string(base: Base, d: Path) -> Run:
    return _study(d, STUDY.replace('"corpus"', "42"), ("study.name must be str",))


@case("study")
def study_min_sites_zero(base: Base, d: Path) -> Run:
    return _study(d, STUDY.replace("[study]\n", "[study]\nmin_sites = 0\n"), ("min_sites",))


@case("study")
def study_min_sites_text(base: Base, d: Path) -> Run:
    return _study(
        d,
        STUDY.replace("[study]\n", '[study]\nmin_sites = "two"\n'),
        ("study.min_sites must be int",),
    )


@case("study")
def study_mismatch_policy_unknown(base: Base, d: Path) -> Run:
    return _study(d, STUDY.replace('"stop"', '"merge"'), ("on_variant_mismatch", "'merge'"))


@case("study")
def study_no_analysis(base: Base, d: Path) -> Run:
    # the fix names the table: Rich markup would print "add at least one  table"
    return _study(d, STUDY.split("[[analysis]]")[0], ("add at least one [[analysis]] table",))


@case("study")
def study_analysis_not_a_table(base: Base, d: Path) -> Run:
    return _study(d, "analysis = 3\n" + STUDY.split("[[analysis]]")[0], ("[[analysis]]",))


@case("study")
def study_unknown_kind(base: Base, d: Path) -> Run:
    return _study(
        d,
        STUDY.replace('kind = "hardy"', 'kind = "telepathy"'),
        ("'telepathy' in [[analysis]] #2",),
    )


@case("study")
def study_kind_missing(base: Base, d: Path) -> Run:
    return _study(
        d, STUDY.replace('kind = "hardy"\n', ""), ("missing key 'kind' in [[analysis]] #2",)
    )


@case("study")
def study_unknown_parameter(base: Base, d: Path) -> Run:
    return _study(
        d, STUDY.replace("midp = false", "mid_p = false"), ("'mid_p'", "[[analysis]] #2", "'midp'")
    )


@case("study")
def study_parameter_wrong_type(base: Base, d: Path) -> Run:
    return _study(
        d, STUDY.replace("midp = false", 'midp = "no"'), ("[[analysis]] #2.midp must be bool",)
    )


@case("study")
def study_duplicate_ids(base: Base, d: Path) -> Run:
    return _study(
        d, STUDY.replace('kind = "hardy"', 'kind = "hardy"\nid = "freq"'), ("'freq'", "unique id")
    )


@case("study")
def study_invalid_id(base: Base, d: Path) -> Run:
    return _study(
        d, STUDY.replace('kind = "hardy"', 'kind = "hardy"\nid = "hardy test"'), ("'hardy test'",)
    )


@case("study")
def study_glm_without_phenotype(base: Base, d: Path) -> Run:
    return _study(
        d, GLM_STUDY.replace('phenotype = "QPHENO"\n', ""), ("[[analysis]] #1 (glm)", "phenotype")
    )


@case("study")
def study_unknown_release_mode(base: Base, d: Path) -> Run:
    return _study(d, STUDY + '\n[privacy]\nmode = "secret"\n', ("privacy.mode", "'secret'"))


@case("study")
def study_dp_without_epsilon(base: Base, d: Path) -> Run:
    return _study(d, STUDY + '\n[privacy]\nmode = "dp"\n', ("privacy.epsilon",))


@case("study")
def study_plain_with_epsilon(base: Base, d: Path) -> Run:
    return _study(d, STUDY + "\n[privacy]\nepsilon = 1.0\n", ("privacy.epsilon and privacy.delta",))


@case("study")
def study_dp_with_glm(base: Base, d: Path) -> Run:
    return _study(
        d, GLM_STUDY + '\n[privacy]\nmode = "dp"\nepsilon = 1.0\n', ('mode = "dp"', "glm")
    )


@case("study")
def study_noise_shares_without_distributed_dp(base: Base, d: Path) -> Run:
    text = STUDY + '\n[privacy]\nmode = "dp"\nepsilon = 1.0\nnoise_shares = 3\n'
    return _study(d, text, ("privacy.noise_shares",))


@case("study")
def study_samples_with_differ(base: Base, d: Path) -> Run:
    text = STUDY.replace('kind = "freq"', 'kind = "freq"\nsamples_with = ["QPHENO"]')
    return _study(d, text, ("samples_with",))


@case("study")
def study_privacy_not_a_table(base: Base, d: Path) -> Run:
    return _study(d, 'privacy = "dp"\n' + STUDY, ("[privacy] must be a table",))


@case("study")
def study_is_directory(base: Base, d: Path) -> Run:
    path = d / "study.toml"
    path.mkdir()
    return show(path, (str(path), "directory"))


@case("study")
def study_missing(base: Base, d: Path) -> Run:
    path = d / "study.toml"
    return show(path, (str(path), "file not found"))


@case("study")
def study_min_sites_above_sites(base: Base, d: Path) -> Run:
    sites = both_sites(base, d)
    study = study_file(d, STUDY.replace("[study]\n", "[study]\nmin_sites = 5\n"))
    return study_run(d, study, sites, (str(study), "min_sites", "5"), ANALYST_TOO_FEW_SITES)


@case("study")
def study_scoring_file_outside_study_folder(base: Base, d: Path) -> Run:
    sites = both_sites(base, d)
    study = study_file(d, PRS_STUDY.replace('"pgs.txt"', '"../../../../etc/passwd"'))
    return study_run(d, study, sites, ("scoring_file", "etc/passwd", "outside"), ANALYST_INPUT)


@case("study")
def study_same_site_twice(base: Base, d: Path) -> Run:
    site = site_copy(base, d)
    study = study_file(d, STUDY)
    return study_run(d, study, [site, site], ("same site directory",), ANALYST_INPUT)


@case("study")
def study_results_folder_not_empty(base: Base, d: Path) -> Run:
    sites = both_sites(base, d)
    study = study_file(d, STUDY)
    run = study_run(d, study, sites, ("--overwrite",), ANALYST_INPUT)
    (d / "results").mkdir()
    (d / "results" / "earlier.txt").write_text("kept\n")
    return dataclasses.replace(run, needles=(str(d / "results"), "--overwrite"), absent=())


@case("study")
def study_site_is_not_a_site(base: Base, d: Path) -> Run:
    site = site_copy(base, d)
    other = d / "not-a-site"
    other.mkdir()
    study = study_file(d, STUDY)
    return study_run(
        d, study, [site, other], (str(other / "site.toml"), "genofed-site init"), ANALYST_INPUT
    )


# ---------------------------------------------------------------- policy.toml


def _policy(base: Base, d: Path, edit: Callable[[str], str], needles: tuple[str, ...]) -> Run:
    site = site_copy(base, d)
    policy = site / "policy.toml"
    policy.write_text(edit(policy.read_text(encoding="utf-8")), encoding="utf-8")
    return check(site, (str(policy), *needles))


def _in_policy(line: str) -> Callable[[str], str]:
    """Add ``line`` at the end of the [policy] table (before its sub-tables)."""
    return lambda text: text.replace("\n[policy.budget]", f"\n{line}\n\n[policy.budget]", 1)


def _replace(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)

    return edit


@case("policy")
def policy_unknown_analysis_kind(base: Base, d: Path) -> Run:
    edit = _replace('allowed_analyses = ["variants"', 'allowed_analyses = ["telepathy", "variants"')
    return _policy(base, d, edit, ("policy.allowed_analyses", "'telepathy'", "known kind"))


@case("policy")
def policy_misspelt_analysis_kind(base: Base, d: Path) -> Run:
    edit = _replace('"freq"', '"frq"')
    return _policy(base, d, edit, ("'frq'", "did you mean 'freq' (for 'frq')"))


@case("policy")
def policy_unknown_release_mode(base: Base, d: Path) -> Run:
    edit = _replace(
        'allowed_release_modes = ["plain"', 'allowed_release_modes = ["public", "plain"'
    )
    return _policy(base, d, edit, ("policy.allowed_release_modes", "'public'", "plain, dp"))


@case("policy")
def policy_unknown_key(base: Base, d: Path) -> Run:
    return _policy(
        base,
        d,
        _in_policy("min_cohort = 20"),
        ("unknown key 'min_cohort' in [policy]", "'min_cohort_size'"),
    )


@case("policy")
def policy_wrong_type(base: Base, d: Path) -> Run:
    edit = _replace("min_cohort_size = 10", 'min_cohort_size = "ten"')
    return _policy(base, d, edit, ("policy.min_cohort_size must be int",))


@case("policy")
def policy_negative_minimum(base: Base, d: Path) -> Run:
    edit = _replace("min_cell_count = 0", "min_cell_count = -1")
    return _policy(base, d, edit, ("policy.min_cell_count must be >= 0",))


@case("policy")
def policy_unsupported_version(base: Base, d: Path) -> Run:
    return _policy(base, d, _replace("version = 1", "version = 2"), ("policy version 2",))


@case("policy")
def policy_version_missing(base: Base, d: Path) -> Run:
    return _policy(base, d, _replace("version = 1\n", ""), ("missing key 'version'",))


@case("policy")
def policy_syntax_error(base: Base, d: Path) -> Run:
    return _policy(base, d, _replace("demo = true", "demo = "), ("not valid TOML",))


@case("policy")
def policy_binary(base: Base, d: Path) -> Run:
    site = site_copy(base, d)
    policy = site / "policy.toml"
    policy.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    return check(site, (str(policy), "not a TOML text file"))


@case("policy")
def policy_policy_not_a_table(base: Base, d: Path) -> Run:
    return _policy(
        base, d, lambda _text: 'policy = "allow everything"\n', ("'policy' must be a table",)
    )


@case("policy")
def policy_budget_epsilon_zero(base: Base, d: Path) -> Run:
    return _policy(base, d, _replace("epsilon = 100.0", "epsilon = 0"), ("policy.budget.epsilon",))


@case("policy")
def policy_budget_period_unknown(base: Base, d: Path) -> Run:
    return _policy(
        base,
        d,
        _replace('period = "year"', 'period = "decade"'),
        ("policy.budget.period", "'decade'"),
    )


@case("policy")
def policy_budget_unknown_key(base: Base, d: Path) -> Run:
    edit = _replace("epsilon = 100.0", "epsilon = 100.0\nepsilon_per_study = 1.0")
    return _policy(base, d, edit, ("'epsilon_per_study' in [policy.budget]",))


@case("policy")
def policy_trusted_analyst_bad_key(base: Base, d: Path) -> Run:
    text = '\n[[policy.trusted_analysts]]\nname = "alice"\npublic_key = "ed25519:AAAA"\n'
    return _policy(
        base, d, lambda t: t + text, ("[[policy.trusted_analysts]] #1.public_key", "KEY.pub")
    )


@case("policy")
def policy_trusted_analyst_twice(base: Base, d: Path) -> Run:
    key = (base.key.parent / (base.key.name + ".pub")).read_text().strip()
    table = f'\n[[policy.trusted_analysts]]\nname = "alice"\npublic_key = "{key}"\n'
    return _policy(base, d, lambda t: t + table + table, ("'alice' is listed twice",))


@case("policy")
def policy_bounds_unknown_kind(base: Base, d: Path) -> Run:
    return _policy(
        base,
        d,
        lambda t: t + "\n[policy.analysis.telepathy]\nmax_epsilon = 1.0\n",
        ("[policy.analysis.telepathy]", "unknown analysis kind"),
    )


@case("policy")
def policy_bounds_on_analysis_not_allowed(base: Base, d: Path) -> Run:
    edit = _replace('"glm", ', "")
    return _policy(
        base,
        d,
        lambda t: edit(t) + "\n[policy.analysis.glm]\nmax_covariates = 3\n",
        ("[policy.analysis.glm]", 'add "glm" to allowed_analyses'),
    )


@case("policy")
def policy_bounds_unknown_parameter(base: Base, d: Path) -> Run:
    return _policy(
        base,
        d,
        lambda t: t + "\n[policy.analysis.glm]\nmax_colour = 3\n",
        ("'max_colour' in [policy.analysis.glm]",),
    )


@case("policy")
def policy_bound_wrong_operator(base: Base, d: Path) -> Run:
    return _policy(
        base,
        d,
        lambda t: t + '\n[policy.analysis.glm]\nmax_model = "linear"\n',
        ("policy.analysis.glm.max_model", "allowed_model"),
    )


@case("policy")
def policy_auto_approve_unknown_analyst(base: Base, d: Path) -> Run:
    return _policy(
        base,
        d,
        _replace('analysts = ["*"]', 'analysts = ["mallory"]'),
        ("[[policy.auto_approve]] #1.analysts", "'mallory'"),
    )


@case("policy")
def policy_auto_approve_unknown_kind(base: Base, d: Path) -> Run:
    edit = _replace('analysts = ["*"]', 'analysts = ["*"]\nanalyses = ["telepathy"]')
    return _policy(base, d, edit, ("[[policy.auto_approve]] #1.analyses", "'telepathy'"))


@case("policy")
def policy_auto_approve_unknown_release_mode(base: Base, d: Path) -> Run:
    edit = _replace('analysts = ["*"]', 'analysts = ["*"]\nrelease_modes = ["leaky"]')
    return _policy(base, d, edit, ("[[policy.auto_approve]] #1.release_modes", "'leaky'"))


@case("policy")
def policy_app_hash_not_a_hash(base: Base, d: Path) -> Run:
    def edit(text: str) -> str:
        start = text.index("allowed_app_hashes = [")
        end = text.index("\n", start)
        return text[:start] + 'allowed_app_hashes = ["latest"]' + text[end:]

    return _policy(base, d, edit, ("allowed_app_hashes", "'latest'", "genofed-site app-hash"))


@case("policy")
def policy_weight_ratio_below_one(base: Base, d: Path) -> Run:
    return _policy(
        base, d, _in_policy("max_weight_ratio = 0.5"), ("policy.max_weight_ratio must be >= 1",)
    )


@case("policy")
def policy_every_problem_at_once(base: Base, d: Path) -> Run:
    def edit(text: str) -> str:
        text = _replace('"hardy"', '"telepathy"')(text)
        text = _replace(
            'allowed_release_modes = ["plain"', 'allowed_release_modes = ["public", "plain"'
        )(text)
        text = _replace("min_cell_count = 0", "min_cell_count = -1")(text)
        text = _replace('period = "year"', 'period = "decade"')(text)
        return _in_policy("colour = 1\nmin_cohort = 3")(text)

    return _policy(
        base,
        d,
        edit,
        (
            "5 problems",
            "unknown keys 'colour', 'min_cohort' in [policy]",
            "'telepathy'",
            "'public'",
            "policy.min_cell_count",
            "'decade'",
            "then run genofed-site check",
        ),
    )


# ---------------------------------------------------------------- site.toml


def _site(base: Base, d: Path, edit: Callable[[str], str], needles: tuple[str, ...]) -> Run:
    site = site_copy(base, d)
    config = site / "site.toml"
    config.write_text(edit(config.read_text(encoding="utf-8")), encoding="utf-8")
    return check(site, (str(config), *needles))


@case("site")
def site_missing(base: Base, d: Path) -> Run:
    site = site_copy(base, d)
    (site / "site.toml").unlink()
    return check(site, (str(site / "site.toml"), "file not found", "genofed-site init"))


@case("site")
def site_syntax_error(base: Base, d: Path) -> Run:
    return _site(base, d, _replace('name = "site-a"', 'name = "site-a'), ("not valid TOML",))


@case("site")
def site_binary(base: Base, d: Path) -> Run:
    site = site_copy(base, d)
    (site / "site.toml").write_bytes(b"\x00\xff" * 64)
    return check(site, (str(site / "site.toml"), "not a TOML text file"))


@case("site")
def site_unknown_key(base: Base, d: Path) -> Run:
    return _site(
        base,
        d,
        _replace("[data]\n", '[data]\ngenotype = "x.bed"\n'),
        ("unknown key 'genotype' in [data]", "'genotypes'"),
    )


@case("site")
def site_data_table_missing(base: Base, d: Path) -> Run:
    return _site(base, d, lambda t: t.split("[data]")[0], ("missing key 'data'",))


@case("site")
def site_bad_name(base: Base, d: Path) -> Run:
    return _site(
        base, d, _replace('name = "site-a"', 'name = "site a/../b"'), ("site name 'site a/../b'",)
    )


@case("site")
def site_genotypes_not_a_string(base: Base, d: Path) -> Run:
    return _site(
        base,
        d,
        _replace('genotypes = "data/genotypes.bed"', "genotypes = 1"),
        ("data.genotypes must be str",),
    )


@case("site")
def site_genotypes_file_missing(base: Base, d: Path) -> Run:
    site = site_copy(base, d)
    (site / "data" / "genotypes.bed").unlink()
    return check(site, (str(site / "data" / "genotypes.bed"), "file not found"))


@case("site")
def site_phenotypes_file_missing(base: Base, d: Path) -> Run:
    site = site_copy(base, d)
    (site / "data" / "pheno.tsv").unlink()
    return check(site, (str(site / "data" / "pheno.tsv"), "file not found"))


@case("site")
def site_data_not_a_table(base: Base, d: Path) -> Run:
    return _site(
        base,
        d,
        lambda t: 'data = "data/genotypes.bed"\n' + t.split("[data]")[0],
        ("'data' must be a table",),
    )


@case("site")
def site_directory_is_a_file(base: Base, d: Path) -> Run:
    path = d / "site-a"
    path.write_text("not a directory\n")
    return check(path, (str(path / "site.toml"), "file not found"))


# ---------------------------------------------------------------- coordinator.toml


def _coordinator(d: Path, text: str, needles: tuple[str, ...]) -> Run:
    path = d / "coordinator.toml"
    path.write_text(text, encoding="utf-8")
    return Run("analyst", ("coordinator", "up", "--config", str(path)), (str(path), *needles))


_COORDINATOR = """\
[coordinator]
fleet_address = "0.0.0.0:9092"
control_address = "127.0.0.1:9093"
state_dir = "state"

[tls]
ca_cert = "certs/ca.pem"
server_cert = "certs/server.pem"
server_key = "certs/server.key"
"""


@case("coordinator")
def coordinator_missing(base: Base, d: Path) -> Run:
    path = d / "coordinator.toml"
    return Run(
        "analyst", ("coordinator", "up", "--config", str(path)), (str(path), "file not found")
    )


@case("coordinator")
def coordinator_syntax_error(base: Base, d: Path) -> Run:
    return _coordinator(d, _COORDINATOR.replace('"state"', "state"), (":4:", "not valid TOML"))


@case("coordinator")
def coordinator_binary(base: Base, d: Path) -> Run:
    path = d / "coordinator.toml"
    path.write_bytes(gzip.compress(_COORDINATOR.encode()))
    return Run(
        "analyst", ("coordinator", "up", "--config", str(path)), (str(path), "not a TOML text file")
    )


@case("coordinator")
def coordinator_unknown_table(base: Base, d: Path) -> Run:
    return _coordinator(
        d, _COORDINATOR + "\n[superlink]\nport = 9092\n", ("unknown key 'superlink'",)
    )


@case("coordinator")
def coordinator_unknown_key(base: Base, d: Path) -> Run:
    return _coordinator(
        d, _COORDINATOR.replace("[tls]\n", "[tls]\nca = 'ca.pem'\n"), ("unknown key 'ca' in [tls]",)
    )


@case("coordinator")
def coordinator_bad_address(base: Base, d: Path) -> Run:
    return _coordinator(
        d, _COORDINATOR.replace('"0.0.0.0:9092"', '"0.0.0.0"'), ("'0.0.0.0'", "HOST:PORT")
    )


@case("coordinator")
def coordinator_tls_incomplete(base: Base, d: Path) -> Run:
    return _coordinator(
        d,
        _COORDINATOR.replace('server_key = "certs/server.key"\n', ""),
        ("[tls] is incomplete", "server_key"),
    )


@case("coordinator")
def coordinator_no_tls(base: Base, d: Path) -> Run:
    return _coordinator(d, _COORDINATOR.split("[tls]")[0], ("without TLS", "genofed certs init"))


@case("coordinator")
def coordinator_tls_files_missing(base: Base, d: Path) -> Run:
    run = _coordinator(d, _COORDINATOR, ())
    return Run(run.cli, run.args, (str(d / "certs" / "ca.pem"), "file not found", "[tls]"))


@case("coordinator")
def coordinator_receipts_mode_unknown(base: Base, d: Path) -> Run:
    return _coordinator(
        d, _COORDINATOR + '\n[receipts]\nmode = "trust"\n', ("[receipts] mode", "'trust'")
    )


@case("coordinator")
def coordinator_receipts_key_missing(base: Base, d: Path) -> Run:
    text = (
        _COORDINATOR
        + '\n[receipts]\nmode = "require"\n[receipts.audit_keys]\nsite-a = "keys/a.pub"\n'
    )
    return _coordinator(d, text, ("[receipts.audit_keys] site-a", "a.pub"))


@case("coordinator")
def coordinator_file_dirs_not_a_list(base: Base, d: Path) -> Run:
    return _coordinator(
        d,
        _COORDINATOR + '\n[studies]\nfile_dirs = "scoring"\n',
        ("studies.file_dirs must be list",),
    )


@case("coordinator")
def coordinator_tls_table_not_a_table(base: Base, d: Path) -> Run:
    return _coordinator(d, 'tls = "yes"\n', ("'tls' must be a table",))


# ---------------------------------------------------------------- scoring files


def _scoring(
    base: Base, d: Path, data: bytes, needles: tuple[str, ...], name: str = "pgs.txt"
) -> Run:
    (d / name).write_bytes(data)
    path = study_file(d, PRS_STUDY.replace('"pgs.txt"', f'"{name}"'))
    return show(path, (str(d / name), *needles))


def _pgs_lines(base: Base) -> list[str]:
    return lines_of(base.scoring_file)


def _pgs(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def _header_index(lines: list[str]) -> int:
    return next(i for i, line in enumerate(lines) if line.startswith("rsID\t"))


def _pgs_edit(base: Base, row: int, column: int, value: str) -> tuple[bytes, int]:
    """The scoring file with data row ``row`` (1-based), ``column`` (0-based) set; its line."""
    lines = _pgs_lines(base)
    i = _header_index(lines) + row
    lines[i] = _set(lines[i], column, value)
    return _pgs(lines), i + 1


@case("scoring")
def scoring_gzip_garbage(base: Base, d: Path) -> Run:
    return _scoring(
        base,
        d,
        b"\x1f\x8b\x08\x00" + b"garbage" * 20,
        ("gzip", "cannot be decompressed"),
        "pgs.txt.gz",
    )


@case("scoring")
def scoring_gzip_truncated(base: Base, d: Path) -> Run:
    data = gzip.compress(base.scoring_file.read_bytes())
    return _scoring(base, d, data[: len(data) // 2], ("cannot be decompressed",), "pgs.txt.gz")


@case("scoring")
def scoring_no_format_version(base: Base, d: Path) -> Run:
    lines = [line for line in _pgs_lines(base) if not line.startswith("#format_version")]
    return _scoring(base, d, _pgs(lines), ("format_version is missing",))


@case("scoring")
def scoring_format_version_1(base: Base, d: Path) -> Run:
    lines = [
        line.replace("=2.0", "=1.0") if line.startswith("#format_version") else line
        for line in _pgs_lines(base)
    ]
    return _scoring(base, d, _pgs(lines), ("format_version is 1.0",))


@case("scoring")
def scoring_missing_columns(base: Base, d: Path) -> Run:
    lines = _pgs_lines(base)
    i = _header_index(lines)
    lines[i] = lines[i].replace("other_allele", "allele_2")
    return _scoring(base, d, _pgs(lines), (f":{i + 1}:", "missing column(s) other_allele"))


@case("scoring")
def scoring_non_additive(base: Base, d: Path) -> Run:
    lines = _pgs_lines(base)
    i = _header_index(lines)
    lines = [*lines[:i], lines[i] + "\tis_dominant", *(line + "\tFALSE" for line in lines[i + 1 :])]
    return _scoring(base, d, _pgs(lines), ("non-additive", "is_dominant"))


@case("scoring")
def scoring_weight_not_a_number(base: Base, d: Path) -> Run:
    data, line = _pgs_edit(base, 3, 5, "strong")
    return _scoring(base, d, data, (f":{line}:", "effect_weight 'strong'"))


@case("scoring")
def scoring_weight_infinite(base: Base, d: Path) -> Run:
    data, line = _pgs_edit(base, 4, 5, "inf")
    return _scoring(base, d, data, (f":{line}:", "not a finite number"))


@case("scoring")
def scoring_position_not_a_number(base: Base, d: Path) -> Run:
    data, line = _pgs_edit(base, 2, 2, "12kb")
    return _scoring(base, d, data, (f":{line}:", "position '12kb'"))


@case("scoring")
def scoring_allele_not_nucleotides(base: Base, d: Path) -> Run:
    data, line = _pgs_edit(base, 5, 3, "Z")
    return _scoring(base, d, data, (f":{line}:", "effect_allele 'Z'"))


@case("scoring")
def scoring_same_alleles(base: Base, d: Path) -> Run:
    lines = _pgs_lines(base)
    i = _header_index(lines) + 1
    fields = lines[i].split("\t")
    lines[i] = _set(lines[i], 4, fields[3])
    return _scoring(base, d, _pgs(lines), (f":{i + 1}:", "are both"))


@case("scoring")
def scoring_duplicate_variant(base: Base, d: Path) -> Run:
    lines = _pgs_lines(base)
    i = _header_index(lines)
    lines.append(lines[i + 1])
    return _scoring(base, d, _pgs(lines), (f":{len(lines)}:", "listed twice", f"line {i + 2}"))


@case("scoring")
def scoring_spaces_not_tabs(base: Base, d: Path) -> Run:
    lines = _pgs_lines(base)
    i = _header_index(lines) + 2
    lines[i] = lines[i].replace("\t", " ")
    return _scoring(base, d, _pgs(lines), (f":{i + 1}:", "tab-separated"))


@case("scoring")
def scoring_no_header_row(base: Base, d: Path) -> Run:
    lines = [line for line in _pgs_lines(base) if line.startswith("#")]
    return _scoring(base, d, _pgs(lines), ("no column header line",))


@case("scoring")
def scoring_no_rows(base: Base, d: Path) -> Run:
    lines = _pgs_lines(base)
    return _scoring(base, d, _pgs(lines[: _header_index(lines) + 1]), ("no variants",))


@case("scoring")
def scoring_not_utf8(base: Base, d: Path) -> Run:
    return _scoring(base, d, b"\xff\xfe" + base.scoring_file.read_bytes(), ("not UTF-8",))


@case("scoring")
def scoring_missing(base: Base, d: Path) -> Run:
    path = study_file(d, PRS_STUDY)
    sites = both_sites(base, d)
    return study_run(
        d, path, sites, (str(d / "pgs.txt"), "cannot read the scoring file"), ANALYST_INPUT
    )


@case("scoring")
def scoring_pinned_hash_differs(base: Base, d: Path) -> Run:
    (d / "pgs.txt").write_bytes(base.scoring_file.read_bytes())
    path = study_file(d, PRS_STUDY + f'scoring_sha256 = "{"0" * 64}"\n')
    return show(path, (str(d / "pgs.txt"), "SHA-256", "scoring_sha256"))


# ---------------------------------------------------------------- signed studies


def _signed(
    base: Base, d: Path, edit: Callable[[dict[str, object]], object], needles: tuple[str, ...]
) -> Run:
    doc = json.loads(base.signed_study.read_text())
    path = d / "study.signed.json"
    path.write_text(json.dumps(edit(doc)), encoding="utf-8")
    return show(path, (str(path), *needles))


def _with(key: str, value: object) -> Callable[[dict[str, object]], object]:
    def edit(doc: dict[str, object]) -> object:
        doc[key] = value
        return doc

    return edit


_ALTERED = ("does not verify", "genofed study sign")


@case("signed")
def signed_study_altered(base: Base, d: Path) -> Run:
    def edit(doc: dict[str, object]) -> object:
        doc["study"] = str(doc["study"]).replace('"midp":false', '"midp":true')
        return doc

    return _signed(base, d, edit, _ALTERED)


@case("signed")
def signed_truncated(base: Base, d: Path) -> Run:
    path = d / "study.signed.json"
    path.write_bytes(base.signed_study.read_bytes()[:100])
    return show(path, (str(path), "not a JSON signed study"))


@case("signed")
def signed_not_json(base: Base, d: Path) -> Run:
    path = d / "study.signed.json"
    path.write_text(STUDY)
    return show(path, (str(path), "not a JSON signed study"))


@case("signed")
def signed_wrong_format(base: Base, d: Path) -> Run:
    return _signed(base, d, _with("format", "genofed.signed-study/v0"), ("not a signed study",))


@case("signed")
def signed_signature_missing(base: Base, d: Path) -> Run:
    def edit(doc: dict[str, object]) -> object:
        del doc["signature"]
        return doc

    return _signed(base, d, edit, _ALTERED)


@case("signed")
def signed_signature_a_number(base: Base, d: Path) -> Run:
    return _signed(base, d, _with("signature", 12345), _ALTERED)


@case("signed")
def signed_signature_not_base64(base: Base, d: Path) -> Run:
    return _signed(base, d, _with("signature", "not base64!"), _ALTERED)


@case("signed")
def signed_sha256_differs(base: Base, d: Path) -> Run:
    return _signed(base, d, _with("sha256", "0" * 64), _ALTERED)


@case("signed")
def signed_other_signer(base: Base, d: Path) -> Run:
    return _signed(base, d, _with("public_key", base.other_key_pub.read_text().strip()), _ALTERED)


@case("signed")
def signed_public_key_malformed(base: Base, d: Path) -> Run:
    return _signed(base, d, _with("public_key", "rsa:AAAA"), _ALTERED)


@case("signed")
def signed_study_an_object(base: Base, d: Path) -> Run:
    def edit(doc: dict[str, object]) -> object:
        doc["study"] = json.loads(str(doc["study"]))
        return doc

    return _signed(base, d, edit, _ALTERED)


@case("signed")
def signed_top_level_array(base: Base, d: Path) -> Run:
    return _signed(base, d, lambda doc: [doc], ("not a signed study",))


@case("signed")
def signed_binary(base: Base, d: Path) -> Run:
    path = d / "study.signed.json"
    path.write_bytes(b"\x00\x01\x02\xff" * 32)
    return show(path, (str(path), "not a JSON signed study"))


# ---------------------------------------------------------------- audit exports


def _export(base: Base, d: Path) -> Path:
    target = d / "export"
    shutil.copytree(base.export, target)
    return target


def verify(
    export: Path, needles: tuple[str, ...], code: int = SITE_AUDIT_FAILED, *extra: str
) -> Run:
    return Run("site", ("audit", "verify", str(export), *extra), needles, code)


@case("audit")
def audit_entry_altered(base: Base, d: Path) -> Run:
    export = _export(base, d)
    entries = export / "entries.jsonl"
    lines = lines_of(entries)
    doc = json.loads(lines[1])
    doc["analysis_id"] = "something-else"
    lines[1] = json.dumps(doc)
    write_lines(entries, lines)
    return verify(export, ("entries.jsonl line 2",))


@case("audit")
def audit_entries_cut_short(base: Base, d: Path) -> Run:
    export = _export(base, d)
    entries = export / "entries.jsonl"
    write_lines(entries, lines_of(entries)[:-2])
    return verify(export, ("does NOT verify", "checkpoint"))


@case("audit")
def audit_last_line_incomplete(base: Base, d: Path) -> Run:
    export = _export(base, d)
    entries = export / "entries.jsonl"
    entries.write_bytes(entries.read_bytes()[:-40])
    return verify(export, ("entries.jsonl", "incomplete"))


@case("audit")
def audit_checkpoint_altered(base: Base, d: Path) -> Run:
    export = _export(base, d)
    checkpoints = export / "checkpoints.jsonl"
    lines = lines_of(checkpoints)
    doc = json.loads(lines[-1])
    doc["tree_size"] = int(doc["tree_size"]) + 1
    lines[-1] = json.dumps(doc)
    write_lines(checkpoints, lines)
    return verify(export, ("checkpoints.jsonl line",))


@case("audit")
def audit_entry_not_json(base: Base, d: Path) -> Run:
    export = _export(base, d)
    entries = export / "entries.jsonl"
    lines = lines_of(entries)
    lines[0] = "{not json"
    write_lines(entries, lines)
    return verify(export, ("entries.jsonl line 1",))


@case("audit")
def audit_public_key_missing(base: Base, d: Path) -> Run:
    export = _export(base, d)
    (export / "audit.pub").unlink()
    return verify(export, (str(export), "audit.pub is missing"), SITE_INPUT)


@case("audit")
def audit_public_key_garbage(base: Base, d: Path) -> Run:
    export = _export(base, d)
    (export / "audit.pub").write_text("not a key\n")
    return verify(export, ("audit.pub",), SITE_INPUT)


@case("audit")
def audit_entries_missing(base: Base, d: Path) -> Run:
    export = _export(base, d)
    (export / "entries.jsonl").unlink()
    return verify(export, (str(export), "entries.jsonl is missing"), SITE_INPUT)


@case("audit")
def audit_other_site_key(base: Base, d: Path) -> Run:
    export = _export(base, d)
    other = base.sites[1] / "state" / "audit.pub"
    return verify(export, ("does NOT verify",), SITE_AUDIT_FAILED, "--pubkey", str(other))


@case("audit")
def audit_not_an_export(base: Base, d: Path) -> Run:
    folder = d / "downloads"
    folder.mkdir()
    (folder / "entries.txt").write_text("x\n")
    return verify(folder, (str(folder), "neither an audit export nor a site directory"), SITE_INPUT)


@case("audit")
def audit_saved_checkpoint_not_json(base: Base, d: Path) -> Run:
    export = _export(base, d)
    saved = d / "saved.json"
    saved.write_text("tree size 3\n")
    return verify(export, (str(saved), "not JSON"), SITE_INPUT, "--checkpoint", str(saved))


@case("audit")
def audit_entries_binary(base: Base, d: Path) -> Run:
    export = _export(base, d)
    entries = export / "entries.jsonl"
    entries.write_bytes(entries.read_bytes().replace(b'"', b"\xff", 1))
    return verify(export, ("entries.jsonl line 1", "not ASCII"))


def table() -> str:
    """The README's table: cases by input class."""
    counts = {k: sum(c.klass == k for c in CASES) for k in CLASSES}
    rows = [f"| {CLASSES[k]} | {n} |" for k, n in counts.items()]
    return "\n".join(
        ["| input class | cases |", "| --- | --- |", *rows, f"| **all** | **{len(CASES)}** |"]
    )


if __name__ == "__main__":  # pragma: no cover
    print(table())
