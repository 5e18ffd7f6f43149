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
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Any, Final

import numpy as np

from genofed.common.errors import ParamError

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


__all__ = [
    "AMBIGUOUS_RULES",
    "DEFAULT_CALIBRATION_GROUPS",
    "DEFAULT_N_BINS",
    "DEFAULT_THRESHOLDS",
    "HISTOGRAM_RANGE",
    "MATCHED_CODES",
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
    "check_prs",
    "group_edges",
    "histogram_edges",
    "roc_thresholds",
]
