"""The site's answer to one coordinator request, independent of transport.

This is where a request meets the site's files and policy: check the study's
integrity, ask the policy, stream the genotypes through the local statistic,
and describe what leaves. The Flower ClientApp (``app.py``) only decodes the
message, calls :func:`handle_request` and encodes the reply.

What can leave a site, by request kind:

* ``variants``: the variant table (chromosome, position, ID, alleles) and the
  numbers of samples and variants. No sample data.
* ``genotype_counts``: per study variant, the numbers of samples with 0, 1
  and 2 copies of the study's ALT allele and with a missing call. It serves
  the ``freq``, ``hardy``, ``missing`` and ``gcount`` analyses named in the
  request, each of which the policy must allow. In ``plain`` mode, variants
  with a nonzero genotype count below the policy's ``min_cell_count`` are withheld
  and marked in a ``suppressed`` array (:mod:`genofed.site_agent.privacy.suppression`).
  In ``exact`` and ``distributed-dp`` mode these counts leave only masked by
  Flower's SecAgg+ (a ``sealer`` from :mod:`genofed.site_agent.secure_release`;
  :mod:`genofed.site_agent.requests.secure_counts`), never in the clear.
* ``prs_match``, ``prs_moments``, ``prs_stats``, ``prs_logistic``,
  ``prs_calibration``: the ``prs`` analysis's per-scoring-row match codes and
  effect-allele counts, score moments, a suppressed score histogram,
  regression sums for the standardized score, threshold counts and
  calibration groups (layouts in :mod:`genofed.common.wire.prs`).
* ``pgx_counts``, ``pgx_glm_stats``, ``pgx_logistic``: the ``pgx``
  analysis's diplotype, phenotype and not-called counts by outcome (small
  rows withheld) and regression sums for the tested phenotype (layouts in
  :mod:`genofed.common.wire.pgx`).
* ``km_counts``, ``cox_step``: the ``km`` and ``cox`` survival analyses'
  at-risk and event counts on the study's time grid (small risk sets
  withheld) and the Cox partial likelihood's gradient and Hessian at the
  coordinator's coefficients; never an event time
  (:mod:`genofed.site_agent.requests.survival`, :mod:`genofed.common.wire.survival`).
* ``train_round``, ``train_eval``: the ``train`` analysis's model weights
  after local SGD or DP-SGD (Opacus; charged to the ledger before they leave)
  and a case/control histogram of the final model's logits, never a score per
  patient (:mod:`genofed.site_agent.requests.train`, :mod:`genofed.common.wire.train`).
* ``pca_counts``, ``pca_ld``, ``pca_iterate``, ``pca_finish``: the ``pca``
  analysis's allele counts, LD pair sums, and products of the standardized
  genotypes with the coordinator's variant-space block (variant- or
  block-sized, never per sample); the sample scores stay in ``state/pca/``
  (:mod:`genofed.site_agent.requests.pca`, :mod:`genofed.common.wire.pca`).

Before any request is served the site checks, in this order: a policy file
exists (``NO_POLICY``) and is valid (``POLICY_INVALID``), the study's
signature (``UNSIGNED_STUDY``, ``INTEGRITY``), the study as a whole against
the policy (analyses, parameter bounds, release mode, secure aggregation;
:func:`~genofed.site_agent.privacy.policy.check_study`), the cohort size
(``COHORT_TOO_SMALL``), and the study's approval
(``PENDING_APPROVAL``, ``STUDY_REFUSED``; :mod:`genofed.site_agent.privacy.approvals`).

Every request, refusal and release is an entry of the site's audit log
(:mod:`genofed.site_agent.audit.log`), written durably before the reply leaves;
the reply's receipt cites the entry and the signed checkpoint covering it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np

import genofed
from genofed.common.analyses import COUNT_KINDS, VARIANTS_KIND
from genofed.common.checkpoint import checkpoint_to_proto
from genofed.common.errors import ConfigError, GenoFedError, IntegrityError, PolicyRefusal
from genofed.common.study import SECURE_MODES, Study
from genofed.common.wire.glm import GLM_REQUEST_KINDS
from genofed.common.wire.pca import PCA_REQUEST_KINDS
from genofed.common.wire.pgx import PGX_REQUEST_KINDS
from genofed.common.wire.prs import PRS_REQUEST_KINDS
from genofed.common.wire.records import (
    NamedArrays,
    array_manifest,
    signature_from_proto,
    study_from_proto,
)
from genofed.common.wire.survival import SURVIVAL_REQUEST_KINDS
from genofed.common.wire.train import TRAIN_REQUEST_KINDS
from genofed.protos.v1 import genofed_pb2 as pb
from genofed.site_agent.audit.log import (
    DECISION_ERROR,
    DECISION_REFUSED,
    NO_NOISE,
    AuditLog,
    refusal_entry,
    release_entry,
    request_entry,
)
from genofed.site_agent.io.plink import BedFile
from genofed.site_agent.privacy.approvals import require_approval
from genofed.site_agent.privacy.dp_release import ledger_for, plan_counts, release_counts
from genofed.site_agent.privacy.policy import (
    POLICY_FILE,
    REFUSE_ALL,
    SitePolicy,
    check_cohort_size,
    check_request,
    check_study,
    check_study_signature,
    load_policy,
)
from genofed.site_agent.privacy.suppression import (
    GENOTYPE_CELLS,
    SUPPRESSED_ARRAY,
    suppress_small_cells,
)
from genofed.site_agent.requests.glm import serve_glm
from genofed.site_agent.requests.pca import serve_pca
from genofed.site_agent.requests.pgx import serve_pgx
from genofed.site_agent.requests.secure_counts import Sealer, serve_secure_counts
from genofed.site_agent.requests.survival import serve_survival
from genofed.site_agent.sitedir import SiteConfig, load_site
from genofed.site_agent.stats.genotype_counts import flip_counts, genotype_counts

log = logging.getLogger("genofed.site")
Clock = Callable[[], datetime]

#: Reason code of a reply the site cannot audit (nothing is released).
AUDIT_UNAVAILABLE = "AUDIT_UNAVAILABLE"

#: Request kind for per-variant genotype counts.
GENOTYPE_COUNTS_KIND = "genotype_counts"


def handle_request(
    site_dir: Path,
    request: pb.AnalysisRequest,
    inputs: NamedArrays,
    *,
    clock: Clock | None = None,
    sealer: Sealer | None = None,
) -> tuple[pb.SiteReply, NamedArrays]:
    """Answer one request and audit it; never raises for a request the site declines.

    ``sealer`` is given for a secure-sum round (``exact``, ``distributed-dp``:
    :mod:`genofed.site_agent.secure_release`): it masks the computed counts,
    and the release entry records the masked arrays, which are what leaves.

    The request is logged before anything is computed; a release is logged,
    durably, before it is returned, and a refusal or error is logged with its
    reason. The reply's receipt cites the entry and the signed checkpoint that
    covers it. If the log cannot be written, nothing but an error leaves.
    """
    try:
        name = load_site(site_dir).name
        audit = AuditLog.open(site_dir, clock=clock)
    except GenoFedError as exc:
        log.error("cannot open the audit log; refusing %s: %s", request.kind, exc)
        reply = _reply_to(request)
        return _failed(reply, pb.REPLY_STATUS_ERROR, AUDIT_UNAVAILABLE, str(exc)), {}
    with audit:
        try:
            audit.append(request_entry(request))
        except GenoFedError as exc:
            log.error("cannot audit a %s request; refusing it: %s", request.kind, exc)
            reply = _reply_to(request, site=name)
            return _failed(reply, pb.REPLY_STATUS_ERROR, AUDIT_UNAVAILABLE, str(exc)), {}
        reply, arrays = _answer(site_dir, request, inputs, clock, sealer)
        ok = reply.status == pb.REPLY_STATUS_OK
        manifest = array_manifest(arrays)
        if ok:
            entry = release_entry(
                request,
                manifest,
                noise=reply.facts.get("noise", NO_NOISE),
                epsilon=reply.receipt.epsilon_charged,
                delta=reply.receipt.delta_charged,
            )
        else:
            refused = reply.status == pb.REPLY_STATUS_REFUSED
            decision = DECISION_REFUSED if refused else DECISION_ERROR
            entry = refusal_entry(
                request, decision=decision, reason=f"{reply.reason_code}: {reply.message}"
            )
        try:
            index, checkpoint = audit.append(entry)
            leaf, proof = audit.proof_of_last(index)
        except GenoFedError as exc:
            log.error("cannot audit the answer to a %s request: %s", request.kind, exc)
            if not ok:
                return reply, {}  # a refusal releases nothing: it still goes back
            reply = _reply_to(request, site=name)
            return _failed(reply, pb.REPLY_STATUS_ERROR, AUDIT_UNAVAILABLE, str(exc)), {}
    del reply.arrays[:]
    reply.arrays.extend(manifest)  # the encoder refuses to send any other arrays
    reply.receipt.CopyFrom(
        pb.Receipt(
            audited=True,
            audit_index=index,
            checkpoint=checkpoint_to_proto(checkpoint),
            epsilon_charged=reply.receipt.epsilon_charged,
            delta_charged=reply.receipt.delta_charged,
            entry=leaf,
            inclusion_proof=proof,
        )
    )
    return reply, arrays


def _reply_to(request: pb.AnalysisRequest, site: str = "") -> pb.SiteReply:
    return pb.SiteReply(
        site=site,
        analysis_id=request.analysis_id,
        step=request.step,
        study_sha256=request.study.study.sha256,
        software_version=genofed.__version__,
    )


def _answer(
    site_dir: Path,
    request: pb.AnalysisRequest,
    inputs: NamedArrays,
    clock: Clock | None = None,
    sealer: Sealer | None = None,
) -> tuple[pb.SiteReply, NamedArrays]:
    """Answer one request (:func:`handle_request` audits it)."""
    reply = _reply_to(request)
    try:
        config = load_site(site_dir)
        reply.site = config.name
        policy = _site_policy(site_dir)
        study = study_from_proto(request.study.study)
        if sealer is not None and request.kind != GENOTYPE_COUNTS_KIND:
            raise PolicyRefusal("BAD_REQUEST", f"{request.kind!r} is not a secure-sum request")
        arrays = _dispatch(config, policy, study, request, inputs, reply, clock, sealer)
        if sealer is not None:
            arrays = sealer.seal(arrays)
    except PolicyRefusal as exc:
        log.warning("refused %s for study %s: %s", request.kind, request.study.study.sha256, exc)
        return _failed(reply, pb.REPLY_STATUS_REFUSED, exc.reason_code, str(exc)), {}
    except IntegrityError as exc:
        log.warning("integrity failure on %s request", request.kind)
        return _failed(reply, pb.REPLY_STATUS_REFUSED, "INTEGRITY", str(exc)), {}
    except GenoFedError as exc:
        log.error("could not answer %s: %s", request.kind, exc)
        return _failed(reply, pb.REPLY_STATUS_ERROR, type(exc).__name__.upper(), str(exc)), {}
    reply.status = pb.REPLY_STATUS_OK
    return reply, arrays


def _site_policy(site_dir: Path) -> SitePolicy:
    """The site's policy; a missing file is ``NO_POLICY``, a wrong one ``POLICY_INVALID``."""
    try:
        policy = load_policy(site_dir / POLICY_FILE)
    except ConfigError as exc:
        raise PolicyRefusal("POLICY_INVALID", f"this site's policy file is invalid: {exc}") from exc
    if policy is REFUSE_ALL:
        raise PolicyRefusal(
            "NO_POLICY", "this site has no policy file, so it refuses every request"
        )
    return policy


