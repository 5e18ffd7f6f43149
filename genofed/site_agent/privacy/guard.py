"""One request's disclosure guard: the sample sets a release sums over, checked and recorded.

Every release a site sends is sums of per-person values over sets of its
samples. A request module (``requests/``) says which sets it summed over
with :meth:`ReleaseGuard.declare` (per column group, as bool arrays in
``.fam`` order) and may ask, one set at a time, whether an extra set can be
added (:meth:`ReleaseGuard.offer`, for per-variant missing-call sets); the
release path (:mod:`genofed.site_agent.release`) then calls
:meth:`ReleaseGuard.commit` before the reply leaves. The commit checks every
declared set against everything this site released before (all studies,
all time: :mod:`.sample_sets`) and records them in the same transaction, or
refuses the release with ``DISCLOSURE_RISK``. The checks read only which
samples are in which set, never a value (:mod:`.disclosure`).

Two column groups are audited:

* :data:`CLINICAL`: every non-genotype column (phenotype, covariates, time,
  event, principal components). One family for all of them is conservative:
  a set summed for any clinical column counts for all, so the guard refuses
  at least whenever a per-column guard would.
* :data:`GENOTYPES`: the base sets over which per-variant genotype sums are
  taken. Per-variant missing calls shrink these sets variant by variant;
  :meth:`ReleaseGuard.unsafe_variants` flags the variants whose called sets
  would isolate fewer than ``min_cell_count`` people, and the module withholds
  them.

The guard is on when the policy's ``audit_sample_sets`` is true and its
``min_cell_count`` is above 0 (the demo policy's 0 turns it off, so that the
demo equals plink2).

Concurrency: checks during computation run against the families as loaded
when the request started. :meth:`commit` re-reads the store inside a
``BEGIN IMMEDIATE`` transaction; if another release was recorded meanwhile,
every set is checked again against the new families, one at a time, before
anything is recorded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from genofed.site_agent.privacy.disclosure import SetFamily, Verdict, fingerprint, unsafe_variants
from genofed.site_agent.privacy.sample_sets import (
    SAMPLE_SETS_FILE,
    GuardOutcome,
    ReleaseKey,
    SampleSetStore,
)

BoolArray = NDArray[np.bool_]

#: Every non-genotype column, audited as one.
CLINICAL = "clinical"
#: The base sets of per-variant genotype sums.
GENOTYPES = "genotypes"
COLUMNS = (CLINICAL, GENOTYPES)
#: Rule: genotype base sets that leave a small atom (see :func:`_small_atoms`).
SMALL_ATOM = "SMALL_ATOM"
#: Most distinct per-variant missing-call sets one request may add (then variants are
#: withheld); the policy's ``guard_max_new_sets``. Each costs one check against the family,
#: O(sets^2): about 10 ms at 1,000 sets, 50 ms at 2,000, 175 ms at 3,500 over 10,000 persons
#: (bench/disclosure.py), so this many near the default family cap add about 25 s.
DEFAULT_OFFER_CAP = 500
#: Most distinct sets a column group's family may hold before offers are refused; the
#: policy's ``guard_max_sets``. Families are resumed from the store's snapshot (1.2 s at
#: 4,000 sets over 10,000 persons; rebuilding by replay takes 55 s), so the cap is set by
#: check time and memory: 2 x 32 MB of inverses (int64) at 2,000 sets, 2 x 128 MB and a
#: 127 MB snapshot written with each release that adds sets at 4,000 (under 1 GB for the
#: process). A site may raise it to 4,000 (bench/guard_studies.py --big-reruns: 96,010
#: variants NA instead of 98,004 after four GWAS at 10,000 x 100,000, 170 s in the guard for
#: the last instead of 37 s).
DEFAULT_FAMILY_CAP = 2000


class ReleaseGuard:
    """The sets one request sums over; a disabled guard accepts everything and records nothing."""

    def __init__(
        self,
        store: SampleSetStore | None,
        person_ids: Sequence[str],
        min_cell: int,
        *,
        offer_cap: int = DEFAULT_OFFER_CAP,
        family_cap: int = DEFAULT_FAMILY_CAP,
    ) -> None:
        self._store = store
        self.min_cell = min_cell
        self.n_samples = len(person_ids)
        self._offer_cap = offer_cap
        self._family_cap = family_cap
        self._stored: dict[str, SetFamily] = {}
        self._declared: dict[str, list[BoolArray]] = {c: [] for c in COLUMNS}
        self._base: dict[str, list[BoolArray]] = {c: [] for c in COLUMNS}
        self._base_checked = False
        self._seen: dict[str, set[str]] = {c: set() for c in COLUMNS}
        self._families: dict[str, SetFamily] = {}
        self._offered = 0
        self._since = 0
        self._registry: NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        if min_cell <= 0:
            store = None
        self._store = store
        if store is not None:
            self._registry = store.person_indexes(list(person_ids))
            self._since = store.last_release_id()
        self._n_registry = store.n_persons() if store is not None else 0

    @classmethod
    def open(
        cls,
        site_dir: Path,
        person_ids: Sequence[str],
        min_cell: int,
        enabled: bool,
        *,
        offer_cap: int = DEFAULT_OFFER_CAP,
        family_cap: int = DEFAULT_FAMILY_CAP,
    ) -> ReleaseGuard:
        """The guard of a site directory (its store in ``state/``), or a disabled one.

        ``offer_cap`` and ``family_cap``: the policy's ``guard_max_new_sets`` and
        ``guard_max_sets`` (the time a request may spend in the guard against the
        variants with missing calls it withholds).
        """
        if not enabled or min_cell <= 0:
            return cls(None, person_ids, 0)
        store = SampleSetStore.open(Path(site_dir) / "state" / SAMPLE_SETS_FILE)
        return cls(store, person_ids, min_cell, offer_cap=offer_cap, family_cap=family_cap)

    @classmethod
    def disabled(cls, n_samples: int = 0) -> ReleaseGuard:
        return cls(None, [""] * n_samples, 0)

    @property
    def enabled(self) -> bool:
        return self._store is not None

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    # -- what a module says ---------------------------------------------------

    def declare(self, column: str, *sets: BoolArray | NDArray[np.integer]) -> None:
        """The release sums ``column`` over each set (bool mask or index array, ``.fam`` order)."""
        if column not in self._declared:
            raise ValueError(f"unknown column group {column!r}")
        for s in sets:
            mask = self._mask(s)
            key = fingerprint(mask)
            if key not in self._seen[column] and mask.any():
                if len(self._declared[column]) != len(self._base[column]):
                    raise ValueError("declare a release's base sets before offering others")
                self._seen[column].add(key)
                self._declared[column].append(mask)
                self._base[column].append(mask)
                self._base_checked = False
                if column in self._families:
                    self._families[column].add([self._lift(mask)])

    def align(
        self, column: str | Sequence[str], members: BoolArray | NDArray[np.integer]
    ) -> NDArray[np.int64]:
        """The samples to sum ``column`` over: ``members``, or an earlier release's set inside it.

        When ``members`` alone would be refused against what this site released
        before (e.g. QC over every genotyped sample after a GWAS over all but
        a few of them: the two sums would differ by those few people), and some
        released set lies inside ``members`` and lacks only 1 to
        ``min_cell_count - 1`` of them, the request is served over the largest
        such set instead: it adds no new set, so it passes, and the answer
        describes nearly the cohort asked for. A cohort that *crosses* an
        earlier set (it holds 1 to ``min_cell_count - 1`` people that set
        lacks, and lacks people the set holds: a logistic GWAS beside a linear
        one whose phenotypes are missing for different people) may instead be
        served over its intersection with that set, a new set that must pass
        every rule itself. The largest passing candidate wins (a repeated set
        before a new one of the same size). The choice reads membership only
        (never a value), like every guard decision; the caller says how many
        samples it left out (a reply fact). Returns ``.fam`` indexes, sorted;
        ``members`` unchanged when it passes, when no candidate passes, or
        when the guard is off.

        ``column`` may name several column groups (a glm sums clinical columns
        and genotypes over one set): the set must then pass in each, and an
        earlier set of any of them that passes in all may serve.
        """
        mask = self._mask(members)
        if not self.enabled or not mask.any():
            return np.flatnonzero(mask)
        columns = (column,) if isinstance(column, str) else tuple(column)
        families = [self._store_family(c) for c in columns]

        def passes(s: BoolArray) -> bool:
            for c, f in zip(columns, families, strict=True):
                if not f.check([s]).ok:
                    return False
                if c == GENOTYPES and not _small_atoms(f, [s], self.min_cell).ok:
                    return False
            return True

        lifted = self._lift(mask)
        if passes(lifted):
            return np.flatnonzero(mask)
        most = self.min_cell - 1
        repeats = [f.largest_subset_within(lifted, most) for f in families]
        cuts = [s for f in families for s in f.intersections_within(lifted, most)]
        # Largest first; at equal size a released set (nothing new) before a new cut.
        candidates = [s for s in repeats if s is not None] + cuts
        candidates.sort(key=lambda s: -int(s.sum()))
        for s in candidates:
            if passes(s):
                return np.flatnonzero(s[self._registry])
        return np.flatnonzero(mask)

    def declare_if_safe(self, column: str, members: BoolArray | NDArray[np.integer]) -> bool:
        """Declare ``members`` as one more base set if the release still passes with it.

        For a set whose sums a release may leave out (glm's allele counts over
        the genotyped samples outside the analysis): True, declared; False, the
        caller leaves those sums out and nothing of this set is recorded. Call
        after the release's other base sets passed :meth:`check_declared`.
        """
        if not self.enabled:
            self.declare(column, members)
            return True
        saved = (
            {c: list(v) for c, v in self._declared.items()},
            {c: list(v) for c, v in self._base.items()},
            {c: set(v) for c, v in self._seen.items()},
            self._base_checked,
        )
        self._families = {}  # declare() would add to the loaded families; rebuilt when asked
        self.declare(column, members)
        if self.check_declared().ok:
            return True
        self._declared, self._base, self._seen, self._base_checked = saved
        self._families = {}
        return False

    def check_declared(self) -> Verdict:
        """Would the sets declared so far pass (so a module can refuse before computing)?"""
        if not self.enabled:
            return Verdict(True)
        for column in COLUMNS:
            family = self._loaded(column, without_declared=True)
            lifted = [self._lift(s) for s in self._base[column]]
            verdict = family.check(lifted)
            if verdict.ok and column == GENOTYPES and lifted:
                verdict = _small_atoms(family, lifted, self.min_cell)
            if not verdict.ok:
                return _named(verdict, column)
        self._base_checked = True
        return Verdict(True)

    def offer(self, column: str, members: BoolArray | NDArray[np.integer]) -> bool:
        """Add ``members`` to this release if it passes against everything; False: withhold.

        For sets that only some rows of a release sum over (a variant's missing
        calls): the caller withholds the rows when this returns False. At most
        ``offer_cap`` sets new to the family are accepted per request; a set
        released before passes without counting (it adds nothing), so a rerun
        of a GWAS reaches the variants its predecessor had to withhold.
        """
        mask = self._mask(members)
        if not self.enabled or not mask.any():
            return True
        if fingerprint(mask) in self._seen[column]:
            return True
        family = self._loaded(column)
        lifted = self._lift(mask)
        if not family.holds(lifted):
            if self._offered >= self._offer_cap or family.n_sets >= self._family_cap:
                return False
            if not family.admit([lifted]).ok:
                return False
            self._offered += 1
        self._seen[column].add(fingerprint(mask))
        self._declared[column].append(mask)
        return True

    def unsafe_variants(self, column: str, rows: np.ndarray, missing: BoolArray) -> BoolArray:
        """Per variant: its called sets would isolate fewer than ``min_cell`` people.

        ``rows`` are the samples (``.fam`` indexes) the variant's sums cover and
        ``missing`` their (samples x variants) missing-call mask. The atoms are
        those of ``column``'s family with this release's sets in it.
        """
        n_variants = missing.shape[1]
        if not self.enabled:
            return np.zeros(n_variants, dtype=np.bool_)
        family = self._loaded(column)
        atoms = family.atoms()[self._registry[np.asarray(rows, dtype=np.int64)]]
        return unsafe_variants(atoms, family.n_atoms, missing, self.min_cell)

    # -- the release path -----------------------------------------------------

    def commit(self, release: ReleaseKey) -> GuardOutcome:
        """Check every declared set against the store and record them, or refuse (nothing kept).

        Base sets (:meth:`declare`) are checked here unless :meth:`check_declared`
        passed since the last one; offered sets were checked one by one. If
        another release was recorded since the families were loaded, every set
        is checked again against the new families before it is recorded.
        """
        uses = {c: list(sets) for c, sets in self._declared.items() if sets}
        if self._store is None or not uses:
            prints = {c: tuple(fingerprint(s) for s in sets) for c, sets in uses.items()}
            return GuardOutcome(Verdict(True), None, prints)
        for _ in range(5):
            if not self._base_checked:
                verdict = self.check_declared()
                if not verdict.ok:
                    return GuardOutcome(verdict, None, self._prints(uses))
            lifted = {c: [self._lift(s) for s in sets] for c, sets in uses.items()}
            # the families with this release's sets in them: saved as the store's snapshots
            families = {c: self._loaded(c) for c in uses}
            release_id = self._store.record_if_unchanged(release, lifted, self._since, families)
            if release_id is not None:
                return GuardOutcome(Verdict(True), release_id, self._prints(uses))
            verdict = self._recheck()
            if not verdict.ok:
                return GuardOutcome(verdict, None, self._prints(uses))
        raise RuntimeError("the sample-set store kept changing during this release; retry")

    def _recheck(self) -> Verdict:
        """Check base sets, then each offered set, against freshly loaded families."""
        assert self._store is not None
        self._since = self._store.last_release_id()
        self._families = {}
        self._stored = {}
        offered = {c: self._declared[c][len(self._base[c]) :] for c in COLUMNS}
        self._declared = {c: list(self._base[c]) for c in COLUMNS}
        verdict = self.check_declared()
        if not verdict.ok:
            return verdict
        for column in COLUMNS:
            family = self._loaded(column)
            for mask in offered[column]:
                verdict = family.admit([self._lift(mask)])
                if not verdict.ok:
                    return _named(verdict, column)
                self._declared[column].append(mask)
        return Verdict(True)

    def _prints(self, uses: dict[str, list[BoolArray]]) -> dict[str, tuple[str, ...]]:
        return {c: tuple(fingerprint(self._lift(s)) for s in sets) for c, sets in uses.items()}

    # -- internals --------------------------------------------------------------

    def _mask(self, s: BoolArray | NDArray[np.integer]) -> BoolArray:
        arr = np.asarray(s)
        if arr.dtype == np.bool_:
            if arr.shape != (self.n_samples,):
                raise ValueError(
                    f"a sample mask must have {self.n_samples} entries, not {arr.shape}"
                )
            return arr
        mask = np.zeros(self.n_samples, dtype=np.bool_)
        mask[arr.astype(np.int64)] = True
        return mask

    def _lift(self, mask: BoolArray) -> BoolArray:
        """A ``.fam``-order mask as a mask over the site's person registry."""
        out = np.zeros(self._n_registry, dtype=np.bool_)
        out[self._registry[mask]] = True
        return out

    def _loaded(self, column: str, *, without_declared: bool = False) -> SetFamily:
        assert self._store is not None
        if without_declared:
            return self._store_family(column)
        if column not in self._families:
            family = self._store_family(column)
            family.add([self._lift(s) for s in self._declared[column]])
            self._families[column] = family
        return self._families[column]

    def _store_family(self, column: str) -> SetFamily:
        """A copy of ``column``'s recorded family over this request's registry size.

        Built once per request (and again after :meth:`_recheck` clears it).
        """
        assert self._store is not None
        if column not in self._stored:
            family = self._store.family(column, self.min_cell)
            if family.n_persons != self._n_registry:  # persons registered by another request
                self._n_registry = family.n_persons
                self._families = {}  # rebuilt over the new registry size when next asked for
                self._stored = {}
            self._stored[column] = family
        return self._stored[column]._copy()


