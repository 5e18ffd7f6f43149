"""VCF and BCF reader with :class:`~genofed.site_agent.io.plink.BedFile`'s interface.

:class:`VcfFile` reads a VCF (plain text, bgzipped or gzipped) or a BCF,
indexed or not, through ``cyvcf2`` (htslib), and offers what ``BedFile``
offers: ``samples``, ``variants``, ``n_samples``, ``n_variants``,
``iter_dosages(variant_idx, sample_idx=, chunk_variants=)`` yielding
``(start, int8 block)`` of ALT allele counts (0/1/2, ``-9`` missing),
``close`` and the context manager. A chunk holds ``chunk_variants x
n_samples`` bytes, plus one record's decoded calls.

How a variant index reaches its record
--------------------------------------
* The constructor reads only the header (samples) and checks that a data
  line follows. The **first pass** runs when :attr:`VcfFile.variants` or
  :attr:`VcfFile.n_variants` is first read: it reads every record's fixed
  columns (not the per-sample columns; for a text VCF htslib is told to
  skip them) and records the variant table and, per variant, its record
  and ALT index. A record with ``k`` ALTs gives ``k`` variants (see
  *Multi-allelic records* below); variant ``k`` is the ``k``-th of these
  in file order, as ``plink2 --vcf`` numbers the variants of the file that
  ``bcftools norm -m-`` splits.
* Each output chunk of ``variant_idx`` (any order, repeats allowed) is read
  in ascending file order through one open reader, skipping the records in
  between. When the next index is behind the reader (or far ahead of it),
  the reader moves: with an index file (``X.vcf.gz.tbi``, ``X.vcf.gz.csi``
  or ``X.bcf.csi``, as ``tabix -p vcf`` / ``bcftools index`` write them) of
  a sorted file, by a region query to the record's chromosome and position;
  without one, by reopening the file at its start. So a ``variant_idx`` in
  file order (the usual case) costs one pass; any other order costs at most
  one pass per chunk without an index, and one seek per jump with one.
  Every record reached is checked against the variant table (position,
  REF and ALT count), so a file changed after opening is refused rather
  than misread. The ALTs of one record that a chunk asks for are counted
  from one decoding of its calls.

Multi-allelic records
---------------------
* A record ``REF ALT1,...,ALTk`` is read as ``k`` biallelic variants
  ``REF/ALTj``, in ALT order, each counting a call's copies of ``ALTj``;
  REF and every other ALT count as not-``ALTj`` (``1/2`` is 1 copy of ALT1
  and 1 of ALT2). That is what ``bcftools norm -m-`` writes (it sets the
  other ALTs to REF in each split record) and ``plink2 --vcf`` then reads,
  and what ``plink2 --vcf X --freq`` reports per ALT on the unsplit file
  (``tests/reference/test_vcf_multiallelic_vs_plink2.py``). A missing or
  half call (``./2``) is missing in every split variant, haploid calls count
  double in each, as above.
* **IDs**: each split variant keeps the record's ID, as ``bcftools norm
  -m-`` does and plink2 keeps them (``rs2`` twice; ``.`` stays ``.``).
  Harmonization matches variants by chromosome, position, REF and ALT, so
  duplicate IDs do not confuse it; the output tables list the ID on each
  split variant's row, as plink2's do.
* ``*`` (a spanning deletion) and symbolic ALTs (``<DEL>``) are kept as
  alleles, as bcftools and plink2 keep them.
* **No limit on ALTs per record**: a record with many (a short tandem
  repeat) gives as many variants, as ``bcftools norm -m-`` then plink2
  would; refusing it (``--max-alleles``-style) would refuse a whole
  sequencing file for one such record. Each split variant is a variant
  like any other for the disclosure guard: a rarely seen ALT is withheld
  by the per-variant small-cell rule, whatever its record's other ALTs
  are. ``genofed-site init`` prints how many records were split into how
  many variants and the most ALTs in one record.
* Refused at the first pass: a multi-allelic record that lists an ALT twice
  or an ALT equal to REF (plink2 keeps it; its split variants could not be
  told apart by harmonization).
* A PLINK 2 ``.pvar`` line with several ALTs is split the same way
  (:mod:`genofed.site_agent.io.pgen`).

Rules, as ``plink2 --vcf`` (v2.00a3.5) applies them
--------------------------------------------------
* **GT to hard calls**: the ALT allele count; phased (``0|1``) and unphased
  (``0/1``) are the same; a haploid call (``0``, ``1``, e.g. chrY or a
  male's chrX) counts as homozygous (``1`` -> 2), as plink2 codes it;
  ``.``/``./.`` are missing. A half-call (``./1``) is missing, which is
  ``plink2 --vcf-half-call missing`` (plink2's default is to stop with an
  error at the line). Other FORMAT fields (``DS``, ``GP``, ``DP``...) are
  not read.
* **FILTER** is not applied: every record is kept, as plink2 keeps them
  unless ``--var-filter`` is given; QUAL is not applied either.
* **IDs**: kept as written; a missing ID (``.``) stays ``.``, as plink2
  writes it to its ``.pvar`` without ``--set-missing-var-ids`` (variants are
  matched across sites by chromosome, position and alleles). A record
  without ALT (``.``) has ALT ``.``. Chromosome names are kept as written
  (``chr1`` or ``1``); harmonization compares them without the ``chr``
  prefix (:func:`genofed.common.chromosomes.bare_chrom`).
* **Samples**: IID is the VCF sample name, FID is ``0`` and sex is unknown
  (0): ``plink2 --vcf`` writes a ``.psam`` with the IID alone (and FID ``0``
  in a ``.fam``) unless ``--id-delim``/``--double-id`` is given, so a
  phenotype table keyed by plink2-converted IDs (``#IID`` or ``#FID IID``
  with FID 0) matches. A VCF holds no sex: it comes from the phenotype or
  covariate table.
* **Order**: unsorted records and repeated positions are read as they come
  (plink2 warns, then converts them in file order); only an index is then
  not used.

Refused, with the file, the line (text VCF; a BCF's record number) and the fix
------------------------------------------------------------------------------
A multi-allelic record listing an allele twice (above), a header without
a ``GT`` FORMAT field, a record without ``GT`` or with ``GT`` not first in FORMAT
(plink2 makes all its calls missing), a call of more than two alleles
(plink2 makes it missing), an allele index beyond the record's ALTs,
duplicate sample names or names holding whitespace (plink2 keeps duplicates
and cuts names at a space), a file with no samples or no records, a
malformed line (htslib's parse error, e.g. a bad POS or the wrong number of
columns), and a truncated bgzip/BCF file (no BGZF end-of-file block, or a
block cut short). Per-sample columns are checked when genotypes are read: a
malformed sample column fails the first :meth:`VcfFile.iter_dosages` that
reaches it, naming its line.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import cyvcf2
import numpy as np

from genofed.common.errors import InputError
from genofed.site_agent.io.plink import (
    DEFAULT_CHUNK_VARIANTS,
    MISSING,
    Samples,
    Variants,
    checked_sample_idx,
    checked_variant_idx,
)

#: FID given to every VCF sample: what ``plink2 --vcf`` writes to a ``.fam``.
VCF_FID = "0"
#: With an index, a region query is used instead of skipping when the next record
#: is more than this many records ahead. Skipping a text record parses its sample
#: columns, a BCF record's are not unpacked; measured at 1,000 samples x 5,000
#: variants in random order (the best of 4, 16, 64, 256): 16 for a bgzipped VCF
#: (2,600 variants/s, 1,700 at 256), 64 for a BCF (11,900/s, 7,200 at 256).
JUMP_RECORDS = {"vcf": 16, "bcf": 64}
#: Records per block of the first pass (Python strings of one block alive at a time).
PASS_BLOCK_RECORDS = 65536
_BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
_GZIP_MAGIC = b"\x1f\x8b"
_VECTOR_END = -2  # htslib: this sample has fewer alleles than the record's widest call


def fileset(path: Path) -> tuple[Path, ...]:
    """The VCF/BCF and the index files beside it (``.tbi``, ``.csi``) that exist.

    What a snapshot must copy, side by side, for the copy to be read as the
    original is (without its index the copy is read correctly, but a
    ``variant_idx`` out of file order costs a pass per chunk).
    """
    path = Path(path)
    found = (path.with_name(path.name + s) for s in _INDEX_SUFFIXES)
    return (path, *(p for p in found if p.is_file()))


_INDEX_SUFFIXES = (".tbi", ".csi")


def _sniff(path: Path) -> tuple[str, bool]:
    """``(kind, bgzf)``: kind ``"vcf"`` or ``"bcf"``; ``bgzf`` when block-gzipped."""
    with path.open("rb") as fh:
        head = fh.read(18)
    if not head:
        raise InputError(
            "is empty (0 bytes)", path=path, hint="copy the VCF/BCF again from where it was made"
        )
    bgzf = False
    text = head
    if head[:2] == _GZIP_MAGIC:
        bgzf = len(head) >= 14 and head[3] & 4 == 4 and head[12:14] == b"BC"
        try:
            with gzip.open(path, "rb") as gz:
                text = gz.read(16)
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(
                f"is gzip-compressed but cannot be decompressed ({exc})",
                path=path,
                hint="the file is damaged or truncated; check it with gzip -t and copy it again",
            ) from exc
    if text.startswith(b"BCF"):
        return "bcf", bgzf
    if text.startswith(b"##fileformat=VCF"):
        return "vcf", bgzf
    raise InputError(
        f"is not a VCF or BCF (it starts with {text[:16]!r}; a VCF starts with "
        "'##fileformat=VCF', a BCF with 'BCF')",
        path=path,
        hint="give a VCF (.vcf, .vcf.gz) or BCF (.bcf) file",
    )


def _check_bgzf_end(path: Path) -> None:
    """A bgzipped file ends with the 28-byte empty BGZF block; without it, it was cut short."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        fh.seek(max(0, size - len(_BGZF_EOF)))
        tail = fh.read()
    if tail != _BGZF_EOF:
        raise InputError(
            "is truncated: it does not end with the BGZF end-of-file block that bgzip, "
            "bcftools and plink2 write",
            path=path,
            hint="copy the file again from where it was made (check with bgzip -t or "
            "bcftools view -h); a file still being written is not complete",
        )


