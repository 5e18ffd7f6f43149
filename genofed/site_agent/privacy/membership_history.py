"""What earlier releases over the same people added to the membership test.

The membership check (:mod:`genofed.site_agent.privacy.membership_release`)
bounds the LR test's power on one release. Releases add up: two studies that
each release half of a variant list over the same people give the attacker
the whole list. So the site keeps, per sample set (SHA-256 of the sorted
``FID<tab>IID`` of the people a release summed over), the LR terms of every
variant it released over that set (``state/membership.sqlite``), and a new
release over the same set is checked together with the variants released
before that it does not repeat (a repeated variant gives the same counts
again: nothing new). Variants are keyed by ID and their two alleles in sorted
order (the terms do not change when REF and ALT swap).

Recorded when the release is computed, before the reply leaves (under the
site's release lock); a release refused afterwards stays counted, which can
only make later checks stricter. Releases over different sets (a subset, an
overlapping cohort) are not combined: each set has its own account (ADR 0007).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

#: The store, under the site directory.
HISTORY_FILE = Path("state") / "membership.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS released (
    set_id TEXT NOT NULL,
    variant TEXT NOT NULL,
    shift REAL NOT NULL,
    var0 REAL NOT NULL,
    var1 REAL NOT NULL,
    exclusion REAL NOT NULL,
    PRIMARY KEY (set_id, variant)
);
"""


def set_id(people: Iterable[str]) -> str:
    """The account of a sample set: SHA-256 of its sorted person IDs."""
    return hashlib.sha256("\n".join(sorted(people)).encode()).hexdigest()


def variant_keys(ids: npt.ArrayLike, ref: npt.ArrayLike, alt: npt.ArrayLike) -> list[str]:
    """One key per variant: ID and the two alleles in sorted order."""
    return [
        f"{v}\t{min(str(r), str(a))}\t{max(str(r), str(a))}"
        for v, r, a in zip(np.asarray(ids), np.asarray(ref), np.asarray(alt), strict=True)
    ]


@dataclass(frozen=True)
class History:
    """The account of one sample set in one site's store."""

    path: Path
    set_id: str

    @classmethod
    def open(cls, site_dir: Path, people: Iterable[str]) -> History:
        path = Path(site_dir) / HISTORY_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        history = cls(path, set_id(people))
        with history._connect() as db:
            db.executescript(_SCHEMA)
        return history

    def _connect(self) -> closing[sqlite3.Connection]:
        db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        db.execute("PRAGMA synchronous=FULL")
        return closing(db)

    def earlier(self, keys: Sequence[str]) -> tuple[npt.NDArray[np.float64], int]:
        """Summed terms of the variants released before over this set and not in ``keys``.

        Reads the set's whole account (the limit keeps it small: about 0.13 n
        common variants at 0.1) and leaves out the asked ones in memory.
        """
        with self._connect() as db:
            rows = db.execute(
                "SELECT variant, shift, var0, var1, exclusion FROM released WHERE set_id = ?",
                (self.set_id,),
            ).fetchall()
        asked = set(keys)
        kept = [row[1:] for row in rows if row[0] not in asked]
        sums = np.asarray(kept, dtype=np.float64).reshape(-1, 4).sum(axis=0)
        return sums, len(kept)

    def record(self, keys: Sequence[str], rows: npt.NDArray[np.float64]) -> None:
        """Add the released variants' terms (``rows``: ``(V, 4)``, one per key), durably."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "INSERT OR REPLACE INTO released VALUES (?, ?, ?, ?, ?, ?)",
                (
                    (self.set_id, k, *(float(x) for x in row))
                    for k, row in zip(keys, rows, strict=True)
                ),
            )
            db.execute("COMMIT")


__all__ = ["HISTORY_FILE", "History", "set_id", "variant_keys"]
