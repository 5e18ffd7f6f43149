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
the epsilon its releases charged. A study that appears only in the log
(seen before approvals were kept) is listed with the last decision the log
records for it.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import genofed
from genofed.common.checkpoint import key_id, public_key_from_pem
from genofed.common.clock import Clock, utc_now
from genofed.common.errors import GenoFedError, InputError
from genofed.common.messages import AuditEntry, AuditKind
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


def list_studies(site_dir: Path) -> sa.StudyList:
    """Every study the site has seen, with its decision and its audit counts."""
    records: dict[str, sa.StudyRecord] = {}
    for row in approvals.list_studies(site_dir):
        records[row.study_sha256] = sa.StudyRecord(
            study_sha256=row.study_sha256,
            study_name=row.study_name,
            status=row.status,
            reason=row.reason,
            decided_by=row.decided_by,
            decided_at=row.decided_at,
            first_seen=row.first_seen,
            analyst=row.analyst,
        )
    for entry in audit_entries(site_dir):
        if not entry.study_sha256:
            continue
        record = records.get(entry.study_sha256)
        if record is None:
            record = sa.StudyRecord(
                study_sha256=entry.study_sha256, status="seen in the log", first_seen=entry.time
            )
            records[entry.study_sha256] = record
        if entry.kind == AuditKind.REQUEST:
            record.n_requests += 1
        elif entry.kind == AuditKind.RELEASE:
            record.n_releases += 1
            record.epsilon_charged += entry.epsilon
        elif entry.kind == AuditKind.REFUSAL:
            record.n_refusals += 1
            if record.status == "seen in the log":
                record.reason = entry.reason
    return sa.StudyList(studies=list(records.values()), source=SOURCE_APPROVALS)


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
    delta = budget.delta if budget else 1e-6
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
    "AgentInfo",
    "audit_entries",
    "budget_report",
    "latest_checkpoint",
    "list_studies",
    "site_status",
]
