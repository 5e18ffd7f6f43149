"""The study protocol, as the coordinator drives it.

1. ``variants`` round: every site sends its variant table; the coordinator
   harmonizes them (``combine/harmonize.py``) and stops on differences the
   study does not allow. A study with ``[cohort]`` or ``[sample_qc]`` learns
   each site's sample funnel from the same replies (:mod:`.writers.cohort`):
   every analysis at a site runs on the samples its cohort and QC keep.
2. One ``genotype_counts`` round serves every count analysis of the study
   (``freq``, ``hardy``, ``missing``, ``gcount``) and its ``[qc]``: each site
   sends per-variant genotype counts for the study's variants, in the study's
   allele orientation; the coordinator sums them and writes each table. A
   study with ``[qc]`` asks for this round even without a count analysis; the
   QC (:mod:`.combine.qc`, plink2's variant filters) is computed once from the
   pooled counts, and every later analysis runs on the variants it keeps.
   The count tables list the variants plink2 lists with the same filters:
   ``.afreq``, ``.vmiss``, ``.gcount`` those after ``extract`` / ``exclude``,
   ``.hardy`` those after ``--geno`` too (plink2 writes it before ``--hwe``
   and ``--maf``, the others before ``--geno``).
   Every other analysis then runs its own rounds, in study order, through the
   protocol :data:`~genofed.coordinator.protocols.PROTOCOLS` registers for its kind.
3. ``report.html`` (:mod:`.writers.analyst_report`) describes the results for
   the analyst, and ``provenance.json`` records the study, the sites, what they
   reported, the summary, which analysis wrote which file and the software versions.

Results are written to a staging directory beside ``out`` and moved into
place only when everything succeeded, so a failed study leaves no partial
result that looks complete.

A site that refuses, fails or does not answer within the site timeout either
stops the study (the default: every site must take part; the error names the
site) or, when the study's ``min_sites`` still holds without it, drops out:
the study goes on with the others, an analysis it was part-way through is
run again from its first round without it, and the summary and
``provenance.json`` name the missing site, the round and the reason.

The runner never prints: it reports each step, round and site answer as an
event to its ``progress`` callback (:mod:`.events`), and logs per-site
detail at DEBUG.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genofed.common.analyses import (
    CONTROL_COUNTS_ARRAY,
    COUNT_KINDS,
    FOUNDER_COUNTS_ARRAY,
    FOUNDER_KINDS,
    GENOTYPE_COUNTS_KIND,
    PRS_KIND,
    QC_COUNTS_ID,
    TRAIN_KIND,
    VARIANTS_KIND,
)
from genofed.common.checkpoint import checkpoint_to_json
from genofed.common.clock import Clock, utc_now
from genofed.common.errors import GenoFedError, InputError, SiteFailure, TooFewSites
from genofed.common.messages import Receipt, Reply, Request, SignedStudy, Status
from genofed.common.reasons import BAD_REPLY, FAILED, NO_REPLY
from genofed.common.receipts import (
    GLM_IMPUTED_FACT,
    GUARD_LEFT_OUT_FACT,
    MEMBERSHIP_LIMIT_FACT,
    MEMBERSHIP_POWER_FACT,
    REPLAY_FACT,
)
from genofed.common.signing import StudySignature, public_key_text
from genofed.common.study import SECURE_MODES, AnalysisSpec, Study
from genofed.common.wire.records import NamedArrays, signed_study
from genofed.common.wire.summable import fixed_point_exponents, summable_form, summed
from genofed.coordinator.combine.freq import sum_site_counts
from genofed.coordinator.combine.harmonize import (
    Harmonization,
    SitePlan,
    VariantTable,
    check_builds,
    harmonize,
)
from genofed.coordinator.combine.membership import parse_limit, pooled_withheld
from genofed.coordinator.combine.qc import QCResult, variant_qc
from genofed.coordinator.events import (
    ANALYSIS_DONE,
    ANALYSIS_STARTED,
    ROUND_DONE,
    ROUND_STARTED,
    SITE_ANSWERED,
    SITE_DROPPED,
    SITE_FAILED,
    STUDY_DONE,
    STUDY_FAILED,
    STUDY_STARTED,
    EventFn,
    Events,
)
from genofed.coordinator.protocols import PROTOCOLS, REPORT_SECTIONS, Answer, AskSites, Job, Result
from genofed.coordinator.protocols.counts import write_count_outputs
from genofed.coordinator.protocols.job import AskSum, Pooled
from genofed.coordinator.protocols.prs import read_scoring_file
from genofed.coordinator.protocols.secure_counts import SecureCounts
from genofed.coordinator.receipt_check import ReceiptCheck
from genofed.coordinator.site_record import SiteRecord
from genofed.coordinator.study_files import ANYWHERE, StudyFiles
from genofed.coordinator.transport import Incoming, Outgoing, StreamingTransport, Transport
from genofed.coordinator.writers.analyst_report import REPORT_FILE, write_report
from genofed.coordinator.writers.cohort import cohort_summary
from genofed.coordinator.writers.figures import require_matplotlib
from genofed.coordinator.writers.provenance import (
    provenance_doc,
    write_harmonization,
    write_provenance,
)
from genofed.coordinator.writers.qc import qc_summary, write_qc
from genofed.coordinator.writers.suppressed import (
    site_withheld,
    suppression_summary,
    write_suppressed,
)

log = logging.getLogger("genofed.coordinator")

DEFAULT_TIMEOUT_S = 600.0


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


#: The progress callback: one call per study event (:mod:`.events`).
ProgressFn = EventFn


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
    clock: Clock = utc_now,
    signature: StudySignature | None = None,
    receipts: ReceiptCheck | None = None,
    study_files: StudyFiles = ANYWHERE,
    node_names: Mapping[int, str] | None = None,
) -> StudyOutcome:
    """Run ``study`` over ``transport`` and write its results to ``out``.

    ``node_names`` names each node before its site has said its name (the
    names sites were registered under, in deployment): a site that refuses
    before it answers (an app bundle it does not allow) is named, not numbered.

    ``study_files`` says where the files the study names may be read
    (:mod:`.study_files`); they are read and checked before any site is asked.

    ``receipts``, when given, checks every reply's receipt against the sites'
    audit keys before the protocol uses it (:mod:`.receipt_check`).

    ``signature`` is the analyst's signature over the study; it travels with
    every request so that each site can check it against its policy.

    ``progress`` receives every event of the run (:mod:`.events`), from
    ``study_started`` to ``study_done`` or ``study_failed``.
    """
    run_id = run_id or uuid.uuid4().hex[:16]
    events = Events(progress, study=study.name, run_id=run_id, clock=clock)
    try:
        return _run(
            study,
            transport,
            out,
            engine=engine,
            overwrite=overwrite,
            run_id=run_id,
            events=events,
            timeout=timeout,
            clock=clock,
            signature=signature,
            receipts=receipts,
            study_files=study_files,
            node_names=node_names or {},
        )
    except BaseException as exc:
        message = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc)
        events.emit(
            STUDY_FAILED, error=type(exc).__name__, message=message, seconds=events.seconds()
        )
        raise


def _run(
    study: Study,
    transport: Transport,
    out: Path,
    *,
    engine: str,
    overwrite: bool,
    run_id: str,
    events: Events,
    timeout: float,
    clock: Clock,
    signature: StudySignature | None,
    receipts: ReceiptCheck | None,
    study_files: StudyFiles,
    node_names: Mapping[int, str],
) -> StudyOutcome:
    signed = signed_study(study, signature)
    started = clock()
    nodes = sorted(transport.nodes())
    events.emit(
        STUDY_STARTED,
        sha256=study.sha256,
        engine=engine,
        nodes=len(nodes),
        min_sites=study.min_sites,
        analyses=[{"id": a.id, "kind": a.kind} for a in study.analyses],
    )
    _check_out(out, overwrite)
    _check_plotting(study)
    _check_study_files(study, study_files)
    if receipts is not None:
        transport = receipts.wrap(transport)
    check_enough_sites(study, len(nodes))
    members = _Members(transport, nodes, study.min_sites, timeout, events)
    members.names = {n: node_names[n] for n in nodes if node_names.get(n)}
    count_ids = [a.id for a in study.analyses if a.kind in COUNT_KINDS]
    # the ids the counts round serves: the count analyses, and [qc]
    counts_ids = count_ids + ([QC_COUNTS_ID] if study.qc is not None else [])
    # exact / distributed-dp: the counts round is a SecAgg+ sum (secure_counts.py)
    secure = (
        SecureCounts(study, transport, len(nodes), members.name)
        if study.privacy.mode in SECURE_MODES
        else None
    )

    members.begin((), VARIANTS_KIND, nodes)
    request = _request(signed, run_id, VARIANTS_KIND, "variants", 1)
    replies = members.exchange({n: Outgoing(request) for n in nodes}, 1)
    sites = {
        n: SiteRecord(n, r.site, dict(r.facts), r.software_version) for n, (r, _) in replies.items()
    }
    _check_site_names(sites)
    members.names = {n: r.name for n, r in sites.items()}
    order = sorted(replies, key=lambda n: sites[n].name)
    tables = [_variant_table(sites[n].name, replies[n][1]) for n in order]
    genome_build, build_warning = check_builds(
        [sites[n].name for n in order],
        [sites[n].facts.get("genome_build", "unknown") for n in order],
    )
    if build_warning is not None:
        log.warning("%s", build_warning)
    harmonization = harmonize(
        [sites[n].name for n in order],
        tables,
        allow_intersection=study.on_variant_mismatch == "intersect",
    )
    for n in order:
        sites[n].replies.append(_reply_record(VARIANTS_KIND, replies[n][0]))
    members.done((), VARIANTS_KIND, [])

    staging = out.parent / f".{out.name}.partial-{run_id}"
    staging.mkdir(parents=True)
    try:
        outputs: list[str] = [write_harmonization(staging, harmonization)]
        summary: dict[str, object] = {
            "n_variants": len(harmonization.variants),
            "genome_build": genome_build,
        }
        samples = cohort_summary(study, (sites[n] for n in order))
        if samples is not None:  # [cohort] and [sample_qc]: the sites' sample funnel
            summary["cohort"] = samples
        analysis_files: dict[str, list[str]] = {}  # analysis id -> the files it wrote
        analysed = harmonization  # the variants of every later analysis: after [qc]
        if counts_ids:
            members.begin(tuple(counts_ids), GENOTYPE_COUNTS_KIND, order)
            plans = dict(zip(order, harmonization.plans, strict=True))
            outgoing = {
                n: Outgoing(
                    _request(signed, run_id, GENOTYPE_COUNTS_KIND, ",".join(counts_ids), 2),
                    {"variant_index": plans[n].index, "flip": plans[n].flip},
                )
                for n in order
            }
            replies = members.exchange(outgoing, 2, send=None if secure is None else secure.send)
            order = [n for n in order if n in replies]
            n_variants = len(harmonization.variants)
            per_site = []
            per_site_founders = []  # plink2's founders-only tables (--freq, --hardy, ...)
            founders_only = []  # sites whose sample files list parents
            per_site_controls = []  # [qc] hwe_controls: the controls' tables
            withheld = []  # per site: variants withheld by small-cell suppression
            dp = study.privacy.mode in ("dp", "distributed-dp")
            for n in order:
                reply, arrays = replies[n]
                sites[n].replies.append(_reply_record(GENOTYPE_COUNTS_KIND, reply))
                if secure is None:  # a secure round's arrays are masked vectors
                    per_site.append(_checked_counts(sites[n].name, arrays, n_variants, noisy=dp))
                    if FOUNDER_COUNTS_ARRAY in arrays and not dp:
                        founders_only.append(sites[n].name)
                        per_site_founders.append(
                            _checked_counts(
                                sites[n].name, arrays, n_variants, name=FOUNDER_COUNTS_ARRAY
                            )
                        )
                    else:
                        per_site_founders.append(per_site[-1])
                    if study.qc is not None and study.qc.hwe_controls is not None and not dp:
                        per_site_controls.append(
                            _checked_counts(
                                sites[n].name, arrays, n_variants, name=CONTROL_COUNTS_ARRAY
                            )
                        )
                withheld.append(site_withheld(sites[n].name, arrays, n_variants))
            names = [sites[n].name for n in order]
            if secure is None:
                pooled = sum_site_counts(per_site, noisy=dp)
            else:
                filtered = (
                    any(
                        a.params.get("samples_with")
                        for a in study.analyses
                        if a.kind in COUNT_KINDS
                    )
                    or study.cohort is not None
                    or study.sample_qc is not None
                )  # then the sites count fewer samples than they hold
                expected = None if filtered else _pooled_samples(sites[n] for n in order)
                left_out = sum(
                    int(replies[n][0].facts.get(GUARD_LEFT_OUT_FACT, "0") or "0") for n in order
                )  # samples a site's guard left out (an earlier release's samples served)
                expected = None if expected is None else expected - left_out
                pooled = secure.total(n_variants, expected)
            if dp:  # post-processing of noisy sums: a count cannot be negative
                pooled = np.maximum(pooled, 0)
            # founders' counts where a site sent them (plink2 --freq/--hardy/--maf/--hwe)
            founders = sum_site_counts(per_site_founders) if founders_only else pooled
            if founders_only:
                summary["founders_only"] = {
                    "sites": founders_only,
                    "analyses": sorted(a.id for a in study.analyses if a.kind in FOUNDER_KINDS),
                    "note": "freq, hardy and [qc]'s maf, mac and hwe count founders only, "
                    "as plink2 without --nonfounders (these sites' sample files list parents)",
                }
            small = _small_pooled(pooled, sites, order) if secure is not None and not dp else None
            limits = [
                limit
                for n in order
                if (limit := parse_limit(sites[n].facts.get(MEMBERSHIP_LIMIT_FACT, "")))
            ]
            risky = None
            if small is not None and limits:
                risky, left = pooled_withheld(pooled, limits, small)
                summary[MEMBERSHIP_POWER_FACT] = [
                    {"site": "pooled (exact)", "analysis": ",".join(count_ids), "power": left}
                ]
            outputs.extend(
                write_suppressed(staging, harmonization.variants, names, withheld, small, risky)
            )
            summary["suppressed"] = suppression_summary(names, withheld)
            if small is not None:
                withheld.append(small)
                summary["suppressed"]["small pooled cells"] = int(small.sum())
            if risky is not None:
                withheld.append(risky)
                summary["suppressed"]["membership limit (pooled)"] = int(risky.sum())
            any_withheld = np.any(withheld, axis=0)
            qc: QCResult | None = None
            if study.qc is not None:
                controls = sum_site_counts(per_site_controls) if per_site_controls else None
                qc = _pooled_qc(study, harmonization, pooled, any_withheld, founders, controls)
                outputs.extend(write_qc(staging, harmonization.variants, qc))
                summary["qc"] = qc_summary(study.qc, qc)
                analysed = _qc_only(harmonization, qc.keep)
                if not len(analysed.variants) and len(count_ids) < len(study.analyses):
                    raise GenoFedError(
                        "[qc] removed every variant, so the study's other analyses have none "
                        f"to run on ({summary['qc']['funnel']}); loosen the [qc] thresholds"
                    )
                members.done((QC_COUNTS_ID,), "qc", [])
            for spec in study.analyses:
                if spec.kind in COUNT_KINDS:
                    log.debug("combining %s (%s)", spec.id, spec.kind)
                    rows = _count_rows(spec.kind, qc, len(harmonization.variants))
                    table = founders if spec.kind in FOUNDER_KINDS else pooled
                    files, stats = write_count_outputs(
                        staging,
                        spec,
                        harmonization.variants.take(rows),
                        table[rows],
                        any_withheld[rows],
                    )
                    outputs.extend(files)
                    summary[spec.id] = stats
                    analysis_files[spec.id] = files
                    members.done((spec.id,), spec.kind, files)
        rounds = iter(range(3, 10**6))
        train_epsilon: dict[str, object] = {}  # train analysis id -> epsilon per site
        for spec in study.analyses:
            if spec.kind in COUNT_KINDS:
                continue
            written = len(outputs)
            run = PROTOCOLS[spec.kind].run
            if run is not None:

                def attempt(part: list[int], spec: AnalysisSpec = spec, run: RunFn = run) -> Result:
                    names = [sites[n].name for n in part]
                    ask = members.asker(signed, run_id, part, sites, rounds, secure)
                    ask_sum = members.summer(signed, run_id, part, sites, rounds, secure)
                    return run(
                        Job(
                            study,
                            spec,
                            _only(analysed, names),
                            names,
                            staging,
                            ask,
                            ask_sum,
                            study_files,
                        )
                    )

                files, stats = members.run_analysis(order, attempt, spec)
                order = members.still(order)
                outputs.extend(files)
                summary[spec.id] = stats
                if spec.kind == TRAIN_KIND:
                    train_epsilon[spec.id] = stats["epsilon_per_site"]
                members.done((spec.id,), spec.kind, files)
            analysis_files[spec.id] = outputs[written:]
        summary.update(_missing_summary(study, sites.values(), members.lost))
        pooled_power = summary.pop(MEMBERSHIP_POWER_FACT, [])
        summary.update(_left_out_summary(sites.values()))
        if isinstance(pooled_power, list) and pooled_power:  # exact mode, beside the sites'
            earlier = summary.get(MEMBERSHIP_POWER_FACT)
            summary[MEMBERSHIP_POWER_FACT] = [
                *(earlier if isinstance(earlier, list) else []),
                *pooled_power,
            ]
        if receipts is not None:
            receipts.annotate(list(sites.values()))
        finished = clock()
        provenance = provenance_doc(
            study=study,
            run_id=run_id,
            engine=engine,
            started=started,
            finished=finished,
            sites=sorted(sites.values(), key=lambda r: r.name),
            harmonization=harmonization,
            outputs=[*outputs, REPORT_FILE],
            signer=None if signature is None else public_key_text(signature.public_key),
            missing=_as_list(summary.get("sites_missing")),
            rounds=members.rounds,
            train_epsilon=train_epsilon,
            summary=summary,
            analysis_outputs=analysis_files,
        )
        # the analyst's report (from the same record) is the last output before provenance
        outputs.append(write_report(staging, provenance, sections=REPORT_SECTIONS))
        outputs.append(write_provenance(staging, provenance))
        _publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    events.emit(
        STUDY_DONE,
        out=str(out),
        outputs=list(outputs),
        sites=[sites[n].name for n in order],
        sites_missing=[str(what["site"]) for what in members.lost.values()],
        seconds=events.seconds(),
    )
    return StudyOutcome(
        out, study, run_id, tuple(sites[n] for n in order), harmonization, tuple(outputs), summary
    )


def check_enough_sites(study: Study, connected: int) -> None:
    """Stop before any round when fewer sites take part than ``[study] min_sites`` asks for."""
    need = study.min_sites or 1
    if connected >= need:
        return
    if study.min_sites is None:
        raise TooFewSites(
            "no site is connected",
            hint="start the sites (or pass --site DIR per site with --simulation)",
        )
    raise TooFewSites(
        f"[study] min_sites = {need}, but only {connected} "
        f"site{'' if connected == 1 else 's'} take part",
        key="[study] min_sites",
        hint=f"lower [study] min_sites to at most {connected} (or remove it: then every site "
        "must answer), or run the study with more sites",
    )


RunFn = Callable[[Job], Result]


#: A site's app gate refusing a bundle answers with a Flower error "site app failed: CODE: ...".
_SITE_APP_CODE = re.compile(r"site app failed: ([A-Z][A-Z_]+):")


class _Restart(Exception):
    """A site dropped out part-way through an analysis; run it again without it."""


class _Members:
    """The sites still taking part, and the rule for losing one.

    ``min_sites`` None means every site must take part: any failure stops the
    study. Otherwise a site that refuses, fails or stays silent for
    ``timeout`` seconds is dropped while at least ``min_sites`` remain.

    It also reports each step to ``events``: :meth:`begin` an analysis (or
    the variant harmonization, ``analyses`` empty), each round and each
    site's answer in :meth:`exchange`, :meth:`done`.
    """

    def __init__(
        self,
        transport: Transport,
        nodes: Sequence[int],
        min_sites: int | None,
        timeout: float,
        events: Events,
    ) -> None:
        self._transport = transport
        self._min_sites = min_sites
        self._timeout = timeout
        self._events = events
        self.active = list(nodes)
        #: node -> site name: registered (deployment), then what the site said (round 1)
        self.names: dict[int, str] = {}
        #: node -> what happened: round, step, site, reason code, message
        self.lost: dict[int, dict[str, object]] = {}
        #: per round: step, sites asked, seconds, array bytes to and from the busiest site
        self.rounds: list[dict[str, object]] = []
        # the step under way: its analyses, its own round count, when it started
        self._step: tuple[str, ...] = ()
        self._step_round = 0
        self._step_started = time.monotonic()

    def still(self, nodes: Sequence[int]) -> list[int]:
        """``nodes`` without the ones that dropped out."""
        return [n for n in nodes if n not in self.lost]

    def name(self, node: int) -> str:
        return self.names.get(node) or f"node {node}"

    def begin(
        self, analyses: tuple[str, ...], kind: str, part: Sequence[int], attempt: int = 1
    ) -> None:
        """A step starts: ``analyses`` (none: variant harmonization) on the sites ``part``."""
        self._step, self._step_round, self._step_started = analyses, 0, time.monotonic()
        log.debug("%s (%s) on %d sites", ", ".join(analyses) or "variants", kind, len(part))
        self._events.emit(
            ANALYSIS_STARTED,
            analyses=list(analyses),
            kind=kind,
            attempt=attempt,
            sites=[self.name(n) for n in part],
        )

    def done(self, analyses: tuple[str, ...], kind: str, outputs: Sequence[str]) -> None:
        self._events.emit(
            ANALYSIS_DONE,
            analyses=list(analyses),
            kind=kind,
            seconds=round(time.monotonic() - self._step_started, 3),
            rounds=self._step_round,
            outputs=list(outputs),
        )

    def exchange(
        self,
        outgoing: Mapping[int, Outgoing],
        round_: int,
        send: Callable[..., dict[int, Incoming]] | None = None,
    ) -> dict[int, Answer]:
        """One round: the replies of the nodes that answered; drops or stops for the rest.

        ``send`` replaces the transport's exchange (a SecAgg+ round: secure_counts.py).
        """
        self._step_round += 1
        kind = next(iter(outgoing.values())).request.kind
        where = {
            "analyses": list(self._step),
            "round": self._step_round,
            "study_round": round_,
            "request": kind,
        }
        self._events.emit(
            ROUND_STARTED,
            **where,
            sites=[self.name(n) for n in outgoing],
            secure=send is not None,
        )
        started = time.monotonic()
        reported: set[int] = set()

        def on_reply(node: int, got: Incoming) -> None:
            if node in outgoing and node not in reported:
                reported.add(node)
                self._site_event(node, got, where)

        if send is None and isinstance(self._transport, StreamingTransport):
            incoming = self._transport.exchange_streaming(
                outgoing, timeout=self._timeout, on_reply=on_reply
            )
        else:
            incoming = (send or self._transport.exchange)(outgoing, timeout=self._timeout)
        for node in outgoing:
            on_reply(node, incoming.get(node, Incoming(None, error="no reply")))
        seconds = round(time.monotonic() - started, 3)
        self.rounds.append(
            {
                "round": round_,
                "step": kind,
                "sites": len(outgoing),
                "seconds": seconds,
                "array_bytes_to_site": max(_nbytes(o.inputs) for o in outgoing.values()),
                "array_bytes_from_site": max(
                    (_nbytes(i.arrays) for i in incoming.values()), default=0
                ),
            }
        )
        ok: dict[int, Answer] = {}
        failed: list[tuple[int, SiteFailure]] = []
        for node in outgoing:
            got = incoming.get(node, Incoming(None, error="no reply"))
            name = self.name(node)
            if got.reply is None:
                error = got.error or "no reply"
                code = m[1] if (m := _SITE_APP_CODE.match(error)) else NO_REPLY
                failed.append((node, SiteFailure(name, code, error)))
                continue
            name = got.reply.site or name
            if got.reply.status != Status.OK:
                code = got.reply.reason_code or FAILED
                failed.append((node, SiteFailure(name, code, got.reply.message)))
                continue
            log.debug("%s: %s ok", name, got.reply.step)
            ok[node] = (got.reply, got.arrays)
        self._events.emit(
            ROUND_DONE, **where, asked=len(outgoing), answered=len(ok), seconds=seconds
        )
        if failed:
            self._lose(failed, where)
        return ok

    def _site_event(self, node: int, got: Incoming, where: Mapping[str, object]) -> None:
        """``site_answered`` or ``site_failed`` for one node's reply (or its absence)."""
        if got.reply is None:
            error = got.error or "no reply"
            m = _SITE_APP_CODE.match(error)
            self._events.emit(
                SITE_FAILED,
                **where,
                site=self.name(node),
                status="error" if m else "no_reply",
                reason_code=m[1] if m else NO_REPLY,
                message=error,
            )
            return
        site = got.reply.site or self.name(node)
        if got.reply.status == Status.OK:
            self._events.emit(SITE_ANSWERED, **where, site=site)
            return
        self._events.emit(
            SITE_FAILED,
            **where,
            site=site,
            status="refused" if got.reply.status == Status.REFUSED else "error",
            reason_code=got.reply.reason_code or FAILED,
            message=got.reply.message,
        )

    def _lose(self, failed: list[tuple[int, SiteFailure]], where: Mapping[str, object]) -> None:
        round_, step = where["study_round"], where["request"]
        remaining = [n for n in self.active if n not in {node for node, _ in failed}]
        if self._min_sites is None or len(remaining) < self._min_sites:
            if len(failed) == 1:
                raise failed[0][1]
            # every site's refusal, not only the first: the analyst sees each site and code
            # (without min_sites the failure is still the first site's, naming the others)
            names = (
                failed[0][1].site
                if self._min_sites is None
                else ", ".join(exc.site for _, exc in failed)
            )
            needs = (
                "the study needs every site (no min_sites)"
                if self._min_sites is None
                else f"{len(remaining)} left, the study needs min_sites = {self._min_sites}"
            )
            raise SiteFailure(
                names,
                failed[0][1].reason_code,
                f"{len(failed)} sites failed at round {round_} ({step}): "
                + "; ".join(str(exc) for _, exc in failed)
                + f"; {needs}",
            )
        for node, exc in failed:
            self.lost[node] = {
                "site": exc.site,
                "round": round_,
                "step": step,
                "reason_code": exc.reason_code,
                "message": str(exc),
            }
            # the site_dropped event tells the analyst; the log keeps it for the operator
            log.info("%s dropped out at round %s (%s): %s", exc.site, round_, step, exc)
            self._events.emit(
                SITE_DROPPED,
                **where,
                site=exc.site,
                reason_code=exc.reason_code,
                remaining=len(remaining),
                min_sites=self._min_sites,
            )
        self.active = remaining

    def asker(
        self,
        signed: SignedStudy,
        run_id: str,
        part: list[int],
        sites: Mapping[int, SiteRecord],
        rounds: Iterator[int],
        secure: SecureCounts | None = None,
    ) -> AskSites:
        """An ``ask`` for a multi-round analysis over ``part`` (in that order).

        In a secure mode (``secure`` given) no site's own arrays may reach the
        coordinator: ``ask`` refuses, and the protocol must use :meth:`summer`.
        """

        def ask(kind: str, ident: str, inputs: Sequence[NamedArrays]) -> list[Answer]:
            if secure is not None:
                raise GenoFedError(
                    f"{kind} asks for each site's arrays, which a study in a secure mode never "
                    "sends; this analysis cannot run in that mode"
                )
            round_ = next(rounds)
            req = _request(signed, run_id, kind, ident, round_)
            got = self.exchange(
                {n: Outgoing(req, x) for n, x in zip(part, inputs, strict=True)}, round_
            )
            for n in part:
                if n in got:
                    sites[n].replies.append(_reply_record(kind, got[n][0]))
            if len(got) < len(part):
                raise _Restart
            return [got[n] for n in part]

        return ask

    def summer(
        self,
        signed: SignedStudy,
        run_id: str,
        part: list[int],
        sites: Mapping[int, SiteRecord],
        rounds: Iterator[int],
        secure: SecureCounts | None,
    ) -> AskSum:
        """An ``ask_sum`` over ``part``: the sum of the sites' summable forms.

        ``plain``: the sites' replies, each put in its summable form here and
        added up in site order. ``exact``: one SecAgg+ round; the sites send
        their summable forms masked, and only the sum is decoded.
        """
        plain_ask = self.asker(signed, run_id, part, sites, rounds)

        def ask_sum(kind: str, ident: str, inputs: Sequence[NamedArrays]) -> Pooled:
            names = [self.names.get(n, f"node {n}") for n in part]
            if secure is None:
                got = plain_ask(kind, ident, inputs)
                form = summable_form(kind)
                forms = []
                for name, (_, arrays), x in zip(names, got, inputs, strict=True):
                    try:
                        forms.append(form(arrays, x))
                    except (KeyError, ValueError) as exc:
                        raise SiteFailure(name, BAD_REPLY, f"{kind} reply: {exc}") from exc
                try:
                    exponents = fixed_point_exponents(kind, inputs[0]) if inputs else {}
                    total = summed(forms, names, exponents)
                except ValueError as exc:
                    raise SiteFailure(names[0], BAD_REPLY, f"{kind} replies: {exc}") from exc
                return Pooled([r for r, _ in got], total, names)
            round_ = next(rounds)
            req = _request(signed, run_id, kind, ident, round_)
            outgoing = {n: Outgoing(req, x) for n, x in zip(part, inputs, strict=True)}
            got = self.exchange(outgoing, round_, send=secure.send)
            for n in part:
                if n in got:
                    sites[n].replies.append(_reply_record(kind, got[n][0]))
            if len(got) < len(part):
                raise _Restart
            replies = [got[n][0] for n in part]
            return Pooled(replies, secure.decoded(replies, names), names)

        return ask_sum

    def run_analysis(
        self, part: list[int], run: Callable[[list[int]], Result], spec: AnalysisSpec
    ) -> Result:
        """Run a multi-round analysis; again without a site that drops out part-way."""
        attempt = 0
        while True:
            attempt += 1
            part = self.still(part)
            self.begin((spec.id,), spec.kind, part, attempt)
            try:
                return run(part)
            except _Restart:
                continue


