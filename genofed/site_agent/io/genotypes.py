"""Open a site's genotypes whatever their format, told by the file's content.

:func:`open_genotypes` takes a fileset prefix (``data/cohort``) or any of
its member files (``cohort.bed``, ``cohort.pvar``, ...) or a single-file
format (``cohort.vcf.gz``), reads the main file's first bytes to tell the
format (a name that says one thing and bytes that say another are refused,
naming both), and returns that format's reader. Every reader has the
:class:`GenotypeFile` interface of :class:`~.plink.BedFile`.

The formats are the :data:`FORMATS` table: a format is one
:class:`GenotypeFormat` entry (its files, its content test and its reader).
An entry whose ``reader`` is None is recognised and refused with how to
convert it (none today: VCF and BCF are read by :class:`~.vcf.VcfFile`).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol

import numpy as np

from genofed.common.errors import InputError
from genofed.site_agent.io.pgen import PGEN_MAGIC, PgenFile, pfile_paths
from genofed.site_agent.io.plink import DEFAULT_CHUNK_VARIANTS, BedFile, Samples, Variants
from genofed.site_agent.io.vcf import VcfFile
from genofed.site_agent.io.vcf import fileset as vcf_fileset

BED_MAGIC = b"\x6c\x1b\x01"
_BGZF_OR_GZIP = b"\x1f\x8b"
_VCF_MAGIC = b"##fileformat=VCF"
_BCF_MAGIC = b"BCF\x02"


class GenotypeFile(Protocol):
    """What the site agent reads genotypes through (:class:`~.plink.BedFile` is one)."""

    path: Path
    n_samples: int
    samples: Samples

    @property
    def n_variants(self) -> int: ...

    @property
    def variants(self) -> Variants: ...

    def iter_dosages(
        self,
        variant_idx: np.ndarray | None = None,
        *,
        sample_idx: np.ndarray | None = None,
        chunk_variants: int = DEFAULT_CHUNK_VARIANTS,
    ) -> Iterator[tuple[int, np.ndarray]]: ...

    def close(self) -> None: ...

    def __enter__(self) -> GenotypeFile: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


@dataclass(frozen=True)
class GenotypeFormat:
    """One input format: its files, how its content is recognised, and its reader."""

    name: str
    #: ``{role: path}`` of the files, main file first, for a prefix or any member file
    files: Callable[[Path], dict[str, Path]]
    #: whether the first bytes (up to 64) of the main file are this format's
    sniff: Callable[[bytes], bool]
    #: None: recognised but not read yet (``refusal`` says how to convert)
    reader: Callable[[Path], GenotypeFile] | None
    #: name endings of its member files (``.bed``, ``.vcf.gz``)
    suffixes: tuple[str, ...]
    refusal: str = ""


def _bed_files(path: Path) -> dict[str, Path]:
    path = Path(path)
    name = path.name
    for suffix in (".bed", ".bim", ".fam"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    prefix = path.with_name(name)
    return {k: prefix.with_name(name + "." + k) for k in ("bed", "bim", "fam")}


def _pgen_files(path: Path) -> dict[str, Path]:
    pgen, pvar, psam = pfile_paths(path)
    return {"pgen": pgen, "pvar": pvar, "psam": psam}


def _single_file(path: Path) -> dict[str, Path]:
    return {"vcf": Path(path)}


def _is_vcf(head: bytes) -> bool:
    return head.startswith(_VCF_MAGIC) or _gunzipped(head).startswith(_VCF_MAGIC)


def _is_bcf(head: bytes) -> bool:
    return head.startswith(_BCF_MAGIC) or _gunzipped(head).startswith(_BCF_MAGIC)


def _gunzipped(head: bytes) -> bytes:
    """The first decompressed bytes of a gzip/BGZF start, b'' if it is not one."""
    if not head.startswith(_BGZF_OR_GZIP):
        return b""
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 16)
    except zlib.error:
        return b""


#: The formats, tried in this order on the main file's content.
FORMATS: dict[str, GenotypeFormat] = {
    "bed": GenotypeFormat(
        "PLINK 1 .bed",
        _bed_files,
        lambda h: h.startswith(BED_MAGIC),
        BedFile,
        (".bed", ".bim", ".fam"),
    ),
    "pgen": GenotypeFormat(
        "PLINK 2 .pgen",
        _pgen_files,
        lambda h: h.startswith(PGEN_MAGIC),
        PgenFile,
        (".pgen", ".pvar", ".psam", ".pvar.zst"),
    ),
    "vcf": GenotypeFormat("VCF", _single_file, _is_vcf, VcfFile, (".vcf", ".vcf.gz", ".vcf.bgz")),
    "bcf": GenotypeFormat("BCF", _single_file, _is_bcf, VcfFile, (".bcf",)),
}


def _head(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(1 << 12)


def _by_suffix(path: Path) -> str | None:
    name = path.name
    for key, fmt in FORMATS.items():
        if any(name.endswith(s) for s in fmt.suffixes):
            return key
    return None


def _main_candidates(path: Path) -> list[tuple[str, Path]]:
    """``(format, main file)`` that ``path`` may name, by its name or as a prefix."""
    key = _by_suffix(path)
    if key is not None:
        return [(key, next(iter(FORMATS[key].files(path).values())))]
    found = []
    for key, fmt in FORMATS.items():
        main = next(iter(fmt.files(path).values()))
        if fmt.files is not _single_file and main.is_file():
            found.append((key, main))
    if not found and path.is_file():
        found.append(("", path))  # a file named otherwise: its content decides
    return found


def detect_format(path: Path) -> tuple[str, Path]:
    """``(format key, main file)`` of the genotypes at ``path`` (prefix or any member file)."""
    path = Path(path)
    candidates = _main_candidates(path)
    if len(candidates) > 1:
        raise InputError(
            "is the prefix of several genotype filesets ("
            + ", ".join(str(m) for _, m in candidates)
            + ")",
            path=path,
            hint="give the main file of the one to use (e.g. X.pgen or X.bed)",
        )
    if not candidates:
        raise InputError(
            "no genotype file here (looked for "
            + ", ".join(str(next(iter(f.files(path).values()))) for f in _prefix_formats())
            + ")",
            path=path,
            hint="give a PLINK 1 fileset (X.bed/.bim/.fam) or a PLINK 2 fileset "
            "(X.pgen/.pvar/.psam): the main file, any member file or the prefix X; "
            "or a VCF/BCF file (X.vcf.gz, X.bcf)",
        )
    named, main = candidates[0]
    if not main.is_file():
        return named, main  # the reader names every missing member
    head = _head(main)
    content = next((k for k, f in FORMATS.items() if f.sniff(head)), None)
    if content is None and named and FORMATS[named].reader is not None:
        return named, main  # its reader says what is wrong (empty, truncated, old format)
    if content is None:
        raise InputError(
            f"is not in a genotype format GenoFed knows (first bytes {head[:4].hex(' ')})"
            if head
            else "is empty (0 bytes)",
            path=main,
            hint="give a PLINK 1 .bed (starts 6c 1b 01) or a PLINK 2 .pgen (6c 1b 10) "
            "with its text files, or a VCF/BCF",
        )
    if content != named:
        fmt = FORMATS[content]
        stem = main.with_suffix("") if named else main
        hint = (
            f"rename the fileset to what it holds: {stem}.pgen/.pvar/.psam (or make a "
            f"PLINK 1 copy: plink2 --pfile {stem} --make-bed --out {stem}-bed)"
            if content == "pgen"
            else f"rename the fileset to what it holds: {stem}.bed/.bim/.fam"
            if content == "bed"
            else f"rename it to what it holds, e.g. {stem}{fmt.suffixes[0]}"
        )
        said = f"is named as {FORMATS[named].name} but" if named else "has no known ending and"
        raise InputError(f"{said} holds {fmt.name}", path=main, hint=hint)
    return content, main


def _prefix_formats() -> list[GenotypeFormat]:
    return [f for f in FORMATS.values() if f.files is not _single_file]


def genotype_files(path: Path) -> dict[str, Path]:
    """``{role: path}`` of every file the genotypes at ``path`` are read from, main first."""
    key, main = detect_format(path)
    if FORMATS[key].files is _single_file:  # and its index, read beside it
        return {key: main, **{p.name[len(main.name) + 1 :]: p for p in vcf_fileset(main)[1:]}}
    files = FORMATS[key].files(main)
    first = next(iter(files))
    return {first: main, **{k: v for k, v in files.items() if k != first}}


def genotypes_path(path: Path) -> Path:
    """The main file of the genotypes at ``path`` (what a site.toml stores)."""
    return detect_format(path)[1]


def open_genotypes(path: Path) -> GenotypeFile:
    """The validated reader of the genotypes at ``path`` (prefix, main or any member file)."""
    key, main = detect_format(path)
    fmt = FORMATS[key]
    if fmt.reader is None:
        stem = main.name
        for s in fmt.suffixes:
            if stem.endswith(s):
                stem = stem[: -len(s)]
        raise InputError(
            f"is {fmt.name}, which GenoFed does not read yet",
            path=main,
            hint=fmt.refusal.format(path=main, stem=main.with_name(stem)),
        )
    return fmt.reader(main)


__all__ = [
    "BED_MAGIC",
    "FORMATS",
    "GenotypeFile",
    "GenotypeFormat",
    "detect_format",
    "genotype_files",
    "genotypes_path",
    "open_genotypes",
]
