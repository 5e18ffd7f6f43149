"""Write a synthetic multi-site cohort: site directories, a pooled copy and the truth.

Layout of ``out``::

    site-a/ site.toml policy.toml          written by genofed.site_agent.sitedir.init_site
            state/                          the site's audit key and log (a new key each time)
            data/genotypes.bed .bim .fam    this site's individuals, all variants
                 pheno.tsv covar.tsv        #FID IID QPHENO DISEASE RSCORE RFS_DAYS RFS_EVENT
                                            / #FID IID AGE SEX; the last three columns are
                                            the recurrence outcome (recurrence.py)
    site-b/ ...
    pooled/ pooled.bed .bim .fam pheno.tsv covar.tsv
                                            every site's individuals, in site order
    truth.json                              seed, parameters, causal variants and effects,
                                            per-site sample and ancestry counts
    populations.tsv                         #FID IID SITE POP: true ancestry per individual
    pgx/diplotypes.tsv                      with pgx=True: every individual's true star-allele
                                            diplotypes (genofed.synth.pgx_alleles); the PGx
                                            variants are in the .bed files and CLOP_EVENT
                                            (drug response) in pheno.tsv
    pgs/GENOFED_SIM.txt                     PGS Catalog scoring file (format 2) of the
                                            simulated trait: the causal variants and their
                                            true effects (genofed.synth.pgs_file)

With ``genotype_format="pgen"`` every ``.bed/.bim/.fam`` above is a
``.pgen/.pvar/.psam`` holding the same calls (:mod:`genofed.synth.pgen_format`).
With ``"vcf"`` or ``"bcf"`` each site's is one ``genotypes.vcf.gz`` (bgzipped)
or ``genotypes.bcf`` with the same calls (:mod:`genofed.synth.vcf_format`),
and ``pooled/`` keeps its ``.bed/.bim/.fam`` beside ``pooled.vcf.gz`` /
``pooled.bcf`` (``plink2 --vcf pooled/pooled.vcf.gz --double-id`` reads the
same samples: the synthetic FIDs equal the IIDs).

The pooled fileset is what a centralized analysis (``plink2 --bfile
out/pooled/pooled``) sees; a federated run over the sites must reproduce it.

Genotypes come from :mod:`genofed.synth.coalescent` in chunks of ``chunk``
variants; each chunk gets its missing calls and is appended, variant by
variant, to the pooled ``.bed`` and to every site's ``.bed`` through
``bed_reader.create_bed`` (the streaming form of ``bed_reader.to_bed``), so
memory holds one chunk, never the samples × variants matrix. ``.bim`` column
5 (A1, the counted allele) is ALT and column 6 (A2) is REF, which plink2 reads
as REF/ALT; variant IDs are ``CHR:POS:REF:ALT``.

Missing genotype calls are a uniformly random set of Binomial(variants ×
samples, ``missing_rate``) cells drawn once up front, so which calls are
missing does not depend on ``chunk``: the files are a function of
(seed, sites, samples, variants, missing_rate) alone, byte for byte.

Every random stream is its own ``numpy.random.Generator`` (or msprime seed)
derived from ``seed`` with a fixed ``SeedSequence`` spawn key, so adding
draws to one part never changes another. Everything is built in a hidden
temporary sibling of ``out`` and renamed into place at the end: an error
leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import msprime
import numpy as np
import tskit
from bed_reader import create_bed

from genofed.common.errors import InputError
from genofed.synth import coalescent, pgs_file, pgx_alleles, phenotypes, recurrence
from genofed.synth.coalescent import iter_dosage_chunks, select_variants, simulate_genome
from genofed.synth.layout import CohortLayout, plan_layout
from genofed.synth.phenotypes import Covariates, Phenotypes, choose_causal, draw_covariates
from genofed.synth.recurrence import Recurrence, simulate_recurrence

__all__ = ["DEFAULT_CHUNK", "TRUTH_FORMAT", "SynthSummary", "write_cohorts"]

log = logging.getLogger("genofed.synth")

DEFAULT_CHUNK = 2048
TRUTH_FORMAT = "genofed-synth-truth/1"
MAX_SITES = 26
_MIN_SAMPLES_PER_SITE = 4
_BED_MISSING = -127
# SeedSequence spawn keys, one per random stream (2 is coalescent.msprime_seed).
_KEY_LAYOUT = 0
_KEY_COVARIATES = 1
_KEY_SELECT = 3
_KEY_CAUSAL = 4
_KEY_MISSING = 5
_KEY_PHENO = 6
_KEY_RECURRENCE = 7
_KEY_PGS = 12
_KEY_PGX = 13
#: PGS Catalog scoring file of the simulated trait (genofed.synth.pgs_file).
SCORING_FILE = "pgs/GENOFED_SIM.txt"
#: Genotype formats :func:`write_cohorts` writes.
GENOTYPE_FORMATS = ("bed", "pgen", "vcf", "bcf")


@dataclass(frozen=True)
class SynthSummary:
    """Where :func:`write_cohorts` put things, and what it made."""

    out: Path
    sites: tuple[Path, ...]
    pooled: Path
    n_samples: int
    n_variants: int
    seed: int
    causal_variants: tuple[str, ...]

    @property
    def truth(self) -> Path:
        """``out/truth.json``."""
        return self.out / "truth.json"

    @property
    def scoring_file(self) -> Path:
        """``out/pgs/GENOFED_SIM.txt``: PGS Catalog scoring file of the simulated trait."""
        return self.out / SCORING_FILE

    @property
    def pooled_prefix(self) -> Path:
        """The pooled PLINK fileset prefix, ``out/pooled/pooled``."""
        return self.pooled / "pooled"


def _rng(seed: int, key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(key,)))


def _check_args(
    out: Path, sites: int, samples: int, variants: int, seed: int, missing_rate: float, chunk: int
) -> None:
    def bad(what: str, hint: str) -> InputError:
        return InputError(what, hint=hint)

    if not 1 <= sites <= MAX_SITES:
        raise bad(f"sites must be 1 to {MAX_SITES}, not {sites}", "use --sites 3")
    if samples < _MIN_SAMPLES_PER_SITE * sites:
        raise bad(
            f"{samples} samples are too few for {sites} sites",
            f"give at least {_MIN_SAMPLES_PER_SITE * sites} samples",
        )
    if variants < 1:
        raise bad(f"variants must be at least 1, not {variants}", "use --variants 2000")
    if seed < 0:
        raise bad(f"seed must be a non-negative integer, not {seed}", "use --seed 1")
    if not 0.0 <= missing_rate < 0.5:
        raise bad(f"missing_rate must be in [0, 0.5), not {missing_rate}", "use 0.005")
    if chunk < 1:
        raise bad(f"chunk must be at least 1, not {chunk}", f"use {DEFAULT_CHUNK}")
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise InputError(
            "already exists and is not an empty directory",
            path=out,
            hint="remove it or choose another output directory",
        )


def _missing_calls(n_cells: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted flat indices (variant * samples + sample) of missing genotype calls."""
    count = int(rng.binomial(n_cells, rate)) if rate > 0 else 0
    return np.sort(rng.choice(n_cells, size=count, replace=False)).astype(np.int64)


