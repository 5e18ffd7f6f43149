"""Release guard core: does a new set of sums, added to all earlier ones, expose anyone?

Every reply a site sends is a list of sums of per-person values over sample
sets (the sum of phenotype ``y`` over the analysis cohort ``A``, over the cases
in ``A``, over a stratum, ...). A hostile analyst who runs many studies can
difference two sums over sets that differ by a few people, or solve the linear
system of every sum ever released, and so recover one person's value. This
module decides, from set membership only (never from values), whether a new
release is safe to add to everything already released for the same data
column. It is pure: numpy and the standard library, no files, no clock.

Sets are boolean arrays of length ``n_persons`` over the site's person registry
(index ``i`` is one person). For one data column, :class:`SetFamily` holds the
sets already released; :meth:`SetFamily.check` says whether adding candidates
is safe, and :meth:`SetFamily.add` adds them.

Rules
-----
Checked in this order; the first failure is returned. ``m`` is ``min_cell``.

1. :data:`SMALL_SET`: a candidate has 1 to ``m - 1`` members (it differs from
   the empty set, whose sum is known to be 0, by too few people).
2. :data:`SMALL_DIFFERENCE`: two sets (candidate and released set, or two
   candidates) differ by 1 to ``m - 1`` people (symmetric difference).
3. :data:`DETERMINED`: after adding, the released sums determine the sum of
   the column over some *atom* of 1 to ``max(m, 2) - 1`` people. An atom is a
   class of persons with identical membership in every set; only sums that
   are constant on atoms can be computed from the released sums, so a single
   person's value can follow only if their atom is that person alone.

``m <= 1`` makes rules 1 and 2 vacuous, but rule 3 still refuses any release
that determines one person's value. ``m == 0`` turns the guard off.
Identical sets are free: a candidate already in the family (or repeated among
the candidates) changes nothing and always passes. An empty candidate adds
nothing either.

The math
--------
Write the family as a 0/1 matrix ``M`` (sets x persons) and ``A`` (sets x
atoms) for the same matrix with each atom's identical columns merged. The sums
over an atom ``alpha`` follow from the released sums ``b = M x`` for every
``x`` iff ``1_alpha`` lies in the row space of ``M``, iff ``e_alpha`` lies in
the row space of ``A`` (rows of ``M`` are constant on atoms, and expanding an
atom coordinate into its persons is injective). In the column view,
``e_alpha`` is in the row space of ``A`` iff column ``a_alpha`` is not in the
span of the other columns: ``alpha`` is a *coloop* of the column matroid of
``A`` (it lies in every column basis). A person's indicator ``e_i`` is in the
row space of ``M`` iff their atom is ``{i}`` and is a coloop. This is the
criterion of classical sum-query auditing (Chin and Özsoyoğlu, "Auditing and
inference control in statistical databases", IEEE TSE 1982).

The family keeps, for each of a few primes ``p``, a column basis of ``A`` over
GF(p): ``rho`` representative persons (one per basis atom), the ``rho``
independent sets, and the inverse ``T`` of the ``rho x rho`` submatrix ``K``
they span. Adding a set ``s`` computes its residual against the basis,
``s - (s_B T) M_R``; if it is non-zero somewhere, the set is independent, a
person with a non-zero residual becomes a new representative, and ``T`` is
updated by the bordered-inverse formula (a rank-one term). Atoms are refined in
``O(n)`` per set. To find the coloops, draw random weights ``w`` on the atoms
outside the basis and compute ``x = T (A_{R,N} w)``: row ``b`` of the
coordinate matrix ``X = T A_{R,N}`` is zero for a coloop, so ``x_b = 0``;
for a basis atom that is not a coloop, ``x_b = 0`` with probability about
``1/p`` (the weights are drawn once per check below the smallest prime and
shared by the primes). ``x_b = 0`` is reported as determined, so that error
only refuses.

Exactness of arithmetic modulo ``p``. Suppose ``e_alpha = y^T A`` over Q. By
Cramer's rule ``y`` can be chosen with denominators dividing ``D = det K`` for
any non-singular maximal minor ``K`` of ``A``; clearing denominators gives
``D e_alpha = (D y)^T A`` with an integer vector ``D y``. If ``p`` does not
divide ``D``, divide by ``D`` modulo ``p``: ``e_alpha`` is in the row space of
``A`` over GF(p) too. So membership over Q implies membership over GF(p)
unless ``p`` divides every non-singular maximal minor, which is exactly the
event ``rank_p(A) < rank_Q(A)``; membership over GF(p) without membership over
Q only refuses. The GF(p) test is exact for GF(p): the basis found modulo
``p`` has ``det K`` non-zero over the integers, so (when the ranks agree) it is
a basis over Q, contains every coloop, and ``X mod p`` is the reduction of
the rational ``X``. The bad event needs ``p`` to divide a fixed non-zero minor
``D``, and ``|D| <= rho^(rho/2)`` (Hadamard), so ``D`` has at most
``rho log2(rho) / 60`` prime factors in ``[2^30, 2^31)``, a range holding
about 5.07e7 primes. Each family draws :data:`DEFAULT_PRIME_COUNT` primes
there uniformly at random (the analyst cannot know them, so cannot craft sets
whose minors are multiples of them; a family resumed with :meth:`SetFamily.from_state`
keeps the primes of its state, which the site never sends), and an atom is reported determined if
*any* prime reports it: a miss needs every prime to be bad. For ``rho = 500``
that is below ``(75 / 5.07e7)^2 < 3e-12`` per check. With ``p < 2^31`` every
product of two residues fits in int64; sums of 0/1-weighted residues are done
in int64 or, through ``bincount``, in float64 with at most
:data:`MAX_PERSONS` terms of less than ``2^31`` (exact below ``2^53``).

Why hand-written: no maintained library audits overlapping sum queries.
Statistical disclosure control packages (sdcMicro, tau-Argus) protect fixed
tables by cell suppression; differential-privacy libraries add noise and
account for it. Exact rational elimination (Bareiss with Python integers) is
exact but its numbers grow to thousands of digits for hundreds of sets.

What the rules do not cover. Rule 3 looks at single atoms. The sum over
a group of fewer than ``m`` people that spans several atoms can be determined
while no single atom is (for example ``B5 + {a}``, ``B6 + {b}``, ``B5 + B6``
with large ``B5``, ``B6`` determine ``x_a + x_b``). Finding the smallest group
whose sum is determined is the minimum-weight codeword problem, NP-hard in
general (Vardy 1997), and deciding whether Boolean values are pinned by sums
is coNP-hard (Kleinberg, Papadimitriou and Raghavan, "Auditing Boolean
attributes", PODS 2000). Those cases are left to small-cell suppression and
noise. :func:`unsafe_variants` is stricter: it asks that every atom be empty
or hold at least ``m`` people, which rules out any determined group of fewer
than ``m``.

Cost
----
``n`` persons, ``r`` distinct sets, ``rho <= r`` their rank, ``k <= min(n, 2^r)``
atoms, ``C = ceil(r / 8)`` bytes per person, ``q`` primes (default 2).
Memory: ``n C`` bytes of set bits plus ``q rho^2`` int64. Adding a set costs
``O(n)`` (refining atoms, packing bits) plus ``O(q rho t)`` for the inverse's
``t <= 128`` rank-one terms (see ``_Basis``; folding them in costs
``O(q rho^2)`` per set amortised, in BLAS) plus a residual on a sample of 64
persons; when the sample shows no residual (a set inside the span, or made
independent by a few people only), the residual is computed on every atom,
``O(q k C)``. A check copies the state but the inverse, ``O(n C)``, compares
each candidate with every set, ``O(|s| C)``, and runs the coloop test,
``O(n log n + k C + q rho^2)`` (one product with the inverse per prime).
:meth:`SetFamily.admit` checks and keeps the trial, so a passing set is
extended once. Measured figures at 10,000 persons, with the family resumed
from the store rather than rebuilt, are in ``bench/disclosure.py`` and ADR
0005 (Consequences).

Structured families (nested cohorts, strata) have few atoms and cost less.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]

#: A candidate has 1 to ``min_cell - 1`` members.
SMALL_SET = "SMALL_SET"
#: Two sets differ by 1 to ``min_cell - 1`` people.
SMALL_DIFFERENCE = "SMALL_DIFFERENCE"
#: The released sums would determine a sum over fewer than ``min_cell`` people.
DETERMINED = "DETERMINED"
RULES = (SMALL_SET, SMALL_DIFFERENCE, DETERMINED)

#: Registry size up to which float64 ``bincount`` sums of residues stay exact.
MAX_PERSONS = 2**22
#: Independent random primes per family; an atom is determined if any reports it.
DEFAULT_PRIME_COUNT = 2
PRIME_RANGE = (2**30, 2**31)

_SAMPLE = 64
# rank-one updates of K^-1 kept apart before they are folded in (see _Basis)
_TERMS = 128
# _BITS[v, j] is bit j of byte v: byte c of a person holds sets 8c .. 8c+7.
_BITS: IntArray = ((np.arange(256)[:, None] >> np.arange(8)[None, :]) & 1).astype(np.int64)


@dataclass(frozen=True)
class Verdict:
    """Whether a release may leave; ``detail`` names sizes, never values."""

    ok: bool
    rule: str = ""
    detail: str = ""


PASS = Verdict(True)


def fingerprint(members: BoolArray) -> str:
    """SHA-256 hex of ``n_persons`` (8 bytes, little endian) and the packed bits."""
    bits = np.asarray(members, dtype=np.bool_)
    return hashlib.sha256(len(bits).to_bytes(8, "little") + np.packbits(bits).tobytes()).hexdigest()


def is_prime(n: int) -> bool:
    """Deterministic Miller-Rabin, exact for ``n < 341,550,071,728,321`` (bases 2 to 17)."""
    if n < 2:
        return False
    for small in (2, 3, 5, 7, 11, 13):
        if n % small == 0:
            return n == small
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for a in (2, 3, 5, 7, 11, 13, 17):
        if a % n == 0:
            continue
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def draw_primes(
    count: int = DEFAULT_PRIME_COUNT, randbelow: Callable[[int], int] = secrets.randbelow
) -> tuple[int, ...]:
    """``count`` distinct primes drawn uniformly from :data:`PRIME_RANGE`."""
    low, high = PRIME_RANGE
    chosen: list[int] = []
    while len(chosen) < count:
        candidate = low + randbelow(high - low)
        if is_prime(candidate) and candidate not in chosen:
            chosen.append(candidate)
    return tuple(chosen)


def _gather(rows: NDArray[np.uint8], y: IntArray) -> IntArray:
    """For each person row of packed set bits, ``sum_j y_j bit_j`` (four Russians)."""
    n_bytes = rows.shape[1]
    tables = _BITS @ y[: 8 * n_bytes].reshape(n_bytes, 8).T  # (256, n_bytes)
    out = np.zeros(rows.shape[0], dtype=np.int64)
    for c in np.flatnonzero(y[: 8 * n_bytes].reshape(n_bytes, 8).any(axis=1)):
        out += tables[rows[:, c], c]
    return out


def _scatter(rows: NDArray[np.uint8], weights: NDArray[np.float64] | None) -> IntArray:
    """For each set ``j``, the sum of ``weights`` over person rows with bit ``j`` set."""
    acc = np.empty((rows.shape[1], 256), dtype=np.int64)
    for c in range(rows.shape[1]):
        acc[c] = np.bincount(rows[:, c], weights=weights, minlength=256).astype(np.int64)
    return (acc @ _BITS).reshape(-1)


def _matvec_mod(a: IntArray, v: IntArray, p: int) -> IntArray:
    """``a @ v mod p`` for residues below ``2^31``, split in 16-bit limbs to fit int64."""
    high = (a @ (v >> 16)) % p
    return (high * 65536 + a @ (v & 0xFFFF)) % p


class _Basis:
    """A column basis of the family over GF(p): representatives, rows and ``K^-1``.

    ``K^-1`` is kept as a materialised part ``inv`` (the first ``len(inv)``
    representatives and rows) plus the rank-one terms ``u_i v_i^T`` of the
    bordered updates since, each zero-padded to the current size. A product
    with ``K^-1`` is one with ``inv`` plus ``O(rho k)`` for ``k`` terms, so an
    extension costs ``O(rho k)`` rather than rewriting ``rho^2`` residues;
    after :data:`_TERMS` terms they are folded into ``inv`` by float64 matrix
    products on 16-bit limbs (exact: every partial sum stays below ``2^53``).
    Arrays are never written after they are made, so copies share them.
    """

    def __init__(self, p: int) -> None:
        self.p = p
        self.reps: list[int] = []  # one person per basis atom
        self.rows: list[int] = []  # indexes of the independent sets
        self.inv: IntArray = np.zeros((0, 0), dtype=np.int64)  # K^-1 of the first len(inv)
        self.us: list[IntArray] = []  # rank-one terms u_i v_i^T of K^-1 since (unpadded)
        self.vs: list[IntArray] = []

    def copy(self) -> _Basis:
        other = _Basis(self.p)
        other.reps, other.rows, other.inv = list(self.reps), list(self.rows), self.inv
        other.us, other.vs = list(self.us), list(self.vs)
        return other

    def _terms(self) -> tuple[IntArray, IntArray]:
        """The rank-one terms as (rho x k) matrices ``U``, ``V``: ``K^-1 = inv + U V^T``."""
        rho = len(self.reps)
        u = np.zeros((rho, len(self.us)), dtype=np.int64)
        v = np.zeros((rho, len(self.vs)), dtype=np.int64)
        for i, (ui, vi) in enumerate(zip(self.us, self.vs, strict=True)):
            u[: len(ui), i], v[: len(vi), i] = ui, vi
        return u, v

    def _combine(self, mask: BoolArray, transpose: bool) -> IntArray:
        """``mask^T K^-1`` (rows, ``transpose`` False) or ``K^-1 mask`` (columns), mod ``p``."""
        p, rho, done = self.p, len(self.reps), len(self.inv)
        out = np.zeros(rho, dtype=np.int64)
        head = mask[:done]
        inv = self.inv.T if transpose else self.inv
        if done and head.any():
            if 8 * int(head.sum()) < done:  # a few rows (columns): gather them
                out[:done] = inv[:, head].sum(axis=1) % p
            else:  # sums of at most rho residues below 2^31: exact in int64
                out[:done] = (inv @ head.astype(np.int64)) % p
        if self.us:
            u, v = self._terms()
            if transpose:
                u, v = v, u
            coef = (mask.astype(np.int64) @ v) % p  # (V^T mask), k entries
            out = (out + _matvec_mod(u, coef, p)) % p
        return out

    def _matvec(self, z: IntArray) -> IntArray:
        """``K^-1 z mod p`` for residues ``z``."""
        p, done = self.p, len(self.inv)
        out = np.zeros(len(self.reps), dtype=np.int64)
        if done:
            out[:done] = _matvec_mod(self.inv, z[:done], p)
        if self.us:
            u, v = self._terms()
            out = (out + _matvec_mod(u, _matvec_mod(v.T, z, p), p)) % p
        return out

    def _fold(self) -> None:
        """Fold the rank-one terms into ``inv`` (exact float64 products on 16-bit limbs)."""
        if not self.us:
            return
        p, rho, done = self.p, len(self.reps), len(self.inv)
        u, v = self._terms()
        u1, u0 = (u >> 16).astype(np.float64), (u & 0xFFFF).astype(np.float64)
        v1, v0 = (v >> 16).astype(np.float64), (v & 0xFFFF).astype(np.float64)
        # U V^T = hh 2^32 + mid 2^16 + ll; entries below k 2^33 < 2^53 for k < 2^20
        out = (u1 @ v1.T).astype(np.int64) % p
        out *= 65536
        out += (u1 @ v0.T + u0 @ v1.T).astype(np.int64) % p
        out %= p
        out *= 65536
        out += (u0 @ v0.T).astype(np.int64) % p
        out[:done, :done] += self.inv
        out %= p
        out.setflags(write=False)
        self.inv, self.us, self.vs = out, [], []
        assert out.shape == (rho, rho)

    def materialised(self) -> IntArray:
        """``K^-1`` as one (rho x rho) array (folds the rank-one terms)."""
        self._fold()
        return self.inv

    def _y(self, s: BoolArray, n_sets: int) -> IntArray:
        """``s_B K^-1`` placed on the set indexes (zero on dependent sets)."""
        y = np.zeros(n_sets, dtype=np.int64)
        if self.rows:
            y[self.rows] = self._combine(s[self.reps], transpose=True)
        return y

    def extend(self, fam: SetFamily, s: BoolArray, index: int) -> None:
        """Take set ``index`` (already packed) into the basis if it is independent."""
        p = self.p
        packed = fam._packed
        y = self._y(s, 8 * packed.shape[1])
        members = np.flatnonzero(s)
        others = np.flatnonzero(fam._in_any & ~s)
        sample = np.concatenate(
            [
                fam._rng.choice(members, min(_SAMPLE // 2, len(members)), replace=False),
                fam._rng.choice(others, min(_SAMPLE // 2, len(others)), replace=False),
            ]
        ).astype(np.int64)
        bits = np.unpackbits(packed[sample], axis=1, bitorder="little")
        residual = (s[sample].astype(np.int64) - bits.astype(np.int64) @ y) % p
        hit = np.flatnonzero(residual)
        if len(hit):
            q, sigma = int(sample[hit[0]]), int(residual[hit[0]])
        else:  # residual on one person per atom (it is constant on atoms)
            reps = fam._atom_reps()
            residual = (s[reps].astype(np.int64) - _gather(packed[reps], y)) % p
            hit = np.flatnonzero(residual)
            if not len(hit):
                return  # s lies in the span: nothing changes
            q, sigma = int(reps[hit[0]]), int(residual[hit[0]])
        rho = len(self.reps)
        y_rows = y[self.rows] if rho else np.zeros(0, dtype=np.int64)
        c = np.unpackbits(packed[q], bitorder="little")[self.rows].astype(np.bool_)
        tc = self._combine(c, transpose=False)
        sigma_inv = pow(sigma, p - 2, p)
        # bordered inverse: K'^-1 = pad(K^-1) + u v^T, u = (a, -1/sigma), v = (y, -1)
        u = np.append(tc * sigma_inv % p, (p - sigma_inv) % p)
        v = np.append(y_rows, p - 1)
        u.setflags(write=False)
        v.setflags(write=False)
        self.us.append(u)
        self.vs.append(v)
        self.reps.append(q)
        self.rows.append(index)
        if len(self.us) >= _TERMS:
            self._fold()

    def coloops(self, fam: SetFamily, weights: NDArray[np.float64], total: IntArray) -> IntArray:
        """Internal atom ids reported determined (every true one, rare extra ones).

        ``weights`` are random per atom and ``total`` their sums per set (shared
        by the primes); the basis atoms' share is taken out here.
        """
        if not self.reps:
            return np.zeros(0, dtype=np.int64)
        basis_atoms = fam._atom_of[self.reps]
        own = _scatter(fam._packed[self.reps], weights[basis_atoms])
        z = (total - own)[self.rows] % self.p  # A_{R,N} w: weights on non-basis atoms only
        x = self._matvec(z)
        found: IntArray = basis_atoms[x == 0]
        return found


class SetFamily:
    """The sets already released for one data column (see the module docstring)."""

    def __init__(
        self,
        n_persons: int,
        min_cell: int,
        sets: Iterable[BoolArray] = (),
        *,
        primes: Sequence[int] | None = None,
        rng: np.random.Generator | None = None,
    ) -> None:
        if not 0 <= n_persons <= MAX_PERSONS:
            raise ValueError(f"n_persons must be in 0..{MAX_PERSONS}, not {n_persons}")
        if min_cell < 0:
            raise ValueError(f"min_cell must be >= 0, not {min_cell}")
        primes = tuple(primes) if primes is not None else draw_primes()
        if not primes or any(not (is_prime(p) and p < 2**31) for p in primes):
            raise ValueError(f"primes must be a non-empty list of primes below 2^31: {primes}")
        self.n_persons = n_persons
        self.min_cell = min_cell
        self._rng = rng if rng is not None else np.random.default_rng(secrets.randbits(128))
        self._packed: NDArray[np.uint8] = np.zeros((n_persons, 1), dtype=np.uint8)
        self._sizes: list[int] = []
        self._prints: list[str] = []  # fingerprint of each set, in family order
        self._seen: set[str] = set()
        self._atom_of: IntArray = np.zeros(n_persons, dtype=np.int64)  # 0: in no set
        self._n_internal = 1 if n_persons else 0
        self._in_any: BoolArray = np.zeros(n_persons, dtype=np.bool_)
        self._reps_cache: IntArray | None = None
        self._bases = [_Basis(p) for p in primes]
        self.add(list(sets))

    # -- public -------------------------------------------------------------

    @property
    def n_sets(self) -> int:
        """Distinct non-empty sets in the family."""
        return len(self._sizes)

    def holds(self, members: BoolArray) -> bool:
        """Is this set (over this family's registry) already in the family?"""
        return fingerprint(members) in self._seen

    def fingerprints(self) -> set[str]:
        """The :func:`fingerprint` of every set held (over this family's registry size)."""
        return set(self._seen)

    @property
    def n_atoms(self) -> int:
        """Atoms of persons in at least one set."""
        return self._n_internal - int(not self._in_any.all())

    def atoms(self) -> IntArray:
        """Atom id per person (``0 .. n_atoms - 1``), -1 for persons in no set."""
        return self._atom_of - int(not self._in_any.all())

    def atom_sizes(self) -> IntArray:
        sizes = np.bincount(self._atom_of, minlength=self._n_internal)
        return sizes[1:] if not self._in_any.all() else sizes

    def determined_atoms(self) -> BoolArray:
        """Per atom: the released sums determine the sum over it."""
        out = np.zeros(self._n_internal, dtype=np.bool_)
        if any(basis.reps for basis in self._bases):
            reps = self._atom_reps()
            low = min(basis.p for basis in self._bases)
            weights = self._rng.integers(1, low, size=len(reps)).astype(np.float64)
            total = _scatter(self._packed[reps], weights)
            for basis in self._bases:
                out[basis.coloops(self, weights, total)] = True
        return out[1:] if not self._in_any.all() else out

    def determined(self) -> BoolArray:
        """Per person: their value follows from the released sums."""
        atoms = self.atoms()
        single = self.determined_atoms() & (self.atom_sizes() == 1)
        inside = atoms >= 0
        out = np.zeros(self.n_persons, dtype=np.bool_)
        out[inside] = single[atoms[inside]]
        return out

    def check(self, candidates: Sequence[BoolArray]) -> Verdict:
        """Would adding every candidate (together) be safe? Does not change the family."""
        return self._trial(self._fresh(candidates))[0]

    def admit(self, candidates: Sequence[BoolArray]) -> Verdict:
        """:meth:`check`, and add the candidates when they pass (one extension, not two)."""
        fresh = self._fresh(candidates)
        verdict, trial = self._trial(fresh)
        if verdict.ok:
            if trial is None:
                self._add_fresh(fresh)
            else:
                vars(self).update(vars(trial))
        return verdict

    def _trial(self, fresh: list[BoolArray]) -> tuple[Verdict, SetFamily | None]:
        """The verdict on adding ``fresh`` and, past rules 1-2, the family with them added."""
        m = self.min_cell
        if m == 0 or not fresh:
            return PASS, None
        sizes = [int(s.sum()) for s in fresh]
        for size in sizes:
            if 0 < size < m:
                detail = f"a set of {size} person(s) (minimum {m}) would be summed"
                return Verdict(False, SMALL_SET, detail), None
        released = np.asarray(self._sizes, dtype=np.int64)
        for i, s in enumerate(fresh):
            if self.n_sets:
                inter = _scatter(self._packed[s], None)[: self.n_sets]
                diff = sizes[i] + released - 2 * inter
                near = (diff > 0) & (diff < m)
                if near.any():
                    # the smallest difference, then the smallest such set: the same
                    # message whatever order the family's sets were added in
                    small, size = min(
                        zip(diff[near].tolist(), released[near].tolist(), strict=True)
                    )
                    detail = (
                        f"a set of {sizes[i]} differs from a released set of {size} by "
                        f"{small} person(s) (minimum {m})"
                    )
                    return Verdict(False, SMALL_DIFFERENCE, detail), None
            for j in range(i):
                d = int(np.count_nonzero(s ^ fresh[j]))
                if 0 < d < m:
                    detail = (
                        f"two sets of this release ({sizes[j]} and {sizes[i]}) differ by "
                        f"{d} person(s) (minimum {m})"
                    )
                    return Verdict(False, SMALL_DIFFERENCE, detail), None
        trial = self._copy()
        trial._add_fresh(fresh)
        return trial._rule_determined(), trial

    def add(self, candidates: Sequence[BoolArray]) -> None:
        """Add sets (check first: this does not)."""
        self._add_fresh(self._fresh(candidates))

    def largest_subset_within(self, members: BoolArray, most_missing: int) -> BoolArray | None:
        """The largest released set inside ``members`` that lacks 1 to ``most_missing`` of them.

        Summing over that set again releases nothing new for it; a caller whose
        own set would be refused can serve the request over it instead (see
        :meth:`genofed.site_agent.privacy.guard.ReleaseGuard.align`). Reads
        membership only. None when no released set qualifies.
        """
        arr = np.asarray(members)
        if arr.dtype != np.bool_ or arr.shape != (self.n_persons,):
            raise ValueError(
                f"a sample set must be a bool array of shape ({self.n_persons},), "
                f"not {arr.dtype} {arr.shape}"
            )
        if not self.n_sets or most_missing <= 0:
            return None
        sizes = np.asarray(self._sizes, dtype=np.int64)
        inside = _scatter(self._packed[arr], None)[: self.n_sets]
        lacking = int(arr.sum()) - sizes
        fits = np.flatnonzero((inside == sizes) & (lacking > 0) & (lacking <= most_missing))
        if not len(fits):
            return None
        # the largest, then the smallest fingerprint: a choice independent of set order
        j = min(fits.tolist(), key=lambda k: (-int(sizes[k]), self._prints[k]))
        byte, bit = divmod(j, 8)
        found: BoolArray = ((self._packed[:, byte] >> np.uint8(bit)) & np.uint8(1)).astype(np.bool_)
        return found

    def intersections_within(
        self, members: BoolArray, most_missing: int, limit: int = 8
    ) -> list[BoolArray]:
        """``members`` cut down to a released set that lacks 1 to ``most_missing`` of them.

        For a cohort that *crosses* an earlier set (each holds people the other
        lacks, ``members`` only a few): its intersection with that set drops the
        few newcomers, so it no longer differs from the earlier set by them.
        Unlike :meth:`largest_subset_within` the result is a new set (unless
        the released set lies inside ``members``), which the caller must check
        like any other. At most ``limit`` distinct candidates, largest first.
        Reads membership only.
        """
        arr = np.asarray(members)
        if arr.dtype != np.bool_ or arr.shape != (self.n_persons,):
            raise ValueError(
                f"a sample set must be a bool array of shape ({self.n_persons},), "
                f"not {arr.dtype} {arr.shape}"
            )
        if not self.n_sets or most_missing <= 0:
            return []
        inside = _scatter(self._packed[arr], None)[: self.n_sets]
        lacking = int(arr.sum()) - inside
        fits = np.flatnonzero((lacking > 0) & (lacking <= most_missing))
        out: list[BoolArray] = []
        seen: set[str] = set()
        for j in sorted(fits.tolist(), key=lambda k: (-int(inside[k]), self._prints[k])):
            byte, bit = divmod(j, 8)
            held = ((self._packed[:, byte] >> np.uint8(bit)) & np.uint8(1)).astype(np.bool_)
            cut: BoolArray = held & arr
            key = fingerprint(cut)
            if key not in seen:
                seen.add(key)
                out.append(cut)
            if len(out) >= limit:
                break
        return out

    # -- persistence ----------------------------------------------------------

    def state(self) -> dict[str, NDArray[np.generic]]:
        """Everything :meth:`from_state` needs to resume this family, as arrays.

        Residues (below ``2^31``) and person indexes are stored as int32, the
        set bits only for the sets held. The random generator is not kept: a
        resumed family draws a new one, like a rebuilt one.
        """
        used = max(1, -(-self.n_sets // 8))
        prints = b"".join(bytes.fromhex(fp) for fp in self._prints)
        out: dict[str, NDArray[np.generic]] = {
            "n_persons": np.array([self.n_persons, self._n_internal], dtype=np.int64),
            "packed": np.ascontiguousarray(self._packed[:, :used]),
            "sizes": np.asarray(self._sizes, dtype=np.int64),
            "prints": np.frombuffer(prints, dtype=np.uint8).reshape(-1, 32),
            "atom_of": self._atom_of.astype(np.int32),
            "in_any": self._in_any,
            "primes": np.array([b.p for b in self._bases], dtype=np.int64),
        }
        for i, basis in enumerate(self._bases):
            out[f"reps{i}"] = np.asarray(basis.reps, dtype=np.int32)
            out[f"rows{i}"] = np.asarray(basis.rows, dtype=np.int32)
            out[f"inv{i}"] = basis.materialised().astype(np.int32)
        return out

    @classmethod
    def from_state(
        cls,
        state: Mapping[str, NDArray[np.generic]],
        min_cell: int,
        n_persons: int | None = None,
        *,
        rng: np.random.Generator | None = None,
    ) -> SetFamily:
        """The family :meth:`state` described, over ``n_persons`` (at least as many as then).

        Persons registered since are in no set. Raises ValueError when the
        arrays do not fit together (the caller then rebuilds the family).
        """
        try:
            n, n_internal = (int(v) for v in state["n_persons"])
            primes = [int(p) for p in state["primes"]]
            family = cls(n, min_cell, primes=primes, rng=rng)
            packed = np.asarray(state["packed"], dtype=np.uint8)
            sizes = np.asarray(state["sizes"], dtype=np.int64)
            prints = np.asarray(state["prints"], dtype=np.uint8)
            atom_of = np.asarray(state["atom_of"]).astype(np.int64)
            in_any = np.asarray(state["in_any"], dtype=np.bool_)
            r = len(sizes)
            if (
                packed.shape != (n, max(1, -(-r // 8)))
                or prints.shape != (r, 32)
                or atom_of.shape != (n,)
                or in_any.shape != (n,)
                or (n and not 0 <= atom_of.min() <= atom_of.max() < n_internal)
            ):
                raise ValueError("the set arrays do not fit together")
            family._packed = packed.copy()
            family._sizes = sizes.tolist()
            family._prints = [bytes(row).hex() for row in prints]
            family._seen = set(family._prints)
            family._atom_of, family._n_internal = atom_of, n_internal
            family._in_any = in_any.copy()
            for i, basis in enumerate(family._bases):
                reps = np.asarray(state[f"reps{i}"]).astype(np.int64)
                rows = np.asarray(state[f"rows{i}"]).astype(np.int64)
                inv = np.asarray(state[f"inv{i}"]).astype(np.int64)
                rho = len(reps)
                if (
                    rows.shape != (rho,)
                    or inv.shape != (rho, rho)
                    or (rho and not (reps.min() >= 0 and reps.max() < n))
                    or (rho and not (rows.min() >= 0 and rows.max() < r))
                    or (rho and not (inv.min() >= 0 and inv.max() < basis.p))
                ):
                    raise ValueError(f"basis {i} does not fit the sets")
                inv.setflags(write=False)
                basis.reps, basis.rows, basis.inv = reps.tolist(), rows.tolist(), inv
        except KeyError as exc:
            raise ValueError(f"the family state lacks {exc}") from exc
        if n_persons is not None:
            family._grow(n_persons)
        return family

    def widened(self, n_persons: int) -> SetFamily:
        """This family over ``n_persons`` persons (at least as many), the new ones in no set."""
        if n_persons == self.n_persons:
            return self
        other = self._copy()
        other._grow(n_persons)
        return other

    def _grow(self, n_persons: int) -> None:
        """Widen to ``n_persons`` persons in place; the new ones are in no set."""
        extra = n_persons - self.n_persons
        if extra < 0 or n_persons > MAX_PERSONS:
            raise ValueError(
                f"a family over {self.n_persons} persons cannot be resumed over {n_persons}"
            )
        if not extra:
            return
        if self._in_any.all():  # no "in no set" atom yet: make id 0 that atom
            self._atom_of += 1
            self._n_internal += 1
        self._atom_of = np.concatenate([self._atom_of, np.zeros(extra, dtype=np.int64)])
        self._in_any = np.concatenate([self._in_any, np.zeros(extra, dtype=np.bool_)])
        self._packed = np.concatenate(
            [self._packed, np.zeros((extra, self._packed.shape[1]), dtype=np.uint8)]
        )
        self.n_persons = n_persons
        self._reps_cache = None
        # a fingerprint covers the registry size: recompute them over the new one
        bits = np.unpackbits(self._packed, axis=1, bitorder="little")[:, : self.n_sets]
        self._prints = [fingerprint(column) for column in bits.T.astype(np.bool_)]
        self._seen = set(self._prints)

    # -- internals ----------------------------------------------------------

    def _fresh(self, candidates: Sequence[BoolArray]) -> list[BoolArray]:
        """Validated candidates not yet in the family, without repeats or empty sets."""
        out: list[BoolArray] = []
        seen: set[str] = set()
        for s in candidates:
            arr = np.asarray(s)
            if arr.dtype != np.bool_ or arr.shape != (self.n_persons,):
                raise ValueError(
                    f"a sample set must be a bool array of shape ({self.n_persons},), "
                    f"not {arr.dtype} {arr.shape}"
                )
            key = fingerprint(arr)
            if key in self._seen or key in seen or not arr.any():
                continue
            seen.add(key)
            out.append(arr)
        return out

    def _add_fresh(self, fresh: list[BoolArray]) -> None:
        for s in fresh:
            print_ = fingerprint(s)
            self._seen.add(print_)
            self._prints.append(print_)
            index = self.n_sets
            byte, bit = divmod(index, 8)
            if byte >= self._packed.shape[1]:
                grown = np.zeros((self.n_persons, 2 * self._packed.shape[1]), dtype=np.uint8)
                grown[:, : self._packed.shape[1]] = self._packed
                self._packed = grown
            self._packed[:, byte] |= s.astype(np.uint8) << np.uint8(bit)
            self._sizes.append(int(s.sum()))
            key = self._atom_of * 2 + s
            present = np.bincount(key, minlength=2 * self._n_internal) > 0
            self._atom_of = (np.cumsum(present) - 1)[key]
            self._n_internal = int(present.sum())
            self._reps_cache = None
            for basis in self._bases:
                basis.extend(self, s, index)
            self._in_any |= s

    def _atom_reps(self) -> IntArray:
        """First person of each internal atom."""
        if self._reps_cache is None:
            _, first = np.unique(self._atom_of, return_index=True)
            self._reps_cache = first.astype(np.int64)
        return self._reps_cache

    def _copy(self) -> SetFamily:
        other = object.__new__(SetFamily)
        other.n_persons, other.min_cell, other._rng = self.n_persons, self.min_cell, self._rng
        other._packed = self._packed.copy()
        other._sizes, other._seen = list(self._sizes), set(self._seen)
        other._prints = list(self._prints)
        other._atom_of, other._n_internal = self._atom_of.copy(), self._n_internal
        other._in_any, other._reps_cache = self._in_any.copy(), self._reps_cache
        other._bases = [b.copy() for b in self._bases]
        return other

    def _rule_determined(self) -> Verdict:
        limit = max(self.min_cell, 2)
        sizes = self.atom_sizes()
        exposed = sizes[self.determined_atoms() & (sizes < limit)]
        if not len(exposed):
            return PASS
        if exposed.min() == 1:
            detail = "the released sums would determine one person's value"
            return Verdict(False, DETERMINED, detail)
        return Verdict(
            False,
            DETERMINED,
            f"the released sums would determine the sum over {exposed.min()} people "
            f"(minimum {limit})",
        )


def unsafe_variants(
    atom_of: IntArray, n_atoms: int, missing: BoolArray, min_cell: int
) -> BoolArray:
    """Per variant of a chunk: some atom would keep 1 to ``min_cell - 1`` called persons.

    A genotype column ``j`` is summed over ``S & called_j`` for each base set
    ``S``, so its atoms are the base atoms intersected with ``called_j``. If
    every such atom is empty or has at least ``min_cell`` persons, no sum over
    fewer than ``min_cell`` people follows from the variant's sums; otherwise
    the variant is flagged (a sufficient, conservative test). ``atom_of`` is the
    base family's :meth:`SetFamily.atoms` (-1: in no set), ``missing`` a
    (persons x variants) bool matrix, True where the call is missing. The
    threshold is ``max(min_cell, 2)`` like rule 3; ``min_cell == 0`` flags
    nothing. Cost ``O(n + nnz(missing) log nnz(missing))``.
    """
    missing = np.asarray(missing, dtype=np.bool_)
    n_variants = missing.shape[1]
    if atom_of.shape != (missing.shape[0],):
        raise ValueError(f"atom_of has shape {atom_of.shape}, missing has {missing.shape}")
    unsafe = np.zeros(n_variants, dtype=np.bool_)
    if min_cell == 0 or n_variants == 0:
        return unsafe
    limit = max(min_cell, 2)
    sizes = np.bincount(atom_of[atom_of >= 0], minlength=n_atoms)
    persons, variants = np.nonzero(missing)
    atom = atom_of[persons]
    keep = atom >= 0
    key, counts = np.unique(atom[keep] * n_variants + variants[keep], return_counts=True)
    alpha, variant = np.divmod(key, n_variants)
    called = sizes[alpha] - counts
    unsafe[variant[(called > 0) & (called < limit)]] = True
    # atoms with no missing call at j keep all their members
    small = (sizes > 0) & (sizes < limit)
    touched = np.bincount(variant[small[alpha]], minlength=n_variants)
    unsafe |= touched < int(small.sum())
    return unsafe


__all__ = [
    "DEFAULT_PRIME_COUNT",
    "DETERMINED",
    "MAX_PERSONS",
    "PASS",
    "PRIME_RANGE",
    "RULES",
    "SMALL_DIFFERENCE",
    "SMALL_SET",
    "SetFamily",
    "Verdict",
    "draw_primes",
    "fingerprint",
    "is_prime",
    "unsafe_variants",
]
