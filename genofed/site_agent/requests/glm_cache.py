"""Where a site keeps one logistic ``glm`` analysis's genotypes between Newton rounds.

Logistic regression takes several rounds (Newton, then Firth for a few
variants), and in deployment every round is a fresh ClientApp process, so
nothing survives in memory from one round to the next. Instead of decoding
the ``.bed`` again each round, the site decodes the analysis's variants once,
while it answers ``glm_stats``, into compact files that each later round
reads only the still-active rows of.

What is kept on disk, at this site only (it is never released, and no reply
depends on whether it exists: a round without it decodes the ``.bed``)::

    state/glm/<study sha256>/<analysis id>/format             the cache format (FORMAT)
    state/glm/<study sha256>/<analysis id>/variant_index.npy  the variant plan: .bed rows,
    state/glm/<study sha256>/<analysis id>/flip.npy           and allele flips
    state/glm/<study sha256>/<analysis id>/samples.npy        the analysis samples (.fam rows)
    state/glm/<study sha256>/<analysis id>/genotypes.i8       study-ALT allele counts (int8, 0 at a
                                                               missing call), one row per plan
                                                               variant, the analysis samples only
    state/glm/<study sha256>/<analysis id>/miss_ptr.i64       where the missing calls are (CSR:
    state/glm/<study sha256>/<analysis id>/miss_cols.i32      row offsets and sample columns)

The ``.i8``, ``.i64`` and ``.i32`` files are headerless little-endian arrays,
written as ``glm_stats`` decodes each chunk (so writing holds one chunk in
memory) and read back by a round for just the rows it needs, one ``pread``
per run of consecutive rows, so that no round holds more than a chunk. (Not
through a memory map: gathering 966 rows here and there from a 430 MB
``genotypes.i8`` through one raised the peak RSS by 350 MiB, as the kernel
maps whole cached folios around each row; ``pread`` row by row: 4 MiB, and
faster.) A directory without the current ``format`` (an older cache) is
not read.

``genotypes.i8`` holds one byte per genotype of the analysis (plan variants x
analysis samples): the same individual-level data as the site's ``.bed``
(four times its size), under the site's ``state/`` directory (mode 0700,
files 0600). How long: from the analysis's ``glm_stats`` request until this
site serves a ``glm`` request of any other analysis or study (the
coordinator runs a study's analyses one at a time, so that request means
the earlier analysis is over), or until the privacy officer deletes
``state/glm/``. It is written to a temporary directory and renamed, so a
crash leaves no half-written cache that a round could read.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from genofed.site_agent.audit.log import STATE_DIR

_log = logging.getLogger("genofed.site")

GLM_STATE = "glm"
#: Contents of the ``format`` file; a cache without exactly this is ignored.
FORMAT = b"genofed glm genotype cache 2\n"
FORMAT_FILE = "format"
VARIANT_INDEX_FILE = "variant_index.npy"
FLIP_FILE = "flip.npy"
SAMPLES_FILE = "samples.npy"
GENOTYPES_FILE = "genotypes.i8"
MISS_PTR_FILE = "miss_ptr.i64"
MISS_COLS_FILE = "miss_cols.i32"
_PTR = np.dtype("<i8")
_COL = np.dtype("<i4")
#: Genotypes per chunk a round reads from the cache (bytes of its int8 block).
CHUNK_GENOTYPES = 1 << 22


def chunk_rows(n_samples: int) -> int:
    """Variants per chunk so that a chunk holds about :data:`CHUNK_GENOTYPES` genotypes."""
    return max(1, CHUNK_GENOTYPES // max(n_samples, 1))


def cache_dir(site_dir: Path, study_sha256: str, analysis_id: str) -> Path:
    """The cache directory of one glm analysis of one study."""
    return Path(os.path.abspath(site_dir)) / STATE_DIR / GLM_STATE / study_sha256 / analysis_id


def forget_others(site_dir: Path, study_sha256: str, analysis_id: str) -> None:
    """Remove every glm cache but the one of ``(study_sha256, analysis_id)``."""
    root = Path(os.path.abspath(site_dir)) / STATE_DIR / GLM_STATE
    if not root.is_dir():
        return
    for study in root.iterdir():
        if study.name != study_sha256:
            shutil.rmtree(study, ignore_errors=True)
            continue
        for analysis in study.iterdir():
            if analysis.name != analysis_id:
                shutil.rmtree(analysis, ignore_errors=True)


def _create(path: Path) -> BinaryIO:
    """A new file, mode 0600, open for writing."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")


