"""The site's answers to ``glm_stats`` and ``glm_logistic`` requests.

Reads the phenotype and covariate tables named in ``site.toml``, keeps the
genotyped samples that have the phenotype and every covariate (plink2 drops
the others from the regression altogether), streams the requested variants
and returns the sums defined in :mod:`genofed.common.wire.glm`.

With a ``covariates_used`` input (plink2's take-back of samples that miss
only covariates it leaves out as constant: :mod:`genofed.common.wire.glm`),
the samples are chosen with only the used covariates required, the unused
ones' columns are zero, and ``glm_covariates`` sends the sums the
coordinator needs to decide which left-out covariates plink2 adds back.
``glm_separation`` sends the sums that say whether a two-valued covariate
separates cases from controls (plink2's check before any variant).

Logistic regression's Newton rounds read the analysis's genotypes from a
cache that the ``glm_stats`` round writes in the site's ``state/`` directory
(what it holds and for how long: :mod:`genofed.site_agent.requests.glm_cache`).

Binary phenotypes are plink case/control columns: 1 control, 2 case (a
column holding only 0 and 1 is read as 0 control, 1 case, as plink2 reads it
with ``--1``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from genofed.common.analyses import GLM_KIND
from genofed.common.errors import InputError, PolicyRefusal
from genofed.common.reasons import BAD_REQUEST, DISCLOSURE_RISK
from genofed.common.receipts import GLM_IMPUTED_FACT, GUARD_LEFT_OUT_FACT
from genofed.common.study import AnalysisSpec
from genofed.common.wire.glm import (
    BINARY,
    GLM_COVARIATES_KIND,
    GLM_REQUEST_KINDS,
    GLM_SEPARATION_KIND,
    GLM_STATS_KIND,
    PHENOTYPE_TYPE_FACT,
    QUANTITATIVE,
    count_dtype,
    covariates_used,
    miss_center,
    separation_inputs,
)
from genofed.common.wire.records import NamedArrays
from genofed.site_agent.context import Answer, RequestContext, Server
from genofed.site_agent.io.genotypes import GenotypeFile
from genofed.site_agent.io.pheno import PhenoTable, match_samples, read_pheno_table
from genofed.site_agent.privacy.guard import (
    CLINICAL,
    GENOTYPES,
    ReleaseGuard,
    disclosure_message,
)
from genofed.site_agent.privacy.membership_release import (
    check_variants,
    record_withheld,
    refuse_withheld,
)
from genofed.site_agent.privacy.policy import SitePolicy
from genofed.site_agent.requests.glm_cache import (
    CacheWriter,
    GenotypeCache,
    cache_dir,
    chunk_rows,
    forget_others,
)
from genofed.site_agent.requests.pca_state import glm_pc_scores
from genofed.site_agent.sitedir import SITE_CONFIG, SiteConfig
from genofed.site_agent.stats.genotype_counts import MISSING_DOSAGE, flip_counts, genotype_counts
from genofed.site_agent.stats.glm import (
    LinearKernel,
    LogisticKernel,
    allele_counts,
    concat_logistic,
    gram_upper,
    logistic_from_codes,
    oriented_codes,
    oriented_codes_at,
)


@dataclass(frozen=True)
class GlmSamples:
    """The analysis samples of one ``glm`` analysis at this site."""

    index: np.ndarray  # into the .fam order, sorted
    y: np.ndarray
    covariates: np.ndarray  # (n, k); zero in the columns of unused covariates
    binary: bool
    #: (n, k) the covariates as read (NaN where missing), when chosen with ``used``
    raw: np.ndarray | None = None


def _table(path: Any, key: str, config: SiteConfig) -> PhenoTable:
    if path is None:
        raise InputError(
            f"this site has no {key} file, which the study's glm analysis needs",
            path=config.directory / SITE_CONFIG,
            hint=f'add {key} = "FILE" under [data]',
        )
    return read_pheno_table(path)


def _binary_coding(values: np.ndarray) -> np.ndarray | None:
    """0/1 case indicator for a plink case/control column, None if not binary."""
    present = values[~np.isnan(values)]
    levels = set(np.unique(present).tolist())
    if not levels:
        return None
    if levels <= {1.0, 2.0}:
        return values - 1.0
    if levels <= {0.0, 1.0}:
        return values.copy()
    return None


def _check_not_all_missing(name: str, values: np.ndarray, path: Path, what: str) -> None:
    """An InputError naming the table and the column when no genotyped sample has a value."""
    if len(values) and np.isnan(values).all():
        raise InputError(
            f"{what} column {name!r} is missing (-9, NA, nan or .) for every genotyped sample",
            path=path,
            hint=f"fill in {name!r} for this site's samples, or ask the analyst for a study "
            f"that does not use it",
        )


def glm_samples(
    config: SiteConfig,
    bed: GenotypeFile,
    spec: AnalysisSpec,
    pc_scores: Mapping[str, np.ndarray] | None = None,
    used: np.ndarray | None = None,
) -> GlmSamples:
    """Select and code the samples of ``spec`` (phenotype, covariates, model).

    ``pc_scores`` maps covariates served by the study's pca analysis (``PC1``
    ...) to this site's locally held scores in ``.fam`` order. With ``used``
    (a bool per covariate) only the used covariates must be present, and the
    others' columns are zero (:mod:`genofed.common.wire.glm`, take-back).
    """
    pcs = pc_scores or {}
    phenotype: str = spec.params["phenotype"]
    covariate_names: tuple[str, ...] = tuple(spec.params["covariates"])
    model: str = spec.params["model"]
    pheno = _table(config.phenotypes, "phenotypes", config)
    tables = [pheno]
    covar = None
    if any(c not in pcs for c in covariate_names):
        covar = _table(config.covariates, "covariates", config)
        tables.append(covar)
    match = match_samples(bed.samples, *tables)
    raw_y = pheno.column(phenotype)[match.table_idx[0]]
    columns = [
        pcs[c][match.genotype_idx] if c in pcs else covar.column(c)[match.table_idx[1]]  # type: ignore[union-attr]
        for c in covariate_names
    ]
    covariates = np.column_stack(columns) if columns else np.zeros((len(raw_y), 0))
    if match.n_matched:
        _check_not_all_missing(phenotype, raw_y, pheno.path, "phenotype")
        for j, name in enumerate(covariate_names):
            if name not in pcs and covar is not None:
                _check_not_all_missing(name, covariates[:, j], covar.path, "covariate")
    required = covariates if used is None else covariates[:, np.asarray(used, dtype=np.bool_)]
    keep = ~np.isnan(raw_y) & ~np.isnan(required).any(axis=1)
    coded = _binary_coding(raw_y)
    if model == "logistic" and coded is None:
        raise InputError(
            f"phenotype {phenotype!r} is not a case/control column (values other than 1/2 or 0/1)",
            path=pheno.path,
            hint='code cases 2 and controls 1, or use model = "linear"',
        )
    binary = coded is not None and model != "linear"
    y = coded if binary and coded is not None else raw_y
    kept = covariates[keep]
    raw = None
    if used is not None:
        raw = kept
        kept = np.where(np.asarray(used, dtype=np.bool_)[None, :], kept, 0.0)
    return GlmSamples(
        index=match.genotype_idx[keep],
        y=np.ascontiguousarray(y[keep]),
        covariates=np.ascontiguousarray(kept),
        binary=binary,
        raw=raw,
    )


def aligned_samples(
    samples: GlmSamples, guard: ReleaseGuard, columns: tuple[str, ...], facts: Any
) -> GlmSamples:
    """``samples`` as the guard serves them: the largest earlier release's set inside them.

    When that set is smaller, the fact :data:`GUARD_LEFT_OUT_FACT` says by how
    many (:meth:`genofed.site_agent.privacy.guard.ReleaseGuard.align`).
    """
    aligned = guard.align(columns, samples.index)
    if len(aligned) == len(samples.index):
        return samples
    facts[GUARD_LEFT_OUT_FACT] = str(len(samples.index) - len(aligned))
    keep = np.isin(samples.index, aligned)
    return GlmSamples(
        samples.index[keep],
        samples.y[keep],
        samples.covariates[keep],
        samples.binary,
        None if samples.raw is None else samples.raw[keep],
    )


def covariates_reply(samples: GlmSamples, used: np.ndarray) -> NamedArrays:
    """``glm_covariates`` arrays: S1's size, and each unused covariate's sums where complete."""
    if samples.raw is None:
        raise ValueError("glm_covariates needs the samples chosen with a covariates_used mask")
    raw = samples.raw
    complete = ~used & ~np.isnan(raw).any(axis=0)
    values = np.where(complete[None, :], raw, 0.0)
    return {
        "n": np.array([len(samples.index)], dtype=np.int64),
        "complete": complete.astype(np.int64),
        "sums": values.sum(axis=0),
        "squares": (values * values).sum(axis=0),
    }


def separation_reply(samples: GlmSamples, inputs: NamedArrays) -> NamedArrays:
    """``glm_separation`` arrays: each covariate's standardized third and fourth power sums."""
    k = samples.covariates.shape[1]
    try:
        center, scale = separation_inputs(inputs, k)
    except ValueError as exc:
        raise PolicyRefusal(BAD_REQUEST, f"the {GLM_SEPARATION_KIND} request's {exc}") from exc
    u = (samples.covariates - center[None, :]) / scale[None, :]
    u2 = u * u
    return {"moments": np.column_stack([(u2 * u).sum(axis=0), (u2 * u2).sum(axis=0)])}


