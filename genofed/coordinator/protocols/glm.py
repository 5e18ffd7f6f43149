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
collinear ones stop the study with an error that names them.

The math is in :mod:`genofed.coordinator.combine.glm`; this module only
moves arrays between it and the sites, then writes the tables and plots.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from genofed.common.errors import GenoFedError
from genofed.common.messages import Reply
from genofed.common.study import AnalysisSpec
from genofed.common.wire.glm import (
    BINARY,
    GLM_LOGISTIC_KIND,
    GLM_STATS_KIND,
    PHENOTYPE_TYPE_FACT,
    QUANTITATIVE,
    logistic_shapes,
)
from genofed.common.wire.records import NamedArrays
from genofed.coordinator.combine.covariates import Design, checked_design
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
    stats_ = ask_sum(
        GLM_STATS_KIND,
        spec.id,
        [{"variant_index": pl.index, "flip": pl.flip} for pl in plans],
    )
    model = resolve_model(
        spec.params["model"], [r.facts.get(PHENOTYPE_TYPE_FACT, "") for r in stats_.replies], sites
    )
    try:
        gram = pool_sums(stats_.arrays, n_variants, k)
    except ValueError as exc:
        raise GenoFedError(
            f"the sites' summed glm statistics are malformed ({exc}): "
            "are the sites on the same software version?"
        ) from exc
    what = f"glm analysis {spec.id!r}"
    gram, design, check = checked_design(gram, covariates, linear=model == "linear", what=what)
    warning = check.warning(what)
    if warning is not None:
        log.warning("%s", warning)
    rounds = 1
    if model == "linear":
        result = linear_regression(gram)
    else:
        result, extra = _logistic(spec, gram, design, plans, ask_sum)
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
    }


def _logistic(
    spec: AnalysisSpec,
    gram: PooledGram,
    design: Design,
    plans: Sequence[SitePlan],
    ask_sum: AskSum,
) -> tuple[GlmResult, int]:
    """Newton and Firth rounds; the sites evaluate every covariate, ``design`` keeps the model's."""
    fit = LogisticFit(gram, spec.params["firth"])
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


__all__ = ["AskSites", "resolve_model", "run_glm"]
