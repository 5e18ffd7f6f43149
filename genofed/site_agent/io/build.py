"""Which genome build (GRCh37 or GRCh38) a genotype file's header says it is on.

Only header lines are read: a VCF's ``##`` lines (the text before the first
record; gzip/BGZF is read through :mod:`gzip`) or a ``.pvar``'s, which keep
the VCF header lines. The build is told by a ``##contig`` line's length for
chromosome 1 (249250621 on GRCh37/hg19, 248956422 on GRCh38/hg38), with or
without a ``chr`` prefix, or else by a ``##reference=`` line or a contig's
``assembly=`` naming the assembly. A BCF's header (binary, BGZF) is read
through htslib (``cyvcf2``), which hands back the same ``##`` text lines.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterable
from pathlib import Path

from genofed.common.chromosomes import bare_chrom

GRCH37 = "GRCh37"
GRCH38 = "GRCh38"
#: the values ``build`` may take in site.toml
BUILDS = (GRCH37, GRCH38)

#: chromosome 1's length in each build
_CHR1_LENGTH = {249250621: GRCH37, 248956422: GRCH38}
_CONTIG = re.compile(r"^##contig=<(?P<body>.*)>\s*$")
_NAMES = (
    (re.compile(r"grch38|hg38|b38|hs38", re.IGNORECASE), GRCH38),
    (re.compile(r"grch37|hg19|b37|hs37|human_g1k_v37", re.IGNORECASE), GRCH37),
)


def _fields(body: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in body.split(","):
        key, sep, value = part.partition("=")
        if sep:
            out[key.strip()] = value.strip().strip('"')
    return out


def _named(text: str) -> str | None:
    for pattern, build in _NAMES:
        if pattern.search(text):
            return build
    return None


def build_from_header_lines(lines: Iterable[str]) -> str | None:
    """The build the header ``lines`` say, or None when they do not say one.

    A chromosome 1 contig length decides over an assembly name.
    """
    named: str | None = None
    for line in lines:
        if not line.startswith("##"):
            break
        match = _CONTIG.match(line)
        if match:
            fields = _fields(match.group("body"))
            if bare_chrom(fields.get("ID", "")) == "1" and fields.get("length", "").isdigit():
                by_length = _CHR1_LENGTH.get(int(fields["length"]))
                if by_length is not None:
                    return by_length
            if named is None and "assembly" in fields:
                named = _named(fields["assembly"])
        elif named is None and line.startswith("##reference="):
            named = _named(line[len("##reference=") :])
    return named


def header_lines(path: Path) -> list[str]:
    """The leading ``##`` lines of a text VCF (plain, gzip or BGZF) or ``.pvar``."""
    with path.open("rb") as fh:
        gzipped = fh.read(2) == b"\x1f\x8b"
    opener = gzip.open if gzipped else open
    lines: list[str] = []
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.startswith("##"):
                break
            lines.append(line.rstrip("\r\n"))
    return lines


def file_build(path: Path) -> str | None:
    """The build ``path``'s header says (VCF, BCF or .pvar), None when it says none."""
    with path.open("rb") as fh:
        head = fh.read(2)
    if head == b"\x1f\x8b":
        with gzip.open(path, "rb") as fh:
            head = fh.read(3)
    else:
        with path.open("rb") as fh:
            head = fh.read(3)
    if head == b"BCF":
        return build_from_header_lines(bcf_header_lines(path))
    return build_from_header_lines(header_lines(path))


def bcf_header_lines(path: Path) -> list[str]:
    """The ``##`` lines of a BCF's header, as htslib writes them back as text."""
    import cyvcf2  # the VCF reader's library; only a BCF needs it here

    reader = cyvcf2.VCF(str(path), lazy=True)
    try:
        return [line for line in reader.raw_header.splitlines() if line.startswith("##")]
    finally:
        reader.close()


__all__ = [
    "BUILDS",
    "GRCH37",
    "GRCH38",
    "bcf_header_lines",
    "build_from_header_lines",
    "file_build",
    "header_lines",
]
