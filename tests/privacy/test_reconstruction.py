"""Random sequences of studies against one site's guard, and an attacker who solves them all.

Each study picks its cohort as an analyst would (which covariates, so whose
values are missing; groups cut at chosen values of a continuous column), and
between studies the site's data change (patients enrol, leave). Every
release goes through :class:`ReleaseGuard` with the site's real store. The
attacker is independent of the guard: it keeps every accepted sum over the
site's person registry and solves the linear system (float SVD projection);
it must not recover any individual's value, nor find two accepted sets that
differ by 1 to ``min_cell - 1`` people. The state is reopened from disk for
every study, as a site restarts.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genofed.site_agent.privacy.guard import CLINICAL, ReleaseGuard
from genofed.site_agent.privacy.sample_sets import ReleaseKey
from tests.unit.site_agent.privacy.test_disclosure import attacker_determined, attacker_recover

_EXAMPLES = itertools.count()
MIN_CELL = 5
PEOPLE = 60

study_steps = st.lists(
    st.tuples(
        st.sampled_from(["covariates", "cut", "enrol", "leave", "rerun"]),
        st.integers(0, 2**31 - 1),
    ),
    min_size=3,
    max_size=12,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=study_steps)
def test_random_studies__the_attacker_recovers_no_one(tmp_path: Path, steps: list) -> None:
    root = tmp_path / f"site-{next(_EXAMPLES)}"  # a fresh site per example
    store_dir = root / "state"
    present = list(range(40))  # persons currently in the site's files
    next_person = 40
    age = np.random.default_rng(0).uniform(20, 90, PEOPLE + 40)
    missing_pattern = np.zeros(PEOPLE + 40, dtype=bool)
    accepted: list[np.ndarray] = []  # over person ids 0..PEOPLE+40
    last: list[set[int]] = []  # the last accepted study's sets, as person ids
    for number, (action, seed) in enumerate(steps):
        rng = np.random.default_rng(seed)
        if action == "enrol":
            present.append(next_person)
            next_person += 1
        elif action == "leave" and len(present) > 10:
            present.pop(int(rng.integers(len(present))))
        if action == "covariates":
            missing_pattern = rng.random(PEOPLE + 40) < rng.uniform(0, 0.2)
        ids = [f"p{p}" for p in present]
        cohort = np.array([not missing_pattern[p] for p in present])
        sets = [cohort]
        if action == "cut":
            cut = rng.uniform(20, 90)
            older = np.array([age[p] >= cut for p in present])
            sets += [cohort & older, cohort & ~older]
        if action == "rerun" and last:  # the same study again, on today's files
            sets = [np.array([p in people for p in present]) for people in last]
        guard = ReleaseGuard.open(root, ids, MIN_CELL, enabled=True)
        try:
            guard.declare(CLINICAL, *sets)
            outcome = guard.commit(
                ReleaseKey("s" * 64, f"a{number}", "glm_stats", 0, 0, "fam", "2026-01-01")
            )
        finally:
            guard.close()
        if outcome.ok:
            last = [{p for p, keep in zip(present, s, strict=True) if keep} for s in sets]
            for s in sets:
                full = np.zeros(PEOPLE + 40, dtype=bool)
                full[[p for p, keep in zip(present, s, strict=True) if keep]] = True
                if full.any():
                    accepted.append(full)
    assert store_dir.is_dir() or not accepted
    if not accepted:
        return
    n = PEOPLE + 40
    assert not attacker_determined(accepted, n).any()
    values = np.random.default_rng(1).normal(size=n)
    recovered = attacker_recover(accepted, values)
    assert not np.any(np.abs(recovered - values) < 1e-9)
    for i, a in enumerate(accepted):
        for b in accepted[:i]:
            differ = int(np.count_nonzero(a ^ b))
            assert differ == 0 or differ >= MIN_CELL
