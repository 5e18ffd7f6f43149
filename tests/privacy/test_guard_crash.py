"""The guard's record survives a crash at every write: a release is recorded whole or not at all."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from genofed.site_agent.privacy.disclosure import SetFamily
from genofed.site_agent.privacy.guard import CLINICAL, GENOTYPES
from genofed.site_agent.privacy.sample_sets import ReleaseKey, SampleSetStore

KEY = ReleaseKey("s" * 64, "g", "glm_stats", 0, 0, "fam", "2026-01-01T00:00:00")


class Crash(Exception):
    pass


def crashing_after(writes: int) -> type[sqlite3.Connection]:
    """A connection that dies (as the process would) at its ``writes``-th INSERT."""

    class Connection(sqlite3.Connection):
        seen = 0
        inserts: ClassVar[list[str]] = []  # the table of each INSERT, in order

        def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
            if sql.lstrip().upper().startswith("INSERT"):
                type(self).seen += 1
                type(self).inserts.append(sql.split("INTO", 1)[1].split()[0])
                if type(self).seen == writes:
                    raise Crash()
            return super().execute(sql, *args)

    return Connection


def sets(n: int) -> dict[str, list[np.ndarray]]:
    a = np.zeros(n, dtype=bool)
    a[:30] = True
    b = np.zeros(n, dtype=bool)
    b[10:50] = True
    return {CLINICAL: [a, b], GENOTYPES: [a]}


def recorded(path: Path) -> tuple[int, int, int]:
    with SampleSetStore.open(path) as store:
        return (
            store.last_release_id(),
            store.family(CLINICAL, 10).n_sets,
            store.family(GENOTYPES, 10).n_sets,
        )


@pytest.mark.parametrize("writes", range(1, 12))
def test_crash__at_any_insert_leaves_all_or_nothing(tmp_path: Path, writes: int) -> None:
    path = tmp_path / "sample_sets.sqlite"
    with SampleSetStore.open(path) as store:
        store.person_indexes([f"p{i}" for i in range(60)])
    store = SampleSetStore.open(path, factory=crashing_after(writes))
    crashed = False
    try:
        store.record_if_unchanged(KEY, sets(60), since=0)
    except Crash:
        crashed = True
    finally:
        store.close()
    assert recorded(path) == ((0, 0, 0) if crashed else (1, 2, 1))
    # the site keeps working after the crash: the same release is recorded, or is already
    with SampleSetStore.open(path) as store:
        if crashed:
            assert store.record_if_unchanged(KEY, sets(60), since=0) == 1
        outcome = store.guard_and_record(KEY, sets(60), 10)
        assert outcome.ok  # identical sets are free
    assert recorded(path)[1:] == (2, 1)


def test_crash__while_registering_persons_registers_none(tmp_path: Path) -> None:
    path = tmp_path / "sample_sets.sqlite"
    store = SampleSetStore.open(path, factory=crashing_after(3))
    with pytest.raises(Crash):
        store.person_indexes([f"p{i}" for i in range(5)])
    store.close()
    with SampleSetStore.open(path) as store:
        assert store.n_persons() == 0
        assert store.person_indexes(["p0", "p1"]).tolist() == [0, 1]


def families(n: int) -> dict[str, SetFamily]:
    """The families as the guard holds them at its commit: earlier sets plus this release's."""
    return {column: SetFamily(n, 10, s) for column, s in sets(n).items()}


def probes(n: int) -> list[np.ndarray]:
    a, b = sets(n)[CLINICAL]
    one_less = a.copy()
    one_less[0] = False
    return [one_less, a | b, b & ~a, np.ones(n, dtype=bool)]


@pytest.mark.parametrize("writes", range(1, 11))
def test_crash__at_any_write_of_a_release_and_its_snapshots_leaves_families_that_reload(
    tmp_path: Path, writes: int
) -> None:
    path = tmp_path / "sample_sets.sqlite"
    with SampleSetStore.open(path) as store:
        store.person_indexes([f"p{i}" for i in range(60)])
    factory = crashing_after(writes)
    store = SampleSetStore.open(path, factory=factory)
    crashed = False
    try:
        store.record_if_unchanged(KEY, sets(60), since=0, families=families(60))
    except Crash:
        crashed = True
    finally:
        store.close()
    # the release's statements: its sets, the release, its set uses, then one snapshot per column
    assert factory.inserts[-2:] == ["family_snapshots"] * 2 or crashed
    assert recorded(path) == ((0, 0, 0) if crashed else (1, 2, 1))
    with SampleSetStore.open(path) as store:
        for column in (CLINICAL, GENOTYPES):
            assert store.snapshot_release(column) == (None if crashed else 1)
            loaded = store.family(column, 10)
            expected = families(60)[column] if not crashed else SetFamily(60, 10)
            assert loaded.fingerprints() == expected.fingerprints()
            for probe in probes(60):
                assert loaded.check([probe]) == expected.check([probe])
        # and the site keeps working: the release is recorded (again) and its snapshots current
        if crashed:
            assert store.record_if_unchanged(KEY, sets(60), 0, families(60)) == 1
        assert store.snapshot_release(CLINICAL) == store.snapshot_release(GENOTYPES) == 1


def test_crash__while_saving_a_rebuilt_family_leaves_it_stale_not_wrong(tmp_path: Path) -> None:
    # A release recorded without its snapshot (an older agent): the next load rebuilds
    # the family by replay and saves it in a transaction of its own. A crash there
    # leaves no snapshot for that state, and the load after rebuilds again.
    path = tmp_path / "sample_sets.sqlite"
    with SampleSetStore.open(path) as store:
        store.person_indexes([f"p{i}" for i in range(60)])
        assert store.record_if_unchanged(KEY, sets(60), since=0) == 1
    store = SampleSetStore.open(path, factory=crashing_after(1))
    try:
        with pytest.raises(Crash):
            store.family(CLINICAL, 10)
    finally:
        store.close()
    with SampleSetStore.open(path) as store:
        assert store.snapshot_release(CLINICAL) is None
        loaded = store.family(CLINICAL, 10)
        assert store.snapshot_release(CLINICAL) == 1
        expected = families(60)[CLINICAL]
        assert loaded.fingerprints() == expected.fingerprints()
        for probe in probes(60):
            assert loaded.check([probe]) == expected.check([probe])
