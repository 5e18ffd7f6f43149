"""Combine half of polygenic risk scores: pooled scores' distribution, association, AUC.

* Rows: a scoring row is used when every site matched it (so every site
  computes the same score); its mean-imputation frequency is the pooled
  effect-allele frequency over every genotyped sample (plink2 ``--score``'s
  default on the pooled cohort).
* Standardization: the pooled mean and sample SD (``ddof = 1``) of
  ``SCORE1_SUM`` over the analysis samples, from the sites' summed moments.
* Association: the standardized score is the one "variant" of the glm
  machinery (:mod:`genofed.coordinator.combine.glm`): OLS, or logistic with
  plink2's Newton rules and Firth fallback, adjusted for the covariates. Its
  coefficient is the log odds ratio (or the phenotype change) per SD, with a
  Wald 95 % CI (normal for logistic, t for linear).
* AUC: the ROC through the study's thresholds plus (0, 0) and (1, 1), by
  the trapezoid rule. Each site collapses thresholds so that none of its
  cells is small; where a site withheld a threshold its counts there are
  interpolated between its released neighbours (by the site, in its summable
  form, :func:`genofed.common.wire.prs.filled_roc_counts`; the coordinator
  receives the sum over sites), so the AUC is exact for the
  threshold grid only when every site released every threshold (the summary
  says how many were). The trapezoid differs from the exact (Mann-Whitney)
  AUC by the case-control pairs that share a cell of the grid.
* Calibration: per score group, observed cases against the sum of the fitted
  probabilities of the adjusted logistic model, summed over the sites that
  released the group, and the Hosmer-Lemeshow statistic over the groups
  (df = groups - 2).

Every function here works on sums over sites (what ``ask_sum`` returns);
:func:`plan_rows` and :func:`pooled_auc` also take each site's arrays and
add them up first. Pure core: arrays in, arrays out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

from genofed.common.wire.glm import multisets
from genofed.common.wire.prs import MATCHED_CODES, filled_roc_counts, match_counts
from genofed.coordinator.combine.glm import GlmResult, PooledGram, unpack

__all__ = [
    "Calibration",
    "RowPlan",
    "Standardization",
    "association",
    "auc_from_sums",
    "calibration",
    "plan_from_sums",
    "plan_rows",
    "pooled_auc",
    "pooled_gram",
    "pooled_histogram",
    "qc_kept_rows",
    "standardization",
]

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class RowPlan:
    """Which scoring rows every site uses, their imputation frequencies, and match counts."""

    use: npt.NDArray[np.bool_]
    impute_freq: F64
    per_site: tuple[dict[str, int], ...]
    withheld: npt.NDArray[np.bool_]  # rows some site withheld


def plan_rows(
    statuses: Sequence[np.ndarray],
    effect_counts: Sequence[np.ndarray],
    withheld: Sequence[np.ndarray],
) -> RowPlan:
    """Rows matched at every site, withheld by none, called somewhere; pooled frequencies.

    A row a site withheld (small allele or missing-call count) has no pooled
    frequency to impute with, so no site scores it. From each site's arrays;
    :func:`plan_from_sums` is the same plan from their sums over sites.
    """
    return plan_from_sums(
        np.sum([np.isin(s, MATCHED_CODES) for s in statuses], axis=0),
        np.sum(effect_counts, axis=0),
        np.sum(np.asarray(withheld, dtype=np.int64), axis=0),
        len(statuses),
        [
            {**match_counts(s), "withheld": int(np.sum(w))}
            for s, w in zip(statuses, withheld, strict=True)
        ],
    )


def plan_from_sums(
    matched_sites: npt.ArrayLike,
    effect_counts: npt.ArrayLike,
    withheld_sites: npt.ArrayLike,
    n_sites: int,
    matching: Sequence[Mapping[str, int]],
) -> RowPlan:
    """The row plan from the sums over ``n_sites`` sites (:func:`plan_rows`' rules).

    ``matched_sites`` (R,) counts the sites matching each row,
    ``effect_counts`` (R, 2) sums called samples and effect dosage,
    ``withheld_sites`` (R,) counts the sites withholding each row; ``matching``
    is each site's rows per match code (:func:`genofed.common.wire.prs.match_counts`; public: the
    site's variant table decides it), to which ``used`` is added.
    """
    matched = np.asarray(matched_sites) == n_sites
    hidden = np.asarray(withheld_sites) > 0
    counts = np.asarray(effect_counts).reshape(len(matched), 2)
    called, dosage = counts[:, 0], counts[:, 1]
    use = matched & ~hidden & (called > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        freq = np.where(use, dosage / (2.0 * np.maximum(called, 1)), 0.0)
    per_site = tuple({**site, "used": int(use.sum())} for site in matching)
    return RowPlan(use=use, impute_freq=freq.astype(np.float64), per_site=per_site, withheld=hidden)


@dataclass(frozen=True)
class Standardization:
    n: int
    mean: float
    sd: float


def standardization(moments: Sequence[np.ndarray]) -> Standardization:
    """Pooled mean and sample SD from per-site (n, sum, sum of squares)."""
    n, total, squares = np.sum(moments, axis=0).tolist()
    if n < 2:
        raise ValueError("fewer than two analysis samples across the sites")
    mean = total / n
    var = (squares - n * mean * mean) / (n - 1)
    return Standardization(round(n), float(mean), float(np.sqrt(max(var, 0.0))))


def pooled_histogram(
    counts: Sequence[np.ndarray], withheld: Sequence[np.ndarray]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Summed bin counts and, per bin, the number of sites that withheld it."""
    return (
        np.sum(counts, axis=0).astype(np.int64),
        np.sum(withheld, axis=0).astype(np.int64),
    )


def pooled_gram(
    gz: Sequence[np.ndarray], gg: Sequence[np.ndarray], zz: Sequence[np.ndarray], k: int
) -> PooledGram:
    """The pooled Gram over ``[1, z, C_1..C_k, y]`` for the one "variant" z (no missing calls)."""
    q = k + 2
    if any(np.shape(z) != (len(multisets(q, 2)),) for z in zz):
        raise ValueError(f"zz must have shape ({len(multisets(q, 2))},)")
    gz_sum = np.sum(gz, axis=0).reshape(q)
    full = np.empty((1, q + 1, q + 1))
    zpos = np.array([0, *range(2, q + 1)])
    full[:, zpos[:, None], zpos[None, :]] = unpack(np.sum(zz, axis=0)[None, :], q, 2)
    full[0, 1, zpos] = gz_sum
    full[0, zpos, 1] = gz_sum
    full[0, 1, 1] = float(np.sum(gg))
    zz_sum = np.asarray(np.sum(zz, axis=0), dtype=np.float64)
    return PooledGram(gram=full, a1_is_ref=np.zeros(1, dtype=np.bool_), k=k, zz=zz_sum)


def association(result: GlmResult) -> dict[str, object]:
    """Effect per SD of the score, its 95 % CI and p-value (odds ratios for logistic)."""
    beta, se, p = float(result.beta[0, 0]), float(result.se[0, 0]), float(result.p[0, 0])
    err = str(result.errcode[0])
    if result.model == "logistic":
        z = stats.norm.ppf(0.975)
        lo, hi = beta - z * se, beta + z * se
        return {
            "model": "logistic",
            "or_per_sd": float(np.exp(beta)),
            "or_per_sd_ci": [float(np.exp(lo)), float(np.exp(hi))],
            "log_or_per_sd": beta,
            "log_or_se": se,
            "p": p,
            "firth": bool(result.firth[0]),
            "errcode": err,
            "obs_ct": int(result.obs_ct[0]),
        }
    df = int(result.obs_ct[0]) - (result.beta.shape[1] + 1)
    t = stats.t.ppf(0.975, df) if df > 0 else float("nan")
    return {
        "model": "linear",
        "beta_per_sd": beta,
        "beta_per_sd_ci": [beta - t * se, beta + t * se],
        "se": se,
        "p": p,
        "errcode": err,
        "obs_ct": int(result.obs_ct[0]),
    }


#: One site's counts at every threshold, withheld ones interpolated (the sites' form uses it).
_fill_collapsed = filled_roc_counts


def pooled_auc(
    roc_counts: Sequence[np.ndarray],
    released: Sequence[np.ndarray],
    class_totals: Sequence[np.ndarray],
    thresholds: F64,
) -> tuple[float, F64, int]:
    """AUC, the ROC points (FPR, TPR), and how many thresholds every site released.

    Thresholds are in increasing order. A site's count at a threshold it
    collapsed is interpolated (:func:`_fill_collapsed`); where every site
    released every threshold the AUC is exact for that threshold set.
    """
    counts = np.sum(
        [
            _fill_collapsed(c, r, n, thresholds)
            for c, r, n in zip(roc_counts, released, class_totals, strict=True)
        ],
        axis=0,
    )
    return auc_from_sums(
        counts,
        np.sum(np.asarray(released, dtype=np.int64), axis=0),
        np.sum(class_totals, axis=0),
        len(roc_counts),
        thresholds,
    )


def auc_from_sums(
    filled: npt.ArrayLike,
    released_sites: npt.ArrayLike,
    class_totals: npt.ArrayLike,
    n_sites: int,
    thresholds: F64,
) -> tuple[float, F64, int]:
    """:func:`pooled_auc` from the sites' sums: filled counts, sites releasing, class totals.

    ``filled`` (T, 2) is the sum of the sites' counts with withheld ones
    interpolated (:func:`genofed.common.wire.prs.filled_roc_counts`),
    ``released_sites`` (T, 2) how many of the ``n_sites`` sites released each
    count, ``class_totals`` (2,) the pooled cases and controls.
    """
    counts = np.asarray(filled, dtype=np.float64).reshape(len(thresholds), 2)
    cases, controls = np.asarray(class_totals).reshape(2).tolist()
    exact = int(np.all(np.asarray(released_sites) == n_sites, axis=1).sum())
    if cases == 0 or controls == 0:
        return float("nan"), np.zeros((0, 2)), exact
    tpr = counts[::-1, 0] / cases  # highest threshold first
    fpr = counts[::-1, 1] / controls
    x = np.concatenate([[0.0], fpr, [1.0]])
    y = np.concatenate([[0.0], tpr, [1.0]])
    auc = float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))
    return auc, np.column_stack([x, y]), exact