def _check_study_files(study: Study, files: StudyFiles) -> None:
    """Read and check every file the study names, before any site computes anything."""
    for spec in study.analyses:
        if spec.kind == PRS_KIND:
            read_scoring_file(spec, files)


def _pooled_samples(records: Iterable[SiteRecord]) -> int | None:
    """The sites' sample counts (round 1 facts) added up; None if a site did not say."""
    total = 0
    for record in records:
        n = record.facts.get("n_samples", "")
        if not n.isdigit():
            return None
        total += int(n)
    return total


def _pooled_qc(
    study: Study,
    harmonization: Harmonization,
    pooled: np.ndarray,
    withheld: np.ndarray,
    founders: np.ndarray,
    controls: np.ndarray | None = None,
) -> QCResult:
    """The study's ``[qc]`` on the pooled counts (withheld variants cannot be checked).

    ``founders``: the founders' pooled counts, for maf, mac and hwe (plink2's rule);
    ``controls``: the (founder) controls' counts, for hwe with ``hwe_controls``.
    """
    spec = study.qc
    assert spec is not None
    return variant_qc(
        pooled,
        harmonization.variants.id.astype(str).tolist(),
        founder_counts=founders,
        hwe_counts=controls,
        maf=spec.maf,
        mac=spec.mac,
        geno=spec.geno,
        hwe=spec.hwe,
        hwe_midp=spec.hwe_midp,
        hwe_keep_fewhet=spec.hwe_keep_fewhet,
        extract=spec.extract,
        exclude=spec.exclude,
        withheld=withheld,
    )