def _small_atoms(family: SetFamily, sets: list[BoolArray], min_cell: int) -> Verdict:
    """Genotype base sets must leave no atom of 1 to ``min_cell - 1`` people inside them.

    Per-variant missing calls shrink every set a variant is summed over, and
    the called sets of two base sets can isolate a small atom between them
    (the sums over ``A`` and over ``B`` minus its missing calls give the atom
    ``A - B``). :meth:`ReleaseGuard.unsafe_variants` would then withhold every
    variant of every later release over those sets; refusing the base sets
    that make such an atom keeps the genotype family usable.
    """
    trial = family._copy()
    trial.add(sets)
    atoms = trial.atoms()
    inside = np.zeros(trial.n_persons, dtype=np.bool_)
    for s in sets:
        inside |= s
    sizes = np.bincount(atoms[inside & (atoms >= 0)], minlength=max(trial.n_atoms, 1))
    small = sizes[(sizes > 0) & (sizes < max(min_cell, 2))]
    if not len(small):
        return Verdict(True)
    return Verdict(
        False,
        SMALL_ATOM,
        f"the release's samples would leave a group of {int(small.min())} people that "
        f"earlier releases tell apart (minimum {min_cell})",
    )


def _named(verdict: Verdict, column: str) -> Verdict:
    return Verdict(verdict.ok, verdict.rule, f"{verdict.detail} ({column} columns)")


