"""glm under a policy with min_cell_count: a variant few samples miss is withheld, not described.

The missing-call sums of ``glm_stats`` are sums over the samples missing a
call; with one such sample they are that person's covariates and phenotype.
A site whose policy sets ``min_cell_count = k`` withholds every variant that
1..k-1 of its analysis samples miss; the coordinator prints it as NA with
ERRCODE ``SMALL_CELL_WITHHELD``, and every other variant is unchanged.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from genofed.common.study import study_from_mapping
from genofed.coordinator.combine.glm import ERR_WITHHELD
from genofed.coordinator.runner import run_study
from genofed.coordinator.transport import Incoming, Outgoing
from genofed.site_agent.privacy.policy import POLICY_FILE
from genofed.synth import write_cohorts
from tests.harness import InProcessTransport

STUDY = study_from_mapping(
    {
        "study": {"name": "glm-cells"},
        "analysis": [{"kind": "glm", "phenotype": "QPHENO", "covariates": ["AGE", "SEX"]}],
    },
    path=Path("<test>"),
)


class Recording(InProcessTransport):
    def __init__(self, site_dirs: list[Path]) -> None:
        super().__init__(site_dirs)
        self.stats: dict[int, Mapping[str, np.ndarray]] = {}

    def exchange(self, outgoing: Mapping[int, Outgoing], *, timeout: float) -> dict[int, Incoming]:
        got = super().exchange(outgoing, timeout=timeout)
        for node, o in outgoing.items():
            if o.request.kind == "glm_stats":
                self.stats[node] = got[node].arrays
        return got


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory):
    return write_cohorts(
        tmp_path_factory.mktemp("c") / "cohorts", sites=3, samples=240, variants=300, seed=5
    )


def _rows(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines()]


def test_glm__variants_few_samples_miss_are_withheld_and_the_rest_unchanged(
    cohort, tmp_path: Path
) -> None:
    strict = tmp_path / "site-b"
    shutil.copytree(cohort.sites[1], strict)
    policy = strict / POLICY_FILE
    text = policy.read_text()
    assert "min_cell_count = 0" in text
    policy.write_text(text.replace("min_cell_count = 0", "min_cell_count = 5"))

    open_run = tmp_path / "open"
    run_study(STUDY, InProcessTransport(list(cohort.sites)), open_run, engine="in-process")
    transport = Recording([cohort.sites[0], strict, cohort.sites[2]])
    outcome = run_study(STUDY, transport, tmp_path / "strict", engine="in-process")

    header, *before = _rows(open_run / "gwas.QPHENO.glm.linear")
    header2, *after = _rows(tmp_path / "strict" / "gwas.QPHENO.glm.linear")
    assert header == header2
    err = header.index("ERRCODE")
    beta = header.index("BETA")
    held_rows = {r[2] for r in after if r[err] == ERR_WITHHELD}
    assert held_rows, "the synthetic missing calls should leave some variant with 1-4 missing"

    site_b = transport.stats[2]
    n = len(before) // 3  # ADD + AGE + SEX rows per variant
    withheld = np.unpackbits(site_b["withheld"], count=n).astype(bool)
    with_missing = np.unpackbits(site_b["miss_rows"], count=n).astype(bool)
    assert withheld.sum() == len(held_rows)
    assert not (withheld & with_missing).any()  # no missing-call sums for a withheld variant
    assert (site_b["gz"][withheld] == 0).all()
    assert outcome.summary["glm"]["withheld (small cells)"] == len(held_rows)  # type: ignore[index]

    for old, new in zip(before, after, strict=True):
        if new[2] in held_rows:
            assert new[beta] == "NA"
        else:
            assert new == old


def _blank_phenotype(site: Path, column: str, rows: int) -> None:
    """Make the first ``rows`` samples' ``column`` missing (NA) in ``site``'s pheno.tsv."""
    path = site / "data" / "pheno.tsv"
    header, *lines = path.read_text().splitlines()
    j = header.split("\t").index(column)
    for i in range(rows):
        cells = lines[i].split("\t")
        cells[j] = "NA"
        lines[i] = "\t".join(cells)
    path.write_text("\n".join([header, *lines]) + "\n")


@pytest.mark.parametrize(("min_cell", "sent"), [(0, True), (5, False)])
def test_glm__allele_counts_of_fewer_than_min_cell_samples_outside_the_analysis_are_not_sent(
    cohort, tmp_path: Path, min_cell: int, sent: bool
) -> None:
    # two more genotyped samples of site b lack QPHENO, so fewer than 5 are outside the
    # analysis: their allele counts (other_counts) would be those people's genotypes
    site = tmp_path / "site-b"
    shutil.copytree(cohort.sites[1], site)
    _blank_phenotype(site, "QPHENO", 2)
    policy = site / POLICY_FILE
    policy.write_text(
        policy.read_text().replace("min_cell_count = 0", f"min_cell_count = {min_cell}")
    )
    transport = Recording([cohort.sites[0], site, cohort.sites[2]])
    run_study(STUDY, transport, tmp_path / "run", engine="in-process")

    other = transport.stats[2]["other_counts"]
    n_variants = len(np.unpackbits(transport.stats[2]["withheld"]))
    if sent:
        assert other.shape[0] >= n_variants - 7 and other.shape[1] == 2
        assert 2 <= int(other[:, 0].max()) < 5  # these two and the cohort's own few
    else:
        assert other.shape == (0, 2)


def test_glm__few_missing_impute_keeps_those_variants_and_changes_nothing_else(
    cohort, tmp_path: Path
) -> None:
    """few_missing = "impute": a site imputes the few missing calls instead of withholding."""
    strict = tmp_path / "site-b"
    shutil.copytree(cohort.sites[1], strict)
    policy = strict / POLICY_FILE
    policy.write_text(policy.read_text().replace("min_cell_count = 0", "min_cell_count = 5"))
    sites = [cohort.sites[0], strict, cohort.sites[2]]
    imputing = study_from_mapping(
        {
            "study": {"name": "glm-cells"},
            "analysis": [
                {
                    "kind": "glm",
                    "phenotype": "QPHENO",
                    "covariates": ["AGE", "SEX"],
                    "few_missing": "impute",
                }
            ],
        },
        path=Path("<test>"),
    )
    withheld_run = run_study(STUDY, Recording(sites), tmp_path / "w", engine="in-process")
    transport = Recording(sites)
    imputed_run = run_study(imputing, transport, tmp_path / "i", engine="in-process")
    header, *held = _rows(withheld_run.out / "gwas.QPHENO.glm.linear")
    _, *kept = _rows(imputed_run.out / "gwas.QPHENO.glm.linear")
    err, beta = header.index("ERRCODE"), header.index("BETA")
    site_b = transport.stats[2]
    n = len(held) // 3
    with_missing = np.unpackbits(site_b["miss_rows"], count=n).astype(bool)
    assert not with_missing.any()  # no missing-call sums leave site b at all
    was_held = {r[2] for r in held if r[err] == ERR_WITHHELD}
    now_held = {r[2] for r in kept if r[err] == ERR_WITHHELD}
    assert now_held < was_held  # the variants only a few missed come back
    back = was_held - now_held
    assert all(r[beta] != "NA" for r in kept if r[2] in back)
    # variants site b had no missing call at and kept are unchanged
    for old, new in zip(held, kept, strict=True):
        if old[2] not in was_held:
            assert new == old
