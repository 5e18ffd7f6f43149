"""The release guard core, tested as an attacker would use the released sums.

The attacker below is independent of the guard: it sees the family as a 0/1
matrix ``M`` (sets x persons) and the sums ``b = M x``, and recovers every
person ``i`` whose indicator lies in the row space of ``M`` (leverage 1 in the
float SVD projection), and every atom whose sum is determined (least squares).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genofed.site_agent.privacy.disclosure import (
    DETERMINED,
    PRIME_RANGE,
    SMALL_DIFFERENCE,
    SMALL_SET,
    SetFamily,
    draw_primes,
    fingerprint,
    is_prime,
    unsafe_variants,
)

TOL = 1e-7


def members(n: int, idx: object) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    out[np.asarray(idx, dtype=np.int64)] = True
    return out


# -- the attacker -----------------------------------------------------------


def attacker_projection(sets: list[np.ndarray], n: int) -> np.ndarray:
    """Orthogonal projection onto the row space of the family's matrix (float SVD)."""
    if not sets:
        return np.zeros((n, n))
    m = np.array(sets, dtype=float)
    _, s, vt = np.linalg.svd(m, full_matrices=False)
    basis = vt[s > TOL * max(1.0, s.max(initial=0.0))]
    return basis.T @ basis


def attacker_determined(sets: list[np.ndarray], n: int) -> np.ndarray:
    """Persons whose value the released sums give exactly (e_i in the row space)."""
    return np.abs(np.diag(attacker_projection(sets, n)) - 1.0) < TOL