def record_refusal(
    site_dir: Path, *, analyst: str, study_sha256: str, analysis_id: str, reason: str, time: str
) -> None:
    """Note a ``DISCLOSURE_RISK`` refusal (it suspends the analyst's auto-approval)."""
    with SampleSetStore.open(Path(site_dir) / "state" / SAMPLE_SETS_FILE) as store:
        store.record_refusal(
            time=time,
            analyst=analyst,
            study_sha256=study_sha256,
            analysis_id=analysis_id,
            reason=reason,
        )


def auto_approval_suspended(site_dir: Path, analyst: str | None, limit: int) -> str | None:
    """Why ``analyst``'s studies may not be auto-approved any more, or None.

    An analyst with ``limit`` or more studies the guard refused is probing,
    or at least running studies that overlap in ways the officer has not
    seen: their later studies wait for the officer (``genofed-site
    approve``), who may still approve them. The guard applies to approved
    studies all the same. ``limit`` 0: never suspended.
    """
    path = Path(site_dir) / "state" / SAMPLE_SETS_FILE
    if analyst is None or limit <= 0 or not path.is_file():
        return None
    with SampleSetStore.open(path) as store:
        refused = store.refusals_of(analyst)
    if len({study for _, study, _ in refused}) < limit:
        return None
    time, study, analysis = refused[-1]
    return (
        f"auto-approval of {analyst}'s studies is suspended: the disclosure guard refused "
        f"analysis {analysis!r} of study {study[:16]} at {time} "
        f"({len(refused)} refusal(s) in all)"
    )


