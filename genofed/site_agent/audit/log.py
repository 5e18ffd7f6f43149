"""The site's tamper-evident audit log: an append-only RFC 6962 Merkle log with signed checkpoints.

Every request, refusal and release becomes one ``genofed.v1.AuditEntry``; its
deterministic protobuf encoding is a leaf of an RFC 6962 tree
(:mod:`genofed.common.merkle`). After each append the site signs a checkpoint
(tree size, root, time) with its Ed25519 audit key
(:mod:`genofed.common.checkpoint`); entry and checkpoint are committed in one
SQLite transaction before :meth:`AuditLog.append` returns, so a reply that
cites an entry can only leave after the entry is on disk.

In the site directory (created by ``genofed-site init``)::

    state/                  0700
    state/audit.key         the site's Ed25519 audit key, PKCS#8 PEM, 0600
    state/audit.pub         its public key, PEM: give it to the privacy officer
    state/audit.sqlite      the log (WAL, synchronous=FULL; the ledger keeps its own file):

        audit_entries(idx INTEGER PRIMARY KEY, leaf BLOB)      leaf = AuditEntry bytes
        audit_checkpoints(tree_size INTEGER PRIMARY KEY, root_hash BLOB, time TEXT,
                          key_id TEXT, signature BLOB, frontier BLOB)

Triggers refuse UPDATE and DELETE on both tables (a guard against mistakes,
not against someone who can write the file: that is what the signatures and
the privacy officer's saved checkpoints are for). ``frontier`` holds the
tree's compact range so that an append costs O(log n). The log starts with a
signed checkpoint of the empty tree.

An export (``genofed-site audit export``) is a directory with ``entries.jsonl``
(one line per entry: its index, the leaf bytes in base64 and the readable
entry), ``checkpoints.jsonl`` and ``audit.pub``; each line is canonical JSON
(:func:`canonical_json`), so any changed byte changes what verification sees.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from genofed.common.checkpoint import (
    Checkpoint,
    checkpoint_to_json,
    public_key_to_pem,
    rfc3339,
    sign_checkpoint,
)
from genofed.common.clock import Clock, utc_now
from genofed.common.errors import InputError, IntegrityError
from genofed.common.merkle import EMPTY_ROOT, HASH_SIZE, frontier_append, frontier_root, leaf_hash
from genofed.common.messages import ArraySpec, AuditEntry, AuditKind, Request
from genofed.common.signing import public_key_text
from genofed.common.wire.proto import (
    audit_entry_from_bytes,
    audit_entry_to_bytes,
    audit_entry_to_json,
)

STATE_DIR = "state"
STATE_DB = "audit.sqlite"
AUDIT_KEY = "audit.key"
AUDIT_PUB = "audit.pub"
ENTRIES_FILE = "entries.jsonl"
CHECKPOINTS_FILE = "checkpoints.jsonl"

DECISION_APPROVED = "approved"
DECISION_REFUSED = "refused"
DECISION_ERROR = "error"
#: Noise description of a release that adds none (plain sums, no DP yet).
NO_NOISE = '{"mechanism":"none"}'

log = logging.getLogger("genofed.site")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_entries (
    idx INTEGER PRIMARY KEY CHECK (idx >= 0),
    leaf BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    tree_size INTEGER PRIMARY KEY CHECK (tree_size >= 0),
    root_hash BLOB NOT NULL,
    time TEXT NOT NULL,
    key_id TEXT NOT NULL,
    signature BLOB NOT NULL,
    frontier BLOB NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_entries_no_update BEFORE UPDATE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_entries_no_delete BEFORE DELETE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""
_INIT_HINT = "create it with `genofed-site audit init DIR` (genofed-site init does this)"
_BUSY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class AuditPaths:
    """Where a site directory keeps its audit state."""

    state: Path
    db: Path
    key: Path
    pub: Path

    @classmethod
    def of(cls, site_dir: Path) -> AuditPaths:
        state = Path(os.path.abspath(site_dir)) / STATE_DIR
        return cls(state, state / STATE_DB, state / AUDIT_KEY, state / AUDIT_PUB)


# -- creating the state ---------------------------------------------------------------------


def _write_file(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to a new file ``path`` (mode ``mode``) via a temporary name."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)  # the umask may have narrowed it
        os.link(tmp, path)  # fails if ``path`` appeared meanwhile: never overwrite
    finally:
        tmp.unlink(missing_ok=True)


def _connect(db: Path, mode: str) -> sqlite3.Connection:
    conn = sqlite3.connect(
        f"{db.as_uri()}?mode={mode}",
        uri=True,
        isolation_level=None,
        timeout=_BUSY_TIMEOUT_S,
    )
    if mode != "ro":
        conn.execute("PRAGMA synchronous=FULL")
    return conn


def init_audit(site_dir: Path, *, clock: Clock = utc_now) -> list[Path]:
    """Create ``state/`` with a new audit key and an empty, signed log; returns what it wrote.

    Refuses (:class:`InputError`) if any of it exists. On failure everything it
    created is removed again.
    """
    paths = AuditPaths.of(site_dir)
    for existing in (paths.key, paths.pub, paths.db):
        if existing.exists():
            raise InputError(
                "already exists; refusing to replace a site's audit key or log",
                path=existing,
                hint="a site keeps one audit key and log for its whole life; "
                "move the old state away only if you mean to start a new log",
            )
    created: list[Path] = []
    try:
        if not paths.state.exists():
            paths.state.mkdir(mode=0o700, parents=True)
            created.append(paths.state)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write_file(paths.key, pem, 0o600)
        created.append(paths.key)
        _write_file(paths.pub, public_key_to_pem(key.public_key()), 0o644)
        created.append(paths.pub)
        created.append(paths.db)
        conn = _connect(paths.db, "rwc")
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
            empty = sign_checkpoint(key, 0, EMPTY_ROOT, rfc3339(clock()))
            conn.execute("BEGIN IMMEDIATE")
            _insert_checkpoint(conn, empty, [])
            conn.execute("COMMIT")
        finally:
            conn.close()
    except BaseException as exc:
        remove_created(created)
        if isinstance(exc, OSError | sqlite3.Error):
            raise InputError(
                f"cannot create the audit state ({exc})",
                path=paths.state,
                hint="check that the site directory is writable and the disk is not full",
            ) from exc
        raise
    return created


def remove_created(created: Sequence[Path]) -> None:
    """Undo :func:`init_audit`: remove the paths it reported (files, then the directory)."""
    for path in reversed(created):
        for extra in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            if extra.is_dir():
                shutil.rmtree(extra, ignore_errors=True)
            else:
                extra.unlink(missing_ok=True)


def _insert_checkpoint(
    conn: sqlite3.Connection, checkpoint: Checkpoint, frontier: Sequence[bytes]
) -> None:
    conn.execute(
        "INSERT INTO audit_checkpoints (tree_size, root_hash, time, key_id, signature, frontier) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (
            checkpoint.tree_size,
            checkpoint.root_hash,
            checkpoint.time,
            checkpoint.key_id,
            checkpoint.signature,
            b"".join(frontier),
        ),
    )


# -- appending ------------------------------------------------------------------------------


def _load_private_key(path: Path) -> Ed25519PrivateKey:
    if not path.is_file():
        raise InputError("the site's audit key is missing", path=path, hint=_INIT_HINT)
    if path.stat().st_mode & 0o077:
        log.warning("%s is readable by others; make it owner-only (chmod 600)", path)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise InputError("not an unencrypted PEM private key", path=path, hint=_INIT_HINT) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError("not an Ed25519 private key", path=path, hint=_INIT_HINT)
    return key


class AuditLog:
    """A site's audit log, open for appending; use as a context manager."""

    def __init__(
        self, conn: sqlite3.Connection, key: Ed25519PrivateKey, db: Path, clock: Clock
    ) -> None:
        self._conn = conn
        self._key = key
        self._db = db
        self._clock = clock

    @classmethod
    def open(cls, site_dir: Path, *, clock: Clock | None = None) -> AuditLog:
        """Open the log of ``site_dir``; a missing key or log is an :class:`InputError`.

        ``clock`` (default: the system's UTC time) stamps entries and checkpoints.
        """
        paths = AuditPaths.of(site_dir)
        key = _load_private_key(paths.key)
        if not paths.db.is_file():
            raise InputError("the site's audit log is missing", path=paths.db, hint=_INIT_HINT)
        try:
            conn = _connect(paths.db, "rw")
        except sqlite3.Error as exc:
            raise InputError(f"cannot open the audit log ({exc})", path=paths.db) from exc
        return cls(conn, key, paths.db, clock or utc_now)

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    def append(self, entry: AuditEntry) -> tuple[int, Checkpoint]:
        """Append ``entry`` (its index and time are set here); returns its index and checkpoint.

        Entry and signed checkpoint are committed, durably, before this returns.
        """
        now = rfc3339(self._clock())
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                size, frontier = self._head()
                data = audit_entry_to_bytes(replace(entry, index=size, time=now))
                frontier = frontier_append(frontier, size, leaf_hash(data))
                checkpoint = sign_checkpoint(self._key, size + 1, frontier_root(frontier), now)
                conn.execute("INSERT INTO audit_entries (idx, leaf) VALUES (?, ?)", (size, data))
                _insert_checkpoint(conn, checkpoint, frontier)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise InputError(
                f"cannot write the audit log ({exc})",
                path=self._db,
                hint="check that the disk is not full and the file is writable",
            ) from exc
        return size, checkpoint

    def proof_of_last(self, index: int) -> tuple[bytes, list[bytes]]:
        """The leaf data of entry ``index`` and its inclusion proof in the tree of ``index + 1``.

        That tree is the one the checkpoint :meth:`append` returned for the
        entry signs. The entry is its last leaf, so the RFC 6962 audit path is
        the frontier of the first ``index`` leaves, smallest subtree first:
        O(log n) from the stored frontier, no leaf re-read.
        """
        try:
            leaf = self._conn.execute(
                "SELECT leaf FROM audit_entries WHERE idx = ?", (index,)
            ).fetchone()
            row = self._conn.execute(
                "SELECT frontier FROM audit_checkpoints WHERE tree_size = ?", (index,)
            ).fetchone()
        except sqlite3.Error as exc:
            raise InputError(f"cannot read the audit log ({exc})", path=self._db) from exc
        if leaf is None or row is None or len(row[0]) != HASH_SIZE * bin(index).count("1"):
            raise InputError(
                f"the audit log has no entry {index} with the checkpoint before it",
                path=self._db,
                hint="run `genofed-site audit verify` on the site directory",
            )
        blob = bytes(row[0])
        frontier = [blob[i : i + HASH_SIZE] for i in range(0, len(blob), HASH_SIZE)]
        return bytes(leaf[0]), frontier[::-1]

    def _head(self) -> tuple[int, list[bytes]]:
        row = self._conn.execute(
            "SELECT tree_size, frontier FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1"
        ).fetchone()
        last = self._conn.execute("SELECT MAX(idx) FROM audit_entries").fetchone()[0]
        n_entries = 0 if last is None else last + 1
        if row is None or row[0] != n_entries or len(row[1]) != HASH_SIZE * bin(row[0]).count("1"):
            raise InputError(
                "the audit log's last checkpoint does not cover its entries",
                path=self._db,
                hint="run `genofed-site audit verify` on the site directory and call "
                "your privacy officer; the site refuses to release until this is resolved",
            )
        blob = row[1]
        return row[0], [blob[i : i + HASH_SIZE] for i in range(0, len(blob), HASH_SIZE)]


