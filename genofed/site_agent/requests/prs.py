"""The site's answers to ``prs_*`` requests (polygenic risk scores).

The request carries the scoring file's bytes; the site parses it
(:mod:`genofed.common.pgs_scoring`), matches its rows to the local variants
and scores the analysis samples (:mod:`genofed.site_agent.stats.prs`). The
analysis samples are those of a ``glm`` with the same phenotype and
covariates (genotyped, phenotype and every covariate present). What each
round releases is listed in :mod:`genofed.common.wire.prs`; histogram,
threshold and calibration cells are subject to the policy's
``min_cell_count`` (small cells withheld and marked). Bin edges, thresholds
and groups come from the signed study, never from the request.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
from scipy.special import expit

from genofed.common.analyses import PRS_KIND
from genofed.common.errors import InputError, PolicyRefusal
from genofed.common.pgs_scoring import ScoringFile, parse_scoring_file
from genofed.common.reasons import BAD_REQUEST, DISCLOSURE_RISK, UNKNOWN_REQUEST
from genofed.common.study import AnalysisSpec
from genofed.common.wire.glm import BINARY, QUANTITATIVE
from genofed.common.wire.prs import (
    MATCHED_CODES,
    MATCHING_FACT,
    PHENOTYPE_TYPE_FACT,
    PRS_CALIBRATION_KIND,
    PRS_LOGISTIC_KIND,
    PRS_MATCH_KIND,
    PRS_MOMENTS_KIND,
    PRS_REQUEST_KINDS,
    PRS_STATS_KIND,
    group_edges,
    histogram_edges,
    match_counts,
    roc_thresholds,
)
from genofed.common.wire.records import NamedArrays
from genofed.site_agent.context import Answer, RequestContext, Server
from genofed.site_agent.io.genotypes import GenotypeFile
from genofed.site_agent.privacy.guard import CLINICAL, GENOTYPES
from genofed.site_agent.privacy.membership_release import (
    History,
    check_release,
    people_of,
    record_withheld,
    refuse_withheld,
)
from genofed.site_agent.privacy.policy import SitePolicy
from genofed.site_agent.privacy.suppression import small_cell_rows
from genofed.site_agent.requests.glm import GlmSamples, aligned_samples, glm_samples
from genofed.site_agent.sitedir import SITE_CONFIG, SiteConfig
from genofed.site_agent.stats.glm import gram_upper, linear_chunk, logistic_chunk
from genofed.site_agent.stats.prs import (
    RowMatch,
    calibration_counts,
    collapse_thresholds,
    complementary_suppression,
    effect_dosage_counts,
    histogram_counts,
    match_rows,
    score_chunk,
)

__all__ = ["SERVER", "serve_prs"]


def _bad(message: str) -> PolicyRefusal:
    return PolicyRefusal(BAD_REQUEST, message)


def serve_prs(ctx: RequestContext) -> Answer:
    """The match, moments, sums or counts of a prs request."""
    spec, bed, inputs, request, policy = ctx.analysis, ctx.bed, ctx.inputs, ctx.request, ctx.policy
    config = ctx.site
    facts: dict[str, str] = {}
    scoring = _scoring(spec, inputs)
    v = bed.variants
    match = match_rows(
        v.chrom,
        v.pos,
        v.ref,
        v.alt,
        scoring.chrom,
        scoring.pos,
        scoring.effect_allele,
        scoring.other_allele,
        drop_ambiguous=spec.params["ambiguous"] == "drop",
    )
    matched = np.isin(match.status, MATCHED_CODES)
    facts["prs_rows_matched"] = str(int(matched.sum()))
    if request.kind == PRS_MATCH_KIND:
        # with the guard on, the allele counts are over the score's own samples, so that
        # they and the score sums are over one set (all samples and the cohort would
        # differ by the few who lack the phenotype: their genotypes, subtracted)
        rows = _samples(config, bed, spec, ctx, facts).index if ctx.guard.enabled else None
        everyone = np.ones(bed.n_samples, dtype=np.bool_)
        ctx.declare(GENOTYPES, everyone if rows is None else rows)
        counts, isolating = _effect_counts(bed, match, matched, rows, ctx)
        # small allele counts are withheld; missing-call counts are not (as glm_stats'
        # miss_zz releases them), or a few percent missing calls would withhold every row
        cells = np.stack([counts[:, 1], 2 * counts[:, 0] - counts[:, 1]], axis=1)
        withheld = small_cell_rows(cells, policy.min_cell_count) | isolating
        if policy.max_membership_power is not None:
            withheld |= _membership_withheld(ctx, match, matched, counts, withheld, rows, facts)
        # rows per match code: the site's variant table (harmonization) decides them
        facts[MATCHING_FACT] = json.dumps(match_counts(match.status))
        return Answer(
            {
                "row_status": match.status,
                "effect_counts": np.where(withheld[:, None], 0, counts),
                "effect_counts_withheld": withheld,
            },
            facts,
        )
    use = inputs.get("use_rows")
    freq = inputs.get("impute_freq")
    r = len(scoring)
    if (
        use is None
        or freq is None
        or use.shape != (r,)
        or use.dtype != np.bool_
        or freq.shape != (r,)
        or freq.dtype != np.float64
        or not np.all((freq[use] >= 0) & (freq[use] <= 1))
    ):
        raise _bad("the prs request's row plan is malformed")
    if np.any(use & ~matched):
        raise _bad("the prs request uses scoring rows this site did not match")
    _check_weights(scoring.weight[use], policy)
    if policy.max_membership_power is not None:
        refuse_withheld(_state_dir(ctx), np.flatnonzero(use), PRS_MATCH_KIND)
    samples = _samples(config, bed, spec, ctx, facts)
    ctx.declare(CLINICAL, samples.index)
    ctx.declare(GENOTYPES, samples.index)
    if policy.min_cell_count > 0:
        # a row the match round withheld is scored nowhere; a plan that uses one (a
        # hostile coordinator) would put its small cell into the score's sums
        rows = samples.index if ctx.guard.enabled else None
        counts, isolating = _effect_counts(bed, match, use, rows, ctx)
        cells = np.stack([counts[:, 1], 2 * counts[:, 0] - counts[:, 1]], axis=1)
        if (use & (small_cell_rows(cells, policy.min_cell_count) | isolating)).any():
            raise PolicyRefusal(
                DISCLOSURE_RISK,
                "the prs request scores a row this site withheld for small allele counts",
            )
    facts[PHENOTYPE_TYPE_FACT] = BINARY if samples.binary else QUANTITATIVE
    score = _scores(bed, samples, match, scoring, use, freq)
    if request.kind == PRS_MOMENTS_KIND:
        moments = np.array([len(score), score.sum(), np.dot(score, score)], dtype=np.float64)
        return Answer({"moments": moments}, facts)
    std = inputs.get("standardize")
    if std is None or std.shape != (2,) or std.dtype != np.float64 or not std[1] > 0:
        raise _bad("the prs request's standardization is malformed")
    z = (score - std[0]) / std[1]
    if request.kind == PRS_STATS_KIND:
        return Answer(_stats(spec, policy, samples, z), facts)
    if not samples.binary:
        raise _bad(f"{request.kind} needs a case/control phenotype")
    p = samples.covariates.shape[1] + 2
    beta = inputs.get("beta")
    if request.kind == PRS_LOGISTIC_KIND:
        firth = inputs.get("firth")
        if (
            beta is None
            or firth is None
            or beta.shape != (1, p)
            or beta.dtype != np.float64
            or firth.shape != (1,)
            or firth.dtype != np.bool_
            or not np.isfinite(beta).all()
        ):
            raise _bad("the prs_logistic request's betas are malformed")
        chunk = logistic_chunk(
            z[None, :],
            np.zeros((1, len(z)), dtype=np.bool_),
            samples.covariates,
            samples.y,
            beta,
            firth,
        )
        return Answer(
            {
                "grad": chunk.grad,
                "hess": chunk.hess,
                "loglik": chunk.loglik,
                "third": chunk.third,
            },
            facts,
        )
    if request.kind == PRS_CALIBRATION_KIND:
        if (
            beta is None
            or beta.shape != (p,)
            or beta.dtype != np.float64
            or not np.isfinite(beta).all()
        ):
            raise _bad("the prs_calibration request's betas are malformed")
        fitted = expit(beta[0] + beta[1] * z + samples.covariates @ beta[2:])
        counts, fit_sum = calibration_counts(
            z, samples.y > 0.5, fitted, group_edges(spec.params["calibration_groups"])
        )
        hidden = complementary_suppression(
            counts[:, 0], small_cell_rows(counts, policy.min_cell_count)
        )
        table = np.column_stack([counts[:, :2], fit_sum]).astype(np.float64)
        table[hidden] = 0.0
        return Answer({"calibration": table, "calibration_suppressed": hidden}, facts)
    raise PolicyRefusal(UNKNOWN_REQUEST, f"this site does not know request kind {request.kind!r}")


SERVER = Server(
    analyses=frozenset({PRS_KIND}),
    request_kinds=PRS_REQUEST_KINDS,
    modes=frozenset({"plain"}),
    unsupported="prs analyses release exact sums only; this study asks for noise",
    serve=serve_prs,
)


def _scoring(spec: AnalysisSpec, inputs: NamedArrays) -> ScoringFile:
    data = inputs.get("scoring_file")
    if data is None or data.dtype != np.uint8 or data.ndim != 1:
        raise _bad("the prs request carries no scoring file")
    scoring = parse_scoring_file(data.tobytes(), path=spec.params["scoring_file"])
    pinned = spec.params["scoring_sha256"]
    if pinned and scoring.sha256 != pinned:
        raise _bad(f"the scoring file's SHA-256 is {scoring.sha256}, the study pins {pinned}")
    return scoring


def _check_weights(weights: np.ndarray, policy: SitePolicy) -> None:
    """Refuse scores that could read a genotype out: too few rows, or weights spread too wide.

    A one-row score is one variant's genotypes; weights 1, 3, 9, ... put
    several genotypes in one sum (read the score in base 3). The policy's
    ``min_score_rows`` and ``max_weight_ratio`` bound both.
    """
    nonzero = np.abs(weights[weights != 0])
    if len(nonzero) < policy.min_score_rows:
        raise PolicyRefusal(
            DISCLOSURE_RISK,
            f"the score uses {len(nonzero)} scoring row(s) with a non-zero weight at this site; "
            f"its policy needs at least {policy.min_score_rows} (min_score_rows)",
        )
    ratio = float(nonzero.max() / nonzero.min())
    if ratio > policy.max_weight_ratio:
        raise PolicyRefusal(
            DISCLOSURE_RISK,
            f"the scoring file's largest |weight| is {ratio:.3g} times its smallest; this "
            f"site's policy allows at most {policy.max_weight_ratio:g} (max_weight_ratio)",
        )


def _samples(
    config: SiteConfig, bed: GenotypeFile, spec: AnalysisSpec, ctx: RequestContext, facts: Any
) -> GlmSamples:
    """The score's regression samples, as the guard serves them (every round the same set:
    the first round's set is the largest earlier one inside the cohort for the later ones)."""
    as_glm = AnalysisSpec(
        id=spec.id,
        kind="glm",
        params=MappingProxyType(
            {
                "phenotype": spec.params["phenotype"],
                "covariates": spec.params["covariates"],
                "model": spec.params["model"],
                "firth": "fallback",
            }
        ),
    )
    samples = glm_samples(config, bed, as_glm)
    if not len(samples.index):
        raise InputError(
            f"no genotyped sample has phenotype {spec.params['phenotype']!r} and every covariate",
            path=config.directory / SITE_CONFIG,
            hint="check that the phenotype and covariate files use the .fam sample IDs",
        )
    return aligned_samples(samples, ctx.guard, (CLINICAL, GENOTYPES), facts)


