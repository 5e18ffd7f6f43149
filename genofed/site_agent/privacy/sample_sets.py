"""Durable record of the sample sets every release summed over, per data column.

One SQLite database per site, next to the privacy ledger. The release guard
(:mod:`genofed.site_agent.privacy.disclosure`) needs every set ever released
for a column; this module keeps them:

* ``persons``: the person registry. Each person ID string (for example
  ``"FID\\tIID"``) gets a stable integer index, in order of first sight, never
  reused (rows are never deleted). Sets are bit arrays over this index space,
  which is global, so sets from different cohort snapshots compare directly.
* ``sets``: one row per distinct set, keyed by its
  :func:`~genofed.site_agent.privacy.disclosure.fingerprint` (which covers the
  registry size when it was recorded), with its size and packed bits.
* ``releases``: one row per release (study, analysis, request kind, step,
  round, cohort snapshot, time given by the caller).
* ``release_sets``: which sets a release summed over, for which column.
* ``family_snapshots``: per column, the :class:`SetFamily` those sets make
  (its basis and inverses, :meth:`SetFamily.state` as one ``np.savez``
  BLOB), with the SHA-256 of the column's sorted set fingerprints it
  reflects and the newest release then. Rebuilding a family by replaying
  its sets costs ``O(rho^3)`` (55 s for 4,000 sets at 10,000 persons);
  resuming its snapshot costs reading it (1.2 s; ``bench/disclosure.py``).
  The key is the digest rather than the release id alone: a rerun adds a
  release but no set, and leaves the snapshot current. A snapshot whose digest differs
  from the column's recorded sets (missing, older, or from a writer that
  did not pass the families) is stale: the family is rebuilt by replay,
  which is always correct, and the snapshot replaced. Persons registered
  after a snapshot was taken are in no set (:meth:`SetFamily.from_state`).

:meth:`SampleSetStore.guard_and_record` checks and records in one
``BEGIN IMMEDIATE`` transaction, like :meth:`Ledger.charge`: two processes
serving the same site cannot both pass releases that are only unsafe
together, a refusal records nothing, and a crash before the commit records
nothing (and, since the reply is built only after the commit, nothing left).
A crash after the commit leaves sets recorded for a reply that never left:
the guard then over-counts what was released, never under-counts it. The
family snapshots are written in the same transaction as the sets they
reflect, so a crash leaves both or neither; and a snapshot is only written
after checking that its sets are exactly the column's recorded ones.
Registering persons (:meth:`SampleSetStore.person_indexes`) is its own
transaction: either every new ID of a call is registered or none is.
"""

from __future__ import annotations

import hashlib
import io
import logging
import sqlite3
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import numpy as np
from numpy.typing import NDArray

from genofed.common.errors import IntegrityError
from genofed.site_agent.privacy.disclosure import PASS, SetFamily, Verdict, fingerprint

SAMPLE_SETS_FILE = "sample_sets.sqlite"

log = logging.getLogger("genofed.site")
#: :func:`_sets_digest` of a column with no recorded set (its family is empty).
_NO_SETS = hashlib.sha256(b"").hexdigest()

