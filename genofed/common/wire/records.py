"""Codec between the ``genofed.v1`` messages and Flower's ``RecordDict``.

A message travels as two records: a ``ConfigRecord`` holding the serialized
proto, and an ``ArrayRecord`` holding the named arrays it lists (Flower
chunks large arrays; a proto field would not be). The proto carries each
array's manifest (:class:`ArraySpec`: dtype, shape, SHA-256), and decoding
checks the arrays against it, so what the receipt and the audit log describe
is exactly what arrived.

This is the one module in ``common`` that imports Flower, and only its record
types (see docs/decisions/0001-layout.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import replace

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict
from google.protobuf.message import DecodeError

from genofed.common.errors import IntegrityError
from genofed.common.messages import ArraySpec, Reply, Request, SignedStudy
from genofed.common.signing import StudySignature
from genofed.common.study import Study, study_from_canonical
from genofed.common.wire.proto import (
    reply_from_proto,
    reply_to_proto,
    request_from_proto,
    request_to_proto,
)
from genofed.protos.v1 import genofed_pb2 as pb

REQUEST_KEY = "genofed.request"
REPLY_KEY = "genofed.reply"
ARRAYS_KEY = "genofed.arrays"
_PROTO = "proto"

NamedArrays = dict[str, np.ndarray]


def array_spec(name: str, array: np.ndarray) -> ArraySpec:
    """Manifest of one array: dtype, shape and SHA-256 of its C-order bytes."""
    data = np.ascontiguousarray(array)
    return ArraySpec(
        name=name,
        dtype=data.dtype.str,
        shape=tuple(int(n) for n in data.shape),
        sha256=hashlib.sha256(data.tobytes()).hexdigest(),
    )


def array_manifest(arrays: Mapping[str, np.ndarray]) -> tuple[ArraySpec, ...]:
    """Manifest of named arrays, in order: what the codec sends and the audit log records."""
    return tuple(array_spec(name, array) for name, array in arrays.items())


def signed_study(study: Study, signature: StudySignature | None) -> SignedStudy:
    """The study as it travels, with the analyst's signature if signed."""
    if signature is None:
        return SignedStudy(study.canonical_json(), study.sha256)
    return SignedStudy(
        study.canonical_json(), study.sha256, signature.signature, signature.public_key
    )


def study_signature(signed: SignedStudy) -> StudySignature | None:
    """The analyst's signature, or None for an unsigned study."""
    if not signed.signature and not signed.analyst_public_key:
        return None
    return StudySignature(public_key=signed.analyst_public_key, signature=signed.signature)


def study_of(signed: SignedStudy) -> Study:
    """The study, after checking that its canonical bytes match its hash."""
    return study_from_canonical(signed.canonical_json, signed.sha256)


def _pack(
    key: str, message: pb.AnalysisRequest | pb.SiteReply, arrays: Mapping[str, np.ndarray]
) -> RecordDict:
    return RecordDict(
        {
            key: ConfigRecord({_PROTO: message.SerializeToString()}),
            ARRAYS_KEY: ArrayRecord(
                array_dict={name: Array(np.ascontiguousarray(a)) for name, a in arrays.items()}
            ),
        }
    )


def _unpack_arrays(content: RecordDict, specs: tuple[ArraySpec, ...]) -> NamedArrays:
    record = content.array_records.get(ARRAYS_KEY)
    got = {} if record is None else {name: arr.numpy() for name, arr in record.items()}
    if set(got) != {s.name for s in specs}:
        raise IntegrityError()
    for spec in specs:
        if array_spec(spec.name, got[spec.name]) != spec:
            raise IntegrityError()
    return got


def _proto_bytes(content: RecordDict, key: str) -> bytes:
    record = content.config_records.get(key)
    if record is None or not isinstance(record.get(_PROTO), bytes):
        raise IntegrityError()
    data = record[_PROTO]
    assert isinstance(data, bytes)
    return data


def request_to_recorddict(request: Request, inputs: Mapping[str, np.ndarray]) -> RecordDict:
    """Encode a request; its ``inputs`` manifest is filled from ``inputs``."""
    message = request_to_proto(replace(request, inputs=array_manifest(inputs)))
    return _pack(REQUEST_KEY, message, inputs)


def request_from_recorddict(content: RecordDict) -> tuple[Request, NamedArrays]:
    message = pb.AnalysisRequest()
    try:
        message.ParseFromString(_proto_bytes(content, REQUEST_KEY))
    except DecodeError as exc:
        raise IntegrityError() from exc
    request = request_from_proto(message)
    return request, _unpack_arrays(content, request.inputs)


def reply_to_recorddict(reply: Reply, arrays: Mapping[str, np.ndarray]) -> RecordDict:
    """Encode a reply; its ``arrays`` manifest is filled from ``arrays``.

    A reply that already lists a manifest (the site agent's, which its audit
    log records) must list exactly these arrays: the bytes that leave are the
    bytes that were audited, or nothing leaves.
    """
    manifest = array_manifest(arrays)
    if reply.arrays and reply.arrays != manifest:
        raise IntegrityError()
    return _pack(REPLY_KEY, reply_to_proto(replace(reply, arrays=manifest)), arrays)


def reply_from_recorddict(content: RecordDict) -> tuple[Reply, NamedArrays]:
    message = pb.SiteReply()
    try:
        message.ParseFromString(_proto_bytes(content, REPLY_KEY))
    except DecodeError as exc:
        raise IntegrityError() from exc
    reply = reply_from_proto(message)
    return reply, _unpack_arrays(content, reply.arrays)


__all__ = [
    "NamedArrays",
    "array_manifest",
    "array_spec",
    "reply_from_recorddict",
    "reply_to_recorddict",
    "request_from_recorddict",
    "request_to_recorddict",
    "signed_study",
    "study_of",
    "study_signature",
]
