"""The rounds of one GWAS (``glm``) analysis, as the coordinator drives them.

1. ``glm_stats``: each site sends per-variant cross products
   (:mod:`genofed.common.wire.glm`). They answer linear regression outright
   and are logistic regression's first Newton step (beta = 0).
2. Logistic only: ``glm_logistic`` rounds. Each round sends the current
   coefficients of every variant still being fitted (Newton, or Firth where
   plink2 would fall back to it) and gets back pooled scores, information
   matrices, log-likelihoods and, for Firth rows, third moments. Rounds stop
   when every variant has converged, given up, or reached plink2's limits.

Between the two, the covariates are checked as plink2 checks them
(:mod:`genofed.coordinator.combine.covariates`): a constant covariate is
left out of the model with a warning (logged, and named in the summary),
collinear ones stop the study with an error that names them. When a
covariate is left out, plink2 chooses the samples again without it, taking
back those that missed only left-out covariates: one ``glm_covariates``
round says whether that adds samples (and which left-out covariates plink2
then adds back), and if so ``glm_stats`` is asked again, and every
``glm_logistic`` round, with the final ``covariates_used`` mask
(:func:`genofed.coordinator.combine.covariates.take_back`). Where no
covariate is left out the rounds are exactly as before.

Logistic with ``firth = "fallback"`` or ``"never"`` and a kept covariate:
one ``glm_separation`` round before the Newton rounds, plink2's check for a
covariate that separates cases from controls
(:func:`genofed.coordinator.combine.covariates.separated_covariates`). If one
does, every variant is fitted by Firth (``fallback``), or the analysis stops
with plink2's error (``never``).

The math is in :mod:`genofed.coordinator.combine.glm`; this module only
moves arrays between it and the sites, then writes the tables and plots.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from genofed.common.errors import GenoFedError, InputError
from genofed.common.messages import Reply
from genofed.common.study import AnalysisSpec
from genofed.common.wire.glm import (
    BINARY,
    COVARIATES_USED,
    GLM_COVARIATES_KIND,
    GLM_LOGISTIC_KIND,
    GLM_SEPARATION_KIND,
    GLM_STATS_KIND,
    PHENOTYPE_TYPE_FACT,
    QUANTITATIVE,
    covariates_shapes,
    logistic_shapes,
)
from genofed.common.wire.records import NamedArrays
from genofed.coordinator.combine.covariates import (
    CovariateCheck,
    Design,
    TakeBack,
    checked_design,
    kept_mask,
    separated_covariates,
    separation_request,
    take_back,
)
from genofed.coordinator.combine.glm import (
    ERR_UNFINISHED,
    GlmResult,
    LogisticFit,
    PooledGram,
    genomic_inflation,
    linear_regression,
    pool_sums,
)
from genofed.coordinator.combine.harmonize import Harmonization, SitePlan
from genofed.coordinator.protocols.job import AskSum
from genofed.coordinator.writers.glm_tables import write_glm_outputs

#: Sends one request kind to every site (inputs in site order); returns replies in site order.
AskSites = Callable[[str, str, Sequence[NamedArrays]], list[tuple[Reply, NamedArrays]]]

#: More rounds than plink2's iteration limits can use (Newton stops after 15
#: iterations; a Firth fallback after at most 25 iterations of 6 evaluations).
MAX_LOGISTIC_ROUNDS = 15 + 25 * 6 + 2
#: Genome-wide significance, for the summary.
GENOME_WIDE_P = 5e-8
log = logging.getLogger("genofed.coordinator")


def resolve_model(requested: str, reported: Sequence[str], sites: Sequence[str]) -> str:
    """The regression model: as requested, or from the phenotype type the sites report."""
    if requested != "auto":
        return requested
    kinds = set(reported)
    if kinds == {BINARY}:
        return "logistic"
    if kinds == {QUANTITATIVE}:
        return "linear"
    detail = ", ".join(f"{s}: {k}" for s, k in zip(sites, reported, strict=True))
    raise GenoFedError(
        f"the sites disagree on whether the phenotype is case/control ({detail}); "
        'set model = "linear" or model = "logistic" in the study'
    )


def run_glm(
    spec: AnalysisSpec,
    harmonization: Harmonization,
    out_dir: Path,
    ask: AskSites,
    *,
    ask_sum: AskSum | None = None,
    prefix: str = "gwas",
) -> tuple[list[str], dict[str, object]]:
    """Run one glm analysis; return the files written and headline numbers."""
    sites = [r.site for r in harmonization.reports]
    covariates = tuple(spec.params["covariates"])
    k = len(covariates)
    n_variants = len(harmonization.variants)
    plans = harmonization.plans
    if ask_sum is None:
        raise TypeError("run_glm needs ask_sum: every glm round is a sum over sites")

    def stats(used: np.ndarray | None) -> tuple[list[Reply], PooledGram]:
        extra = {} if used is None else {COVARIATES_USED: used}
        got = ask_sum(
            GLM_STATS_KIND,
            spec.id,
            [{"variant_index": pl.index, "flip": pl.flip, **extra} for pl in plans],
        )
        try:
            return got.replies, pool_sums(got.arrays, n_variants, k)
        except ValueError as exc:
            raise GenoFedError(
                f"the sites' summed glm statistics are malformed ({exc}): "
                "are the sites on the same software version?"
            ) from exc

    replies, gram = stats(None)
    model = resolve_model(
        spec.params["model"], [r.facts.get(PHENOTYPE_TYPE_FACT, "") for r in replies], sites
    )
    what = f"glm analysis {spec.id!r}"
    linear = model == "linear"
    first = basis = gram
    gram, design, check = checked_design(first, covariates, linear=linear, what=what)
    warning = check.warning(what)
    if warning is not None:
        log.warning("%s", warning)
    rounds = 1
    back: TakeBack | None = None
    if check.constant:
        rounds += 1
        back = ask_take_back(spec.id, check, covariates, first, len(sites), ask_sum)
        if back.added:
            rounds += 1
            log.warning("%s", taken_back_message(what, back, check))
            _, basis = stats(back.used)
            gram, design, _ = checked_design(basis, covariates, linear=linear, what=what)
            check = CovariateCheck(
                keep=design.keep,
                constant=tuple(c for j, c in enumerate(covariates) if not back.used[j]),
                n=back.n,
            )
    used = None if back is None or not back.added else back.used
    separating: list[str] = []
    if model == "logistic" and spec.params["firth"] != "always" and design.keep:
        rounds += 1
        separating = ask_separation(spec, basis, design, covariates, len(sites), ask_sum, used)
    if model == "linear":
        result = linear_regression(gram)
    else:
        result, extra = _logistic(spec, gram, design, plans, ask_sum, used, bool(separating))
        rounds += extra
    lambda_gc = genomic_inflation(result)
    files = write_glm_outputs(
        out_dir,
        prefix,
        spec.params["phenotype"],
        design.names(covariates),
        harmonization.variants,
        result,
        lambda_gc=lambda_gc,
    )
    tested = np.isfinite(result.p[:, 0])
    unfinished = int(np.sum(result.errcode == ERR_UNFINISHED))
    if unfinished:
        log.warning(
            "glm analysis %r: %d variant(s) reached plink2's iteration limit; their rows read "
            "ERRCODE UNFINISHED and hold the last iterate, not a converged estimate",
            spec.id,
            unfinished,
        )
    return files, {
        "model": model,
        "variants tested": int(tested.sum()),
        f"P<{GENOME_WIDE_P:g}": int(np.sum(result.p[tested, 0] < GENOME_WIDE_P)),
        "lambda_gc": round(lambda_gc, 4),
        "firth": int(result.firth.sum()),
        "rounds": rounds,
        **(
            {"withheld (small cells)": int(gram.withheld.sum())}
            if gram.withheld is not None and gram.withheld.any()
            else {}
        ),
        **check.summary(),
        **(back.summary() if back is not None else {}),
        **({SEPARATION_KEY: ", ".join(separating)} if separating else {}),
    }


#: Key of an analysis's summary that names the covariates separating cases from controls.
SEPARATION_KEY = "separating covariates (every variant Firth)"


def ask_separation(
    spec: AnalysisSpec,
    basis: PooledGram,
    design: Design,
    covariates: Sequence[str],
    n_sites: int,
    ask_sum: AskSum,
    used: np.ndarray | None,
) -> list[str]:
    """One ``glm_separation`` round: the kept covariates that separate cases from controls.

    With ``firth = "fallback"`` logs plink2's consequence (every variant fitted
    by Firth) and returns their names; with ``"never"`` raises plink2's error.
    """
    if basis.zz is None:
        raise ValueError("the pooled Gram has no covariate sums (zz)")
    center, scale = separation_request(basis.zz, len(covariates), design.keep)
    extra = {} if used is None else {COVARIATES_USED: used}
    got = ask_sum(
        GLM_SEPARATION_KIND, spec.id, [{"center": center, "scale": scale, **extra}] * n_sites
    )
    moments = got.arrays.get("moments")
    if moments is None or moments.shape != (len(covariates), 2):
        raise GenoFedError(
            f"the sites' summed {GLM_SEPARATION_KIND} moments must have shape "
            f"{(len(covariates), 2)}: are the sites on the same software version?"
        )
    quasi, complete = separated_covariates(basis.zz, moments, center, scale, design.keep)
    if not quasi:
        return []
    names = [covariates[j] for j in quasi]
    what = f"glm analysis {spec.id!r}"
    listed = ", ".join(map(repr, names))
    how = "completely" if complete else "quasi-completely"
    if spec.params["firth"] == "never":
        raise InputError(
            f"{what}: covariate(s) {listed} separate cases from controls ({how}: every case, "
            "or every control, has one value), so logistic regression has no finite estimate; "
            "plink2 --glm no-firth stops here too ((Quasi-)separated covariate(s) were present)",
            hint=f'use firth = "fallback" (plink2\'s default), or remove {listed} from the '
            "covariates",
        )
    log.warning(
        "%s: covariate(s) %s separate cases from controls (%s); as plink2 does, every variant "
        "is fitted by Firth regression",
        what,
        listed,
        how,
    )
    return names


def ask_take_back(
    analysis_id: str,
    check: CovariateCheck,
    covariates: Sequence[str],
    first: PooledGram,
    n_sites: int,
    ask_sum: AskSum,
    kind: str = GLM_COVARIATES_KIND,
) -> TakeBack:
    """One ``glm_covariates`` round with the kept covariates: plink2's take-back decision."""
    used = kept_mask(len(covariates), check.keep)
    got = ask_sum(kind, analysis_id, [{COVARIATES_USED: used}] * n_sites)
    pooled = {
        name: got.array(name, shape) for name, shape in covariates_shapes(len(covariates)).items()
    }
    n_before = 0 if first.zz is None else round(float(first.zz[0]))
    return take_back(check, covariates, n_before, pooled, n_sites)