_SCHEMA = """
CREATE TABLE IF NOT EXISTS persons (
    idx INTEGER PRIMARY KEY,
    person_id TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS sets (
    fingerprint TEXT PRIMARY KEY,
    n_persons INTEGER NOT NULL,
    size INTEGER NOT NULL,
    bits BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS releases (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    study_sha256 TEXT NOT NULL,
    analysis_id TEXT NOT NULL,
    request_kind TEXT NOT NULL,
    step INTEGER NOT NULL,
    round INTEGER NOT NULL,
    snapshot_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS release_sets (
    release_id INTEGER NOT NULL REFERENCES releases (id),
    column_name TEXT NOT NULL,
    fingerprint TEXT NOT NULL REFERENCES sets (fingerprint),
    PRIMARY KEY (release_id, column_name, fingerprint)
);
CREATE INDEX IF NOT EXISTS release_sets_by_column ON release_sets (column_name, fingerprint);
CREATE TABLE IF NOT EXISTS family_snapshots (
    column_name TEXT PRIMARY KEY,
    release_id INTEGER NOT NULL,
    sets_sha256 TEXT NOT NULL,
    n_sets INTEGER NOT NULL,
    n_persons INTEGER NOT NULL,
    state BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS guard_refusals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    analyst TEXT NOT NULL,
    study_sha256 TEXT NOT NULL,
    analysis_id TEXT NOT NULL,
    reason TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class ReleaseKey:
    """Which release this is; ``time`` is an ISO 8601 string chosen by the caller."""

    study_sha256: str
    analysis_id: str
    request_kind: str
    step: int
    round: int
    snapshot_id: str
    time: str


@dataclass(frozen=True)
class GuardOutcome:
    """The guard's verdict and, per column, the fingerprints of the sets used.

    ``release_id`` is the recorded release, ``None`` when refused (nothing was
    stored). The fingerprints are given either way, for the audit entry.
    """

    verdict: Verdict
    release_id: int | None
    fingerprints: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.verdict.ok


class SampleSetStore:
    """A site's sample-set record (see the module docstring). Use :meth:`open`."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    @classmethod
    def open(
        cls, path: Path, *, factory: type[sqlite3.Connection] = sqlite3.Connection
    ) -> SampleSetStore:
        """Open (creating if needed) the store at ``path``.

        ``factory`` is the connection class; tests pass a subclass that fails
        after a chosen statement to simulate a crash.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, isolation_level=None, timeout=30, factory=factory)
        try:
            db.execute("PRAGMA journal_mode=DELETE")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            with _transaction(db):
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
        except BaseException:
            db.close()
            raise
        return cls(db)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SampleSetStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- person registry ----------------------------------------------------

    def n_sets(self, column: str) -> int:
        """Distinct sets recorded for ``column``."""
        (count,) = self._db.execute(
            "SELECT COUNT(DISTINCT fingerprint) FROM release_sets WHERE column_name = ?", (column,)
        ).fetchone()
        return int(count)

    def n_persons(self) -> int:
        """Persons registered so far: every index is below this."""
        return _n_persons(self._db)

    def person_indexes(self, ids: Sequence[str]) -> NDArray[np.int64]:
        """The stable index of each person ID, registering new ones in order."""
        with _transaction(self._db):
            known = _lookup(self._db, ids)
            new = [pid for pid in dict.fromkeys(ids) if pid not in known]
            start = _n_persons(self._db)
            for offset, pid in enumerate(new):
                self._db.execute(
                    "INSERT INTO persons (idx, person_id) VALUES (?, ?)", (start + offset, pid)
                )
                known[pid] = start + offset
        return np.array([known[pid] for pid in ids], dtype=np.int64)

    # -- sets ---------------------------------------------------------------

    def family(self, column: str, min_cell: int) -> SetFamily:
        """Every set recorded for ``column`` (all snapshots), over the current registry.

        Resumed from its snapshot when that is current; otherwise rebuilt by
        replaying the sets, and the snapshot saved for the next request.
        """
        with _transaction(self._db, "BEGIN"):
            n = _n_persons(self._db)
            digest = _sets_digest(self._db, column)
            resumed = _resume(self._db, column, min_cell, n, digest)
            sets = _family_sets(self._db, column, n) if resumed is None else []
        if resumed is not None:
            return resumed
        # built after the read transaction ends: a large family takes seconds to
        # build, and writers must not wait for it
        family = SetFamily(n, min_cell, sets)
        if family.n_sets:
            try:
                with _transaction(self._db):
                    if _sets_digest(self._db, column) == digest:  # nothing recorded meanwhile
                        _save(self._db, column, family, self.last_release_id())
            except sqlite3.Error as exc:  # e.g. locked or full: only the next load is slower
                log.warning("the rebuilt %s family was not saved (%s)", column, exc)
        return family

    def snapshot_release(self, column: str) -> int | None:
        """The newest release ``column``'s snapshot reflects, None when it has none."""
        row = self._db.execute(
            "SELECT release_id FROM family_snapshots WHERE column_name = ?", (column,)
        ).fetchone()
        return None if row is None else int(row[0])

    def guard_and_record(
        self,
        release: ReleaseKey,
        uses: Mapping[str, Sequence[NDArray[np.bool_]]],
        min_cell: int,
    ) -> GuardOutcome:
        """Check every column's sets against its family; record all of them, or nothing.

        ``uses`` maps a data column to the sets this release sums it over, as
        bool arrays over the registry (a shorter array means the later persons
        are not members). One transaction: families are loaded, each column is
        checked, and only if every column passes are the sets and the release
        stored and committed. Returns the first failing verdict, or ok.
        """
        with _transaction(self._db):
            n = _n_persons(self._db)
            padded = {column: [_pad(s, n) for s in sets] for column, sets in uses.items()}
            prints = {
                column: tuple(dict.fromkeys(fingerprint(s) for s in sets))
                for column, sets in padded.items()
            }
            families = {}
            for column, sets in padded.items():
                family = _family(self._db, column, min_cell, n)
                verdict = family.admit(sets)
                if not verdict.ok:
                    return GuardOutcome(verdict, None, prints)
                families[column] = family
            release_id = self._insert(release, padded)
            self._save_families(families, release_id)
        return GuardOutcome(PASS, release_id, prints)

    def last_release_id(self) -> int:
        """The newest recorded release (0: none); :meth:`record_if_unchanged` compares it."""
        (last,) = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM releases").fetchone()
        return int(last)

    def record_if_unchanged(
        self,
        release: ReleaseKey,
        uses: Mapping[str, Sequence[NDArray[np.bool_]]],
        since: int,
        families: Mapping[str, SetFamily] | None = None,
    ) -> int | None:
        """Record sets the caller already checked against the families as of release ``since``.

        One ``BEGIN IMMEDIATE`` transaction: if a release newer than ``since`` was
        recorded meanwhile, nothing is stored and None is returned (the caller
        checks again against the new families); otherwise the sets and the
        release are stored and its id returned. ``families`` are the caller's
        families with this release's sets added; each is saved as its column's
        snapshot in the same transaction (after checking that it holds exactly
        the column's recorded sets; one that does not is not saved, and the
        next request rebuilds that family).
        """
        with _transaction(self._db):
            if self.last_release_id() != since:
                return None
            n = _n_persons(self._db)
            padded = {column: [_pad(s, n) for s in sets] for column, sets in uses.items()}
            release_id = self._insert(release, padded)
            self._save_families(families or {}, release_id)
            return release_id

    def _save_families(self, families: Mapping[str, SetFamily], release_id: int) -> None:
        """Inside the recording transaction: save each family whose snapshot is not current."""
        n = _n_persons(self._db)
        for column, given in families.items():
            family = given.widened(n)  # persons registered since the caller's request began
            digest = _sets_digest(self._db, column)
            row = self._db.execute(
                "SELECT sets_sha256 FROM family_snapshots WHERE column_name = ?", (column,)
            ).fetchone()
            if row is not None and row[0] == digest:
                continue  # no new set for this column (a rerun)
            if _holds_recorded_sets(self._db, column, family):
                _save(self._db, column, family, release_id)
            else:
                log.warning(
                    "the %s family given with release %d does not hold exactly the recorded "
                    "sets; not saved, the next request rebuilds it",
                    column,
                    release_id,
                )

    def _insert(
        self, release: ReleaseKey, padded: Mapping[str, Sequence[NDArray[np.bool_]]]
    ) -> int:
        n = _n_persons(self._db)
        for sets in padded.values():
            for s in sets:
                self._db.execute(
                    "INSERT OR IGNORE INTO sets (fingerprint, n_persons, size, bits) "
                    "VALUES (?, ?, ?, ?)",
                    (fingerprint(s), n, int(s.sum()), np.packbits(s).tobytes()),
                )
        cursor = self._db.execute(
            "INSERT INTO releases (time, study_sha256, analysis_id, request_kind, step, "
            "round, snapshot_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                release.time,
                release.study_sha256,
                release.analysis_id,
                release.request_kind,
                release.step,
                release.round,
                release.snapshot_id,
            ),
        )
        release_id = cursor.lastrowid
        assert release_id is not None
        for column, sets in padded.items():
            for fp in dict.fromkeys(fingerprint(s) for s in sets):
                self._db.execute(
                    "INSERT INTO release_sets (release_id, column_name, fingerprint) "
                    "VALUES (?, ?, ?)",
                    (release_id, column, fp),
                )
        return release_id

    def record_refusal(
        self, *, time: str, analyst: str, study_sha256: str, analysis_id: str, reason: str
    ) -> None:
        """Remember that the guard refused a release of ``analyst``'s study."""
        with _transaction(self._db):
            self._db.execute(
                "INSERT INTO guard_refusals (time, analyst, study_sha256, analysis_id, reason) "
                "VALUES (?, ?, ?, ?, ?)",
                (time, analyst, study_sha256, analysis_id, reason),
            )

    def refusals_of(self, analyst: str) -> list[tuple[str, str, str]]:
        """``(time, study_sha256, analysis_id)`` of each guard refusal of ``analyst``'s studies."""
        rows = self._db.execute(
            "SELECT time, study_sha256, analysis_id FROM guard_refusals WHERE analyst = ? "
            "ORDER BY id",
            (analyst,),
        ).fetchall()
        return [(str(t), str(h), str(a)) for t, h, a in rows]

    def fingerprints_of(self, release_id: int) -> dict[str, tuple[str, ...]]:
        """Per column, the fingerprints of the sets a recorded release summed over."""
        rows = self._db.execute(
            "SELECT column_name, fingerprint FROM release_sets WHERE release_id = ? ORDER BY rowid",
            (release_id,),
        ).fetchall()
        out: dict[str, list[str]] = {}
        for column, fp in rows:
            out.setdefault(str(column), []).append(str(fp))
        return {column: tuple(fps) for column, fps in out.items()}


