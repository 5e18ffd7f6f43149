"""The site policy file and the checks it makes on each request."""

from __future__ import annotations

from pathlib import Path

import pytest

from genofed.common.appbundle import bundle_hash
from genofed.common.errors import ConfigError, PolicyRefusal
from genofed.site_agent.privacy.ledger import Budget
from genofed.site_agent.privacy.policy import (
    DEFAULT_POLICY_TOML,
    DEMO_ANALYSES,
    DEMO_POLICY_TOML,
    REFUSE_ALL,
    SitePolicy,
    check_request,
    load_policy,
)
from genofed.site_agent.privacy.policy_rules import AutoApproveRule


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


def test_load_policy__missing_file_refuses_everything(tmp_path: Path) -> None:
    policy = load_policy(tmp_path / "policy.toml")
    assert policy == REFUSE_ALL
    assert not policy.demo and not policy.allowed_analyses
    with pytest.raises(PolicyRefusal) as info:
        check_request(policy, kind="freq", signed=True, n_samples=1000)
    assert info.value.reason_code == "ANALYSIS_NOT_ALLOWED"


def test_default_policy_toml__loads_as_refuse_all(tmp_path: Path) -> None:
    assert load_policy(_write(tmp_path, DEFAULT_POLICY_TOML)) == REFUSE_ALL


def test_demo_policy_toml__is_labelled_synthetic_only_and_allows_demo_analyses(
    tmp_path: Path,
) -> None:
    assert DEMO_POLICY_TOML.startswith("# DEMO POLICY: FOR SYNTHETIC DATA ONLY.")
    policy = load_policy(_write(tmp_path, DEMO_POLICY_TOML))
    assert policy == SitePolicy(
        demo=True,
        allowed_analyses=frozenset(DEMO_ANALYSES),
        min_cohort_size=10,
        min_cell_count=0,  # no suppression: demo results equal plink2
        allowed_app_hashes=frozenset({bundle_hash()}),
        allowed_release_modes=frozenset({"plain", "dp", "exact", "distributed-dp"}),
        budget=Budget(epsilon=100.0, delta=1e-5, period="year"),
        auto_approve=(AutoApproveRule("demo: everything", frozenset({"*"})),),
    )
    assert policy.allowed_analyses == frozenset(DEMO_ANALYSES)


def test_load_policy__reads_every_key(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        '[policy]\nversion = 1\ndemo = false\nallowed_analyses = ["freq"]\n'
        "min_cohort_size = 50\nmin_cell_count = 5\n",
    )
    assert load_policy(path) == SitePolicy(
        demo=False, allowed_analyses=frozenset({"freq"}), min_cohort_size=50, min_cell_count=5
    )


def test_load_policy__unknown_key_names_key_and_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "[policy]\nversion = 1\nmin_cohort = 5\n")
    with pytest.raises(ConfigError, match="unknown key 'min_cohort' in \\[policy\\]") as info:
        load_policy(path)
    assert str(info.value).startswith(f"{path}: ")
    assert "min_cohort_size" in str(info.value)  # the hint lists the allowed keys


def test_load_policy__unknown_top_level_table_names_it(tmp_path: Path) -> None:
    path = _write(tmp_path, "[policy]\nversion = 1\n[budget]\nepsilon = 1.0\n")
    with pytest.raises(ConfigError, match="unknown key 'budget'") as info:
        load_policy(path)
    assert str(info.value).startswith(f"{path}: ")


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ('demo = "yes"', "policy.demo must be bool"),
        ('allowed_analyses = "freq"', "policy.allowed_analyses must be list"),
        ("allowed_analyses = [1]", "must hold strings"),
        ("min_cohort_size = true", "policy.min_cohort_size must be int"),
        ("min_cell_count = -1", "must be >= 0"),
    ],
)
def test_load_policy__wrong_type_names_key_and_file(tmp_path: Path, line: str, needle: str) -> None:
    path = _write(tmp_path, f"[policy]\nversion = 1\n{line}\n")
    with pytest.raises(ConfigError, match=needle) as info:
        load_policy(path)
    assert str(info.value).startswith(f"{path}: ")


def test_load_policy__unsupported_version_says_which(tmp_path: Path) -> None:
    path = _write(tmp_path, "[policy]\nversion = 2\n")
    with pytest.raises(ConfigError, match="policy version 2 is not supported"):
        load_policy(path)


def test_load_policy__toml_syntax_error_names_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "[policy]\nversion = 1\ndemo = \n")
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    assert str(info.value).startswith(f"{path}:3: ")


DEMO = SitePolicy(demo=True, allowed_analyses=frozenset({"freq"}), min_cohort_size=10)
REAL = SitePolicy(demo=False, allowed_analyses=frozenset({"freq"}), min_cohort_size=10)


