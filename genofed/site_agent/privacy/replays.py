"""Idempotent charged releases: the same request again gets the stored reply, not a new charge.

A release that carries privacy noise (``dp`` counts, ``distributed-dp``
noise shares, DP-SGD updates) is charged to the ledger when it is made. If
the same request comes again — the coordinator died and the analyst reran
the signed study, or a round was retried — a fresh answer would charge the
budget a second time for what nobody may have received, and hand an
attacker two independent noise draws of one statistic to average. So the
site keeps each charged release's arrays, before any SecAgg+ masking, in
``state/releases.sqlite``, and answers a repeat from there: the same values
(the same noise), no new charge, and an audit entry that names the replay
and the entry it repeats.

A request is "the same" when everything that decides its answer is: the
study's hash, the analysis, the request kind, its step and round, every
input array (names, dtypes, shapes and bytes), the data served (the cohort
snapshot, or the names, sizes and modification times of the live files,
named relative to the site directory so that a container's mount of the
same directory is the same data) and the policy file's bytes. The run id is
not part of it: a rerun is a new run. Anything else is a new release.
Releases without noise are not stored: computing them again gives the same
bytes and costs nothing.

The reply's receipt is kept with the release: a repeat whose arrays leave
unchanged (no SecAgg+ masking, whose masks are new every run) carries the
original receipt, which cites the original release entry, signed then; the
coordinator accepts it for a reply that says it is a replay of that entry
(:func:`genofed.common.receipts.verify_receipt`). The repeat itself is still
an entry of the audit log (a release naming the entry it repeats, charged
nothing), so the log records every time the values left.

Stored arrays stay on the site (``state/`` holds the site's own data, as
``state/pca/`` does); the file is removed with the site's state.
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
from collections.abc import Iterable, Mapping
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Where a site keeps its charged releases (relative to the site directory).
REPLAYS_FILE = Path("state") / "releases.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS releases (
    key TEXT PRIMARY KEY,
    time TEXT NOT NULL,
    study_sha256 TEXT NOT NULL,
    analysis_id TEXT NOT NULL,
    request_kind TEXT NOT NULL,
    audit_index INTEGER NOT NULL,
    facts TEXT NOT NULL,
    arrays BLOB NOT NULL,
    receipt BLOB
);
"""


@dataclass(frozen=True)
class StoredRelease:
    """A charged release as it was made (arrays before any masking)."""

    arrays: dict[str, np.ndarray]
    facts: dict[str, str]
    #: the audit entry of the original release
    audit_index: int
    #: the original reply's receipt (``genofed.v1.Receipt`` bytes), if it was stored
    receipt: bytes | None = None


def _hash_array(h: hashlib._Hash, name: str, array: np.ndarray) -> None:
    a = np.ascontiguousarray(array)
    h.update(f"{name}\0{a.dtype.str}\0{a.shape}\0".encode())
    h.update(a.tobytes())


def replay_key(
    *,
    study_sha256: str,
    analysis_id: str,
    request_kind: str,
    step: str,
    round_: int,
    inputs: Mapping[str, np.ndarray],
    data_id: str,
) -> str:
    """The hex SHA-256 naming everything that decides a request's answer (not the run id)."""
    h = hashlib.sha256()
    head = json.dumps(
        [study_sha256, analysis_id, request_kind, step, round_, data_id], separators=(",", ":")
    )
    h.update(head.encode())
    for name in sorted(inputs):
        _hash_array(h, name, inputs[name])
    return h.hexdigest()


def data_id(
    snapshot: str, files: Iterable[Path | None], policy_file: Path, root: Path | None = None
) -> str:
    """The data a request is answered from: the snapshot id, or the live files' sizes and times.

    A live file inside ``root`` (the site directory) is named by its path
    relative to it, so that the same site directory seen at another path (a
    container's mount, a moved directory) is the same data and its charged
    releases are replayed, not charged again.
    """
    h = hashlib.sha256()
    if snapshot:
        h.update(f"snapshot\0{snapshot}\0".encode())
    else:
        for path in files:
            if path is None:
                continue
            st = path.stat()
            h.update(f"{_name(path, root)}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    h.update(policy_file.read_bytes() if policy_file.is_file() else b"")
    return h.hexdigest()


def _name(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            pass
    return str(path)


def _pack(arrays: Mapping[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    named = {k: np.asarray(v) for k, v in arrays.items()}
    np.savez(buf, allow_pickle=False, **named)
    return buf.getvalue()


def _unpack(blob: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


class Replays:
    """The site's store of charged releases (``state/releases.sqlite``)."""

    def __init__(self, site_dir: Path) -> None:
        self.path = Path(site_dir) / REPLAYS_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(_SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(releases)")}
            if "receipt" not in columns:  # a store written before receipts were kept
                db.execute("ALTER TABLE releases ADD COLUMN receipt BLOB")

    def _connect(self) -> closing[sqlite3.Connection]:
        db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        db.execute("PRAGMA synchronous=FULL")
        return closing(db)

    def get(self, key: str) -> StoredRelease | None:
        """The release stored under ``key``, if any."""
        with self._connect() as db:
            row = db.execute(
                "SELECT audit_index, facts, arrays, receipt FROM releases WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            return None
        receipt = bytes(row[3]) if row[3] is not None else None
        return StoredRelease(_unpack(row[2]), dict(json.loads(row[1])), int(row[0]), receipt)

    def put(
        self,
        key: str,
        *,
        time: str,
        study_sha256: str,
        analysis_id: str,
        request_kind: str,
        audit_index: int,
        facts: Mapping[str, str],
        arrays: Mapping[str, np.ndarray],
        receipt: bytes | None = None,
    ) -> None:
        """Store a charged release durably (the first one under ``key`` stays)."""
        with self._connect() as db:
            db.execute(
                "INSERT OR IGNORE INTO releases (key, time, study_sha256, analysis_id, "
                "request_kind, audit_index, facts, arrays, receipt) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    time,
                    study_sha256,
                    analysis_id,
                    request_kind,
                    audit_index,
                    json.dumps(dict(facts), sort_keys=True),
                    _pack(arrays),
                    receipt,
                ),
            )

    def count(self) -> int:
        with self._connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM releases").fetchone()[0])


__all__ = ["REPLAYS_FILE", "Replays", "StoredRelease", "data_id", "replay_key"]
