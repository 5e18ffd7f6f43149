"""The study's samples at this site: its ``[cohort]`` filter, then its ``[sample_qc]``.

The release path (:mod:`genofed.site_agent.release`) calls :func:`select`
before any statistic is computed and hands every request module a
:class:`CohortBed`: the site's fileset as seen through the kept samples
(``.fam`` rows in file order). Modules read samples, phenotype rows and
genotypes through it as they read the whole fileset, so every analysis of
the study, and every sample set the disclosure guard audits
(:mod:`genofed.site_agent.privacy.guard`), lies inside the cohort; nothing
computes over a sample outside it.

Order, as plink2 applies its filters: the cohort's conditions
(``--keep-if``), then ``--mind`` over every variant of the site's file,
then heterozygosity outliers among the samples ``--mind`` kept (plink2
``--het`` F on the autosomes with the kept samples' allele frequencies;
outliers: ``|F - mean| > het_sd * SD`` over the site's kept samples, a
site-local rule; allele frequencies from the founders, as plink2's, unless
``nonfounders = true``). A sex check (``--check-sex``) is not available: it needs
chrX heterozygosity, which GenoFed does not read.

What leaves (reply facts, :func:`facts`): how many samples each QC rule
removed, and the cohort's size at the site; a count from 1 to
``min_cell_count - 1`` is withheld (``withheld``), and then the cohort size
is withheld too, so that it cannot be subtracted back. The kept rows are
cached under ``state/sample_qc/`` (one pass over the genotypes per study and
data, not per request).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genofed.common.chromosomes import bare_chrom
from genofed.common.cohort import (
    COHORT_SAMPLES_FACT,
    FAM_SEX,
    SAMPLE_QC_FACT,
    WITHHELD,
    CohortSpec,
    Condition,
    SampleQCSpec,
)
from genofed.common.errors import PolicyRefusal
from genofed.common.reasons import COHORT_COLUMN_UNKNOWN
from genofed.common.study import Study
from genofed.site_agent.io.genotypes import GenotypeFile, genotype_files
from genofed.site_agent.io.pheno import PhenoTable, match_samples, read_pheno_table
from genofed.site_agent.io.plink import Samples, Variants, checked_sample_idx
from genofed.site_agent.privacy.policy import SitePolicy, cohort_columns
from genofed.site_agent.sitedir import SiteConfig
from genofed.site_agent.stats.sample_qc import (
    het_outliers,
    het_sums,
    mind_fails,
    missing_sums,
)

log = logging.getLogger("genofed.site")

CACHE_DIR = "sample_qc"
_AUTOSOMES = frozenset(str(i) for i in range(1, 23))


@dataclass(frozen=True)
class CohortSelection:
    """The ``.fam`` rows the study's analyses use, and how many each step removed."""

    rows: np.ndarray
    n_genotyped: int
    #: samples the ``[cohort]`` conditions removed (0 without [cohort])
    filtered_out: int = 0
    #: samples each ``[sample_qc]`` rule removed, in the order the rules apply
    removed: dict[str, int] = field(default_factory=dict)

    @property
    def n_kept(self) -> int:
        return len(self.rows)


class CohortBed:
    """A site's genotypes (any :class:`GenotypeFile`) showing only the cohort's samples.

    ``samples``, ``n_samples`` and the ``sample_idx`` of :meth:`iter_dosages`
    are those of the cohort (in the genotype file's order); genotypes are
    decoded from the whole file. The view does not own the file: closing it
    only stops it.
    """

    def __init__(self, base: GenotypeFile, rows: np.ndarray) -> None:
        self.base = base
        self.rows = np.ascontiguousarray(rows, dtype=np.int64)
        self.path = base.path
        self.n_variants = base.n_variants
        self.has_dosages = bool(getattr(base, "has_dosages", False))
        self.samples = base.samples.take(self.rows)
        self.n_samples = len(self.rows)
        self._closed = False

    @property
    def variants(self) -> Variants:
        return self.base.variants

    def iter_dosages(
        self,
        variant_idx: np.ndarray | None = None,
        *,
        sample_idx: np.ndarray | None = None,
        chunk_variants: int | None = None,
    ) -> Iterator[tuple[int, np.ndarray]]:
        if self._closed:
            raise ValueError(f"{self!r} is closed")
        local = (
            None if sample_idx is None else checked_sample_idx(sample_idx, self.n_samples, np.int64)
        )
        rows = self.rows if local is None else self.rows[local]
        kwargs = {} if chunk_variants is None else {"chunk_variants": chunk_variants}
        return self.base.iter_dosages(variant_idx, sample_idx=rows, **kwargs)

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> CohortBed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CohortBed({self.base!r}, n_samples={self.n_samples})"


