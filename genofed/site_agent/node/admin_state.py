"""What the privacy officer and hospital IT may ask about a site, read from its state directory.

The SiteAdmin service (:mod:`genofed.site_agent.admin`) answers from these
functions while the agent runs; the ``genofed-site`` admin commands call them
directly when it does not. Both paths return the same ``genofed.v1``
messages (``site_admin.proto``), so what a person sees does not depend on
whether the agent was up.

Everything here only reads: the audit log (read-only SQLite connection), the
privacy ledger (read-only), the policy, ``site.toml`` and the approvals
database (:mod:`genofed.site_agent.privacy.approvals`).

Studies and decisions: the approvals database holds each study the site has
seen with its status (pending, approved, refused), who decided and why; the
audit log adds how many requests, releases and refusals each study had and
the epsilon its releases charged, and the ledger what those charges compose
to. A study is keyed by its hash and its signer (:class:`StudyKeys`): two
analysts who sign the same study content send the same hash, and are two
records that share the hash's decision. A study that appears only in the log
(seen before approvals were kept) is listed with the last decision the log
records for it.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import genofed
from genofed.common.checkpoint import key_id, public_key_from_pem
from genofed.common.clock import Clock, utc_now
from genofed.common.errors import GenoFedError, InputError
from genofed.common.messages import AuditEntry, AuditKind
from genofed.common.signing import public_key_text
from genofed.common.wire.proto import audit_entry_from_bytes, checkpoint_to_proto
from genofed.protos.v1 import genofed_pb2 as pb
from genofed.protos.v1 import site_admin_pb2 as sa
from genofed.site_agent.audit.log import AuditPaths, read_site_log
from genofed.site_agent.privacy import approvals
from genofed.site_agent.privacy.accounting import Event, epsilon_of_events
from genofed.site_agent.privacy.dp_release import STATE_DIR
from genofed.site_agent.privacy.ledger import LEDGER_FILE, period_key
from genofed.site_agent.privacy.policy import POLICY_FILE, SitePolicy, load_policy
from genofed.site_agent.sitedir import load_site
from genofed.site_agent.snapshot import snapshot_status

#: Where the studies' decisions come from (StudyList.source).
SOURCE_APPROVALS = "approvals database and audit log"


@dataclass(frozen=True)
class AgentInfo:
    """Facts about the running agent (empty when reading the state directly)."""

    started: str = ""
    pid: int = 0
    superlink: str = ""


def audit_entries(site_dir: Path, start: int = 0, study: str = "") -> Iterator[AuditEntry]:
    """The log's entries from ``start`` on, oldest first, optionally for one study hash."""
    for leaf in read_site_log(site_dir).leaves[start:]:
        entry = audit_entry_from_bytes(leaf)
        if not study or entry.study_sha256 == study:
            yield entry


def latest_checkpoint(site_dir: Path) -> pb.Checkpoint:
    """The latest signed checkpoint of the site's log."""
    snapshot = read_site_log(site_dir)
    if not snapshot.checkpoints:
        raise InputError(
            "the audit log has no checkpoint",
            path=AuditPaths.of(site_dir).db,
            hint="run `genofed-site audit verify` on the site directory",
        )
    return checkpoint_to_proto(snapshot.checkpoints[-1])


def _policy_or_none(site_dir: Path) -> SitePolicy | None:
    try:
        return load_policy(Path(site_dir) / POLICY_FILE)
    except GenoFedError:
        return None


