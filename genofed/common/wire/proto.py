"""Codec between :mod:`genofed.common.messages` and the generated ``genofed.v1`` protos.

With the Flower record codec (:mod:`.records`), the admin servicer and its
client, this is where generated protobuf classes are used; everything else
works with the plain values of :mod:`genofed.common.messages` (an
import-linter contract holds this). Converters are named ``x_to_proto`` /
``x_from_proto``; bytes forms ``x_to_bytes`` / ``x_from_bytes``.

An audit entry's canonical bytes (a Merkle leaf, cited by receipts) are the
proto's serialization: protobuf writes known fields in field-number order, so
the same entry always gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError

from genofed.common.checkpoint import Checkpoint
from genofed.common.errors import IntegrityError
from genofed.common.messages import (
    ArraySpec,
    AuditEntry,
    AuditKind,
    Receipt,
    Reply,
    Request,
    SignedStudy,
    Status,
)
from genofed.protos.v1 import genofed_pb2 as pb


def array_spec_to_proto(spec: ArraySpec) -> pb.ArraySpec:
    return pb.ArraySpec(
        name=spec.name, dtype=spec.dtype, shape=list(spec.shape), sha256=spec.sha256
    )


def array_spec_from_proto(message: pb.ArraySpec) -> ArraySpec:
    return ArraySpec(message.name, message.dtype, tuple(message.shape), message.sha256)


def _specs(messages: Iterable[pb.ArraySpec]) -> tuple[ArraySpec, ...]:
    return tuple(array_spec_from_proto(m) for m in messages)


def checkpoint_to_proto(checkpoint: Checkpoint) -> pb.Checkpoint:
    return pb.Checkpoint(
        tree_size=checkpoint.tree_size,
        root_hash=checkpoint.root_hash,
        time=checkpoint.time,
        signature=checkpoint.signature,
        key_id=checkpoint.key_id,
    )


def checkpoint_from_proto(message: pb.Checkpoint) -> Checkpoint:
    return Checkpoint(
        tree_size=message.tree_size,
        root_hash=message.root_hash,
        time=message.time,
        key_id=message.key_id,
        signature=message.signature,
    )


def signed_study_to_proto(study: SignedStudy) -> pb.SignedStudy:
    return pb.SignedStudy(
        study=pb.Study(canonical_json=study.canonical_json, sha256=study.sha256),
        signature=study.signature,
        analyst_public_key=study.analyst_public_key,
    )


def signed_study_from_proto(message: pb.SignedStudy) -> SignedStudy:
    return SignedStudy(
        canonical_json=message.study.canonical_json,
        sha256=message.study.sha256,
        signature=message.signature,
        analyst_public_key=message.analyst_public_key,
    )


def request_to_proto(request: Request) -> pb.AnalysisRequest:
    return pb.AnalysisRequest(
        study=signed_study_to_proto(request.study),
        analysis_id=request.analysis_id,
        kind=request.kind,
        step=request.step,
        round=request.round,
        run_id=request.run_id,
        inputs=[array_spec_to_proto(s) for s in request.inputs],
    )


def request_from_proto(message: pb.AnalysisRequest) -> Request:
    return Request(
        study=signed_study_from_proto(message.study),
        analysis_id=message.analysis_id,
        kind=message.kind,
        step=message.step,
        round=message.round,
        run_id=message.run_id,
        inputs=_specs(message.inputs),
    )


def request_to_bytes(request: Request) -> bytes:
    data: bytes = request_to_proto(request).SerializeToString()  # protobuf ships no types
    return data


def request_from_bytes(data: bytes) -> Request:
    """Raises :class:`IntegrityError` for bytes that are not a request."""
    message = pb.AnalysisRequest()
    try:
        message.ParseFromString(data)
    except DecodeError as exc:
        raise IntegrityError() from exc
    return request_from_proto(message)


def receipt_to_proto(receipt: Receipt) -> pb.Receipt:
    message = pb.Receipt(
        audited=receipt.audited,
        audit_index=receipt.audit_index,
        epsilon_charged=receipt.epsilon_charged,
        delta_charged=receipt.delta_charged,
        entry=receipt.entry,
        inclusion_proof=list(receipt.inclusion_proof),
    )
    if receipt.checkpoint is not None:
        message.checkpoint.CopyFrom(checkpoint_to_proto(receipt.checkpoint))
    return message


def receipt_from_proto(message: pb.Receipt) -> Receipt:
    return Receipt(
        audited=message.audited,
        audit_index=message.audit_index,
        checkpoint=(
            checkpoint_from_proto(message.checkpoint) if message.HasField("checkpoint") else None
        ),
        epsilon_charged=message.epsilon_charged,
        delta_charged=message.delta_charged,
        entry=message.entry,
        inclusion_proof=tuple(message.inclusion_proof),
    )


def receipt_to_bytes(receipt: Receipt) -> bytes:
    """A receipt as ``genofed.v1.Receipt`` bytes (a site keeps it with a charged release)."""
    return bytes(receipt_to_proto(receipt).SerializeToString(deterministic=True))


def receipt_from_bytes(data: bytes) -> Receipt:
    """:func:`receipt_to_bytes` reversed; :class:`IntegrityError` if they do not parse."""
    message = pb.Receipt()
    try:
        message.ParseFromString(data)
    except DecodeError as exc:
        raise IntegrityError() from exc
    return receipt_from_proto(message)


def reply_to_proto(reply: Reply) -> pb.SiteReply:
    message = pb.SiteReply(
        site=reply.site,
        study_sha256=reply.study_sha256,
        analysis_id=reply.analysis_id,
        step=reply.step,
        status=int(reply.status),  # type: ignore[arg-type]
        reason_code=reply.reason_code,
        message=reply.message,
        arrays=[array_spec_to_proto(s) for s in reply.arrays],
        software_version=reply.software_version,
    )
    for key, value in reply.facts.items():
        message.facts[key] = value
    if reply.receipt != Receipt():
        message.receipt.CopyFrom(receipt_to_proto(reply.receipt))
    return message


def reply_from_proto(message: pb.SiteReply) -> Reply:
    try:
        status = Status(message.status)
    except ValueError as exc:
        raise IntegrityError() from exc
    return Reply(
        site=message.site,
        study_sha256=message.study_sha256,
        analysis_id=message.analysis_id,
        step=message.step,
        status=status,
        reason_code=message.reason_code,
        message=message.message,
        arrays=_specs(message.arrays),
        facts=dict(message.facts),
        receipt=receipt_from_proto(message.receipt) if message.HasField("receipt") else Receipt(),
        software_version=message.software_version,
    )


def reply_to_bytes(reply: Reply) -> bytes:
    data: bytes = reply_to_proto(reply).SerializeToString()  # protobuf ships no types
    return data


def reply_from_bytes(data: bytes) -> Reply:
    """Raises :class:`IntegrityError` for bytes that are not a reply."""
    message = pb.SiteReply()
    try:
        message.ParseFromString(data)
    except DecodeError as exc:
        raise IntegrityError() from exc
    return reply_from_proto(message)


def audit_entry_to_proto(entry: AuditEntry) -> pb.AuditEntry:
    return pb.AuditEntry(
        index=entry.index,
        time=entry.time,
        kind=int(entry.kind),  # type: ignore[arg-type]
        study_sha256=entry.study_sha256,
        analysis_id=entry.analysis_id,
        run_id=entry.run_id,
        decision=entry.decision,
        reason=entry.reason,
        arrays=[array_spec_to_proto(s) for s in entry.arrays],
        noise=entry.noise,
        epsilon=entry.epsilon,
        delta=entry.delta,
        request_kind=entry.request_kind,
        step=entry.step,
        round=entry.round,
        inputs=[array_spec_to_proto(s) for s in entry.inputs],
        sample_sets=list(entry.sample_sets),
        signer=entry.signer,
    )


def audit_entry_from_proto(message: pb.AuditEntry) -> AuditEntry:
    try:
        kind = AuditKind(message.kind)
    except ValueError as exc:
        raise IntegrityError() from exc
    return AuditEntry(
        index=message.index,
        time=message.time,
        kind=kind,
        study_sha256=message.study_sha256,
        analysis_id=message.analysis_id,
        run_id=message.run_id,
        decision=message.decision,
        reason=message.reason,
        arrays=_specs(message.arrays),
        noise=message.noise,
        epsilon=message.epsilon,
        delta=message.delta,
        request_kind=message.request_kind,
        step=message.step,
        round=message.round,
        inputs=_specs(message.inputs),
        sample_sets=tuple(message.sample_sets),
        signer=message.signer,
    )


def audit_entry_to_json(entry: AuditEntry) -> dict[str, Any]:
    """The entry's readable form: every field, proto field names, protobuf's JSON mapping."""
    doc: dict[str, Any] = json_format.MessageToDict(
        audit_entry_to_proto(entry),
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )
    return doc


def audit_entry_to_bytes(entry: AuditEntry) -> bytes:
    """The entry's canonical bytes: the Merkle leaf that receipts cite."""
    data: bytes = audit_entry_to_proto(entry).SerializeToString(deterministic=True)
    return data


def audit_entry_from_bytes(data: bytes) -> AuditEntry:
    """Raises :class:`IntegrityError` for bytes that are not an audit entry."""
    message = pb.AuditEntry()
    try:
        message.ParseFromString(data)
    except DecodeError as exc:
        raise IntegrityError() from exc
    return audit_entry_from_proto(message)


__all__ = [
    "array_spec_from_proto",
    "array_spec_to_proto",
    "audit_entry_from_bytes",
    "audit_entry_from_proto",
    "audit_entry_to_bytes",
    "audit_entry_to_json",
    "audit_entry_to_proto",
    "checkpoint_from_proto",
    "checkpoint_to_proto",
    "receipt_from_bytes",
    "receipt_from_proto",
    "receipt_to_bytes",
    "receipt_to_proto",
    "reply_from_bytes",
    "reply_from_proto",
    "reply_to_bytes",
    "reply_to_proto",
    "request_from_bytes",
    "request_from_proto",
    "request_to_bytes",
    "request_to_proto",
    "signed_study_from_proto",
    "signed_study_to_proto",
]