def _state_dir(ctx: RequestContext) -> Path:
    """Where a prs analysis keeps what its match round withheld."""
    return ctx.directory / "state" / "prs" / ctx.study.sha256 / ctx.analysis.id


def _membership_withheld(
    ctx: RequestContext,
    match: RowMatch,
    matched: np.ndarray,
    counts: np.ndarray,
    withheld: np.ndarray,
    rows: np.ndarray | None,
    facts: dict[str, str],
) -> np.ndarray:
    """Rows the membership check withholds from the match round's effect-allele counts.

    The round releases allele counts only (called samples, effect dosage), so
    the check sees genotype counts in Hardy–Weinberg proportions with those
    allele counts (what an attacker would assume too). What the round
    withholds is recorded, and a later round scoring such a row is refused.
    """
    called = counts[:, 0].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(called > 0, counts[:, 1] / (2 * called), 0.0)
    hwe = np.stack(
        [called * (1 - p) ** 2, 2 * called * p * (1 - p), called * p**2, np.zeros_like(p)],
        axis=1,
    )
    v = ctx.bed.variants
    at = np.where(matched, match.index, 0)
    ref = np.where(match.effect_is_alt, v.ref[at], v.alt[at])
    alt = np.where(match.effect_is_alt, v.alt[at], v.ref[at])
    ids = np.where(matched, v.id[at], "")
    samples = np.arange(ctx.bed.n_samples) if rows is None else rows
    history = History.open(ctx.directory, people_of(ctx.bed, samples))
    decision = check_release(ctx.policy, hwe, withheld | ~matched, ids, ref, alt, history)
    facts.update(decision.facts)
    record_withheld(_state_dir(ctx), np.flatnonzero(withheld | decision.withheld))
    return decision.withheld