def _read_text_header(path: Path) -> tuple[int, list[str], bool]:
    """``(header_lines, sample_names, has_record)`` of a text VCF, checked."""
    with path.open("rb") as fh:
        compressed = fh.read(2) == _GZIP_MAGIC
    n_lines = 0
    chrom_line: list[str] | None = None
    chrom_line_no = 0
    has_gt = False
    has_record = False
    try:
        with gzip.open(path, "rb") if compressed else path.open("rb") as fh:
            for raw in fh:
                line = raw.rstrip(b"\r\n")
                if not line.startswith(b"#") and line.strip():
                    has_record = True
                    break
                n_lines += 1
                if line.startswith(b"##FORMAT=<ID=GT,"):
                    has_gt = True
                if line.startswith(b"#CHROM"):
                    chrom_line = line.decode("utf-8", errors="replace").split("\t")
                    chrom_line_no = n_lines
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(
            f"cannot be read to the end of its header ({exc})",
            path=path,
            hint="the file is damaged or truncated; check it with gzip -t and copy it again",
        ) from exc
    if chrom_line is None:
        raise InputError(
            "has no '#CHROM' header line",
            path=path,
            line=n_lines or None,
            hint="the last header line must be #CHROM POS ID REF ALT QUAL FILTER INFO FORMAT "
            "and the sample names, tab-separated",
        )
    samples = chrom_line[9:]
    if not samples:
        raise InputError(
            "has no samples (the #CHROM line has no columns after FORMAT)",
            path=path,
            line=chrom_line_no,
            hint="give a VCF with genotype columns, one per sample",
        )
    _check_sample_names(path, samples, chrom_line_no)
    if not has_gt:
        raise InputError(
            "declares no GT FORMAT field (no '##FORMAT=<ID=GT,' header line), so there are no "
            "genotype calls to read (plink2 would make every call missing)",
            path=path,
            line=chrom_line_no,
            hint="give the VCF with genotype calls (GT); a dosage-only VCF (DS/GP) is not read yet",
        )
    return n_lines, samples, has_record