#: Request kinds that sum covariates and the phenotype only, over no variant.
_CLINICAL_ONLY: Final = frozenset({GLM_COVARIATES_KIND, GLM_SEPARATION_KIND})


def serve_glm(ctx: RequestContext) -> Answer:
    """The sums of a ``glm_stats``, ``glm_logistic``, ``glm_covariates`` or ``glm_separation``."""
    spec, bed = ctx.analysis, ctx.bed
    if ctx.request.kind in _CLINICAL_ONLY:
        index, flip = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.bool_)
    else:
        index, flip = ctx.variant_plan
    pcs = glm_pc_scores(ctx.directory, ctx.study, spec, bed.samples)
    facts: dict[str, str] = {}
    arrays = answer_glm(
        ctx.site,
        bed,
        spec,
        ctx.request.kind,
        ctx.inputs,
        index,
        flip,
        facts,
        pc_scores=pcs,
        study_sha256=ctx.study.sha256,
        min_cell=ctx.policy.min_cell_count,
        guard=ctx.guard,
        founder=None if ctx.study.nonfounders or ctx.mode != "plain" else bed.samples.founder,
        policy=ctx.policy,
    )
    return Answer(arrays, facts)


SERVER = Server(
    analyses=frozenset({GLM_KIND}),
    request_kinds=GLM_REQUEST_KINDS,
    modes=frozenset({"plain"}),
    unsupported="glm analyses release exact sums only; this study asks for noisy releases",
    serve=serve_glm,
)