def _count_rows(kind: str, qc: QCResult | None, n_variants: int) -> np.ndarray:
    """The variants a count table lists: plink2's with the study's [qc] filters.

    plink2 writes ``--freq``, ``--missing`` and ``--geno-counts`` after
    ``--extract`` / ``--exclude`` and before ``--geno``, ``--hardy`` after
    ``--geno`` and before ``--hwe`` (``plink2.cc``, ``Plink2Core``). A
    withheld variant stays in every table (as NA rows).
    """
    if qc is None:
        return np.arange(n_variants)
    rows = qc.before("withheld")
    if kind == "hardy":
        rows = rows & ~qc.removed_by("geno")
    return np.flatnonzero(rows)


def _qc_only(harmonization: Harmonization, keep: np.ndarray) -> Harmonization:
    """The harmonization restricted to the variants QC kept."""
    if keep.all():
        return harmonization
    idx = np.flatnonzero(keep)
    return Harmonization(
        harmonization.variants.take(idx),
        tuple(SitePlan(p.index[idx], p.flip[idx]) for p in harmonization.plans),
        harmonization.reports,
    )


def _nbytes(arrays: NamedArrays) -> int:
    return int(sum(a.nbytes for a in arrays.values()))


def _only(harmonization: Harmonization, names: Sequence[str]) -> Harmonization:
    """The harmonization restricted to the sites still taking part."""
    keep = [i for i, r in enumerate(harmonization.reports) if r.site in set(names)]
    if len(keep) == len(harmonization.reports):
        return harmonization
    return Harmonization(
        harmonization.variants,
        tuple(harmonization.plans[i] for i in keep),
        tuple(harmonization.reports[i] for i in keep),
    )


