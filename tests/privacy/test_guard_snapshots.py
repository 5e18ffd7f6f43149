"""Attacks on the guard's kept state: a resumed family must refuse what a replayed one would.

Each request resumes its families from the snapshots the last release saved
(``family_snapshots`` in ``state/sample_sets.sqlite``) instead of replaying
every set. An analyst who differences across requests, across a restart,
across an enrolment (wider registry), or after a release recorded without
a snapshot (an older site agent) must meet the same refusals. The tests
below make the replay path fail, so that the resumed family alone decides,
where the snapshot is current.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from genofed.site_agent.privacy import sample_sets
from genofed.site_agent.privacy.disclosure import SMALL_DIFFERENCE
from genofed.site_agent.privacy.guard import CLINICAL, GENOTYPES, ReleaseGuard
from genofed.site_agent.privacy.sample_sets import SAMPLE_SETS_FILE, ReleaseKey, SampleSetStore
from tests.unit.site_agent.privacy.test_disclosure import attacker_determined

MIN_CELL = 10


def key(i: int) -> ReleaseKey:
    return ReleaseKey("s" * 64, f"a{i}", "glm_stats", 0, 0, "fam", "2026-01-01T00:00:00")


def release(
    root: Path,
    ids: list[str],
    number: int,
    base: dict[str, list[np.ndarray]],
    offers: Sequence[np.ndarray] = (),
) -> tuple[bool, list[bool]]:
    """One request through a fresh guard (the site restarted): its verdict and offers'."""
    guard = ReleaseGuard.open(root, ids, MIN_CELL, enabled=True)
    try:
        for column, sets in base.items():
            guard.declare(column, *sets)
        offered = [guard.offer(CLINICAL, s) for s in offers]
        return guard.commit(key(number)).ok, offered
    finally:
        guard.close()


def mask(n: int, idx: object) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    out[np.asarray(idx, dtype=np.int64)] = True
    return out


def no_replay(*_: object) -> list[np.ndarray]:
    raise AssertionError("a family was replayed although its snapshot was current")


def test_resumed__a_cohort_one_enrolled_person_larger_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Study 1 over 60 people; then one patient enrols and the analyst reruns over
    # all 61: the two sums differ by the new patient alone.
    ids = [f"p{i}" for i in range(100)]
    cohort = mask(100, range(60))
    assert release(tmp_path, ids, 1, {CLINICAL: [cohort], GENOTYPES: [cohort]})[0]
    with SampleSetStore.open(tmp_path / "state" / SAMPLE_SETS_FILE) as store:
        assert store.snapshot_release(CLINICAL) == store.snapshot_release(GENOTYPES) == 1
    monkeypatch.setattr(sample_sets, "_family_sets", no_replay)
    ids = [*ids, "p100"]
    grown = np.append(cohort, True)
    ok, _ = release(tmp_path, ids, 2, {CLINICAL: [grown]})
    assert not ok
    guard = ReleaseGuard.open(tmp_path, ids, MIN_CELL, enabled=True)
    try:
        guard.declare(CLINICAL, grown)
        verdict = guard.check_declared()
    finally:
        guard.close()
    assert verdict.rule == SMALL_DIFFERENCE
    # and over the old cohort plus ten newcomers it passes (they are not isolated)
    ids = [*ids, *(f"p{i}" for i in range(101, 110))]
    ten_more = np.concatenate([cohort, np.ones(10, dtype=bool)])
    assert release(tmp_path, ids, 3, {CLINICAL: [ten_more]})[0]