# -- entries --------------------------------------------------------------------------------


def _request_fields(request: Request) -> dict[str, Any]:
    key = request.study.analyst_public_key
    return {
        "study_sha256": request.study.sha256,
        "analysis_id": request.analysis_id,
        "run_id": request.run_id,
        "request_kind": request.kind,
        "step": request.step,
        "round": request.round,
        # who signed it: two signers of the same study content share its hash
        "signer": public_key_text(key) if key else "",
    }


def request_entry(request: Request) -> AuditEntry:
    """A request as it arrived, with the manifest of the arrays that came with it."""
    return AuditEntry(kind=AuditKind.REQUEST, inputs=request.inputs, **_request_fields(request))


def refusal_entry(request: Request, *, decision: str, reason: str) -> AuditEntry:
    """The site declined ``request``: ``decision`` is refused or error; nothing left."""
    return AuditEntry(
        kind=AuditKind.REFUSAL, decision=decision, reason=reason, **_request_fields(request)
    )


def release_entry(
    request: Request,
    arrays: Iterable[ArraySpec],
    *,
    noise: str = NO_NOISE,
    epsilon: float = 0.0,
    delta: float = 0.0,
    sample_sets: Iterable[str] = (),
) -> AuditEntry:
    """What leaves the site for ``request``: array names, dtypes, shapes and SHA-256.

    ``sample_sets``: ``column:sha256`` of each sample set the release sums over.
    """
    return AuditEntry(
        kind=AuditKind.RELEASE,
        decision=DECISION_APPROVED,
        arrays=tuple(arrays),
        noise=noise,
        epsilon=epsilon,
        delta=delta,
        sample_sets=tuple(sample_sets),
        **_request_fields(request),
    )


