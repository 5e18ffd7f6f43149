"""Offline verification of a site's audit log: what ``genofed-site audit verify`` checks.

Given a log (a site directory or an export) and a public key, it

1. reads every ``entries.jsonl`` line and checks that it is exactly the
   canonical line for its leaf (index, base64 leaf bytes, readable fields), and
   that the leaf is a canonically encoded ``AuditEntry`` carrying its own index;
2. recomputes the RFC 6962 tree over the leaves;
3. checks every checkpoint: canonical line, signed by the key, sizes
   increasing, root equal to the recomputed root at its size; and that the
   last checkpoint covers every entry;
4. given a checkpoint the privacy officer saved earlier, checks its signature
   and that the log is an append-only extension of it (an RFC 6962 consistency
   proof from the saved tree head to the current one). This is what catches
   a log that was cut short and re-signed up to the cut.

Unlike the agent's own integrity checks, which fail opaquely, this report
names each failing line, entry and checkpoint: it is read by the privacy
officer who owns the log, and they need to know where to look.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from genofed.common.checkpoint import (
    Checkpoint,
    checkpoint_from_json,
    key_id,
    public_key_from_pem,
    public_key_to_pem,
    verify_checkpoint,
)
from genofed.common.errors import InputError, IntegrityError
from genofed.common.merkle import (
    consistency_proof,
    frontier_append,
    frontier_root,
    leaf_hash,
    verify_consistency,
)
from genofed.common.wire.proto import audit_entry_from_bytes, audit_entry_to_bytes
from genofed.site_agent.audit.log import (
    AUDIT_PUB,
    CHECKPOINTS_FILE,
    ENTRIES_FILE,
    STATE_DB,
    STATE_DIR,
    checkpoint_line,
    entry_line,
    read_site_log,
)


@dataclass(frozen=True)
class Verification:
    """The outcome: ``problems`` is empty when the log verifies."""

    problems: tuple[str, ...]
    n_entries: int
    n_checkpoints: int
    latest: Checkpoint | None
    key_id: str

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class LogFiles:
    """The raw bytes of a log, wherever it came from."""

    entries: bytes
    checkpoints: bytes
    public_key_pem: bytes
    source: str  # "export" or "site directory"


def load_log_files(path: Path) -> LogFiles:
    """Read an export directory, or a site directory's live log, as export bytes."""
    if (path / ENTRIES_FILE).is_file() or (path / CHECKPOINTS_FILE).is_file():
        for name in (ENTRIES_FILE, CHECKPOINTS_FILE, AUDIT_PUB):
            if not (path / name).is_file():
                raise InputError(
                    f"{name} is missing from this export",
                    path=path,
                    hint="export the log again with `genofed-site audit export SITE_DIR --out DIR`",
                )
        return LogFiles(
            entries=(path / ENTRIES_FILE).read_bytes(),
            checkpoints=(path / CHECKPOINTS_FILE).read_bytes(),
            public_key_pem=(path / AUDIT_PUB).read_bytes(),
            source="export",
        )
    if (path / STATE_DIR / STATE_DB).is_file():
        snapshot = read_site_log(path)
        return LogFiles(
            snapshot.entries_text().encode("ascii"),
            snapshot.checkpoints_text().encode("ascii"),
            snapshot.public_key_pem,
            source="site directory",
        )
    raise InputError(
        "neither an audit export nor a site directory with an audit log",
        path=path,
        hint=f"pass a site directory (holding {STATE_DIR}/{STATE_DB}) or a directory "
        f"written by `genofed-site audit export` (holding {ENTRIES_FILE})",
    )


def _lines(data: bytes, name: str, problems: list[str]) -> list[str | None]:
    """The file's lines; a line that is not ASCII is ``None`` (and a problem)."""
    if not data:
        return []
    if not data.endswith(b"\n"):
        problems.append(f"{name}: the last line is incomplete (no newline at the end)")
    raw = data.split(b"\n")
    if data.endswith(b"\n"):
        raw.pop()
    lines: list[str | None] = []
    for number, line in enumerate(raw, start=1):
        try:
            lines.append(line.decode("ascii"))
        except UnicodeDecodeError:
            problems.append(f"{name} line {number}: not ASCII text")
            lines.append(None)
    return lines


def _leaf(line: str | None, index: int, problems: list[str]) -> bytes | None:
    """The leaf data of entry ``index`` if its line is exactly the canonical line for it."""
    where = f"{ENTRIES_FILE} line {index + 1} (entry {index})"
    if line is None:
        return None
    try:
        doc = json.loads(line)
        leaf = base64.b64decode(doc["leaf"], validate=True)
    except (ValueError, TypeError, KeyError, binascii.Error):
        problems.append(f"{where}: not a readable entry line")
        return None
    try:
        entry = audit_entry_from_bytes(leaf)
    except IntegrityError:
        problems.append(f"{where}: its leaf is not an audit entry")
        return leaf
    if audit_entry_to_bytes(entry) != leaf:
        problems.append(f"{where}: its leaf is not a canonically encoded audit entry")
    elif entry.index != index:
        problems.append(
            f"{where}: the signed leaf says it is entry {entry.index} "
            "(entries removed, inserted or reordered)"
        )
    elif line != entry_line(index, leaf):
        problems.append(f"{where}: the line does not match its signed leaf (edited by hand?)")
    return leaf