def select(
    config: SiteConfig, bed: GenotypeFile, study: Study, policy: SitePolicy
) -> CohortSelection | None:
    """The study's samples at this site; None when it has neither [cohort] nor [sample_qc]."""
    if study.cohort is None and study.sample_qc is None:
        return None
    key = _cache_key(config, study)
    cached = _load(config, key, bed.n_samples)
    if cached is not None:
        return cached
    rows = np.arange(bed.n_samples, dtype=np.int64)
    if study.cohort is not None:
        rows = np.flatnonzero(_meets(config, bed, study.cohort, policy)).astype(np.int64)
    filtered_out = bed.n_samples - len(rows)
    removed: dict[str, int] = {}
    if study.sample_qc is not None and len(rows):
        rows, removed = _sample_qc(bed, rows, study.sample_qc, study.nonfounders)
    selection = CohortSelection(rows, bed.n_samples, filtered_out, removed)
    _store(config, key, selection)
    return selection


def facts(selection: CohortSelection, min_cell: int) -> dict[str, str]:
    """The reply facts: removed per QC rule, and the cohort's size, small counts withheld."""
    out: dict[str, str] = {}
    withheld = False
    for rule, n in selection.removed.items():
        small = 0 < n < min_cell
        withheld |= small
        out[SAMPLE_QC_FACT.format(rule=rule)] = WITHHELD if small else str(n)
    out[COHORT_SAMPLES_FACT] = WITHHELD if withheld else str(selection.n_kept)
    return out


# -- the cohort's conditions ---------------------------------------------------


def _meets(
    config: SiteConfig, bed: GenotypeFile, cohort: CohortSpec, policy: SitePolicy
) -> np.ndarray:
    """Per ``.fam`` row: every condition holds (a missing value never does)."""
    tables = [read_pheno_table(p) for p in (config.phenotypes, config.covariates) if p is not None]
    keep = np.ones(bed.n_samples, dtype=np.bool_)
    for condition in cohort.conditions:
        keep &= _holds(condition, _column(condition.column, tables, bed.samples, policy))
    for name in cohort.require:
        keep &= ~np.isnan(_column(name, tables, bed.samples, policy))
    return keep


def _column(
    name: str, tables: list[PhenoTable], samples: Samples, policy: SitePolicy
) -> np.ndarray:
    """The named column's value per ``.fam`` row (NaN where missing or absent)."""
    for table in tables:
        if name in table.columns:
            match = match_samples(samples, table)
            values = np.full(len(samples), np.nan)
            values[match.genotype_idx] = table.columns[name][match.table_idx[0]]
            return values
    if name == FAM_SEX:
        sex = samples.sex.astype(np.float64)
        return np.where(sex > 0, sex, np.nan)
    allowed = cohort_columns(policy)
    if allowed is None:
        listing = (
            "this site's policy lists no cohort_columns, so its column names are not sent; "
            "ask the site which columns it holds"
        )
    else:
        present = sorted(c for c in allowed if c == FAM_SEX or any(c in t.columns for t in tables))
        listing = f"the columns a cohort may use here: {', '.join(present) or '(none)'}"
    raise PolicyRefusal(
        COHORT_COLUMN_UNKNOWN,
        f"the study's [cohort] names column {name!r}, which this site's phenotype and "
        f"covariate tables do not hold; {listing}",
    )


