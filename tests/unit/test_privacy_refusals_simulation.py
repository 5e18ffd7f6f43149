"""Every refusal path of the site's policy on Flower's simulation engine (slow).

The same cases as ``test_privacy_refusals_inprocess.py`` (``tests/privacy_cases.py``),
through the real ServerApp and ClientApp on Ray: each refusal must reach the
coordinator as its reason code, stop the study and write nothing. One Ray
start per case (a few seconds each), so the module is marked ``slow``:
``.venv/bin/pytest -m slow tests/unit/test_privacy_refusals_simulation.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from genofed.common.errors import SiteFailure
from genofed.simulation import run_simulated_study
from genofed.synth import write_cohorts
from tests.privacy_cases import CASES, RefusalCase

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cohort_sites(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("sim-refusals")
    return list(write_cohorts(root / "c", sites=3, samples=120, variants=80, seed=5).sites)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_refusal__reaches_the_coordinator_through_the_simulation_engine(
    case: RefusalCase, cohort_sites: list[Path], tmp_path: Path
) -> None:
    sites = case.sites(cohort_sites, tmp_path / "sites")
    with pytest.raises(SiteFailure) as info:
        run_simulated_study(case.study, sites, tmp_path / "r", signature=case.signature())
    assert info.value.reason_code == case.code
    assert info.value.site in {s.name for s in sites}
    assert not (tmp_path / "r").exists()