def entry_to_json(entry: AuditEntry) -> dict[str, Any]:
    """The entry's readable form (every field, proto field names)."""
    return audit_entry_to_json(entry)


def canonical_json(doc: object) -> str:
    """One canonical line: sorted keys, no spaces, ASCII only."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def entry_line(index: int, leaf: bytes) -> str:
    """An ``entries.jsonl`` line for the leaf data ``leaf`` at ``index``."""
    try:
        readable: dict[str, Any] | None = entry_to_json(audit_entry_from_bytes(leaf))
    except IntegrityError:
        readable = None  # not an entry at all: verification reports it
    doc = {"index": index, "leaf": base64.b64encode(leaf).decode("ascii"), "entry": readable}
    return canonical_json(doc)


def checkpoint_line(checkpoint: Checkpoint) -> str:
    return canonical_json(checkpoint_to_json(checkpoint))


# -- reading and exporting ------------------------------------------------------------------


@dataclass(frozen=True)
class LogSnapshot:
    """A consistent copy of a log: leaf data in order, checkpoints by size, public key."""

    leaves: tuple[bytes, ...]
    checkpoints: tuple[Checkpoint, ...]
    public_key_pem: bytes

    def entries_text(self) -> str:
        return "".join(entry_line(i, leaf) + "\n" for i, leaf in enumerate(self.leaves))

    def checkpoints_text(self) -> str:
        return "".join(checkpoint_line(c) + "\n" for c in self.checkpoints)


def read_site_log(site_dir: Path) -> LogSnapshot:
    """Read a site's log (read-only, one transaction) and its public key."""
    paths = AuditPaths.of(site_dir)
    for needed in (paths.db, paths.pub):
        if not needed.is_file():
            raise InputError("not found", path=needed, hint=_INIT_HINT)
    try:
        conn = _connect(paths.db, "ro")
        try:
            conn.execute("BEGIN")
            rows = conn.execute("SELECT idx, leaf FROM audit_entries ORDER BY idx").fetchall()
            cps = conn.execute(
                "SELECT tree_size, root_hash, time, key_id, signature "
                "FROM audit_checkpoints ORDER BY tree_size"
            ).fetchall()
            conn.execute("COMMIT")
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise InputError(f"cannot read the audit log ({exc})", path=paths.db) from exc
    # Rows are taken in order as they are: a gap or a changed row is for
    # verification to find and report, not for reading to hide.
    return LogSnapshot(
        leaves=tuple(bytes(leaf) for _, leaf in rows),
        checkpoints=tuple(
            Checkpoint(size, bytes(root), time, kid, bytes(sig))
            for size, root, time, kid, sig in cps
        ),
        public_key_pem=paths.pub.read_bytes(),
    )


