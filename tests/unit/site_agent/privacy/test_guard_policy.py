"""The disclosure guard's policy keys: on by default, bad values named."""

from __future__ import annotations

from pathlib import Path

import pytest

from genofed.common.errors import ConfigError
from genofed.site_agent.privacy.policy import DEFAULT_POLICY_TOML, DEMO_POLICY_TOML, load_policy


def _load(tmp_path: Path, text: str):
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return load_policy(path)


def test_template__turns_the_guard_and_its_bounds_on(tmp_path: Path) -> None:
    policy = _load(tmp_path, DEFAULT_POLICY_TOML)
    assert policy.audit_sample_sets and policy.min_cell_count == 10
    assert (policy.min_score_rows, policy.max_weight_ratio) == (10, 100.0)
    assert policy.guard_refusals_before_review == 3
    assert (policy.guard_max_sets, policy.guard_max_new_sets) == (2000, 500)


def test_demo__keeps_the_guard_off_through_min_cell_count_zero(tmp_path: Path) -> None:
    policy = _load(tmp_path, DEMO_POLICY_TOML)
    assert policy.min_cell_count == 0  # the guard runs only when min_cell_count > 0


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("min_score_rows", "0", "min_score_rows must be >= 1"),
        ("max_weight_ratio", "0.5", "max_weight_ratio must be >= 1"),
        ("guard_refusals_before_review", "-1", "guard_refusals_before_review must be >= 0"),
        ("audit_sample_sets", '"yes"', "audit_sample_sets must be bool"),
        ("km_min_grid_step", "-1", "km_min_grid_step must be >= 0"),
        ("guard_max_sets", "0", "guard_max_sets must be >= 1"),
        ("guard_max_new_sets", "1.5", "guard_max_new_sets must be int"),
    ],
)
def test_bad_values__are_refused_naming_the_key(
    tmp_path: Path, key: str, value: str, message: str
) -> None:
    ours = f"{key} = {value}"
    lines = [line for line in DEFAULT_POLICY_TOML.splitlines() if not line.startswith(f"{key} = ")]
    text = "\n".join(lines).replace("[policy]\n", f"[policy]\n{ours}\n", 1)
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    assert message in str(info.value)


def test_caps__reach_the_guard_a_request_opens(tmp_path: Path) -> None:
    """A policy's guard_max_new_sets bounds the missing-call sets one request may offer."""
    import numpy as np

    from genofed.site_agent.privacy.guard import ReleaseGuard

    people = [f"p{i}" for i in range(60)]
    guard = ReleaseGuard.open(tmp_path, people, 5, True, offer_cap=2, family_cap=100)
    guard.declare("clinical", np.arange(60))
    assert guard.check_declared().ok
    offered = [guard.offer("clinical", np.arange(k, 60)) for k in (10, 20, 30, 40)]
    assert offered == [True, True, False, False]  # the third new set is over the cap
    guard.close()
