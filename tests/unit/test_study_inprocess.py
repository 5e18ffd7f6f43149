"""The whole study protocol in-process: coordinator runner + site handlers via the record codec."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from genofed.common.errors import GenoFedError, HarmonizationError, InputError, SiteFailure
from genofed.common.study import study_from_mapping
from genofed.coordinator.runner import run_study
from genofed.site_agent.privacy.policy import DEFAULT_POLICY_TOML, POLICY_FILE
from genofed.site_agent.sitedir import init_site
from genofed.synth import write_cohorts
from tests.harness import InProcessTransport

QC = study_from_mapping(
    {
        "study": {"name": "qc"},
        "analysis": [{"kind": k} for k in ("freq", "missing", "gcount", "hardy")],
    },
    path=Path("<test>"),
)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory):
    return write_cohorts(
        tmp_path_factory.mktemp("c") / "cohorts", sites=3, samples=150, variants=200, seed=3
    )


def test_run_study__writes_every_table_and_provenance(cohort, tmp_path: Path) -> None:
    transport = InProcessTransport(cohort.sites)
    outcome = run_study(QC, transport, tmp_path / "results", engine="in-process")
    names = sorted(p.name for p in (tmp_path / "results").iterdir())
    assert names == sorted(
        [
            "freq.afreq",
            "missing.vmiss",
            "geno.gcount",
            "hardy.hardy",
            "harmonization.tsv",
            "report.html",
            "provenance.json",
        ]
    )
    assert outcome.outputs[-2:] == ("report.html", "provenance.json")
    prov = json.loads((tmp_path / "results" / "provenance.json").read_text())
    assert prov["study"]["sha256"] == QC.sha256
    assert prov["n_samples_total"] == 150
    assert [s["name"] for s in prov["sites"]] == ["site-a", "site-b", "site-c"]
    assert prov["privacy"]["demo_policy_sites"] == ["site-a", "site-b", "site-c"]
    counts_release = prov["sites"][0]["releases"][1]
    assert counts_release["arrays"][0]["name"] == "genotype_counts"
    assert counts_release["arrays"][0]["shape"] == [200, 4]
    assert outcome.summary["freq"]["variants"] == 200
    # one variants round + one counts round serving all four analyses
    assert [o.request.kind for _, o in transport.sent] == ["variants"] * 3 + ["genotype_counts"] * 3


def test_run_study__refusing_site_stops_study_and_writes_nothing(cohort, tmp_path: Path) -> None:
    site = tmp_path / "site-b"
    shutil.copytree(cohort.sites[1], site)
    (site / POLICY_FILE).write_text(DEFAULT_POLICY_TOML)
    transport = InProcessTransport([cohort.sites[0], site, cohort.sites[2]])
    with pytest.raises(SiteFailure) as info:
        run_study(QC, transport, tmp_path / "results", engine="in-process")
    assert info.value.site == "site-b"
    assert info.value.reason_code == "UNSIGNED_STUDY"  # the default policy refuses everything
    assert not (tmp_path / "results").exists()
    assert not list(tmp_path.glob(".results.partial-*"))


def test_run_study__non_empty_out_needs_overwrite(cohort, tmp_path: Path) -> None:
    out = tmp_path / "results"
    out.mkdir()
    (out / "old.txt").write_text("x")
    with pytest.raises(InputError, match="--overwrite"):
        run_study(QC, InProcessTransport(cohort.sites), out, engine="in-process")
    run_study(QC, InProcessTransport(cohort.sites), out, engine="in-process", overwrite=True)
    assert not (out / "old.txt").exists()
    assert (out / "freq.afreq").exists()


def test_run_study__mismatched_variants_stop_before_any_counts(tmp_path: Path) -> None:
    a = write_cohorts(tmp_path / "a", sites=2, samples=60, variants=50, seed=1)
    b = write_cohorts(tmp_path / "b", sites=1, samples=30, variants=50, seed=2)
    other = init_site(
        tmp_path / "site-z",
        name="site-z",
        genotypes=b.sites[0] / "data" / "genotypes.bed",
        demo_policy=True,
    )
    transport = InProcessTransport([*a.sites, other.config.directory])
    with pytest.raises(HarmonizationError):
        run_study(QC, transport, tmp_path / "results", engine="in-process")
    assert {o.request.kind for _, o in transport.sent} == {"variants"}


def test_run_study__same_site_twice_is_refused(cohort, tmp_path: Path) -> None:
    transport = InProcessTransport([cohort.sites[0], cohort.sites[0]])
    with pytest.raises(GenoFedError, match="serve the same site"):
        run_study(QC, transport, tmp_path / "results", engine="in-process")