@contextmanager
def _transaction(db: sqlite3.Connection, begin: str = "BEGIN IMMEDIATE") -> Iterator[None]:
    db.execute(begin)
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:  # also when COMMIT itself failed (e.g. the database is locked)
            db.execute("ROLLBACK")
        raise


def _n_persons(db: sqlite3.Connection) -> int:
    (count,) = db.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM persons").fetchone()
    return int(count)


def _lookup(db: sqlite3.Connection, ids: Sequence[str]) -> dict[str, int]:
    known: dict[str, int] = {}
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for pid, idx in db.execute(
            f"SELECT person_id, idx FROM persons WHERE person_id IN ({marks})", chunk
        ):
            known[str(pid)] = int(idx)
    return known


def _pad(members: NDArray[np.bool_], n: int) -> NDArray[np.bool_]:
    arr = np.asarray(members)
    if arr.dtype != np.bool_ or arr.ndim != 1 or len(arr) > n:
        raise ValueError(
            f"a sample set must be a 1-D bool array of at most {n} persons (the registry), "
            f"not {arr.dtype} {arr.shape}"
        )
    out = np.zeros(n, dtype=np.bool_)
    out[: len(arr)] = arr
    return out


def _family(db: sqlite3.Connection, column: str, min_cell: int, n: int) -> SetFamily:
    """``column``'s family over ``n`` persons: its snapshot if current, else a replay."""
    resumed = _resume(db, column, min_cell, n, _sets_digest(db, column))
    if resumed is not None:
        return resumed
    return SetFamily(n, min_cell, _family_sets(db, column, n))


