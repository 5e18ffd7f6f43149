"""The pca protocol in-process: what leaves a site, what stays, and what a site refuses."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from genofed.common.errors import InputError, PolicyRefusal, SiteFailure
from genofed.common.messages import Request, Status
from genofed.common.study import study_from_mapping
from genofed.common.wire.pca import MAX_ITERATIONS
from genofed.common.wire.records import signed_study
from genofed.coordinator.runner import run_study
from genofed.site_agent.io.plink import read_fam
from genofed.site_agent.privacy.policy import POLICY_FILE
from genofed.site_agent.release import handle_request
from genofed.site_agent.requests.pca_state import (
    IterateState,
    load_iterate,
    pc_covariates,
    save_iterate,
)
from genofed.synth import write_cohorts
from tests.harness import InProcessTransport

STUDY = study_from_mapping(
    {"study": {"name": "pca"}, "analysis": [{"kind": "pca", "n_pcs": 4}]}, path=Path("<test>")
)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return write_cohorts(
        tmp_path_factory.mktemp("c") / "cohorts", sites=3, samples=150, variants=200, seed=3
    )


def test_pca__releases_only_audited_variant_space_arrays(cohort, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    transport = InProcessTransport(cohort.sites)
    outcome = run_study(STUDY, transport, tmp_path / "r", engine="in-process")
    kinds = [o.request.kind for _, o in transport.sent]
    assert kinds[3:6] == ["pca_counts"] * 3 and kinds[-3:] == ["pca_finish"] * 3
    stats = outcome.summary["pca"]
    assert stats["converged"] and stats["rounds"] == len(kinds) // 3 - 1  # type: ignore[index]
    assert stats["iterations"] <= MAX_ITERATIONS  # type: ignore[index]
    for site, record in zip(cohort.sites, outcome.sites, strict=True):
        n = len(read_fam(site / "data" / "genotypes.fam").iid)
        pca = [r for r in record.replies if str(r["request"]).startswith("pca_")]
        assert pca and all(r["receipt"]["audited"] for r in pca)  # type: ignore[index]
        shapes = [a["shape"] for r in pca for a in r["arrays"]]  # type: ignore[attr-defined]
        assert all(n not in shape for shape in shapes), (n, shapes)
        with np.load(site / "state" / "pca" / STUDY.sha256 / "pca" / "scores.npz") as z:
            assert z["scores"].shape == (n, 4)
            np.testing.assert_array_equal(z["iid"], read_fam(site / "data" / "genotypes.fam").iid)
    assert sorted(p.name for p in outcome.out.iterdir() if p.name.startswith("pca")) == [
        "pca.eigenval",
        "pca.eigenvec.var",
    ]


def test_pca__a_site_whose_policy_does_not_allow_it_refuses(cohort, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    site = tmp_path / cohort.sites[0].name
    shutil.copytree(cohort.sites[0], site)
    policy = site / POLICY_FILE
    policy.write_text(re.sub(r',\s*"pca"', "", policy.read_text()))
    sites = [site, *cohort.sites[1:]]
    with pytest.raises(SiteFailure, match="ANALYSIS_NOT_ALLOWED"):
        run_study(STUDY, InProcessTransport(sites), tmp_path / "r", engine="in-process")


@pytest.mark.parametrize(
    ("step", "width", "message"),
    [
        (5, 3, "no PCA iteration is in progress"),  # no step 4 happened at this site
        (MAX_ITERATIONS, 3, f"at most {MAX_ITERATIONS} steps"),  # beyond the bound
        (0, 37, "at most 36 columns"),  # wider than 4 n_pcs + 20: more than the study needs
    ],
)
def test_pca__an_iteration_out_of_bounds_or_sequence_is_refused_and_audited(
    cohort,  # type: ignore[no-untyped-def]
    step: int,
    width: int,
    message: str,
) -> None:
    request = Request(
        study=signed_study(STUDY, None),
        analysis_id="pca",
        kind="pca_iterate",
        step="pca_iterate",
        round=9,
        run_id="not-a-run",
    )
    inputs = {
        "variant_index": np.arange(10),
        "flip": np.zeros(10, dtype=bool),
        "freq": np.full(10, 0.3),
        "step": np.array([step]),
        "wts": np.ones((10, width)),
        "transform": np.eye(width),
    }
    reply, arrays = handle_request(cohort.sites[2], request, inputs)
    assert reply.status == Status.REFUSED and reply.reason_code == "BAD_REQUEST"
    assert message in reply.message
    assert arrays == {} and reply.receipt.audited


def test_pc_covariates__without_scores_say_to_run_the_pca_first(cohort) -> None:  # type: ignore[no-untyped-def]
    samples = read_fam(cohort.sites[0] / "data" / "genotypes.fam")
    with pytest.raises(InputError, match="holds no scores") as exc:
        pc_covariates(cohort.sites[0], "0" * 64, "pca", samples, [0])
    assert "list the pca analysis before the glm" in str(exc.value.hint)


def test_iterate_state__a_step_must_follow_the_stored_one_of_the_same_run(tmp_path: Path) -> None:
    state = IterateState("run-1", 3, np.ones((4, 2)), np.zeros((4, 2)), np.ones(4), np.zeros(4))
    save_iterate(tmp_path, state)
    np.testing.assert_array_equal(load_iterate(tmp_path, "run-1", 4).u, state.u)
    for run_id, step in (("run-1", 6), ("run-2", 4)):
        with pytest.raises(PolicyRefusal, match="does not follow"):
            load_iterate(tmp_path, run_id, step)
