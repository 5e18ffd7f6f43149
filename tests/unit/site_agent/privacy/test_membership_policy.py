"""The membership check's policy keys: on in genofed-site init's file, off in the demo's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from genofed.common.errors import ConfigError, InputError
from genofed.site_agent.privacy.membership_release import check_release
from genofed.site_agent.privacy.policy import (
    DEFAULT_POLICY_TOML,
    DEMO_POLICY_TOML,
    SitePolicy,
    load_policy,
)
from genofed.site_agent.privacy.reference_panel import read_panel

BASE = '[policy]\nversion = 1\nallowed_analyses = ["freq"]\n'


def _load(tmp_path: Path, text: str) -> SitePolicy:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return load_policy(path)


def test_template__limits_the_power_to_a_tenth_at_five_percent(tmp_path: Path) -> None:
    policy = _load(tmp_path, DEFAULT_POLICY_TOML)
    assert (policy.max_membership_power, policy.membership_fpr) == (0.1, 0.05)
    assert policy.membership_reference is None


def test_demo_and_a_policy_without_the_key__no_check(tmp_path: Path) -> None:
    assert _load(tmp_path, DEMO_POLICY_TOML).max_membership_power is None
    assert _load(tmp_path, BASE).max_membership_power is None


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ("max_membership_power = 0.05", r"max_membership_power must lie in \(membership_fpr, 1\]"),
        ("max_membership_power = 1.5", "max_membership_power must lie in"),
        ('max_membership_power = "0.1"', "max_membership_power must be int or float"),
        ("membership_fpr = 0", "membership_fpr must lie strictly between 0 and 1"),
        ("max_membership_power = 0.2\nmembership_fpr = 0.3", r"\(0.3, 1\]"),
        ('membership_reference = "panel.afreq"', "there is no file"),
    ],
)
def test_bad_values__are_named_with_their_fix(tmp_path: Path, lines: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        _load(tmp_path, BASE + lines + "\n")
    assert "fix:" in str(info.value)


def test_reference__a_panel_beside_the_policy_is_read(tmp_path: Path) -> None:
    (tmp_path / "panel.afreq").write_text(
        "#CHROM\tID\tREF\tALT\tPROVISIONAL_REF?\tALT_FREQS\tOBS_CT\n"
        "1\trs1\tA\tG\tY\t0.25\t5008\n"
        "1\trs2\tC\tT,G\tY\t0.1,0.2\t5008\n"
    )
    policy = _load(
        tmp_path, BASE + 'max_membership_power = 0.1\nmembership_reference = "panel.afreq"\n'
    )
    assert policy.membership_reference == tmp_path / "panel.afreq"
    panel = read_panel(policy.membership_reference)
    # the same alleles, swapped ones (1 - ALT_FREQS), other alleles, multi-allelic, absent
    freq = panel.alt_frequency(
        ["rs1", "rs1", "rs1", "rs2", "rs3"], ["A", "G", "A", "C", "A"], ["G", "A", "C", "T", "G"]
    )
    assert freq[:2].tolist() == [0.25, 0.75]
    assert all(f != f for f in freq[2:])  # NaN: the site's own frequency is used


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1\trs1\tA\tG\t0.2\n", "no '#CHROM ...' header"),
        ("#CHROM\tID\tREF\tALT\n", "lacks column"),
        ("#CHROM\tID\tREF\tALT\tALT_FREQS\n1\trs1\tA\tG\tx\n", r"panel.afreq:2: .*malformed"),
        ("#CHROM\tID\tREF\tALT\tALT_FREQS\n1\trs1\tA\tG\t1.5\n", "not a frequency"),
    ],
)
def test_reference__a_malformed_panel_names_the_file_and_line(
    tmp_path: Path, text: str, message: str
) -> None:
    (tmp_path / "panel.afreq").write_text(text)
    with pytest.raises(InputError, match=message):
        read_panel(tmp_path / "panel.afreq")


def test_check_release__uses_the_panel_where_it_has_the_variant(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    p = rng.uniform(0.1, 0.5, 400)
    g = rng.binomial(2, p, size=(300, 400))
    counts = np.stack([(g == 0).sum(0), (g == 1).sum(0), (g == 2).sum(0), np.zeros(400)], 1)
    ids = np.array([f"rs{i}" for i in range(400)])
    # the panel has half the variants, with this cohort's own alleles swapped at one of them
    lines = [f"1\trs{i}\tA\tG\t{p[i]:.6f}" for i in range(1, 200)] + [
        f"1\trs0\tG\tA\t{1 - p[0]:.6f}"
    ]
    (tmp_path / "panel.afreq").write_text("#CHROM\tID\tREF\tALT\tALT_FREQS\n" + "\n".join(lines))
    text = BASE + 'max_membership_power = 0.2\nmembership_reference = "panel.afreq"\n'
    policy = _load(tmp_path, text)
    withheld = np.zeros(400, dtype=np.bool_)
    decision = check_release(policy, counts, withheld, ids, np.full(400, "A"), np.full(400, "G"))
    record = json.loads(decision.facts["noise"])["membership"]
    assert record["reference"] == "panel" and record["variants_on_panel"] == 200
    assert record["power_before"] > 0.2 >= record["power"]
    assert float(decision.facts["membership_power"]) == pytest.approx(record["power"], rel=1e-3)
    assert record["variants_withheld"] == int(decision.withheld.sum()) > 0
