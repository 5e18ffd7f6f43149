"""A known-truth recurrence outcome for synthetic cohorts: a genomic score, times and events.

``RSCORE`` is a genomic recurrence score on a 0-100 scale, in the manner of
an expression-based assay (Oncotype DX): an integer ``round(22 + 10 z)``
clipped to [0, 100], where ``z`` is standard normal and correlated with the
genetic value G (``SCORE_GENETIC_SHARE`` of its variance comes from G). The
usual cut points 18 and 31 split it into low, intermediate and high risk.
About ``MISSING_SCORE_RATE`` of the scores (at least one) are missing.

Recurrence-free survival follows a Weibull proportional-hazards model::

    h(t) = h0(t) exp(SCORE_LOG_HR (RSCORE - 22)/10 + AGE_LOG_HR (AGE - 55)/10
                     + SEX_LOG_HR [SEX = 2])
    h0(t) = BASELINE_RATE * SHAPE * t^(SHAPE - 1)       (t in days)

so the hazard ratios per 10 score points, per 10 years of age and for women
are ``exp`` of those constants (a missing score is drawn but not reported).
Censoring: each individual enters the study at a uniformly random time in
the ``ACCRUAL_DAYS`` before the data freeze, so follow-up ends after
``Uniform(FOLLOW_UP_MIN, FOLLOW_UP_MIN + ACCRUAL_DAYS)`` days; whichever of
recurrence and end of follow-up comes first is observed. ``RFS_DAYS`` is
that time, rounded up to whole days (so tied times occur, as in real
registries), and ``RFS_EVENT`` is 1 for a recurrence and 0 for censoring.

Everything here is pure: arrays and a ``numpy.random.Generator`` in, arrays out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genofed.synth.phenotypes import AGE_MEAN, HERITABILITY, Covariates

__all__ = [
    "ACCRUAL_DAYS",
    "AGE_LOG_HR",
    "BASELINE_RATE",
    "FOLLOW_UP_MIN",
    "MISSING_SCORE_RATE",
    "SCORE_CUTS",
    "SCORE_GENETIC_SHARE",
    "SCORE_LOG_HR",
    "SCORE_MEAN",
    "SEX_LOG_HR",
    "SHAPE",
    "Recurrence",
    "simulate_recurrence",
]

SCORE_MEAN, SCORE_SD = 22.0, 10.0
SCORE_GENETIC_SHARE = 0.6
SCORE_CUTS = (18.0, 31.0)
SCORE_LOG_HR = 0.5  # per 10 score points
AGE_LOG_HR = 0.2  # per 10 years
SEX_LOG_HR = -0.3  # female vs male
SHAPE = 1.3
#: Baseline (score 22, age 55, male) recurrence-free at 10 years: exp(-rate * 3652^shape) = 0.7.
BASELINE_RATE = -np.log(0.7) / 3652.0**SHAPE
FOLLOW_UP_MIN = 365.0
ACCRUAL_DAYS = 3287.0  # follow-up between 1 and 10 years
MISSING_SCORE_RATE = 0.01


@dataclass(frozen=True)
class Recurrence:
    """``score`` (float64, NaN when missing), ``days`` (int64 >= 1), ``event`` (int8 0/1)."""

    score: np.ndarray
    days: np.ndarray
    event: np.ndarray


def simulate_recurrence(
    genetic: np.ndarray, covariates: Covariates, rng: np.random.Generator
) -> Recurrence:
    """Scores, recurrence-free times and event indicators for every individual."""
    n = genetic.shape[0]
    g = genetic / np.sqrt(HERITABILITY)
    z = np.sqrt(SCORE_GENETIC_SHARE) * g + np.sqrt(1 - SCORE_GENETIC_SHARE) * rng.standard_normal(n)
    score = np.clip(np.rint(SCORE_MEAN + SCORE_SD * z), 0, 100)
    eta = (
        SCORE_LOG_HR * (score - SCORE_MEAN) / 10.0
        + AGE_LOG_HR * (covariates.age.astype(np.float64) - AGE_MEAN) / 10.0
        + SEX_LOG_HR * (covariates.sex == 2)
    )
    # Inverse of the cumulative hazard H(t) = rate * exp(eta) * t^shape at an Exp(1) draw.
    recur = (rng.exponential(size=n) / (BASELINE_RATE * np.exp(eta))) ** (1.0 / SHAPE)
    follow_up = FOLLOW_UP_MIN + ACCRUAL_DAYS * rng.random(n)
    event = recur <= follow_up
    days = np.maximum(np.ceil(np.minimum(recur, follow_up)), 1).astype(np.int64)
    missing = rng.choice(n, size=min(n, max(1, round(MISSING_SCORE_RATE * n))), replace=False)
    score = score.astype(np.float64)
    score[missing] = np.nan
    return Recurrence(score=score, days=days, event=event.astype(np.int8))
