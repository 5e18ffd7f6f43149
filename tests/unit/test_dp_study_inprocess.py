"""`dp` release mode end to end (in-process): noise, ledger charges, refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from genofed.common.errors import ConfigError, SiteFailure
from genofed.common.study import study_from_mapping
from genofed.coordinator.runner import run_study
from genofed.site_agent.privacy.accounting import calibrate_noise_multiplier, epsilon_of
from genofed.site_agent.privacy.ledger import LEDGER_FILE, Budget, Ledger
from genofed.site_agent.privacy.policy import POLICY_FILE
from genofed.synth import write_cohorts
from tests.harness import InProcessTransport


def _study(epsilon: float, mode: str = "dp"):
    privacy = {"mode": mode, "epsilon": epsilon} if mode == "dp" else {"mode": mode}
    return study_from_mapping(
        {"study": {"name": "dpqc"}, "privacy": privacy, "analysis": [{"kind": "freq"}]},
        path=Path("<test>"),
    )


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory):
    return write_cohorts(
        tmp_path_factory.mktemp("dp") / "c", sites=3, samples=600, variants=40, seed=8
    )


def _copy_sites(cohort, root: Path, policy_edit=None) -> list[Path]:
    sites = []
    for site in cohort.sites:
        target = root / site.name
        shutil.copytree(site, target)
        if policy_edit is not None:
            policy = target / POLICY_FILE
            policy.write_text(policy_edit(policy.read_text()))
        sites.append(target)
    return sites


def _ledger(site: Path) -> Ledger:
    return Ledger(site / "state" / LEDGER_FILE, Budget(100.0, 1e-5))


def test_dp_study__charges_each_site_and_reports_noise(cohort, tmp_path: Path) -> None:
    sites = _copy_sites(cohort, tmp_path / "sites")
    exact = run_study(_study(0, "plain"), InProcessTransport(sites), tmp_path / "exact", engine="t")
    outcome = run_study(_study(10.0), InProcessTransport(sites), tmp_path / "dp", engine="t")
    z = calibrate_noise_multiplier(10.0, 1e-6)
    prov = json.loads((outcome.out / "provenance.json").read_text())
    for site, record in zip(sites, prov["sites"], strict=True):
        counts_release = record["releases"][-1]
        assert counts_release["noise"]["noise_multiplier"] == pytest.approx(z)
        assert counts_release["noise"]["l2_sensitivity"] == pytest.approx(np.sqrt(40))
        entries = _ledger(site).entries()
        assert len(entries) == 1
        assert entries[0]["study_sha256"] == outcome.study.sha256
        assert counts_release["epsilon_charged"] == pytest.approx(epsilon_of([z], 1e-5))

    def freqs(path: Path) -> np.ndarray:
        lines = path.read_text().splitlines()
        col = lines[0].split("\t").index("ALT_FREQS")
        return np.array([float(line.split("\t")[col]) for line in lines[1:]])

    got, want = freqs(outcome.out / "freq.afreq"), freqs(exact.out / "freq.afreq")
    assert not np.array_equal(got, want)  # noise was added
    assert np.mean(np.abs(got - want)) < 0.05  # and it is calibrated, not destructive


def test_dp_study__over_budget_is_refused_and_nothing_is_charged(cohort, tmp_path: Path) -> None:
    sites = _copy_sites(
        cohort, tmp_path / "sites", lambda t: t.replace("epsilon = 100.0", "epsilon = 2.0")
    )
    with pytest.raises(SiteFailure) as info:
        run_study(_study(3.0), InProcessTransport(sites), tmp_path / "r", engine="t")
    assert info.value.reason_code == "BUDGET_EXCEEDED"
    assert not (tmp_path / "r").exists()
    for site in sites:
        assert _ledger(site).entries() == []


def test_dp_study__budget_is_spent_across_studies(cohort, tmp_path: Path) -> None:
    sites = _copy_sites(
        cohort, tmp_path / "sites", lambda t: t.replace("epsilon = 100.0", "epsilon = 1.8")
    )
    run_study(_study(1.5), InProcessTransport(sites), tmp_path / "r1", engine="t")
    # the same study again is answered from the stored release: no new charge, so no refusal
    run_study(_study(1.5), InProcessTransport(sites), tmp_path / "r2", engine="t")
    with pytest.raises(SiteFailure) as info:  # another release does not fit the budget
        run_study(_study(1.4), InProcessTransport(sites), tmp_path / "r3", engine="t")
    assert info.value.reason_code == "BUDGET_EXCEEDED"
    assert all(len(_ledger(s).entries()) == 1 for s in sites)


def test_release_mode_not_allowed__refused(cohort, tmp_path: Path) -> None:
    sites = _copy_sites(
        cohort,
        tmp_path / "sites",
        lambda t: t.replace(
            'allowed_release_modes = ["plain", "dp", "exact", "distributed-dp"]',
            'allowed_release_modes = ["dp"]',
        ),
    )
    with pytest.raises(SiteFailure) as info:
        run_study(_study(0, "plain"), InProcessTransport(sites), tmp_path / "r", engine="t")
    assert info.value.reason_code == "RELEASE_MODE_NOT_ALLOWED"


@pytest.mark.parametrize(
    ("privacy", "message"),
    [
        ({"mode": "dp"}, "epsilon must be given"),
        ({"mode": "dp", "epsilon": 1.0, "delta": 0.5}, "delta must lie"),
        ({"mode": "plain", "epsilon": 1.0}, "apply only to mode"),
        ({"mode": "secret"}, "privacy.mode must be one of"),
        ({"mode": "dp", "epsilon": 1.0, "colour": 1}, "unknown key 'colour'"),
    ],
)
def test_study_privacy_table__bad_values_name_the_key(privacy: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        study_from_mapping(
            {"study": {"name": "x"}, "privacy": privacy, "analysis": [{"kind": "freq"}]},
            path=Path("study.toml"),
        )