def answer_glm(
    config: SiteConfig,
    bed: GenotypeFile,
    spec: AnalysisSpec,
    kind: str,
    inputs: NamedArrays,
    index: np.ndarray,
    flip: np.ndarray,
    facts: Any,
    pc_scores: Mapping[str, np.ndarray] | None = None,
    study_sha256: str = "",
    min_cell: int = 0,
    guard: ReleaseGuard | None = None,
    founder: np.ndarray | None = None,
    policy: SitePolicy | None = None,
) -> NamedArrays:
    """Compute the arrays for a ``glm_stats`` or ``glm_logistic`` request.

    ``founder`` (per sample; None: all founders or ``nonfounders = true``):
    plink2 chooses A1 from the founders' allele frequencies, so a site whose
    sample file lists parents sends its founders' allele counts
    (``founder_counts``) where the guard passes that set.

    With ``study_sha256``, a binary phenotype's genotypes are cached for the
    later Newton rounds (:mod:`genofed.site_agent.requests.glm_cache`); without it
    every round decodes the ``.bed``. A variant that fewer than ``min_cell``
    analysis samples (but some) miss is withheld from ``glm_stats``: its
    missing-call sums would describe those few people. So is a variant with a
    genotype class of 1 to ``min_cell - 1`` analysis samples (a single carrier's
    sums are her phenotype and covariates), and, with an enabled ``guard``, a
    variant whose missing-call set or called set the guard would not pass.
    Under a ``policy`` with ``max_membership_power``, ``glm_stats`` also
    withholds the variants the membership check chooses over the analysis
    samples' genotype counts (:mod:`genofed.site_agent.privacy.membership_release`),
    recorded beside the genotype cache so that a Newton round naming one is refused.
    """
    try:
        used = covariates_used(inputs, len(spec.params["covariates"]))
    except ValueError as exc:
        raise PolicyRefusal(BAD_REQUEST, f"the {kind} request's {exc}") from exc
    if kind == GLM_COVARIATES_KIND and used is None:
        raise PolicyRefusal(BAD_REQUEST, f"the {kind} request has no covariates_used mask")
    samples = glm_samples(config, bed, spec, pc_scores, used=used)
    if not len(samples.index):
        raise InputError(
            f"no genotyped sample has phenotype {spec.params['phenotype']!r} and every covariate",
            path=config.directory / SITE_CONFIG,
            hint="check that the phenotype and covariate files use the .fam sample IDs",
        )
    guard = guard if guard is not None else ReleaseGuard.disabled(bed.n_samples)
    samples = aligned_samples(
        samples, guard, (CLINICAL,) if kind in _CLINICAL_ONLY else (CLINICAL, GENOTYPES), facts
    )
    guard.declare(CLINICAL, samples.index)
    if kind not in _CLINICAL_ONLY:  # those rounds sum no genotype
        guard.declare(GENOTYPES, samples.index)
    verdict = guard.check_declared()
    if not verdict.ok:
        raise PolicyRefusal(DISCLOSURE_RISK, disclosure_message(verdict))
    other = np.setdiff1d(np.arange(bed.n_samples), samples.index)
    # allele counts over the genotyped samples outside the analysis (for plink2's A1 choice)
    # go only where the guard passes them: with the analysis set, they span every genotyped
    # sample, which may pin down the few an earlier release left out; then A1_FREQ counts
    # this site's analysis samples only, as for a site with fewer than min_cell outside
    send_other = (
        kind == GLM_STATS_KIND
        and other.size >= min_cell
        and guard.declare_if_safe(GENOTYPES, other)
    )
    if kind == GLM_STATS_KIND and other.size >= min_cell and not send_other:
        facts["glm_other_counts_withheld"] = str(other.size)
    founders: np.ndarray | None = None
    if kind == GLM_STATS_KIND and founder is not None and not founder.all():
        rows = np.flatnonzero(founder)
        # over every genotyped founder: with the analysis set and the rest, as safe as both
        outside = other.size == 0 or send_other  # the founders outside the analysis count too
        if outside and rows.size >= min_cell and guard.declare_if_safe(GENOTYPES, rows):
            founders = np.asarray(founder, dtype=np.bool_)
        else:  # then A1 is chosen from every genotyped sample's counts, not plink2's
            facts["glm_founder_counts_withheld"] = "true"
    facts[PHENOTYPE_TYPE_FACT] = BINARY if samples.binary else QUANTITATIVE
    facts["glm_samples"] = str(len(samples.index))
    if kind == GLM_COVARIATES_KIND:
        assert used is not None
        return covariates_reply(samples, used)
    if kind == GLM_SEPARATION_KIND:
        if not samples.binary:
            raise PolicyRefusal(BAD_REQUEST, "the separation check needs a binary phenotype")
        return separation_reply(samples, inputs)
    directory = cache_dir(config.directory, study_sha256, spec.id)
    forget_others(config.directory, study_sha256, spec.id)
    if kind == GLM_STATS_KIND:
        writer = (
            CacheWriter.start(directory, index, flip, samples.index)
            if samples.binary and study_sha256
            else None
        )
        mode = spec.params.get("few_missing", "withhold")
        return _stats(
            bed,
            samples,
            index,
            flip,
            writer,
            min_cell,
            guard,
            mode != "withhold",
            facts,
            send_other,
            unreleasable=mode == "impute-unreleasable",
            founders=founders,
            policy=policy,
            site_dir=config.directory,
        )
    beta = inputs.get("beta")
    firth = inputs.get("firth")
    p = samples.covariates.shape[1] + 2
    if (
        beta is None
        or firth is None
        or beta.shape != (len(index), p)
        or beta.dtype != np.float64
        or firth.shape != (len(index),)
        or firth.dtype != np.bool_
        or not np.isfinite(beta).all()
    ):
        raise PolicyRefusal(BAD_REQUEST, "the glm_logistic request's betas are malformed")
    if not samples.binary:
        raise PolicyRefusal(BAD_REQUEST, "logistic statistics need a binary phenotype")
    if policy is not None and policy.max_membership_power is not None:
        refuse_withheld(directory, index)
    if min_cell > 0:
        impute = spec.params.get("few_missing", "withhold") != "withhold"
        imputed = read_unreleasable(directory) if impute else None
        _refuse_isolating(bed, samples, index, min_cell, guard, impute, imputed)
    cache = GenotypeCache.open(directory, samples.index) if study_sha256 else None
    return _logistic(bed, samples, index, flip, beta, firth, cache)


