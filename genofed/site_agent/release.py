"""The one release path: every request a site answers goes through :func:`handle_request`.

This is where a request meets the site's files and policy: check the study's
integrity, ask the policy, hand the analysis's module (``requests/``, found by
request kind) one :class:`~genofed.site_agent.context.RequestContext`, and
audit what leaves. The modules compute only their statistics. The Flower
ClientApp (``app.py``) only decodes the message, calls :func:`handle_request`
and encodes the reply.

What can leave a site, by request kind:

* ``variants``: the variant table (chromosome, position, ID, alleles) and the
  numbers of samples and variants. No sample data.
* ``genotype_counts``: per study variant, the numbers of samples with 0, 1
  and 2 copies of the study's ALT allele and with a missing call. It serves
  the ``freq``, ``hardy``, ``missing`` and ``gcount`` analyses named in the
  request, each of which the policy must allow, and the study's ``[qc]``
  (``[qc]`` in the request's list; the same counts, so the policy must allow
  ``gcount``). In ``plain`` mode, variants
  with a nonzero genotype count below the policy's ``min_cell_count`` are withheld
  and marked in a ``suppressed`` array (:mod:`genofed.site_agent.privacy.suppression`).
  In ``exact`` and ``distributed-dp`` mode these counts leave only masked by
  Flower's SecAgg+ (a ``sealer`` from :mod:`genofed.site_agent.secure_release`;
  :mod:`genofed.site_agent.requests.secure_counts`), never in the clear.
* In ``exact`` mode, every other request's arrays leave the same way: the
  module computes its usual reply, which is turned into its summable form
  (:mod:`genofed.common.wire.summable`: dense arrays whose sum over sites is
  all the coordinator uses), encoded in fixed point
  (:mod:`genofed.common.fixed_point`; a value it cannot carry is refused as
  ``VALUE_OUT_OF_RANGE``) and masked; only the reply's facts (its cohort
  size, the layout of the masked vector) travel in the clear.
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

A charged release (``dp`` noise, ``distributed-dp`` noise shares, DP-SGD)
is kept; the same request of the same study again (a rerun after the
coordinator died) is answered from it, after every check above: the same
values, no new charge, an audit entry naming the release it repeats
(:mod:`genofed.site_agent.privacy.replays`).

Every request, refusal and release is an entry of the site's audit log
(:mod:`genofed.site_agent.audit.log`), written durably before the reply leaves;
the reply's receipt cites the entry and the signed checkpoint covering it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np

import genofed
from genofed.common.analyses import (
    COUNT_KINDS,
    GENOTYPE_COUNTS_KIND,
    QC_COUNTS_ID,
    QC_POLICY_KIND,
    VARIANTS_KIND,
)
from genofed.common.clock import Clock, utc_now
from genofed.common.errors import ConfigError, GenoFedError, IntegrityError, PolicyRefusal
from genofed.common.fixed_point import encode, layout_text, range_problem
from genofed.common.messages import Receipt, Reply, Request, Status
from genofed.common.reasons import (
    AUDIT_UNAVAILABLE,
    BAD_REQUEST,
    COHORT_TOO_SMALL,
    DISCLOSURE_RISK,
    INTEGRITY,
    NO_POLICY,
    NOT_IN_STUDY,
    POLICY_INVALID,
    SECURE_AGGREGATION_REQUIRED,
    UNKNOWN_REQUEST,
    UNSUPPORTED,
    VALUE_OUT_OF_RANGE,
)
from genofed.common.receipts import (
    DOSAGES_FACT,
    GENOME_BUILD_FACT,
    MEMBERSHIP_LIMIT_FACT,
    REPLAY_FACT,
)
from genofed.common.secure_sum import MIN_SECURE_SITES, SECAGG_LAYOUT_FACT
from genofed.common.study import AnalysisSpec, Study
from genofed.common.wire.proto import receipt_from_bytes, receipt_to_bytes
from genofed.common.wire.records import NamedArrays, array_manifest, study_of, study_signature
from genofed.common.wire.summable import SUMMABLE_FORMS, fixed_point_exponents
from genofed.site_agent import cohort
from genofed.site_agent.audit.log import (
    DECISION_ERROR,
    DECISION_REFUSED,
    NO_NOISE,
    AuditLog,
    refusal_entry,
    release_entry,
    request_entry,
)
from genofed.site_agent.context import Answer, RequestContext, Sealer, Server
from genofed.site_agent.io.genotypes import genotype_files, open_genotypes
from genofed.site_agent.privacy import directions
from genofed.site_agent.privacy.approvals import require_approval
from genofed.site_agent.privacy.guard import (
    ReleaseGuard,
    digest,
    disclosure_message,
    fingerprints_fact,
    record_refusal,
)
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
from genofed.site_agent.privacy.replays import Replays, data_id, replay_key
from genofed.site_agent.privacy.sample_sets import ReleaseKey
from genofed.site_agent.requests import server_for
from genofed.site_agent.sitedir import SiteConfig, genome_build, load_site
from genofed.site_agent.snapshot import serving_config

log = logging.getLogger("genofed.site")


def handle_request(
    site_dir: Path,
    request: Request,
    inputs: NamedArrays,
    *,
    clock: Clock | None = None,
    sealer: Sealer | None = None,
) -> tuple[Reply, NamedArrays]:
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
        return _failed(_reply_to(request), Status.ERROR, AUDIT_UNAVAILABLE, str(exc)), {}
    with audit, _one_at_a_time(site_dir):
        try:
            audit.append(request_entry(request))
        except GenoFedError as exc:
            log.error("cannot audit a %s request; refusing it: %s", request.kind, exc)
            reply = _reply_to(request, site=name)
            return _failed(reply, Status.ERROR, AUDIT_UNAVAILABLE, str(exc)), {}
        reply, answer = _answer(site_dir, request, inputs, clock, sealer)
        arrays = answer.arrays if answer is not None else {}
        manifest = array_manifest(arrays)
        charge = answer.charge if answer is not None else None
        epsilon = charge.epsilon if charge is not None else 0.0
        delta = charge.delta if charge is not None else 0.0
        if reply.ok:
            noise = reply.facts.get("noise", NO_NOISE)
            if answer is not None and answer.replay_of is not None:
                noise = _replay_noise(noise, answer.replay_of)
            entry = release_entry(
                request,
                manifest,
                noise=noise,
                epsilon=epsilon,
                delta=delta,
                sample_sets=answer.sample_sets if answer is not None else (),
            )
        else:
            refused = reply.status == Status.REFUSED
            decision = DECISION_REFUSED if refused else DECISION_ERROR
            entry = refusal_entry(
                request, decision=decision, reason=f"{reply.reason_code}: {reply.message}"
            )
        try:
            index, checkpoint = audit.append(entry)
            leaf, proof = audit.proof_of_last(index)
        except GenoFedError as exc:
            log.error("cannot audit the answer to a %s request: %s", request.kind, exc)
            if not reply.ok:
                return reply, {}  # a refusal releases nothing: it still goes back
            reply = _reply_to(request, site=name)
            return _failed(reply, Status.ERROR, AUDIT_UNAVAILABLE, str(exc)), {}
        receipt = Receipt(
            audited=True,
            audit_index=index,
            checkpoint=checkpoint,
            epsilon_charged=epsilon,
            delta_charged=delta,
            entry=leaf,
            inclusion_proof=tuple(proof),
        )
        charged = charge is not None and (charge.epsilon > 0 or charge.delta > 0)
        if reply.ok and answer is not None and charged and answer.replay_of is None:
            _store_charged(site_dir, request, answer, index, clock, receipt)
        if reply.ok and answer is not None and answer.replay_of is not None and sealer is None:
            # the same bytes leave again (unmasked: SecAgg+ masks differ per run): the
            # original's receipt; the entry just appended records the replay in the log
            receipt = _original_receipt(site_dir, answer) or receipt
    # the encoder refuses to send any arrays other than the ones the manifest lists
    return replace(reply, arrays=manifest, receipt=receipt), arrays


#: The lock file that lets one request at a time through the release path of a site.
RELEASE_LOCK = Path("state") / "release.lock"


@contextmanager
def _one_at_a_time(site_dir: Path) -> Iterator[None]:
    """Hold the site's release lock (``fcntl.flock``; freed when the process dies).

    Two answers to the same charged request must not both miss the replay
    store and both be charged: after a coordinator restart the rerun's request
    can arrive while the killed run's ClientApp is still computing it. So the
    look-up, the computation, the charge and the store happen under one lock;
    the second answer then finds the first one's stored release and replays it.
    """
    path = Path(site_dir) / RELEASE_LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _reply_to(request: Request, site: str = "") -> Reply:
    return Reply(
        site=site,
        analysis_id=request.analysis_id,
        step=request.step,
        study_sha256=request.study.sha256,
        software_version=genofed.__version__,
    )


def _failed(reply: Reply, status: Status, code: str, message: str) -> Reply:
    return replace(reply, status=status, reason_code=code, message=message)


def _answer(
    site_dir: Path,
    request: Request,
    inputs: NamedArrays,
    clock: Clock | None = None,
    sealer: Sealer | None = None,
) -> tuple[Reply, Answer | None]:
    """Check and answer one request (:func:`handle_request` audits it)."""
    reply = _reply_to(request)
    facts: dict[str, str] = {}
    analyst: str | None = None
    try:
        config = load_site(site_dir)
        reply = replace(reply, site=config.name)
        policy = _site_policy(site_dir)
        snapshot = ""
        if policy.audit_sample_sets and policy.min_cell_count > 0:
            # answer from the frozen cohort snapshot, not the live files (snapshot.py)
            config, status = serving_config(config, policy.min_cell_count, clock)
            snapshot = status.id
        study = study_of(request.study)
        server = server_for(request.kind)
        summable = request.kind in SUMMABLE_FORMS and study.privacy.mode == "exact"
        if sealer is not None and (server is None or not (server.secure or summable)):
            raise PolicyRefusal(BAD_REQUEST, f"{request.kind!r} is not a secure-sum request")
        if summable and sealer is None:
            raise PolicyRefusal(
                SECURE_AGGREGATION_REQUIRED,
                f"this study's release mode is {study.privacy.mode!r}: its {request.kind} "
                "statistics leave this site only masked, through a SecAgg+ round",
            )
        analyst = check_study_signature(
            policy, request.study.canonical_json, study_signature(request.study)
        )
        check_study(policy, study)
        with open_genotypes(config.genotypes) as whole:
            check_cohort_size(policy, whole.n_samples)  # before any fact about the cohort is set
            if clock is None:
                require_approval(config.directory, policy, study, analyst)
            else:
                require_approval(config.directory, policy, study, analyst, clock=clock)
            # the study's [cohort] and [sample_qc]: every module sees only these samples
            selection = cohort.select(config, whole, study, policy)
            bed = whole if selection is None else cohort.CohortBed(whole, selection.rows)
            if selection is not None:
                check_cohort_size(policy, bed.n_samples)
                if not bed.n_samples:  # even under min_cohort_size = 0: nothing to compute on
                    raise PolicyRefusal(
                        COHORT_TOO_SMALL, "no sample of this site is in the study's cohort"
                    )
            facts["n_samples"] = str(whole.n_samples)
            facts["n_variants"] = str(bed.n_variants)
            if getattr(whole, "has_dosages", False):
                facts[DOSAGES_FACT] = DOSAGES_HARD_CALLS
            if selection is not None:
                facts.update(cohort.facts(selection, policy.min_cell_count))
            facts[GENOME_BUILD_FACT] = genome_build(config)
            facts["policy"] = "demo (synthetic data only)" if policy.demo else "site policy"
            facts["min_cell_count"] = str(policy.min_cell_count)
            if policy.max_membership_power is not None:  # exact mode: the pooled check
                facts[MEMBERSHIP_LIMIT_FACT] = (
                    f"{policy.max_membership_power!r} {policy.membership_fpr!r}"
                )
            if snapshot:
                facts["cohort_snapshot"] = snapshot
            if server is None:
                raise PolicyRefusal(
                    UNKNOWN_REQUEST, f"this site does not know request kind {request.kind!r}"
                )
            specs = _specs_of(server, study, request)
            signed = analyst is not None
            kinds = [s.kind for s in specs] + ([QC_POLICY_KIND] if _serves_qc(request) else [])
            for kind in kinds or [request.kind]:
                check_request(policy, kind=kind, signed=signed, n_samples=bed.n_samples)
            if study.privacy.mode not in server.modes and not summable:
                kind = specs[0].kind if specs else request.kind
                raise PolicyRefusal(UNSUPPORTED, server.unsupported.replace("{kind}", kind))
            guard = ReleaseGuard.open(
                config.directory,
                [f"{f}\t{i}" for f, i in zip(bed.samples.fid, bed.samples.iid, strict=True)],
                policy.min_cell_count,
                enabled=policy.audit_sample_sets,
                offer_cap=policy.guard_max_new_sets,
                family_cap=policy.guard_max_sets,
            )
            context = RequestContext(
                request=request,
                inputs=inputs,
                study=study,
                spec=specs[0] if len(specs) == 1 and request.kind != GENOTYPE_COUNTS_KIND else None,
                specs=specs,
                site=config,
                policy=policy,
                signed=signed,
                bed=bed,
                clock=clock,
                sealer=sealer,
                guard=guard,
            )
            if summable:
                assert sealer is not None
                sealer.check(MIN_SECURE_SITES)  # before anything is computed
            key = _replay_key(request, inputs, config, snapshot)
            stored = Replays(site_dir).get(key)
            try:
                if stored is not None:
                    # the same request of the same study again: the stored values, no new
                    # charge, nothing recomputed (its sample sets were recorded the first time)
                    answer = Answer(dict(stored.arrays), dict(stored.facts))
                    answer.replay_of = stored.audit_index
                else:
                    answer = server.serve(context)
                    if answer.directions:  # before the guard records the release
                        directions.check(
                            config.directory,
                            snapshot or directions.LIVE,
                            answer.directions,
                            policy.pca_max_directions,
                        )
                    answer.sample_sets = _commit_sets(guard, request, snapshot, clock)
            finally:
                guard.close()
            answer.replay_key = key
            answer.served = (dict(answer.arrays), dict(answer.facts))
        if answer.sample_sets:
            facts["sample_sets"] = digest(answer.sample_sets)
        if sealer is not None:
            if summable:
                vector = _summable_vector(request, inputs, answer)
            else:
                vector = answer.arrays["genotype_counts"]
            answer.arrays = sealer.seal(vector)
        if answer.replay_of is not None:
            facts[REPLAY_FACT] = str(answer.replay_of)
        if answer.directions and answer.replay_of is None:  # charged with the release
            used = directions.charge(
                config.directory,
                snapshot or directions.LIVE,
                answer.directions,
                policy.pca_max_directions,
            )
            facts["pca_directions_used"] = f"{used}/{policy.pca_max_directions}"
    except PolicyRefusal as exc:
        log.warning("refused %s for study %s: %s", request.kind, request.study.sha256, exc)
        if exc.reason_code == DISCLOSURE_RISK and analyst is not None:
            _note_guard_refusal(site_dir, analyst, request, str(exc), clock)
        return _failed(reply, Status.REFUSED, exc.reason_code, str(exc)), None
    except IntegrityError as exc:
        log.warning("integrity failure on %s request", request.kind)
        return _failed(reply, Status.REFUSED, INTEGRITY, str(exc)), None
    except GenoFedError as exc:
        log.error("could not answer %s: %s", request.kind, exc)
        return _failed(reply, Status.ERROR, type(exc).__name__.upper(), str(exc)), None
    return replace(reply, status=Status.OK, facts={**facts, **answer.facts}), answer


#: The value of :data:`DOSAGES_FACT` (a site whose genotype files also hold dosages).
DOSAGES_HARD_CALLS = (
    "present in the files but not read: hard calls used (plink2 --glm and --freq would use "
    "the dosages)"
)


def _replay_key(request: Request, inputs: NamedArrays, config: SiteConfig, snapshot: str) -> str:
    """What names this request's answer for replays (:mod:`.privacy.replays`)."""
    return replay_key(
        study_sha256=request.study.sha256,
        analysis_id=request.analysis_id,
        request_kind=request.kind,
        step=request.step,
        round_=request.round,
        inputs=inputs,
        data_id=data_id(
            snapshot,
            (*genotype_files(config.genotypes).values(), config.phenotypes, config.covariates),
            config.directory / POLICY_FILE,
            root=config.directory,
        ),
    )