def _failed(reply: pb.SiteReply, status: int, code: str, message: str) -> pb.SiteReply:
    reply.status = status  # type: ignore[assignment]
    reply.reason_code = code
    reply.message = message
    return reply


def _dispatch(
    config: SiteConfig,
    policy: SitePolicy,
    study: Study,
    request: pb.AnalysisRequest,
    inputs: NamedArrays,
    reply: pb.SiteReply,
    clock: Clock | None = None,
    sealer: Sealer | None = None,
) -> NamedArrays:
    analyst = check_study_signature(
        policy, request.study.study.canonical_json, signature_from_proto(request.study)
    )
    signed = analyst is not None
    check_study(policy, study)
    with BedFile(config.genotypes) as bed:
        check_cohort_size(policy, bed.n_samples)  # before any fact about the cohort is set
        if clock is None:
            require_approval(config.directory, policy, study, analyst)
        else:
            require_approval(config.directory, policy, study, analyst, clock=clock)
        reply.facts["n_samples"] = str(bed.n_samples)
        reply.facts["n_variants"] = str(bed.n_variants)
        reply.facts["policy"] = "demo (synthetic data only)" if policy.demo else "site policy"
        if request.kind == VARIANTS_KIND:
            check_request(policy, kind=VARIANTS_KIND, signed=signed, n_samples=bed.n_samples)
            v = bed.variants
            return {"chrom": v.chrom, "pos": v.pos, "id": v.id, "ref": v.ref, "alt": v.alt}
        if request.kind == GENOTYPE_COUNTS_KIND:
            for kind in _served_kinds(study, request.analysis_id):
                check_request(policy, kind=kind, signed=signed, n_samples=bed.n_samples)
            index, flip = _variant_plan(inputs, bed.n_variants)
            if sealer is not None or study.privacy.mode in SECURE_MODES:
                return serve_secure_counts(
                    config, policy, study, request, reply, bed, index, flip, sealer
                )
            if study.privacy.mode == "dp":
                ledger = ledger_for(config.directory, policy)
                dp_plan = plan_counts(study, len(index))
                ledger.check(dp_plan.noise_multiplier)  # refuse before computing anything
            counts = np.zeros((len(index), 4), dtype=np.int64)
            for start, dosages in bed.iter_dosages(index):
                counts[start : start + len(dosages)] = genotype_counts(dosages)
            counts = flip_counts(counts, flip)
            if study.privacy.mode == "dp":
                counts = release_counts(ledger, dp_plan, counts, request, reply)
                return {"genotype_counts": counts}
            released = suppress_small_cells(counts, policy.min_cell_count, GENOTYPE_CELLS)
            reply.facts["min_cell_count"] = str(policy.min_cell_count)
            reply.facts["suppressed_variants"] = str(released.n_withheld)
            return {"genotype_counts": released.counts, SUPPRESSED_ARRAY: released.withheld}
        if request.kind in GLM_REQUEST_KINDS:
            index, flip = _variant_plan(inputs, bed.n_variants)
            return serve_glm(
                config, policy, study, request, inputs, reply, bed, index, flip, signed
            )
        if request.kind in PCA_REQUEST_KINDS:
            index, flip = _variant_plan(inputs, bed.n_variants)
            return serve_pca(
                config, policy, study, request, inputs, reply, bed, index, flip, signed
            )
        if request.kind in PRS_REQUEST_KINDS:
            # scipy.special takes about 0.25 s to import in each fresh ClientApp process
            from genofed.site_agent.requests.prs import serve_prs

            return serve_prs(config, policy, study, request, inputs, reply, bed, signed)
        if request.kind in PGX_REQUEST_KINDS:
            return serve_pgx(config, policy, study, request, inputs, reply, bed, signed)
        if request.kind in SURVIVAL_REQUEST_KINDS:
            return serve_survival(config, policy, study, request, inputs, reply, bed, signed)
        if request.kind in TRAIN_REQUEST_KINDS:
            planned = _plan_inputs(inputs, bed)
            # torch takes about a second to import, and every request starts a fresh
            # ClientApp process: only train requests pay for it
            from genofed.site_agent.requests.train import serve_train

            return serve_train(config, policy, study, request, planned, reply, bed, signed)
    raise PolicyRefusal("UNKNOWN_REQUEST", f"this site does not know request kind {request.kind!r}")


