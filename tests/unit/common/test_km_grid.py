"""A ``km`` analysis's time grid: named by the study, or the finest grid up to ``horizon``."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from genofed.common.errors import ConfigError, PolicyRefusal
from genofed.common.study import Study, study_from_canonical, study_from_mapping
from genofed.common.wire.survival import MAX_GRID, default_grid
from genofed.site_agent.privacy.policy_rules import ParamBound, check_bounds

KM = {"kind": "km", "time": "RFS_DAYS", "event": "RFS_EVENT"}


def _study(**params: Any) -> Study:
    return study_from_mapping(
        {"study": {"name": "km"}, "analysis": [{**KM, **params}]}, path=Path("<test>")
    )


def test_km_horizon__expands_to_max_grid_equal_steps_in_the_signed_form() -> None:
    study = _study(horizon=3652)
    grid = study.analyses[0].params["grid"]
    assert len(grid) == MAX_GRID == 1000
    assert grid[0] == pytest.approx(3.652) and grid[-1] == 3652.0
    assert all(b > a for a, b in itertools.pairwise(grid))
    assert grid == default_grid(3652)
    # the canonical form (what sites check and count on) holds the grid itself
    assert b'"grid":[3.652,7.304,' in study.canonical_json()
    assert study_from_canonical(study.canonical_json(), study.sha256) == study


def test_km_with_a_grid__canonical_form_has_no_horizon_so_its_hash_is_unchanged() -> None:
    study = _study(grid=[365, 730])
    assert "horizon" not in study.analyses[0].params
    assert b"horizon" not in study.canonical_json()
    assert study.analyses[0].params["grid"] == (365.0, 730.0)
    assert _study(grid=[365, 730], horizon=0).sha256 == study.sha256


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "horizon = 3652 for the finest grid"),
        ({"horizon": -5}, "horizon must be"),
        ({"horizon": 3652, "grid": [365, 730]}, "give either grid"),
        ({"horizon": 3652.5}, "horizon must be int"),
    ],
)
def test_km_grid__missing_or_conflicting_grid_says_how_to_fix_it(
    params: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        _study(**params)
    assert message in f"{info.value} {info.value.hint}"


def test_km_horizon__a_policy_grid_cap_refuses_it_and_bounds_on_horizon_apply() -> None:
    fine, named = _study(horizon=3652), _study(grid=[365, 730])
    with pytest.raises(PolicyRefusal) as info:
        check_bounds([ParamBound("km", "max", "grid", 12)], fine)
    assert info.value.reason_code == "PARAMETER_OUT_OF_BOUNDS"
    assert "1000 entries, above the maximum of 12" in str(info.value)
    check_bounds([ParamBound("km", "max", "grid", 12)], named)
    with pytest.raises(PolicyRefusal):
        check_bounds([ParamBound("km", "max", "horizon", 1000)], fine)
    # a study that names its grid has no horizon: the bound sees the default, 0
    check_bounds([ParamBound("km", "max", "horizon", 1000)], named)
    with pytest.raises(PolicyRefusal):
        check_bounds([ParamBound("km", "min", "horizon", 1)], named)
