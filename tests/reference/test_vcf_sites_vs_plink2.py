"""Sites holding VCF or BCF files equal plink2 on the pooled VCF/BCF.

The synthetic cohort is written with ``genotype_format="vcf"`` or ``"bcf"``
(each site's genotypes one bgzipped VCF or BCF, 3 % missing calls; pooled/
holds ``pooled.vcf.gz`` / ``pooled.bcf`` beside its ``.bed``); plink2 reads
the pooled file with ``--vcf``/``--bcf --double-id`` (the synthetic FIDs
equal the IIDs, so the phenotype tables match), and the sites' phenotype
tables, which have an FID column, are matched on IID (a VCF has no family
IDs). Tolerances are those of the PLINK 1 comparisons (counts exactly,
floats to plink2's printed precision).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from genofed.coordinator.runner import run_study
from genofed.site_agent.io.genotypes import detect_format
from genofed.site_agent.sitedir import load_site
from genofed.synth import SynthSummary, write_cohorts
from tests.harness import InProcessTransport
from tests.reference.test_pgen_vs_plink2 import (
    _assert_equal_to_plink2,
    _study,
    run_plink2_on_pooled,
)

FLAG = {"vcf": "--vcf", "bcf": "--bcf"}
SUFFIX = {"vcf": ".vcf.gz", "bcf": ".bcf"}


@pytest.fixture(scope="module", params=["vcf", "bcf"])
def cohort(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> SynthSummary:
    return write_cohorts(
        tmp_path_factory.mktemp(request.param) / "cohorts",
        sites=3,
        samples=600,
        variants=500,
        seed=11,
        missing_rate=0.03,
        genotype_format=request.param,
    )


def test_vcf_sites__counts_and_glm_equal_plink2_on_the_pooled_file(
    cohort: SynthSummary, plink2: Path, tmp_path: Path
) -> None:
    fmt = detect_format(load_site(cohort.sites[0]).genotypes)[0]
    assert {detect_format(load_site(s).genotypes)[0] for s in cohort.sites} == {fmt}
    pooled = cohort.pooled
    out = tmp_path / "p2" / "pooled"
    out.parent.mkdir()
    inputs = [FLAG[fmt], str(pooled / f"pooled{SUFFIX[fmt]}"), "--double-id"]
    run_plink2_on_pooled(plink2, inputs, pooled, out)
    outcome = run_study(_study(), InProcessTransport(cohort.sites), tmp_path / "r", engine="t")
    _assert_equal_to_plink2(outcome, out)