def _as_list(value: object) -> list[dict[str, object]]:
    return list(value) if isinstance(value, list) else []


def _missing_summary(
    study: Study, sites: Iterable[SiteRecord], lost: Mapping[int, dict[str, object]]
) -> dict[str, object]:
    """Summary keys naming the sites that dropped out (none when every site took part)."""
    if not lost:
        return {}
    by_node = {s.node_id: s for s in sites}
    missing = []
    for node, what in sorted(lost.items()):
        record = by_node.get(node)
        if record is not None:
            record.missing = what
        missing.append({"node_id": node, **what})
    return {"sites_missing": missing, "min_sites": study.min_sites}


def _check_plotting(study: Study) -> None:
    """Fail before any round if an analysis draws plots and matplotlib is missing."""
    kinds = sorted({a.kind for a in study.analyses if PROTOCOLS[a.kind].plots})
    if kinds:
        require_matplotlib(f"the study's {', '.join(kinds)} analyses")
    training = any(a.kind == TRAIN_KIND for a in study.analyses)  # model.pt: a torch state_dict
    if training and any(importlib.util.find_spec(m) is None for m in ("torch", "opacus")):
        raise GenoFedError(
            "the study's train analyses need PyTorch and Opacus on the coordinator (it "
            "writes the model as model.pt), and they are not installed\n"
            "  fix: pip install 'genofed[train]' on this machine, then run the study again"
        )


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


