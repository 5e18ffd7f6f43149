"""Coalescent simulation of a stratified, human-like genome for synthetic cohorts.

Model
-----
Two populations, ``A`` and ``B``, each of effective size 10,000 (the usual
long-term human value), split from an ancestral population of the same size
1,500 generations ago (about 40,000 years) and have since exchanged migrants
at a symmetric rate of 5e-5 per generation. That gives an F_ST of a few
percent — the order of magnitude between continental groups within a continent
— so allele frequencies differ between sites whose ancestry mixes differ, and an
unadjusted association test sees population stratification, as a real
consortium does.

``msprime.sim_ancestry`` draws the ancestral recombination graph of diploid
individuals (ploidy 2) with recombination 1e-8 per bp per generation; then
``msprime.sim_mutations`` adds mutations at 1.25e-8 per bp per generation on
a discrete genome under the Jukes–Cantor (JC69) model, so alleles are real
nucleotides and positions are integers. The ancestral state is REF and the
derived state ALT. Because the data come from the coalescent, the allele-
frequency spectrum (many rare variants) and linkage disequilibrium (decaying
with distance, broken by recombination) are realistic, not imposed.

The genome is three autosomes simulated independently (unlinked), with
lengths chosen from Watterson's expectation so that together they hold more
biallelic segregating sites than requested; multi-allelic sites are dropped
and exactly the requested number of sites is kept by uniform subsampling, in
(chromosome, position) order. If a draw falls short the lengths grow and the
simulation is repeated with fresh, seed-derived random seeds, so the result
stays a deterministic function of the seed.

Genotypes are streamed back in chunks of variants (``iter_dosage_chunks``), so
memory is bounded by the chunk size, not by samples × variants.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import msprime
import numpy as np
import tskit

__all__ = [
    "CHROMOSOME_SHARES",
    "MIGRATION_RATE",
    "MUTATION_RATE",
    "NE",
    "POPULATIONS",
    "RECOMBINATION_RATE",
    "SPLIT_GENERATIONS",
    "Genome",
    "Variants",
    "demography",
    "iter_dosage_chunks",
    "msprime_seed",
    "select_variants",
    "simulate_genome",
]

NE = 10_000
MUTATION_RATE = 1.25e-8
RECOMBINATION_RATE = 1e-8
SPLIT_GENERATIONS = 1_500
MIGRATION_RATE = 5e-5
POPULATIONS = ("A", "B")
# Relative lengths of the simulated autosomes (unequal, like real ones).
CHROMOSOME_SHARES = (0.40, 0.33, 0.27)
# Population structure lengthens genealogies by roughly this factor over a
# panmictic population of size NE (measured: 1.45–1.55); used conservatively.
_STRUCTURE_INFLATION = 1.3
# Aim this much above the requested count so one draw nearly always suffices.
_HEADROOM = 1.15
_MAX_ATTEMPTS = 8
_SEED_KEY = 2


@dataclass(frozen=True)
class Variants:
    """Biallelic sites, in (chromosome, position) order.

    ``chrom`` is the 1-based chromosome number, ``position`` the 1-based base
    pair, ``site`` the tskit site id within its chromosome's tree sequence and
    ``alt_count`` the number of ALT copies among all simulated haplotypes.
    """

    chrom: np.ndarray
    position: np.ndarray
    ref: np.ndarray
    alt: np.ndarray
    site: np.ndarray
    alt_count: np.ndarray

    def __len__(self) -> int:
        return int(self.chrom.shape[0])

    @property
    def ids(self) -> list[str]:
        """Variant IDs as ``CHR:POS:REF:ALT``."""
        return [
            f"{c}:{p}:{r}:{a}"
            for c, p, r, a in zip(
                self.chrom.tolist(),
                self.position.tolist(),
                self.ref.tolist(),
                self.alt.tolist(),
                strict=True,
            )
        ]

    def take(self, index: np.ndarray) -> Variants:
        """The sites at ``index`` (kept in the given order)."""
        return Variants(
            chrom=self.chrom[index],
            position=self.position[index],
            ref=self.ref[index],
            alt=self.alt[index],
            site=self.site[index],
            alt_count=self.alt_count[index],
        )


@dataclass(frozen=True)
class Genome:
    """Simulated chromosomes and every biallelic segregating site on them."""

    trees: tuple[tskit.TreeSequence, ...]
    lengths: tuple[int, ...]
    candidates: Variants
    n_haplotypes: int


def demography() -> msprime.Demography:
    """Two populations split ``SPLIT_GENERATIONS`` ago, with symmetric migration."""
    model = msprime.Demography()
    model.add_population(name="A", initial_size=NE, description="population A")
    model.add_population(name="B", initial_size=NE, description="population B")
    model.add_population(name="ANC", initial_size=NE, description="ancestral")
    model.add_population_split(time=SPLIT_GENERATIONS, derived=["A", "B"], ancestral="ANC")
    model.set_symmetric_migration_rate(["A", "B"], MIGRATION_RATE)
    return model


def msprime_seed(seed: int, *key: int) -> int:
    """A seed in msprime's range [1, 2**31 - 1], derived from ``seed`` and ``key``."""
    state = np.random.SeedSequence(seed, spawn_key=(_SEED_KEY, *key)).generate_state(1)
    return int(state[0]) % (2**31 - 2) + 1