def _sets_digest(db: sqlite3.Connection, column: str) -> str:
    """SHA-256 of the sorted distinct fingerprints recorded for ``column``."""
    rows = db.execute(
        "SELECT DISTINCT fingerprint FROM release_sets WHERE column_name = ? ORDER BY fingerprint",
        (column,),
    ).fetchall()
    return hashlib.sha256("\n".join(str(fp) for (fp,) in rows).encode("ascii")).hexdigest()


def _resume(
    db: sqlite3.Connection, column: str, min_cell: int, n: int, digest: str
) -> SetFamily | None:
    """The family resumed from ``column``'s snapshot, None when it is missing or stale."""
    if digest == _NO_SETS:
        return SetFamily(n, min_cell)
    row = db.execute(
        "SELECT sets_sha256, n_persons, state FROM family_snapshots WHERE column_name = ?",
        (column,),
    ).fetchone()
    if row is None or row[0] != digest or int(row[1]) > n:
        return None
    try:
        with np.load(io.BytesIO(row[2]), allow_pickle=False) as arrays:
            state = {name: arrays[name] for name in arrays.files}
        return SetFamily.from_state(state, min_cell, n)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:  # unreadable: replay
        log.warning("the %s family snapshot cannot be resumed (%s); rebuilding it", column, exc)
        return None


