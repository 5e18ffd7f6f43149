"""Checking a site's receipt: is this release in the site's signed audit log?

Each reply a site sends carries a :class:`~genofed.protos.v1.genofed_pb2.Receipt`:
the canonical bytes of the audit entry that records the reply, the entry's
index, the Ed25519-signed checkpoint of the site's log right after that entry
was appended, and the entry's RFC 6962 inclusion proof in that checkpoint's
tree. With the site's published audit key (``state/audit.pub``) alone, the
coordinator can then check that

1. the checkpoint is signed by that key (and names it),
2. the entry is leaf ``audit_index`` of the signed tree (inclusion proof),
3. the entry is a release of *this* reply: same study, run, request kind,
   analysis and step, the same array manifest (names, dtypes, shapes,
   SHA-256 of the bytes that arrived) and the same epsilon and delta charged.

A site can therefore not hand the coordinator data that its own log does not
record, without the signature giving it away when the privacy officer
verifies the log.

Like every integrity check here, :func:`verify_receipt` raises the opaque
:class:`~genofed.common.errors.IntegrityError`, whatever failed.

Pure: messages and a key in, an entry out; no I/O, logging or clock.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from google.protobuf.message import DecodeError

from genofed.common.checkpoint import checkpoint_from_proto, verify_checkpoint
from genofed.common.errors import IntegrityError
from genofed.common.merkle import leaf_hash, verify_inclusion
from genofed.protos.v1 import genofed_pb2 as pb

#: The decision a release entry records.
RELEASE_DECISION = "approved"


def _manifest(arrays: Sequence[pb.ArraySpec]) -> list[tuple[str, str, tuple[int, ...], str]]:
    return [(a.name, a.dtype, tuple(a.shape), a.sha256) for a in arrays]


def verify_receipt(
    public_key: Ed25519PublicKey, request: pb.AnalysisRequest, reply: pb.SiteReply
) -> pb.AuditEntry:
    """Check ``reply``'s receipt for ``request`` against the site's audit key.

    Returns the audit entry the receipt cites; raises :class:`IntegrityError`
    if anything does not hold (see the module docstring).
    """
    receipt = reply.receipt
    if not receipt.audited or not receipt.entry or not receipt.HasField("checkpoint"):
        raise IntegrityError()
    checkpoint = checkpoint_from_proto(receipt.checkpoint)
    verify_checkpoint(public_key, checkpoint)
    verify_inclusion(
        receipt.audit_index,
        checkpoint.tree_size,
        leaf_hash(receipt.entry),
        list(receipt.inclusion_proof),
        checkpoint.root_hash,
    )
    entry = pb.AuditEntry()
    try:
        entry.ParseFromString(receipt.entry)
    except DecodeError as exc:
        raise IntegrityError() from exc
    if (
        entry.index != receipt.audit_index
        or entry.kind != pb.AUDIT_KIND_RELEASE
        or entry.decision != RELEASE_DECISION
        or entry.study_sha256 != request.study.study.sha256
        or entry.study_sha256 != reply.study_sha256
        or entry.run_id != request.run_id
        or entry.request_kind != request.kind
        or entry.analysis_id != request.analysis_id
        or entry.step != request.step
        or entry.round != request.round
        or _manifest(entry.arrays) != _manifest(reply.arrays)
        or entry.epsilon != receipt.epsilon_charged
        or entry.delta != receipt.delta_charged
    ):
        raise IntegrityError()
    return entry


__all__ = ["RELEASE_DECISION", "verify_receipt"]
