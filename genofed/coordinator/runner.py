"""The study protocol, as the coordinator drives it.

1. ``variants`` round: every site sends its variant table; the coordinator
   harmonizes them (``combine/harmonize.py``) and stops on differences the
   study does not allow.
2. One ``genotype_counts`` round serves every count analysis of the study
   (``freq``, ``hardy``, ``missing``, ``gcount``): each site sends per-variant
   genotype counts for the study's variants, in the study's allele
   orientation; the coordinator sums them and writes each table.
3. ``provenance.json`` records the study, the sites, what they reported and
   the software versions.

Results are written to a staging directory beside ``out`` and moved into
place only when everything succeeded, so a failed study leaves no partial
result that looks complete.

Any site's error or refusal stops the study and names the site (continuing
without a site, up to ``min_sites``, comes with the deployment work).
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from genofed.common.analyses import COUNT_KINDS, GLM_KIND, VARIANTS_KIND
from genofed.common.checkpoint import checkpoint_from_proto, checkpoint_to_json
from genofed.common.errors import GenoFedError, InputError, SiteFailure
from genofed.common.records import NamedArrays, signed_study_to_proto
from genofed.common.signing import StudySignature, public_key_text
from genofed.common.study import AnalysisSpec, Study
from genofed.coordinator.combine.harmonize import Harmonization, VariantTable, harmonize
from genofed.coordinator.glm_protocol import run_glm
from genofed.coordinator.outputs import write_count_outputs
from genofed.coordinator.transport import Incoming, Outgoing, Transport
from genofed.coordinator.writers.provenance import write_harmonization, write_provenance
from genofed.protos.v1 import genofed_pb2 as pb

log = logging.getLogger("genofed.coordinator")

GENOTYPE_COUNTS_KIND = "genotype_counts"
DEFAULT_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Progress:
    """One event for a progress display."""

    step: str  # "round", "site", "analysis", "done"
    message: str
    round: int = 0
    total_rounds: int = 0


@dataclass
class SiteRecord:
    """What the coordinator learned about one site during a run."""

    node_id: int
    name: str
    facts: dict[str, str] = field(default_factory=dict)
    software_version: str = ""
    replies: list[dict[str, object]] = field(default_factory=list)


@dataclass(frozen=True)
class StudyOutcome:
    out: Path
    study: Study
    run_id: str
    sites: tuple[SiteRecord, ...]
    harmonization: Harmonization
    outputs: tuple[str, ...]
    summary: dict[str, object]


def outcome_doc(outcome: StudyOutcome) -> dict[str, object]:
    """A JSON-able summary of a finished study."""
    return {
        "study": outcome.study.name,
        "sha256": outcome.study.sha256,
        "run_id": outcome.run_id,
        "out": str(outcome.out),
        "outputs": list(outcome.outputs),
        "sites": [{"name": s.name, **s.facts} for s in outcome.sites],
        "summary": outcome.summary,
    }


ProgressFn = Callable[[Progress], None]
Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def run_study(
    study: Study,
    transport: Transport,
    out: Path,
    *,
    engine: str,
    overwrite: bool = False,
    run_id: str | None = None,
    progress: ProgressFn | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    clock: Clock = _utcnow,
    signature: StudySignature | None = None,
) -> StudyOutcome:
    """Run ``study`` over ``transport`` and write its results to ``out``.

    ``signature`` is the analyst's signature over the study; it travels with
    every request so that each site can check it against its policy.
    """
    notify = progress or (lambda _event: None)
    signed = signed_study_to_proto(study, signature)
    run_id = run_id or uuid.uuid4().hex[:16]
    started = clock()
    _check_out(out, overwrite)
    nodes = sorted(transport.nodes())
    need = study.min_sites or 1
    if len(nodes) < need:
        raise GenoFedError(f"{len(nodes)} sites connected; the study needs at least {need}")
    count_ids = [a.id for a in study.analyses if a.kind in COUNT_KINDS]
    total = 1 + (1 if count_ids else 0)

    notify(Progress("round", f"round 1/{total}: variant harmonization", 1, total))
    replies = _ask(
        transport,
        nodes,
        _request(signed, run_id, VARIANTS_KIND, "variants", 1),
        {},
        timeout,
        notify,
    )
    sites = {
        n: SiteRecord(n, r.site, dict(r.facts), r.software_version) for n, (r, _) in replies.items()
    }
    _check_site_names(sites)
    order = sorted(nodes, key=lambda n: sites[n].name)
    tables = [_variant_table(sites[n].name, replies[n][1]) for n in order]
    harmonization = harmonize(
        [sites[n].name for n in order],
        tables,
        allow_intersection=study.on_variant_mismatch == "intersect",
    )
    for n in order:
        sites[n].replies.append(_reply_record(VARIANTS_KIND, replies[n][0]))

    staging = out.parent / f".{out.name}.partial-{run_id}"
    staging.mkdir(parents=True)
    try:
        outputs: list[str] = [write_harmonization(staging, harmonization)]
        summary: dict[str, object] = {"n_variants": len(harmonization.variants)}
        if count_ids:
            notify(
                Progress(
                    "round",
                    f"round 2/{total}: genotype counts for {', '.join(count_ids)}",
                    2,
                    total,
                )
            )
            plans = dict(zip(order, harmonization.plans, strict=True))
            outgoing = {
                n: Outgoing(
                    _request(signed, run_id, GENOTYPE_COUNTS_KIND, ",".join(count_ids), 2),
                    {"variant_index": plans[n].index, "flip": plans[n].flip},
                )
                for n in order
            }
            replies = _exchange(transport, outgoing, timeout, notify)
            n_variants = len(harmonization.variants)
            per_site = []
            dp = study.privacy.mode == "dp"
            for n in order:
                reply, arrays = replies[n]
                sites[n].replies.append(_reply_record(GENOTYPE_COUNTS_KIND, reply))
                per_site.append(_checked_counts(sites[n].name, arrays, n_variants, noisy=dp))
            pooled = np.sum(per_site, axis=0)
            if dp:  # post-processing of noisy sums: a count cannot be negative
                pooled = np.maximum(pooled, 0)
            for spec in study.analyses:
                if spec.kind in COUNT_KINDS:
                    notify(Progress("analysis", f"combining {spec.id} ({spec.kind})"))
                    files, stats = write_count_outputs(
                        staging, spec, harmonization.variants, pooled
                    )
                    outputs.extend(files)
                    summary[spec.id] = stats
        glm_rounds = iter(range(3, 10**6))
        for spec in study.analyses:
            if spec.kind == GLM_KIND:
                notify(Progress("analysis", f"running {spec.id} (glm, several rounds)"))

                def ask(kind: str, ident: str, inputs: Sequence[NamedArrays]) -> list[Reply]:
                    req = _request(signed, run_id, kind, ident, next(glm_rounds))
                    out = {n: Outgoing(req, x) for n, x in zip(order, inputs, strict=True)}
                    got = _exchange(transport, out, timeout, notify)
                    for n in order:
                        sites[n].replies.append(_reply_record(kind, got[n][0]))
                    return [got[n] for n in order]

                prefix = _glm_prefix(study, spec)
                files, stats = run_glm(spec, harmonization, staging, ask, prefix=prefix)
                outputs.extend(files)
                summary[spec.id] = stats
        finished = clock()
        outputs.append(
            write_provenance(
                staging,
                study=study,
                run_id=run_id,
                engine=engine,
                started=started,
                finished=finished,
                sites=[sites[n] for n in order],
                harmonization=harmonization,
                outputs=outputs,
                signer=None if signature is None else public_key_text(signature.public_key),
            )
        )
        _publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    notify(Progress("done", f"results in {out}"))
    return StudyOutcome(
        out, study, run_id, tuple(sites[n] for n in order), harmonization, tuple(outputs), summary
    )


Reply = tuple[pb.SiteReply, NamedArrays]


def _glm_prefix(study: Study, spec: AnalysisSpec) -> str:
    """``gwas``, or ``gwas.<id>`` when two glm analyses share a phenotype."""
    phenotype = spec.params["phenotype"]
    same = [a for a in study.analyses if a.kind == GLM_KIND and a.params["phenotype"] == phenotype]
    return "gwas" if len(same) == 1 else f"gwas.{spec.id}"


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a directory", path=out, hint="choose another --out")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InputError(
            "the results directory is not empty",
            path=out,
            hint="choose another --out, or pass --overwrite to replace it",
        )


def _publish(staging: Path, out: Path) -> None:
    """Move the finished results into place, replacing ``out`` last."""
    if out.exists():
        old = out.parent / f".{out.name}.old-{staging.name.rsplit('-', 1)[-1]}"
        out.rename(old)
        staging.rename(out)
        shutil.rmtree(old)
    else:
        staging.rename(out)


def _request(
    study: pb.SignedStudy, run_id: str, kind: str, analysis_id: str, round_: int
) -> pb.AnalysisRequest:
    return pb.AnalysisRequest(
        study=study,
        analysis_id=analysis_id,
        kind=kind,
        step=kind,
        round=round_,
        run_id=run_id,
    )


def _ask(
    transport: Transport,
    nodes: list[int],
    request: pb.AnalysisRequest,
    inputs: NamedArrays,
    timeout: float,
    notify: ProgressFn,
) -> dict[int, tuple[pb.SiteReply, NamedArrays]]:
    return _exchange(transport, {n: Outgoing(request, inputs) for n in nodes}, timeout, notify)


def _exchange(
    transport: Transport,
    outgoing: Mapping[int, Outgoing],
    timeout: float,
    notify: ProgressFn,
) -> dict[int, tuple[pb.SiteReply, NamedArrays]]:
    incoming = transport.exchange(outgoing, timeout=timeout)
    result: dict[int, tuple[pb.SiteReply, NamedArrays]] = {}
    for node in outgoing:
        got = incoming.get(node, Incoming(None, error="no reply"))
        if got.reply is None:
            raise SiteFailure(f"node {node}", "NO_REPLY", got.error or "no reply")
        reply = got.reply
        name = reply.site or f"node {node}"
        if reply.status != pb.REPLY_STATUS_OK:
            raise SiteFailure(name, reply.reason_code or "FAILED", reply.message)
        notify(Progress("site", f"{name}: {reply.step} ok"))
        result[node] = (reply, got.arrays)
    return result


def _check_site_names(sites: Mapping[int, SiteRecord]) -> None:
    seen: dict[str, int] = {}
    for node, record in sites.items():
        if record.name in seen:
            raise GenoFedError(
                f"two nodes ({seen[record.name]} and {node}) serve the same site {record.name!r}; "
                "each site directory must be served by one node"
            )
        seen[record.name] = node


def _variant_table(site: str, arrays: NamedArrays) -> VariantTable:
    try:
        table = VariantTable(
            chrom=arrays["chrom"].astype(str),
            pos=arrays["pos"].astype(np.int64),
            id=arrays["id"].astype(str),
            ref=arrays["ref"].astype(str),
            alt=arrays["alt"].astype(str),
        )
    except (KeyError, ValueError) as exc:
        raise SiteFailure(site, "BAD_REPLY", "variant table is incomplete") from exc
    if len({len(a) for a in (table.chrom, table.pos, table.id, table.ref, table.alt)}) != 1:
        raise SiteFailure(site, "BAD_REPLY", "variant table columns differ in length")
    return table


def _checked_counts(
    site: str, arrays: NamedArrays, n_variants: int, *, noisy: bool = False
) -> np.ndarray:
    """A site's counts, checked; noisy (``dp``) counts may be negative."""
    counts = arrays.get("genotype_counts")
    if (
        counts is None
        or counts.shape != (n_variants, 4)
        or counts.dtype.kind not in "iu"
        or (counts.size and counts.min() < 0 and not noisy)
    ):
        raise SiteFailure(
            site, "BAD_REPLY", f"genotype counts must be ({n_variants}, 4) non-negative integers"
        )
    return counts.astype(np.int64)


def _reply_record(kind: str, reply: pb.SiteReply) -> dict[str, object]:
    return {
        "request": kind,
        "analysis_id": reply.analysis_id,
        "arrays": [
            {"name": a.name, "dtype": a.dtype, "shape": list(a.shape), "sha256": a.sha256}
            for a in reply.arrays
        ],
        "receipt": _receipt_record(reply.receipt),
        **({"noise": json.loads(reply.facts["noise"])} if "noise" in reply.facts else {}),
        **(
            {"epsilon_charged": reply.receipt.epsilon_charged}
            if reply.receipt.epsilon_charged
            else {}
        ),
    }


def _receipt_record(receipt: pb.Receipt) -> dict[str, object]:
    """The receipt as provenance keeps it: the audit entry and the checkpoint that signs it."""
    record: dict[str, object] = {"audited": receipt.audited}
    if receipt.audited:
        record["audit_index"] = receipt.audit_index
        record["checkpoint"] = checkpoint_to_json(checkpoint_from_proto(receipt.checkpoint))
        record["epsilon_charged"] = receipt.epsilon_charged
        record["delta_charged"] = receipt.delta_charged
    return record


__all__ = ["Progress", "SiteRecord", "StudyOutcome", "outcome_doc", "run_study"]