def _replay_noise(noise: str, original: int) -> str:
    """The audit entry's noise field for a replay: it names the entry it repeats."""
    try:
        inner: object = json.loads(noise)
    except json.JSONDecodeError:
        inner = noise
    return json.dumps(
        {"mechanism": "replay", "replay_of_audit_index": original, "noise": inner},
        sort_keys=True,
    )


def _original_receipt(site_dir: Path, answer: Answer) -> Receipt | None:
    """The receipt kept with the release ``answer`` repeats; None: send the replay's own."""
    try:
        stored = Replays(site_dir).get(answer.replay_key)
        if stored is None or stored.receipt is None:  # stored before receipts were kept
            return None
        receipt = receipt_from_bytes(stored.receipt)
    except (OSError, sqlite3.Error, IntegrityError) as exc:
        log.error("cannot read a stored receipt; sending the replay's own: %s", exc)
        return None
    return receipt if receipt.audit_index == answer.replay_of else None


def _store_charged(
    site_dir: Path,
    request: Request,
    answer: Answer,
    index: int,
    clock: Clock | None,
    receipt: Receipt,
) -> None:
    """Keep a charged release so that the same request again is answered from it."""
    if answer.served is None or not answer.replay_key:
        return
    arrays, facts = answer.served
    try:
        Replays(site_dir).put(
            answer.replay_key,
            time=(clock or utc_now)().isoformat(),
            study_sha256=request.study.sha256,
            analysis_id=request.analysis_id,
            request_kind=request.kind,
            audit_index=index,
            facts=facts,
            arrays=arrays,
            receipt=receipt_to_bytes(receipt),
        )
    except (OSError, sqlite3.Error) as exc:  # the release still goes back; a repeat recharges
        log.error("cannot store the charged %s release for replays: %s", request.kind, exc)