def _request(study: SignedStudy, run_id: str, kind: str, analysis_id: str, round_: int) -> Request:
    return Request(
        study=study,
        analysis_id=analysis_id,
        kind=kind,
        step=kind,
        round=round_,
        run_id=run_id,
    )


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
        raise SiteFailure(site, BAD_REPLY, "variant table is incomplete") from exc
    if len({len(a) for a in (table.chrom, table.pos, table.id, table.ref, table.alt)}) != 1:
        raise SiteFailure(site, BAD_REPLY, "variant table columns differ in length")
    return table


def _small_pooled(
    pooled: np.ndarray, sites: Mapping[int, SiteRecord], order: Sequence[int]
) -> np.ndarray:
    """Variants whose exact pooled counts hold a nonzero genotype cell below the sites' minimum.

    In ``exact`` mode no site sees its counts leave in the clear, so no site
    suppresses them; the coordinator applies the largest ``min_cell_count``
    any site reported to the pooled table instead.
    """
    minimum = max((int(sites[n].facts.get("min_cell_count", "0")) for n in order), default=0)
    cells = pooled[:, :3]
    return np.asarray(((cells > 0) & (cells < minimum)).any(axis=1), dtype=np.bool_)


def _checked_counts(
    site: str,
    arrays: NamedArrays,
    n_variants: int,
    *,
    noisy: bool = False,
    name: str = "genotype_counts",
) -> np.ndarray:
    """A site's counts (or its founders' counts), checked; noisy (``dp``) ones may be < 0."""
    counts = arrays.get(name)
    if (
        counts is None
        or counts.shape != (n_variants, 4)
        or counts.dtype.kind not in "iu"
        or (counts.size and counts.min() < 0 and not noisy)
    ):
        raise SiteFailure(
            site, BAD_REPLY, f"genotype counts must be ({n_variants}, 4) non-negative integers"
        )
    return counts.astype(np.int64)