def _effect_counts(
    bed: GenotypeFile,
    match: RowMatch,
    matched: np.ndarray,
    samples: np.ndarray | None,
    ctx: RequestContext,
) -> tuple[np.ndarray, np.ndarray]:
    """Per scoring row: called samples and effect dosage, and whether the guard withholds it."""
    rows = np.flatnonzero(matched)
    out = np.zeros((len(matched), 2), dtype=np.int64)
    isolating = np.zeros(len(matched), dtype=np.bool_)
    cohort = np.arange(bed.n_samples) if samples is None else samples
    for start, dosages in bed.iter_dosages(match.index[rows], sample_idx=samples):
        sel = rows[start : start + len(dosages)]
        out[sel] = effect_dosage_counts(dosages, match.effect_is_alt[sel])
        if ctx.guard.enabled:
            isolating[sel] = ctx.guard.unsafe_variants(GENOTYPES, cohort, (dosages < 0).T)
    return out, isolating


def _scores(
    bed: GenotypeFile,
    samples: GlmSamples,
    match: RowMatch,
    scoring: ScoringFile,
    use: np.ndarray,
    freq: np.ndarray,
) -> np.ndarray:
    rows = np.flatnonzero(use)
    score = np.zeros(len(samples.index))
    if not rows.size:
        return score
    for start, dosages in bed.iter_dosages(match.index[rows], sample_idx=samples.index):
        sel = rows[start : start + len(dosages)]
        score += score_chunk(dosages, match.effect_is_alt[sel], scoring.weight[sel], freq[sel])
    return score


def _stats(
    spec: AnalysisSpec, policy: SitePolicy, samples: GlmSamples, z: np.ndarray
) -> NamedArrays:
    counts = histogram_counts(z, histogram_edges(spec.params["n_bins"]))
    hidden = complementary_suppression(
        counts, small_cell_rows(counts[:, None], policy.min_cell_count)
    )
    hist = np.where(hidden, 0, counts)
    design = np.column_stack([np.ones(len(z)), samples.covariates, samples.y])
    chunk = linear_chunk(z[None, :], np.zeros((1, len(z)), dtype=np.bool_), design)
    out: dict[str, Any] = {
        "histogram": hist,
        "histogram_suppressed": hidden,
        "gz": chunk.gz[0],
        "gg": chunk.gg,
        "zz": gram_upper(design),
    }
    if samples.binary:
        case = samples.y > 0.5
        counts, released = collapse_thresholds(
            z, case, roc_thresholds(spec.params["thresholds"]), policy.min_cell_count
        )
        out["roc_counts"] = counts
        out["roc_released"] = released
        out["class_totals"] = np.array([case.sum(), (~case).sum()], dtype=np.int64)
    return out