def site_status(site_dir: Path, agent: AgentInfo | None = None) -> sa.SiteStatus:
    """Who the site is, its policy in brief, and how its log stands."""
    agent = agent or AgentInfo()
    config = load_site(site_dir)
    snapshot = read_site_log(site_dir)
    policy = _policy_or_none(site_dir)
    status = sa.SiteStatus(
        site=config.name,
        software_version=genofed.__version__,
        started=agent.started,
        pid=agent.pid,
        superlink=agent.superlink,
        demo_policy=bool(policy and policy.demo),
        allowed_analyses=sorted(policy.allowed_analyses) if policy else [],
        audit_entries=len(snapshot.leaves),
        audit_key_id=key_id(public_key_from_pem(snapshot.public_key_pem)),
    )
    if snapshot.checkpoints:
        status.latest_checkpoint.CopyFrom(checkpoint_to_proto(snapshot.checkpoints[-1]))
    if policy is not None and policy.audit_sample_sets and policy.min_cell_count > 0:
        status.disclosure_guard = f"on (min_cell_count {policy.min_cell_count})"
        cohort = snapshot_status(site_dir)
        status.cohort_snapshot = (
            cohort.describe() if cohort else "none yet (taken at first request)"
        )
    elif policy is not None:
        why = "min_cell_count = 0" if policy.min_cell_count == 0 else "audit_sample_sets = false"
        status.disclosure_guard = f"off ({why}): releases are not audited against each other"
    return status


#: The analyst of a study that arrived unsigned (as the approvals database records it).
UNSIGNED = "(unsigned)"


@dataclass(frozen=True)
class StudyKeys:
    """Which study record an audit entry belongs to: (study hash, analyst), as listed.

    ``names`` maps a signer's key (``ed25519:...``) to its trusted analyst's
    name in the site's policy; a key the policy does not name stands for
    itself. An entry without a signer (an unsigned study, or an entry written
    before signers were recorded) belongs to the analyst the approvals
    database recorded for its hash, else to :data:`UNSIGNED`.
    """

    names: Mapping[str, str]
    first: Mapping[str, str]

    @classmethod
    def of_site(cls, site_dir: Path) -> StudyKeys:
        policy = _policy_or_none(site_dir)
        names = (
            {public_key_text(k): n for n, k in policy.trusted_analysts.items()} if policy else {}
        )
        first = {row.study_sha256: row.analyst for row in approvals.list_studies(site_dir)}
        return cls(names, first)

    def analyst(self, study_sha256: str, signer: str) -> str:
        if not signer:
            return self.first.get(study_sha256, UNSIGNED)
        return self.names.get(signer, signer)

    def key(self, entry: AuditEntry) -> tuple[str, str]:
        return entry.study_sha256, self.analyst(entry.study_sha256, entry.signer)


def _budget_delta(policy: SitePolicy | None) -> float:
    return policy.budget.delta if policy is not None and policy.budget is not None else 1e-6


def list_studies(site_dir: Path) -> sa.StudyList:
    """Every study (hash and signer) the site has seen, its decision, audit counts and epsilon.

    The decision belongs to the hash (the approvals database keeps one per
    hash), so every signer's record of one hash shows it. ``epsilon_charged``
    is the plain sum of the releases' charges; ``epsilon_composed`` composes
    the study's ledger charges (RDP, at the budget's delta), as the ledger
    composes a period's charges.
    """
    keys = StudyKeys.of_site(site_dir)
    records: dict[tuple[str, str], sa.StudyRecord] = {}
    for row in approvals.list_studies(site_dir):
        records[(row.study_sha256, row.analyst)] = sa.StudyRecord(
            study_sha256=row.study_sha256,
            study_name=row.study_name,
            status=row.status,
            reason=row.reason,
            decided_by=row.decided_by,
            decided_at=row.decided_at,
            first_seen=row.first_seen,
            analyst=row.analyst,
        )
    by_hash: dict[str, list[sa.StudyRecord]] = {sha: [] for sha, _ in records}
    run_keys: dict[tuple[str, str], tuple[str, str]] = {}
    for entry in audit_entries(site_dir):
        if not entry.study_sha256:
            continue
        by_hash.setdefault(entry.study_sha256, [])
        key = keys.key(entry)
        record = records.get(key) or _new_record(records, key, entry)
        if entry.run_id:
            run_keys.setdefault((entry.study_sha256, entry.run_id), key)
        if entry.kind == AuditKind.REQUEST:
            record.n_requests += 1
        elif entry.kind == AuditKind.RELEASE:
            record.n_releases += 1
            record.epsilon_charged += entry.epsilon
        elif entry.kind == AuditKind.REFUSAL:
            record.n_refusals += 1
            if record.status == "seen in the log":
                record.reason = entry.reason
    events: dict[tuple[str, str], list[Event]] = {}
    for _t, _p, study, _a, run, _m, z, eps, q, steps in _ledger_rows(site_dir):
        key = run_keys.get((study, run), (study, keys.analyst(study, "")))
        if key in records:
            events.setdefault(key, []).append((z, q, steps))
            records[key].epsilon_charges.append(eps)
    delta = _budget_delta(_policy_or_none(site_dir))
    for key, charged in events.items():
        records[key].epsilon_composed = epsilon_of_events(charged, delta)
    for record in records.values():  # a hash's records together, in first-seen order
        by_hash[record.study_sha256].append(record)
    studies = [r for group in by_hash.values() for r in group]
    return sa.StudyList(studies=studies, source=SOURCE_APPROVALS)