def _bytes(array: np.ndarray) -> memoryview:
    return memoryview(np.ascontiguousarray(array).reshape(-1).view(np.uint8))


class CacheWriter:
    """Writes the cache chunk by chunk while ``glm_stats`` decodes the plan's variants.

    The cache only saves time: if the disk refuses it (full, read-only), the
    writer gives up quietly, removes what it wrote, and the rounds decode the
    ``.bed`` instead. Use :meth:`start`, which returns None in that case.
    Each chunk goes straight to the files: the writer holds no more than it
    is given.
    """

    @classmethod
    def start(
        cls, directory: Path, variant_index: np.ndarray, flip: np.ndarray, samples: np.ndarray
    ) -> CacheWriter | None:
        """A writer for ``directory``, or None where the cache cannot be written."""
        try:
            return cls(directory, variant_index, flip, samples)
        except OSError as exc:
            _log.warning(
                "no glm genotype cache in %s (%s); rounds will decode the .bed", directory, exc
            )
            return None

    def __init__(
        self, directory: Path, variant_index: np.ndarray, flip: np.ndarray, samples: np.ndarray
    ) -> None:
        self.final = directory
        self.files: list[BinaryIO] = []
        self.failed = False
        directory.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        shutil.rmtree(directory, ignore_errors=True)
        self.tmp = directory.with_name(f".{directory.name}.partial")
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(mode=0o700)
        try:
            for name, array in (
                (VARIANT_INDEX_FILE, np.asarray(variant_index, np.int64)),
                (FLIP_FILE, np.asarray(flip, np.bool_)),
                (SAMPLES_FILE, np.asarray(samples, np.int64)),
            ):
                with _create(self.tmp / name) as fh:
                    np.save(fh, array, allow_pickle=False)
            self.codes = self._open(GENOTYPES_FILE)
            self.ptr = self._open(MISS_PTR_FILE)
            self.cols = self._open(MISS_COLS_FILE)
            self.ptr.write(_bytes(np.zeros(1, _PTR)))
        except BaseException:
            self.abort()
            raise
        self.n_missing = 0

    def _open(self, name: str) -> BinaryIO:
        fh = _create(self.tmp / name)
        self.files.append(fh)
        return fh

    def add(self, codes: np.ndarray, miss_rows: np.ndarray, miss_cols: np.ndarray) -> None:
        """Append a chunk: int8 ``codes`` (c, n) and its missing calls (sorted by row)."""
        if self.failed:
            return
        counts = np.bincount(np.asarray(miss_rows, np.intp), minlength=len(codes))
        ptr = self.n_missing + np.cumsum(counts, dtype=np.int64)
        try:
            self.codes.write(_bytes(np.asarray(codes, np.int8)))
            self.ptr.write(_bytes(ptr.astype(_PTR)))
            self.cols.write(_bytes(np.asarray(miss_cols).astype(_COL)))
        except OSError as exc:
            self._give_up(exc)
            return
        self.n_missing = int(ptr[-1]) if len(ptr) else self.n_missing

    def close(self) -> None:
        """Finish the files and move them into place."""
        if self.failed:
            return
        try:
            for fh in self.files:
                fh.flush()
                os.fsync(fh.fileno())
                fh.close()
            with _create(self.tmp / FORMAT_FILE) as fh:
                fh.write(FORMAT)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(self.tmp, self.final)
        except OSError as exc:
            self._give_up(exc)

    def abort(self) -> None:
        """Remove what was written (the request failed)."""
        self.failed = True
        for fh in self.files:
            with contextlib.suppress(OSError):
                fh.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _give_up(self, exc: OSError) -> None:
        _log.warning("glm genotype cache not written (%s); rounds will decode the .bed", exc)
        self.abort()


