"""Reader for PGS Catalog scoring files (format version 2).

The format (https://www.pgscatalog.org/downloads/#dl_ftp_scoring): a block of
``#key=value`` header lines (``#format_version=2.0``, ``#pgs_id=PGS000001``,
``#genome_build=GRCh37``, ...; lines starting ``###`` are titles), then a
tab-separated table with a header row. This reader needs the columns

* ``chr_name`` and ``chr_position`` (or the harmonized ``hm_chr`` and
  ``hm_pos``; positional matching is how sites match variants),
* ``effect_allele``, ``other_allele`` and ``effect_weight``,

and keeps ``rsID`` when present. Both the plain text and the ``.gz`` form are
read. Rows with interaction terms or haplotype/dosage-specific weights
(``is_interaction``, ``is_haplotype``, ``is_diplotype``, ``is_dominant``,
``is_recessive``, columns ``dosage_0_weight`` ...) are not additive SNP
weights; a file that has any is refused rather than scored wrongly.

Written by hand because no maintained Python library reads this format
(``pgscatalog-utils``' reader pulls in a large dependency tree for one
table); the reader is one loop over lines and checks every field it uses.
Pure: bytes in, a :class:`ScoringFile` out; errors are :class:`InputError`
naming the file, the line and the fix.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import zlib
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from genofed.common.chromosomes import bare_chrom
from genofed.common.errors import InputError

__all__ = ["ScoringFile", "parse_scoring_file"]

#: Format versions this reader understands (the major version must be 2).
SUPPORTED_MAJOR = "2"
_NUCLEOTIDES = frozenset("ACGT")
_NON_ADDITIVE = (
    "is_interaction",
    "is_haplotype",
    "is_diplotype",
    "is_dominant",
    "is_recessive",
    "dosage_0_weight",
    "dosage_1_weight",
    "dosage_2_weight",
)


@dataclass(frozen=True)
class ScoringFile:
    """One scoring file: its header and one row per weighted variant."""

    header: MappingProxyType[str, str]
    chrom: np.ndarray  # str, without a leading "chr"
    pos: np.ndarray  # int64
    effect_allele: np.ndarray  # str, upper case
    other_allele: np.ndarray  # str, upper case
    weight: np.ndarray  # float64
    rsid: np.ndarray  # str ("" where absent)
    line: np.ndarray  # int64, 1-based line of each row (for messages)
    sha256: str

    def __len__(self) -> int:
        return len(self.pos)

    @property
    def pgs_id(self) -> str:
        return self.header.get("pgs_id", "")

    @property
    def genome_build(self) -> str:
        return self.header.get("genome_build", "")


def _text(data: bytes, path: str) -> str:
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:  # a bad header, a cut or garbled stream
            raise InputError(
                f"starts like a gzip file but cannot be decompressed ({exc})",
                path=path,
                hint="download the file again from the PGS Catalog (the .txt.gz as it is), "
                "or give the uncompressed .txt",
            ) from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            "the scoring file is not UTF-8 text", path=path, hint="use the PGS Catalog file as is"
        ) from exc


def _allele(value: str, column: str, path: str, line: int) -> str:
    allele = value.strip().upper()
    if not allele or not set(allele) <= _NUCLEOTIDES:
        raise InputError(
            f"{column} {value!r} is not an allele (A, C, G, T)",
            path=path,
            line=line,
            hint="remove the row, or give the allele in nucleotides",
        )
    return allele


def parse_scoring_file(data: bytes, *, path: str = "<scoring file>") -> ScoringFile:
    """Parse a PGS Catalog scoring file (format 2); ``path`` is used in messages."""
    header: dict[str, str] = {}
    columns: list[str] | None = None
    rows: list[tuple[str, int, str, str, float, str, int]] = []
    seen: dict[tuple[str, int, str, str], int] = {}
    col: dict[str, int] = {}
    for number, raw in enumerate(_text(data, path).splitlines(), start=1):
        if not raw.strip():
            continue
        if columns is None and raw.startswith("#"):
            if raw.startswith("###"):
                continue
            key, sep, value = raw[1:].partition("=")
            if sep:
                header[key.strip()] = value.strip()
            continue
        fields = raw.rstrip("\r").split("\t")
        if columns is None:
            columns = [c.strip() for c in fields]
            col = _columns(columns, header, path, number)
            continue
        if len(fields) != len(columns):
            raise InputError(
                f"{len(fields)} tab-separated fields, the header has {len(columns)}",
                path=path,
                line=number,
                hint="the file must be tab-separated, one variant per line",
            )
        rows.append(_row(fields, col, path, number, seen))
    if columns is None:
        raise InputError(
            "no column header line",
            path=path,
            hint="a scoring file has a tab-separated header (rsID chr_name chr_position ...)",
        )
    if not rows:
        raise InputError(
            "the scoring file has no variants (a header but no rows)",
            path=path,
            hint="download the complete file again from the PGS Catalog",
        )
    chrom, pos, ea, oa, w, rsid, line = zip(*rows, strict=True)
    return ScoringFile(
        header=MappingProxyType(header),
        chrom=np.array(chrom, dtype=str),
        pos=np.array(pos, dtype=np.int64),
        effect_allele=np.array(ea, dtype=str),
        other_allele=np.array(oa, dtype=str),
        weight=np.array(w, dtype=np.float64),
        rsid=np.array(rsid, dtype=str),
        line=np.array(line, dtype=np.int64),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def _columns(columns: list[str], header: dict[str, str], path: str, line: int) -> dict[str, int]:
    version = header.get("format_version", "")
    if version.split(".")[0] != SUPPORTED_MAJOR:
        raise InputError(
            f"format_version is {version or 'missing'}; this reader reads PGS Catalog "
            "scoring files of format version 2",
            path=path,
            hint="download the current file from the PGS Catalog (its header has "
            "#format_version=2.0)",
        )
    index = {name: i for i, name in enumerate(columns)}
    bad = [c for c in _NON_ADDITIVE if c in index]
    if bad:
        raise InputError(
            f"the file has non-additive weights (columns {', '.join(bad)}), "
            "which are not supported",
            path=path,
            line=line,
            hint="use a scoring file with additive per-allele weights only",
        )
    chrom, pos = "chr_name", "chr_position"
    if chrom not in index or pos not in index:
        chrom, pos = "hm_chr", "hm_pos"
    need = (chrom, pos, "effect_allele", "other_allele", "effect_weight")
    missing = [c for c in need if c not in index]
    if missing:
        raise InputError(
            f"missing column(s) {', '.join(missing)}; sites match variants by chromosome, "
            "position and both alleles",
            path=path,
            line=line,
            hint="use the PGS Catalog's harmonized file (hm_chr, hm_pos) or one with "
            "chr_name, chr_position and other_allele",
        )
    return {
        "chrom": index[chrom],
        "pos": index[pos],
        "ea": index["effect_allele"],
        "oa": index["other_allele"],
        "w": index["effect_weight"],
        "rsid": index.get("rsID", index.get("hm_rsID", -1)),
    }


def _row(
    fields: list[str],
    col: dict[str, int],
    path: str,
    line: int,
    seen: dict[tuple[str, int, str, str], int],
) -> tuple[str, int, str, str, float, str, int]:
    chrom = fields[col["chrom"]].strip()
    chrom = bare_chrom(chrom)
    if not chrom:
        raise InputError("empty chromosome", path=path, line=line, hint="remove the row")
    try:
        pos = int(fields[col["pos"]])
        if pos < 1:
            raise ValueError
    except ValueError as exc:
        raise InputError(
            f"position {fields[col['pos']]!r} is not a positive integer",
            path=path,
            line=line,
            hint="remove the row, or use the harmonized file's hm_pos",
        ) from exc
    ea = _allele(fields[col["ea"]], "effect_allele", path, line)
    oa = _allele(fields[col["oa"]], "other_allele", path, line)
    if ea == oa:
        raise InputError(
            f"effect_allele and other_allele are both {ea}",
            path=path,
            line=line,
            hint="fix one of the two alleles at that line, or remove the row",
        )
    try:
        weight = float(fields[col["w"]])
        if not math.isfinite(weight):
            raise ValueError
    except ValueError as exc:
        raise InputError(
            f"effect_weight {fields[col['w']]!r} is not a finite number",
            path=path,
            line=line,
            hint="every row needs a numeric effect_weight",
        ) from exc
    key = (chrom, pos, *sorted((ea, oa)))
    if key in seen:
        raise InputError(
            f"variant {chrom}:{pos} {ea}/{oa} is listed twice (first at line {seen[key]})",
            path=path,
            line=line,
            hint="keep one row per variant (sum the weights if both are meant)",
        )
    seen[key] = line  # type: ignore[index]
    rsid = fields[col["rsid"]].strip() if col["rsid"] >= 0 else ""
    return chrom, pos, ea, oa, weight, rsid, line
