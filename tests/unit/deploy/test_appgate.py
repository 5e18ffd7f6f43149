"""The app gate's decision and refusal record (the Flower loop is covered end to end)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genofed.common.appbundle import bundle_hash
from genofed.common.errors import ConfigError
from genofed.site_agent.node.appgate import REFUSALS_FILE, decide, record_refusal
from genofed.site_agent.privacy.policy import DEMO_POLICY_TOML, POLICY_FILE, load_policy


def _site(tmp_path: Path, policy: str | None) -> Path:
    if policy is not None:
        (tmp_path / POLICY_FILE).write_text(policy)
    return tmp_path


def test_decide__demo_policy_allows_this_versions_bundle(tmp_path: Path) -> None:
    assert decide(_site(tmp_path, DEMO_POLICY_TOML), bundle_hash()) is None


def test_decide__refuses_a_bundle_not_listed(tmp_path: Path) -> None:
    refusal = decide(_site(tmp_path, DEMO_POLICY_TOML), "ab" * 32)
    assert refusal is not None and refusal.reason_code == "APP_NOT_ALLOWED"


def test_decide__no_policy_file_refuses_everything(tmp_path: Path) -> None:
    refusal = decide(_site(tmp_path, None), bundle_hash())
    assert refusal is not None and refusal.reason_code == "APP_NOT_ALLOWED"


def test_decide__unreadable_policy_refuses(tmp_path: Path) -> None:
    refusal = decide(_site(tmp_path, "[policy]\nversion = 1\nbogus = 1\n"), bundle_hash())
    assert refusal is not None and refusal.reason_code == "POLICY_UNREADABLE"


def test_policy__allowed_app_hashes_must_be_sha256_hex(tmp_path: Path) -> None:
    path = tmp_path / POLICY_FILE
    path.write_text('[policy]\nversion = 1\nallowed_app_hashes = ["v0.1.0"]\n')
    with pytest.raises(ConfigError, match="allowed_app_hashes"):
        load_policy(path)


def test_record_refusal__appends_a_json_line_without_an_audit_log(tmp_path: Path) -> None:
    refusal = decide(_site(tmp_path, DEMO_POLICY_TOML), "cd" * 32)
    assert refusal is not None
    record_refusal(tmp_path, fab_hash="cd" * 32, run_id=7, refusal=refusal)
    record_refusal(tmp_path, fab_hash="cd" * 32, run_id=8, refusal=refusal)
    lines = [json.loads(x) for x in (tmp_path / REFUSALS_FILE).read_text().splitlines()]
    assert [x["run_id"] for x in lines] == ["7", "8"]
    assert lines[0]["fab_hash"] == "cd" * 32 and lines[0]["audit_index"] is None
