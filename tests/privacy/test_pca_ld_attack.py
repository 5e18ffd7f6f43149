"""pca's LD round: pair sums over the people called at both would give one person away.

A hostile analyst makes nothing special: at site-a one patient's call is
missing at one common variant ``b``. Summed over the people called at both
variants (plink2's pair-wise rule), each pair ``(a, b)`` in the LD window
sums ``g_a`` over every genotyped sample but that patient, and the counts
round sums it over all of them: the difference is the patient's genotype at
every ``a`` of the window (checked here on the site's own genotypes, as the
old reply would have been). The site now sums every pair over the release's
base set with a missing call at the pooled mean, so the same subtraction
gives nothing, guard on or off.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bed_reader import open_bed

from genofed.synth import SynthSummary, write_cohorts
from tests.privacy.test_attacks import Recording, _edit_genotypes, federation, run, study

PATIENT = 5
STUDY = {"kind": "pca", "id": "pca", "n_pcs": 2, "indep_pairwise": [10, 5, 0.9], "maf": 0.01}


@pytest.fixture(scope="module")
def larger(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    """Sites of 500: enough carriers that a PCA keeps variants under min_cell_count = 10."""
    root = tmp_path_factory.mktemp("ld")
    return write_cohorts(root / "c", sites=3, samples=1500, variants=400, seed=7, missing_rate=0.0)


def _selected(transport: Recording) -> np.ndarray:
    """The variants the coordinator's LD round asks about (as it selects them)."""
    replies = [transport.arrays(s, "pca_counts")[0] for s in ("site-a", "site-b", "site-c")]
    pooled = sum(r["genotype_counts"] for r in replies)
    withheld = np.any([r["withheld"] for r in replies], axis=0)
    called = pooled[:, :3].sum(axis=1)
    f = (pooled[:, 1] + 2 * pooled[:, 2]) / np.maximum(2 * called, 1)
    return np.flatnonzero((called > 0) & ~withheld & (np.minimum(f, 1 - f) >= 0.01))


@pytest.mark.parametrize("guard", [False, True], ids=["guard off", "guard on"])
def test_ld_round__a_missing_call_does_not_give_the_window_away(
    larger: SynthSummary, tmp_path: Path, guard: bool
) -> None:
    sites = federation(larger, tmp_path / "sites", guard=guard)
    bed = sites[0] / "data" / "genotypes.bed"
    before = open_bed(bed).read(dtype="int8")
    probe = Recording(sites)  # which variants an LD round would ask about
    run(study("probe", STUDY), probe, tmp_path / "probe")
    selected = _selected(probe)
    q = len(selected) // 2
    b = int(selected[q])

    def miss(g: np.ndarray) -> None:
        g[PATIENT, b] = np.nan

    _edit_genotypes(sites[0], miss)
    transport = Recording(sites)
    run(study("pca", STUDY), transport, tmp_path / "r")
    assert np.array_equal(_selected(transport), selected)
    (counts,) = transport.arrays("site-a", "pca_counts")
    (ld,) = transport.arrays("site-a", "pca_ld")
    alt = counts["genotype_counts"][:, 1] + 2 * counts["genotype_counts"][:, 2]
    chrom = open_bed(bed).chromosome
    window = [d for d in range(1, 10) if q - d >= 0 and chrom[selected[q - d]] == chrom[b]]
    assert len(window) >= 3
    called_at_b = np.ones(before.shape[0], dtype=bool)
    called_at_b[PATIENT] = False
    for d in window:
        a = int(selected[q - d])
        old_reply = before[called_at_b, a].sum()  # the pair-wise sum plink2's rule gives
        assert alt[a] - old_reply == before[PATIENT, a]  # that subtraction: the patient
        assert ld["ld_n"][q - d, d - 1] == before.shape[0]  # now: every genotyped sample
        assert alt[a] - ld["ld_sum"][q - d, d - 1, 0] == 0.0  # nothing left to subtract