_RENAME_HINT = (
    "rename the samples in the header, e.g. bcftools reheader -s new_names.txt {path} "
    "(new_names.txt: one name a line, in column order)"
)


def _check_sample_names(path: Path, names: list[str], line: int | None) -> None:
    """Refuse duplicate names and names with whitespace (``line``: the #CHROM line, if text)."""
    first: dict[str, int] = {}
    for col, name in enumerate(names, 10):
        if name in first:
            raise InputError(
                f"duplicate sample name {name!r} (columns {first[name]} and {col} of the "
                "#CHROM line); plink2 --vcf keeps both, and a phenotype row could not tell "
                "them apart",
                path=path,
                line=line,
                hint=_RENAME_HINT.format(path=path),
            )
        first[name] = col
        if not name or any(c.isspace() for c in name):
            raise InputError(
                f"sample name {name!r} (column {col} of the #CHROM line) is empty or holds "
                "whitespace, so no row of a whitespace-separated phenotype table can name it "
                "(plink2 --vcf cuts it at the first space)",
                path=path,
                line=line,
                hint=_RENAME_HINT.format(path=path),
            )


def _no_gt_error(path: Path, where: dict[str, Any]) -> InputError:
    return InputError(
        "record has no GT field (plink2 would make all its calls missing)",
        **where,
        hint="add GT to that record's FORMAT, or remove the record "
        "(bcftools view -e 'FMT/GT=\"mis\"' keeps the others)",
    )


