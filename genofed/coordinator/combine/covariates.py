"""Covariates plink2 leaves out or refuses, decided from the pooled covariate Gram.

Before it regresses any variant, PLINK v2.00a3.5's ``--glm`` looks at the
covariates alone, over the samples of the analysis:

* a covariate with one value for every sample is left out of the model with
  ``Warning: Excluding constant covariate 'X' from --glm.`` and the model is
  fitted without it (``IsConstCovar`` in ``plink2_glm.cc``: GlmMain, and
  GlmDetermineCovars per phenotype);
* on the covariates that remain (their sample correlation matrix, without
  the intercept or the genotype: ``CheckMaxCorrAndVif`` in
  ``plink2_glm_shared.cc``), it stops the analysis with an error (exit 7)
  when two covariates correlate above 0.999 (``CORR_TOO_HIGH``, naming the
  first such pair in row order of the lower triangle), when the matrix
  cannot be inverted (``VIF_INFINITE``: LAPACK's reciprocal condition below
  1e-14) or when a variance inflation factor is above 50 (``VIF_TOO_HIGH``,
  naming the first such covariate). For a linear model a singular matrix
  is reported as ``VIF_INFINITE`` even when a pair is above 0.999
  (``InitNmPrecomp`` in ``GlmAllocFillAndTestCovarsQt`` replaces the code).

:func:`check_covariates` makes the same decisions from the pooled sums of
``z z^T``, ``z = [1, C, y]``, that every site sends once
(:mod:`genofed.common.wire.glm`): a covariate is constant when its centred
sum of squares is below ``CONSTANT_TOLERANCE`` of its sum of squares (exact
zero is out of reach in floating point sums; a real covariate varies by
far more), and the correlation matrix is singular when its reciprocal
condition number is below ``SINGULAR_RCOND`` (looser than plink2's 1e-14,
so that exactly collinear covariates read as such whatever the rounding of
the sums; a variance inflation factor above 1e10 is collinearity in all
but name). Collinear covariates are named: those that carry weight in the
matrix's null space.

:class:`Design` then fits the model without the left-out covariates while
the sites keep computing with every covariate of the signed study: it
gives the left-out coefficients the value 0 in what it sends, and keeps
the rows and columns of the kept predictors of what comes back. With a
zero coefficient a covariate changes no fitted value, so these are exactly
the sums of the smaller model.

Taking samples back (:func:`take_back`). Having left covariates out,
plink2 chooses the samples again with only the covariates it keeps
(GlmDetermineCovars step 2, ``plink2_glm.cc``): a sample that missed only
left-out covariates is analysed after all. If that adds samples, it adds
back any left-out covariate that every sample of the new set has and that
varies over it. The covariates constant over all their values are left out
before any of this (GlmMain, with the warning), which comes to the same
here. The coordinator asks the sites for ``glm_covariates`` with the kept
covariates (:mod:`genofed.common.wire.glm`): the new set's size, and for
each left-out covariate whether every site has it on all of the new set
and its sums there; when the set is larger it asks ``glm_stats`` again with
the final mask, and the sites' zero columns for the unused covariates read
as constant and are left out by :class:`Design` as before. (``glm`` only:
``prs`` and ``pgx`` leave constant covariates out but do not take samples
back.)

Separated covariates (:func:`separation_request`, :func:`separated_covariates`).
With ``firth-fallback`` plink2 fits every variant by Firth when a kept
covariate separates cases from controls, and with ``no-firth`` it stops
(``CheckForSeparatedCovar``, ``GlmDetermineCovars``): the cases' range and
the controls' range do not interleave (one ends where, or before, the other
begins). Ranges are single people's values, which the sites do not send;
but for a covariate with two values over the analysis samples the ranges
fail to interleave exactly when every case, or every control, has the same
value, and that follows from sums: the ``glm_separation`` round's third and
fourth standardized power sums say whether the covariate is two-valued
(kurtosis equals skewness squared plus one only for two-point
distributions, within :data:`TWO_POINT_TOLERANCE`) and give its two values,
and ``zz``'s sum of the covariate over the cases then counts the cases (and
the controls) at each. A covariate with three or more values is not
checked: a continuous one that separates makes Newton fail on every
variant, so plink2's fallback and GenoFed's both fit every variant by Firth
(``tests/reference/test_firth_covariate_separation_vs_plink2.py``); a
discrete one with three or more values that separates is the case left
open.

Not reproduced (the pooled sums cannot show them): for a quantitative
phenotype plink2 drops the one sample that keeps a covariate from being
constant (step 3, "constant except for one sample"). Nor is the corner
where the left-out set found over the samples with every covariate differs
from the one plink2 finds after its GlmMain exclusion (a covariate constant
over the complete samples but not over those that miss only a
GlmMain-excluded one).

Pure core: arrays in, arrays out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Final

import numpy as np
import numpy.typing as npt

from genofed.common.errors import InputError
from genofed.common.wire.glm import multisets
from genofed.coordinator.combine.glm import MAX_CORR, VIF_THRESHOLD, PooledGram, unpack

__all__ = [
    "CONSTANT_TOLERANCE",
    "SINGULAR_RCOND",
    "SUMMARY_KEY",
    "TAKEN_BACK_KEY",
    "TWO_POINT_TOLERANCE",
    "CovariateCheck",
    "Design",
    "TakeBack",
    "check_covariates",
    "checked_design",
    "kept_mask",
    "separated_covariates",
    "separation_request",
    "take_back",
]

F64 = npt.NDArray[np.float64]

#: Centred sum of squares, relative to the sum of squares, below which a covariate is constant.
CONSTANT_TOLERANCE: Final = 1e-9
#: Reciprocal 1-norm condition number below which the correlation matrix is singular.
SINGULAR_RCOND: Final = 1e-10
#: Standardized kurtosis minus (skewness^2 + 1), relative to the kurtosis, at or below which a
#: covariate is two-valued (the difference is 0 for two-point distributions only; a third value
#: held by one sample in 10^6 moves it by about 10^-6).
TWO_POINT_TOLERANCE: Final = 1e-9
#: Key of an analysis's summary that names the constant covariates left out (only when some are).
SUMMARY_KEY: Final = "constant covariates left out"


@dataclass(frozen=True)
class CovariateCheck:
    """What :func:`check_covariates` decided: the covariates kept and those left out."""

    keep: tuple[int, ...]
    constant: tuple[str, ...]
    n: int

    def summary(self) -> dict[str, object]:
        """``{SUMMARY_KEY: "X, Y"}`` when covariates were left out, else nothing."""
        return {SUMMARY_KEY: ", ".join(self.constant)} if self.constant else {}

    def warning(self, what: str) -> str | None:
        """The message that says which constant covariates were left out, if any."""
        if not self.constant:
            return None
        names = _names(self.constant)
        verb = "is" if len(self.constant) == 1 else "are"
        return (
            f"{what}: covariate {names} {verb} constant over the {self.n} analysis samples "
            f"and left out of the model, as plink2 leaves {'it' if verb == 'is' else 'them'} "
            'out ("Excluding constant covariate")'
        )


@dataclass(frozen=True)
class TakeBack:
    """What :func:`take_back` decided from the pooled ``glm_covariates`` sums."""

    #: 1 for each covariate the final model uses (the ``covariates_used`` input)
    used: npt.NDArray[np.uint8]
    #: samples with the phenotype and every used covariate, and how many more than before
    n: int
    added: int
    #: left-out covariates plink2 adds back (present on every new sample, not constant)
    restored: tuple[str, ...]

    def summary(self) -> dict[str, object]:
        """``{TAKEN_BACK_KEY: added}`` when samples were taken back, else nothing."""
        return {TAKEN_BACK_KEY: self.added} if self.added else {}


#: Key of an analysis's summary: samples analysed because a covariate they missed was left out.
TAKEN_BACK_KEY: Final = "samples taken back (missed only left-out covariates)"


def kept_mask(k: int, keep: Sequence[int]) -> npt.NDArray[np.uint8]:
    """The ``covariates_used`` input for the covariates ``keep`` of ``k``."""
    used = np.zeros(k, dtype=np.uint8)
    used[list(keep)] = 1
    return used


def take_back(
    check: CovariateCheck,
    names: Sequence[str],
    n_before: int,
    pooled: dict[str, np.ndarray],
    n_sites: int,
) -> TakeBack:
    """plink2's step 2 from the pooled ``glm_covariates`` sums (asked with ``check.keep``).

    ``n_before`` is the first round's sample count; ``pooled`` holds the
    summed ``n``, ``complete``, ``sums`` and ``squares``. A left-out
    covariate is added back only when the new set is larger, every site has
    it on all of it and it is not constant over it (centred sum of squares
    above :data:`CONSTANT_TOLERANCE` of its sum of squares).
    """
    k = len(names)
    used = kept_mask(k, check.keep)
    n = int(np.asarray(pooled["n"]).reshape(-1)[0])
    if n <= n_before:
        return TakeBack(used=used, n=n_before, added=0, restored=())
    complete = np.asarray(pooled["complete"]) == n_sites
    sums = np.asarray(pooled["sums"], dtype=np.float64)
    squares = np.asarray(pooled["squares"], dtype=np.float64)
    centred = squares - sums * sums / n
    varies = centred > CONSTANT_TOLERANCE * np.maximum(squares, 0.0)
    restored = [j for j in range(k) if not used[j] and complete[j] and varies[j]]
    used[restored] = 1
    return TakeBack(used=used, n=n, added=n - n_before, restored=tuple(names[j] for j in restored))


def _names(names: Sequence[str]) -> str:
    quoted = [repr(n) for n in names]
    if len(quoted) <= 2:
        return " and ".join(quoted)
    return ", ".join(quoted[:-1]) + " and " + quoted[-1]


def check_covariates(zz: F64, names: Sequence[str], *, linear: bool, what: str) -> CovariateCheck:
    """plink2's covariate checks on the pooled ``sum z z^T`` (packed, ``z = [1, C, y]``).

    Returns the covariates to keep (indices into ``names``); raises
    :class:`InputError` naming the covariates where plink2 stops. ``what``
    names the analysis in messages (``"glm analysis 'gwas'"``).
    """
    k = len(names)
    q = k + 2
    full = unpack(np.asarray(zz, dtype=np.float64)[None, :], q, 2)[0]
    n = float(full[0, 0])
    n_samples = round(n)
    if k == 0 or n < 2:
        return CovariateCheck(keep=tuple(range(k)), constant=(), n=n_samples)
    sums = full[0, 1 : k + 1]
    dot = full[1 : k + 1, 1 : k + 1]
    squares = np.diag(dot).copy()
    centred = squares - sums * sums / n
    constant = centred <= CONSTANT_TOLERANCE * np.maximum(squares, 0.0)
    keep = tuple(int(j) for j in np.flatnonzero(~constant))
    check = CovariateCheck(
        keep=keep, constant=tuple(names[int(j)] for j in np.flatnonzero(constant)), n=n_samples
    )
    if len(keep) < 2:
        return check
    idx = np.asarray(keep)
    cov = (dot[np.ix_(idx, idx)] - np.outer(sums[idx], sums[idx]) / n) / (n - 1.0)
    sd = np.sqrt(np.diag(cov))
    corr = cov / np.outer(sd, sd)
    np.fill_diagonal(corr, 1.0)
    kept = [names[j] for j in keep]
    counted = f"over the {n_samples} analysis samples"
    singular, involved = _singular(corr)
    if singular and linear:
        raise _collinear(what, [kept[j] for j in involved], counted)
    for i in range(1, len(keep)):
        for j in range(i):
            if abs(corr[i, j]) > MAX_CORR:
                a, b = kept[j], kept[i]
                raise InputError(
                    f"{what}: covariates {a!r} and {b!r} are correlated beyond "
                    f"|r| = {MAX_CORR:g} (r = {corr[i, j]:.6g}) {counted}, so the model "
                    "cannot tell their effects apart; plink2 stops here too (CORR_TOO_HIGH)",
                    hint=f"remove {a!r} or {b!r} from the analysis's covariates in the study",
                )
    if singular:
        raise _collinear(what, [kept[j] for j in involved], counted)
    vif = np.diag(np.linalg.inv(corr))
    for j, value in enumerate(vif):
        if value > VIF_THRESHOLD:
            raise InputError(
                f"{what}: covariate {kept[j]!r} has a variance inflation factor of "
                f"{value:.4g} (above {VIF_THRESHOLD:g}) {counted}: the other covariates "
                "nearly determine it; plink2 stops here too (VIF_TOO_HIGH)",
                hint=(
                    f"remove {kept[j]!r}, or the covariates it depends on, from the "
                    "analysis's covariates in the study"
                ),
            )
    return check


def checked_design(
    gram: PooledGram, names: Sequence[str], *, linear: bool, what: str
) -> tuple[PooledGram, Design, CovariateCheck]:
    """:func:`check_covariates` on ``gram.zz``; the model's Gram and :class:`Design`."""
    if gram.zz is None:
        raise ValueError("the pooled Gram has no covariate sums (zz)")
    check = check_covariates(gram.zz, names, linear=linear, what=what)
    design = Design(k=len(names), keep=check.keep)
    return design.gram(gram), design, check