@pytest.mark.parametrize(
    ("policy", "kind", "signed", "n", "code"),
    [
        (DEMO, "hardy", False, 100, "ANALYSIS_NOT_ALLOWED"),
        (REAL, "freq", False, 100, "UNSIGNED_STUDY"),
        (DEMO, "freq", False, 9, "COHORT_TOO_SMALL"),
        (REAL, "freq", True, 3, "COHORT_TOO_SMALL"),
    ],
)
def test_check_request__refuses_with_reason_code(
    policy: SitePolicy, kind: str, signed: bool, n: int, code: str
) -> None:
    with pytest.raises(PolicyRefusal) as info:
        check_request(policy, kind=kind, signed=signed, n_samples=n)
    assert info.value.reason_code == code
    assert str(n) not in str(info.value)  # never tells the coordinator the exact cohort size


def test_check_request__unsigned_refusal_says_how_to_sign() -> None:
    with pytest.raises(PolicyRefusal, match="genofed study sign"):
        check_request(REAL, kind="freq", signed=False, n_samples=100)


@pytest.mark.parametrize(("policy", "signed"), [(DEMO, False), (DEMO, True), (REAL, True)])
def test_check_request__allows_permitted_request(policy: SitePolicy, signed: bool) -> None:
    check_request(policy, kind="freq", signed=signed, n_samples=10)


def test_load_policy__trusted_analysts_are_parsed(tmp_path: Path) -> None:
    from genofed.common.signing import generate_private_key, parse_public_key, public_key_text

    pub = public_key_text(generate_private_key().public_key())
    path = tmp_path / "policy.toml"
    path.write_text(
        "[policy]\nversion = 1\n\n[[policy.trusted_analysts]]\n"
        f'name = "alice"\npublic_key = "{pub}"\n'
    )
    assert dict(load_policy(path).trusted_analysts) == {"alice": parse_public_key(pub)}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('name = "alice"\npublic_key = "ssh-ed25519 AAAA"', "public_key is not an Ed25519"),
        ('name = "alice"', "public_key"),
        ('name = "alice"\npublic_key = "ed25519:AAAA"\ncolour = "red"', "colour"),
    ],
)
def test_load_policy__bad_trusted_analyst_names_key_and_file(
    tmp_path: Path, entry: str, message: str
) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(f"[policy]\nversion = 1\n\n[[policy.trusted_analysts]]\n{entry}\n")
    with pytest.raises(ConfigError, match=message) as info:
        load_policy(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("line", "needles"),
    [
        ('allowed_analyses = ["telepathy"]', ("'telepathy'", "not an analysis kind", "freq")),
        ('allowed_analyses = ["frq"]', ("did you mean 'freq' (for 'frq')",)),
        ('allowed_release_modes = ["public"]', ("'public'", "not a release mode", "plain")),
        ("colour = 1", ("unknown key 'colour' in [policy]",)),
    ],
)
def test_load_policy__unknown_kind_mode_or_key_is_named(
    tmp_path: Path, line: str, needles: tuple[str, ...]
) -> None:
    path = _write(tmp_path, f"[policy]\nversion = 1\n{line}\n")
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    assert str(info.value).startswith(f"{path}: ")
    for needle in needles:
        assert needle in str(info.value)
    assert "\n  fix: " in str(info.value)


def test_load_policy__the_variants_round_may_be_allowed(tmp_path: Path) -> None:
    path = _write(tmp_path, '[policy]\nversion = 1\nallowed_analyses = ["variants", "freq"]\n')
    assert load_policy(path).allowed_analyses == {"variants", "freq"}


def test_load_policy__lists_every_problem_at_once(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "[policy]\nversion = 1\ncolour = 1\nmin_cohort = 2\n"
        'allowed_analyses = ["telepathy"]\nallowed_release_modes = ["public"]\n'
        'min_cell_count = -1\n[policy.budget]\nepsilon = 1.0\nperiod = "decade"\n'
        "[policy.analysis.astrology]\nmax_epsilon = 1\n"
        '[[policy.auto_approve]]\nname = "r"\nanalysts = ["*"]\nanalyses = ["telepathy"]\n',
    )
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    text = str(info.value)
    assert text.startswith(f"{path}: 7 problems:\n")
    for needle in (
        "1. unknown keys 'colour', 'min_cohort' in [policy]",
        "'telepathy', which is not an analysis kind",
        "allowed_release_modes names 'public'",
        "policy.min_cell_count must be >= 0",
        "policy.budget.period",
        "[policy.analysis.astrology]: unknown analysis kind",
        "[[policy.auto_approve]] #1.analyses names 'telepathy'",
    ):
        assert needle in text
    assert text.count("     fix: ") == 7  # each problem's own fix
    assert text.endswith("then run genofed-site check")
