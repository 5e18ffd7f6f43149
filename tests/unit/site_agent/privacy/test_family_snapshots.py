"""Family snapshots in the sample-set store: a resumed family decides as a replayed one.

The store keeps each column's :class:`SetFamily` (basis, inverses, atoms) next
to the sets it reflects, so a request resumes it instead of replaying every
set. These tests drive random release sequences through the store (persons
enrolled between releases widen the registry) and compare, for random
candidates, the verdicts of the resumed family with those of a family
replayed from the recorded sets.
"""

from __future__ import annotations

import logging
import sqlite3
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from genofed.site_agent.privacy import sample_sets
from genofed.site_agent.privacy.disclosure import SetFamily
from genofed.site_agent.privacy.guard import CLINICAL, ReleaseGuard
from genofed.site_agent.privacy.sample_sets import SAMPLE_SETS_FILE, ReleaseKey, SampleSetStore

COLUMN = CLINICAL


def key(i: int) -> ReleaseKey:
    return ReleaseKey(f"{i:064x}", "a", "glm_stats", 0, i, "snap", f"2026-01-01T00:00:{i % 60:02d}")


def replayed(path: Path, column: str, min_cell: int) -> SetFamily:
    """The family rebuilt from the recorded sets, ignoring any snapshot."""
    db = sqlite3.connect(path)
    try:
        n = sample_sets._n_persons(db)
        return SetFamily(n, min_cell, sample_sets._family_sets(db, column, n))
    finally:
        db.close()


def members(n: int, idx: object) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    out[np.asarray(idx, dtype=np.int64)] = True
    return out


def same_decisions(a: SetFamily, b: SetFamily, candidates: list[np.ndarray]) -> None:
    assert a.n_persons == b.n_persons
    assert a.n_sets == b.n_sets
    assert a.fingerprints() == b.fingerprints()
    # the same partition into atoms (ids may differ)
    pairs = {(int(x), int(y)) for x, y in zip(a.atoms(), b.atoms(), strict=True)}
    assert len(pairs) == len(set(a.atoms().tolist())) == len(set(b.atoms().tolist()))
    assert a.determined().tolist() == b.determined().tolist()
    most = max(a.min_cell - 1, 1)
    for c in candidates:
        assert a.check([c]) == b.check([c])
        sa, sb = a.largest_subset_within(c, most), b.largest_subset_within(c, most)
        assert (sa is None) == (sb is None)
        if sa is not None and sb is not None:
            assert sa.tolist() == sb.tolist()
        ia, ib = a.intersections_within(c, most), b.intersections_within(c, most)
        assert [s.tolist() for s in ia] == [s.tolist() for s in ib]