def _summable_vector(request: Request, inputs: NamedArrays, answer: Answer) -> np.ndarray:
    """The answer's summable form as one fixed-point vector; facts say its layout and mode."""
    try:
        dense = SUMMABLE_FORMS[request.kind](answer.arrays, inputs)
        exponents = fixed_point_exponents(request.kind, inputs)
    except (KeyError, ValueError) as exc:
        raise GenoFedError(
            f"cannot put the {request.kind} reply in its summable form: {exc}"
        ) from exc
    problem = range_problem(dense, exponents)
    if problem is not None:
        raise PolicyRefusal(VALUE_OUT_OF_RANGE, problem)
    try:
        vector, layout = encode(dense, exponents)
    except ValueError as exc:  # an exponent outside the encoding's range
        raise PolicyRefusal(BAD_REQUEST, f"the {request.kind} request: {exc}") from exc
    answer.facts[SECAGG_LAYOUT_FACT] = layout_text(layout)
    answer.facts["release_mode"] = "exact"
    noise: dict[str, object] = {
        "mechanism": "none",
        "mode": "exact",
        "release": "SecAgg+ masked vector: the coordinator learns only the sum over sites",
        "encoding": "fixed point, genofed.common.fixed_point",
    }
    local = answer.facts.get("noise")
    if local:  # noise the analysis added before masking (DP-SGD): kept, and said
        try:
            noise["local"] = json.loads(local)
        except json.JSONDecodeError:
            noise["local"] = local
        noise["mechanism"] = "local noise under the mask"
    answer.facts["noise"] = json.dumps(noise, sort_keys=True)
    return vector