def _expected_sites_per_bp(n_haplotypes: int) -> float:
    harmonic = float(np.sum(1.0 / np.arange(1, n_haplotypes)))
    return 4 * NE * MUTATION_RATE * harmonic * _STRUCTURE_INFLATION


def _biallelic_sites(ts: tskit.TreeSequence, chrom: int) -> Variants:
    n_hap = ts.num_samples
    site, position, ref, alt, count = [], [], [], [], []
    for var in ts.variants(copy=False, isolated_as_missing=False):
        if len(var.alleles) != 2:
            continue
        c = int(np.count_nonzero(var.genotypes))
        if c == 0 or c == n_hap:
            continue  # monomorphic after a back mutation
        site.append(var.site.id)
        position.append(int(var.site.position) + 1)
        ref.append(var.alleles[0])
        alt.append(var.alleles[1])
        count.append(c)
    n = len(site)
    return Variants(
        chrom=np.full(n, chrom, dtype=np.int32),
        position=np.asarray(position, dtype=np.int64),
        ref=np.asarray(ref, dtype="<U1"),
        alt=np.asarray(alt, dtype="<U1"),
        site=np.asarray(site, dtype=np.int64),
        alt_count=np.asarray(count, dtype=np.int64),
    )


def _concat(parts: list[Variants]) -> Variants:
    return Variants(
        **{
            name: np.concatenate([getattr(p, name) for p in parts])
            for name in ("chrom", "position", "ref", "alt", "site", "alt_count")
        }
    )


def simulate_genome(n_a: int, n_b: int, variants: int, seed: int) -> Genome:
    """Simulate ``len(CHROMOSOME_SHARES)`` autosomes holding ≥ ``variants`` biallelic sites.

    ``n_a`` and ``n_b`` diploid individuals are sampled from populations A and
    B; msprime individuals ``0..n_a-1`` are from A, the rest from B.
    """
    n_hap = 2 * (n_a + n_b)
    total = variants * _HEADROOM / _expected_sites_per_bp(n_hap)
    model = demography()
    for attempt in range(_MAX_ATTEMPTS):
        lengths = tuple(max(1_000, round(total * share)) for share in CHROMOSOME_SHARES)
        trees, parts = [], []
        for chrom, length in enumerate(lengths, start=1):
            ts = msprime.sim_ancestry(
                samples={"A": n_a, "B": n_b},
                demography=model,
                sequence_length=length,
                recombination_rate=RECOMBINATION_RATE,
                ploidy=2,
                discrete_genome=True,
                random_seed=msprime_seed(seed, attempt, chrom, 0),
                record_provenance=False,
            )
            ts = msprime.sim_mutations(
                ts,
                rate=MUTATION_RATE,
                model=msprime.JC69(),
                discrete_genome=True,
                random_seed=msprime_seed(seed, attempt, chrom, 1),
                record_provenance=False,
            )
            trees.append(ts)
            parts.append(_biallelic_sites(ts, chrom))
        candidates = _concat(parts)
        if len(candidates) >= variants:
            return Genome(tuple(trees), lengths, candidates, n_hap)
        total *= 1.5 * variants / max(len(candidates), 1)
    msg = f"could not simulate {variants} biallelic sites in {_MAX_ATTEMPTS} attempts"
    raise RuntimeError(msg)


def select_variants(genome: Genome, variants: int, rng: np.random.Generator) -> Variants:
    """Keep exactly ``variants`` candidate sites, chosen uniformly, in genome order."""
    keep = np.sort(rng.choice(len(genome.candidates), size=variants, replace=False))
    return genome.candidates.take(keep)


def iter_dosage_chunks(
    genome: Genome, selected: Variants, sample_nodes: np.ndarray, chunk: int
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, dosage)``: ALT dosages of ``selected[start:start+len]`` as int8.

    ``dosage`` has shape (variants in chunk, individuals); individual ``i`` is
    the pair of sample nodes ``sample_nodes[2i], sample_nodes[2i+1]``. The
    array is reused between chunks: consume it before advancing.
    """
    n_ind = sample_nodes.shape[0] // 2
    haplotypes = np.empty((chunk, 2 * n_ind), dtype=np.int8)
    dosage = np.empty((chunk, n_ind), dtype=np.int8)
    fill = 0
    start = 0
    for chrom, ts in enumerate(genome.trees, start=1):
        wanted = selected.site[selected.chrom == chrom]
        if wanted.size == 0:
            continue
        left = float(ts.site(int(wanted[0])).position)
        right = float(ts.site(int(wanted[-1])).position) + 1
        pointer = 0
        for var in ts.variants(
            samples=sample_nodes, copy=False, isolated_as_missing=False, left=left, right=right
        ):
            if pointer == wanted.size or var.site.id != wanted[pointer]:
                continue
            pointer += 1
            haplotypes[fill] = var.genotypes
            fill += 1
            if fill == chunk:
                np.add(haplotypes[:, 0::2], haplotypes[:, 1::2], out=dosage)
                yield start, dosage
                start += fill
                fill = 0
        if pointer != wanted.size:  # pragma: no cover - tskit invariant
            msg = f"chromosome {chrom}: {wanted.size - pointer} selected sites not decoded"
            raise RuntimeError(msg)
    if fill:
        out = dosage[:fill]
        np.add(haplotypes[:fill, 0::2], haplotypes[:fill, 1::2], out=out)
        yield start, out