@settings(max_examples=40, deadline=None)
@given(
    min_cell=st.integers(1, 4),
    releases=st.lists(
        st.tuples(
            st.integers(0, 6),  # persons enrolled before this release
            st.lists(st.lists(st.booleans(), min_size=30, max_size=30), min_size=1, max_size=3),
        ),
        min_size=1,
        max_size=10,
    ),
    probes=st.lists(st.lists(st.booleans(), min_size=30, max_size=30), min_size=1, max_size=6),
)
def test_snapshot__resumed_family_decides_as_the_replayed_one(
    min_cell: int,
    releases: list[tuple[int, list[list[bool]]]],
    probes: list[list[bool]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sample_sets.sqlite"
        enrolled = 8
        with SampleSetStore.open(path) as store:
            store.person_indexes([f"p{i}" for i in range(enrolled)])
            for i, (new, request) in enumerate(releases):
                if new:
                    store.person_indexes([f"p{j}" for j in range(enrolled, enrolled + new)])
                    enrolled += new
                n = store.n_persons()
                sets = [np.array(bits[:n], dtype=bool) for bits in request]
                store.guard_and_record(key(i), {COLUMN: sets}, min_cell)
            n = store.n_persons()
            store.person_indexes([f"p{j}" for j in range(enrolled, enrolled + 2)])  # after the last
            recorded = store.n_sets(COLUMN) > 0
            assert (store.snapshot_release(COLUMN) is not None) is recorded
            resumed = store.family(COLUMN, min_cell)
        n = resumed.n_persons
        db = sqlite3.connect(path)
        recorded_sets = sample_sets._family_sets(db, COLUMN, n)
        db.close()
        candidates = [np.array((b + [False] * n)[:n], dtype=bool) for b in probes]
        for j, s in enumerate(recorded_sets):  # near the released sets: rules 2 and align
            candidates.append(s ^ members(n, [j % n]))
            candidates.append(s | recorded_sets[j - 1])
        same_decisions(resumed, replayed(path, COLUMN, min_cell), candidates)


def test_snapshot__a_request_resumes_without_replaying(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "sample_sets.sqlite"
    rng = np.random.default_rng(5)
    n = 400
    with SampleSetStore.open(path) as store:
        store.person_indexes([f"p{i}" for i in range(n)])
        family = store.family(COLUMN, 10)
        since = store.last_release_id()
        sets = [rng.random(n) < 0.5 for _ in range(30)]
        assert family.admit(sets).ok
        release = store.record_if_unchanged(key(1), {COLUMN: sets}, since, {COLUMN: family})
        assert release == store.snapshot_release(COLUMN) == 1

        def no_replay(*_: object) -> list[np.ndarray]:
            raise AssertionError("the family was replayed")

        monkeypatch.setattr(sample_sets, "_family_sets", no_replay)
        resumed = store.family(COLUMN, 10)
        monkeypatch.undo()
        probe = [rng.random(n) < 0.5, members(n, range(0, 200)), sets[0] ^ members(n, [3])]
        same_decisions(resumed, replayed(path, COLUMN, 10), probe)


def test_snapshot__a_release_recorded_without_the_family_makes_it_stale(tmp_path: Path) -> None:
    path = tmp_path / "sample_sets.sqlite"
    n = 100
    a, b = members(n, range(50)), members(n, range(30, 90))
    with SampleSetStore.open(path) as store:
        store.person_indexes([f"p{i}" for i in range(n)])
        assert store.guard_and_record(key(1), {COLUMN: [a]}, 10).ok
        assert store.snapshot_release(COLUMN) == 1
        # a writer that passes no families (an older site agent): the snapshot is stale
        assert store.record_if_unchanged(key(2), {COLUMN: [b]}, since=1) == 2
        assert store.snapshot_release(COLUMN) == 1
        family = store.family(COLUMN, 10)  # replayed, and saved again
        assert family.n_sets == 2
        assert store.snapshot_release(COLUMN) == 2
        # the new set is known: one person fewer than b is refused
        assert not store.family(COLUMN, 10).check([b & ~members(n, [31])]).ok


def test_snapshot__a_rerun_keeps_the_snapshot_and_a_wrong_family_is_not_saved(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sample_sets.sqlite"
    n = 100
    a, b = members(n, range(50)), members(n, range(30, 90))
    with SampleSetStore.open(path) as store:
        store.person_indexes([f"p{i}" for i in range(n)])
        assert store.guard_and_record(key(1), {COLUMN: [a]}, 10).ok
        assert store.guard_and_record(key(2), {COLUMN: [a]}, 10).ok  # identical: free
        assert store.snapshot_release(COLUMN) == 1
        wrong = SetFamily(n, 10, [a])  # lacks b
        assert store.record_if_unchanged(key(3), {COLUMN: [b]}, 2, {COLUMN: wrong}) == 3
        assert store.snapshot_release(COLUMN) == 1  # not saved: stale, so replayed next
        assert store.family(COLUMN, 10).n_sets == 2


def test_snapshot__an_unreadable_snapshot_is_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "sample_sets.sqlite"
    n = 100
    a = members(n, range(50))
    with SampleSetStore.open(path) as store:
        store.person_indexes([f"p{i}" for i in range(n)])
        assert store.guard_and_record(key(1), {COLUMN: [a]}, 10).ok
    db = sqlite3.connect(path)
    db.execute("UPDATE family_snapshots SET state = ?", (b"not an npz file",))
    db.commit()
    db.close()
    with SampleSetStore.open(path) as store, caplog.at_level(logging.WARNING, "genofed.site"):
        family = store.family(COLUMN, 10)
        assert family.n_sets == 1
        assert not family.check([members(n, range(49))]).ok
    assert "cannot be resumed" in caplog.text
    with SampleSetStore.open(path) as store:  # saved again by the rebuild
        digest = sample_sets._sets_digest(store._db, COLUMN)
        assert sample_sets._resume(store._db, COLUMN, 10, n, digest) is not None


def test_from_state__refuses_arrays_that_do_not_fit() -> None:
    n = 40
    family = SetFamily(n, 3, [members(n, range(20)), members(n, range(10, 30))])
    state = family.state()
    resumed = SetFamily.from_state(state, 3, n + 5)
    assert resumed.n_persons == n + 5 and resumed.n_sets == 2
    assert (resumed.atoms()[n:] == -1).all()
    for name, bad in (
        ("inv0", state["inv0"][:1]),
        ("atom_of", state["atom_of"][:-1]),
        ("reps1", state["reps1"] + n),
    ):
        with pytest.raises(ValueError):
            SetFamily.from_state({**state, name: bad}, 3)
    with pytest.raises(ValueError):
        SetFamily.from_state({k: v for k, v in state.items() if k != "primes"}, 3)
    with pytest.raises(ValueError):
        SetFamily.from_state(state, 3, n - 1)


def test_widened__everyone_in_a_set_then_new_persons_in_none() -> None:
    n = 30
    family = SetFamily(n, 2, [members(n, range(15)), members(n, range(15, 30))])
    wide = family.widened(n + 3)
    assert family.n_persons == n  # unchanged
    assert wide.atoms().tolist() == [*family.atoms().tolist(), -1, -1, -1]
    assert wide.check([members(n + 3, range(16))]) == SetFamily(
        n + 3, 2, [members(n + 3, range(15)), members(n + 3, range(15, 30))]
    ).check([members(n + 3, range(16))])


def _request(
    root: Path, ids: list[str], number: int, base: np.ndarray, offers: list[np.ndarray]
) -> tuple[list[int], list[bool], bool, str]:
    """One request through a fresh guard: align, offers, commit (as the release path does)."""
    guard = ReleaseGuard.open(root, ids, 3, enabled=True)
    try:
        aligned = guard.align(CLINICAL, base).tolist()
        guard.declare(CLINICAL, np.asarray(aligned, dtype=np.int64))
        offered = [guard.offer(CLINICAL, s) for s in offers]
        outcome = guard.commit(key(number))
        return aligned, offered, outcome.ok, outcome.verdict.rule
    finally:
        guard.close()


def _forget_snapshots(root: Path) -> None:
    db = sqlite3.connect(root / "state" / SAMPLE_SETS_FILE)
    db.execute("DELETE FROM family_snapshots")
    db.commit()
    db.close()


@settings(max_examples=25, deadline=None)
@given(
    requests=st.lists(
        st.tuples(
            st.integers(0, 3),  # persons enrolled first
            st.lists(st.booleans(), min_size=40, max_size=40),  # the cohort asked for
            st.integers(-1, 39),  # or: the last cohort with this person flipped
            st.lists(st.lists(st.booleans(), min_size=40, max_size=40), max_size=3),  # offers
        ),
        min_size=1,
        max_size=8,
    )
)
def test_guard__requests_decide_alike_on_resumed_and_on_replayed_families(
    requests: list[tuple[int, list[bool], int, list[list[bool]]]],
) -> None:
    # Two copies of one site get the same requests; one resumes its families from
    # snapshots, the other has them deleted before every request (so it replays).
    with tempfile.TemporaryDirectory() as tmp:
        kept, replayed_root = Path(tmp) / "kept", Path(tmp) / "replayed"
        present = 30
        last = np.zeros(0, dtype=bool)
        for number, (new, cohort, flip, offers) in enumerate(requests):
            present = min(40, present + new)
            ids = [f"p{i}" for i in range(present)]
            base = np.array(cohort[:present], dtype=bool)
            if 0 <= flip < present and last.any():  # a near cohort: refused, or aligned
                base = np.concatenate([last, np.zeros(present - len(last), dtype=bool)])
                base[flip] = not base[flip]
            last = base
            sets = [base & np.array(o[:present], dtype=bool) for o in offers]
            a = _request(kept, ids, number, base, sets)
            if replayed_root.exists():
                _forget_snapshots(replayed_root)
            b = _request(replayed_root, ids, number, base, sets)
            assert a == b
            event(f"aligned to another set: {a[0] != np.flatnonzero(base).tolist()}")
            event(f"an offer withheld: {not all(a[1])}")
            event(f"commit: {a[3] or 'pass'}")
