"""The rounds of one polygenic risk score (``prs``) analysis, as the coordinator drives them.

1. ``prs_match``: each site matches the scoring file's rows to its variants
   and returns per-row match codes and effect-allele counts. Rows matched at
   every site are used; the pooled effect-allele frequencies are plink2's
   mean-imputation values.
2. ``prs_moments``: n, sum and sum of squares of the scores, summed over the
   sites into the mean and SD that standardize the score.
3. ``prs_stats``: the suppressed histogram of the standardized score, the
   regression sums (as ``glm_stats``) and, for a case/control phenotype,
   threshold counts for the ROC.
4. Logistic only: ``prs_logistic`` rounds (Newton, Firth fallback) until the
   fit is done, then ``prs_calibration`` with the fitted coefficients.

Every round asks for the sum over sites of the replies' summable forms
(``ask_sum``, :mod:`genofed.common.wire.prs`): in ``plain`` mode the
coordinator adds them up, in ``exact`` mode SecAgg+ does, and the
coordinator never holds a site's own counts or sums. What it reads from each
site is only facts: the phenotype type and the site's rows per match code
(which its variant table, sent for harmonization, already decides).

The math is in :mod:`genofed.coordinator.combine.prs` and
:mod:`genofed.coordinator.combine.glm`; this module reads the scoring file,
moves arrays between the math and the sites, and writes the outputs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from genofed.common.chromosomes import bare_chrom
from genofed.common.errors import GenoFedError, InputError, SiteFailure
from genofed.common.messages import Reply
from genofed.common.pgs_scoring import ScoringFile, parse_scoring_file
from genofed.common.reasons import BAD_REPLY
from genofed.common.study import AnalysisSpec
from genofed.common.wire.glm import BINARY, QUANTITATIVE, multisets
from genofed.common.wire.pgx import logistic_shapes
from genofed.common.wire.prs import (
    MATCH_NAMES,
    MATCHING_FACT,
    PHENOTYPE_TYPE_FACT,
    PRS_CALIBRATION_KIND,
    PRS_LOGISTIC_KIND,
    PRS_MATCH_KIND,
    PRS_MOMENTS_KIND,
    PRS_STATS_KIND,
    histogram_edges,
    roc_thresholds,
)
from genofed.common.wire.records import NamedArrays
from genofed.coordinator.combine import prs as combine
from genofed.coordinator.combine.covariates import Design, checked_design
from genofed.coordinator.combine.glm import LogisticFit, linear_regression
from genofed.coordinator.combine.harmonize import VariantTable
from genofed.coordinator.protocols.job import AskSites, AskSum, Pooled
from genofed.coordinator.study_files import ANYWHERE, StudyFiles
from genofed.coordinator.writers.prs_outputs import PrsReport, write_prs_outputs

__all__ = ["read_scoring_file", "run_prs"]

MAX_LOGISTIC_ROUNDS = 15 + 25 * 6 + 2

log = logging.getLogger("genofed.coordinator")


def read_scoring_file(
    spec: AnalysisSpec, files: StudyFiles = ANYWHERE
) -> tuple[bytes, ScoringFile]:
    """The scoring file's bytes and parsed form; checks the study's pinned SHA-256.

    ``files`` says where the coordinator may read it (:mod:`..study_files`).
    """
    path = files.resolve(spec.params["scoring_file"], key="scoring_file", analysis=spec.id)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(
            f"cannot read the scoring file ({exc.strerror})",
            path=path,
            hint="scoring_file is a path on the coordinator host, relative to the study file's "
            "folder (deployment: to the first folder of [studies] file_dirs in coordinator.toml)",
        ) from exc
    scoring = parse_scoring_file(data, path=str(path))
    pinned = spec.params["scoring_sha256"]
    if pinned and scoring.sha256 != pinned:
        raise InputError(
            f"the scoring file's SHA-256 is {scoring.sha256}, the study pins {pinned}",
            path=path,
            hint="use the file the study was written for, or update scoring_sha256",
        )
    return data, scoring


def _matching(pooled: Pooled) -> list[dict[str, int]]:
    """Each site's rows per match code (fact ``prs_matching``), in the sum's site order."""
    keys = [*MATCH_NAMES.values(), "matched"]
    out = []
    for site, reply in zip(pooled.sites, pooled.replies, strict=True):
        try:
            got = json.loads(reply.facts.get(MATCHING_FACT, ""))
        except json.JSONDecodeError:
            got = None
        if not isinstance(got, dict) or any(
            type(got.get(k)) is not int or got[k] < 0 for k in keys
        ):
            raise SiteFailure(
                site,
                BAD_REPLY,
                f"fact {MATCHING_FACT} must give the rows per match code ({', '.join(keys)})",
            )
        out.append({k: int(got[k]) for k in keys})
    return out


def _model(spec: AnalysisSpec, replies: Sequence[Reply], sites: Sequence[str]) -> str:
    requested = spec.params["model"]
    reported = {r.facts.get(PHENOTYPE_TYPE_FACT, "") for r in replies}
    if requested == "logistic" and reported != {BINARY}:
        raise GenoFedError(
            f"phenotype {spec.params['phenotype']!r} is not case/control at every site"
        )
    if requested != "auto":
        return str(requested)
    if reported == {BINARY}:
        return "logistic"
    if reported == {QUANTITATIVE}:
        return "linear"
    raise GenoFedError(
        f"the sites ({', '.join(sites)}) disagree on whether the phenotype is case/control; "
        'set model = "linear" or model = "logistic" in the study'
    )


def run_prs(
    spec: AnalysisSpec,
    sites: Sequence[str],
    out_dir: Path,
    ask: AskSites,
    *,
    ask_sum: AskSum,
    files: StudyFiles = ANYWHERE,
    qc_kept: VariantTable | None = None,
) -> tuple[list[str], dict[str, object]]:
    """Run one prs analysis over ``sites``; return files and summary.

    ``ask`` is unused: every round is a sum over sites (``ask_sum``). With
    ``qc_kept`` (the variants the study's ``[qc]`` kept), rows of other
    variants are not scored, as plink2 ``--score`` with the same filters.
    """
    data, scoring = read_scoring_file(spec, files)
    r, s = len(scoring), len(sites)
    base: NamedArrays = {"scoring_file": np.frombuffer(data, dtype=np.uint8).copy()}
    got = ask_sum(PRS_MATCH_KIND, spec.id, [base] * s)
    plan = combine.plan_from_sums(
        got.array("matched_sites", (r,)),
        got.array("effect_counts", (r, 2)),
        got.array("effect_counts_withheld", (r,)),
        len(got.sites),
        _matching(got),
    )
    sites = got.sites
    removed_by_qc = 0
    if qc_kept is not None:
        kept = combine.qc_kept_rows(
            [bare_chrom(c) for c in np.asarray(scoring.chrom).astype(str).tolist()],
            np.asarray(scoring.pos, dtype=np.int64),
            np.asarray(scoring.effect_allele).astype(str).tolist(),
            np.asarray(scoring.other_allele).astype(str).tolist(),
            (
                [bare_chrom(c) for c in np.asarray(qc_kept.chrom).astype(str).tolist()],
                np.asarray(qc_kept.pos, dtype=np.int64),
                np.asarray(qc_kept.ref).astype(str).tolist(),
                np.asarray(qc_kept.alt).astype(str).tolist(),
            ),
        )
        removed_by_qc = int((plan.use & ~kept).sum())
        plan = dataclasses.replace(plan, use=plan.use & kept)
        if not plan.use.any():
            raise GenoFedError(
                f"the study's [qc] removed the variant of every scoring row matched at every "
                f"site ({removed_by_qc} rows); loosen the [qc] thresholds or score in a study "
                "without [qc]"
            )
    if not plan.use.any() and plan.withheld.any():
        raise GenoFedError(
            "every scoring row matched at every site was withheld by a site (small allele "
            "counts under its min_cell_count); the score cannot be computed"
        )
    if not plan.use.any():
        raise GenoFedError(
            f"no row of the scoring file {spec.params['scoring_file']} matches a variant at every "
            "site; check the genome build (the file says "
            f"{scoring.genome_build or 'nothing'}) and the chromosome naming"
        )
    rows = {**base, "use_rows": plan.use, "impute_freq": plan.impute_freq}
    got = ask_sum(PRS_MOMENTS_KIND, spec.id, [rows] * s)
    model = _model(spec, got.replies, got.sites)
    std = combine.standardization([got.array("moments", (3,))])
    if not std.sd > 0:
        raise GenoFedError("the score is the same for every analysis sample; nothing to test")
    standardized = {**rows, "standardize": np.array([std.mean, std.sd])}
    roc = np.array([model == "logistic"])
    st = ask_sum(PRS_STATS_KIND, spec.id, [{**standardized, "roc": roc}] * s)
    k = len(spec.params["covariates"])
    n_bins = spec.params["n_bins"]
    q = k + 2
    hist, hist_withheld = combine.pooled_histogram(
        [st.array("histogram", (n_bins + 2,))], [st.array("histogram_suppressed", (n_bins + 2,))]
    )
    gram = combine.pooled_gram(
        [st.array("gz", (q,))], [st.array("gg", (1,))], [st.array("zz", (len(multisets(q, 2)),))], k
    )
    what = f"prs analysis {spec.id!r}"
    gram, design, check = checked_design(
        gram, spec.params["covariates"], linear=model == "linear", what=what
    )
    warning = check.warning(what)
    if warning is not None:
        log.warning("%s", warning)
    rounds = 3
    report = PrsReport(
        spec=spec,
        scoring=scoring,
        sites=tuple(sites),
        plan=plan,
        standardization=std,
        model=model,
        histogram_edges=histogram_edges(n_bins),
        histogram=hist,
        histogram_withheld=hist_withheld,
        covariates_left_out=check.constant,
    )
    if model == "linear":
        report.association = combine.association(linear_regression(gram))
    else:
        fit = LogisticFit(gram, "fallback")
        rounds += _fit_logistic(spec, fit, design, standardized, sites, ask_sum)
        result = fit.result()
        report.association = combine.association(result)
        t = spec.params["thresholds"]
        auc, roc_points, exact = combine.auc_from_sums(
            st.array("roc_filled", (t, 2)),
            st.array("roc_released", (t, 2)),
            st.array("class_totals", (2,)),
            len(st.sites),
            roc_thresholds(t),
        )
        report.auc, report.roc, report.thresholds_exact = auc, roc_points, exact
        if np.isfinite(result.beta[0]).all():
            beta = design.site_beta(fit.coef[:1])[0].copy()
            got = ask_sum(PRS_CALIBRATION_KIND, spec.id, [{**standardized, "beta": beta}] * s)
            g = spec.params["calibration_groups"]
            report.calibration = combine.calibration(
                [got.array("calibration", (g, 3))], [got.array("calibration_suppressed", (g,))]
            )
            rounds += 1
    files = write_prs_outputs(out_dir, report, rounds)
    summary = report.summary(rounds)
    return files, {
        "n_variants_matched": summary["n_variants_matched"],
        "n_samples": summary["n_samples"],
        "model": model,
        **({"auc": round(report.auc, 4)} if model == "logistic" else {}),
        **{
            k: _rounded(v)
            for k, v in report.association.items()
            if k in ("or_per_sd", "or_per_sd_ci", "beta_per_sd", "beta_per_sd_ci")
        },
        "rounds": rounds,
        **({"rows removed by [qc]": removed_by_qc} if qc_kept is not None else {}),
        **check.summary(),
    }


def _rounded(value: object) -> object:
    """Headline numbers to 4 decimals (the summary JSON keeps them whole)."""
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _fit_logistic(
    spec: AnalysisSpec,
    fit: LogisticFit,
    design: Design,
    inputs: NamedArrays,
    sites: Sequence[str],
    ask_sum: AskSum,
) -> int:
    """Newton and Firth rounds; the sites evaluate every covariate, ``design`` keeps the model's."""
    p = design.k + 2  # the sites' predictors
    rounds = 0
    while (pending := fit.pending()) is not None:
        rounds += 1
        if rounds > MAX_LOGISTIC_ROUNDS:
            raise GenoFedError(
                f"logistic regression did not finish in {MAX_LOGISTIC_ROUNDS} rounds"
            )
        request = {**inputs, "beta": design.site_beta(pending.beta), "firth": pending.firth}
        got = ask_sum(PRS_LOGISTIC_KIND, spec.id, [request] * len(sites))
        pooled = {
            n: got.array(n, sh) for n, sh in logistic_shapes(p, int(pending.firth.sum())).items()
        }
        fit.receive(
            pending,
            design.moments(pooled["grad"], 1),
            design.moments(pooled["hess"], 2),
            pooled["loglik"],
            design.moments(pooled["third"], 3),
        )
    return rounds
