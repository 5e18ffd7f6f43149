"""Per-site study approvals: which study hashes this site runs, refuses, or holds as pending.

One SQLite database per site, ``state/approvals.sqlite`` beside the audit log
and the ledger, with one row per study hash::

    approvals(study_sha256 TEXT PRIMARY KEY, status TEXT, reason TEXT,
              decided_by TEXT, decided_at TEXT, first_seen TEXT,
              study_name TEXT, analyst TEXT)

``status`` is ``pending`` (the site has seen the study and waits for its
privacy officer), ``approved`` or ``refused``. Transitions:

* a study the site has never seen, arriving signed (or unsigned under a demo
  policy), becomes ``pending`` and is refused with reason code
  ``PENDING_APPROVAL``, unless one of the policy's auto-approval rules
  (:func:`genofed.site_agent.privacy.policy.auto_approval_rule`) approves it, in which
  case it becomes ``approved`` by that rule;
* the privacy officer approves (``genofed-site approve``) a pending study or
  an unseen hash (approving ahead of the first request); approving twice is a
  no-op;
* the privacy officer refuses (``genofed-site refuse --reason ...``) a
  pending or approved study or an unseen hash. **A refused study stays
  refused**: approving it is an error, and no auto-approval rule revives it
  (the analyst changes the study, which changes its hash, and asks again).

Every approval and refusal, by a person or by a rule, is also an entry of the
site's audit log (``kind = DECISION``, the decision, and who and why in the
reason). Decisions are written in one ``BEGIN IMMEDIATE`` transaction that
stays open while the audit entry is appended, and committed only after the
audit entry is on disk: a crash between the two leaves an audited decision
whose state did not change (run the command again), never a decision without
its audit entry. Recording a study as pending is not a decision; the refusal
of the request that carried it is audited by the handler.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from genofed.common.checkpoint import rfc3339
from genofed.common.clock import Clock, utc_now
from genofed.common.errors import GenoFedError, InputError, PolicyRefusal
from genofed.common.messages import AuditEntry, AuditKind
from genofed.common.reasons import APPROVALS_UNAVAILABLE, PENDING_APPROVAL, STUDY_REFUSED
from genofed.common.study import Study
from genofed.site_agent.audit.log import STATE_DIR, AuditLog
from genofed.site_agent.privacy.guard import auto_approval_suspended
from genofed.site_agent.privacy.policy import SitePolicy, auto_approval_rule

APPROVALS_FILE = "approvals.sqlite"
PENDING = "pending"
APPROVED = "approved"
REFUSED = "refused"
STATUSES = (PENDING, APPROVED, REFUSED)
#: ``request_kind`` of the audit entry of an approval decision.
APPROVAL_KIND = "study_approval"
#: Shortest hash prefix the CLI resolves against the studies this site has seen.
MIN_PREFIX = 8


_SCHEMA = """
CREATE TABLE IF NOT EXISTS approvals (
    study_sha256 TEXT PRIMARY KEY CHECK (length(study_sha256) = 64),
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'refused')),
    reason TEXT NOT NULL DEFAULT '',
    decided_by TEXT NOT NULL DEFAULT '',
    decided_at TEXT NOT NULL DEFAULT '',
    first_seen TEXT NOT NULL DEFAULT '',
    study_name TEXT NOT NULL DEFAULT '',
    analyst TEXT NOT NULL DEFAULT ''
);
CREATE TRIGGER IF NOT EXISTS refused_stays_refused BEFORE UPDATE OF status ON approvals
WHEN OLD.status = 'refused' AND NEW.status != 'refused'
BEGIN SELECT RAISE(ABORT, 'a refused study stays refused'); END;
"""
_HEX = re.compile(r"^[0-9a-f]+$")
_COLUMNS = "study_sha256, status, reason, decided_by, decided_at, first_seen, study_name, analyst"


@dataclass(frozen=True)
class StudyApproval:
    """One study's approval state at this site (empty strings where not known)."""

    study_sha256: str
    status: str
    reason: str
    decided_by: str
    decided_at: str
    first_seen: str
    study_name: str
    analyst: str

    def to_json(self) -> dict[str, str]:
        return asdict(self)