@contextlib.contextmanager
def _bed_writer(
    path: Path,
    n_samples: int,
    n_variants: int,
    properties: dict[str, Sequence[object] | np.ndarray],
) -> Iterator[create_bed]:
    writer = create_bed(path, n_samples, n_variants, properties=properties, num_threads=1)
    try:
        yield writer
    except BaseException:
        # Let the original error through, not create_bed's "fewer vectors" complaint.
        with contextlib.suppress(Exception):
            writer.close()
        raise
    writer.close()


def _fam_properties(
    layout: CohortLayout, covariates: Covariates, start: int, stop: int
) -> dict[str, Sequence[object] | np.ndarray]:
    iids = list(layout.iids[start:stop])
    n = stop - start
    return {
        "fid": iids,
        "iid": iids,
        "father": ["0"] * n,
        "mother": ["0"] * n,
        "sex": covariates.sex[start:stop].astype(np.int32),
        "pheno": ["-9"] * n,
    }


def _write_tables(
    directory: Path,
    iids: Sequence[str],
    covariates: Covariates,
    pheno: Phenotypes,
    recur: Recurrence,
    rows: slice,
) -> tuple[Path, Path]:
    pheno_lines = ["#FID\tIID\tQPHENO\tDISEASE\tRSCORE\tRFS_DAYS\tRFS_EVENT"]
    covar_lines = ["#FID\tIID\tAGE\tSEX"]
    q = pheno.qpheno[rows].tolist()
    d = pheno.disease[rows].tolist()
    age = covariates.age[rows].tolist()
    sex = covariates.sex[rows].tolist()
    score = recur.score[rows].tolist()
    days = recur.days[rows].tolist()
    event = recur.event[rows].tolist()
    for i, iid in enumerate(iids):
        qv = "NA" if np.isnan(q[i]) else f"{q[i]:.6f}"
        dv = "NA" if d[i] == phenotypes.DISEASE_MISSING else str(d[i])
        sv = "NA" if np.isnan(score[i]) else str(int(score[i]))
        pheno_lines.append(f"{iid}\t{iid}\t{qv}\t{dv}\t{sv}\t{days[i]}\t{event[i]}")
        covar_lines.append(f"{iid}\t{iid}\t{age[i]}\t{sex[i]}")
    pheno_path, covar_path = directory / "pheno.tsv", directory / "covar.tsv"
    pheno_path.write_text("\n".join(pheno_lines) + "\n", encoding="utf-8")
    covar_path.write_text("\n".join(covar_lines) + "\n", encoding="utf-8")
    return pheno_path, covar_path