def test_resumed__a_missing_call_set_offered_in_one_request_binds_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A variant's missing calls (12 people) pass in one GWAS; a later GWAS offers
    # the same people but one: the two corrections would difference to one person.
    n = 200
    ids = [f"p{i}" for i in range(n)]
    cohort = mask(n, range(150))
    missing = mask(n, range(20, 32))
    ok, offered = release(tmp_path, ids, 1, {CLINICAL: [cohort]}, [missing])
    assert ok and offered == [True]
    monkeypatch.setattr(sample_sets, "_family_sets", no_replay)
    one_less = missing & ~mask(n, [20])
    ok, offered = release(tmp_path, ids, 2, {CLINICAL: [cohort]}, [one_less, missing])
    assert ok and offered == [False, True]  # withheld; the repeated set is free


def test_stale__a_release_recorded_without_its_snapshot_still_binds(tmp_path: Path) -> None:
    # An older agent (or a crash between two writers) records a set but no snapshot:
    # the next request finds the snapshot stale, replays, and refuses a set one apart.
    n = 120
    ids = [f"p{i}" for i in range(n)]
    first = mask(n, range(50))
    assert release(tmp_path, ids, 1, {CLINICAL: [first]})[0]
    other = mask(n, range(40, 100))
    with SampleSetStore.open(tmp_path / "state" / SAMPLE_SETS_FILE) as store:
        store.person_indexes(ids)
        assert store.record_if_unchanged(key(2), {CLINICAL: [other]}, since=1) == 2
        assert store.snapshot_release(CLINICAL) == 1  # stale now
    ok, _ = release(tmp_path, ids, 3, {CLINICAL: [other & ~mask(n, [41])]})
    assert not ok
    with SampleSetStore.open(tmp_path / "state" / SAMPLE_SETS_FILE) as store:
        assert store.snapshot_release(CLINICAL) == 2  # rebuilt and saved again


def test_resumed__many_requests_then_the_attacker_solves_everything_released(
    tmp_path: Path,
) -> None:
    # 30 requests, each a restart, with enrolments between; cohorts and offered
    # missing-call sets drawn at random. Whatever passed, the attacker (float SVD
    # over every accepted set) recovers no one.
    rng = np.random.default_rng(17)
    total = 160
    present = 120
    accepted: list[np.ndarray] = []
    for number in range(30):
        if rng.random() < 0.3:
            present = min(total, present + int(rng.integers(1, 4)))
        ids = [f"p{i}" for i in range(present)]
        cohort = rng.random(present) < 0.9
        offers = [cohort & (rng.random(present) < rng.uniform(0.05, 0.3)) for _ in range(3)]
        ok, offered = release(tmp_path, ids, number, {CLINICAL: [cohort]}, offers)
        if ok:
            for s in [cohort, *(o for o, kept in zip(offers, offered, strict=True) if kept)]:
                full = np.zeros(total, dtype=bool)
                full[:present] = s
                if full.any():
                    accepted.append(full)
    assert len(accepted) > 5  # the sequence did release something
    assert not attacker_determined(accepted, total).any()
    for i, a in enumerate(accepted):
        for b in accepted[:i]:
            differ = int(np.count_nonzero(a ^ b))
            assert differ == 0 or differ >= MIN_CELL


def test_offer__sets_released_before_do_not_count_toward_the_cap(tmp_path: Path) -> None:
    # A rerun of a GWAS offers its predecessor's missing-call sets again (free) and
    # then new ones: the per-request cap counts only the new ones.
    n = 300
    ids = [f"p{i}" for i in range(n)]
    cohort = mask(n, range(280))
    sets = [mask(n, range(10 * i, 10 * i + 12)) for i in range(6)]

    def offer_all(number: int) -> list[bool]:
        guard = ReleaseGuard(
            SampleSetStore.open(tmp_path / SAMPLE_SETS_FILE), ids, MIN_CELL, offer_cap=2
        )
        try:
            guard.declare(CLINICAL, cohort)
            offered = [guard.offer(CLINICAL, s) for s in sets]
            assert guard.commit(key(number)).ok
            return offered
        finally:
            guard.close()

    assert offer_all(1) == [True, True, False, False, False, False]
    assert offer_all(2) == [True, True, True, True, False, False]
    assert offer_all(3) == [True] * 6