def _db_path(site_dir: Path) -> Path:
    return Path(os.path.abspath(site_dir)) / STATE_DIR / APPROVALS_FILE


@contextmanager
def _connect(site_dir: Path) -> Iterator[sqlite3.Connection]:
    path = _db_path(site_dir)
    if not path.parent.is_dir():
        raise InputError(
            "the site has no state directory",
            path=path.parent,
            hint="create it with `genofed-site init` (or `genofed-site audit init DIR`)",
        )
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    except sqlite3.Error as exc:
        raise InputError(f"cannot open the approvals database ({exc})", path=path) from exc
    with closing(conn):
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(_SCHEMA)
        yield conn


def _row(conn: sqlite3.Connection, sha256: str) -> StudyApproval | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM approvals WHERE study_sha256 = ?", (sha256,)
    ).fetchone()
    return None if row is None else StudyApproval(*row)


def list_studies(site_dir: Path) -> list[StudyApproval]:
    """Every study this site has seen or decided, oldest first."""
    with _connect(site_dir) as conn:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM approvals ORDER BY first_seen, decided_at, study_sha256"
        ).fetchall()
    return [StudyApproval(*r) for r in rows]


def get_study(site_dir: Path, study_sha256: str) -> StudyApproval | None:
    """The approval state of one study hash, or None if the site has never seen it."""
    with _connect(site_dir) as conn:
        return _row(conn, study_sha256)


def resolve_hash(site_dir: Path, text: str) -> str:
    """A full study hash from ``text``: 64 hex digits, or a unique prefix of a known study."""
    value = text.strip().lower()
    if len(value) == 64 and _HEX.match(value):
        return value
    if len(value) < MIN_PREFIX or len(value) > 64 or not _HEX.match(value):
        raise InputError(
            f"{text!r} is not a study hash",
            hint="give the study's SHA-256 (64 hex digits, `genofed study show` prints it) "
            f"or at least {MIN_PREFIX} leading digits of a study listed by `genofed-site studies`",
        )
    matches = [s.study_sha256 for s in list_studies(site_dir) if s.study_sha256.startswith(value)]
    if len(matches) != 1:
        found = "no study" if not matches else f"{len(matches)} studies"
        raise InputError(
            f"{found} of this site start with {value!r}",
            path=_db_path(site_dir),
            hint="give the full 64-digit study hash",
        )
    return matches[0]


def decision_entry(study_sha256: str, *, decision: str, by: str, reason: str) -> AuditEntry:
    """The audit entry of an approval decision."""
    text = f"by {by}" + (f": {reason}" if reason else "")
    return AuditEntry(
        kind=AuditKind.DECISION,
        study_sha256=study_sha256,
        request_kind=APPROVAL_KIND,
        decision=decision,
        reason=text,
    )


def _decide(
    site_dir: Path,
    study_sha256: str,
    status: str,
    *,
    by: str,
    reason: str,
    clock: Clock,
    study_name: str = "",
    analyst: str = "",
) -> StudyApproval:
    if not (len(study_sha256) == 64 and _HEX.match(study_sha256)):
        raise InputError(f"{study_sha256!r} is not a study hash (64 lowercase hex digits)")
    if not by.strip():
        raise InputError("a decision needs the name of whoever makes it", hint="pass --by NAME")
    now = rfc3339(clock())
    with _connect(site_dir) as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            old = _row(conn, study_sha256)
            if old is not None and old.status == REFUSED and status != REFUSED:
                raise InputError(
                    f"study {study_sha256[:16]} was refused by {old.decided_by} on "
                    f"{old.decided_at} ({old.reason}); a refused study stays refused",
                    path=_db_path(site_dir),
                    hint="ask the analyst for a changed study: it gets a new hash to approve",
                )
            if old is not None and old.status == status == APPROVED:
                conn.execute("ROLLBACK")
                return old
            conn.execute(
                "INSERT INTO approvals (study_sha256, status, reason, decided_by, decided_at, "
                "first_seen, study_name, analyst) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(study_sha256) DO UPDATE SET status = excluded.status, "
                "reason = excluded.reason, decided_by = excluded.decided_by, "
                "decided_at = excluded.decided_at",
                (study_sha256, status, reason, by, now, now, study_name, analyst),
            )
            with AuditLog.open(site_dir, clock=clock) as audit:
                audit.append(decision_entry(study_sha256, decision=status, by=by, reason=reason))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        result = _row(conn, study_sha256)
    assert result is not None
    return result


