"""The messages both sides exchange, as plain values.

What travels is ``protos/v1/genofed.proto``; everything above the codec
(:mod:`genofed.common.wire.proto`) works with these frozen dataclasses
instead of generated protobuf classes, so that only codec and servicer
modules depend on generated code. Field names follow the proto's.

* :class:`Request` — one request from the coordinator to a site.
* :class:`Reply` — a site's answer: status, the manifest of the named
  arrays that travel beside it, facts, and a :class:`Receipt`.
* :class:`AuditEntry` — one entry of a site's audit log; its canonical bytes
  (the codec's :func:`~genofed.common.wire.proto.audit_entry_to_bytes`) are a
  Merkle leaf.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from genofed.common.checkpoint import Checkpoint


class Status(enum.IntEnum):
    """A reply's status (the proto's ``ReplyStatus``; same numbers)."""

    UNSPECIFIED = 0
    OK = 1
    REFUSED = 2  # the site's policy refused the request
    ERROR = 3  # the site could not compute (bad input, ...)


class AuditKind(enum.IntEnum):
    """An audit entry's kind (the proto's ``AuditKind``; same numbers)."""

    UNSPECIFIED = 0
    REQUEST = 1
    DECISION = 2
    REFUSAL = 3
    RELEASE = 4


@dataclass(frozen=True)
class ArraySpec:
    """Shape and hash of one named array: what the audit log and receipts bind to."""

    name: str
    dtype: str  # numpy dtype string, e.g. "<i8"
    shape: tuple[int, ...]
    sha256: str  # of the array's C-order bytes


@dataclass(frozen=True)
class SignedStudy:
    """A study's canonical bytes and hash, with the analyst's signature if signed."""

    canonical_json: bytes
    sha256: str
    signature: bytes = b""
    analyst_public_key: bytes = b""


@dataclass(frozen=True)
class Request:
    """One request from the coordinator to a site."""

    study: SignedStudy = field(default_factory=lambda: SignedStudy(b"", ""))
    analysis_id: str = ""
    kind: str = ""
    step: str = ""
    round: int = 0
    run_id: str = ""
    inputs: tuple[ArraySpec, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))


@dataclass(frozen=True)
class Receipt:
    """What a site gives back with a reply so that it can be checked against its audit log."""

    audited: bool = False
    audit_index: int = 0
    checkpoint: Checkpoint | None = None
    epsilon_charged: float = 0.0
    delta_charged: float = 0.0
    entry: bytes = b""  # the canonical AuditEntry bytes at audit_index
    inclusion_proof: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "inclusion_proof", tuple(self.inclusion_proof))


def _frozen(facts: Mapping[str, str] | None = None) -> Mapping[str, str]:
    return MappingProxyType(dict(facts or {}))


@dataclass(frozen=True)
class Reply:
    """One reply from a site."""

    site: str = ""
    study_sha256: str = ""
    analysis_id: str = ""
    step: str = ""
    status: Status = Status.UNSPECIFIED
    reason_code: str = ""  # machine-readable, e.g. "INPUT_ERROR"
    message: str = ""  # human-readable
    arrays: tuple[ArraySpec, ...] = ()
    facts: Mapping[str, str] = field(default_factory=_frozen)
    receipt: Receipt = field(default_factory=Receipt)
    software_version: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.facts, MappingProxyType):
            object.__setattr__(self, "facts", _frozen(self.facts))
        object.__setattr__(self, "arrays", tuple(self.arrays))
        object.__setattr__(self, "status", Status(self.status))

    @property
    def ok(self) -> bool:
        return self.status == Status.OK


@dataclass(frozen=True)
class AuditEntry:
    """One entry of a site's append-only audit log."""

    index: int = 0
    time: str = ""  # RFC 3339, UTC
    kind: AuditKind = AuditKind.UNSPECIFIED
    study_sha256: str = ""
    analysis_id: str = ""
    run_id: str = ""
    decision: str = ""  # "approved", "refused", ...
    reason: str = ""
    arrays: tuple[ArraySpec, ...] = ()
    noise: str = ""  # mechanism and parameters, JSON
    epsilon: float = 0.0
    delta: float = 0.0
    request_kind: str = ""
    step: str = ""
    round: int = 0
    inputs: tuple[ArraySpec, ...] = ()  # arrays that came with the request
    #: ``"column:sha256"`` of each sample set the release summed over (the disclosure guard)
    sample_sets: tuple[str, ...] = ()
    #: ``ed25519:<base64>`` key the study arrived signed with; empty: unsigned (or older entry)
    signer: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "arrays", tuple(self.arrays))
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "sample_sets", tuple(self.sample_sets))
        object.__setattr__(self, "kind", AuditKind(self.kind))


__all__ = [
    "ArraySpec",
    "AuditEntry",
    "AuditKind",
    "Receipt",
    "Reply",
    "Request",
    "SignedStudy",
    "Status",
]