def _singular(corr: F64) -> tuple[bool, list[int]]:
    """Whether ``corr`` is singular, and the covariates with weight in its null space."""
    try:
        np.linalg.cholesky(corr)
        rcond = 1.0 / np.linalg.cond(corr, 1)
    except np.linalg.LinAlgError:
        rcond = 0.0
    if not rcond < SINGULAR_RCOND:
        return False, []
    values, vectors = np.linalg.eigh(corr)
    null = vectors[:, values <= max(SINGULAR_RCOND * values.max(), values.min())]
    weight = np.abs(null).max(axis=1)
    return True, [int(j) for j in np.flatnonzero(weight > 1e-6 * weight.max())]


def _collinear(what: str, involved: list[str], counted: str) -> InputError:
    names = _names(involved)
    how = (
        "one is a linear function of the other"
        if len(involved) == 2
        else "one is a linear combination of the others"
    )
    return InputError(
        f"{what}: covariates {names} are collinear {counted} ({how}), so the model "
        "cannot be fitted; plink2 stops here too (VIF_INFINITE)",
        hint=f"remove one of {', '.join(map(repr, involved))} from the analysis's "
        "covariates in the study",
    )


@cache
def _packed_index(n: int, positions: tuple[int, ...], degree: int) -> npt.NDArray[np.intp]:
    """Columns of ``n``-predictor packed rows that hold the entries of the ``positions`` ones."""
    where = {s: j for j, s in enumerate(multisets(n, degree))}
    return np.asarray(
        [where[tuple(positions[a] for a in s)] for s in multisets(len(positions), degree)],
        dtype=np.intp,
    )


