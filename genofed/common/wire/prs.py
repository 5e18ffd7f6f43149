"""What the polygenic risk score (``prs``) protocol exchanges.

Both halves read this module so that a site and the coordinator agree on
what every released number means; a privacy officer reads it to know what
leaves the site for a ``prs`` analysis. Every request carries the scoring
file's bytes (``scoring_file``, uint8; public weights, not patient data):
the site parses and matches it itself, and refuses a file whose SHA-256
differs from the study's ``scoring_sha256`` when the study pins one.

The score of a sample is plink2 ``--score``'s ``SCORE1_SUM`` (``cols=+scoresums``)
with plink2's default mean imputation: for each scoring row used, weight x
effect-allele dosage, where a missing call counts ``2 x`` the pooled
effect-allele frequency over every genotyped sample.

Rounds and releases (R scoring rows, B histogram bins, T thresholds, G groups,
p = 2 + covariates)::

    prs_match        row_status     int8  (R,)    MATCH_* code of each scoring row at this site
                     effect_counts  int64 (R, 2)  called samples, effect-allele dosage (all samples)
                     effect_counts_withheld bool (R,)  rows withheld: effect or other allele
                                                  count in [1, min_cell_count) (sent as zeros;
                                                  the row is then not scored anywhere)
    prs_moments      moments        float64 (3,)  analysis samples, sum of scores, sum of squares
      in: use_rows bool (R,), impute_freq float64 (R,)
    prs_stats        histogram      int64 (B+2,)  samples per standardized-score bin (tails at
                                                  both ends); suppressed cells are 0
                     histogram_suppressed bool (B+2,)
                     gz float64 (k+2,), gg float64 (1,), zz float64 (T',)
                                                  as glm_stats for the one "variant" z = score
                                                  standardized by the pooled mean and SD
                     roc_counts     int64 (T, 2)  binary only: cases, controls with z >= t
                     roc_released   bool (T, 2)   counts this site releases, per class
                                                  (cell collapsing)
                     class_totals   int64 (2,)    binary only: cases, controls
      in: + standardize float64 (2,) mean, SD
    prs_logistic     grad, hess, loglik, third    as glm_logistic, for the one row z
      in: + beta float64 (1, p), firth bool (1,)
    prs_calibration  calibration    float64 (G, 3) samples, cases, sum of fitted probabilities
                     calibration_suppressed bool (G,)
      in: + beta float64 (p,) final coefficients

Histogram bins are ``HISTOGRAM_RANGE`` split into ``n_bins`` equal bins plus
one open bin at each end; thresholds and calibration groups sit at standard
normal quantiles of the standardized score (``k/(T+1)``, ``k/G``), so that
each cell holds a similar share of samples when the score is near normal.

Facts: ``prs_match`` replies carry ``prs_matching``, the site's number of
scoring rows with each match code (a JSON object: the names of
``MATCH_NAMES`` and ``matched``). They follow from the site's variant table,
which harmonization already sends, and the public scoring file: no sample
data. ``prs_moments`` replies carry ``prs_phenotype_type``.

Summable forms (:mod:`genofed.common.wire.summable`; the coordinator
receives only their sums over sites, whose shapes R, B, T and G the
scoring file and the study fix)::

    prs_match        matched_sites          int64 (R,)   1 where the site matched the row
                                                         (a MATCHED_CODES code): sums to the
                                                         sites matching it
                     effect_counts          int64 (R, 2) as sent
                     effect_counts_withheld int64 (R,)   0/1: sums to the sites withholding
    prs_moments      moments                float64 (3,) as sent
    prs_stats        histogram              int64 (B+2,) as sent
                     histogram_suppressed   int64 (B+2,) 0/1: sums to the sites withholding
                     gz, gg, zz             float64      as sent
      with the request's ``roc`` = true (a logistic model; the sites' ROC arrays
      are left out otherwise):
                     roc_filled             float64 (T, 2) the site's cases, controls with
                                                         z >= t at every threshold, those it
                                                         withheld interpolated from the ones
                                                         it released (:func:`filled_roc_counts`)
                     roc_released           int64 (T, 2) 0/1: sums to the sites releasing
                     class_totals           int64 (2,)   as sent
      in: + roc bool (1,)
    prs_logistic     grad, hess, loglik, third  float64 as sent, of the shapes the
                                                request's ``beta`` and ``firth`` fix
    prs_calibration  calibration            float64 (G, 3) as sent (withheld groups are 0)
                     calibration_suppressed int64 (G,)   0/1: sums to the sites withholding

The ROC interpolation is the site's own (on its counts), so the pooled ROC
is the same whether the coordinator fills each site's counts (as it did) or
the sites do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from statistics import NormalDist
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from scipy import stats

from genofed.common.errors import ParamError
from genofed.common.wire.checked import checked_array
from genofed.common.wire.pgx import PGX_GLM_STATS_KIND, PGX_LOGISTIC_KIND
from genofed.common.wire.pgx import SUMMABLE_FORMS as _PGX_FORMS

PRS_MATCH_KIND: Final = "prs_match"
PRS_MOMENTS_KIND: Final = "prs_moments"
PRS_STATS_KIND: Final = "prs_stats"
PRS_LOGISTIC_KIND: Final = "prs_logistic"
PRS_CALIBRATION_KIND: Final = "prs_calibration"
PRS_REQUEST_KINDS: Final = frozenset(
    {PRS_MATCH_KIND, PRS_MOMENTS_KIND, PRS_STATS_KIND, PRS_LOGISTIC_KIND, PRS_CALIBRATION_KIND}
)

#: Per-row match codes (``row_status``).
MATCH_ABSENT: Final = 0  # no variant at this chromosome and position
MATCH_EXACT: Final = 1  # alleles as written, effect allele = ALT
MATCH_SWAPPED: Final = 2  # alleles as written, effect allele = REF
MATCH_FLIPPED: Final = 3  # other strand, effect allele = ALT after complementing
MATCH_FLIPPED_SWAPPED: Final = 4  # other strand, effect allele = REF after complementing
MATCH_OTHER_ALLELES: Final = 5  # a variant at the position, with other alleles
MATCH_AMBIGUOUS_DROPPED: Final = 6  # A/T or C/G row, dropped (ambiguous = "drop")
MATCHED_CODES: Final = (MATCH_EXACT, MATCH_SWAPPED, MATCH_FLIPPED, MATCH_FLIPPED_SWAPPED)
MATCH_NAMES: Final = {
    MATCH_ABSENT: "absent",
    MATCH_EXACT: "exact",
    MATCH_SWAPPED: "swapped",
    MATCH_FLIPPED: "strand_flipped",
    MATCH_FLIPPED_SWAPPED: "strand_flipped_swapped",
    MATCH_OTHER_ALLELES: "other_alleles",
    MATCH_AMBIGUOUS_DROPPED: "ambiguous_dropped",
}

#: Standardized-score range split into the histogram's equal bins.
HISTOGRAM_RANGE: Final = (-3.0, 3.0)
_STD = NormalDist()

#: Fact a site reports with ``prs_moments``: "binary" or "quantitative" (as glm).
PHENOTYPE_TYPE_FACT: Final = "prs_phenotype_type"

#: Fact a site reports with ``prs_match``: its rows per match code (JSON object).
MATCHING_FACT: Final = "prs_matching"


def histogram_edges(n_bins: int) -> np.ndarray:
    """Inner edges of the histogram (``n_bins + 1`` values); bins 0 and -1 are the tails."""
    return np.linspace(HISTOGRAM_RANGE[0], HISTOGRAM_RANGE[1], n_bins + 1)


def roc_thresholds(n: int) -> np.ndarray:
    """``n`` thresholds at the standard normal quantiles k/(n+1), k = 1..n."""
    return np.array([_STD.inv_cdf(k / (n + 1)) for k in range(1, n + 1)], dtype=np.float64)


def group_edges(n_groups: int) -> np.ndarray:
    """Inner edges of the calibration groups: normal quantiles k/G, k = 1..G-1."""
    return np.array([_STD.inv_cdf(k / n_groups) for k in range(1, n_groups)], dtype=np.float64)


#: ``prs`` parameter defaults and limits.
DEFAULT_N_BINS: Final = 12
DEFAULT_THRESHOLDS: Final = 19
DEFAULT_CALIBRATION_GROUPS: Final = 10
AMBIGUOUS_RULES: Final = ("keep", "drop")
PRS_MODELS: Final = ("auto", "linear", "logistic")
_HEX64 = frozenset("0123456789abcdef")


def check_prs(params: dict[str, Any]) -> dict[str, Any]:
    """Check a ``prs`` analysis's parameters together (raises ``ParamError``)."""
    if not params["scoring_file"]:
        raise ParamError(
            "missing key 'scoring_file'",
            'name a PGS Catalog scoring file, e.g. scoring_file = "PGS000001.txt.gz"',
        )
    pinned = params["scoring_sha256"]
    if pinned and not (len(pinned) == 64 and set(pinned) <= _HEX64):
        raise ParamError(
            "scoring_sha256 must be 64 lowercase hex digits",
            "use the output of: sha256sum SCORING_FILE",
        )
    if not params["phenotype"]:
        raise ParamError(
            "missing key 'phenotype'", 'name the phenotype column, e.g. phenotype = "DISEASE"'
        )
    covariates = params["covariates"]
    if not all(isinstance(c, str) and c for c in covariates):
        raise ParamError("covariates must be a list of column names", 'e.g. ["AGE", "SEX"]')
    if len(set(covariates)) != len(covariates) or params["phenotype"] in covariates:
        raise ParamError(
            "covariates must be distinct and must not include the phenotype",
            "list each covariate column once",
        )
    if params["model"] not in PRS_MODELS:
        raise ParamError(
            f"model must be one of {PRS_MODELS}, not {params['model']!r}",
            '"auto" picks logistic for a case/control phenotype and linear otherwise',
        )
    for key, low, high in (
        ("n_bins", 2, 100),
        ("thresholds", 1, 200),
        ("calibration_groups", 2, 50),
    ):
        if not low <= params[key] <= high:
            raise ParamError(f"{key} must lie in [{low}, {high}], not {params[key]}")
    if params["ambiguous"] not in AMBIGUOUS_RULES:
        raise ParamError(
            f"ambiguous must be one of {AMBIGUOUS_RULES}, not {params['ambiguous']!r}",
            '"keep" matches A/T and C/G variants as written (forward strand); "drop" excludes them',
        )
    return {**params, "covariates": tuple(covariates)}