def disclosure_message(verdict: Verdict) -> str:
    """A refusal's message: the rule and set sizes, never a value."""
    return (
        f"this release would let its sums, with earlier releases of this site, describe "
        f"fewer than min_cell_count people: {verdict.detail} [{verdict.rule}]; change the "
        "cohort (phenotype, covariates, groups) so that it differs from earlier analyses by "
        "at least min_cell_count people or not at all (e.g. [cohort] require = [the "
        "phenotypes and covariates the study's analyses use], so that they all run on the "
        "same people; or count analyses with samples_with = a GWAS's phenotype and "
        "covariates), or ask this site's privacy officer"
    )


def fingerprints_fact(outcome: GuardOutcome) -> tuple[str, ...]:
    """The audit entry's ``sample_sets``: ``column:sha256`` per set."""
    return tuple(f"{c}:{fp}" for c, fps in sorted(outcome.fingerprints.items()) for fp in fps)


def digest(entries: Sequence[str]) -> str:
    """One SHA-256 over the ``column:sha256`` list (a reply fact)."""
    return hashlib.sha256("\n".join(entries).encode("ascii")).hexdigest()


__all__ = [
    "CLINICAL",
    "COLUMNS",
    "DEFAULT_OFFER_CAP",
    "GENOTYPES",
    "SMALL_ATOM",
    "ReleaseGuard",
    "auto_approval_suspended",
    "digest",
    "disclosure_message",
    "fingerprints_fact",
    "record_refusal",
]