@dataclass(frozen=True)
class Calibration:
    """Per group: samples, cases, expected cases; sites that withheld it; Hosmer-Lemeshow."""

    n: F64
    cases: F64
    expected: F64
    withheld_at: npt.NDArray[np.int64]
    hl_statistic: float
    hl_df: int
    hl_p: float


def calibration(tables: Sequence[np.ndarray], withheld: Sequence[np.ndarray]) -> Calibration:
    """Pool the sites' calibration tables; Hosmer-Lemeshow over the groups with samples.

    A group a site withheld holds the other sites' samples only: its observed
    and expected cases still compare like with like (same samples).
    """
    total = np.sum(tables, axis=0)
    hidden = np.sum(withheld, axis=0).astype(np.int64)
    n, cases, expected = total[:, 0], total[:, 1], total[:, 2]
    ok = (n > 0) & (expected > 0) & (expected < n)
    if ok.sum() > 2:
        e = expected[ok]
        hl = float(np.sum((cases[ok] - e) ** 2 / (e * (1.0 - e / n[ok]))))
        df = int(ok.sum()) - 2
        p = float(stats.chi2.sf(hl, df))
    else:
        hl, df, p = float("nan"), 0, float("nan")
    return Calibration(n, cases, expected, hidden, hl, df, p)


