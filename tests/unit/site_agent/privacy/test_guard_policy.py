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
