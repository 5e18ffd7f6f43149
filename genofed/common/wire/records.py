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

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

from genofed.common.errors import IntegrityError
from genofed.common.signing import StudySignature
from genofed.common.study import Study, study_from_canonical
from genofed.protos.v1 import genofed_pb2 as pb

REQUEST_KEY = "genofed.request"
REPLY_KEY = "genofed.reply"
ARRAYS_KEY = "genofed.arrays"
_PROTO = "proto"

NamedArrays = dict[str, np.ndarray]


def array_spec(name: str, array: np.ndarray) -> pb.ArraySpec:
    """Manifest of one array: dtype, shape and SHA-256 of its C-order bytes."""
    data = np.ascontiguousarray(array)
    return pb.ArraySpec(
        name=name,
        dtype=data.dtype.str,
        shape=list(data.shape),
        sha256=hashlib.sha256(data.tobytes()).hexdigest(),
    )


def array_manifest(arrays: Mapping[str, np.ndarray]) -> list[pb.ArraySpec]:
    """Manifest of named arrays, in order: what the codec sends and the audit log records."""
    return [array_spec(name, array) for name, array in arrays.items()]


def study_to_proto(study: Study) -> pb.Study:
    return pb.Study(canonical_json=study.canonical_json(), sha256=study.sha256)


def signed_study_to_proto(study: Study, signature: StudySignature | None) -> pb.SignedStudy:
    message = pb.SignedStudy(study=study_to_proto(study))
    if signature is not None:
        message.signature = signature.signature
        message.analyst_public_key = signature.public_key
    return message


def signature_from_proto(message: pb.SignedStudy) -> StudySignature | None:
    """The analyst's signature, or None for an unsigned study."""
    if not message.signature and not message.analyst_public_key:
        return None
    return StudySignature(public_key=message.analyst_public_key, signature=message.signature)


def study_from_proto(message: pb.Study) -> Study:
    """The study, after checking that its canonical bytes match its hash."""
    return study_from_canonical(message.canonical_json, message.sha256)


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


def _unpack_arrays(content: RecordDict, specs: list[pb.ArraySpec]) -> NamedArrays:
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


def request_to_recorddict(
    request: pb.AnalysisRequest, inputs: Mapping[str, np.ndarray]
) -> RecordDict:
    """Encode a request; its ``inputs`` manifest is filled from ``inputs``."""
    message = pb.AnalysisRequest()
    message.CopyFrom(request)
    del message.inputs[:]
    message.inputs.extend(array_spec(n, a) for n, a in inputs.items())
    return _pack(REQUEST_KEY, message, inputs)


def request_from_recorddict(content: RecordDict) -> tuple[pb.AnalysisRequest, NamedArrays]:
    message = pb.AnalysisRequest()
    message.ParseFromString(_proto_bytes(content, REQUEST_KEY))
    return message, _unpack_arrays(content, list(message.inputs))


def reply_to_recorddict(reply: pb.SiteReply, arrays: Mapping[str, np.ndarray]) -> RecordDict:
    """Encode a reply; its ``arrays`` manifest is filled from ``arrays``.

    A reply that already lists a manifest (the site agent's, which its audit
    log records) must list exactly these arrays: the bytes that leave are the
    bytes that were audited, or nothing leaves.
    """
    manifest = array_manifest(arrays)
    if reply.arrays and list(reply.arrays) != manifest:
        raise IntegrityError()
    message = pb.SiteReply()
    message.CopyFrom(reply)
    del message.arrays[:]
    message.arrays.extend(manifest)
    return _pack(REPLY_KEY, message, arrays)


def reply_from_recorddict(content: RecordDict) -> tuple[pb.SiteReply, NamedArrays]:
    message = pb.SiteReply()
    message.ParseFromString(_proto_bytes(content, REPLY_KEY))
    return message, _unpack_arrays(content, list(message.arrays))


__all__ = [
    "NamedArrays",
    "array_manifest",
    "array_spec",
    "reply_from_recorddict",
    "reply_to_recorddict",
    "request_from_recorddict",
    "request_to_recorddict",
    "signature_from_proto",
    "signed_study_to_proto",
    "study_from_proto",
    "study_to_proto",
]
