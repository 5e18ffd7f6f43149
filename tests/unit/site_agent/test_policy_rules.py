"""Parameter bounds, secure aggregation and auto-approval rules of the site policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from genofed.common.errors import ConfigError, PolicyRefusal
from genofed.common.study import study_from_mapping
from genofed.site_agent.privacy.policy import (
    SitePolicy,
    auto_approval_rule,
    check_study,
    load_policy,
)
from genofed.site_agent.privacy.policy_rules import ParamBound

HEAD = """
[policy]
version = 1
allowed_analyses = ["variants", "freq", "glm"]
allowed_release_modes = ["plain", "dp"]
{extra}

[policy.budget]
epsilon = 10.0

[[policy.trusted_analysts]]
name = "alice"
public_key = "ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
"""


def _policy(tmp_path: Path, extra: str = "", tables: str = ""):
    path = tmp_path / "policy.toml"
    path.write_text(HEAD.format(extra=extra) + tables)
    return load_policy(path)


def _study(covariates=("AGE", "SEX"), privacy=None, model="auto"):
    raw: dict[str, object] = {
        "study": {"name": "s"},
        "analysis": [
            {"kind": "glm", "phenotype": "Y", "covariates": list(covariates), "model": model}
        ],
    }
    if privacy:
        raw = {
            "study": {"name": "s"},
            "analysis": [{"kind": "freq"}],
            "privacy": privacy,
        }
    return study_from_mapping(raw, path=Path("<t>"))


GLM_BOUNDS = """
[policy.analysis.glm]
max_covariates = 2
allowed_covariates = ["AGE", "SEX", "PC1"]
allowed_model = ["auto", "linear"]

[policy.analysis.freq]
max_epsilon = 1.0
"""


def test_bounds__are_read_and_a_study_within_them_passes(tmp_path: Path) -> None:
    policy = _policy(tmp_path, tables=GLM_BOUNDS)
    assert ParamBound("glm", "max", "covariates", 2) in policy.analysis_bounds
    check_study(policy, _study())
    check_study(policy, _study(privacy={"mode": "dp", "epsilon": 0.5}))


@pytest.mark.parametrize(
    ("study", "words"),
    [
        (_study(("AGE", "SEX", "PC1")), "covariates has 3 entries, above the maximum of 2"),
        (_study(("AGE", "BMI")), "'BMI' is not allowed"),
        (_study(model="logistic"), "'logistic' is not allowed"),
        (_study(privacy={"mode": "dp", "epsilon": 3.0}), "epsilon = 3, above the maximum of 1"),
    ],
)
def test_bounds__a_parameter_out_of_bounds_is_refused_naming_it(
    tmp_path: Path, study, words: str
) -> None:
    policy = _policy(tmp_path, tables=GLM_BOUNDS)
    with pytest.raises(PolicyRefusal) as info:
        check_study(policy, study)
    assert info.value.reason_code == "PARAMETER_OUT_OF_BOUNDS"
    assert words in str(info.value) and "policy.analysis." in str(info.value)


@pytest.mark.parametrize(
    ("tables", "words"),
    [
        ("[policy.analysis.glm]\nmax_colour = 1\n", "unknown key 'max_colour'"),
        ("[policy.analysis.tarot]\nmax_k = 1\n", "unknown analysis kind 'tarot'"),
        ("[policy.analysis.hardy]\nallowed_midp = [false]\n", "does not allow"),
        ("[policy.analysis.glm]\nmax_covariates = -1\n", "max_covariates must be a number"),
        ("[policy.analysis.glm]\nmax_model = 3\n", "bound it with allowed_model"),
        ('[policy.analysis.glm]\nallowed_model = "linear"\n', "must be a list"),
        ("[policy.analysis.glm]\nallowed_covariates = [1]\n", "must hold str values"),
        ("[policy.analysis.freq]\nallowed_epsilon = [1.0]\n", "is a number"),
        ('[[policy.auto_approve]]\nname = "r"\nanalysts = ["bob"]\n', "'bob', not a trusted"),
        ('[[policy.auto_approve]]\nanalysts = ["*"]\n', "missing key 'name'"),
        (
            '[[policy.auto_approve]]\nname = "r"\nanalysts = ["*"]\nrelease_modes = ["x"]\n',
            "release_modes may hold",
        ),
    ],
)
def test_invalid_rules__stop_with_the_key_and_the_file(
    tmp_path: Path, tables: str, words: str
) -> None:
    with pytest.raises(ConfigError) as info:
        _policy(tmp_path, tables=tables)
    assert words in str(info.value)
    assert str(tmp_path / "policy.toml") in str(info.value)


def test_require_secure_aggregation__refuses_plain_and_allows_dp(tmp_path: Path) -> None:
    policy = _policy(tmp_path, extra="require_secure_aggregation = true")
    with pytest.raises(PolicyRefusal) as info:
        check_study(policy, _study())
    assert info.value.reason_code == "SECURE_AGGREGATION_REQUIRED"
    assert "SecAgg+" in str(info.value)
    check_study(policy, _study(privacy={"mode": "dp", "epsilon": 1.0}))


def test_require_secure_aggregation__must_be_a_boolean(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="require_secure_aggregation must be bool"):
        _policy(tmp_path, extra='require_secure_aggregation = "yes"')


def test_check_study__every_analysis_and_the_release_mode_must_be_allowed() -> None:
    policy = SitePolicy(
        demo=False, allowed_analyses=frozenset({"freq"}), allowed_release_modes=frozenset({"dp"})
    )
    with pytest.raises(PolicyRefusal) as info:
        check_study(policy, _study())
    assert info.value.reason_code == "ANALYSIS_NOT_ALLOWED"
    glm_ok = SitePolicy(
        demo=False, allowed_analyses=frozenset({"glm"}), allowed_release_modes=frozenset({"dp"})
    )
    with pytest.raises(PolicyRefusal) as info:
        check_study(glm_ok, _study())  # glm releases exact sums: plain mode
    assert info.value.reason_code == "RELEASE_MODE_NOT_ALLOWED"


def test_auto_approve__first_matching_rule_wins(tmp_path: Path) -> None:
    rules = """
[[policy.auto_approve]]
name = "dp only"
analysts = ["alice"]
release_modes = ["dp"]

[[policy.auto_approve]]
name = "glm from alice"
analysts = ["alice"]
analyses = ["glm"]
"""
    policy = _policy(tmp_path, tables=rules)
    assert auto_approval_rule(policy, _study(), "alice") == "glm from alice"
    assert auto_approval_rule(policy, _study(privacy={"mode": "dp", "epsilon": 1}), "alice") == (
        "dp only"
    )
    assert auto_approval_rule(policy, _study(), "bob") is None
    assert auto_approval_rule(policy, _study(), None) is None