@dataclass(frozen=True)
class Design:
    """The model's predictors ``[1, g, C_keep]`` among the sites' ``[1, g, C_1..C_k]``."""

    k: int
    keep: tuple[int, ...]

    @classmethod
    def every(cls, k: int) -> Design:
        return cls(k=k, keep=tuple(range(k)))

    @property
    def reduced(self) -> bool:
        return len(self.keep) < self.k

    @property
    def positions(self) -> tuple[int, ...]:
        """Kept predictors, as indices into the sites' ``[1, g, C_1..C_k]``."""
        return (0, 1, *(2 + j for j in self.keep))

    def names(self, covariates: Sequence[str]) -> tuple[str, ...]:
        return tuple(covariates[j] for j in self.keep)

    def gram(self, gram: PooledGram) -> PooledGram:
        """The pooled Gram of the kept predictors (and the phenotype)."""
        if not self.reduced:
            return gram
        pos = np.array([*self.positions, self.k + 2])
        zpos = np.array([0, *(1 + j for j in self.keep), self.k + 1])
        zz = None
        if gram.zz is not None:
            zz = np.asarray(gram.zz)[_packed_index(self.k + 2, tuple(zpos.tolist()), 2)]
        return PooledGram(
            gram=np.ascontiguousarray(gram.gram[:, pos[:, None], pos[None, :]]),
            a1_is_ref=gram.a1_is_ref,
            k=len(self.keep),
            withheld=gram.withheld,
            zz=zz,
            hard_calls=gram.hard_calls,
        )

    def site_beta(self, beta: F64) -> F64:
        """Coefficients for the sites: 0 for every left-out covariate."""
        if not self.reduced:
            return beta
        out = np.zeros((len(beta), self.k + 2))
        out[:, list(self.positions)] = beta
        return out

    def moments(self, packed: F64, degree: int) -> F64:
        """The kept predictors' entries of packed (V, #multisets) sums over all predictors."""
        if not self.reduced:
            return packed
        if degree == 1:
            return np.ascontiguousarray(np.asarray(packed)[:, list(self.positions)])
        return np.asarray(packed)[:, _packed_index(self.k + 2, self.positions, degree)]