def _reply_record(kind: str, reply: Reply) -> dict[str, object]:
    return {
        "request": kind,
        "analysis_id": reply.analysis_id,
        "arrays": [
            {"name": a.name, "dtype": a.dtype, "shape": list(a.shape), "sha256": a.sha256}
            for a in reply.arrays
        ],
        "receipt": _receipt_record(reply.receipt),
        **({"noise": json.loads(reply.facts["noise"])} if "noise" in reply.facts else {}),
        # charged by this reply: a replay carries its original's receipt, charged back then
        **(
            {"epsilon_charged": reply.receipt.epsilon_charged}
            if reply.receipt.epsilon_charged and REPLAY_FACT not in reply.facts
            else {}
        ),
        # the site answered from a stored charged release (same values, no new charge)
        **(
            {"replay_of_audit_index": int(reply.facts[REPLAY_FACT])}
            if reply.facts.get(REPLAY_FACT, "").isdigit()
            else {}
        ),
        # the site's disclosure guard served the request over an earlier release's samples
        **(
            {GUARD_LEFT_OUT_FACT: int(reply.facts[GUARD_LEFT_OUT_FACT])}
            if reply.facts.get(GUARD_LEFT_OUT_FACT, "").isdigit()
            else {}
        ),
        # variants whose missing calls the site imputed (glm few_missing)
        **(
            {GLM_IMPUTED_FACT: int(reply.facts[GLM_IMPUTED_FACT])}
            if reply.facts.get(GLM_IMPUTED_FACT, "").isdigit()
            else {}
        ),
        # the site's estimate of the membership test's power on this release (after withholding)
        **_membership_record(reply.facts.get(MEMBERSHIP_POWER_FACT)),
    }


