"""Where a site keeps one logistic ``glm`` analysis's genotypes between Newton rounds.

Logistic regression takes several rounds (Newton, then Firth for a few
variants), and in deployment every round is a fresh ClientApp process, so
nothing survives in memory from one round to the next. Instead of decoding
the ``.bed`` again each round, the site decodes the analysis's variants once,
while it answers ``glm_stats``, into a compact file that each later round
reads only the still-active rows of.

What is kept on disk, at this site only (it is never released, and no reply
depends on whether it exists: a round without it decodes the ``.bed``)::

    state/glm/<study sha256>/<analysis id>/plan.npz      the variant plan (.bed rows, flips) and
                                                          the analysis samples (.fam rows)
    state/glm/<study sha256>/<analysis id>/genotypes.i8  study-ALT allele counts (int8, 0 at a
                                                          missing call), one row per plan variant,
                                                          the analysis samples only
    state/glm/<study sha256>/<analysis id>/missing.npz   where the missing calls are (CSR)

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

import numpy as np

from genofed.site_agent.audit import STATE_DIR

_log = logging.getLogger("genofed.site")

GLM_STATE = "glm"
PLAN_FILE = "plan.npz"
GENOTYPES_FILE = "genotypes.i8"
MISSING_FILE = "missing.npz"
#: Above this many separate runs of rows in a chunk, rows are gathered through a
#: memory map rather than read run by run (one system call each).
SCATTERED = 64


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


class CacheWriter:
    """Writes the cache chunk by chunk while ``glm_stats`` decodes the plan's variants.

    The cache only saves time: if the disk refuses it (full, read-only), the
    writer gives up quietly, removes what it wrote, and the rounds decode the
    ``.bed`` instead. Use :meth:`start`, which returns None in that case.
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
        directory.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        shutil.rmtree(directory, ignore_errors=True)
        self.tmp = directory.with_name(f".{directory.name}.partial")
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(mode=0o700)
        self.plan = (np.asarray(variant_index, np.int64), np.asarray(flip, np.bool_))
        self.samples = np.asarray(samples, np.int64)
        fd = os.open(self.tmp / GENOTYPES_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.fh = os.fdopen(fd, "wb")
        self.counts: list[np.ndarray] = []
        self.cols: list[np.ndarray] = []
        self.failed = False

    def add(self, codes: np.ndarray, miss_rows: np.ndarray, miss_cols: np.ndarray) -> None:
        """Append a chunk: int8 ``codes`` (c, n) and its missing calls (sorted by row)."""
        if self.failed:
            return
        try:
            self.fh.write(np.ascontiguousarray(codes, dtype=np.int8).tobytes())
        except OSError as exc:
            self._give_up(exc)
            return
        self.counts.append(np.bincount(miss_rows, minlength=len(codes)))
        self.cols.append(miss_cols.astype(np.int32))

    def close(self) -> None:
        """Finish the files and move them into place."""
        if self.failed:
            return
        try:
            self.fh.flush()
            os.fsync(self.fh.fileno())
            self.fh.close()
            counts = np.concatenate(self.counts) if self.counts else np.zeros(0, np.int64)
            ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
            cols = np.concatenate(self.cols) if self.cols else np.zeros(0, np.int32)
            np.savez(self.tmp / MISSING_FILE, ptr=ptr, cols=cols)
            np.savez(
                self.tmp / PLAN_FILE,
                variant_index=self.plan[0],
                flip=self.plan[1],
                samples=self.samples,
            )
            os.replace(self.tmp, self.final)
        except OSError as exc:
            self._give_up(exc)

    def abort(self) -> None:
        """Remove what was written (the request failed)."""
        self.failed = True
        with contextlib.suppress(OSError):
            self.fh.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _give_up(self, exc: OSError) -> None:
        _log.warning("glm genotype cache not written (%s); rounds will decode the .bed", exc)
        self.abort()


@dataclass(frozen=True)
class GenotypeCache:
    """An open cache; :meth:`rows_for` maps a request onto it."""

    directory: Path
    variant_index: np.ndarray
    flip: np.ndarray
    n_samples: int
    ptr: np.ndarray
    cols: np.ndarray

    @classmethod
    def open(cls, directory: Path, samples: np.ndarray) -> GenotypeCache | None:
        """The cache in ``directory`` if it exists and was made for ``samples``, else None."""
        try:
            with np.load(directory / PLAN_FILE) as plan:
                variant_index, flip, cached = plan["variant_index"], plan["flip"], plan["samples"]
            with np.load(directory / MISSING_FILE) as miss:
                ptr, cols = miss["ptr"], miss["cols"]
            size = (directory / GENOTYPES_FILE).stat().st_size
        except (OSError, KeyError, ValueError):
            return None
        if not np.array_equal(cached, samples) or size != len(variant_index) * len(samples):
            return None
        return cls(directory, variant_index, flip, len(samples), ptr, cols)

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
        """Yield ``(start, codes, miss_rows, miss_cols)`` for ``rows`` in chunks of ``chunk``."""
        n = self.n_samples
        path = self.directory / GENOTYPES_FILE
        shape = (len(self.variant_index), n)
        fd = os.open(path, os.O_RDONLY)
        try:
            for start in range(0, len(rows), chunk):
                part = rows[start : start + chunk]
                breaks = np.flatnonzero(np.diff(part) != 1) + 1
                if len(breaks) > SCATTERED:  # few rows here and there (Firth): gather
                    mapped = np.memmap(path, dtype=np.int8, mode="r", shape=shape)
                    codes = np.asarray(mapped[part])
                    del mapped  # unmapped: its pages leave this process's RSS
                else:  # runs of rows (Newton): read them, so that RSS stays one chunk
                    codes = np.empty((len(part), n), dtype=np.int8)
                    for a, b in zip(
                        np.concatenate([[0], breaks]),
                        np.concatenate([breaks, [len(part)]]),
                        strict=True,
                    ):
                        view = memoryview(codes[a:b].reshape(-1))  # type: ignore[arg-type]
                        if os.preadv(fd, [view], int(part[a]) * n) != (b - a) * n:
                            raise OSError(f"{path} is truncated")
                first, lens = self.ptr[part], self.ptr[part + 1] - self.ptr[part]
                miss_rows = np.repeat(np.arange(len(part)), lens)
                within = np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens)
                miss_cols = self.cols[np.repeat(first, lens) + within].astype(np.intp)
                yield start, codes, miss_rows, miss_cols
        finally:
            os.close(fd)


__all__ = [
    "CacheWriter",
    "GenotypeCache",
    "cache_dir",
    "forget_others",
]
