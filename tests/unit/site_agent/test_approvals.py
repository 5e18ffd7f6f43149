"""Study approvals by hash (privacy/approvals.py) and `genofed-site approve/refuse/studies`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from genofed.common.errors import InputError, PolicyRefusal
from genofed.common.messages import AuditEntry, AuditKind
from genofed.common.study import study_from_mapping
from genofed.common.wire.proto import audit_entry_from_bytes
from genofed.site_agent.audit.log import init_audit, read_site_log
from genofed.site_agent.cli.main import EXIT_INPUT, EXIT_OK, app
from genofed.site_agent.privacy.approvals import (
    APPROVED,
    PENDING,
    REFUSED,
    approve,
    get_study,
    list_studies,
    refuse,
    require_approval,
    resolve_hash,
)
from genofed.site_agent.privacy.policy import SitePolicy
from genofed.site_agent.privacy.policy_rules import AutoApproveRule

runner = CliRunner()
STUDY = study_from_mapping(
    {"study": {"name": "qc"}, "analysis": [{"kind": "freq"}]}, path=Path("<t>")
)
OTHER = "ab" * 32


@pytest.fixture
def site(tmp_path: Path) -> Path:
    init_audit(tmp_path)
    return tmp_path


def _policy(*rules: AutoApproveRule) -> SitePolicy:
    return SitePolicy(demo=False, allowed_analyses=frozenset({"freq"}), auto_approve=rules)


def _decisions(site: Path) -> list[AuditEntry]:
    entries = [audit_entry_from_bytes(leaf) for leaf in read_site_log(site).leaves]
    return [e for e in entries if e.kind == AuditKind.DECISION]


def test_unseen_study__is_recorded_pending_and_refused(site: Path) -> None:
    with pytest.raises(PolicyRefusal) as info:
        require_approval(site, _policy(), STUDY, "alice")
    assert info.value.reason_code == "PENDING_APPROVAL"
    assert f"genofed-site approve {STUDY.sha256}" in str(info.value)
    (record,) = list_studies(site)
    assert (record.study_sha256, record.status, record.study_name, record.analyst) == (
        STUDY.sha256,
        PENDING,
        "qc",
        "alice",
    )
    assert not _decisions(site)  # pending is not a decision; the handler audits the refusal


def test_approve__lets_the_study_run_and_is_audited(site: Path) -> None:
    with pytest.raises(PolicyRefusal):
        require_approval(site, _policy(), STUDY, "alice")
    record = approve(site, STUDY.sha256, by="olivia", reason="ethics ref 12")
    assert record.status == APPROVED and record.decided_by == "olivia" and record.decided_at
    assert require_approval(site, _policy(), STUDY, "alice").status == APPROVED
    (entry,) = _decisions(site)
    assert entry.study_sha256 == STUDY.sha256 and entry.decision == "approved"
    assert entry.reason == "by olivia: ethics ref 12"
    approve(site, STUDY.sha256, by="olivia")  # again: a no-op, not a second entry
    assert len(_decisions(site)) == 1


def test_refused_study__stays_refused(site: Path) -> None:
    approve(site, STUDY.sha256, by="olivia")
    refuse(site, STUDY.sha256, by="olivia", reason="consent withdrawn")
    with pytest.raises(InputError, match="stays refused"):
        approve(site, STUDY.sha256, by="olivia")
    rule = AutoApproveRule("anything", frozenset({"*"}))
    with pytest.raises(PolicyRefusal) as info:
        require_approval(site, _policy(rule), STUDY, "alice")
    assert info.value.reason_code == "STUDY_REFUSED"
    assert "consent withdrawn" in str(info.value)
    assert get_study(site, STUDY.sha256).status == REFUSED  # type: ignore[union-attr]
    assert [e.decision for e in _decisions(site)] == ["approved", "refused"]


def test_refuse__needs_a_reason(site: Path) -> None:
    with pytest.raises(InputError, match="needs a reason"):
        refuse(site, OTHER, by="olivia", reason=" ")
    assert list_studies(site) == []


def test_auto_approval__rule_approves_and_names_itself(site: Path) -> None:
    alice_only = AutoApproveRule("alice qc", frozenset({"alice"}), frozenset({"freq"}))
    with pytest.raises(PolicyRefusal):
        require_approval(site, _policy(alice_only), STUDY, "bob")  # another analyst: pending
    record = require_approval(site, _policy(alice_only), STUDY, "alice")  # pending -> approved
    assert record.status == APPROVED and record.decided_by == "policy rule 'alice qc'"
    assert [e.decision for e in _decisions(site)] == ["approved"]


def test_auto_approval__rule_limits_analyses_and_release_modes(site: Path) -> None:
    hardy_only = AutoApproveRule("hardy", frozenset({"*"}), analyses=frozenset({"hardy"}))
    dp_only = AutoApproveRule("dp", frozenset({"*"}), release_modes=frozenset({"dp"}))
    for rule in (hardy_only, dp_only):
        with pytest.raises(PolicyRefusal) as info:
            require_approval(site, _policy(rule), STUDY, None)
        assert info.value.reason_code == "PENDING_APPROVAL"


def test_approvals_state__unreadable_is_a_refusal(tmp_path: Path) -> None:
    with pytest.raises(PolicyRefusal) as info:
        require_approval(tmp_path / "no-such-site", _policy(), STUDY, "alice")
    assert info.value.reason_code == "APPROVALS_UNAVAILABLE"


def test_resolve_hash__full_prefix_and_errors(site: Path) -> None:
    approve(site, STUDY.sha256, by="olivia")
    assert resolve_hash(site, STUDY.sha256.upper()) == STUDY.sha256
    assert resolve_hash(site, STUDY.sha256[:10]) == STUDY.sha256
    with pytest.raises(InputError, match="not a study hash"):
        resolve_hash(site, "xyz")
    with pytest.raises(InputError, match="no study"):
        resolve_hash(site, "0" * 12 if not STUDY.sha256.startswith("0" * 12) else "1" * 12)


def test_cli__approve_refuse_and_list_as_json_and_table(site: Path) -> None:
    result = runner.invoke(app, ["approve", STUDY.sha256, "--site", str(site), "--by", "olivia"])
    assert result.exit_code == EXIT_OK, result.output
    assert "approved" in result.stdout
    result = runner.invoke(
        app, ["refuse", OTHER, "--site", str(site), "--by", "olivia", "--reason", "no consent"]
    )
    assert result.exit_code == EXIT_OK, result.output
    result = runner.invoke(app, ["studies", "--site", str(site), "--json"])
    assert result.exit_code == EXIT_OK, result.output
    listed = {d["study_sha256"]: d for d in json.loads(result.stdout)}
    assert listed[STUDY.sha256]["status"] == "approved"
    assert listed[OTHER]["status"] == "refused" and listed[OTHER]["reason"] == "no consent"
    result = runner.invoke(app, ["studies", "--site", str(site), "--status", "refused"])
    assert result.exit_code == EXIT_OK and OTHER[:16] in result.stdout
    assert STUDY.sha256[:16] not in result.stdout


def test_cli__approving_a_refused_study_exits_2_and_says_why(site: Path) -> None:
    refuse(site, OTHER, by="olivia", reason="no consent")
    result = runner.invoke(app, ["approve", OTHER[:12], "--site", str(site), "--by", "x"])
    assert result.exit_code == EXIT_INPUT
    assert "stays refused" in result.stderr and "new hash" in result.stderr
    result = runner.invoke(app, ["refuse", OTHER, "--site", str(site)])
    assert result.exit_code == EXIT_INPUT  # --reason is required