def _new_record(
    records: dict[tuple[str, str], sa.StudyRecord], key: tuple[str, str], entry: AuditEntry
) -> sa.StudyRecord:
    """The record of a (hash, analyst) first seen in the log, with the hash's decision."""
    sha, analyst = key
    unclaimed = records.pop((sha, ""), None)  # approved before any request: its first signer
    if unclaimed is not None:
        unclaimed.analyst = analyst
        record = unclaimed
    else:
        sibling = next((r for (h, _), r in records.items() if h == sha), None)
        record = sa.StudyRecord(study_sha256=sha, analyst=analyst, first_seen=entry.time)
        if sibling is None:
            record.status = "seen in the log"
        else:  # another signer of the same study content: the decision is the hash's
            record.study_name = sibling.study_name
            record.status = sibling.status
            record.reason = sibling.reason
            record.decided_by = sibling.decided_by
            record.decided_at = sibling.decided_at
    records[key] = record
    return record


def _ledger_rows(
    site_dir: Path,
) -> list[tuple[str, str, str, str, str, str, float, float, float, int]]:
    path = Path(os.path.abspath(site_dir)) / STATE_DIR / LEDGER_FILE
    if not path.is_file():
        return []
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            have = {row[1] for row in conn.execute("PRAGMA table_info(charges)")}
            # DP-SGD charges (train) carry a sampling rate and steps; older ledgers do not
            rate = "sampling_rate" if "sampling_rate" in have else "1.0"
            steps = "steps" if "steps" in have else "1"
            rows = conn.execute(
                "SELECT time, period, study_sha256, analysis_id, run_id, mechanism, "
                f"noise_multiplier, epsilon, {rate}, {steps} FROM charges ORDER BY id"
            ).fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise InputError(f"cannot read the privacy ledger ({exc})", path=path) from exc
    return [tuple(r) for r in rows]


def budget_report(site_dir: Path, *, clock: Clock = utc_now) -> sa.BudgetReport:
    """The policy's budget, every charge, and epsilon spent (RDP composition per period).

    ``epsilon_spent_after`` of a charge composes every charge of its period up
    to and including it, at the policy's delta, as the ledger does.
    """
    policy = _policy_or_none(site_dir)
    budget = policy.budget if policy else None
    report = sa.BudgetReport(has_budget=budget is not None)
    delta = _budget_delta(policy)
    if budget is not None:
        report.epsilon = budget.epsilon
        report.delta = budget.delta
        report.period = budget.period
        report.current_period = period_key(budget.period, clock())
    by_period: dict[str, list[Event]] = {}
    for time, period, study, analysis, run, mechanism, z, eps, q, steps in _ledger_rows(site_dir):
        by_period.setdefault(period, []).append((z, q, steps))
        report.charges.append(
            sa.BudgetCharge(
                time=time,
                period=period,
                study_sha256=study,
                analysis_id=analysis,
                run_id=run,
                mechanism=mechanism,
                noise_multiplier=z,
                epsilon=eps,
                epsilon_spent_after=epsilon_of_events(by_period[period], delta),
            )
        )
    if budget is not None:
        report.epsilon_spent = epsilon_of_events(by_period.get(report.current_period, []), delta)
    return report


__all__ = [
    "SOURCE_APPROVALS",
    "UNSIGNED",
    "AgentInfo",
    "StudyKeys",
    "audit_entries",
    "budget_report",
    "latest_checkpoint",
    "list_studies",
    "site_status",
]
