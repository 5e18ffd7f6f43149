"""LogisticFit skips Newton for Firth exactly where plink2's allele-dosage separation test does.

plink2 (GlmLogisticThread in ``plink2_glm_logistic.cc``) goes straight to
Firth, or reports SEPARATION without Firth, when A1 or the omitted major
allele has a case dosage of 0 or equal to its total dosage. The pooled sums
reach the coordinator in floating point (a REF A1's sums through the sites'
single-precision sums over missing calls), so the test must see integers.
"""

from __future__ import annotations

import numpy as np

from genofed.coordinator.combine.glm import LogisticFit, PooledGram, pool_stats
from tests.unit.coordinator.test_glm_combine import _cohort, _parts, _site_stats


def _first_round_firth(gram: PooledGram) -> np.ndarray:
    """Per variant: does the first round evaluate it for Firth (True) or Newton (False)?"""
    pending = LogisticFit(gram, "fallback").pending()
    assert pending is not None
    out = np.zeros(len(gram.a1_is_ref), dtype=bool)
    out[pending.index] = pending.firth
    return out


def _single_carriers(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Variants 0-3: a single REF carrier (A1 is REF), case or control, with missing calls."""
    rng = np.random.default_rng(seed)
    n = 400
    dos, cov, y = _cohort(rng, n, 6, 2, 0.05, binary=True)
    case, control = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    for j, who in enumerate([case[0], control[0], case[-1], control[-1]]):
        missing = dos[j] < 0
        dos[j] = 2  # ALT copies: every sample homozygous ALT ...
        dos[j, missing] = -9
        dos[j, who] = 2 - 1 - (j >= 2)  # ... but one REF carrier (het, or hom for 2 and 3)
    return dos, cov, y


def test_separation__single_ref_carrier_with_missing_calls_goes_to_firth_despite_float32_sums() -> (
    None
):
    dos, cov, y = _single_carriers(5)
    rng = np.random.default_rng(1)
    parts = _parts(rng, len(y), 3)
    sites = _site_stats(dos, cov, y, parts, [False, True, False], miss_dtype=np.float32)
    gram = pool_stats(sites, len(dos), cov.shape[1])
    assert gram.a1_is_ref[:4].all() and gram.hard_calls
    p = gram.p
    case_dosage = gram.gram[:4, 1, p]
    total_dosage = gram.gram[:4, 0, 1]
    assert not ((case_dosage == 0) | (case_dosage == total_dosage)).all()  # not exact integers
    assert _first_round_firth(gram)[:4].all()
    never = LogisticFit(gram, "never")
    assert list(never.errcode[:4]) == ["SEPARATION,REF"] * 4


def test_separation__major_allele_with_no_copy_in_the_cases_goes_to_firth() -> None:
    rng = np.random.default_rng(2)
    n = 400
    dos, cov, _ = _cohort(rng, n, 3, 1, 0.0, binary=True)
    y = (rng.random(n) < 0.25).astype(float)
    case, control = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    dos[0] = 0
    dos[0, case] = 2  # every case homozygous ALT, the minor allele ...
    dos[0, control[::4]] = 1  # ... which some controls carry, so A1's counts do not separate
    assert 2 * case.size + control[::4].size < n  # ALT stays the minor allele
    gram = pool_stats(_site_stats(dos, cov, y, _parts(rng, n, 2), [False, False]), 3, 1)
    p = gram.p
    assert not gram.a1_is_ref[0]
    assert 0 < gram.gram[0, 1, p] < gram.gram[0, 0, 1]  # A1: cases and controls carry it
    assert _first_round_firth(gram)[0]


def test_separation__a_score_column_is_not_rounded() -> None:
    # a polygenic score (prs) is no hard call: a case sum of 0.4 must not read as 0
    rng = np.random.default_rng(4)
    n = 200
    y = (rng.random(n) < 0.4).astype(float)
    score = rng.normal(size=n)
    score[y == 1] -= score[y == 1].mean() - 0.4 / (y == 1).sum()
    x = np.column_stack([np.ones(n), score, rng.normal(size=n), y])
    pooled = PooledGram(gram=(x.T @ x)[None], a1_is_ref=np.zeros(1, dtype=bool), k=1)
    assert not pooled.hard_calls
    assert abs(pooled.gram[0, 1, 3] - 0.4) < 1e-9
    assert not _first_round_firth(pooled)[0]
