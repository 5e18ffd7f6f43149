"""Known-truth phenotypes and covariates for synthetic cohorts.

Covariates: ``AGE`` in whole years, normal(55, 12) clipped to 30–80; ``SEX``
1 (male) or 2 (female) with equal probability.

Genetics: ``N_CAUSAL`` causal variants are drawn among the common ones (ALT
frequency between 5 % and 95 %). Each gets a standardised effect z ~ N(0, 1),
i.e. a per-ALT-allele effect z / sqrt(2p(1-p)), so rarer causal variants have
larger per-allele effects (the usual "alpha = -1" model). The genetic value G
is then rescaled to variance ``HERITABILITY`` in the cohort and the per-allele
effects recorded after that rescaling are the truth a GWAS should recover.

``QPHENO = G + 0.3·(AGE-55)/10 + 0.4·[SEX=2] + 0.5·[pop B] + e``, with
e ~ N(0, 1 - HERITABILITY). The population term is a non-genetic difference
between ancestries (environment, care), which is what makes population
stratification confound an unadjusted test.

``DISEASE`` uses the liability-threshold model: a liability with the same G,
its own covariate and population effects and independent noise; the top
``PREVALENCE`` fraction are cases. Coded as PLINK does: 1 control, 2 case.

About ``MISSING_PHENOTYPE_RATE`` of each phenotype (at least one value) is
missing, independently, so that missing-value handling is exercised.

Everything here is pure: arrays and a ``numpy.random.Generator`` in, arrays out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "AGE_EFFECT",
    "AGE_MAX",
    "AGE_MEAN",
    "AGE_MIN",
    "AGE_SD",
    "COMMON_FREQUENCY",
    "DISEASE_MISSING",
    "HERITABILITY",
    "LIABILITY_AGE_EFFECT",
    "LIABILITY_POPULATION_EFFECT",
    "LIABILITY_SEX_EFFECT",
    "MISSING_PHENOTYPE_RATE",
    "N_CAUSAL",
    "POPULATION_EFFECT",
    "PREVALENCE",
    "SEX_EFFECT",
    "Covariates",
    "Phenotypes",
    "choose_causal",
    "draw_covariates",
    "simulate_phenotypes",
]

N_CAUSAL = 15
COMMON_FREQUENCY = 0.05
HERITABILITY = 0.3
PREVALENCE = 0.3
AGE_MEAN, AGE_SD, AGE_MIN, AGE_MAX = 55.0, 12.0, 30, 80
AGE_EFFECT = 0.3  # per 10 years
SEX_EFFECT = 0.4  # female vs male
POPULATION_EFFECT = 0.5  # population B vs A
LIABILITY_AGE_EFFECT = 0.4
LIABILITY_SEX_EFFECT = -0.2
LIABILITY_POPULATION_EFFECT = 0.3
MISSING_PHENOTYPE_RATE = 0.01
DISEASE_MISSING = -9


@dataclass(frozen=True)
class Covariates:
    """``age`` in years (int16) and ``sex`` 1/2 (int8), one per individual."""

    age: np.ndarray
    sex: np.ndarray


@dataclass(frozen=True)
class Phenotypes:
    """``qpheno`` (float64, NaN when missing), ``disease`` (int8: 1, 2, -9 missing).

    ``effects`` are per-ALT-allele effects on QPHENO (and on the liability) of
    the causal variants, in the order of the causal dosage columns;
    ``genetic`` is each individual's genetic value G (centred, variance
    ``HERITABILITY``), which :mod:`genofed.synth.recurrence` builds its
    genomic recurrence score from.
    """

    qpheno: np.ndarray
    disease: np.ndarray
    effects: np.ndarray
    liability_threshold: float
    genetic: np.ndarray


def draw_covariates(n: int, rng: np.random.Generator) -> Covariates:
    """Ages and sexes of ``n`` individuals."""
    age = np.clip(np.rint(rng.normal(AGE_MEAN, AGE_SD, size=n)), AGE_MIN, AGE_MAX)
    sex = rng.integers(1, 3, size=n)
    return Covariates(age=age.astype(np.int16), sex=sex.astype(np.int8))


def choose_causal(alt_frequency: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of up to ``N_CAUSAL`` causal variants, common ones first.

    Common means ALT frequency within [5 %, 95 %]; when a tiny cohort has too
    few, the most common of the rest fill the set.
    """
    maf = np.minimum(alt_frequency, 1.0 - alt_frequency)
    common = np.flatnonzero(maf >= COMMON_FREQUENCY)
    k = min(N_CAUSAL, alt_frequency.shape[0])
    if common.size >= k:
        return np.sort(rng.choice(common, size=k, replace=False))
    rest = np.setdiff1d(np.arange(maf.shape[0]), common)
    fill = rest[np.argsort(-maf[rest], kind="stable")[: k - common.size]]
    return np.sort(np.concatenate([common, fill]))


def _mask_some(n: int, rng: np.random.Generator) -> np.ndarray:
    count = min(n, max(1, round(MISSING_PHENOTYPE_RATE * n)))
    return rng.choice(n, size=count, replace=False)


def simulate_phenotypes(
    causal_dosage: np.ndarray,
    alt_frequency: np.ndarray,
    population: np.ndarray,
    covariates: Covariates,
    rng: np.random.Generator,
) -> Phenotypes:
    """QPHENO and DISEASE from true dosages (individuals × causal variants, int8)."""
    n = causal_dosage.shape[0]
    p = np.clip(alt_frequency, 1e-12, 1 - 1e-12)
    raw = rng.standard_normal(p.shape[0]) / np.sqrt(2 * p * (1 - p))
    genetic = causal_dosage.astype(np.float64) @ raw
    sd = float(genetic.std())
    scale = np.sqrt(HERITABILITY) / sd if sd > 0 else 0.0
    genetic = (genetic - genetic.mean()) * scale
    effects = raw * scale

    age = (covariates.age.astype(np.float64) - AGE_MEAN) / 10.0
    female = (covariates.sex == 2).astype(np.float64)
    pop_b = population.astype(np.float64)
    noise_sd = np.sqrt(1.0 - HERITABILITY)

    qpheno = (
        genetic
        + AGE_EFFECT * age
        + SEX_EFFECT * female
        + POPULATION_EFFECT * pop_b
        + rng.normal(0.0, noise_sd, size=n)
    )
    liability = (
        genetic
        + LIABILITY_AGE_EFFECT * age
        + LIABILITY_SEX_EFFECT * female
        + LIABILITY_POPULATION_EFFECT * pop_b
        + rng.normal(0.0, noise_sd, size=n)
    )
    threshold = float(np.quantile(liability, 1.0 - PREVALENCE))
    disease = np.where(liability > threshold, 2, 1).astype(np.int8)

    qpheno[_mask_some(n, rng)] = np.nan
    disease[_mask_some(n, rng)] = DISEASE_MISSING
    return Phenotypes(
        qpheno=qpheno,
        disease=disease,
        effects=effects,
        liability_threshold=threshold,
        genetic=genetic,
    )
