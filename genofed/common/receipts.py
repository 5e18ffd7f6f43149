"""Checking a site's receipt: is this release in the site's signed audit log?

Each reply a site sends carries a :class:`~genofed.common.messages.Receipt`:
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

A replay (the same request of the same study again, answered from the
site's stored charged release with the same bytes: :data:`REPLAY_FACT`
names the original entry) carries the original release's receipt: its
entry is of the run that was charged, an earlier run of the same study. It
verifies when the entry is the one the reply says it repeats; everything but
the run is checked as above.

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

from genofed.common.checkpoint import verify_checkpoint
from genofed.common.errors import IntegrityError
from genofed.common.merkle import leaf_hash, verify_inclusion
from genofed.common.messages import ArraySpec, AuditEntry, AuditKind, Reply, Request
from genofed.common.wire.proto import audit_entry_from_bytes

#: The decision a release entry records.
RELEASE_DECISION = "approved"


def _manifest(arrays: Sequence[ArraySpec]) -> list[tuple[str, str, tuple[int, ...], str]]:
    return [(a.name, a.dtype, tuple(a.shape), a.sha256) for a in arrays]


def verify_receipt(public_key: Ed25519PublicKey, request: Request, reply: Reply) -> AuditEntry:
    """Check ``reply``'s receipt for ``request`` against the site's audit key.

    Returns the audit entry the receipt cites; raises :class:`IntegrityError`
    if anything does not hold (see the module docstring).
    """
    receipt = reply.receipt
    checkpoint = receipt.checkpoint
    if not receipt.audited or not receipt.entry or checkpoint is None:
        raise IntegrityError()
    verify_checkpoint(public_key, checkpoint)
    verify_inclusion(
        receipt.audit_index,
        checkpoint.tree_size,
        leaf_hash(receipt.entry),
        list(receipt.inclusion_proof),
        checkpoint.root_hash,
    )
    entry = audit_entry_from_bytes(receipt.entry)
    # the original release's receipt, for a replay of it (the run charged was an earlier one)
    replayed = reply.facts.get(REPLAY_FACT) == str(entry.index)
    if (
        entry.index != receipt.audit_index
        or entry.kind != AuditKind.RELEASE
        or entry.decision != RELEASE_DECISION
        or entry.study_sha256 != request.study.sha256
        or entry.study_sha256 != reply.study_sha256
        or (entry.run_id != request.run_id and not replayed)
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


#: Reply fact of a release that repeats a stored charged one (the same request of the same
#: study again, answered with the same values and no new charge): the original's audit index.
REPLAY_FACT = "replay_of_audit_index"

#: Reply fact of a release the disclosure guard served over an earlier release's samples
#: (:meth:`genofed.site_agent.privacy.guard.ReleaseGuard.align`): how many of the samples the
#: request asked for it left out.
GUARD_LEFT_OUT_FACT = "guard_left_out"
#: Reply fact of a count release checked for membership inference
#: (:mod:`genofed.site_agent.privacy.membership_release`): the estimated power of the
#: likelihood-ratio membership test on what was released, after withholding.
MEMBERSHIP_POWER_FACT = "membership_power"
#: Site fact of a site whose policy sets ``max_membership_power``: the limit and the
#: false-positive rate (``"0.1 0.05"``), which the coordinator applies to ``exact``-mode
#: pooled counts, as it applies the sites' ``min_cell_count`` to them.
MEMBERSHIP_LIMIT_FACT = "membership_limit"
#: Reply fact of a ``glm_stats`` release with ``few_missing = "impute"`` or
#: ``"impute-unreleasable"``: how many variants the site imputed missing calls at.
GLM_IMPUTED_FACT = "glm_imputed_variants"
#: Site fact of a site whose genotype files also hold dosages, which it does not read
#: yet: its value says that hard calls were used (provenance.json lists it per site).
DOSAGES_FACT = "genotype_dosages"
#: Site fact: the genome build of its files ("GRCh37", "GRCh38" or "unknown"), from site.toml
#: or the VCF/.pvar header; the coordinator refuses a study whose sites' builds differ.
GENOME_BUILD_FACT = "genome_build"

__all__ = [
    "DOSAGES_FACT",
    "GENOME_BUILD_FACT",
    "GLM_IMPUTED_FACT",
    "GUARD_LEFT_OUT_FACT",
    "MEMBERSHIP_LIMIT_FACT",
    "MEMBERSHIP_POWER_FACT",
    "RELEASE_DECISION",
    "REPLAY_FACT",
    "verify_receipt",
]
