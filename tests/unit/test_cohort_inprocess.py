"""A study's ``[cohort]`` and ``[sample_qc]`` at real-policy sites, in-process.

The policy decides which columns a cohort may filter on; an unknown column
is refused without naming the site's other columns; a cohort below
``min_cohort_size`` is refused; QC counts below ``min_cell_count`` are
withheld, and then the cohort size too.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from genofed.common.errors import SiteFailure
from genofed.common.signing import sign_study
from genofed.common.study import Study, study_from_mapping
from genofed.coordinator.runner import run_study
from genofed.site_agent.cohort import CohortBed, CohortSelection, facts
from genofed.site_agent.io.plink import BedFile
from genofed.site_agent.privacy.policy import POLICY_FILE, cohort_columns, load_policy
from genofed.synth import SynthSummary, write_cohorts
from tests.harness import InProcessTransport
from tests.privacy_cases import ANALYST, site_policy
from tests.reference.missing_calls import concentrate


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    summary = write_cohorts(
        tmp_path_factory.mktemp("cohort") / "c", sites=3, samples=240, variants=80, seed=5
    )
    concentrate(summary.out, np.array([0, 1, 2]), 0.5, 3, same_variants=False)  # site-a
    return summary


def _sites(cohort: SynthSummary, root: Path, policy: str) -> list[Path]:
    out = []
    for site in cohort.sites:
        shutil.copytree(site, root / site.name)
        (root / site.name / POLICY_FILE).write_text(policy)
        out.append(root / site.name)
    return out


def _study(**tables: object) -> Study:
    return study_from_mapping(
        {"study": {"name": "c"}, "analysis": [{"kind": "freq"}], **tables}, path=Path("<t>")
    )


def _run(study: Study, sites: list[Path], out: Path):
    return run_study(
        study, InProcessTransport(sites), out, engine="t", signature=sign_study(study, ANALYST)
    )


def test_policy_cohort_columns__a_filter_on_another_column_is_refused(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    sites = _sites(cohort, tmp_path / "s", site_policy(extra='cohort_columns = ["SEX"]'))
    with pytest.raises(SiteFailure) as info:
        _run(_study(cohort={"where": ["AGE >= 40"]}), sites, tmp_path / "r")
    assert info.value.reason_code == "COHORT_COLUMN_NOT_ALLOWED"
    assert "'AGE'" in str(info.value) and "the columns it allows: SEX" in str(info.value)
    assert not (tmp_path / "r").exists()
    _run(_study(cohort={"where": ["SEX == 2"]}), sites, tmp_path / "ok")  # the allowed one runs


def test_unknown_column__refused_naming_it_and_only_the_policy_s_columns(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    sites = _sites(cohort, tmp_path / "s", site_policy(extra='cohort_columns = ["SEX", "BMI"]'))
    with pytest.raises(SiteFailure) as info:
        _run(_study(cohort={"where": ["BMI < 30"]}), sites, tmp_path / "r")
    assert info.value.reason_code == "COHORT_COLUMN_UNKNOWN"
    message = str(info.value)
    assert "'BMI'" in message and "the columns a cohort may use here: SEX" in message
    assert "QPHENO" not in message and "AGE" not in message  # the site's other columns
    open_sites = _sites(cohort, tmp_path / "o", site_policy())
    with pytest.raises(SiteFailure) as info:
        _run(_study(cohort={"where": ["BMI < 30"]}), open_sites, tmp_path / "r2")
    assert info.value.reason_code == "COHORT_COLUMN_UNKNOWN"
    assert "column names are not sent" in str(info.value) and "QPHENO" not in str(info.value)


def test_a_cohort_of_few__is_refused_as_too_small(cohort: SynthSummary, tmp_path: Path) -> None:
    sites = _sites(cohort, tmp_path / "s", site_policy())
    with pytest.raises(SiteFailure) as info:
        _run(_study(cohort={"where": ["AGE >= 79"]}), sites, tmp_path / "r")
    assert info.value.reason_code == "COHORT_TOO_SMALL"


def test_an_empty_cohort__is_refused_even_without_a_minimum(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    policy = site_policy().replace("min_cohort_size = 10", "min_cohort_size = 0")
    sites = _sites(cohort, tmp_path / "s", policy)
    with pytest.raises(SiteFailure) as info:
        _run(_study(cohort={"where": ["AGE >= 1000"]}), sites, tmp_path / "r")
    assert info.value.reason_code == "COHORT_TOO_SMALL"
    assert "no sample of this site is in the study's cohort" in str(info.value)


def test_small_qc_counts__are_withheld_with_the_cohort_size(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    policy = site_policy().replace("min_cell_count = 0", "min_cell_count = 5")
    sites = _sites(cohort, tmp_path / "s", policy)
    outcome = _run(_study(sample_qc={"mind": 0.2}), sites, tmp_path / "r")
    funnel = outcome.summary["cohort"]
    assert isinstance(funnel, dict)
    a, b = funnel["sites"][0], funnel["sites"][1]
    assert a["removed"] == {"mind": "withheld"} and a["left"] == "withheld"  # 3 < 5
    assert b["removed"] == {"mind": 0} and isinstance(b["left"], int)
    assert funnel["pooled"]["removed"]["mind"] == "withheld"
    assert funnel["pooled"]["left"] == "withheld"
    report = (outcome.out / "report.html").read_text()
    assert 'id="cohort-funnel"' in report and "withheld" in report


def test_facts__small_counts_withheld_zero_and_large_given() -> None:
    rows = np.arange(90)
    assert facts(CohortSelection(rows, 100, 5, {"mind": 0, "het": 5}), 10) == {
        "sample_qc_removed_mind": "0",
        "sample_qc_removed_het": "withheld",
        "cohort_samples": "withheld",
    }
    assert facts(CohortSelection(rows, 120, 10, {"mind": 20}), 10) == {
        "sample_qc_removed_mind": "20",
        "cohort_samples": "90",
    }


def test_cohort_bed__reads_the_kept_samples_as_the_whole_file_would(
    cohort: SynthSummary,
) -> None:
    with BedFile(cohort.sites[0] / "data" / "genotypes") as bed:
        rows = np.array([1, 4, 5, 9, 30])
        view = CohortBed(bed, rows)
        assert view.n_samples == 5 and list(view.samples.iid) == list(bed.samples.iid[rows])
        whole = np.concatenate([d for _, d in bed.iter_dosages(np.arange(10))])
        seen = np.concatenate([d for _, d in view.iter_dosages(np.arange(10))])
        assert np.array_equal(seen, whole[:, rows])
        sub = np.concatenate([d for _, d in view.iter_dosages(sample_idx=np.array([0, 3]))])
        assert np.array_equal(sub[:10], whole[:, rows[[0, 3]]])


def test_cohort_columns__default_to_the_policy_s_allowed_column_lists(tmp_path: Path) -> None:
    path = tmp_path / POLICY_FILE
    path.write_text(site_policy(tables='allowed_covariates = ["AGE", "SEX"]'))
    assert cohort_columns(load_policy(path)) == frozenset({"AGE", "SEX"})
    path.write_text(site_policy())
    assert cohort_columns(load_policy(path)) is None
    path.write_text(site_policy(extra="cohort_columns = []"))
    assert cohort_columns(load_policy(path)) == frozenset()


def test_require__columns_the_analyses_use_need_no_cohort_columns_entry(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    sites = _sites(cohort, tmp_path / "s", site_policy(extra='cohort_columns = ["SEX"]'))
    glm = {"kind": "glm", "phenotype": "QPHENO", "covariates": ["AGE"]}
    used = study_from_mapping(
        {
            "study": {"name": "c"},
            "analysis": [{"kind": "freq"}, glm],
            "cohort": {"require": ["QPHENO", "AGE"]},
        },
        path=Path("<t>"),
    )
    _run(used, sites, tmp_path / "ok")
    with pytest.raises(SiteFailure) as info:  # AGE: not allowed, and freq alone uses no column
        _run(_study(cohort={"require": ["AGE"]}), sites, tmp_path / "r")
    assert info.value.reason_code == "COHORT_COLUMN_NOT_ALLOWED"
    assert "'AGE'" in str(info.value)