_COMPLEMENT = str.maketrans("ACGT", "TGCA")


def qc_kept_rows(
    chrom: Sequence[str],
    pos: npt.NDArray[np.int64],
    effect: Sequence[str],
    other: Sequence[str],
    kept: tuple[Sequence[str], npt.NDArray[np.int64], Sequence[str], Sequence[str]],
) -> npt.NDArray[np.bool_]:
    """Scoring rows whose variant the study's ``[qc]`` kept (plink2 scores after its filters).

    ``kept`` is the QC-kept variants' (bare chromosome, position, REF, ALT). A row
    is kept when a kept variant has its position and its two alleles, as given or
    on the other strand (a row without an other allele: its effect allele is one of
    the variant's); the sites match the rows themselves, so this only drops rows.
    """
    keys: set[tuple[str, int, str, str]] = set()
    for c, p, r, a in zip(kept[0], kept[1].tolist(), kept[2], kept[3], strict=True):
        lo, hi = sorted((r, a))
        keys.add((c, int(p), lo, hi))
        keys.add((c, int(p), r, ""))
        keys.add((c, int(p), a, ""))
    out = np.zeros(len(pos), dtype=np.bool_)
    for i, (c, p, e, o) in enumerate(zip(chrom, pos.tolist(), effect, other, strict=True)):
        for ea, oa in ((e, o), (e.translate(_COMPLEMENT), o.translate(_COMPLEMENT))):
            key = (c, int(p), *sorted((ea, oa))) if oa else (c, int(p), ea, "")
            if key in keys:
                out[i] = True
                break
    return out