def _served_kinds(study: Study, analysis_ids: str) -> list[str]:
    """The analysis kinds a counts request serves; each must be in the study."""
    by_id = {a.id: a.kind for a in study.analyses}
    kinds = []
    for ident in analysis_ids.split(","):
        kind = by_id.get(ident)
        if kind not in COUNT_KINDS:
            raise PolicyRefusal(
                "NOT_IN_STUDY", f"analysis {ident!r} is not a count analysis of this study"
            )
        kinds.append(kind)
    return kinds


def _plan_inputs(inputs: NamedArrays, bed: BedFile) -> NamedArrays:
    """``inputs`` with their variant plan checked (``variant_index`` int64, ``flip``)."""
    index, flip = _variant_plan(inputs, bed.n_variants)
    return {**inputs, "variant_index": index, "flip": flip}


def _variant_plan(inputs: NamedArrays, n_variants: int) -> tuple[np.ndarray, np.ndarray]:
    index = inputs.get("variant_index")
    flip = inputs.get("flip")
    if (
        index is None
        or flip is None
        or index.ndim != 1
        or index.shape != flip.shape
        or index.dtype.kind not in "iu"
        or flip.dtype != np.bool_
        or (index.size and (index.min() < 0 or index.max() >= n_variants))
    ):
        raise PolicyRefusal("BAD_REQUEST", "the request's variant plan is malformed")
    return index.astype(np.int64), flip


__all__ = ["AUDIT_UNAVAILABLE", "GENOTYPE_COUNTS_KIND", "handle_request"]
