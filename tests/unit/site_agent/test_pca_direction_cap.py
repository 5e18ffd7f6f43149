"""``pca_max_directions``: a site caps the variant-space directions it releases per snapshot.

Under secure aggregation the coordinator sees only pooled products, but the
pooled products over directions it chose still describe the pooled variant
Gram matrix along them. Each site counts the directions its pca steps
release (block columns of every ``pca_iterate``, components of
``pca_finish``) over all runs on one cohort snapshot, and refuses the step
that would pass its policy's cap; a refused step charges nothing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from genofed.common.errors import ConfigError, PolicyRefusal, SiteFailure
from genofed.common.study import study_from_mapping
from genofed.coordinator.runner import run_study
from genofed.site_agent.privacy import directions
from genofed.site_agent.privacy.policy import POLICY_FILE, load_policy
from genofed.synth import write_cohorts
from tests.harness import InProcessTransport

STUDY = study_from_mapping(
    {"study": {"name": "cap"}, "analysis": [{"kind": "pca", "n_pcs": 2}]}, path=Path("<test>")
)


@pytest.fixture
def sites(tmp_path: Path) -> list[Path]:
    cohort = write_cohorts(tmp_path / "c", sites=3, samples=120, variants=80, seed=6)
    return list(cohort.sites)


def _cap(site: Path, cap: int) -> None:
    policy = site / POLICY_FILE
    policy.write_text(
        policy.read_text().replace("[policy]\n", f"[policy]\npca_max_directions = {cap}\n", 1)
    )


def test_directions__counted_per_run_and_refused_beyond_the_cap(
    sites: list[Path], tmp_path: Path
) -> None:
    first = run_study(STUDY, InProcessTransport(sites), tmp_path / "r1", engine="t")
    used = directions.used(sites[0], directions.LIVE)
    iterations = first.summary["pca"]["iterations"]  # type: ignore[index]
    width = min(4 * 2 + 20, 80, 120)  # the block: 4 n_pcs + 20 columns
    assert used == iterations * width + 2  # every step's block, and the 2 components
    assert all(directions.used(s, directions.LIVE) == used for s in sites)
    _cap(sites[1], used + used // 2)  # room for half a run more, not a whole one
    with pytest.raises(SiteFailure) as info:
        run_study(STUDY, InProcessTransport(sites), tmp_path / "r2", engine="t")
    assert (info.value.site, info.value.reason_code) == (sites[1].name, "PCA_DIRECTIONS_EXCEEDED")
    assert "pca_max_directions" in str(info.value)
    after = directions.used(sites[1], directions.LIVE)
    assert used < after <= used + used // 2  # the steps before the refusal, not the refused one
    assert not (tmp_path / "r2").exists()


def test_charge__is_all_or_nothing_at_the_boundary(tmp_path: Path) -> None:
    assert directions.charge(tmp_path, "snap-1", 60, 100) == 60
    assert directions.charge(tmp_path, "snap-1", 40, 100) == 100  # exactly at the cap
    with pytest.raises(PolicyRefusal, match="beyond the 100") as info:
        directions.charge(tmp_path, "snap-1", 1, 100)
    assert info.value.reason_code == "PCA_DIRECTIONS_EXCEEDED"
    assert directions.used(tmp_path, "snap-1") == 100
    assert directions.used(tmp_path, "snap-2") == 0  # a new snapshot starts afresh


def test_policy__a_bad_cap_is_refused_naming_the_file(sites: list[Path]) -> None:
    for bad in ("0", "-5", '"lots"'):
        policy = sites[0] / POLICY_FILE
        text = policy.read_text()
        policy.write_text(text.replace("[policy]\n", f"[policy]\npca_max_directions = {bad}\n", 1))
        with pytest.raises(ConfigError, match="pca_max_directions") as info:
            load_policy(policy)
        assert "policy.toml" in str(info.value) or info.value.path == policy
        policy.write_text(text)
    shutil.rmtree(sites[0] / "state", ignore_errors=True)