def _commit_sets(
    guard: ReleaseGuard, request: Request, snapshot: str, clock: Clock | None
) -> tuple[str, ...]:
    """Record the release's sample sets, or refuse it (``DISCLOSURE_RISK``)."""
    if not guard.enabled:
        return ()
    now = (clock or utc_now)()
    key = ReleaseKey(
        study_sha256=request.study.sha256,
        analysis_id=request.analysis_id,
        request_kind=request.kind,
        step=_step_number(request.step),
        round=request.round,
        snapshot_id=snapshot,
        time=now.isoformat(),
    )
    outcome = guard.commit(key)
    if not outcome.ok:
        raise PolicyRefusal(DISCLOSURE_RISK, disclosure_message(outcome.verdict))
    return fingerprints_fact(outcome)


def _note_guard_refusal(
    site_dir: Path, analyst: str, request: Request, reason: str, clock: Clock | None
) -> None:
    now = (clock or utc_now)()
    try:
        record_refusal(
            site_dir,
            analyst=analyst,
            study_sha256=request.study.sha256,
            analysis_id=request.analysis_id,
            reason=reason,
            time=now.isoformat(timespec="seconds"),
        )
    except (GenoFedError, OSError, sqlite3.Error) as exc:  # the refusal still goes back
        log.error("cannot record the guard's refusal: %s", exc)


