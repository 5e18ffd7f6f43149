"""A site that drops out mid-study: the study goes on when ``min_sites`` allows, else stops.

The transport below wraps the in-process one and makes one node go silent
from a chosen round on, as a killed SuperNode does (the Grid transport
reports "no reply within N s" for it). Results that go on without the site
must equal a study run on the remaining sites alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from genofed.common.errors import SiteFailure
from genofed.common.study import Study, study_from_mapping
from genofed.coordinator.runner import run_study
from genofed.coordinator.transport import Incoming, Outgoing
from genofed.synth import write_cohorts
from tests.harness import InProcessTransport


class SilentFrom(InProcessTransport):
    """Node ``node`` stops answering at exchange number ``call`` (1-based) and after."""

    def __init__(self, site_dirs: list[Path], node: int, call: int) -> None:
        super().__init__(site_dirs)
        self.silent_node, self.silent_from, self.calls = node, call, 0

    def exchange(self, outgoing: Mapping[int, Outgoing], *, timeout: float) -> dict[int, Incoming]:
        self.calls += 1
        live = {
            n: o
            for n, o in outgoing.items()
            if n != self.silent_node or self.calls < self.silent_from
        }
        got = super().exchange(live, timeout=timeout)
        for n in outgoing:
            got.setdefault(n, Incoming(None, error=f"no reply within {timeout:.0f} s"))
        return got


def _study(min_sites: int | None, *analyses: dict[str, object]) -> Study:
    head: dict[str, object] = {"name": "dropout"}
    if min_sites is not None:
        head["min_sites"] = min_sites
    return study_from_mapping({"study": head, "analysis": list(analyses)}, path=Path("<test>"))


QC = ({"kind": "freq"}, {"kind": "hardy"})
LOGISTIC = {"kind": "glm", "phenotype": "DISEASE", "covariates": ["AGE", "SEX"]}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory):
    return write_cohorts(
        tmp_path_factory.mktemp("c") / "cohorts", sites=3, samples=240, variants=120, seed=11
    )


def _tables(out: Path) -> dict[str, bytes]:
    skip = {"provenance.json", "harmonization.tsv", "report.html"}  # these name the sites
    return {p.name: p.read_bytes() for p in out.iterdir() if p.name not in skip and p.is_file()}


def test_site_silent_in_counts_round__study_goes_on_without_it_when_min_sites_allows(
    cohort, tmp_path: Path
) -> None:
    study = _study(2, *QC)
    transport = SilentFrom(list(cohort.sites), node=3, call=2)  # answers variants, not counts
    outcome = run_study(study, transport, tmp_path / "dropped", engine="in-process", timeout=5)

    missing = outcome.summary["sites_missing"]
    assert isinstance(missing, list) and len(missing) == 1
    assert missing[0]["site"] == "site-c"
    assert (missing[0]["round"], missing[0]["step"]) == (2, "genotype_counts")
    assert missing[0]["reason_code"] == "NO_REPLY"
    assert [s.name for s in outcome.sites] == ["site-a", "site-b"]

    two = tmp_path / "two-sites"
    run_study(study, InProcessTransport(list(cohort.sites[:2])), two, engine="in-process")
    assert _tables(tmp_path / "dropped") == _tables(two)

    prov = json.loads((tmp_path / "dropped" / "provenance.json").read_text())
    assert [m["site"] for m in prov["sites_missing"]] == ["site-c"]
    by_name = {s["name"]: s for s in prov["sites"]}
    assert by_name["site-c"]["missing"]["round"] == 2
    assert "missing" not in by_name["site-a"]
    expected = json.loads((two / "provenance.json").read_text())["n_samples_total"]
    assert prov["n_samples_total"] == expected  # sites a and b only
    report = (tmp_path / "dropped" / "report.html").read_text()
    assert 'id="sites-missing"' in report
    assert "<li>site-c: round 2 (genotype_counts), NO_REPLY: " in report


def test_site_silent_mid_glm__the_glm_runs_again_without_it(cohort, tmp_path: Path) -> None:
    study = _study(2, LOGISTIC)
    # exchanges: 1 variants, 2 glm setup, 3.. Newton rounds; silent from the 4th
    transport = SilentFrom(list(cohort.sites), node=3, call=4)
    outcome = run_study(study, transport, tmp_path / "dropped", engine="in-process", timeout=5)
    missing = outcome.summary["sites_missing"]
    assert isinstance(missing, list) and [m["site"] for m in missing] == ["site-c"]
    assert missing[0]["round"] > 3 and missing[0]["step"].startswith("glm")  # after round 1 of glm

    two = tmp_path / "two-sites"
    run_study(study, InProcessTransport(list(cohort.sites[:2])), two, engine="in-process")
    dropped, expected = _tables(tmp_path / "dropped"), _tables(two)
    assert sorted(dropped) == sorted(expected)
    assert any(name.endswith(".glm.logistic.hybrid") for name in dropped)
    for name in expected:
        assert dropped[name] == expected[name], name


def test_site_silent__stops_the_study_naming_it_when_every_site_must_answer(
    cohort, tmp_path: Path
) -> None:
    transport = SilentFrom(list(cohort.sites), node=3, call=2)
    with pytest.raises(SiteFailure) as info:
        run_study(_study(None, *QC), transport, tmp_path / "out", engine="in-process", timeout=5)
    assert info.value.reason_code == "NO_REPLY"
    assert info.value.site == "site-c"
    assert "no reply within 5 s" in str(info.value)
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.partial-*"))


def test_site_silent__stops_the_study_when_too_few_sites_would_remain(
    cohort, tmp_path: Path
) -> None:
    transport = SilentFrom(list(cohort.sites), node=2, call=1)
    with pytest.raises(SiteFailure) as info:
        run_study(_study(3, *QC), transport, tmp_path / "out", engine="in-process", timeout=5)
    assert info.value.reason_code == "NO_REPLY"
    assert not (tmp_path / "out").exists()


def test_two_sites_silent_at_once__named_together(cohort, tmp_path: Path) -> None:
    class TwoSilent(SilentFrom):
        def exchange(self, outgoing, *, timeout):  # type: ignore[no-untyped-def]
            got = super().exchange(outgoing, timeout=timeout)
            if self.calls >= 2:
                got[2] = Incoming(None, error="no reply within 5 s")
            return got

    transport = TwoSilent(list(cohort.sites), node=3, call=2)
    with pytest.raises(SiteFailure) as info:
        run_study(_study(2, *QC), transport, tmp_path / "out", engine="in-process", timeout=5)
    message = str(info.value)
    assert "site-b" in message and "site-c" in message and "min_sites = 2" in message