def _runs(part: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(first, stop)`` positions in ``part`` of its runs of consecutive rows."""
    breaks = np.flatnonzero(np.diff(part) != 1) + 1
    return np.concatenate([[0], breaks]), np.concatenate([breaks, [len(part)]])


def _pread(fd: int, view: memoryview, offset: int, path: Path) -> None:
    """Fill the byte buffer ``view`` from ``fd`` at byte ``offset``."""
    done = 0
    while done < len(view):
        got = os.preadv(fd, [view[done:]], offset + done)
        if got <= 0:
            raise OSError(f"{path} is truncated")
        done += got


@dataclass(frozen=True)
class GenotypeCache:
    """An open cache; :meth:`rows_for` maps a request onto it, :meth:`chunks` reads it."""

    directory: Path
    variant_index: np.ndarray
    flip: np.ndarray
    n_samples: int
    ptr: np.ndarray  # (V + 1,) offsets into miss_cols.i32; the columns stay on disk

    @classmethod
    def open(cls, directory: Path, samples: np.ndarray) -> GenotypeCache | None:
        """The cache in ``directory`` if it is complete and was made for ``samples``, else None."""
        try:
            if (directory / FORMAT_FILE).read_bytes() != FORMAT:
                return None
            cached = np.load(directory / SAMPLES_FILE, allow_pickle=False)
            if not np.array_equal(cached, samples):
                return None
            variant_index = np.load(directory / VARIANT_INDEX_FILE, allow_pickle=False)
            flip = np.load(directory / FLIP_FILE, allow_pickle=False)
            ptr = np.fromfile(directory / MISS_PTR_FILE, dtype=_PTR)
            v = len(variant_index)
            sizes = (
                (directory / GENOTYPES_FILE).stat().st_size,
                (directory / MISS_COLS_FILE).stat().st_size,
            )
        except (OSError, ValueError, EOFError):
            return None
        if (
            variant_index.ndim != 1
            or flip.shape != variant_index.shape
            or flip.dtype != np.bool_
            or not np.issubdtype(variant_index.dtype, np.integer)
            or ptr.shape != (v + 1,)
            or ptr[0] != 0
            or (np.diff(ptr) < 0).any()
            or sizes != (v * len(samples), int(ptr[-1]) * _COL.itemsize)
        ):
            return None
        return cls(directory, variant_index, flip, len(samples), ptr)

    def rows_for(self, variant_index: np.ndarray, flip: np.ndarray) -> np.ndarray | None:
        """Cache rows of the requested variants, or None if any is not cached as asked."""
        if not len(self.variant_index) or not len(variant_index):
            return None if len(variant_index) else np.zeros(0, np.int64)
        top = int(max(self.variant_index.max(), np.max(variant_index))) + 1
        row_of = np.full(top, -1, dtype=np.int64)
        row_of[self.variant_index] = np.arange(len(self.variant_index))
        rows = row_of[np.asarray(variant_index, np.int64)]
        if (rows < 0).any() or not np.array_equal(self.flip[rows], flip):
            return None
        return rows

    def chunks(
        self, rows: np.ndarray, chunk: int
    ) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
        """Yield ``(start, codes, miss_rows, miss_cols)`` for ``rows`` in chunks of ``chunk``.

        Reads only those rows, one ``pread`` per run of consecutive rows (a
        few long runs in Newton rounds, single rows in Firth rounds), so that
        memory holds about one chunk.
        """
        n = self.n_samples
        geno_path = self.directory / GENOTYPES_FILE
        cols_path = self.directory / MISS_COLS_FILE
        geno = os.open(geno_path, os.O_RDONLY)
        try:
            cols = os.open(cols_path, os.O_RDONLY)
        except OSError:
            os.close(geno)
            raise
        try:
            for start in range(0, len(rows), chunk):
                part = np.asarray(rows[start : start + chunk], np.int64)
                lens = self.ptr[part + 1] - self.ptr[part]
                codes = np.empty((len(part), n), dtype=np.int8)
                raw = np.empty(int(lens.sum()), dtype=_COL)
                code_bytes, col_bytes = _bytes(codes), _bytes(raw)
                first, stop = _runs(part)
                size = _COL.itemsize
                at = 0
                for a, b, row, c0, c1 in zip(  # plain ints: one system call per run
                    (first * n).tolist(),
                    (stop * n).tolist(),
                    (part[first] * n).tolist(),
                    (self.ptr[part[first]] * size).tolist(),
                    (self.ptr[part[stop - 1] + 1] * size).tolist(),
                    strict=True,
                ):
                    view = code_bytes[a:b]
                    if os.preadv(geno, [view], row) != b - a:
                        _pread(geno, view, row, geno_path)  # a short read: finish or fail
                    if c1 > c0:
                        view = col_bytes[at : at + c1 - c0]
                        if os.preadv(cols, [view], c0) != c1 - c0:
                            _pread(cols, view, c0, cols_path)
                        at += c1 - c0
                miss_cols = raw.astype(np.intp)
                miss_rows = np.repeat(np.arange(len(part)), lens)
                yield start, codes, miss_rows, miss_cols
        finally:
            os.close(geno)
            os.close(cols)


__all__ = [
    "CHUNK_GENOTYPES",
    "CacheWriter",
    "GenotypeCache",
    "cache_dir",
    "chunk_rows",
    "forget_others",
]
