"""The privacy ledger as a state machine, with a simulated crash at every write point.

Invariants after every step, including after a crash and a reopen:
spending never exceeds the budget, and every reply that left has its charge
in the ledger. 100 examples x 100 steps = 10,000 steps.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from genofed.common.errors import PolicyRefusal
from genofed.site_agent.privacy.accounting import epsilon_of
from genofed.site_agent.privacy.ledger import Budget, Ledger, Release

BUDGET = Budget(epsilon=3.0, delta=1e-5, period="lifetime")
POINTS = ("before-insert", "before-commit", "after-commit")


class Crash(Exception):
    pass


class LedgerMachine(RuleBasedStateMachine):
    @initialize()
    def open(self) -> None:
        self.dir = tempfile.TemporaryDirectory()
        self.path = Path(self.dir.name) / "ledger.sqlite"
        self.crash_at: str | None = None
        self.replies: list[int] = []  # charge ids of replies that left
        self.ledger = self._open()

    def _open(self) -> Ledger:
        return Ledger(self.path, BUDGET, crash_hook=self._hook)

    def _hook(self, point: str) -> None:
        if point == self.crash_at:
            raise Crash(point)

    @rule(z=st.sampled_from([1.5, 3.0, 6.0, 12.0, 40.0]), crash=st.sampled_from([None, *POINTS]))
    def release(self, z: float, crash: str | None) -> None:
        self.crash_at = crash
        try:
            receipt = self.ledger.charge(Release("s" * 64, "freq", "run", z, 10.0))
        except (Crash, PolicyRefusal):
            return
        finally:
            self.crash_at = None
        self.replies.append(receipt.charge_id)  # the reply is built only after the charge

    @rule()
    def reopen(self) -> None:
        self.ledger = self._open()

    @invariant()
    def never_over_budget(self) -> None:
        if hasattr(self, "ledger"):
            assert self.ledger.spent() <= BUDGET.epsilon + 1e-9

    @invariant()
    def every_reply_has_its_charge(self) -> None:
        if hasattr(self, "ledger"):
            ids = {int(e["id"]) for e in self.ledger.entries()}  # type: ignore[call-overload]
            assert set(self.replies) <= ids

    @invariant()
    def recorded_epsilon_is_the_accountants(self) -> None:
        if hasattr(self, "ledger"):
            zs = [float(e["noise_multiplier"]) for e in self.ledger.entries()]  # type: ignore[arg-type]
            assert abs(self.ledger.spent() - epsilon_of(zs, BUDGET.delta)) < 1e-12

    def teardown(self) -> None:
        if hasattr(self, "dir"):
            self.dir.cleanup()


TestLedgerStateMachine = LedgerMachine.TestCase
TestLedgerStateMachine.settings = settings(max_examples=100, stateful_step_count=100, deadline=None)
