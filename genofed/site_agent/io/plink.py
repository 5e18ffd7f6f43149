"""PLINK 1 fileset (.bed/.bim/.fam) reader that streams genotypes in variant chunks.

Why this shape:

* The site agent must work on cohorts of any size with bounded memory, so
  genotypes are never loaded whole: :meth:`BedFile.iter_dosages` yields one
  ``(n_chunk, n_samples)`` int8 block at a time, and its size is set by
  ``chunk_variants``, not by the number of variants in the file.
* Decoding uses ``pgenlib`` (plink2's own library), which reads a PLINK 1
  ``.bed`` directly and was measured several times faster than ``bed-reader``.
  ``.bim`` and ``.fam`` are parsed here, so that every problem is reported
  with its file and line.
* Everything that can be checked cheaply before decoding is checked in the
  constructor (files present, magic bytes, ``.bed`` size against the
  ``.bim``/``.fam`` line counts, ``.fam`` line shapes, duplicate samples),
  because a site that starts a study and then fails half way has wasted
  everyone's round. The ``.bim`` is only counted there (its non-blank lines);
  it is parsed, and its lines checked, when :attr:`BedFile.variants` is first
  read: many requests (each a fresh process at a site) need only the counts
  and the samples, and parsing a 100,000-variant ``.bim`` costs 0.4 s. The
  study's first request, ``variants``, reads it, so a bad ``.bim`` still
  fails a study at its start.

Allele convention: dosages count the ``.bim`` column 5 allele (A1), which
plink2 calls ALT when it reads a ``.bed``; column 6 (A2) is REF. Missing calls
are ``-9``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np
import pgenlib

from genofed.common.errors import InputError

#: Variants per chunk. Measured on 10,000 samples x 8,000 variants (one core):
#: decoding time is flat from 64 to 4,096 variants per chunk (~0.03 s for the
#: whole file, 6x faster than bed-reader). A chunk holds ``chunk_variants *
#: n_samples`` bytes, so 1,024 keeps 500,000 samples at 0.5 GB while giving the
#: statistics cores blocks large enough for BLAS to pay off.
DEFAULT_CHUNK_VARIANTS = 1024

MISSING = -9
#: Largest base-pair position plink2 reads (2^31 - 2); a larger one is a typo or a corrupt file.
MAX_POSITION = 2**31 - 2
_MAGIC = b"\x6c\x1b\x01"
_BIM_COLUMNS = 6
_FAM_COLUMNS = 6


@dataclass(frozen=True)
class Variants:
    """One row per ``.bim`` line, in file order."""

    chrom: np.ndarray
    pos: np.ndarray
    id: np.ndarray
    ref: np.ndarray
    alt: np.ndarray

    def __len__(self) -> int:
        return len(self.id)


@dataclass(frozen=True)
class Samples:
    """One row per ``.fam`` line; ``sex`` is 1 male, 2 female, 0 unknown.

    ``has_fid`` is False for genotypes without family IDs (a VCF/BCF, a
    ``.psam`` without an FID column): ``fid`` is then ``0`` throughout, as
    plink2 writes it, and the phenotype tables are matched on IID alone.
    """

    fid: np.ndarray
    iid: np.ndarray
    sex: np.ndarray
    has_fid: bool = True
    #: per sample, whether it is a founder (its file lists no father and no mother: both
    #: ``0``, as plink2 decides it, whether or not the parent is in the file); None when
    #: the file has no parent columns (a VCF/BCF, a ``.psam`` without PAT/MAT): all founders
    founder: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.iid)

    def founders(self) -> np.ndarray:
        """Per sample, founder or not (every sample when the file names no parents)."""
        if self.founder is None:
            return np.ones(len(self.iid), dtype=np.bool_)
        return np.asarray(self.founder, dtype=np.bool_)

    def take(self, rows: np.ndarray) -> Samples:
        """The samples at ``rows`` (file order kept as given)."""
        return Samples(
            fid=self.fid[rows],
            iid=self.iid[rows],
            sex=self.sex[rows],
            has_fid=self.has_fid,
            founder=None if self.founder is None else self.founder[rows],
        )


def fileset_paths(path: Path) -> tuple[Path, Path, Path]:
    """``(bed, bim, fam)`` for ``X.bed`` or for the prefix ``X``."""
    path = Path(path)
    prefix = path.with_suffix("") if path.suffix == ".bed" else path
    name = prefix.name
    return (
        prefix.with_name(name + ".bed"),
        prefix.with_name(name + ".bim"),
        prefix.with_name(name + ".fam"),
    )


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            "not a text file (bytes that are not UTF-8)",
            path=path,
            hint="give the PLINK 1 text file that belongs with the .bed",
        ) from exc


def _data_lines(text: str, first_line: int = 1) -> list[tuple[int, list[str]]]:
    """Non-blank lines of a headerless text file as ``(line_number, fields)``.

    ``first_line`` is the number of the text's first line (a block of a file).
    """
    return [
        (n, line.split()) for n, line in enumerate(text.splitlines(), first_line) if line.strip()
    ]


_BIM_LINE = re.compile(r"^[ \t]*(?:\S+[ \t]+){5}\S+[ \t\r]*$", re.MULTILINE)

#: Lines per block when parsing a ``.bim``. Splitting a whole file at once makes
#: ~6 Python strings per variant: reading the variants of a 500,000-variant
#: ``.bim`` grew the peak RSS by 191 MiB for 38 MB of arrays. A block's strings
#: are freed once its columns are made (``S`` arrays until all are joined), so
#: the peak is the file text, the arrays and one block: 63 MiB, as fast. 65,536
#: lines per block measured 66 MiB.
BIM_BLOCK_LINES = 16384

#: Line ends that ``str.splitlines`` knows besides ``\n`` (a ``\r\n`` counts once).
_OTHER_LINE_ENDS = re.compile("\r(?!\n)|[\v\f\x1c\x1d\x1e\x85\u2028\u2029]")


def _line_number_at(text: str, start: int) -> int:
    """Number (as ``str.splitlines`` counts) of the line starting at ``start``, after a ``\n``."""
    return text.count("\n", 0, start) + len(_OTHER_LINE_ENDS.findall(text, 0, start)) + 1


def _block_spans(text: str, block_lines: int) -> list[tuple[int, int]]:
    """``(start, end)`` of consecutive blocks of up to ``block_lines`` ``\n``-ended lines.

    Every block but the last ends with ``\n``, so no line, token or ``\r\n``
    is cut, and ``splitlines`` of the blocks, joined, is that of the text.
    """
    pattern = re.compile(rf"(?:[^\n]*+\n){{1,{block_lines}}}|[^\n]+")
    return [match.span() for match in pattern.finditer(text)] or [(0, 0)]


def _bim_tokens_fast(text: str) -> list[str] | None:
    """All tokens when every non-blank line is six tokens, else None.

    Each line matching ``_BIM_LINE`` holds exactly 6 tokens, so the token count
    equals 6 x matches only if no other non-blank line exists. This avoids a
    Python loop over lines: 2x faster on a 1M-variant .bim.
    """
    tokens = text.split()
    if len(tokens) != _BIM_COLUMNS * len(_BIM_LINE.findall(text)):
        return None
    return tokens


def _bim_columns_fast(text: str) -> tuple[list[str], np.ndarray] | None:
    """Tokens and positions when every line is well formed, else None."""
    tokens = _bim_tokens_fast(text)
    if tokens is None:
        return None
    try:
        pos = np.array(tokens[3::_BIM_COLUMNS]).astype(np.int64)
    except (ValueError, OverflowError):
        return None
    if pos.size and (pos.min() < 0 or pos.max() > MAX_POSITION):
        return None  # the line-by-line parse names the line
    return tokens, pos


def _bim_rows_checked(path: Path, text: str, first_line: int = 1) -> list[tuple[int, list[str]]]:
    """Non-blank lines, raising an InputError at the first one without 6 columns."""
    rows = _data_lines(text, first_line)
    for line_no, fields in rows:
        if len(fields) != _BIM_COLUMNS:
            raise InputError(
                f"expected 6 columns (chrom, id, cM, position, A1, A2), found {len(fields)}",
                path=path,
                line=line_no,
                hint="a .bim line is: chromosome, variant ID, cM, bp position, allele 1, allele 2",
            )
    return rows


def _bim_positions_checked(path: Path, rows: list[tuple[int, list[str]]]) -> np.ndarray:
    """Column 4 of 6-column rows, raising an InputError at the first non-integer or negative."""
    pos = np.empty(len(rows), dtype=np.int64)
    for i, (line_no, fields) in enumerate(rows):
        try:
            value = int(fields[3])
        except ValueError as exc:
            raise InputError(
                f"column 4 (position) is {fields[3]!r}, not an integer",
                path=path,
                line=line_no,
                hint="positions are whole base-pair coordinates",
            ) from exc
        if value > MAX_POSITION:
            raise InputError(
                f"column 4 (position) is {fields[3]}, larger than any chromosome position "
                f"(plink2 reads at most {MAX_POSITION})",
                path=path,
                line=line_no,
                hint="fix the position at that line (a base-pair coordinate on its chromosome), "
                "or remove the variant",
            )
        pos[i] = value
        if pos[i] < 0:
            prefix = path.with_suffix("")
            raise InputError(
                f"column 4 (position) is {fields[3]!r}: a negative position is PLINK 1's mark "
                "of an excluded variant, which plink2 skips (the .bed still holds its row)",
                path=path,
                line=line_no,
                hint=f"write the fileset without such variants: plink2 --bfile {prefix} "
                f"--make-bed --out {prefix}-kept, and point the site at that",
            )
    return pos


def _bim_blocks(path: Path, text: str, block_lines: int) -> dict[str, list[np.ndarray]]:
    """The whole-text parse (:func:`_bim_columns_fast`, else checked), one block at a time.

    Returns each :class:`Variants` field's arrays, one per block. A block is
    parsed fast when its lines are all well formed, else line by line with
    its lines' numbers in the file. The error is the whole-text parse's: the
    first line without 6 columns in the file, else the first bad position,
    so a bad position waits until later blocks are found to have no bad
    column count.
    """
    parts: dict[str, list[np.ndarray]] = {name: [] for name in ("chrom", "pos", "id", "ref", "alt")}
    pending: InputError | None = None
    for start, end in _block_spans(text, block_lines):
        block = text[start:end]
        if pending is not None:
            if _bim_tokens_fast(block) is None:  # a bad column count beats the bad position
                _bim_rows_checked(path, block, _line_number_at(text, start))
            continue
        found = _bim_columns_fast(block)
        if found is None:
            rows = _bim_rows_checked(path, block, _line_number_at(text, start))
            try:
                pos = _bim_positions_checked(path, rows)
            except InputError as exc:
                pending = exc
                continue
            tokens = [token for _, fields in rows for token in fields]
            del rows
        else:
            tokens, pos = found
        parts["pos"].append(pos)
        for name, j in (("chrom", 0), ("id", 1), ("alt", 4), ("ref", 5)):
            parts[name].append(_bim_column_part(tokens, j))
        del found, tokens, block  # one block's strings alive at a time
    if pending is not None:
        raise pending
    return parts


def _bim_column_part(tokens: list[str], j: int) -> np.ndarray:
    """One block's column ``j``: ``S`` (a byte a character, not ``U``'s four) when ASCII."""
    column = tokens[j::_BIM_COLUMNS]
    try:
        return np.array(column, dtype=bytes)
    except UnicodeEncodeError:
        return np.array(column, dtype=str)


def _joined(parts: dict[str, list[np.ndarray]]) -> Variants:
    """Blocks joined per field, string fields as ``U`` of the widest block's width.

    That is the dtype ``np.array(whole_column, dtype=str)`` gives. An ``S``
    block is ASCII, so its bytes are the code points: they are widened as
    integers (numpy's own ``S`` to ``U`` cast took 7x longer: 0.15 s vs 0.02 s).
    """

    def joined(name: str) -> np.ndarray:
        blocks = parts.pop(name)
        if name == "pos":
            return np.concatenate(blocks)
        width = max(b.dtype.itemsize // (4 if b.dtype.kind == "U" else 1) for b in blocks)
        out = np.empty(sum(len(b) for b in blocks), dtype=np.dtype(f"U{width}"))
        codes = out.view(np.uint32).reshape(len(out), width)
        row = 0
        for b in blocks:
            end = row + len(b)
            if b.dtype.kind == "S":
                chars = b.dtype.itemsize
                codes[row:end, :chars] = b.view(np.uint8).reshape(len(b), chars)
                codes[row:end, chars:] = 0
            else:
                out[row:end] = b
            row = end
        return out

    return Variants(
        chrom=joined("chrom"),
        pos=joined("pos"),
        id=joined("id"),
        ref=joined("ref"),
        alt=joined("alt"),
    )


def read_bim(path: Path, block_lines: int | None = None) -> Variants:
    """Parse a ``.bim``: six whitespace-separated columns, integer position.

    Parsed ``block_lines`` (default :data:`BIM_BLOCK_LINES`) lines at a time.
    Odd content is handled as plink2 (v2.00a3.5) handles it, or refused with
    the file and line: position 0 is kept; an allele of any spelling is kept
    as written (``N``, ``AT``, lower case, ``<DEL>``, ``*``), except PLINK 1's
    missing allele ``0``, which becomes plink2's ``.``; a negative position
    (a variant plink2 skips) and a UTF-8 byte-order mark (which plink2 reads
    as part of the first chromosome's name, then refuses) are refused.
    """
    text = _read_text(path)
    if text.startswith(_BOM):
        raise InputError(
            "starts with a UTF-8 byte-order mark, which would become part of the first "
            "chromosome's name (plink2 refuses the file: invalid chromosome code)",
            path=path,
            line=1,
            hint=f"save it without the mark, e.g. sed -i '1s/^\\xEF\\xBB\\xBF//' {path}",
        )
    parts = _bim_blocks(path, text, block_lines or BIM_BLOCK_LINES)
    del text  # not held while the blocks are joined
    return _missing_alleles(_joined(parts))


_BOM = "\ufeff"
#: PLINK 1's code for a missing allele (e.g. A1 of a monomorphic variant), and plink2's.
_PLINK1_MISSING_ALLELE = "0"
_PLINK2_MISSING_ALLELE = "."


def _missing_alleles(variants: Variants) -> Variants:
    """The ``.bim``'s missing alleles ``0`` spelled ``.``, as plink2 writes them."""
    columns = {}
    for name in ("ref", "alt"):
        column = getattr(variants, name)
        missing = column == _PLINK1_MISSING_ALLELE
        if missing.any():
            column = column.copy()
            column[missing] = _PLINK2_MISSING_ALLELE
        columns[name] = column
    if all(columns[n] is getattr(variants, n) for n in columns):
        return variants
    return Variants(variants.chrom, variants.pos, variants.id, columns["ref"], columns["alt"])


def read_fam(path: Path) -> Samples:
    """Parse a ``.fam``: six columns; (FID, IID) pairs must be unique.

    A UTF-8 byte-order mark is refused with the file and line: it would
    become part of the first sample's FID, which then matches no phenotype row.
    """
    text = _read_text(path)
    if text.startswith(_BOM):
        raise InputError(
            "starts with a UTF-8 byte-order mark, which would become part of the first "
            "sample's FID (it would then match no phenotype or covariate row)",
            path=path,
            line=1,
            hint=f"save it without the mark, e.g. sed -i '1s/^\\xEF\\xBB\\xBF//' {path}",
        )
    rows = _data_lines(text)
    first_line: dict[tuple[str, str], int] = {}
    for line_no, fields in rows:
        if len(fields) != _FAM_COLUMNS:
            raise InputError(
                f"expected 6 columns (FID, IID, father, mother, sex, phenotype), "
                f"found {len(fields)}",
                path=path,
                line=line_no,
                hint="a .fam line is: FID, IID, father IID, mother IID, sex, phenotype",
            )
        key = (fields[0], fields[1])
        if key in first_line:
            raise InputError(
                f"duplicate sample FID={key[0]!r} IID={key[1]!r} "
                f"(lines {first_line[key]} and {line_no})",
                path=path,
                line=line_no,
                hint="every (FID, IID) pair must be unique; remove or rename one of them",
            )
        first_line[key] = line_no
    sex_codes = {"1": 1, "2": 2}
    founder = np.array([f[2] == "0" and f[3] == "0" for _, f in rows], dtype=np.bool_)
    return Samples(
        fid=np.array([f[0] for _, f in rows], dtype=str),
        iid=np.array([f[1] for _, f in rows], dtype=str),
        sex=np.array([sex_codes.get(f[4], 0) for _, f in rows], dtype=np.int8),
        founder=None if founder.all() else founder,
    )


_SPACE_AFTER_NEWLINE = re.compile(rb"\n\s")
_BLANK_LINE = re.compile(rb"\n[ \t\r\v\f]*(?=\n)")


def count_lines(path: Path) -> int:
    """Non-blank lines of a text file, without parsing it (what :func:`_data_lines` keeps).

    Counts newlines (C speed); only a file with a line that starts with
    whitespace is scanned for blank lines. Lines ended by other characters
    than ``\n`` (``str.splitlines`` knows a few) can make this differ from
    the parsed count, which :attr:`BedFile.variants` checks.
    """
    data = path.read_bytes()
    lines = data.count(b"\n")
    tail = data[data.rfind(b"\n") + 1 :]
    if tail.strip():
        lines += 1  # the last line has no newline
    if data[:1].isspace() and data.split(b"\n", 1)[0].strip() == b"" and b"\n" in data:
        lines -= 1  # a blank first line
    if _SPACE_AFTER_NEWLINE.search(data):  # one regex scan; a blank line starts so
        lines -= len(_BLANK_LINE.findall(data))
    return lines


def _check_bed(bed: Path, bim: Path, fam: Path, n_variants: int, n_samples: int) -> None:
    with bed.open("rb") as fh:
        head = fh.read(3)
    if head != _MAGIC:
        if not head:
            msg = "is empty (0 bytes)"
            hint = "copy the .bed again from the plink --make-bed run that wrote the .bim and .fam"
        elif head[:2] == _MAGIC[:2] and head[2:] == b"\x00":
            msg = "is an old individual-major .bed (third magic byte 0x00)"
            hint = f"convert it to variant-major: plink --bfile {bed.with_suffix('')} --make-bed"
        elif head[:2] == _MAGIC[:2]:
            msg = "looks like a PLINK 2 .pgen, not a PLINK 1 .bed"
            hint = f"convert it: plink2 --pfile {bed.with_suffix('')} --make-bed"
        else:
            msg = f"is not a PLINK 1 .bed (first bytes {head.hex(' ')}, expected 6c 1b 01)"
            hint = "give the .bed written by plink --make-bed"
        raise InputError(msg, path=bed, hint=hint)
    expected = 3 + n_variants * ((n_samples + 3) // 4)
    actual = bed.stat().st_size
    if actual != expected:
        for text in (bim, fam):
            _check_line_ends(text)
        raise InputError(
            f"size is {actual} bytes but {bim.name} has {n_variants} variants and "
            f"{fam.name} has {n_samples} samples, which need {expected} bytes",
            path=bed,
            hint="the .bed is truncated or the .bim/.fam belong to another fileset; "
            "copy the three files again from the same plink --make-bed run",
        )


def _check_line_ends(path: Path) -> None:
    """Refuse a text file whose lines end with a lone ``\\r`` (it counts as one line)."""
    with path.open("rb") as fh:
        head = fh.read(1 << 16)
    if b"\r" in head and b"\n" not in head:
        raise InputError(
            "ends its lines with a carriage return alone (old Mac line ends), so plink and "
            "GenoFed read it as one line",
            path=path,
            hint=f"convert the line ends: tr '\\r' '\\n' < {path} > {path}.fixed, then "
            f"replace {path.name} by it",
        )


class PgenlibGenotypes:
    """Chunked decoding through pgenlib, shared by the PLINK 1 and PLINK 2 readers.

    A subclass sets ``path`` (the ``.bed`` or ``.pgen``), ``n_samples``,
    ``n_variants`` and ``samples`` in its constructor, after its checks.
    """

    path: Path
    n_samples: int
    n_variants: int
    samples: Samples
    _closed: bool = False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Refuse further reads; each iterator closes its own decoder when done."""
        self._closed = True

    def iter_dosages(
        self,
        variant_idx: np.ndarray | None = None,
        *,
        sample_idx: np.ndarray | None = None,
        chunk_variants: int = DEFAULT_CHUNK_VARIANTS,
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(start, dosages)`` chunks of A1 (ALT) allele counts.

        ``dosages`` is a fresh int8 array of shape ``(n_chunk, n_selected_samples)``
        holding 0/1/2 and ``-9`` for missing. ``start`` is the offset of the
        chunk's first row within ``variant_idx`` (any order) or within all
        variants when it is None. ``sample_idx`` are sorted, unique indices into
        the ``.fam`` order (None keeps all samples).
        """
        if chunk_variants < 1:
            raise ValueError(f"chunk_variants must be >= 1, not {chunk_variants}")
        variants = None if variant_idx is None else self._check_variant_idx(variant_idx)
        subset = None if sample_idx is None else self._check_sample_idx(sample_idx)
        return self._iter(variants, subset, chunk_variants)

    def _iter(
        self, variants: np.ndarray | None, subset: np.ndarray | None, chunk: int
    ) -> Iterator[tuple[int, np.ndarray]]:
        if self._closed:
            raise ValueError(f"{self!r} is closed")
        n_out = self.n_samples if subset is None else len(subset)
        total = self.n_variants if variants is None else len(variants)
        try:
            with pgenlib.PgenReader(
                bytes(self.path),
                raw_sample_ct=self.n_samples,
                variant_ct=self.n_variants,
                sample_subset=subset,
            ) as reader:
                for start in range(0, total, chunk):
                    if self._closed:
                        raise ValueError(f"{self!r} was closed during iteration")
                    stop = min(start + chunk, total)
                    out = np.empty((stop - start, n_out), dtype=np.int8)
                    if variants is None:
                        reader.read_range(start, stop, out)
                    else:
                        reader.read_list(variants[start:stop], out)
                    yield start, out
        except RuntimeError as exc:
            raise InputError(
                f"could not decode genotypes ({exc})",
                path=self.path,
                hint="the file may have changed since it was opened; check it with plink",
            ) from exc

    def _check_variant_idx(self, variant_idx: np.ndarray) -> np.ndarray:
        return checked_variant_idx(variant_idx, self.n_variants, np.uint32)

    def _check_sample_idx(self, sample_idx: np.ndarray) -> np.ndarray | None:
        return checked_sample_idx(sample_idx, self.n_samples, np.uint32)


def checked_variant_idx(
    variant_idx: np.ndarray, n_variants: int, dtype: type[np.integer[Any]]
) -> np.ndarray:
    """``variant_idx`` as a contiguous ``dtype`` array; ValueError/IndexError when malformed."""
    idx = np.asarray(variant_idx)
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise ValueError("variant_idx must be a 1-D integer array")
    if idx.size and (idx.min() < 0 or idx.max() >= n_variants):
        raise IndexError(f"variant_idx out of range [0, {n_variants})")
    return np.ascontiguousarray(idx, dtype=dtype)


def checked_sample_idx(
    sample_idx: np.ndarray, n_samples: int, dtype: type[np.integer[Any]]
) -> np.ndarray | None:
    """``sample_idx`` (sorted, unique, non-empty) as ``dtype``; None when it is every sample."""
    idx = np.asarray(sample_idx)
    if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError("sample_idx must be a non-empty 1-D integer array")
    if np.any(np.diff(idx) <= 0):
        raise ValueError("sample_idx must be sorted and unique")
    if idx[0] < 0 or idx[-1] >= n_samples:
        raise IndexError(f"sample_idx out of range [0, {n_samples})")
    if idx.size == n_samples:
        return None
    return np.ascontiguousarray(idx, dtype=dtype)


class BedFile(PgenlibGenotypes):
    """A validated PLINK 1 fileset; genotypes are read lazily in chunks."""

    def __init__(self, path: Path) -> None:
        bed, bim, fam = fileset_paths(path)
        for p in (bed, bim, fam):
            if p.is_dir():
                raise InputError(
                    "is a directory, not a file of a PLINK 1 fileset",
                    path=p,
                    hint="a PLINK 1 fileset is X.bed, X.bim and X.fam side by side; "
                    "give the path to X.bed or the prefix X",
                )
        missing = [p for p in (bed, bim, fam) if not p.is_file()]
        if missing:
            raise InputError(
                "file not found"
                + (
                    f" (also missing: {', '.join(map(str, missing[1:]))})"
                    if len(missing) > 1
                    else ""
                ),
                path=missing[0],
                hint="a PLINK 1 fileset is X.bed, X.bim and X.fam side by side; "
                "give the path to X.bed or the prefix X",
            )
        self.path = bed
        self.bim_path = bim
        self._variants: Variants | None = None
        self.samples = read_fam(fam)
        self.n_variants = count_lines(bim)
        self.n_samples = len(self.samples)
        if self.n_samples == 0:
            raise InputError("no samples", path=fam, hint="the .fam must list at least one sample")
        if self.n_variants == 0:
            raise InputError(
                "no variants", path=bim, hint="the .bim must list at least one variant"
            )
        _check_bed(bed, bim, fam, self.n_variants, self.n_samples)
        self._closed = False

    @property
    def variants(self) -> Variants:
        """The ``.bim``, parsed (and its lines checked) on first use."""
        if self._variants is None:
            variants = read_bim(self.bim_path)
            if len(variants) != self.n_variants:
                raise InputError(
                    f"has {len(variants)} variant lines, but {self.n_variants} lines were counted "
                    "when the fileset was opened",
                    path=self.bim_path,
                    hint="end every line with a newline (\\n or \\r\\n), and do not change "
                    "the .bim while the site is running",
                )
            self._variants = variants
        return self._variants

    def __repr__(self) -> str:
        return (
            f"BedFile({str(self.path)!r}, n_samples={self.n_samples}, n_variants={self.n_variants})"
        )


__all__ = [
    "DEFAULT_CHUNK_VARIANTS",
    "MISSING",
    "BedFile",
    "PgenlibGenotypes",
    "Samples",
    "Variants",
    "count_lines",
    "fileset_paths",
    "read_bim",
    "read_fam",
]