def _covariate_sums(zz: F64, k: int) -> tuple[float, F64, F64, float, F64]:
    """From packed ``sum z z^T``: n, sums of C, sums of C^2, cases, sums of C over the cases."""
    q = k + 2
    full = unpack(np.asarray(zz, dtype=np.float64)[None, :], q, 2)[0]
    cov = slice(1, k + 1)
    return (
        float(full[0, 0]),
        full[0, cov].copy(),
        np.diag(full[cov, cov]).copy(),
        float(full[0, q - 1]),
        full[cov, q - 1].copy(),
    )


def separation_request(zz: F64, k: int, keep: Sequence[int]) -> tuple[F64, F64]:
    """The ``glm_separation`` inputs: pooled means and standard deviations of the kept covariates.

    Left-out covariates (and any without spread) get centre 0 and scale 1:
    their sums are not read.
    """
    n, sums, squares, _, _ = _covariate_sums(zz, k)
    center = np.zeros(k)
    scale = np.ones(k)
    for j in keep:
        mean = sums[j] / n
        var = squares[j] / n - mean * mean
        if var > 0 and np.isfinite(var):
            center[j], scale[j] = mean, np.sqrt(var)
    return center, scale


def separated_covariates(
    zz: F64, moments: F64, center: F64, scale: F64, keep: Sequence[int]
) -> tuple[list[int], list[int]]:
    """The kept two-valued covariates that separate cases from controls, as plink2 finds them.

    ``zz`` is the pooled ``sum z z^T`` of the analysis samples (a binary
    phenotype coded 0/1), ``moments`` the pooled ``glm_separation`` reply
    asked with ``center`` and ``scale``. Returns (quasi-separating,
    completely separating) covariate indices: in the first, every case or
    every control has one value; in the second, the cases have one value
    and the controls the other.
    """
    k = len(center)
    n, sums, squares, cases, case_sums = _covariate_sums(zz, k)
    controls = n - cases
    quasi: list[int] = []
    complete: list[int] = []
    if n < 2 or cases < 0.5 or controls < 0.5:
        return quasi, complete
    for j in keep:
        if not squares[j] / n - (sums[j] / n) ** 2 > 0:
            continue  # not spread: the covariate checks leave it out
        m3 = moments[j, 0] / n
        m4 = moments[j, 1] / n
        if not (np.isfinite(m3) and np.isfinite(m4)):
            continue
        if m4 - (m3 * m3 + 1.0) > TWO_POINT_TOLERANCE * max(m4, 1.0):
            continue  # three or more values
        root = np.sqrt(m3 * m3 + 4.0)
        low = center[j] + scale[j] * (m3 - root) / 2.0
        high = center[j] + scale[j] * (m3 + root) / 2.0
        if not high > low:
            continue
        case_high = (case_sums[j] - low * cases) / (high - low)
        control_high = (sums[j] - case_sums[j] - low * controls) / (high - low)
        counts = np.array([case_high, cases - case_high, control_high, controls - control_high])
        if np.abs(counts - np.rint(counts)).max() > 1e-6 * n:
            continue  # the sums do not fit two values: leave it unchecked
        empty = np.rint(counts) == 0
        if empty.any():
            quasi.append(int(j))
            if (empty[0] and empty[3]) or (empty[1] and empty[2]):
                complete.append(int(j))
    return quasi, complete