def _membership_record(text: str | None) -> dict[str, float]:
    try:
        return {} if text is None else {MEMBERSHIP_POWER_FACT: float(text)}
    except ValueError:
        return {}


def _left_out_summary(sites: Iterable[SiteRecord]) -> dict[str, object]:
    """Summary keys: analyses a site's guard served over fewer samples, variants a site imputed."""
    out: dict[str, object] = {}
    for fact, unit in ((GUARD_LEFT_OUT_FACT, "samples"), (GLM_IMPUTED_FACT, "variants")):
        most: dict[tuple[str, str], int] = {}
        for s in sites:
            for r in s.replies:
                n = r.get(fact)
                if isinstance(n, int) and (n or fact == GUARD_LEFT_OUT_FACT):
                    key = (s.name, str(r.get("analysis_id") or r.get("request")))
                    most[key] = max(most.get(key, 0), n)
        if most:
            out[fact] = [
                {"site": site, "analysis": analysis, unit: n}
                for (site, analysis), n in sorted(most.items())
            ]
    powers = {
        (s.name, str(r.get("analysis_id") or r.get("request"))): r[MEMBERSHIP_POWER_FACT]
        for s in sites
        for r in s.replies
        if isinstance(r.get(MEMBERSHIP_POWER_FACT), float)
    }
    if powers:  # each site's estimated power of the LR membership test on its release
        out[MEMBERSHIP_POWER_FACT] = [
            {"site": site, "analysis": analysis, "power": p}
            for (site, analysis), p in sorted(powers.items())
        ]
    return out


def _receipt_record(receipt: Receipt) -> dict[str, object]:
    """The receipt as provenance keeps it: the audit entry and the checkpoint that signs it."""
    record: dict[str, object] = {"audited": receipt.audited}
    if receipt.audited and receipt.checkpoint is not None:
        record["audit_index"] = receipt.audit_index
        record["checkpoint"] = checkpoint_to_json(receipt.checkpoint)
        record["epsilon_charged"] = receipt.epsilon_charged
        record["delta_charged"] = receipt.delta_charged
    return record


__all__ = [
    "ProgressFn",
    "SiteRecord",
    "StudyOutcome",
    "check_enough_sites",
    "outcome_doc",
    "run_study",
]
