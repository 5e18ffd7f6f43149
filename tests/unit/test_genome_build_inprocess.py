"""Genome build across a federation: mixed builds refused naming the sites; chr prefixes match."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genofed.common.errors import HarmonizationError
from genofed.common.study import study_from_mapping
from genofed.coordinator.runner import run_study
from genofed.synth import write_cohorts
from tests.harness import InProcessTransport

FREQ = study_from_mapping(
    {"study": {"name": "build"}, "analysis": [{"kind": "freq"}]}, path=Path("<test>")
)


def _declare(site: Path, build: str) -> None:
    toml = site / "site.toml"
    text = toml.read_text()
    assert text.rstrip().splitlines()[-1].startswith(("genotypes", "phenotypes", "covariates"))
    toml.write_text(text.rstrip() + f'\nbuild = "{build}"\n')


def test_mixed_builds_are_refused_naming_both_sites(tmp_path: Path) -> None:
    cohort = write_cohorts(tmp_path / "c", sites=2, samples=60, variants=40, seed=5)
    _declare(cohort.sites[0], "GRCh37")
    _declare(cohort.sites[1], "GRCh38")
    transport = InProcessTransport(cohort.sites)
    with pytest.raises(HarmonizationError) as exc:
        run_study(FREQ, transport, tmp_path / "results", engine="in-process")
    text = str(exc.value)
    assert "site-a: GRCh37" in text and "site-b: GRCh38" in text and "CrossMap" in text
    assert {o.request.kind for _, o in transport.sent} == {"variants"}
    assert not (tmp_path / "results").exists()


def test_same_build_passes_and_provenance_records_it(tmp_path: Path) -> None:
    cohort = write_cohorts(tmp_path / "c", sites=2, samples=60, variants=40, seed=5)
    for site in cohort.sites:
        _declare(site, "GRCh38")
    outcome = run_study(
        FREQ, InProcessTransport(cohort.sites), tmp_path / "results", engine="in-process"
    )
    prov = json.loads((tmp_path / "results" / "provenance.json").read_text())
    assert [s["genome_build"] for s in prov["sites"]] == ["GRCh38", "GRCh38"]
    assert outcome.summary["genome_build"] == "GRCh38"


def test_one_declared_build_passes_with_unknown_elsewhere(tmp_path: Path) -> None:
    cohort = write_cohorts(tmp_path / "c", sites=2, samples=60, variants=40, seed=5)
    _declare(cohort.sites[0], "GRCh37")
    outcome = run_study(
        FREQ, InProcessTransport(cohort.sites), tmp_path / "results", engine="in-process"
    )
    prov = json.loads((tmp_path / "results" / "provenance.json").read_text())
    assert [s["genome_build"] for s in prov["sites"]] == ["GRCh37", "unknown"]
    assert outcome.summary["genome_build"] == "GRCh37"


def test_chr_prefixed_and_bare_sites_harmonize(tmp_path: Path) -> None:
    cohort = write_cohorts(tmp_path / "c", sites=2, samples=60, variants=40, seed=5)
    bim = next((cohort.sites[1] / "data").glob("*.bim"))
    lines = bim.read_text().splitlines()
    assert not lines[0].startswith("chr")
    bim.write_text("".join(f"chr{line}\n" for line in lines))
    outcome = run_study(
        FREQ, InProcessTransport(cohort.sites), tmp_path / "results", engine="in-process"
    )
    assert outcome.summary["n_variants"] == 40