def _truth(
    *,
    seed: int,
    sites: int,
    samples: int,
    variants: int,
    missing_rate: float,
    genome: coalescent.Genome,
    layout: CohortLayout,
    causal_ids: list[str],
    causal: coalescent.Variants,
    causal_freq: np.ndarray,
    pheno: Phenotypes,
    recur: Recurrence,
    n_missing_calls: int,
) -> dict[str, object]:
    return {
        "format": TRUTH_FORMAT,
        "seed": seed,
        "parameters": {
            "sites": sites,
            "samples": samples,
            "variants": variants,
            "missing_rate": missing_rate,
        },
        "genome": {
            "chromosome_lengths": list(genome.lengths),
            "biallelic_sites_simulated": len(genome.candidates),
            "missing_calls": n_missing_calls,
            "variant_id_format": "CHR:POS:REF:ALT (bim A1 = ALT, A2 = REF)",
        },
        "model": {
            "ne": coalescent.NE,
            "mutation_rate": coalescent.MUTATION_RATE,
            "mutation_model": "JC69, discrete genome",
            "recombination_rate": coalescent.RECOMBINATION_RATE,
            "populations": list(coalescent.POPULATIONS),
            "split_generations": coalescent.SPLIT_GENERATIONS,
            "migration_rate": coalescent.MIGRATION_RATE,
            "ploidy": 2,
        },
        "phenotypes": {
            "heritability": phenotypes.HERITABILITY,
            "qpheno": {
                "age_effect_per_10_years": phenotypes.AGE_EFFECT,
                "sex_effect_female": phenotypes.SEX_EFFECT,
                "population_b_effect": phenotypes.POPULATION_EFFECT,
                "noise_variance": 1.0 - phenotypes.HERITABILITY,
            },
            "disease": {
                "prevalence": phenotypes.PREVALENCE,
                "liability_threshold": pheno.liability_threshold,
                "age_effect_per_10_years": phenotypes.LIABILITY_AGE_EFFECT,
                "sex_effect_female": phenotypes.LIABILITY_SEX_EFFECT,
                "population_b_effect": phenotypes.LIABILITY_POPULATION_EFFECT,
                "coding": "1 control, 2 case",
            },
            "age": {
                "mean": phenotypes.AGE_MEAN,
                "sd": phenotypes.AGE_SD,
                "min": phenotypes.AGE_MIN,
                "max": phenotypes.AGE_MAX,
            },
            "missing_qpheno": int(np.isnan(pheno.qpheno).sum()),
            "missing_disease": int((pheno.disease == phenotypes.DISEASE_MISSING).sum()),
            "cases": int((pheno.disease == 2).sum()),
            "controls": int((pheno.disease == 1).sum()),
            "recurrence": {
                "model": "Weibull proportional hazards (genofed.synth.recurrence)",
                "score_cuts": list(recurrence.SCORE_CUTS),
                "log_hr_score_per_10_points": recurrence.SCORE_LOG_HR,
                "log_hr_age_per_10_years": recurrence.AGE_LOG_HR,
                "log_hr_female": recurrence.SEX_LOG_HR,
                "weibull_shape": recurrence.SHAPE,
                "baseline_rate_per_day": recurrence.BASELINE_RATE,
                "events": int(recur.event.sum()),
                "censored": int((recur.event == 0).sum()),
                "missing_score": int(np.isnan(recur.score).sum()),
            },
        },
        "causal": [
            {
                "id": vid,
                "chrom": int(causal.chrom[j]),
                "pos": int(causal.position[j]),
                "ref": str(causal.ref[j]),
                "alt": str(causal.alt[j]),
                "alt_frequency": float(causal_freq[j]),
                "effect": float(pheno.effects[j]),
            }
            for j, vid in enumerate(causal_ids)
        ],
        "sites": [
            {
                "name": s.name,
                "n_samples": s.n_samples,
                "first_iid": layout.iids[s.start],
                "last_iid": layout.iids[s.stop - 1],
                "populations": {"A": s.n_a, "B": s.n_b},
            }
            for s in layout.sites
        ],
        "pooled": {"n_samples": samples, "populations": {"A": layout.n_a, "B": layout.n_b}},
        "versions": {
            "msprime": msprime.__version__,
            "tskit": tskit.__version__,
            "numpy": np.__version__,
        },
    }


