"""Signed checkpoints: a site's Ed25519 signature over its audit log's tree head.

A checkpoint says "my log had ``tree_size`` entries with RFC 6962 root
``root_hash`` at ``time``", signed with the site's audit key. The signed bytes
are this fixed text (one field per line, newline-terminated; a format in the
spirit of the C2SP tlog checkpoint)::

    genofed.v1.Checkpoint
    <key_id>                 16 lowercase hex digits: SHA-256 of the raw public key, first 8 bytes
    <tree_size>              decimal
    <root_hash>              base64 (standard alphabet, padded)
    <time>                   RFC 3339, UTC, e.g. 2026-05-01T12:00:00.000000Z

Checkpoints travel as the ``genofed.v1.Checkpoint`` proto inside a receipt
(:mod:`genofed.common.wire.proto`), and
as a JSON object (:func:`checkpoint_to_json`) in exports, saved checkpoints and
``provenance.json``. Verification failures raise the opaque
:class:`~genofed.common.errors.IntegrityError`; malformed JSON raises
:class:`~genofed.common.errors.InputError` naming the file.

Pure: keys and values in, bytes and values out; the time is the caller's.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from genofed.common.errors import InputError, IntegrityError
from genofed.common.merkle import HASH_SIZE

CHECKPOINT_HEADER = "genofed.v1.Checkpoint"
_KEY_ID = re.compile(r"[0-9a-f]{16}")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z")
_HEX = re.compile(r"(?:[0-9a-f]{2})*")
_JSON_KEYS = ("tree_size", "root_hash", "time", "key_id", "signature")


@dataclass(frozen=True)
class Checkpoint:
    """A signed tree head; ``signature`` is empty until signed."""

    tree_size: int
    root_hash: bytes
    time: str
    key_id: str
    signature: bytes = b""

    def body(self) -> bytes:
        """The canonical bytes that the signature covers."""
        if (
            not 0 <= self.tree_size < 2**63
            or len(self.root_hash) != HASH_SIZE
            or not _KEY_ID.fullmatch(self.key_id)
            or not _TIME.fullmatch(self.time)
        ):
            raise IntegrityError()
        root = base64.b64encode(self.root_hash).decode("ascii")
        lines = (CHECKPOINT_HEADER, self.key_id, str(self.tree_size), root, self.time)
        return "".join(f"{line}\n" for line in lines).encode("ascii")


def rfc3339(moment: datetime) -> str:
    """``moment`` in UTC as RFC 3339 with microseconds, e.g. ``2026-05-01T12:00:00.000000Z``."""
    if moment.tzinfo is None:
        raise ValueError("a checkpoint time must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def key_id(public_key: Ed25519PublicKey) -> str:
    """Short identifier of a key: first 8 bytes of SHA-256 of its raw form, as hex."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).digest()[:8].hex()


def sign_checkpoint(
    private_key: Ed25519PrivateKey, tree_size: int, root_hash: bytes, time: str
) -> Checkpoint:
    """Sign the tree head ``(tree_size, root_hash, time)`` with ``private_key``."""
    unsigned = Checkpoint(tree_size, root_hash, time, key_id(private_key.public_key()))
    return Checkpoint(
        tree_size, root_hash, time, unsigned.key_id, private_key.sign(unsigned.body())
    )


def verify_checkpoint(public_key: Ed25519PublicKey, checkpoint: Checkpoint) -> None:
    """Check the checkpoint's key id and signature; raises :class:`IntegrityError`."""
    if checkpoint.key_id != key_id(public_key):
        raise IntegrityError()
    try:
        public_key.verify(checkpoint.signature, checkpoint.body())
    except InvalidSignature as exc:
        raise IntegrityError() from exc


def checkpoint_to_json(checkpoint: Checkpoint) -> dict[str, Any]:
    """JSON form: hashes and signature as lowercase hex."""
    return {
        "tree_size": checkpoint.tree_size,
        "root_hash": checkpoint.root_hash.hex(),
        "time": checkpoint.time,
        "key_id": checkpoint.key_id,
        "signature": checkpoint.signature.hex(),
    }


def checkpoint_from_json(doc: object, *, path: str | Path | None = None) -> Checkpoint:
    """Parse :func:`checkpoint_to_json`'s form; anything else is an :class:`InputError`."""
    hint = "a checkpoint is a JSON object with keys " + ", ".join(_JSON_KEYS)
    if not isinstance(doc, dict) or set(doc) != set(_JSON_KEYS):
        raise InputError("not a checkpoint", path=path, hint=hint)
    size, root, time, kid, sig = (doc[k] for k in _JSON_KEYS)
    if (
        not isinstance(size, int)
        or isinstance(size, bool)
        or size < 0
        or not all(isinstance(v, str) for v in (root, time, kid, sig))
        or not _HEX.fullmatch(root)
        or not _HEX.fullmatch(sig)
    ):
        raise InputError("malformed checkpoint", path=path, hint=hint)
    return Checkpoint(size, bytes.fromhex(root), time, kid, bytes.fromhex(sig))


def public_key_from_pem(data: bytes, *, path: str | Path | None = None) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM (SubjectPublicKeyInfo) bytes."""
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise InputError(
            "not a PEM public key", path=path, hint="pass the site's audit.pub"
        ) from exc
    if not isinstance(key, Ed25519PublicKey):
        raise InputError("not an Ed25519 public key", path=path, hint="pass the site's audit.pub")
    return key


def public_key_to_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


__all__ = [
    "CHECKPOINT_HEADER",
    "Checkpoint",
    "checkpoint_from_json",
    "checkpoint_to_json",
    "key_id",
    "public_key_from_pem",
    "public_key_to_pem",
    "rfc3339",
    "sign_checkpoint",
    "verify_checkpoint",
]
