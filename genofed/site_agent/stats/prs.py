"""Local half of polygenic risk scores: match scoring rows, score samples, summarize.

Layouts and meanings are in :mod:`genofed.common.wire.prs`.

Matching (per scoring row, against this site's variants): same chromosome
(a leading ``chr`` ignored) and position, and the same unordered allele pair
``{effect_allele, other_allele}`` as the site's ``{REF, ALT}``: *exact* when
the effect allele is ALT, *swapped* when it is REF (the row then counts
``2 - ALT dosage``). Failing that, a SNP row whose complemented alleles
(A<->T, C<->G) give the pair matches on the other strand (*flipped*). A row
whose two alleles are complements of each other (A/T, C/G: strand-ambiguous)
is never flipped: with ``ambiguous = "keep"`` it matches only as written
(the forward strand, as PGS Catalog harmonized files and GRCh37/38 genotype
files both use), with ``"drop"`` it is excluded and counted. Multi-base
alleles are matched as written only. Everything else is *absent* (no variant
at the position) or *other alleles*, counted and reported.

Scores follow plink2 ``--score`` with ``cols=+scoresums`` (``SCORE1_SUM``):
per sample, the sum over used rows of weight x effect-allele dosage, a
missing call contributing ``2 x`` the effect-allele frequency (plink2's
default mean imputation; the coordinator sends the pooled frequency so that
the federated score equals plink2's on the pooled cohort).

Pure core: arrays in, arrays out; scoring is one matrix product per chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from genofed.common.chromosomes import bare_chrom
from genofed.common.wire.prs import (
    MATCH_ABSENT,
    MATCH_AMBIGUOUS_DROPPED,
    MATCH_EXACT,
    MATCH_FLIPPED,
    MATCH_FLIPPED_SWAPPED,
    MATCH_OTHER_ALLELES,
    MATCH_SWAPPED,
)

__all__ = [
    "RowMatch",
    "calibration_counts",
    "collapse_thresholds",
    "complement",
    "complementary_suppression",
    "effect_dosage_counts",
    "histogram_counts",
    "match_rows",
    "score_chunk",
]

F64 = npt.NDArray[np.float64]
_COMPLEMENT = str.maketrans("ACGT", "TGCA")


def complement(allele: str) -> str:
    """The allele on the other strand, base by base (SNPs are what this is used for)."""
    return allele.translate(_COMPLEMENT)


@dataclass(frozen=True)
class RowMatch:
    """Per scoring row: match code, local variant index (-1: none), effect allele is ALT."""

    status: npt.NDArray[np.int8]
    index: npt.NDArray[np.int64]
    effect_is_alt: npt.NDArray[np.bool_]


def match_rows(
    site_chrom: np.ndarray,
    site_pos: np.ndarray,
    site_ref: np.ndarray,
    site_alt: np.ndarray,
    chrom: np.ndarray,
    pos: np.ndarray,
    effect_allele: np.ndarray,
    other_allele: np.ndarray,
    *,
    drop_ambiguous: bool,
) -> RowMatch:
    """Match each scoring row to a local variant (see the module docstring for the rules)."""
    at: dict[tuple[str, int], list[tuple[int, str, str]]] = {}
    for i, (c, p, r, a) in enumerate(
        zip(
            site_chrom.tolist(),
            site_pos.tolist(),
            site_ref.tolist(),
            site_alt.tolist(),
            strict=True,
        )
    ):
        at.setdefault((bare_chrom(str(c)), int(p)), []).append((i, str(r).upper(), str(a).upper()))
    n = len(pos)
    status = np.full(n, MATCH_ABSENT, dtype=np.int8)
    index = np.full(n, -1, dtype=np.int64)
    effect_is_alt = np.zeros(n, dtype=np.bool_)
    for j, (c, p, ea, oa) in enumerate(
        zip(
            chrom.tolist(), pos.tolist(), effect_allele.tolist(), other_allele.tolist(), strict=True
        )
    ):
        candidates = at.get((bare_chrom(str(c)), int(p)))
        if not candidates:
            continue
        snp = len(ea) == 1 and len(oa) == 1
        ambiguous = snp and complement(ea) == oa
        if ambiguous and drop_ambiguous:
            status[j] = MATCH_AMBIGUOUS_DROPPED
            continue
        status[j] = MATCH_OTHER_ALLELES
        tries = [(ea, oa, False)]
        if snp and not ambiguous:
            tries.append((complement(ea), complement(oa), True))
        for e, o, flipped in tries:
            hit = next((v for v in candidates if {v[1], v[2]} == {e, o}), None)
            if hit is None:
                continue
            is_alt = hit[2] == e
            index[j] = hit[0]
            effect_is_alt[j] = is_alt
            if flipped:
                status[j] = MATCH_FLIPPED if is_alt else MATCH_FLIPPED_SWAPPED
            else:
                status[j] = MATCH_EXACT if is_alt else MATCH_SWAPPED
            break
    return RowMatch(status=status, index=index, effect_is_alt=effect_is_alt)


def _effect(
    dosages: npt.NDArray[np.int8], effect_is_alt: npt.NDArray[np.bool_]
) -> tuple[F64, npt.NDArray[np.bool_]]:
    """Effect-allele dosages (V, n) with 0 at missing calls, and the missing mask."""
    d = np.asarray(dosages)
    missing = d < 0
    e = d.astype(np.float64)
    swap = ~np.asarray(effect_is_alt, dtype=np.bool_)
    if swap.any():
        e[swap] = 2.0 - e[swap]
    e[missing] = 0.0
    return e, missing


def effect_dosage_counts(
    dosages: npt.NDArray[np.int8], effect_is_alt: npt.NDArray[np.bool_]
) -> npt.NDArray[np.int64]:
    """(V, 2): called samples and effect-allele dosage sum, per variant row of ``dosages``."""
    e, missing = _effect(dosages, effect_is_alt)
    called = (~missing).sum(axis=1)
    return np.stack([called, np.rint(e.sum(axis=1))], axis=1).astype(np.int64)


def score_chunk(
    dosages: npt.NDArray[np.int8],
    effect_is_alt: npt.NDArray[np.bool_],
    weight: F64,
    impute_freq: F64,
) -> F64:
    """(n,): this chunk's contribution to every sample's SCORE1_SUM (mean imputation).

    With ALT dosage g, a row scores ``w g`` (effect = ALT) or ``w (2 - g)``
    (effect = REF), i.e. ``s g + b`` with ``s = +-w`` and ``b = 0 or 2w``; a
    missing call scores ``2 w f`` instead. One matrix-vector product over the
    called dosages, then a correction at each missing call.
    """
    d = np.asarray(dosages)
    alt = np.asarray(effect_is_alt, dtype=np.bool_)
    w = np.asarray(weight, dtype=np.float64)
    slope = np.where(alt, w, -w)
    offset = np.where(alt, 0.0, 2.0 * w)
    score = slope @ np.maximum(d, 0).astype(np.float64) + offset.sum()
    rows, cols = np.nonzero(d < 0)  # missing calls are few: correct them one by one
    if rows.size:
        imputed = 2.0 * w * np.asarray(impute_freq, dtype=np.float64)
        score += np.bincount(cols, weights=(imputed - offset)[rows], minlength=d.shape[1])
    return np.asarray(score, dtype=np.float64)


def complementary_suppression(
    counts: npt.NDArray[np.int64], withheld: npt.NDArray[np.bool_]
) -> npt.NDArray[np.bool_]:
    """Add the smallest other non-empty cell when exactly one cell of a table is withheld.

    The table's total is released elsewhere (the sample count), so a single
    withheld cell could be recovered by subtraction; withholding a second one
    prevents that. Returns the new mask.
    """
    out = np.asarray(withheld, dtype=np.bool_).copy()
    c = np.asarray(counts)
    if out.sum() == 1:
        others = np.flatnonzero((c > 0) & ~out)
        if others.size:
            out[others[np.argmin(c[others])]] = True
    return out


def histogram_counts(z: F64, edges: F64) -> npt.NDArray[np.int64]:
    """(len(edges)+1,): samples below edges[0], in each [edges[i], edges[i+1]), and above."""
    return np.bincount(np.searchsorted(edges, z, side="right"), minlength=len(edges) + 1).astype(
        np.int64
    )


def collapse_thresholds(
    z: F64, case: npt.NDArray[np.bool_], thresholds: F64, min_cell: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Cases and controls with ``z >= t`` per threshold, and which of them may be released.

    For each class on its own, the released thresholds cut the class into
    cells (between consecutive released thresholds, and below the lowest and
    above the highest); every cell must hold 0 or at least ``min_cell``
    samples, or an analyst could difference two cumulative counts into a
    small cell. Thresholds are dropped greedily from the low end (cell
    collapsing): one is kept only if the cell it closes is large enough, and
    the top cell is merged down until it is. Withheld counts are released as 0.
    Both arrays are (T, 2): cases, controls. The class totals themselves are
    not protected here: the regression sums (``zz`` holds the sum of y)
    release them, as a ``glm`` does.
    """
    t = np.asarray(thresholds, dtype=np.float64)
    counts = np.stack(
        [
            (z[case][None, :] >= t[:, None]).sum(axis=1),
            (z[~case][None, :] >= t[:, None]).sum(axis=1),
        ],
        axis=1,
    ).astype(np.int64)
    released = np.zeros((len(t), 2), dtype=np.bool_)
    for c, total in enumerate((int(case.sum()), int((~case).sum()))):

        def ok(cell: int) -> bool:
            return cell == 0 or cell >= min_cell

        kept: list[int] = []
        above_prev = total
        for i in range(len(t)):
            if ok(above_prev - int(counts[i, c])):
                kept.append(i)
                above_prev = int(counts[i, c])
        while kept and not ok(int(counts[kept[-1], c])):
            kept.pop()
        released[kept, c] = True
    return np.where(released, counts, 0), released


def calibration_counts(
    z: F64, case: npt.NDArray[np.bool_], fitted: F64, edges: F64
) -> tuple[npt.NDArray[np.int64], F64]:
    """Per score group: (G, 3) samples, cases, controls; and (G,) summed fitted probabilities."""
    group = np.searchsorted(edges, z, side="right")
    g = len(edges) + 1
    n = np.bincount(group, minlength=g)
    cases = np.bincount(group[case], minlength=g)
    fit = np.bincount(group, weights=fitted, minlength=g).astype(np.float64)
    return np.stack([n, cases, n - cases], axis=1).astype(np.int64), fit
