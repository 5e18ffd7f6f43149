"""PLINK 2 fileset (.pgen/.pvar/.psam) reader with :class:`~.plink.BedFile`'s interface.

Hard calls only, for now: :meth:`PgenFile.iter_dosages` yields the int8
0/1/2/-9 ALT counts pgenlib decodes (a ``.pgen`` written from imputed data
also stores these hard calls, made with plink2's import threshold).
:attr:`PgenFile.has_dosages` says whether the file also holds a dosage
track, which GenoFed does not read yet: plink2's ``--glm`` and ``--freq``
would use the dosages there, GenoFed the hard calls.

What is read, as plink2 (v2.00a3.5) reads it:

* ``.pvar``: ``##`` header lines, then a ``#CHROM`` line naming the
  columns; ``CHROM``, ``POS``, ``ID``, ``REF`` and ``ALT`` are required,
  ``QUAL``, ``FILTER``, ``INFO``, ``CM`` and any other column may be present,
  in any order after ``#CHROM``, and are not used. Without a ``#CHROM`` line
  the file is in ``.bim`` column order (CHROM, ID, CM, POS, ALT, REF, or
  without CM).
* **Multi-allelic lines** (``ALT`` ``A,T``) are split into one biallelic
  variant per ALT, in ALT order, each keeping the line's ID, as the VCF
  reader splits a record (:mod:`genofed.site_agent.io.vcf`: the rule, IDs,
  no limit on ALTs); pgenlib counts each ALT's copies (``allele_idx``),
  every other allele counting as not-that-ALT, which is what plink2 reads
  from the file ``bcftools norm -m-`` splits
  (``tests/reference/test_vcf_multiallelic_vs_plink2.py``). An ALT plink2
  stored as never called counts 0. A line listing an ALT twice or an ALT
  equal to REF is refused with its line. The variant count is known
  without parsing the ``.pvar`` when no data line holds a comma; otherwise
  the ``.pvar`` is parsed when the fileset is opened. A ``.pgen`` whose
  index stores allele counts (bits 4-5 of its control byte; plink2
  v2.00a3.5 writes them in the ``.pvar`` only) is refused.
* ``.psam``: a ``#FID IID ...`` or ``#IID ...`` header line, columns by
  name (``FID``, ``IID``, ``SID``, ``PAT``, ``MAT``, ``SEX``, then
  phenotypes); without FID every sample's FID is ``0``, as plink2 writes it
  into a ``.fam``. SEX is ``1``/``M``/``m`` male, ``2``/``F``/``f`` female,
  anything else unknown. Without a header line the file is a ``.fam``.
* ``.pgen``: the variant and sample counts in its header must equal the
  ``.pvar``'s and ``.psam``'s.

Memory is bounded as for a ``.bed`` (chunks of ``chunk_variants`` x
samples bytes); the ``.pvar`` is parsed in blocks of lines, on first use of
:attr:`PgenFile.variants`, and only counted when the fileset is opened.
"""

from __future__ import annotations

import functools
import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pgenlib

from genofed.common.errors import InputError
from genofed.site_agent.io.plink import (
    BIM_BLOCK_LINES,
    MAX_POSITION,
    PgenlibGenotypes,
    Samples,
    Variants,
    _block_spans,
    _joined,
    _line_number_at,
    read_fam,
)

PGEN_MAGIC = b"\x6c\x1b\x10"
#: Variants per block of a .pgen's index (pgen spec: 2^16).
_VBLOCK = 1 << 16
_BOM = "\ufeff"
_PVAR_REQUIRED = ("CHROM", "POS", "ID", "REF", "ALT")
#: Column order of a .pvar without a #CHROM line (a .bim), with and without CM.
_BIM_ORDER = {
    6: ("CHROM", "ID", "CM", "POS", "ALT", "REF"),
    5: ("CHROM", "ID", "POS", "ALT", "REF"),
}
_MALE = frozenset({"1", "M", "m"})
_FEMALE = frozenset({"2", "F", "f"})


