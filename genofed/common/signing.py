"""Ed25519 keys and signed studies.

An analyst signs a study's canonical bytes (``Study.canonical_json``) with an
Ed25519 key; a site verifies the signature against the analyst keys its
privacy officer trusts. The signed message is the canonical bytes behind a
domain tag (:data:`STUDY_SIGNATURE_CONTEXT`), so a study signature can never
be replayed as a signature over anything else (a checkpoint, say).

Key files:

* private key: PKCS #8 PEM, written owner-only (0600);
* public key: one line ``ed25519:<base64 of the raw 32 bytes>``, short
  enough to paste into a site's ``policy.toml``.

A signed study file (``genofed study sign``) is JSON::

    {"format": "genofed.signed-study/v1",
     "study": "<canonical JSON, as a string>",
     "sha256": "<hex>",
     "public_key": "ed25519:...",
     "signature": "<base64>"}

Every failure to verify (bad signature, unknown key, altered study, malformed
file) raises the same opaque :class:`IntegrityError`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from genofed.common.errors import ConfigError, InputError, IntegrityError
from genofed.common.study import Study, study_from_canonical

#: Domain separation tag prefixed to a study's canonical bytes before signing.
STUDY_SIGNATURE_CONTEXT = b"genofed.v1.study\x00"
SIGNED_STUDY_FORMAT = "genofed.signed-study/v1"
PUBLIC_KEY_PREFIX = "ed25519:"


@dataclass(frozen=True)
class StudySignature:
    """An analyst's signature over a study's canonical bytes."""

    public_key: bytes  # raw 32-byte Ed25519 key
    signature: bytes  # 64 bytes


def generate_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def public_key_text(key: Ed25519PublicKey | bytes) -> str:
    """``ed25519:<base64>`` for a public key (object or raw bytes)."""
    raw = key if isinstance(key, bytes) else _raw_public(key)
    return PUBLIC_KEY_PREFIX + base64.b64encode(raw).decode("ascii")


def parse_public_key(text: str) -> bytes:
    """Raw 32 bytes from ``ed25519:<base64>``; ``ValueError`` when malformed."""
    text = text.strip()
    if not text.startswith(PUBLIC_KEY_PREFIX):
        raise ValueError(f"an Ed25519 public key starts with {PUBLIC_KEY_PREFIX!r}")
    try:
        raw = base64.b64decode(text[len(PUBLIC_KEY_PREFIX) :], validate=True)
    except binascii.Error as exc:
        raise ValueError("the key is not valid base64") from exc
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key has 32 bytes, not {len(raw)}")
    return raw


def key_id(public_key: bytes) -> str:
    """A short, stable name for a public key: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(public_key).hexdigest()[:16]


def write_keypair(path: Path, key: Ed25519PrivateKey, *, overwrite: bool = False) -> Path:
    """Write ``path`` (private, 0600) and ``path.pub``; returns the public key path."""
    path = Path(path)
    pub_path = path.with_name(path.name + ".pub")
    for target in (path, pub_path):
        if target.exists() and not overwrite:
            raise InputError("already exists", path=target, hint="choose another --out")
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    tmp.replace(path)
    pub_path.write_text(public_key_text(key.public_key()) + "\n")
    return pub_path


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Read a PKCS #8 PEM Ed25519 private key; errors name the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the key: {exc.strerror}", path=path) from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise InputError(
            "not an unencrypted PEM private key",
            path=path,
            hint="make one with: genofed study keygen --out KEY",
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError("not an Ed25519 key", path=path, hint="genofed study keygen --out KEY")
    return key


def load_public_key(path: Path) -> bytes:
    path = Path(path)
    try:
        return parse_public_key(path.read_text())
    except OSError as exc:
        raise InputError(f"cannot read the key: {exc.strerror}", path=path) from exc
    except ValueError as exc:
        raise InputError(str(exc), path=path, hint="expected one line: ed25519:<base64>") from exc


def sign_study(study: Study, key: Ed25519PrivateKey) -> StudySignature:
    signature = key.sign(STUDY_SIGNATURE_CONTEXT + study.canonical_json())
    return StudySignature(public_key=_raw_public(key.public_key()), signature=signature)


def verify_study_signature(
    canonical_json: bytes, signature: StudySignature, trusted: Mapping[str, bytes]
) -> str:
    """The trusted analyst's name whose key signed ``canonical_json``.

    ``trusted`` maps analyst names to raw public keys. An unknown key and a
    signature that does not verify raise the same :class:`IntegrityError`.
    """
    name = next((n for n, k in trusted.items() if k == signature.public_key), None)
    if name is None:
        raise IntegrityError()
    try:
        Ed25519PublicKey.from_public_bytes(signature.public_key).verify(
            signature.signature, STUDY_SIGNATURE_CONTEXT + canonical_json
        )
    except (InvalidSignature, ValueError) as exc:
        raise IntegrityError() from exc
    return name


def signed_study_json(study: Study, signature: StudySignature) -> str:
    doc = {
        "format": SIGNED_STUDY_FORMAT,
        "study": study.canonical_json().decode("utf-8"),
        "sha256": study.sha256,
        "public_key": public_key_text(signature.public_key),
        "signature": base64.b64encode(signature.signature).decode("ascii"),
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def is_signed_study_file(path: Path) -> bool:
    return Path(path).suffix == ".json"


def load_signed_study(path: Path) -> tuple[Study, StudySignature]:
    """Read a signed study file and check that it is internally consistent.

    The signature is checked against the key the file names, so a file
    altered after signing is caught here, before any site sees it; whether
    that key is trusted is for each site to decide.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(
            f"cannot read the signed study: {exc.strerror}",
            path=path,
            hint="check the path and that the file is readable by this user",
        ) from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"not a JSON signed study ({exc})",
            path=path,
            hint="give the .signed.json that `genofed study sign` wrote, unchanged "
            "(or the study.toml itself)",
        ) from exc
    if not isinstance(doc, dict) or doc.get("format") != SIGNED_STUDY_FORMAT:
        raise ConfigError(
            f"not a signed study (expected format {SIGNED_STUDY_FORMAT!r})",
            path=path,
            hint="make one with: genofed study sign study.toml --key KEY",
        )
    try:
        canonical = str(doc["study"]).encode("utf-8")
        signature = StudySignature(
            public_key=parse_public_key(str(doc["public_key"])),
            signature=base64.b64decode(str(doc["signature"]), validate=True),
        )
        study = study_from_canonical(canonical, str(doc["sha256"]))
        verify_study_signature(canonical, signature, {"signer": signature.public_key})
    except (KeyError, ValueError, binascii.Error, IntegrityError) as exc:
        raise InputError(
            "the signed study does not verify: it was altered after signing or is malformed",
            path=path,
            hint="sign the study again with: genofed study sign study.toml --key KEY",
        ) from exc
    return study, signature


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


__all__ = [
    "PUBLIC_KEY_PREFIX",
    "SIGNED_STUDY_FORMAT",
    "STUDY_SIGNATURE_CONTEXT",
    "StudySignature",
    "generate_private_key",
    "is_signed_study_file",
    "key_id",
    "load_private_key",
    "load_public_key",
    "load_signed_study",
    "parse_public_key",
    "public_key_text",
    "sign_study",
    "signed_study_json",
    "verify_study_signature",
    "write_keypair",
]