def attacker_recover(sets: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    """From the sums alone: the minimum-norm solution of ``M x = b``."""
    m = np.array(sets, dtype=float)
    return np.asarray(np.linalg.pinv(m) @ (m @ x))


def attacker_small_groups(sets: list[np.ndarray], n: int, min_cell: int) -> list[np.ndarray]:
    """Atoms (own computation) of fewer than ``max(min_cell, 2)`` people whose sum is determined."""
    if not sets:
        return []
    m = np.array(sets, dtype=bool)
    inside = m.any(axis=0)
    patterns, atom = np.unique(m.T, axis=0, return_inverse=True)
    proj = attacker_projection(sets, n)
    found = []
    for a in range(len(patterns)):
        group = (atom.ravel() == a) & inside
        size = int(group.sum())
        if 0 < size < max(min_cell, 2):
            v = group.astype(float)
            if np.linalg.norm(proj @ v - v) < TOL:
                found.append(group)
    return found


# -- known cases --------------------------------------------------------------


def test_family__refuses_two_sets_one_person_apart() -> None:
    n = 100
    a = members(n, range(40))
    family = SetFamily(n, 10, [a])
    verdict = family.check([members(n, range(1, 40))])
    assert (verdict.ok, verdict.rule) == (False, SMALL_DIFFERENCE)
    assert "1 person" in verdict.detail


def test_family__refuses_two_candidates_one_person_apart() -> None:
    n = 100
    verdict = SetFamily(n, 10).check([members(n, range(40)), members(n, range(39))])
    assert (verdict.ok, verdict.rule) == (False, SMALL_DIFFERENCE)


def test_family__refuses_a_set_smaller_than_min_cell() -> None:
    n = 100
    verdict = SetFamily(n, 10).check([members(n, range(9))])
    assert (verdict.ok, verdict.rule) == (False, SMALL_SET)
    assert SetFamily(n, 10).check([members(n, range(10))]).ok


@pytest.mark.parametrize(
    ("rest", "ok"),
    [(0, True), (1, False), (5, False), (9, False), (10, True), (25, True)],
)
def test_family__groups_and_their_union_expose_a_small_rest(rest: int, ok: bool) -> None:
    # G1..G4 of 15 people each, then A = G1 + ... + G4 + rest: A minus the
    # group sums is the sum over the rest, which no single difference shows.
    n = 200
    groups = [members(n, range(15 * g, 15 * (g + 1))) for g in range(4)]
    family = SetFamily(n, 10, groups)
    cohort = members(n, range(60 + rest))
    verdict = family.check([cohort])
    assert verdict.ok is ok
    if not ok:
        assert verdict.rule == DETERMINED
        assert ("one person's value" in verdict.detail) is (rest == 1)


def test_family__refuses_three_pairs_that_solve_for_each_person() -> None:
    n = 4
    s1, s2, s3 = members(n, [1, 2]), members(n, [2, 3]), members(n, [1, 3])
    family = SetFamily(n, 1, [s1, s2])
    assert not family.determined().any()
    verdict = family.check([s3])
    assert (verdict.ok, verdict.rule) == (False, DETERMINED)
    family.add([s3])
    assert family.determined().tolist() == [False, True, True, True]


def test_family__a_known_small_prime_is_fooled_and_random_primes_are_not() -> None:
    # det [[1,1,0],[0,1,1],[1,0,1]] = 2: modulo 2 the three pairs look
    # dependent and nobody seems determined. This is why primes are large and
    # drawn at random per family.
    n = 3
    sets = [members(n, [0, 1]), members(n, [1, 2]), members(n, [0, 2])]
    assert not SetFamily(n, 1, sets, primes=(2,)).determined().any()
    assert SetFamily(n, 1, sets).determined().all()
    assert SetFamily(n, 1, sets, primes=(2, 1_000_003)).determined().all()


def test_family__passes_disjoint_large_blocks() -> None:
    n = 120
    blocks = [members(n, range(20 * b, 20 * (b + 1))) for b in range(6)]
    family = SetFamily(n, 10)
    for block in blocks:
        assert family.check([block]).ok
        family.add([block])
    assert family.n_atoms == 6
    assert family.determined_atoms().all()  # each block's own sum, of 20 people
    assert not family.determined().any()
    assert family.check([blocks[0] | blocks[1]]).ok


def test_family__identical_sets_are_free() -> None:
    n = 50
    a = members(n, range(3))  # would fail SMALL_SET if it were new
    family = SetFamily(n, 10, [a])
    assert family.check([a, a.copy()]).ok
    family.add([a, a.copy()])
    assert family.n_sets == 1


def test_family__min_cell_zero_turns_the_guard_off() -> None:
    n = 3
    sets = [members(n, [0]), members(n, [0, 1])]
    assert SetFamily(n, 0).check(sets).ok
    assert not SetFamily(n, 1).check(sets).ok


def test_family__min_cell_one_still_refuses_a_single_person() -> None:
    n = 10
    family = SetFamily(n, 1, [members(n, range(5))])
    verdict = family.check([members(n, range(4))])
    assert (verdict.ok, verdict.rule) == (False, DETERMINED)


def test_family__check_does_not_change_the_family() -> None:
    n = 6
    family = SetFamily(n, 1, [members(n, [0, 1]), members(n, [1, 2])])
    before = (family.n_sets, family.atoms().tolist(), family.determined().tolist())
    assert not family.check([members(n, [0, 2])]).ok
    assert (family.n_sets, family.atoms().tolist(), family.determined().tolist()) == before


def test_family__refuses_sets_of_the_wrong_shape_or_type() -> None:
    family = SetFamily(5, 1)
    with pytest.raises(ValueError, match="bool array of shape"):
        family.check([np.ones(4, dtype=bool)])
    with pytest.raises(ValueError, match="bool array of shape"):
        family.add([np.ones(5, dtype=np.int64)])


def test_family__atoms_group_persons_by_membership() -> None:
    n = 6
    family = SetFamily(n, 1, [members(n, [0, 1, 2]), members(n, [2, 3])])
    atoms = family.atoms()
    assert atoms[4] == atoms[5] == -1
    assert atoms[0] == atoms[1]
    assert len({atoms[0], atoms[2], atoms[3]}) == 3
    assert family.n_atoms == 3
    assert sorted(family.atom_sizes().tolist()) == [1, 1, 2]


def test_family__gap__a_two_person_sum_across_two_atoms_passes() -> None:
    # The documented limit of rule 3: B5 + {a}, B6 + {b} and B5 + B6 give
    # x_a + x_b although neither atom {a} nor {b} is determined. If the guard
    # is ever tightened to catch this, flip this test.
    n = 42
    b5, b6 = members(n, range(20)), members(n, range(20, 40))
    a, b = members(n, [40]), members(n, [41])
    sets = [b5 | a, b6 | b, b5 | b6]
    family = SetFamily(n, 10)
    for s in sets:
        assert family.check([s]).ok
        family.add([s])
    pair = (a | b).astype(float)
    proj = attacker_projection(sets, n)
    assert np.linalg.norm(proj @ pair - pair) < TOL  # the attacker has x_a + x_b
    assert not attacker_determined(sets, n).any()


# -- against the attacker -------------------------------------------------------


def test_family__determined_matches_the_attacker_on_random_families() -> None:
    rng = np.random.default_rng(20260601)
    for trial in range(300):
        n = int(rng.integers(1, 16))
        r = int(rng.integers(0, 14))
        density = rng.random((r, 1))
        sets = list(rng.random((r, n)) < density)
        family = SetFamily(n, 3, sets, rng=np.random.default_rng(trial))
        expected = attacker_determined(sets, n)
        assert family.determined().tolist() == expected.tolist(), trial
        if expected.any():  # and the attacker really reads those values
            x = rng.integers(-50, 50, size=n).astype(float)
            recovered = attacker_recover(sets, x)
            assert np.allclose(recovered[expected], x[expected])


def test_family__determined_atoms_match_the_attacker_on_random_families() -> None:
    rng = np.random.default_rng(7)
    for trial in range(200):
        n = int(rng.integers(2, 30))
        r = int(rng.integers(1, 12))
        sets = list(rng.random((r, n)) < rng.random((r, 1)))
        family = SetFamily(n, 4, sets, rng=np.random.default_rng(trial))
        atoms, det = family.atoms(), family.determined_atoms()
        proj = attacker_projection(sets, n)
        for a in range(family.n_atoms):
            v = (atoms == a).astype(float)
            assert (np.linalg.norm(proj @ v - v) < TOL) == det[a], trial


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(2, 14),
    min_cell=st.integers(1, 4),
    requests=st.lists(
        st.lists(st.lists(st.booleans(), min_size=14, max_size=14), min_size=1, max_size=3),
        min_size=1,
        max_size=12,
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_family__accepted_releases_never_let_the_attacker_solve_small_groups(
    n: int, min_cell: int, requests: list[list[list[bool]]], seed: int
) -> None:
    family = SetFamily(n, min_cell, rng=np.random.default_rng(seed))
    released: list[np.ndarray] = []
    for request in requests:
        candidates = [np.array(bits[:n], dtype=bool) for bits in request]
        if family.check(candidates).ok:
            family.add(candidates)
            released.extend(c for c in candidates if c.any())
    assert not attacker_determined(released, n).any()
    assert attacker_small_groups(released, n, min_cell) == []
    for i, s in enumerate(released):
        assert not 0 < s.sum() < min_cell
        for t in released[:i]:
            assert not 0 < np.count_nonzero(s ^ t) < min_cell


@settings(max_examples=100, deadline=None)
@given(
    n=st.integers(1, 12),
    sets=st.lists(st.lists(st.booleans(), min_size=12, max_size=12), max_size=10),
    candidate=st.lists(st.booleans(), min_size=12, max_size=12),
)
def test_family__refuses_exactly_when_the_attacker_would_solve_someone(
    n: int, sets: list[list[bool]], candidate: list[bool]
) -> None:
    # With min_cell = 1 only rule 3 can refuse; it must refuse iff the family
    # plus the candidate determines some person.
    family_sets = [np.array(s[:n], dtype=bool) for s in sets]
    family = SetFamily(n, 1, family_sets)
    new = np.array(candidate[:n], dtype=bool)
    before = attacker_determined(family_sets, n).any()
    after = attacker_determined([*family_sets, new], n).any()
    verdict = family.check([new])
    assert verdict.ok is not after or (before and new.tolist() in [s.tolist() for s in family_sets])


# -- at scale (no timing assertions; keeps the suite fast) -----------------------


def test_family__at_scale_catches_a_person_hidden_behind_a_union() -> None:
    # 20,000 persons, 60 large random sets (every person its own atom), then
    # two disjoint released sets A and B. The union A + B + {p}, with p in no
    # set, differs from every released set by thousands, but (A + B + p) - A - B
    # is person p.
    rng = np.random.default_rng(11)
    n = 20_000
    sets = [rng.random(n) < 0.5 for _ in range(60)]
    outside = np.flatnonzero(~np.any(sets, axis=0))
    p = int(outside[0]) if len(outside) else None
    if p is None:  # make room for a person in no set
        p = 0
        for s in sets:
            s[p] = False
    rest = np.setdiff1d(np.arange(n), [p])
    a, b = members(n, rest[:8_000]), members(n, rest[8_000:16_000])
    family = SetFamily(n, 10, [*sets, a, b])
    assert family.n_atoms > 15_000
    assert family.check([a | b]).ok  # in the span, nobody new exposed
    verdict = family.check([a | b | members(n, [p])])
    assert (verdict.ok, verdict.rule) == (False, DETERMINED)
    assert family.check([rng.random(n) < 0.4, rng.random(n) < 0.6]).ok
    shifted = sets[0].copy()
    shifted[np.flatnonzero(~shifted)[:3]] = True
    assert family.check([shifted]).rule == SMALL_DIFFERENCE


# -- unsafe_variants -------------------------------------------------------------


def brute_unsafe(atom_of: np.ndarray, missing: np.ndarray, min_cell: int) -> np.ndarray:
    limit = max(min_cell, 2)
    out = np.zeros(missing.shape[1], dtype=bool)
    for j in range(missing.shape[1]):
        for a in set(atom_of.tolist()) - {-1}:
            called = int(np.sum((atom_of == a) & ~missing[:, j]))
            if 0 < called < limit:
                out[j] = True
    return out


def test_largest_subset_within__the_largest_released_set_lacking_few_of_the_asked_ones() -> None:
    n = 200
    everyone = np.ones(n, dtype=bool)
    gwas = members(n, range(3, n))  # all but three
    small = members(n, range(6, n))  # all but six
    other = members(n, range(0, 150))
    family = SetFamily(n, min_cell=10, sets=[small, gwas, other])
    assert not family.check([everyone]).ok  # everyone minus gwas: three people
    found = family.largest_subset_within(everyone, 9)
    assert found is not None and np.array_equal(found, gwas)
    # a set lacking 10 or more, or containing someone outside the asked-for set, never qualifies
    assert family.largest_subset_within(members(n, range(0, n - 1)), 9) is None  # lacks 49
    assert family.largest_subset_within(members(n, range(3, n - 1)), 9) is None  # none inside
    assert np.array_equal(family.largest_subset_within(members(n, range(0, 152)), 9), other)
    assert SetFamily(n, min_cell=10).largest_subset_within(everyone, 9) is None
    assert family.largest_subset_within(everyone, 0) is None


def test_largest_subset_within__serving_it_adds_nothing_the_attacker_can_use() -> None:
    """Everyone's sums, served over the GWAS set instead, equal what was already released."""
    n = 120
    gwas = members(n, range(4, n))
    family = SetFamily(n, min_cell=10, sets=[gwas])
    served = family.largest_subset_within(np.ones(n, dtype=bool), 9)
    assert served is not None and family.check([served]).ok
    proj = attacker_projection([gwas, served], n)
    assert not (np.abs(np.diag(proj) - 1.0) < 1e-6).any()  # nobody's value is determined


def test_intersections_within__a_crossing_cohort_cut_to_each_released_set_near_it() -> None:
    n = 200
    first = members(n, range(3, n))  # the first GWAS: all but 0..2
    crossing = members(n, range(0, n - 20))  # holds 0..2, lacks the last 20
    far = members(n, range(100, n))
    family = SetFamily(n, min_cell=10, sets=[first, far])
    cuts = family.intersections_within(crossing, 9)
    assert len(cuts) == 1 and np.array_equal(cuts[0], first & crossing)  # far lacks 100 of them
    assert int(cuts[0].sum()) == int(crossing.sum()) - 3
    assert family.check([cuts[0]]).ok
    # a released set inside the cohort is returned as itself; nothing qualifies with no margin
    inside = members(n, range(5, n - 20))
    assert any(
        np.array_equal(c, inside)
        for c in SetFamily(n, 10, [inside]).intersections_within(crossing, 9)
    )
    assert family.intersections_within(crossing, 0) == []
    assert SetFamily(n, min_cell=10).intersections_within(crossing, 9) == []
    # the attacker's system after serving the cut determines nobody
    proj = attacker_projection([first, far, cuts[0]], n)
    assert not (np.abs(np.diag(proj) - 1.0) < 1e-6).any()


def test_largest_subset_within__refuses_sets_of_the_wrong_shape() -> None:
    with pytest.raises(ValueError):
        SetFamily(10, min_cell=2).largest_subset_within(np.ones(9, dtype=bool), 1)


def test_unsafe_variants__matches_a_brute_force_loop() -> None:
    rng = np.random.default_rng(5)
    for trial in range(60):
        n = int(rng.integers(5, 60))
        sets = list(rng.random((int(rng.integers(1, 5)), n)) < 0.6)
        family = SetFamily(n, 1, sets, rng=np.random.default_rng(trial))
        missing = rng.random((n, int(rng.integers(1, 40)))) < rng.random()
        for min_cell in (1, 3, 8):
            got = unsafe_variants(family.atoms(), family.n_atoms, missing, min_cell)
            assert got.tolist() == brute_unsafe(family.atoms(), missing, min_cell).tolist()
        assert not unsafe_variants(family.atoms(), family.n_atoms, missing, 0).any()


def test_unsafe_variants__flags_only_variants_that_shrink_an_atom() -> None:
    n = 40
    atom_of = np.repeat([0, 1, -1], [15, 20, 5])
    missing = np.zeros((n, 4), dtype=bool)
    missing[:6, 1] = True  # atom 0 keeps 9 called < 10
    missing[:15, 2] = True  # atom 0 fully missing: safe
    missing[35:, 3] = True  # only persons in no set
    assert unsafe_variants(atom_of, 2, missing, 10).tolist() == [False, True, False, False]


# -- helpers ---------------------------------------------------------------------


def test_fingerprint__covers_the_registry_size_and_the_bits() -> None:
    s = members(10, [0, 9])
    expected = hashlib.sha256((10).to_bytes(8, "little") + bytes([0b10000000, 0b01000000]))
    assert fingerprint(s) == expected.hexdigest()
    assert fingerprint(s) != fingerprint(np.concatenate([s, [False]]))


def test_primes__miller_rabin_agrees_with_a_sieve_and_draws_stay_in_range() -> None:
    limit = 20_000
    sieve = np.ones(limit, dtype=bool)
    sieve[:2] = False
    for i in range(2, int(limit**0.5) + 1):
        sieve[i * i :: i] = False
    assert [is_prime(i) for i in range(limit)] == sieve.tolist()
    assert not is_prime(2_147_483_647 * 3) and is_prime(2_147_483_647)
    assert not is_prime(3_215_031_751 - 0)  # the first strong pseudoprime to 2, 3, 5, 7
    drawn = draw_primes(3)
    assert len(set(drawn)) == 3
    assert all(PRIME_RANGE[0] <= p < PRIME_RANGE[1] and is_prime(p) for p in drawn)


@pytest.mark.parametrize("terms", [1, 3, 128])
def test_family__inverse_kept_as_rank_one_terms_is_k_inverse_mod_each_prime(
    monkeypatch: pytest.MonkeyPatch, terms: int
) -> None:
    # K^-1 is kept as a folded part plus rank-one terms; folded after `terms`
    # of them. Whatever the split, it must invert K (basis sets x representatives).
    from genofed.site_agent.privacy import disclosure

    monkeypatch.setattr(disclosure, "_TERMS", terms)
    rng = np.random.default_rng(terms)
    n = 300
    sets = [rng.random(n) < rng.uniform(0.05, 0.6) for _ in range(40)]
    family = SetFamily(n, 1, sets, rng=np.random.default_rng(1))
    for probe in (sets[0] & ~sets[1], rng.random(n) < 0.5):
        trial = family._copy()
        trial.add([probe])
        m = np.array([*sets, probe], dtype=np.int64)
        for basis in trial._bases:
            k = m[basis.rows][:, basis.reps] % basis.p
            inv = basis.materialised()
            assert len(basis.rows) == np.linalg.matrix_rank(m.astype(float))
            assert np.array_equal((inv @ k) % basis.p, np.eye(len(k), dtype=np.int64))
        assert trial.determined().tolist() == attacker_determined([*sets, probe], n).tolist()