class VcfFile:
    """A validated VCF or BCF; genotypes are read lazily in chunks. See the module docstring."""

    def __init__(self, path: Path) -> None:
        path = Path(path)
        if path.is_dir():
            raise InputError(
                "is a directory, not a VCF or BCF file",
                path=path,
                hint="give the path to the .vcf, .vcf.gz or .bcf file",
            )
        if not path.is_file():
            raise InputError(
                "file not found", path=path, hint="give the path to the .vcf, .vcf.gz or .bcf file"
            )
        self.path = path
        self.kind, self.bgzf = _sniff(path)
        if self.bgzf or self.kind == "bcf":
            _check_bgzf_end(path)
        self._header_lines = 0
        if self.kind == "vcf":
            self._header_lines, names, has_record = _read_text_header(path)
        else:
            names, has_record = self._read_bcf_header()
        if not has_record:
            raise InputError(
                "has no variant records (only a header)",
                path=path,
                hint="give a VCF/BCF with at least one variant",
            )
        self.samples = Samples(
            fid=np.full(len(names), VCF_FID, dtype=str),
            iid=np.array(names, dtype=str),
            sex=np.zeros(len(names), dtype=np.int8),
            has_fid=False,
        )
        self.n_samples = len(self.samples)
        self._variants: Variants | None = None
        # set by the first pass: per variant its record (0-based) and ALT (1-based), per record
        # its position, REF and ALT count
        self._record = np.empty(0, dtype=np.int64)
        self._allele = np.empty(0, dtype=np.int16)
        self._records = _Records(*(np.empty(0) for _ in range(4)))
        self._sorted = False
        self._closed = False

    def _read_bcf_header(self) -> tuple[list[str], bool]:
        vcf = self._open()
        try:
            names = list(vcf.samples)
            formats = {h.info().get("ID") for h in vcf.header_iter() if h.type == "FORMAT"}
            if "GT" not in formats:
                raise InputError(
                    "declares no GT FORMAT field, so there are no genotype calls to read "
                    "(plink2 would make every call missing)",
                    path=self.path,
                    hint="give the BCF with genotype calls (GT)",
                )
            try:
                has_record = next(iter(vcf), None) is not None
            except Exception as exc:  # cyvcf2 raises a bare Exception on htslib errors
                raise self._parse_error(0, exc) from exc
        finally:
            vcf.close()
        if not names:
            raise InputError(
                "has no samples", path=self.path, hint="give a BCF with genotype columns"
            )
        _check_sample_names(self.path, names, None)
        return names, has_record

    def _open(self, *, no_samples: bool = False) -> cyvcf2.VCF:
        # A text VCF's first pass skips the sample columns (6-15x faster). htslib
        # crashes when a BCF is opened with no samples; its records are unpacked
        # lazily anyway, so a BCF is always opened whole.
        kwargs: dict[str, Any] = {"lazy": True, "threads": 1}
        if no_samples and self.kind == "vcf":
            kwargs["samples"] = []
        try:
            return cyvcf2.VCF(str(self.path), **kwargs)
        except Exception as exc:  # cyvcf2 raises a bare Exception on htslib errors
            raise InputError(
                f"htslib cannot read the header ({exc})",
                path=self.path,
                hint="check the header with bcftools view -h; every ## line must be "
                "well formed and the file complete",
            ) from exc

    def _where(self, k: int) -> dict[str, Any]:
        """``path=`` and ``line=`` of record ``k`` (0-based) for an InputError."""
        if self.kind == "vcf":
            return {"path": self.path, "line": self._header_lines + k + 1}
        return {"path": f"{self.path} (record {k + 1})"}

    def _parse_error(self, k: int, exc: BaseException) -> InputError:
        return InputError(
            f"htslib cannot parse this record ({exc}; htslib printed why on standard error)",
            **self._where(k),
            hint="fix or remove that line: 8 fixed columns, FORMAT and one column per sample, "
            "tab-separated, POS a whole number; a bgzipped or BCF file cut short must be "
            "copied again",
        )

    @property
    def n_variants(self) -> int:
        """Data records in the file (the first pass runs on first use)."""
        return len(self.variants)

    @property
    def variants(self) -> Variants:
        """The variant table, from the first pass over the file (run on first use)."""
        if self._variants is None:
            self._variants = self._first_pass()
        return self._variants

    @property
    def n_records(self) -> int:
        """Data records in the file (fewer than :attr:`n_variants` when some are split)."""
        _ = self.variants
        return len(self._records.pos)

    @property
    def split_records(self) -> int:
        """Multi-allelic records (two ALTs or more), each split into one variant per ALT."""
        _ = self.variants
        return int((self._records.n_alts > 1).sum())

    @property
    def split_variants(self) -> int:
        """The variants those multi-allelic records were split into."""
        _ = self.variants
        n_alts = self._records.n_alts
        return int(n_alts[n_alts > 1].sum())

    @property
    def max_alts(self) -> int:
        """The most ALT alleles one record holds (1 when every record is biallelic)."""
        _ = self.variants
        return int(self._records.n_alts.max())

    def _first_pass(self) -> Variants:
        names = ("chrom", "pos", "id", "ref", "alt", "record", "allele")
        parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
        block: dict[str, list[Any]] = {n: [] for n in names}
        k = 0
        vcf = self._open(no_samples=True)
        try:
            records = iter(vcf)
            while True:
                try:
                    rec = next(records)
                except StopIteration:
                    break
                except Exception as exc:  # cyvcf2 raises a bare Exception on htslib errors
                    raise self._parse_error(k, exc) from exc
                chrom, pos, vid, ref, alts = rec.CHROM, rec.POS, rec.ID or ".", rec.REF, rec.ALT
                if len(alts) > 1 and (len(set(alts)) < len(alts) or ref in alts):
                    raise self._repeated_allele_error(k, chrom, pos, ref, alts)
                # one variant per ALT, in ALT order (a record without ALT gives one, ALT ".")
                for allele, alt in enumerate(alts or ["."], 1):
                    block["chrom"].append(chrom)
                    block["pos"].append(pos)
                    block["id"].append(vid)
                    block["ref"].append(ref)
                    block["alt"].append(alt)
                    block["record"].append(k)
                    block["allele"].append(allele)
                k += 1
                if len(block["pos"]) >= PASS_BLOCK_RECORDS:
                    _flush(block, parts)
        finally:
            vcf.close()
        _flush(block, parts)
        cat = {n: np.concatenate(parts[n]) for n in parts}
        self._record, self._allele = cat.pop("record"), cat.pop("allele")
        variants = Variants(**cat)
        self._records = _record_table(variants, self._record)
        self._sorted = _is_sorted(self._records.chrom, self._records.pos)
        return variants

    def _repeated_allele_error(
        self, k: int, chrom: str, pos: int, ref: str, alts: list[str]
    ) -> InputError:
        twice = next(a for a in alts if a == ref or alts.count(a) > 1)
        what = "is also the REF" if twice == ref else "is listed twice"
        return InputError(
            f"multi-allelic record {chrom}:{pos} REF {ref} ALT {','.join(alts)}: ALT {twice} "
            f"{what}, so splitting it gives two variants that harmonization (chromosome, "
            "position, REF, ALT) cannot tell apart",
            **self._where(k),
            hint="correct that record's ALT where the file was made (each allele once, none "
            "equal to REF), or remove the record",
        )

    def __enter__(self) -> VcfFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Refuse further reads; each iterator closes its own reader when done."""
        self._closed = True

    def __repr__(self) -> str:
        return f"VcfFile({str(self.path)!r}, n_samples={self.n_samples})"

    def iter_dosages(
        self,
        variant_idx: np.ndarray | None = None,
        *,
        sample_idx: np.ndarray | None = None,
        chunk_variants: int = DEFAULT_CHUNK_VARIANTS,
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(start, dosages)`` chunks of ALT allele counts.

        ``dosages`` is a fresh int8 array of shape ``(n_chunk, n_selected_samples)``
        holding 0/1/2 and ``-9`` for missing. ``start`` is the offset of the
        chunk's first row within ``variant_idx`` (any order) or within all
        variants when it is None. ``sample_idx`` are sorted, unique indices into
        the sample order (None keeps all samples).
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
        record_of, allele_of = self._record, self._allele
        cursor = _Cursor(self)
        # the last record decoded, for its other ALTs (in this chunk or the next: a record's
        # ALTs can straddle two chunks, and the reader stands past it by then)
        calls_of, calls = -1, None
        try:
            for start in range(0, total, chunk):
                if self._closed:
                    raise ValueError(f"{self!r} was closed during iteration")
                stop = min(start + chunk, total)
                idx = np.arange(start, stop) if variants is None else variants[start:stop]
                out = np.empty((stop - start, n_out), dtype=np.int8)
                prev_k, prev_row = -1, -1
                for row in np.argsort(idx, kind="stable").tolist():
                    k = int(idx[row])
                    if k == prev_k:
                        out[row] = out[prev_row]
                        continue
                    r = int(record_of[k])
                    if r != calls_of:
                        calls, calls_of = self._decode(cursor.record(r), r, subset), r
                    assert calls is not None
                    out[row] = calls.copies(int(allele_of[k]))
                    prev_k, prev_row = k, row
                yield start, out
        finally:
            cursor.close()

    def _decode(self, rec: Any, r: int, subset: np.ndarray | None) -> _Calls:
        """Record ``r``'s GT, checked, with plink2's rules (module docstring)."""
        try:
            genotype = rec.genotype
        except Exception as exc:  # cyvcf2: "couldn't get genotypes for variant"
            raise _no_gt_error(self.path, self._where(r)) from exc
        if genotype is None:
            raise _no_gt_error(self.path, self._where(r))
        fields = rec.FORMAT
        if fields[0] != "GT":
            raise InputError(
                f"GT is not the first FORMAT field ({':'.join(fields)}); the VCF standard puts "
                "it first, and plink2 then reads no calls from the record (all missing)",
                **self._where(r),
                hint="write that record with GT first in FORMAT and in every sample column",
            )
        calls: np.ndarray = genotype.array()  # (n_samples, max ploidy + 1 phase column), int16
        if subset is not None:
            calls = calls[subset]
        width = calls.shape[1] - 1
        if width > 2 and (calls[:, 2:width] != _VECTOR_END).any():
            sample = int(np.flatnonzero((calls[:, 2:width] != _VECTOR_END).any(axis=1))[0])
            name = str(self.samples.iid[sample if subset is None else subset[sample]])
            raise InputError(
                f"sample {name!r} has a call of more than two alleles (ploidy {width}); "
                "GenoFed reads haploid and diploid calls only (plink2 would make it missing)",
                **self._where(r),
                hint="write that call with at most two alleles (e.g. 0/1, or ./. for missing), "
                "or remove the record",
            )
        first = calls[:, 0]
        second = calls[:, 1] if width >= 2 else np.full_like(first, _VECTOR_END)
        n_alts = int(self._records.n_alts[r])
        if max(int(first.max(initial=0)), int(second.max(initial=0))) > n_alts:
            raise InputError(
                f"a GT allele index is above {n_alts}, but the record has {n_alts} ALT "
                f"allele{'s' if n_alts > 1 else ''}",
                **self._where(r),
                hint="fix the record's ALT or GT (bcftools norm -c x checks records)",
            )
        haploid = second == _VECTOR_END
        missing = (first < 0) | (second == -1)
        return _Calls(first, np.where(haploid, first, second), missing)

    def _check_variant_idx(self, variant_idx: np.ndarray) -> np.ndarray:
        return checked_variant_idx(variant_idx, self.n_variants, np.int64)

    def _check_sample_idx(self, sample_idx: np.ndarray) -> np.ndarray | None:
        return checked_sample_idx(sample_idx, self.n_samples, np.int64)

    def _index_path(self) -> Path | None:
        """The index htslib would load for this file, when it exists and can be used."""
        if not self.bgzf or not self._sorted:
            return None
        for candidate in fileset(self.path)[1:]:
            if self.kind == "vcf" or candidate.suffix == ".csi":  # a BCF has no tabix index
                return candidate
        return None


def _flush(block: dict[str, list[Any]], parts: dict[str, list[np.ndarray]]) -> None:
    if not block["pos"]:
        return
    for name, dtype in (("pos", np.int64), ("record", np.int64), ("allele", np.int16)):
        parts[name].append(np.array(block[name], dtype=dtype))
        block[name] = []
    for name in ("chrom", "id", "ref", "alt"):
        parts[name].append(np.array(block[name], dtype=str))
        block[name] = []


@dataclass(frozen=True)
class _Records:
    """One row per data record: what a record reached by the reader is checked against."""

    chrom: np.ndarray
    pos: np.ndarray
    ref: np.ndarray
    n_alts: np.ndarray  # ALT alleles of the record (1 for a record without ALT)


def _record_table(variants: Variants, record: np.ndarray) -> _Records:
    """The records the variants were split from (the variants' own arrays when none was)."""
    n = len(record)
    starts = np.flatnonzero(np.r_[True, record[1:] != record[:-1]]) if n else record
    n_alts = np.diff(np.r_[starts, n])
    if len(starts) == n:
        return _Records(variants.chrom, variants.pos, variants.ref, n_alts)
    return _Records(variants.chrom[starts], variants.pos[starts], variants.ref[starts], n_alts)


@dataclass(frozen=True)
class _Calls:
    """One record's decoded GT: allele indices per sample (haploid: both the same)."""

    first: np.ndarray
    second: np.ndarray
    missing: np.ndarray  # ``.``, ``./.`` and half-calls

    def copies(self, allele: int) -> np.ndarray:
        """Copies of ALT ``allele`` (1-based) per sample; REF and every other ALT count 0."""
        dosage = (self.first == allele).astype(np.int8) + (self.second == allele)
        dosage[self.missing] = MISSING
        out: np.ndarray = dosage.astype(np.int8)
        return out


def _is_sorted(chrom: np.ndarray, pos: np.ndarray) -> bool:
    """Each chromosome in one run and positions non-decreasing within it (an index works)."""
    if len(pos) < 2:
        return True
    change = np.flatnonzero(chrom[1:] != chrom[:-1]) + 1
    if len(set(chrom[np.r_[0, change]].tolist())) != len(change) + 1:
        return False
    same = chrom[1:] == chrom[:-1]
    return bool(np.all(pos[1:][same] >= pos[:-1][same]))


class _Cursor:
    """One open cyvcf2 reader and the index of the record it yields next."""

    def __init__(self, file: VcfFile) -> None:
        self.file = file
        _ = file.variants  # the first pass, which builds the record table
        self.table: _Records = file._records
        self.index = file._index_path()
        self.vcf: cyvcf2.VCF | None = None
        self.records: Iterator[Any] | None = None
        self.next_k = 0
        self.limit = -1  # last record the current iterator can reach
        self.pending: Any = None  # a record read ahead while seeking

    def close(self) -> None:
        if self.vcf is not None:
            self.vcf.close()
            self.vcf = None

    def record(self, k: int) -> Any:
        """Record ``k``; the reader then stands at ``k + 1``."""
        ahead = k - self.next_k
        behind = self.records is None or ahead < 0 or k > self.limit
        if behind or (self.index is not None and ahead > JUMP_RECORDS[self.file.kind]):
            self._move(k)
        while self.next_k < k:
            self._next()
        rec = self._next()
        pos, ref, n_alts = rec.POS, rec.REF, max(len(rec.ALT), 1)
        t = self.table
        if pos != t.pos[k] or ref != t.ref[k] or n_alts != t.n_alts[k]:
            raise InputError(
                f"record is {rec.CHROM}:{rec.POS} {rec.REF} with {n_alts} ALT, but the file "
                f"held {t.chrom[k]}:{t.pos[k]} {t.ref[k]} with {t.n_alts[k]} ALT there "
                "when it was opened (or its index belongs to another file)",
                **self.file._where(k),
                hint="do not change the file while the site runs; re-index it "
                "(bcftools index -f) if the index is older than the file",
            )
        return rec

    def _next(self) -> Any:
        k = self.next_k
        if self.pending is not None:
            rec, self.pending = self.pending, None
        else:
            assert self.records is not None
            try:
                rec = next(self.records)
            except StopIteration:
                rec = None
            except Exception as exc:  # cyvcf2 raises a bare Exception on htslib errors
                raise self.file._parse_error(k, exc) from exc
            if rec is None:
                raise InputError(
                    f"ends after {k} records, but it held {len(self.table.pos)} when it was opened",
                    path=self.file.path,
                    hint="do not change the file while the site runs",
                )
        self.next_k += 1
        return rec

    def _move(self, k: int) -> None:
        """Stand the reader at a record at or before ``k``: by the index, else at the start."""
        self.pending = None
        if self.index is None:
            self.close()
            self.vcf = self.file._open()
            self.records = iter(self.vcf)
            self.next_k, self.limit = 0, len(self.table.pos) - 1
            return
        if self.vcf is None:
            self.vcf = self.file._open()
        chrom, pos = self.table.chrom, self.table.pos
        name, at = str(chrom[k]), int(pos[k])
        first = k  # the first record of this chromosome at this position
        while first > 0 and chrom[first - 1] == name and pos[first - 1] == at:
            first -= 1
        last = k  # the chromosome's last record (a sorted file holds it in one run)
        run = np.flatnonzero(chrom[k:] != name)
        last = k + int(run[0]) - 1 if run.size else len(chrom) - 1
        region = f"{{{name}}}:{at}" if ":" in name else f"{name}:{at}"
        try:
            records = iter(self.vcf(region))
            while True:  # records overlapping the position but starting before it
                rec = next(records)
                start = rec.POS
                if start >= at:
                    break
        except StopIteration:
            rec = None
        except Exception as exc:  # cyvcf2 raises a bare Exception on htslib errors
            raise self.file._parse_error(first, exc) from exc
        if rec is None:
            raise InputError(
                f"its index finds no record at {name}:{at}, which the file holds",
                path=self.index,
                hint=f"re-index the file: bcftools index -f {self.file.path}",
            )
        self.records, self.pending = records, rec
        self.next_k, self.limit = first, last


__all__ = ["VCF_FID", "VcfFile", "fileset"]
