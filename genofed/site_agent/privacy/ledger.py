"""The site's privacy ledger: every DP release charged, durably, before it leaves.

One SQLite database per site (``state/ledger.sqlite`` in the site directory).
Each row is one composable event: a Gaussian release with its noise
multiplier, for a study, an analysis and a coordinator run. The privacy spent
in a budget period is the RDP composition of that period's events
(:mod:`genofed.site_agent.privacy.accounting`), evaluated at the policy's
delta.

:meth:`Ledger.charge` checks and records in one ``BEGIN IMMEDIATE``
transaction, so two processes serving the same site cannot both spend the
last of a budget, and a crash before the commit leaves no charge (and, since
the reply is only built after the commit, no release). A crash after the
commit leaves a charge without a release: the site has over-counted its
spending, never under-counted it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from genofed.common.clock import Clock, utc_now
from genofed.common.errors import PolicyRefusal
from genofed.common.reasons import BUDGET_EXCEEDED
from genofed.site_agent.privacy.accounting import Event, epsilon_of_events

LEDGER_FILE = "ledger.sqlite"
PERIODS = ("year", "quarter", "month", "lifetime")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS charges (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    period TEXT NOT NULL,
    study_sha256 TEXT NOT NULL,
    analysis_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    mechanism TEXT NOT NULL,
    noise_multiplier REAL NOT NULL,
    sensitivity REAL NOT NULL,
    scale REAL NOT NULL,
    epsilon REAL NOT NULL,
    delta REAL NOT NULL
);
"""
#: Columns added for DP-SGD charges (``train``); older ledgers get them with the
#: defaults of a plain Gaussian release (one step, no subsampling).
_SUBSAMPLING_COLUMNS = (
    ("sampling_rate", "REAL NOT NULL DEFAULT 1.0"),
    ("steps", "INTEGER NOT NULL DEFAULT 1"),
)

#: Test hook called at each write point ("before-insert", "before-commit", "after-commit").
CrashHook = Callable[[str], None]


@dataclass(frozen=True)
class Budget:
    """(epsilon, delta) a site may spend per period."""

    epsilon: float
    delta: float
    period: str = "year"


@dataclass(frozen=True)
class Release:
    """One Gaussian release to be charged."""

    study_sha256: str
    analysis_id: str
    run_id: str
    noise_multiplier: float
    sensitivity: float
    mechanism: str = "discrete_gaussian"
    #: DP-SGD: Poisson sampling rate and number of steps (1.0 and 1: one Gaussian release)
    sampling_rate: float = 1.0
    steps: int = 1

    @property
    def event(self) -> Event:
        return (self.noise_multiplier, self.sampling_rate, self.steps)

    @property
    def scale(self) -> float:
        return self.noise_multiplier * self.sensitivity


@dataclass(frozen=True)
class Charge:
    """A committed charge as a reply's receipt states it: this release's epsilon, and delta."""

    epsilon: float
    delta: float


@dataclass(frozen=True)
class ChargeReceipt:
    charge_id: int
    epsilon: float  # of this release alone, at the budget's delta
    spent: float  # of the period after this release
    period: str


def period_key(period: str, when: datetime) -> str:
    if period == "year":
        return f"{when.year}"
    if period == "quarter":
        return f"{when.year}-Q{(when.month - 1) // 3 + 1}"
    if period == "month":
        return f"{when.year}-{when.month:02d}"
    if period == "lifetime":
        return "lifetime"
    raise ValueError(f"unknown budget period {period!r}; use one of {PERIODS}")


class Ledger:
    """A site's privacy ledger (see the module docstring)."""

    def __init__(
        self,
        path: Path,
        budget: Budget,
        *,
        clock: Clock = utc_now,
        crash_hook: CrashHook | None = None,
    ) -> None:
        self.path = Path(path)
        self.budget = budget
        self._clock = clock
        self._hook = crash_hook or (lambda _point: None)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(_SCHEMA)
            have = {row[1] for row in db.execute("PRAGMA table_info(charges)")}
            for name, decl in _SUBSAMPLING_COLUMNS:
                if name not in have:
                    db.execute(f"ALTER TABLE charges ADD COLUMN {name} {decl}")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, isolation_level=None, timeout=30)) as db:
            db.execute("PRAGMA synchronous=FULL")
            yield db

    def _events(self, db: sqlite3.Connection, period: str, *run: str) -> list[Event]:
        sql = "SELECT noise_multiplier, sampling_rate, steps FROM charges WHERE period = ?"
        if run:
            sql += " AND study_sha256 = ? AND run_id = ? AND analysis_id = ?"
        return [(float(r[0]), float(r[1]), int(r[2])) for r in db.execute(sql, (period, *run))]

    def spent(self) -> float:
        """Epsilon spent in the current period, at the budget's delta."""
        period = period_key(self.budget.period, self._clock())
        with self._connect() as db:
            return epsilon_of_events(self._events(db, period), self.budget.delta)

    def spent_on(self, study_sha256: str, run_id: str, analysis_id: str) -> float:
        """Epsilon of one analysis of one run (all its charges this period), at budget delta."""
        period = period_key(self.budget.period, self._clock())
        with self._connect() as db:
            events = self._events(db, period, study_sha256, run_id, analysis_id)
        return epsilon_of_events(events, self.budget.delta)

    def check(self, noise_multiplier: float, *, sampling_rate: float = 1.0, steps: int = 1) -> None:
        """Refuse now, before any computation, a release the budget cannot cover."""
        period = period_key(self.budget.period, self._clock())
        with self._connect() as db:
            after = epsilon_of_events(
                [*self._events(db, period), (noise_multiplier, sampling_rate, steps)],
                self.budget.delta,
            )
        self._refuse_over(after)

    def _refuse_over(self, after: float) -> None:
        if after > self.budget.epsilon:
            raise PolicyRefusal(
                BUDGET_EXCEEDED,
                f"this release would bring the site's privacy spending this {self.budget.period} "
                f"above its budget of epsilon = {self.budget.epsilon:g}",
            )

    def charge(self, release: Release) -> ChargeReceipt:
        """Record ``release`` durably, or raise ``BUDGET_EXCEEDED`` and record nothing."""
        when = self._clock()
        period = period_key(self.budget.period, when)
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                past = self._events(db, period)
                after = epsilon_of_events([*past, release.event], self.budget.delta)
                self._refuse_over(after)
                alone = epsilon_of_events([release.event], self.budget.delta)
                self._hook("before-insert")
                cursor = db.execute(
                    "INSERT INTO charges (time, period, study_sha256, analysis_id, run_id, "
                    "mechanism, noise_multiplier, sensitivity, scale, epsilon, delta, "
                    "sampling_rate, steps) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        when.isoformat(),
                        period,
                        release.study_sha256,
                        release.analysis_id,
                        release.run_id,
                        release.mechanism,
                        release.noise_multiplier,
                        release.sensitivity,
                        release.scale,
                        alone,
                        self.budget.delta,
                        release.sampling_rate,
                        release.steps,
                    ),
                )
                self._hook("before-commit")
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        self._hook("after-commit")
        charge_id = cursor.lastrowid
        assert charge_id is not None
        return ChargeReceipt(charge_id, alone, after, period)

    def entries(self) -> list[dict[str, object]]:
        with self._connect() as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute("SELECT * FROM charges ORDER BY id")]


__all__ = [
    "LEDGER_FILE",
    "PERIODS",
    "Budget",
    "Charge",
    "ChargeReceipt",
    "Ledger",
    "Release",
    "period_key",
]
