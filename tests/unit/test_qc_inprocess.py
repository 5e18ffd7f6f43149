"""``[qc]`` in a study run in process: the counts round it asks for, what later analyses
get, withheld variants, the report's funnel, and what sites refuse."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from genofed.common.errors import SiteFailure
from genofed.common.messages import Status
from genofed.common.study import study_from_mapping
from genofed.common.wire.records import signed_study
from genofed.coordinator.runner import run_study
from genofed.site_agent.privacy.policy import POLICY_FILE
from genofed.site_agent.release import handle_request
from genofed.synth import write_cohorts
from tests.harness import InProcessTransport

GLM = {"kind": "glm", "phenotype": "QPHENO", "covariates": ["AGE"]}


def _study(qc: dict[str, object], *analyses: dict[str, object]):
    return study_from_mapping(
        {"study": {"name": "qc"}, "qc": qc, "analysis": list(analyses)}, path=Path("<t>")
    )


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory):
    return write_cohorts(
        tmp_path_factory.mktemp("c") / "cohorts",
        sites=3,
        samples=150,
        variants=200,
        seed=3,
        missing_rate=0.03,
    )


def test_qc_without_count_analyses__asks_for_the_counts_and_glm_gets_the_kept_variants(
    cohort, tmp_path: Path
) -> None:
    transport = InProcessTransport(cohort.sites)
    outcome = run_study(_study({"maf": 0.05, "geno": 0.05}, GLM), transport, tmp_path / "r",
                        engine="t")  # fmt: skip
    kinds = [o.request.kind for _, o in transport.sent]
    assert kinds[3:6] == ["genotype_counts"] * 3
    assert transport.sent[3][1].request.analysis_id == "[qc]"
    kept = (outcome.out / "qc.snplist").read_text().split()
    assert 0 < len(kept) < 200
    glm_inputs = [o.inputs for _, o in transport.sent[6:] if "variant_index" in o.inputs]
    assert glm_inputs and all(len(x["variant_index"]) == len(kept) for x in glm_inputs)
    qc = outcome.summary["qc"]
    assert qc["variants_in"] == 200 and qc["variants_left"] == len(kept)
    removed = (outcome.out / "qc.removed.tsv").read_text().splitlines()
    assert len(removed) == 1 + 200 - len(kept)
    html = (outcome.out / "report.html").read_text()
    assert 'id="qc-funnel"' in html and "variants left" in html


def test_variants_a_site_withholds__removed_by_qc_and_na_in_the_tables(
    cohort, tmp_path: Path
) -> None:
    site = tmp_path / "site-b"
    shutil.copytree(cohort.sites[1], site)
    policy = site / POLICY_FILE
    policy.write_text(policy.read_text().replace("min_cell_count = 0", "min_cell_count = 3"))
    sites = [cohort.sites[0], site, cohort.sites[2]]
    outcome = run_study(_study({"maf": 0.01}, {"kind": "freq"}), InProcessTransport(sites),
                        tmp_path / "r", engine="t")  # fmt: skip
    funnel = {r["rule"]: r["removed"] for r in outcome.summary["qc"]["funnel"]}
    withheld = outcome.summary["suppressed"]["any site"]
    assert withheld > 0 and funnel["withheld"] == withheld
    rows = (outcome.out / "freq.afreq").read_text().splitlines()
    assert len(rows) == 201 and sum("NA" in r.split("\t") for r in rows) == withheld


def test_site_without_gcount_in_its_policy__refuses_a_study_with_qc(cohort, tmp_path: Path) -> None:
    site = tmp_path / "site-b"
    shutil.copytree(cohort.sites[1], site)
    policy = site / POLICY_FILE
    policy.write_text(policy.read_text().replace('"gcount", ', ""))
    with pytest.raises(SiteFailure) as info:
        run_study(_study({"maf": 0.01}, GLM),
                  InProcessTransport([cohort.sites[0], site, cohort.sites[2]]),
                  tmp_path / "r", engine="t")  # fmt: skip
    assert info.value.reason_code == "ANALYSIS_NOT_ALLOWED"
    assert "[qc]" in str(info.value)


def test_coordinator_asking_qc_counts_for_a_study_without_qc__not_in_study(
    cohort, tmp_path: Path
) -> None:
    """A hostile coordinator cannot get genotype counts for a glm-only study by naming [qc]."""
    transport = InProcessTransport(cohort.sites)
    study = study_from_mapping({"study": {"name": "g"}, "analysis": [GLM]}, path=Path("<t>"))
    run_study(study, transport, tmp_path / "r", engine="t")
    request = transport.sent[0][1].request  # the study as the coordinator signed it
    forged = replace(
        request, kind="genotype_counts", step="genotype_counts", analysis_id="[qc]", round=2
    )
    assert forged.study == signed_study(study, None)
    inputs = {"variant_index": np.arange(200, dtype=np.int64), "flip": np.zeros(200, dtype=bool)}
    reply, arrays = handle_request(cohort.sites[0], forged, inputs)
    assert reply.status == Status.REFUSED and reply.reason_code == "NOT_IN_STUDY"
    assert not arrays