def match_counts(status: np.ndarray) -> dict[str, int]:
    """One site's number of scoring rows per match code, and matched in all (``prs_matching``)."""
    return {
        **{name: int(np.sum(status == code)) for code, name in MATCH_NAMES.items()},
        "matched": int(np.isin(status, MATCHED_CODES).sum()),
    }


def filled_roc_counts(
    counts: npt.NDArray[np.int64],
    released: npt.NDArray[np.bool_],
    totals: npt.NDArray[np.int64],
    thresholds: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """One site's (T, 2) counts at every threshold, interpolating where it withheld them.

    Per class, the released share above each threshold is taken to the
    probit scale, where a normal score is a straight line in the threshold;
    withheld thresholds are interpolated on that line between released
    neighbours (and extrapolated along the end segments; with one released
    point the line has slope 1, as for a standardized score). Shares of 0 or
    1 are clipped half a sample inside.
    """
    out = np.empty((len(thresholds), 2))
    for c in range(2):
        total = float(totals[c])
        if total <= 0:
            out[:, c] = 0.0
            continue
        known = np.flatnonzero(released[:, c])
        share = np.clip(counts[known, c] / total, 0.5 / total, 1.0 - 0.5 / total)
        q = stats.norm.isf(share)  # q = (t - mean) / sd for a normal class
        t = thresholds[known]
        if len(known) >= 2:
            line = np.interp(thresholds, t, q)
            lo_slope = (q[1] - q[0]) / (t[1] - t[0])
            hi_slope = (q[-1] - q[-2]) / (t[-1] - t[-2])
            line = np.where(thresholds < t[0], q[0] + lo_slope * (thresholds - t[0]), line)
            line = np.where(thresholds > t[-1], q[-1] + hi_slope * (thresholds - t[-1]), line)
        elif len(known) == 1:
            line = q[0] + (thresholds - t[0])
        else:
            line = np.asarray(thresholds, dtype=np.float64)
        filled = total * stats.norm.sf(line)
        filled[known] = counts[known, c]
        out[:, c] = filled
    return out


def _length(reply: Mapping[str, np.ndarray], name: str) -> int:
    """The length of the vector ``reply[name]`` (which fixes the other arrays' shapes)."""
    got = reply.get(name)
    if got is None or got.ndim != 1:
        raise ValueError(f"{name} is missing or is not a vector")
    return len(got)


def _flags(reply: Mapping[str, np.ndarray], name: str, shape: tuple[int, ...]) -> np.ndarray:
    """A 0/1 flag array as int64, so that its sum counts the sites flagging each cell."""
    return checked_array(reply, name, shape, "b").astype(np.int64)


def _match_form(
    reply: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Sites matching and withholding each scoring row, and the effect-allele counts."""
    r = _length(reply, "row_status")
    status = checked_array(reply, "row_status", (r,), "iu")
    return {
        "matched_sites": np.isin(status, MATCHED_CODES).astype(np.int64),
        "effect_counts": checked_array(reply, "effect_counts", (r, 2), "iu").astype(np.int64),
        "effect_counts_withheld": _flags(reply, "effect_counts_withheld", (r,)),
    }


def _moments_form(
    reply: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """``moments`` (3,): samples, sum and sum of squares of the scores, summed as sent."""
    return {"moments": checked_array(reply, "moments", (3,), "f").astype(np.float64)}


def _stats_form(
    reply: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The histogram, the regression sums and, when the request asks, the filled ROC counts."""
    roc = inputs.get("roc")
    if roc is None or roc.shape != (1,) or roc.dtype != np.bool_:
        raise ValueError("the request's roc flag is missing or malformed")
    b = _length(reply, "histogram")
    out = {
        "histogram": checked_array(reply, "histogram", (b,), "iu").astype(np.int64),
        "histogram_suppressed": _flags(reply, "histogram_suppressed", (b,)),
        **_PGX_FORMS[PGX_GLM_STATS_KIND](reply, inputs),
    }
    if roc[0]:
        counts = reply.get("roc_counts")
        if counts is None or counts.ndim != 2 or counts.shape[1] != 2:
            raise ValueError(
                "roc_counts is missing or is not a (T, 2) table: the ROC needs a "
                "case/control phenotype"
            )
        t = counts.shape[0]
        counts = checked_array(reply, "roc_counts", (t, 2), "iu")
        released = checked_array(reply, "roc_released", (t, 2), "b")
        totals = checked_array(reply, "class_totals", (2,), "iu")
        out["roc_filled"] = filled_roc_counts(counts, released, totals, roc_thresholds(t))
        out["roc_released"] = released.astype(np.int64)
        out["class_totals"] = totals.astype(np.int64)
    return out


def _calibration_form(
    reply: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Per group: samples, cases, fitted sum (summed as sent); sites withholding it."""
    g = _length(reply, "calibration_suppressed")
    return {
        "calibration": checked_array(reply, "calibration", (g, 3), "f").astype(np.float64),
        "calibration_suppressed": _flags(reply, "calibration_suppressed", (g,)),
    }


#: Request kind -> its summable form (:mod:`genofed.common.wire.summable`).
SUMMABLE_FORMS: Final[
    Mapping[
        str, Callable[[Mapping[str, np.ndarray], Mapping[str, np.ndarray]], dict[str, np.ndarray]]
    ]
] = {
    PRS_MATCH_KIND: _match_form,
    PRS_MOMENTS_KIND: _moments_form,
    PRS_STATS_KIND: _stats_form,
    # the same arrays as pgx's logistic rounds (one row, p predictors)
    PRS_LOGISTIC_KIND: _PGX_FORMS[PGX_LOGISTIC_KIND],
    PRS_CALIBRATION_KIND: _calibration_form,
}


__all__ = [
    "AMBIGUOUS_RULES",
    "DEFAULT_CALIBRATION_GROUPS",
    "DEFAULT_N_BINS",
    "DEFAULT_THRESHOLDS",
    "HISTOGRAM_RANGE",
    "MATCHED_CODES",
    "MATCHING_FACT",
    "MATCH_ABSENT",
    "MATCH_AMBIGUOUS_DROPPED",
    "MATCH_EXACT",
    "MATCH_FLIPPED",
    "MATCH_FLIPPED_SWAPPED",
    "MATCH_NAMES",
    "MATCH_OTHER_ALLELES",
    "MATCH_SWAPPED",
    "PHENOTYPE_TYPE_FACT",
    "PRS_CALIBRATION_KIND",
    "PRS_LOGISTIC_KIND",
    "PRS_MATCH_KIND",
    "PRS_MODELS",
    "PRS_MOMENTS_KIND",
    "PRS_REQUEST_KINDS",
    "PRS_STATS_KIND",
    "SUMMABLE_FORMS",
    "check_prs",
    "filled_roc_counts",
    "group_edges",
    "histogram_edges",
    "match_counts",
    "roc_thresholds",
]