def verify_log(
    files: LogFiles, public_key: Ed25519PublicKey, *, saved: Checkpoint | None = None
) -> Verification:
    """Verify ``files`` with ``public_key``; see the module docstring for what is checked."""
    problems: list[str] = []
    kid = key_id(public_key)
    if files.public_key_pem.strip() != public_key_to_pem(public_key).strip():
        problems.append(f"{AUDIT_PUB}: the log's public key is not the key given for verification")

    # entries -> prefix roots; None once a damaged leaf has been met
    leaves = [
        _leaf(line, i, problems)
        for i, line in enumerate(_lines(files.entries, ENTRIES_FILE, problems))
    ]
    hashes = [None if leaf is None else leaf_hash(leaf) for leaf in leaves]
    roots: list[bytes | None] = [frontier_root([])]
    frontier: list[bytes] = []
    for size, h in enumerate(hashes):
        if h is None or roots[-1] is None:
            roots.append(None)
            continue
        frontier = frontier_append(frontier, size, h)
        roots.append(frontier_root(frontier))
    n = len(leaves)

    checkpoints: list[Checkpoint] = []
    last_size = -1
    for number, line in enumerate(_lines(files.checkpoints, CHECKPOINTS_FILE, problems), 1):
        where = f"{CHECKPOINTS_FILE} line {number}"
        if line is None:
            continue
        try:
            cp = checkpoint_from_json(json.loads(line))
        except (ValueError, InputError):
            problems.append(f"{where}: not a checkpoint")
            continue
        where += f" (tree size {cp.tree_size})"
        if line != checkpoint_line(cp):
            problems.append(f"{where}: not in canonical form (edited by hand?)")
        elif cp.key_id != kid:
            problems.append(f"{where}: signed by key {cp.key_id}, not by the given key {kid}")
        else:
            try:
                verify_checkpoint(public_key, cp)
            except IntegrityError:
                problems.append(f"{where}: the signature does not verify")
        if cp.tree_size <= last_size:
            problems.append(f"{where}: tree sizes must increase from line to line")
        last_size = max(last_size, cp.tree_size)
        if cp.tree_size > n:
            problems.append(
                f"{where}: signs {cp.tree_size} entries but the log holds {n} (entries removed?)"
            )
        elif roots[cp.tree_size] is None:
            problems.append(f"{where}: covers a damaged entry (see above)")
        elif roots[cp.tree_size] != cp.root_hash:
            problems.append(f"{where}: its root does not match entries 0..{cp.tree_size - 1}")
        checkpoints.append(cp)
    if not checkpoints:
        problems.append(f"{CHECKPOINTS_FILE}: no checkpoint: nothing in this log is signed")
    elif checkpoints[-1].tree_size < n:
        problems.append(
            f"{ENTRIES_FILE}: entries {checkpoints[-1].tree_size}..{n - 1} are not covered by "
            "any signed checkpoint (added after the last signature?)"
        )

    if saved is not None:
        _check_saved(saved, public_key, hashes, roots, problems)
    latest = checkpoints[-1] if checkpoints else None
    return Verification(tuple(problems), n, len(checkpoints), latest, kid)


def _check_saved(
    saved: Checkpoint,
    public_key: Ed25519PublicKey,
    hashes: list[bytes | None],
    roots: list[bytes | None],
    problems: list[str],
) -> None:
    where = f"saved checkpoint (tree size {saved.tree_size})"
    try:
        verify_checkpoint(public_key, saved)
    except IntegrityError:
        problems.append(f"{where}: its signature does not verify with the given key")
        return
    n = len(hashes)
    if saved.tree_size > n:
        problems.append(
            f"{where}: the log now holds only {n} entries: entries were removed since you saved it"
        )
        return
    complete = [h for h in hashes if h is not None]
    if len(complete) != n or roots[n] is None:
        problems.append(f"{where}: cannot check consistency with a damaged log (see above)")
        return
    try:
        verify_consistency(
            saved.tree_size,
            n,
            consistency_proof(complete, saved.tree_size),
            saved.root_hash,
            roots[n] or b"",
        )
    except IntegrityError:
        problems.append(
            f"{where}: the log is not an append-only extension of it (history rewritten)"
        )


def verify_path(
    path: Path, *, public_key_pem: bytes | None = None, saved: Checkpoint | None = None
) -> Verification:
    """Verify the log at ``path`` with the given key, or else the key stored with the log."""
    files = load_log_files(path)
    key = public_key_from_pem(
        public_key_pem if public_key_pem is not None else files.public_key_pem,
        path=None if public_key_pem is not None else path,
    )
    return verify_log(files, key, saved=saved)


__all__ = ["LogFiles", "Verification", "load_log_files", "verify_log", "verify_path"]
