"""How many variant-space directions a site's PCA releases have used, per cohort snapshot.

A ``pca_iterate`` step multiplies the coordinator's block of ``l`` variant-space
directions by the site's standardized genotypes and releases ``A^T A w`` for
each (``pca_finish``: ``k`` more). Under secure aggregation the coordinator sees
only the sum over sites, but the sum over a set of directions it chose still
describes the pooled variant Gram matrix along them; with as many directions as
the cohort has samples, the whole of it. A site's policy caps the directions
it releases per cohort snapshot over all runs (``pca_max_directions``); this
module keeps the count, in ``state/pca_directions.sqlite``.

The release path (``site_agent/release.py``) checks the cap before the answer
is released and charges it with the release, in one SQLite transaction that
re-checks the cap, so two concurrent requests cannot both pass it; a refused
or failed release charges nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from genofed.common.errors import PolicyRefusal
from genofed.common.reasons import PCA_DIRECTIONS_EXCEEDED

DIRECTIONS_FILE = Path("state") / "pca_directions.sqlite"
#: The snapshot key of a site that answers from its live files (guard off).
LIVE = "live"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS directions (
    snapshot TEXT PRIMARY KEY,
    used INTEGER NOT NULL
);
"""


@contextmanager
def _connect(site_dir: Path) -> Iterator[sqlite3.Connection]:
    path = site_dir / DIRECTIONS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(path, isolation_level=None, timeout=30)) as db:
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(_SCHEMA)
        yield db


def _used(db: sqlite3.Connection, snapshot: str) -> int:
    row = db.execute("SELECT used FROM directions WHERE snapshot = ?", (snapshot,)).fetchone()
    return int(row[0]) if row else 0


def used(site_dir: Path, snapshot: str) -> int:
    """Directions released so far from ``snapshot``."""
    with _connect(site_dir) as db:
        return _used(db, snapshot)


def _refuse_over(before: int, asked: int, cap: int) -> None:
    if before + asked > cap:
        raise PolicyRefusal(
            PCA_DIRECTIONS_EXCEEDED,
            f"this pca step would release {asked} more variant-space directions of this "
            f"site's cohort snapshot, beyond the {cap} its policy allows over all runs "
            f"({before} used); ask the site to raise pca_max_directions in policy.toml, "
            "or run the PCA with fewer components (n_pcs) or on a new cohort snapshot",
        )


def check(site_dir: Path, snapshot: str, asked: int, cap: int) -> None:
    """Raise ``PCA_DIRECTIONS_EXCEEDED`` if ``asked`` more directions would pass ``cap``."""
    _refuse_over(used(site_dir, snapshot), asked, cap)


def charge(site_dir: Path, snapshot: str, asked: int, cap: int) -> int:
    """Record ``asked`` directions released, or raise and record nothing; the new total."""
    with _connect(site_dir) as db:
        db.execute("BEGIN IMMEDIATE")
        try:
            before = _used(db, snapshot)
            _refuse_over(before, asked, cap)
            db.execute(
                "INSERT INTO directions (snapshot, used) VALUES (?, ?) "
                "ON CONFLICT(snapshot) DO UPDATE SET used = excluded.used",
                (snapshot, before + asked),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    return before + asked


__all__ = [
    "DIRECTIONS_FILE",
    "LIVE",
    "charge",
    "check",
    "used",
]