def taken_back_message(what: str, back: TakeBack, check: CovariateCheck) -> str:
    """The log line that says how many samples were taken back (and any covariate added back)."""
    restored = (
        f"; {', '.join(map(repr, back.restored))} varies over them and is used again"
        if back.restored
        else ""
    )
    return (
        f"{what}: {back.added} sample(s) that missed only left-out covariates are analysed "
        f"({back.n} in all, {check.n} with every covariate), as plink2 takes them back{restored}"
    )


def _logistic(
    spec: AnalysisSpec,
    gram: PooledGram,
    design: Design,
    plans: Sequence[SitePlan],
    ask_sum: AskSum,
    used: np.ndarray | None = None,
    separation_found: bool = False,
) -> tuple[GlmResult, int]:
    """Newton and Firth rounds; the sites evaluate every covariate, ``design`` keeps the model's."""
    fit = LogisticFit(gram, spec.params["firth"], separation_found)
    p = design.k + 2  # the sites' predictors
    rounds = 0
    while (pending := fit.pending()) is not None:
        rounds += 1
        if rounds > MAX_LOGISTIC_ROUNDS:
            raise GenoFedError(
                f"logistic regression did not finish in {MAX_LOGISTIC_ROUNDS} rounds"
            )
        inputs = [
            {
                "variant_index": pl.index[pending.index],
                "flip": pl.flip[pending.index],
                "beta": design.site_beta(pending.beta),
                "firth": pending.firth,
                **({} if used is None else {COVARIATES_USED: used}),
            }
            for pl in plans
        ]
        got = ask_sum(GLM_LOGISTIC_KIND, spec.id, inputs)
        v, f = len(pending.index), int(pending.firth.sum())
        pooled = {}
        for name, shape in logistic_shapes(v, p, f).items():
            value = got.arrays.get(name)
            if value is None or value.shape != shape:
                raise GenoFedError(
                    f"the sites' summed {name} must have shape {shape}: "
                    "are the sites on the same software version?"
                )
            pooled[name] = value
        loglik = np.full(v, np.nan)  # Newton rows have none (glm_wire): never read
        loglik[pending.firth] = pooled["loglik"]
        fit.receive(
            pending,
            design.moments(pooled["grad"], 1),
            design.moments(pooled["hess"], 2),
            loglik,
            design.moments(pooled["third"], 3),
        )
    return fit.result(), rounds


__all__ = [
    "SEPARATION_KEY",
    "AskSites",
    "ask_separation",
    "ask_take_back",
    "resolve_model",
    "run_glm",
    "taken_back_message",
]