def _holds(condition: Condition, values: np.ndarray) -> np.ndarray:
    present = ~np.isnan(values)
    v = np.where(present, values, 0.0)
    op, given = condition.op, condition.values
    if op == "in":
        hit = np.isin(v, given)
    elif op == "not in":
        hit = ~np.isin(v, given)
    else:
        x = given[0]
        hit = {
            "==": v == x,
            "!=": v != x,
            "<": v < x,
            "<=": v <= x,
            ">": v > x,
            ">=": v >= x,
        }[op]
    holds: np.ndarray = present & hit
    return holds


# -- sample QC -----------------------------------------------------------------


def _sample_qc(
    bed: GenotypeFile, rows: np.ndarray, spec: SampleQCSpec, nonfounders: bool = False
) -> tuple[np.ndarray, dict[str, int]]:
    removed: dict[str, int] = {}
    if spec.mind is not None:
        sums = missing_sums(len(rows), (d for _, d in bed.iter_dosages(sample_idx=rows)))
        fails = mind_fails(sums, spec.mind)
        removed["mind"] = int(fails.sum())
        rows = rows[~fails]
    if spec.het_sd is not None and len(rows):
        chrom = np.array([bare_chrom(str(c)) for c in bed.variants.chrom])
        autosomal = np.flatnonzero(np.isin(chrom, list(_AUTOSOMES)))
        if len(autosomal):
            chunks = (d for _, d in bed.iter_dosages(autosomal, sample_idx=rows))
            # plink2 --het: the founders' allele frequencies (every sample's F)
            founders = None if nonfounders else bed.samples.founders()[rows]
            outliers = het_outliers(het_sums(len(rows), chunks, founders).f(), spec.het_sd)
        else:
            outliers = np.zeros(len(rows), dtype=np.bool_)
        removed["het"] = int(outliers.sum())
        rows = rows[~outliers]
    return rows, removed


# -- the cache -------------------------------------------------------------------


def _cache_key(config: SiteConfig, study: Study) -> str:
    """What the selection depends on: the study's tables and the files' sizes and times."""
    files: list[list[object] | None] = []
    genotypes = list(genotype_files(config.genotypes).values())
    for path in (*genotypes, config.phenotypes, config.covariates):
        if path is None:
            files.append(None)
            continue
        stat = Path(path).stat()
        files.append([str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns])
    doc = {
        "cohort": None if study.cohort is None else study.cohort.to_json(),
        "sample_qc": None if study.sample_qc is None else study.sample_qc.to_json(),
        **({"nonfounders": True} if study.nonfounders else {}),
        "files": files,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode("utf-8")).hexdigest()


def _cache_path(config: SiteConfig, key: str) -> Path:
    return config.directory / "state" / CACHE_DIR / f"{key}.npz"


def _load(config: SiteConfig, key: str, n_samples: int) -> CohortSelection | None:
    path = _cache_path(config, key)
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            rows = z["rows"].astype(np.int64)
            removed = {r: int(n) for r, n in zip(z["rules"].tolist(), z["removed"], strict=True)}
            filtered_out = int(z["filtered_out"])
            genotyped = int(z["n_genotyped"])
    except (OSError, ValueError, KeyError) as exc:
        log.warning("ignoring the unreadable sample QC cache %s: %s", path, exc)
        return None
    if genotyped != n_samples or (len(rows) and (rows.min() < 0 or rows.max() >= n_samples)):
        return None
    return CohortSelection(rows, genotyped, filtered_out, removed)


def _store(config: SiteConfig, key: str, selection: CohortSelection) -> None:
    path = _cache_path(config, key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            rows=selection.rows,
            rules=np.array(list(selection.removed), dtype=str),
            removed=np.array(list(selection.removed.values()), dtype=np.int64),
            filtered_out=np.array(selection.filtered_out),
            n_genotyped=np.array(selection.n_genotyped),
        )
        tmp.replace(path)
    except OSError as exc:  # the selection still serves this request
        log.warning("cannot cache the sample QC in %s: %s", path, exc)


__all__ = [
    "CohortBed",
    "CohortSelection",
    "facts",
    "select",
]