def _step_number(step: str) -> int:
    try:
        return int(step)
    except ValueError:
        return 0


def _site_policy(site_dir: Path) -> SitePolicy:
    """The site's policy; a missing file is ``NO_POLICY``, a wrong one ``POLICY_INVALID``."""
    try:
        policy = load_policy(site_dir / POLICY_FILE)
    except ConfigError as exc:
        raise PolicyRefusal(POLICY_INVALID, f"this site's policy file is invalid: {exc}") from exc
    if policy is REFUSE_ALL:
        raise PolicyRefusal(NO_POLICY, "this site has no policy file, so it refuses every request")
    return policy


def _specs_of(server: Server, study: Study, request: Request) -> tuple[AnalysisSpec, ...]:
    """The study's analyses that ``request`` serves; ``NOT_IN_STUDY`` for any other.

    A ``genotype_counts`` request serves every count analysis it names (its
    ``analysis_id`` is a comma-separated list); ``variants`` serves none; any
    other request serves the one analysis of its ``analysis_id``.
    """
    if not server.analyses:
        return ()
    by_id = {a.id: a for a in study.analyses}
    idents = (
        request.analysis_id.split(",")
        if request.kind == GENOTYPE_COUNTS_KIND
        else [request.analysis_id]
    )
    wanted = server.analysis_of.get(request.kind)
    specs = []
    for ident in idents:
        if ident == QC_COUNTS_ID and request.kind == GENOTYPE_COUNTS_KIND:
            if study.qc is None:
                raise PolicyRefusal(NOT_IN_STUDY, "this study has no [qc] table")
            continue
        spec = by_id.get(ident)
        if spec is None or spec.kind not in server.analyses or wanted not in (None, spec.kind):
            raise PolicyRefusal(
                NOT_IN_STUDY, f"analysis {ident!r} is not {_what(server, wanted)} of this study"
            )
        specs.append(spec)
    return tuple(specs)


def _serves_qc(request: Request) -> bool:
    """Whether a ``genotype_counts`` request's counts also serve the study's ``[qc]``."""
    return request.kind == GENOTYPE_COUNTS_KIND and QC_COUNTS_ID in request.analysis_id.split(",")


def _what(server: Server, wanted: str | None) -> str:
    if server.analyses == COUNT_KINDS:
        return "a count analysis"
    return f"a {wanted or ' or '.join(sorted(server.analyses))} analysis"


__all__ = ["VARIANTS_KIND", "handle_request"]
