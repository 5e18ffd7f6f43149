"""Local half of prs: matching rules, plink2 --score semantics, small-cell protection."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from genofed.common.wire.prs import (
    MATCH_ABSENT,
    MATCH_AMBIGUOUS_DROPPED,
    MATCH_EXACT,
    MATCH_FLIPPED,
    MATCH_FLIPPED_SWAPPED,
    MATCH_OTHER_ALLELES,
    MATCH_SWAPPED,
)
from genofed.site_agent.stats.prs import (
    collapse_thresholds,
    complementary_suppression,
    effect_dosage_counts,
    match_rows,
    score_chunk,
)

SITE = {  # chrom, pos, ref, alt
    "site_chrom": np.array(["1", "1", "1", "2", "chr2"]),
    "site_pos": np.array([10, 20, 30, 40, 50]),
    "site_ref": np.array(["A", "C", "A", "G", "AT"]),
    "site_alt": np.array(["G", "T", "T", "C", "A"]),
}


def _match(rows: list[tuple[str, int, str, str]], drop: bool = False):  # type: ignore[no-untyped-def]
    c, p, e, o = (np.array(x) for x in zip(*rows, strict=True))
    return match_rows(**SITE, chrom=c, pos=p, effect_allele=e, other_allele=o, drop_ambiguous=drop)


def test_match_rows__exact_swapped_flipped_ambiguous_absent() -> None:
    m = _match(
        [
            ("1", 10, "G", "A"),  # exact: effect = ALT
            ("chr1", 10, "A", "G"),  # swapped: effect = REF
            ("1", 20, "A", "G"),  # other strand of C/T, effect A -> T = ALT
            ("1", 20, "G", "A"),  # other strand, effect G -> C = REF
            ("1", 30, "T", "A"),  # A/T ambiguous: as written, effect = ALT
            ("2", 40, "A", "G"),  # G/C site, A/G row: other alleles
            ("1", 99, "A", "G"),  # absent
            ("2", 50, "A", "AT"),  # multi-base: as written
        ]
    )
    assert m.status.tolist() == [
        MATCH_EXACT,
        MATCH_SWAPPED,
        MATCH_FLIPPED,
        MATCH_FLIPPED_SWAPPED,
        MATCH_EXACT,
        MATCH_OTHER_ALLELES,
        MATCH_ABSENT,
        MATCH_EXACT,
    ]
    assert m.index.tolist() == [0, 0, 1, 1, 2, -1, -1, 4]
    assert m.effect_is_alt.tolist() == [True, False, True, False, True, False, False, True]


def test_match_rows__ambiguous_never_flipped_and_dropped_on_request() -> None:
    keep = _match([("1", 30, "A", "T"), ("2", 40, "C", "G")])
    assert keep.status.tolist() == [MATCH_SWAPPED, MATCH_EXACT]  # as written, never flipped
    drop = _match([("1", 30, "A", "T"), ("1", 10, "G", "A")], drop=True)
    assert drop.status.tolist() == [MATCH_AMBIGUOUS_DROPPED, MATCH_EXACT]


def test_score_chunk__plink2_sum_with_mean_imputation() -> None:
    dosages = np.array([[0, 1, 2, -9], [2, -9, 0, 1]], dtype=np.int8)  # ALT counts
    effect_is_alt = np.array([True, False])
    weight = np.array([0.5, -2.0])
    counts = effect_dosage_counts(dosages, effect_is_alt)
    assert counts.tolist() == [[3, 3], [3, 3]]  # called; effect dosage (row 2 counts REF)
    freq = counts[:, 1] / (2.0 * counts[:, 0])
    score = score_chunk(dosages, effect_is_alt, weight, freq)
    e = np.array([[0, 1, 2, 1.0], [0, 1.0, 2, 1]])  # missing -> 2 * 0.5
    np.testing.assert_allclose(score, weight @ e)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(20, 300),
    st.integers(0, 15),
    st.integers(1, 25),
    st.integers(0, 2**32 - 1),
)
def test_collapse_thresholds__no_small_cell_can_be_differenced(
    n: int, min_cell: int, n_thresholds: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    case = rng.random(n) < 0.3
    z = rng.standard_normal(n) + case
    t = np.sort(rng.standard_normal(n_thresholds))
    counts, released = collapse_thresholds(z, case, t, min_cell)
    for c, members in enumerate((z[case], z[~case])):
        kept = np.flatnonzero(released[:, c])
        assert (counts[~released[:, c], c] == 0).all()
        if not kept.size:
            continue  # one cell: the class total, which the regression sums release anyway
        cum = np.concatenate([[members.size], counts[kept, c], [0]])
        cells = -np.diff(cum)
        assert ((cells == 0) | (cells >= min_cell)).all()
        assert counts[kept, c].tolist() == [(members >= t[i]).sum() for i in kept]


def test_complementary_suppression__a_lone_withheld_cell_takes_a_partner() -> None:
    counts = np.array([3, 40, 12, 0, 25])
    first = counts < 10
    first &= counts > 0
    mask = complementary_suppression(counts, first)
    assert mask.tolist() == [True, False, True, False, False]
    both = np.array([True, False, True, False, False])
    assert complementary_suppression(counts, both).tolist() == both.tolist()