def _save(db: sqlite3.Connection, column: str, family: SetFamily, release_id: int) -> None:
    """Write ``column``'s snapshot (the caller checked that ``family`` is current)."""
    buffer = io.BytesIO()
    np.savez(buffer, **family.state())  # type: ignore[arg-type]
    db.execute(
        "INSERT INTO family_snapshots (column_name, release_id, sets_sha256, n_sets, n_persons, "
        "state) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (column_name) DO UPDATE SET "
        "release_id = excluded.release_id, sets_sha256 = excluded.sets_sha256, "
        "n_sets = excluded.n_sets, n_persons = excluded.n_persons, state = excluded.state",
        (
            column,
            release_id,
            _sets_digest(db, column),
            family.n_sets,
            family.n_persons,
            buffer.getvalue(),
        ),
    )


def _holds_recorded_sets(db: sqlite3.Connection, column: str, family: SetFamily) -> bool:
    """Does ``family`` hold exactly the non-empty sets recorded for ``column``?

    Compares fingerprints over the family's registry size: a set recorded over
    fewer persons is padded with zero bits, which appends zero bytes to its
    packed bits (the last byte's unused bits are already zero).
    """
    n = family.n_persons
    width = -(-n // 8)
    expected: set[str] = set()
    for n_persons, size, bits in db.execute(
        "SELECT s.n_persons, s.size, s.bits FROM sets s WHERE s.fingerprint IN ("
        "  SELECT fingerprint FROM release_sets WHERE column_name = ?)",
        (column,),
    ):
        if int(n_persons) > n:
            return False
        if int(size):
            padded = bytes(bits) + bytes(width - len(bits))
            expected.add(hashlib.sha256(n.to_bytes(8, "little") + padded).hexdigest())
    return expected == family.fingerprints()


def _family_sets(db: sqlite3.Connection, column: str, n: int) -> list[NDArray[np.bool_]]:
    """The distinct sets recorded for ``column``, in order of first release, over ``n`` persons."""
    rows = db.execute(
        "SELECT s.fingerprint, s.n_persons, s.bits FROM sets s JOIN ("
        "  SELECT fingerprint, MIN(release_id) AS first FROM release_sets"
        "  WHERE column_name = ? GROUP BY fingerprint"
        ") f USING (fingerprint) ORDER BY f.first, s.fingerprint",
        (column,),
    ).fetchall()
    sets = []
    for fp, size, bits in rows:
        unpacked = np.unpackbits(np.frombuffer(bits, dtype=np.uint8), count=int(size))
        members = unpacked.astype(np.bool_)
        if len(members) != int(size) or fingerprint(members) != fp or size > n:
            raise IntegrityError()  # the stored bits do not match their fingerprint
        sets.append(_pad(members, n))
    return sets


__all__ = ["SAMPLE_SETS_FILE", "GuardOutcome", "ReleaseKey", "SampleSetStore"]