def pfile_paths(path: Path) -> tuple[Path, Path, Path]:
    """``(pgen, pvar, psam)`` for the prefix ``X`` or any of ``X.pgen``, ``X.pvar``, ``X.psam``."""
    path = Path(path)
    name = path.name
    for suffix in (".pvar.zst", ".pgen", ".pvar", ".psam"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    prefix = path.with_name(name)
    return (
        prefix.with_name(name + ".pgen"),
        prefix.with_name(name + ".pvar"),
        prefix.with_name(name + ".psam"),
    )


@dataclass(frozen=True)
class PgenHeader:
    """What a ``.pgen``'s header and index say about its records."""

    n_variants: int
    n_samples: int
    #: some variant stores a dosage track (imputed data)
    has_dosages: bool
    #: the index stores allele counts (some variant has more than two alleles)
    multiallelic: bool


def read_pgen_header(path: Path) -> PgenHeader:
    """Parse the header and the record-type index of a standard (mode 0x10) ``.pgen``.

    Layout (pgen spec; checked against plink2-written files): magic ``6c 1b 10``,
    variant and sample counts (uint32), a control byte (low nibble: 4- or
    8-bit record types and 1-4 byte record lengths; bits 4-5: allele counts
    stored; bits 6-7: non-REF flags stored when 3), one 8-byte offset per
    block of 65,536 variants, then per block its record types, lengths,
    allele counts and flags. Only 8-bit record types can carry a dosage
    track (bits 5-6 of the type).
    """
    with path.open("rb") as fh:
        head = fh.read(12)
        if head[:3] != PGEN_MAGIC:
            raise InputError(
                f"is not a standard PLINK 2 .pgen (first bytes {head[:3].hex(' ')}, "
                "expected 6c 1b 10)",
                path=path,
                hint=f"rewrite it with plink2 --pfile {path.with_suffix('')} --make-pgen "
                f"--out {path.with_suffix('')}-std",
            )
        if len(head) < 12:
            raise InputError(
                "is truncated (shorter than a .pgen header)",
                path=path,
                hint="copy the .pgen again from the plink2 --make-pgen run that wrote "
                "the .pvar and .psam",
            )
        n_variants, n_samples = struct.unpack("<II", head[3:11])
        control = head[11]
        vrtype_bits = 8 if (control & 0xF) >= 4 else 4
        length_bytes = (control & 3) + 1
        multiallelic = (control >> 4) & 3 != 0
        has_dosages = False
        if vrtype_bits == 8 and not multiallelic:
            n_blocks = (n_variants + _VBLOCK - 1) // _VBLOCK
            fh.seek(12 + 8 * n_blocks)
            flags = (control >> 6) == 3
            for b in range(n_blocks):
                n = min(_VBLOCK, n_variants - b * _VBLOCK)
                types = np.frombuffer(fh.read(n), dtype=np.uint8)
                if len(types) < n:
                    raise InputError(
                        "is truncated (its variant index is incomplete)",
                        path=path,
                        hint="copy the .pgen again from the plink2 --make-pgen run",
                    )
                if (types & 0x60).any():
                    has_dosages = True
                    break
                fh.seek(n * length_bytes + ((n + 7) // 8 if flags else 0), 1)
    return PgenHeader(n_variants, n_samples, has_dosages, multiallelic)


def _read_text(path: Path, what: str) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            "not a text file (bytes that are not UTF-8)",
            path=path,
            hint=f"give the plain-text {what} that belongs with the .pgen",
        ) from exc
    if text.startswith(_BOM):
        raise InputError(
            "starts with a UTF-8 byte-order mark, which plink2 reads as part of the first field",
            path=path,
            line=1,
            hint=f"save it without the mark, e.g. sed -i '1s/^\\xEF\\xBB\\xBF//' {path}",
        )
    return text


def _header_end(text: str) -> tuple[int, int, str | None]:
    """``(offset, lines, header)``: where the data lines start, after ``##`` lines and ``#`` line.

    ``header`` is the ``#...`` column line without its ``#``, None when absent.
    """
    pos = lines = 0
    while pos < len(text):
        end = text.find("\n", pos)
        end = len(text) if end < 0 else end + 1
        line = text[pos:end]
        if line.startswith("##") or not line.strip():
            pos, lines = end, lines + 1
            continue
        if line.startswith("#"):
            return end, lines + 1, line[1:].strip()
        break
    return pos, lines, None


def _pvar_columns(path: Path, header: str | None, line: int, first: list[str]) -> tuple[str, ...]:
    if header is None:
        if len(first) not in _BIM_ORDER:
            raise InputError(
                f"has no #CHROM header line, and its first line has {len(first)} columns, "
                "not the 5 or 6 of .bim order (CHROM, ID, [CM,] POS, ALT, REF)",
                path=path,
                line=line,
                hint="start the file with a header line such as "
                "'#CHROM<TAB>POS<TAB>ID<TAB>REF<TAB>ALT' naming its columns",
            )
        return _BIM_ORDER[len(first)]
    names = tuple(header.split())
    if not names or names[0] != "CHROM":
        raise InputError(
            f"the header line must start with #CHROM, not #{names[0] if names else ''}",
            path=path,
            line=line,
            hint="write the column line as #CHROM POS ID REF ALT (tab-separated); "
            "other lines before it must start with ##",
        )
    missing = [c for c in _PVAR_REQUIRED if c not in names]
    if missing:
        raise InputError(
            f"the header line lacks column(s) {', '.join(missing)}",
            path=path,
            line=line,
            hint="a .pvar needs the columns CHROM, POS, ID, REF and ALT "
            "(QUAL, FILTER, INFO and CM are optional)",
        )
    twice = sorted({c for c in names if names.count(c) > 1})
    if twice:
        raise InputError(
            f"the header line names column(s) {', '.join(twice)} twice",
            path=path,
            line=line,
            hint="name each column once",
        )
    return names


@functools.cache
def _row_pattern(n: int) -> re.Pattern[str]:
    return re.compile(rf"^[ \t]*(?:\S+[ \t]+){{{n - 1}}}\S+[ \t\r]*$", re.MULTILINE)


def _pvar_block(
    path: Path,
    block: str,
    first_line: Callable[[], int],
    columns: tuple[str, ...],
) -> tuple[list[str], np.ndarray]:
    """One block's tokens and positions, or an InputError at its first bad line.

    ``first_line`` gives the number of the block's first line in the file; it
    is called only to name a bad line (counting lines costs a scan from the start).
    """
    n = len(columns)
    tokens = block.split()
    j_pos = columns.index("POS")
    if len(tokens) == n * len(_row_pattern(n).findall(block)):
        try:
            pos = np.array(tokens[j_pos::n]).astype(np.int64)
        except (ValueError, OverflowError):
            pos = None
        if pos is not None and (not pos.size or (pos.min() >= 0 and pos.max() <= MAX_POSITION)):
            return tokens, pos
    # line by line, to name the first bad line
    for line_no, line in enumerate(block.splitlines(), first_line()):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != n:
            raise InputError(
                f"expected {n} columns ({' '.join(columns)}), found {len(fields)}",
                path=path,
                line=line_no,
                hint="every line needs a value in every column the header names "
                "(use . for a missing ID, QUAL, FILTER or INFO)",
            )
        value = fields[j_pos]
        try:
            number = int(value)
        except ValueError:
            number = None
        if number is None or number < 0 or number > MAX_POSITION:
            raise InputError(
                f"POS is {value!r}, not a base-pair position (a whole number from 0 to "
                f"{MAX_POSITION})",
                path=path,
                line=line_no,
                hint="fix the position at that line, or remove the variant "
                "(and its record in the .pgen, e.g. with plink2 --exclude)",
            )
    raise AssertionError("unreachable: a block that failed the fast check has a bad line")


def read_pvar(path: Path, block_lines: int | None = None) -> Variants:
    """Parse a ``.pvar`` (see the module docstring), ``block_lines`` lines at a time."""
    path = Path(path)
    text = _read_text(path, ".pvar")
    start, header_lines, header = _header_end(text)
    data = text[start:]
    del text
    first = re.search(r"\S[^\n]*", data)
    first_fields = first.group().split() if first else []
    columns = _pvar_columns(
        path, header, header_lines if header is not None else header_lines + 1, first_fields
    )
    n = len(columns)
    where = {name: columns.index(name) for name in ("CHROM", "ID", "REF", "ALT")}
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("chrom", "pos", "id", "ref", "alt")}
    for b_start, b_end in _block_spans(data, block_lines or BIM_BLOCK_LINES):
        block = data[b_start:b_end]

        def first_line(start: int = b_start) -> int:
            return header_lines + _line_number_at(data, start)

        tokens, pos = _pvar_block(path, block, first_line, columns)
        alts = tokens[where["ALT"] :: n]
        multi = [i for i, a in enumerate(alts) if "," in a]
        refs = tokens[where["REF"] :: n]
        for i in multi:  # rare: checked one by one
            listed = alts[i].split(",")
            if len(set(listed)) < len(listed) or refs[i] in listed:
                numbered = enumerate(block.splitlines(), first_line())
                rows = [ln for ln, line in numbered if line.strip()]
                twice = next(a for a in listed if a == refs[i] or listed.count(a) > 1)
                what = "is also the REF" if twice == refs[i] else "is listed twice"
                raise InputError(
                    f"multi-allelic variant REF {refs[i]} ALT {alts[i]}: ALT {twice} {what}, so "
                    "splitting it gives two variants that harmonization (chromosome, position, "
                    "REF, ALT) cannot tell apart",
                    path=path,
                    line=rows[i],
                    hint="correct that variant's ALT where the fileset was made (each allele "
                    "once, none equal to REF), or remove it: plink2 --pfile "
                    f"{path.with_suffix('')} --exclude ids.txt --make-pgen --out fixed",
                )
        parts["pos"].append(pos)
        for key, name in (("chrom", "CHROM"), ("id", "ID"), ("ref", "REF"), ("alt", "ALT")):
            column = tokens[where[name] :: n]
            try:
                parts[key].append(np.array(column, dtype=bytes))
            except UnicodeEncodeError:
                parts[key].append(np.array(column, dtype=str))
        del tokens, block, alts, refs
    return _joined(parts)


def count_pvar_variants(path: Path) -> int:
    """Data lines of a ``.pvar`` (not ``#`` lines, not blank), without parsing them."""
    return _pvar_counts(path)[0]


def _pvar_counts(path: Path) -> tuple[int, bool]:
    """``(data lines, some data line holds a comma)``: without a comma no ALT lists several."""
    data = Path(path).read_bytes()
    count = 0
    comma = False
    for line in data.splitlines():
        if line.strip() and not line.startswith(b"#"):
            count += 1
            comma = comma or b"," in line
    return count, comma


@dataclass(frozen=True)
class SplitVariants:
    """A ``.pvar``'s variants with each multi-allelic line split into one variant per ALT."""

    variants: Variants
    record: np.ndarray  # int64: the .pvar data line (0-based) of each variant
    allele: np.ndarray  # int16: its ALT (1-based) in that line's ALT list
    n_alts: np.ndarray  # int64: ALTs of each line


def split_alts(variants: Variants) -> SplitVariants:
    """Split each ``ALT1,...,ALTk`` line into ``k`` variants ``REF/ALTj``, in ALT order.

    As ``plink2 --pfile X --make-pgen multiallelics=-`` or ``bcftools norm
    -m-`` on the VCF: each keeps the line's ID; ``pgenlib`` then counts the
    copies of ALT ``j`` (every other allele counts as not-``ALTj``).
    """
    alt = variants.alt
    n = len(alt)
    n_alts = (np.char.count(alt, ",") + 1).astype(np.int64)
    if n == 0 or int(n_alts.max()) == 1:
        return SplitVariants(variants, np.arange(n), np.ones(n, dtype=np.int16), n_alts)
    record = np.repeat(np.arange(n), n_alts)
    starts = np.cumsum(n_alts) - n_alts
    allele = (np.arange(len(record)) - np.repeat(starts, n_alts) + 1).astype(np.int16)
    split_alt = np.repeat(alt, n_alts)
    for r in np.flatnonzero(n_alts > 1).tolist():
        split_alt[starts[r] : starts[r] + n_alts[r]] = str(alt[r]).split(",")
    width = int(np.char.str_len(split_alt).max())
    split = Variants(
        chrom=variants.chrom[record],
        pos=variants.pos[record],
        id=variants.id[record],
        ref=variants.ref[record],
        alt=split_alt.astype(f"U{max(width, 1)}"),
    )
    return SplitVariants(split, record, allele, n_alts)


def read_psam(path: Path) -> Samples:
    """Parse a ``.psam`` (or a ``.fam``-format file without a header line)."""
    path = Path(path)
    text = _read_text(path, ".psam")
    start, header_lines, header = _header_end(text)
    if header is None:
        return read_fam(path)
    names = header.split()
    if not names or names[0] not in ("FID", "IID"):
        raise InputError(
            f"the header line must start with #FID or #IID, not #{names[0] if names else ''}",
            path=path,
            line=header_lines,
            hint="write the column line as #FID IID SEX ... or #IID SEX ... (tab-separated)",
        )
    if "IID" not in names:
        raise InputError(
            "the header line has no IID column",
            path=path,
            line=header_lines,
            hint="a .psam names its samples in an IID column: #FID IID SEX ...",
        )
    twice = sorted({c for c in names if names.count(c) > 1})
    if twice:
        raise InputError(
            f"the header line names column(s) {', '.join(twice)} twice",
            path=path,
            line=header_lines,
            hint="name each column once",
        )
    j_fid = names.index("FID") if "FID" in names else None
    j_iid = names.index("IID")
    j_sex = names.index("SEX") if "SEX" in names else None
    j_parents = [names.index(c) for c in ("PAT", "MAT") if c in names]
    founder: list[bool] = []
    fid: list[str] = []
    iid: list[str] = []
    sex: list[int] = []
    first_line: dict[tuple[str, str], int] = {}
    for line_no, line in enumerate(text[start:].splitlines(), header_lines + 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != len(names):
            raise InputError(
                f"expected {len(names)} columns ({' '.join(names)}), found {len(fields)}",
                path=path,
                line=line_no,
                hint="every line needs a value in every column the header names "
                "(use NA for a missing phenotype or sex)",
            )
        key = (fields[j_fid] if j_fid is not None else "0", fields[j_iid])
        if key in first_line:
            who = f"FID={key[0]!r} IID={key[1]!r}" if j_fid is not None else f"IID={key[1]!r}"
            raise InputError(
                f"duplicate sample {who} (lines {first_line[key]} and {line_no})",
                path=path,
                line=line_no,
                hint="every sample ID must be unique; remove or rename one of them "
                "(and its genotypes, e.g. plink2 --remove)",
            )
        first_line[key] = line_no
        fid.append(key[0])
        iid.append(key[1])
        code = fields[j_sex] if j_sex is not None else "0"
        sex.append(1 if code in _MALE else 2 if code in _FEMALE else 0)
        founder.append(all(fields[j] == "0" for j in j_parents))
    founders = np.array(founder, dtype=np.bool_)
    return Samples(
        fid=np.array(fid, dtype=str),
        iid=np.array(iid, dtype=str),
        sex=np.array(sex, dtype=np.int8),
        has_fid=j_fid is not None,
        founder=None if founders.all() else founders,
    )


_HINT_FILESET = (
    "a PLINK 2 fileset is X.pgen, X.pvar and X.psam side by side; "
    "give the path to any of them or the prefix X"
)


class PgenFile(PgenlibGenotypes):
    """A validated PLINK 2 fileset; hard calls are read lazily in chunks."""

    def __init__(self, path: Path) -> None:
        pgen, pvar, psam = pfile_paths(path)
        zst = pvar.with_name(pvar.name + ".zst")
        if not pvar.exists() and zst.is_file():
            raise InputError(
                "the variants are in a zstd-compressed .pvar.zst, which GenoFed does not read",
                path=zst,
                hint=f"decompress it next to the .pgen: plink2 --zst-decompress {zst} > {pvar} "
                f"(or zstd -d {zst})",
            )
        for p in (pgen, pvar, psam):
            if p.is_dir():
                raise InputError(
                    "is a directory, not a file of a PLINK 2 fileset", path=p, hint=_HINT_FILESET
                )
        missing = [p for p in (pgen, pvar, psam) if not p.is_file()]
        if missing:
            also = f" (also missing: {', '.join(map(str, missing[1:]))})" if missing[1:] else ""
            raise InputError("file not found" + also, path=missing[0], hint=_HINT_FILESET)
        self.path = pgen
        self.pvar_path = pvar
        self.psam_path = psam
        self.header = read_pgen_header(pgen)
        self.samples = read_psam(psam)
        self.n_samples = len(self.samples)
        self.n_records, has_comma = _pvar_counts(pvar)
        self.n_variants = self.n_records  # until a multi-allelic line is split (below)
        self._split: SplitVariants | None = None
        self._closed = False
        if self.n_samples == 0:
            raise InputError(
                "no samples", path=psam, hint="the .psam must list at least one sample"
            )
        if self.n_records == 0:
            raise InputError(
                "no variants", path=pvar, hint="the .pvar must list at least one variant"
            )
        for count, name, text_path in (
            (self.header.n_samples, "samples", psam),
            (self.header.n_variants, "variants", pvar),
        ):
            actual = self.n_samples if name == "samples" else self.n_records
            if count != actual:
                raise InputError(
                    f"its header says {count} {name}, but {text_path.name} lists {actual}",
                    path=pgen,
                    hint="the .pgen and its .pvar/.psam come from different runs; copy the "
                    "three files again from the same plink2 --make-pgen run",
                )
        if self.header.multiallelic:
            raise InputError(
                "stores its multi-allelic variants' allele counts in its index, a layout "
                "GenoFed does not read yet (plink2 --make-pgen writes them in the .pvar only)",
                path=pgen,
                hint="give the VCF/BCF it was made from (GenoFed splits multi-allelic records), "
                f"or drop them: plink2 --pfile {pgen.with_suffix('')} --max-alleles 2 "
                f"--make-pgen --out {pgen.with_suffix('')}-biallelic",
            )
        if has_comma:  # perhaps a multi-allelic ALT: the variant count is known once split
            self._split = self._read_split()
            self.n_variants = len(self._split.variants)
        try:
            with pgenlib.PgenReader(bytes(pgen), allele_idx_offsets=self._allele_offsets()):
                pass  # reads the index: a corrupt file fails here, not in a request
        except RuntimeError as exc:
            raise InputError(
                f"could not be opened by pgenlib ({exc})",
                path=pgen,
                hint="copy the .pgen again, or rewrite it with plink2 --make-pgen",
            ) from exc

    @property
    def has_dosages(self) -> bool:
        """Whether some variant stores a dosage track (GenoFed reads the hard calls)."""
        return self.header.has_dosages

    @property
    def variants(self) -> Variants:
        """The ``.pvar``, parsed (and its lines checked) and split per ALT on first use."""
        return self._split_variants().variants

    def _split_variants(self) -> SplitVariants:
        if self._split is None:
            split = self._read_split()
            if len(split.variants) != self.n_variants:
                raise InputError(
                    f"lists {len(split.variants)} variants once its multi-allelic ALTs are "
                    f"split, but {self.n_variants} when the fileset was opened",
                    path=self.pvar_path,
                    hint="do not change the .pvar while the site is running",
                )
            self._split = split
        return self._split

    def _allele_offsets(self) -> np.ndarray | None:
        """pgenlib's ``allele_idx_offsets`` (alleles before each line), None if all biallelic."""
        if self.n_variants == self.n_records:
            return None
        n_alts = self._split_variants().n_alts
        offsets: np.ndarray = np.r_[0, np.cumsum(n_alts + 1)].astype(np.uintp)
        return offsets

    def _read_split(self) -> SplitVariants:
        variants = read_pvar(self.pvar_path)
        if len(variants) != self.n_records:
            raise InputError(
                f"has {len(variants)} variant lines, but {self.n_records} were counted "
                "when the fileset was opened",
                path=self.pvar_path,
                hint="end every line with a newline, and do not change the .pvar while "
                "the site is running",
            )
        return split_alts(variants)

    @property
    def split_records(self) -> int:
        """Multi-allelic ``.pvar`` lines, each split into one variant per ALT."""
        return int((self._split_variants().n_alts > 1).sum())

    @property
    def split_variants(self) -> int:
        """The variants those multi-allelic lines were split into."""
        n_alts = self._split_variants().n_alts
        return int(n_alts[n_alts > 1].sum())

    @property
    def max_alts(self) -> int:
        """The most ALTs one ``.pvar`` line lists (1 when every variant is biallelic)."""
        return int(self._split_variants().n_alts.max())

    def _iter(
        self, variants: np.ndarray | None, subset: np.ndarray | None, chunk: int
    ) -> Iterator[tuple[int, np.ndarray]]:
        """As the PLINK 1 reader, but a split variant is its line counted for its ALT."""
        if self.n_variants == self.n_records:
            return super()._iter(variants, subset, chunk)
        return self._iter_split(self._split_variants(), variants, subset, chunk)

    def _iter_split(
        self,
        split: SplitVariants,
        variants: np.ndarray | None,
        subset: np.ndarray | None,
        chunk: int,
    ) -> Iterator[tuple[int, np.ndarray]]:
        if self._closed:
            raise ValueError(f"{self!r} is closed")
        n_out = self.n_samples if subset is None else len(subset)
        total = self.n_variants if variants is None else len(variants)
        offsets = self._allele_offsets()
        try:
            with pgenlib.PgenReader(
                bytes(self.path),
                raw_sample_ct=self.n_samples,
                variant_ct=self.n_records,
                sample_subset=subset,
                allele_idx_offsets=offsets,
            ) as reader:
                for start in range(0, total, chunk):
                    if self._closed:
                        raise ValueError(f"{self!r} was closed during iteration")
                    stop = min(start + chunk, total)
                    idx = np.arange(start, stop) if variants is None else variants[start:stop]
                    rows, alleles = split.record[idx], split.allele[idx]
                    out = np.empty((stop - start, n_out), dtype=np.int8)
                    for allele in np.unique(alleles).tolist():
                        at = np.flatnonzero(alleles == allele)
                        part = np.empty((len(at), n_out), dtype=np.int8)
                        reader.read_list(rows[at].astype(np.uint32), part, allele_idx=allele)
                        out[at] = part
                    yield start, out
        except RuntimeError as exc:
            raise InputError(
                f"could not decode genotypes ({exc})",
                path=self.path,
                hint="the file may have changed since it was opened; check it with plink",
            ) from exc

    def __repr__(self) -> str:
        return (
            f"PgenFile({str(self.path)!r}, n_samples={self.n_samples}, "
            f"n_variants={self.n_variants})"
        )


__all__ = [
    "PGEN_MAGIC",
    "PgenFile",
    "PgenHeader",
    "SplitVariants",
    "count_pvar_variants",
    "pfile_paths",
    "read_pgen_header",
    "read_psam",
    "read_pvar",
    "split_alts",
]