#: Genotypes decoded per chunk of a ``glm_stats`` request (int8, 4 MiB): the
#: chunk's variant count follows from it, so memory does not grow with the samples.
CHUNK_GENOTYPES: Final = 1 << 22


def _chunks(
    bed: GenotypeFile, index: np.ndarray, samples: np.ndarray, other: np.ndarray, rows: int
) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
    """``(start, analysed, others)`` chunks: the analysis samples and the rest, in lockstep."""
    analysed = bed.iter_dosages(index, sample_idx=samples, chunk_variants=rows)
    others = bed.iter_dosages(index, sample_idx=other, chunk_variants=rows) if other.size else None
    try:
        for start, codes in analysed:
            yield start, codes, None if others is None else next(others)[1]
    finally:
        for it in (analysed, others):
            close = getattr(it, "close", None)
            if close is not None:
                close()


def _stats(
    bed: GenotypeFile,
    samples: GlmSamples,
    index: np.ndarray,
    flip: np.ndarray,
    cache: CacheWriter | None,
    min_cell: int = 0,
    guard: ReleaseGuard | None = None,
    impute: bool = False,
    facts: Any = None,
    send_other: bool = True,
    *,
    unreleasable: bool = False,
    founders: np.ndarray | None = None,
    policy: SitePolicy | None = None,
    site_dir: Path | None = None,
) -> NamedArrays:
    """``glm_stats`` arrays; with ``cache``, also writes the analysis's genotype cache.

    With ``founders`` (per genotyped sample), also ``founder_counts``: called
    samples and ALT dosage over the genotyped founders, from the calls as read
    (before any imputation), for plink2's A1 choice.

    Decodes only the analysis samples (and, in a second pass in lockstep, the
    genotyped samples outside the analysis for ``other_counts``), a chunk of
    :data:`CHUNK_GENOTYPES` at a time, and sums with :class:`LinearKernel`.
    With ``unreleasable`` (``few_missing = "impute-unreleasable"``) a variant
    whose missing-call set the guard refuses is imputed (:func:`impute_calls`)
    instead of withheld; which ones is kept beside the genotype cache so that
    the Newton rounds see the same codes.
    """
    n = len(samples.index)
    z = np.column_stack([np.ones(n), samples.covariates, samples.y])
    zz = gram_upper(z)
    kernel = LinearKernel(z, miss_center=miss_center(zz))
    v = len(index)
    other = np.setdiff1d(np.arange(bed.n_samples), samples.index)
    if other.size < min_cell or not send_other:
        # allele counts over fewer than min_cell people would describe them (or the guard
        # did not pass the set): none are sent, and the pooled A1_FREQ counts this site's
        # analysis samples only
        other = other[:0]
    other_counts = np.zeros((v if other.size else 0, 2), dtype=count_dtype(other.size))
    founder_counts = (
        None if founders is None else np.zeros((v, 2), dtype=count_dtype(int(founders.sum())))
    )
    gz = np.zeros((v, z.shape[1]))
    gg = np.zeros(v)
    miss_rows: list[np.ndarray] = []
    miss_zz: list[np.ndarray] = []
    withheld = np.zeros(v, dtype=np.bool_)
    checked = policy is not None and policy.max_membership_power is not None
    counts = np.zeros((v if checked else 0, 4), dtype=np.int64)
    rows = max(1, CHUNK_GENOTYPES // max(n, other.size, 1))
    try:
        imputed = 0
        fixed: list[np.ndarray] = []
        for start, analysed, others in _chunks(bed, index, samples.index, other, rows):
            stop = start + len(analysed)
            if founder_counts is not None and founders is not None:
                counted = allele_counts(analysed[:, founders[samples.index]], flip[start:stop])
                if others is not None:
                    counted += allele_counts(others[:, founders[other]], flip[start:stop])
                founder_counts[start:stop] = counted
            if impute and min_cell > 0:
                analysed, n = impute_few_missing(analysed, min_cell)
                imputed += n
            if unreleasable and min_cell > 0 and guard is not None and guard.enabled:
                refused = _isolating(analysed, others, samples.index, other, min_cell, guard)
                refused &= (analysed == MISSING_DOSAGE).any(axis=1)
                if refused.any():
                    analysed = impute_calls(analysed, refused)
                    fixed.append(index[start:stop][refused])
                    imputed += int(refused.sum())
            if others is not None:
                other_counts[start:stop] = allele_counts(others, flip[start:stop])
            out = kernel.evaluate(analysed, flip[start:stop], calls=cache is not None)
            chunk = out.stats
            small = (out.n_missing > 0) & (out.n_missing < min_cell)
            if min_cell > 0:
                small |= _isolating(analysed, others, samples.index, other, min_cell, guard)
            keep = ~small[chunk.miss_rows]
            gz[start:stop] = chunk.gz
            gg[start:stop] = chunk.gg
            gz[start:stop][small] = 0.0
            gg[start:stop][small] = 0.0
            miss_rows.append(chunk.miss_rows[keep] + start)
            miss_zz.append(chunk.miss_zz[keep])
            withheld[start:stop] = small
            # a withheld row sends no counts at all (a rare allele among the others or the
            # founders would be a small cell of its own)
            if other_counts.size:
                other_counts[start:stop][small] = 0
            if founder_counts is not None:
                founder_counts[start:stop][small] = 0
            if checked:
                counts[start:stop] = flip_counts(genotype_counts(analysed), flip[start:stop])
            if cache is not None:
                codes = oriented_codes_at(analysed, flip[start:stop], out.call_rows, out.call_cols)
                cache.add(codes, out.call_rows, out.call_cols)
        if checked:
            assert policy is not None
            assert site_dir is not None
            decision = check_variants(
                policy, site_dir, bed, samples.index, counts, withheld, index, flip
            )
            extra = decision.withheld
            gz[extra] = 0.0
            gg[extra] = 0.0
            if other_counts.size:
                other_counts[extra] = 0
            if founder_counts is not None:
                founder_counts[extra] = 0
            miss_zz = [z[~extra[r]] for r, z in zip(miss_rows, miss_zz, strict=True)]
            miss_rows = [r[~extra[r]] for r in miss_rows]
            withheld |= extra
            if facts is not None:
                facts.update(decision.facts)
        if cache is not None:
            cache.close()
            if unreleasable and cache.final.is_dir():  # no cache: the rounds refuse those
                write_unreleasable(cache.final, np.concatenate([index[:0], *fixed]))
            if checked and cache.final.is_dir():
                record_withheld(cache.final, index[withheld])
        if impute and facts is not None:
            facts[GLM_IMPUTED_FACT] = str(imputed)
    except BaseException:
        if cache is not None:
            cache.abort()
        raise
    t = z.shape[1] * (z.shape[1] + 1) // 2
    has_missing = np.zeros(v, dtype=np.bool_)
    for part in miss_rows:
        has_missing[part] = True
    return {
        "gz": gz,
        "gg": gg,
        "zz": zz,
        "miss_rows": np.packbits(has_missing),
        "miss_zz": np.concatenate(miss_zz) if miss_zz else np.zeros((0, t)),
        "other_counts": other_counts,
        "withheld": np.packbits(withheld),
        **({"founder_counts": founder_counts} if founder_counts is not None else {}),
    }


def _isolating(
    analysed: np.ndarray,
    others: np.ndarray | None,
    rows: np.ndarray,
    other_rows: np.ndarray,
    min_cell: int,
    guard: ReleaseGuard | None,
) -> np.ndarray:
    """Per variant of a chunk: its sums would describe 1 to ``min_cell - 1`` people.

    * a genotype class (0, 1, 2 copies) held by 1 to ``min_cell - 1`` analysis
      samples, or by as few of the samples outside the analysis: the class's
      sums are those people's values;
    * with an enabled guard: the called analysis samples would leave a group
      that earlier releases tell apart with fewer than ``min_cell`` people
      (:meth:`ReleaseGuard.unsafe_variants`), or the missing-call set does not
      pass the guard against everything released (each new missing-call set
      is offered in turn; a variant whose set is refused is withheld and its
      set is not released).
    """
    counts = genotype_counts(analysed)[:, :3]
    out = ((counts > 0) & (counts < min_cell)).any(axis=1)
    if others is not None and len(other_rows):
        counts = genotype_counts(others)[:, :3]
        out |= ((counts > 0) & (counts < min_cell)).any(axis=1)
    if guard is None or not guard.enabled:
        return out
    missing = analysed == MISSING_DOSAGE
    out |= guard.unsafe_variants(GENOTYPES, rows, missing.T)
    for j in np.flatnonzero(missing.any(axis=1) & ~out):
        members = rows[missing[j]]
        if len(members) >= min_cell and not guard.offer(CLINICAL, members):
            out[j] = True
    return out


def impute_calls(codes: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``codes`` with every missing call of the ``rows`` (bool per variant) imputed.

    Each becomes the site's rounded mean genotype over that variant's called
    samples, as :func:`impute_few_missing` does for variants a few miss.
    """
    out = codes.copy()
    for row in np.flatnonzero(rows):
        missing = out[row] == MISSING_DOSAGE
        called = out[row][~missing].astype(np.int64)
        out[row, missing] = np.int8(np.rint(called.mean())) if called.size else np.int8(0)
    return out


#: Beside a study's genotype cache: the variants (``.bim`` indexes) whose missing
#: calls ``glm_stats`` imputed because the guard refused their missing-call sets.
UNRELEASABLE_FILE: Final = "unreleasable-imputed.npy"


def write_unreleasable(directory: Path, variants: np.ndarray) -> None:
    """Record (atomically) which variants ``glm_stats`` imputed for the guard."""
    tmp = directory / (UNRELEASABLE_FILE + ".tmp")
    with tmp.open("wb") as fh:
        np.save(fh, np.asarray(variants, dtype=np.int64))
    tmp.replace(directory / UNRELEASABLE_FILE)


def read_unreleasable(directory: Path) -> np.ndarray | None:
    """The variants :func:`write_unreleasable` recorded, None when there is no record."""
    path = directory / UNRELEASABLE_FILE
    if not path.exists():
        return None
    return np.asarray(np.load(path), dtype=np.int64)


def impute_few_missing(codes: np.ndarray, min_cell: int) -> tuple[np.ndarray, int]:
    """Impute the calls of variants that 1 to ``min_cell - 1`` samples miss; how many variants.

    Each such call becomes the site's rounded mean genotype over its called
    samples (``few_missing = "impute"``): the variant's sums are then over
    every analysis sample, with no missing-call sums that would describe the
    few who miss it. Results differ from plink2, which drops those samples
    for that variant.
    """
    missing = codes == MISSING_DOSAGE
    n_missing = missing.sum(axis=1)
    few = np.flatnonzero((n_missing > 0) & (n_missing < min_cell))
    if not few.size:
        return codes, 0
    out = codes.copy()
    called = (~missing[few]).sum(axis=1)
    total = np.where(missing[few], 0, codes[few].astype(np.int64)).sum(axis=1)
    fill = np.rint(total / np.maximum(called, 1)).astype(np.int8)
    for row, value in zip(few, fill, strict=True):
        out[row, missing[row]] = value
    return out, len(few)


def _refuse_isolating(
    bed: GenotypeFile,
    samples: GlmSamples,
    index: np.ndarray,
    min_cell: int,
    guard: ReleaseGuard,
    impute: bool = False,
    imputed: np.ndarray | None = None,
) -> None:
    """Refuse a Newton round over a variant that ``glm_stats`` would withhold.

    The coordinator asks for Newton rounds only on variants every site
    released; a request naming another (a hostile coordinator, or data that
    changed) would sum over the sets the first round kept back.
    """
    other = np.zeros(0, dtype=np.int64)
    for start, analysed in bed.iter_dosages(index, sample_idx=samples.index):
        if impute:
            analysed, _ = impute_few_missing(analysed, min_cell)
        if imputed is not None and imputed.size:
            rows = np.isin(index[start : start + len(analysed)], imputed)
            if rows.any():
                analysed = impute_calls(analysed, rows)
        if _isolating(analysed, None, samples.index, other, min_cell, guard).any():
            raise PolicyRefusal(
                DISCLOSURE_RISK,
                "the glm_logistic request includes a variant this site withheld from glm_stats",
            )


def _logistic(
    bed: GenotypeFile,
    samples: GlmSamples,
    index: np.ndarray,
    flip: np.ndarray,
    beta: np.ndarray,
    firth: np.ndarray,
    cache: GenotypeCache | None,
) -> NamedArrays:
    """``glm_logistic`` arrays, reading the cached genotypes when the cache covers the request."""
    kernel = LogisticKernel(
        samples.covariates, samples.y, firth=bool(firth.any()), newton_float32=True
    )
    rows = None if cache is None else cache.rows_for(index, flip)
    # memory set by a genotype budget, not by the samples; whole kernel blocks per chunk, so
    # that which rows share a block (and its precision) does not depend on the chunk size
    step = kernel.block_rows
    chunk = max(step, chunk_rows(len(samples.index)) // step * step)
    if cache is not None and rows is not None:
        chunks = cache.chunks(rows, chunk)
    else:
        chunks = (
            (start, *oriented_codes(dosages, flip[start : start + len(dosages)]))
            for start, dosages in bed.iter_dosages(
                index, sample_idx=samples.index, chunk_variants=chunk
            )
        )
    parts = []
    for start, codes, miss_rows, miss_cols in chunks:
        stop = start + len(codes)
        parts.append(
            logistic_from_codes(
                kernel,
                codes,
                miss_rows,
                miss_cols,
                beta[start:stop],
                firth[start:stop],
                firth[start:stop],
            )
        )
    out = concat_logistic(parts, kernel.p)
    return {"grad": out.grad, "hess": out.hess, "loglik": out.loglik, "third": out.third}


__all__ = ["SERVER", "GlmSamples", "answer_glm", "covariates_reply", "glm_samples", "serve_glm"]