def _write_row(row: np.ndarray, pooled: object, sites: list[tuple[int, int, object]]) -> None:
    pooled.write(row)  # type: ignore[attr-defined]
    for a, b, writer in sites:
        writer.write(row[a:b])  # type: ignore[attr-defined]


def _build(
    root: Path,
    *,
    sites: int,
    samples: int,
    variants: int,
    seed: int,
    missing_rate: float,
    chunk: int,
    pgx: bool = False,
) -> tuple[CohortLayout, list[str]]:
    t0 = time.perf_counter()
    layout = plan_layout(samples, sites, _rng(seed, _KEY_LAYOUT))
    covariates = draw_covariates(samples, _rng(seed, _KEY_COVARIATES))
    pgx_cohort = (
        pgx_alleles.simulate_pgx(
            layout.population, covariates.age.astype(np.float64), _rng(seed, _KEY_PGX)
        )
        if pgx
        else None
    )
    genome = simulate_genome(layout.n_a, layout.n_b, variants, seed)
    t1 = time.perf_counter()
    log.info("simulated %d biallelic sites in %.1f s", len(genome.candidates), t1 - t0)

    selected = select_variants(genome, variants, _rng(seed, _KEY_SELECT))
    alt_freq = selected.alt_count / genome.n_haplotypes
    causal_idx = choose_causal(alt_freq, _rng(seed, _KEY_CAUSAL))
    missing = _missing_calls(variants * samples, missing_rate, _rng(seed, _KEY_MISSING))
    nodes = genome.trees[0].individuals_nodes[layout.individual].reshape(-1).astype(np.int32)

    ids = selected.ids
    bim = {
        "chromosome": [str(c) for c in selected.chrom.tolist()],
        "sid": ids,
        "cm_position": np.zeros(variants, dtype=np.float32),
        "bp_position": selected.position.astype(np.int32),
        "allele_1": selected.alt.tolist(),
        "allele_2": selected.ref.tolist(),
    }
    written = variants
    if pgx_cohort is not None:  # PGx variants join in (chromosome, position) order
        merged = pgx_alleles.merge_variants(bim, pgx_cohort)
        bim, written = merged.bim, merged.n_variants  # type: ignore[assignment]
    site_dirs = [root / s.name / "data" for s in layout.sites]
    pooled_dir = root / "pooled"
    for d in [*site_dirs, pooled_dir]:
        d.mkdir(parents=True)

    causal_dosage = np.empty((samples, causal_idx.size), dtype=np.int8)
    with contextlib.ExitStack() as stack:
        pooled_writer = stack.enter_context(
            _bed_writer(
                pooled_dir / "pooled.bed",
                samples,
                written,
                {**bim, **_fam_properties(layout, covariates, 0, samples)},
            )
        )
        site_writers = [
            (
                s.start,
                s.stop,
                stack.enter_context(
                    _bed_writer(
                        d / "genotypes.bed",
                        s.n_samples,
                        written,
                        {**bim, **_fam_properties(layout, covariates, s.start, s.stop)},
                    )
                ),
            )
            for s, d in zip(layout.sites, site_dirs, strict=True)
        ]
        for start, dosage in iter_dosage_chunks(genome, selected, nodes, chunk):
            stop = start + dosage.shape[0]
            lo, hi = np.searchsorted(causal_idx, (start, stop))
            causal_dosage[:, lo:hi] = dosage[causal_idx[lo:hi] - start].T
            lo, hi = np.searchsorted(missing, (start * samples, stop * samples))
            np.put(dosage, missing[lo:hi] - start * samples, _BED_MISSING)
            for offset, row in enumerate(dosage):
                if pgx_cohort is not None:
                    for k in merged.before.get(start + offset, ()):
                        _write_row(pgx_cohort.dosages[k], pooled_writer, site_writers)
                _write_row(row, pooled_writer, site_writers)
        if pgx_cohort is not None:
            for k in merged.after:
                _write_row(pgx_cohort.dosages[k], pooled_writer, site_writers)
    t2 = time.perf_counter()
    log.info("wrote %d x %d genotypes in %.1f s", samples, variants, t2 - t1)

    pheno = phenotypes.simulate_phenotypes(
        causal_dosage,
        alt_freq[causal_idx],
        layout.population,
        covariates,
        _rng(seed, _KEY_PHENO),
    )
    recur = simulate_recurrence(pheno.genetic, covariates, _rng(seed, _KEY_RECURRENCE))
    for s, d in zip(layout.sites, site_dirs, strict=True):
        rows = slice(s.start, s.stop)
        _write_tables(d, layout.iids[s.start : s.stop], covariates, pheno, recur, rows)
    _write_tables(pooled_dir, layout.iids, covariates, pheno, recur, slice(0, samples))
    if pgx_cohort is not None:
        for s, d in zip(layout.sites, site_dirs, strict=True):
            pgx_alleles.add_outcome_column(d / "pheno.tsv", pgx_cohort.outcome[s.start : s.stop])
        pgx_alleles.add_outcome_column(pooled_dir / "pheno.tsv", pgx_cohort.outcome)
        pgx_alleles.write_truth_table(root / "pgx" / "diplotypes.tsv", layout.iids, pgx_cohort)

    pop_lines = ["#FID\tIID\tSITE\tPOP"]
    for s in layout.sites:
        for i in range(s.start, s.stop):
            pop = coalescent.POPULATIONS[int(layout.population[i])]
            pop_lines.append(f"{layout.iids[i]}\t{layout.iids[i]}\t{s.name}\t{pop}")
    (root / "populations.tsv").write_text("\n".join(pop_lines) + "\n", encoding="utf-8")

    causal = selected.take(causal_idx)
    causal_ids = causal.ids
    truth = _truth(
        seed=seed,
        sites=sites,
        samples=samples,
        variants=variants,
        missing_rate=missing_rate,
        genome=genome,
        layout=layout,
        causal_ids=causal_ids,
        causal=causal,
        causal_freq=alt_freq[causal_idx],
        pheno=pheno,
        recur=recur,
        n_missing_calls=int(missing.size),
    )
    if pgx_cohort is not None:
        truth["pgx"] = pgx_alleles.pgx_truth(pgx_cohort)
    (root / "truth.json").write_text(
        json.dumps(truth, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    pgs_file.write_scoring_file(
        root / SCORING_FILE,
        pgs_file.scoring_file_text(
            causal.chrom,
            causal.position,
            causal.ref,
            causal.alt,
            pheno.effects,
            selected.chrom,
            selected.position,
            _rng(seed, _KEY_PGS),
        ),
    )
    return layout, causal_ids


#: Each format's genotype file in a site's data/ folder.
_GENOTYPE_FILES = {
    "bed": "genotypes.bed",
    "pgen": "genotypes.pgen",
    "vcf": "genotypes.vcf.gz",
    "bcf": "genotypes.bcf",
}


def _init_site_dirs(root: Path, layout: CohortLayout, genotype_format: str) -> None:
    from genofed.site_agent.sitedir import init_site

    for s in layout.sites:
        data = root / s.name / "data"
        init_site(
            root / s.name,
            name=s.name,
            genotypes=data / _GENOTYPE_FILES[genotype_format],
            phenotypes=data / "pheno.tsv",
            covariates=data / "covar.tsv",
            demo_policy=True,
        )


def write_cohorts(
    out: Path,
    *,
    sites: int = 3,
    samples: int = 1500,
    variants: int = 2000,
    seed: int = 1,
    missing_rate: float = 0.005,
    chunk: int = DEFAULT_CHUNK,
    pgx: bool = False,
    genotype_format: str = "bed",
) -> SynthSummary:
    """Simulate ``samples`` individuals over ``sites`` sites and write them under ``out``.

    ``pgx`` adds pharmacogenomic variants (at their GRCh38 positions, among
    the others in chromosome order) and the ``CLOP_EVENT`` drug-response
    column (:mod:`genofed.synth.pgx_alleles`); without it the files are as
    they were.

    ``genotype_format`` is ``bed`` (PLINK 1 filesets) or ``pgen`` (the same
    hard calls as PLINK 2 filesets, ``genotypes.pgen/.pvar/.psam`` and
    ``pooled.pgen/.pvar/.psam``: :mod:`genofed.synth.pgen_format`).

    ``out`` must not exist or be an empty directory. ``chunk`` (variants held
    in memory at once) changes speed and memory only, never the files. The
    same arguments give byte-identical files (except each site's ``state/``,
    whose audit key is new at every init); see the module docstring for
    the layout and :mod:`genofed.synth` for the model.
    """
    out = Path(os.path.abspath(out))
    _check_args(out, sites, samples, variants, seed, missing_rate, chunk)
    if genotype_format not in GENOTYPE_FORMATS:
        raise InputError(
            f"genotype format {genotype_format!r} is not one synth writes",
            hint=f"use one of {', '.join(GENOTYPE_FORMATS)}",
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        layout, causal_ids = _build(
            tmp,
            sites=sites,
            samples=samples,
            variants=variants,
            seed=seed,
            missing_rate=missing_rate,
            chunk=chunk,
            pgx=pgx,
        )
        if genotype_format == "pgen":
            from genofed.synth.pgen_format import bed_to_pgen

            beds = [tmp / s.name / "data" / "genotypes.bed" for s in layout.sites]
            for bed in [*beds, tmp / "pooled" / "pooled.bed"]:
                bed_to_pgen(bed, bed.with_suffix(""), remove=True)
        if genotype_format in ("vcf", "bcf"):
            from genofed.synth.vcf_format import bed_to_vcf

            for s in layout.sites:
                bed = tmp / s.name / "data" / "genotypes.bed"
                bed_to_vcf(bed, bed.with_suffix(""), genotype_format, remove=True)
            pooled = tmp / "pooled" / "pooled.bed"
            bed_to_vcf(pooled, pooled.with_suffix(""), genotype_format)
        # site.toml stores data paths relative to the site directory, so the
        # site directories may be initialised here and then moved.
        _init_site_dirs(tmp, layout, genotype_format)
        tmp.chmod(0o755)  # mkdtemp made it 0700
        if out.exists():
            out.rmdir()  # empty, checked above
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return SynthSummary(
        out=out,
        sites=tuple(out / s.name for s in layout.sites),
        pooled=out / "pooled",
        n_samples=samples,
        n_variants=variants,
        seed=seed,
        causal_variants=tuple(causal_ids),
    )