def approve(
    site_dir: Path, study_sha256: str, *, by: str, reason: str = "", clock: Clock = utc_now
) -> StudyApproval:
    """Approve a study hash (pending or not yet seen); audited. A refused study stays refused."""
    return _decide(site_dir, study_sha256, APPROVED, by=by, reason=reason, clock=clock)


def refuse(
    site_dir: Path, study_sha256: str, *, by: str, reason: str, clock: Clock = utc_now
) -> StudyApproval:
    """Refuse a study hash for good (pending, approved or not yet seen); audited."""
    if not reason.strip():
        raise InputError("a refusal needs a reason", hint='pass --reason "..."')
    return _decide(site_dir, study_sha256, REFUSED, by=by, reason=reason, clock=clock)


def _record_pending(
    site_dir: Path, study: Study, analyst: str | None, clock: Clock
) -> StudyApproval:
    with _connect(site_dir) as conn:
        conn.execute(
            "INSERT OR IGNORE INTO approvals (study_sha256, status, first_seen, study_name, "
            "analyst) VALUES (?, ?, ?, ?, ?)",
            (study.sha256, PENDING, rfc3339(clock()), study.name, analyst or "(unsigned)"),
        )
        result = _row(conn, study.sha256)
    assert result is not None
    return result


def require_approval(
    site_dir: Path,
    policy: SitePolicy,
    study: Study,
    analyst: str | None,
    *,
    clock: Clock = utc_now,
) -> StudyApproval:
    """The study's approval, or :class:`PolicyRefusal` (``STUDY_REFUSED``, ``PENDING_APPROVAL``).

    ``analyst`` is the trusted analyst who signed the study (None: unsigned,
    which only a demo policy accepts). Call it after the signature and the
    policy's own checks: a study the policy refuses anyway is not put in
    front of the privacy officer.
    """
    try:
        state = get_study(site_dir, study.sha256)
        suspended: str | None = None
        if state is None or state.status == PENDING:
            rule = auto_approval_rule(policy, study, analyst)
            if rule is not None:
                suspended = auto_approval_suspended(
                    site_dir, analyst, policy.guard_refusals_before_review
                )
            if rule is not None and suspended is None:
                return _decide(
                    site_dir,
                    study.sha256,
                    APPROVED,
                    by=f"policy rule {rule!r}",
                    reason="auto-approval",
                    clock=clock,
                    study_name=study.name,
                    analyst=analyst or "(unsigned)",
                )
            if state is None:
                state = _record_pending(site_dir, study, analyst, clock)
    except GenoFedError as exc:
        raise PolicyRefusal(
            APPROVALS_UNAVAILABLE, f"this site cannot read its study approvals: {exc}"
        ) from exc
    if state.status == APPROVED:
        return state
    if state.status == REFUSED:
        raise PolicyRefusal(
            STUDY_REFUSED,
            f"this site's privacy officer refused study {study.sha256[:16]}: {state.reason}",
        )
    raise PolicyRefusal(
        PENDING_APPROVAL,
        f"study {study.sha256[:16]} waits for approval by this site's privacy officer "
        f"(genofed-site approve {study.sha256})" + (f"; {suspended}" if suspended else ""),
    )


__all__ = [
    "APPROVALS_FILE",
    "APPROVAL_KIND",
    "APPROVED",
    "PENDING",
    "REFUSED",
    "STATUSES",
    "StudyApproval",
    "approve",
    "decision_entry",
    "get_study",
    "list_studies",
    "refuse",
    "require_approval",
    "resolve_hash",
]