def export_log(site_dir: Path, out: Path) -> LogSnapshot:
    """Write ``entries.jsonl``, ``checkpoints.jsonl`` and ``audit.pub`` into a new ``out``.

    ``out`` must not exist or be empty; the files appear together (written to
    a staging directory that is renamed) or not at all.
    """
    out = Path(os.path.abspath(out))
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(
            "exists and is not an empty directory",
            path=out,
            hint="choose a new --out directory for the export",
        )
    snapshot = read_site_log(site_dir)
    staging = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        staging.mkdir(parents=True)
        for name, data in (
            (ENTRIES_FILE, snapshot.entries_text().encode("ascii")),
            (CHECKPOINTS_FILE, snapshot.checkpoints_text().encode("ascii")),
            (AUDIT_PUB, snapshot.public_key_pem),
        ):
            _write_file(staging / name, data, 0o644)
        if out.exists():
            out.rmdir()
        staging.rename(out)
    except OSError as exc:
        raise InputError(
            f"cannot write the export ({exc.strerror or exc})",
            path=out,
            hint="check that the directory is writable and the disk is not full",
        ) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return snapshot


__all__ = [
    "AUDIT_KEY",
    "AUDIT_PUB",
    "CHECKPOINTS_FILE",
    "DECISION_APPROVED",
    "DECISION_ERROR",
    "DECISION_REFUSED",
    "ENTRIES_FILE",
    "NO_NOISE",
    "STATE_DB",
    "STATE_DIR",
    "AuditLog",
    "AuditPaths",
    "LogSnapshot",
    "canonical_json",
    "checkpoint_line",
    "entry_line",
    "entry_to_json",
    "export_log",
    "init_audit",
    "read_site_log",
    "refusal_entry",
    "release_entry",
    "remove_created",
    "request_entry",
]
