"""``genofed-site audit``: export, verify (exit 3 on tampering, naming where), show, init."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import bed_reader
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from genofed.common.checkpoint import public_key_to_pem
from genofed.site_agent.audit.log import (
    AUDIT_PUB,
    CHECKPOINTS_FILE,
    ENTRIES_FILE,
    STATE_DIR,
    AuditLog,
    AuditPaths,
    refusal_entry,
    release_entry,
    request_entry,
)
from genofed.site_agent.cli import audit as audit_cli
from genofed.site_agent.cli.audit import EXIT_AUDIT_FAILED, EXIT_INPUT, EXIT_OK
from genofed.site_agent.cli.main import app
from genofed.site_agent.sitedir import init_site
from tests.unit.site_agent.test_audit import StepClock, _request

runner = CliRunner()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A site made by init, with a log of 6 entries: two requests refused, one released."""
    directory = tmp_path / "site"
    directory.mkdir()
    genotypes = np.random.default_rng(1).integers(0, 3, size=(12, 5)).astype(np.float32)
    bed_reader.to_bed(directory / "cohort.bed", genotypes, properties={"iid": list("abcdefghijkl")})
    init_site(directory, name="hospital-a", genotypes=directory / "cohort.bed", demo_policy=True)
    spec_request = _request(run_id="run-released")
    with AuditLog.open(directory, clock=StepClock()) as log:
        for run in ("run-a", "run-b"):
            log.append(request_entry(_request(run_id=run)))
            log.append(
                refusal_entry(_request(run_id=run), decision="refused", reason="NOPE: not allowed")
            )
        log.append(request_entry(spec_request))
        log.append(release_entry(spec_request, []))
    return directory


def _invoke(*args: str | Path):
    return runner.invoke(app, ["audit", *map(str, args)])


def _export(site: Path, out: Path) -> Path:
    result = _invoke("export", site, "--out", out)
    assert result.exit_code == EXIT_OK, result.output
    return out


def test_init__creates_the_audit_state_of_a_new_site(site: Path) -> None:
    assert sorted(
        p.name for p in (site / STATE_DIR).iterdir() if not p.name.endswith(("-wal", "-shm"))
    ) == [
        "audit.key",
        "audit.pub",
        "audit.sqlite",
    ]


def test_export_then_verify__round_trip_and_saved_checkpoint(site: Path, tmp_path: Path) -> None:
    out = _export(site, tmp_path / "export")
    assert sorted(p.name for p in out.iterdir()) == [AUDIT_PUB, CHECKPOINTS_FILE, ENTRIES_FILE]
    lines = (out / ENTRIES_FILE).read_text().splitlines()
    assert len(lines) == 6 and json.loads(lines[5])["entry"]["kind"] == "AUDIT_KIND_RELEASE"

    saved = tmp_path / "saved.json"
    result = _invoke(
        "verify", out, "--pubkey", site / STATE_DIR / AUDIT_PUB, "--save-checkpoint", saved
    )
    assert result.exit_code == EXIT_OK, result.output
    assert "verified: 6 entries, 7 signed checkpoints" in result.stdout
    assert json.loads(saved.read_text())["tree_size"] == 6

    with AuditLog.open(site) as log:  # the site goes on appending
        log.append(request_entry(_request(run_id="later")))
    result = _invoke("verify", site, "--checkpoint", saved, "--json")
    assert result.exit_code == EXIT_OK, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] and doc["n_entries"] == 7 and doc["latest_checkpoint"]["tree_size"] == 7


def test_verify__edited_entry_exits_3_naming_the_entry(site: Path, tmp_path: Path) -> None:
    out = _export(site, tmp_path / "export")
    path = out / ENTRIES_FILE
    path.write_text(path.read_text().replace("NOPE: not allowed", "NOPE: not allowex", 1))
    result = _invoke("verify", out)
    assert result.exit_code == EXIT_AUDIT_FAILED
    assert "does NOT verify" in result.stderr
    assert "entries.jsonl line 2 (entry 1)" in result.stderr


def test_verify__edited_checkpoint_exits_3_naming_it(site: Path, tmp_path: Path) -> None:
    out = _export(site, tmp_path / "export")
    path = out / CHECKPOINTS_FILE
    lines = path.read_text().splitlines()
    doc = json.loads(lines[3])
    doc["time"] = "2030-01-01T00:00:00.000000Z"
    lines[3] = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    path.write_text("\n".join(lines) + "\n")
    result = _invoke("verify", out)
    assert result.exit_code == EXIT_AUDIT_FAILED
    assert "checkpoints.jsonl line 4 (tree size 3): the signature does not verify" in result.stderr


def test_verify__cut_log_fails_against_the_saved_checkpoint(site: Path, tmp_path: Path) -> None:
    out = _export(site, tmp_path / "export")
    saved = tmp_path / "saved.json"
    assert _invoke("verify", out, "--save-checkpoint", saved).exit_code == EXIT_OK
    for name, keep in ((ENTRIES_FILE, 4), (CHECKPOINTS_FILE, 5)):
        lines = (out / name).read_text().splitlines(keepends=True)
        (out / name).write_text("".join(lines[:keep]))
    assert _invoke("verify", out).exit_code == EXIT_OK  # self-consistent prefix...
    result = _invoke("verify", out, "--checkpoint", saved)
    assert result.exit_code == EXIT_AUDIT_FAILED  # ...but the officer saved more
    assert "entries were removed since you saved it" in result.stderr


def test_verify__with_a_key_the_officer_does_not_hold_exits_3(site: Path, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger.pub"
    stranger.write_bytes(public_key_to_pem(Ed25519PrivateKey.generate().public_key()))
    result = _invoke("verify", site, "--pubkey", stranger)
    assert result.exit_code == EXIT_AUDIT_FAILED
    assert "not by the given key" in result.stderr


def test_verify__bad_inputs_exit_2_naming_the_file(site: Path, tmp_path: Path) -> None:
    result = _invoke("verify", tmp_path)
    assert result.exit_code == EXIT_INPUT
    assert "neither an audit export nor a site directory" in result.stderr
    bad = tmp_path / "saved.json"
    bad.write_text('{"tree_size": 1}')
    result = _invoke("verify", site, "--checkpoint", bad)
    assert result.exit_code == EXIT_INPUT
    assert f"{bad}: not a checkpoint" in result.stderr
    result = _invoke("verify", site, "--pubkey", site / "site.toml")
    assert result.exit_code == EXIT_INPUT and "not a PEM public key" in result.stderr


def test_export__into_a_non_empty_directory_exits_2_and_writes_nothing(
    site: Path, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    result = _invoke("export", site, "--out", out)
    assert result.exit_code == EXIT_INPUT and "not an empty directory" in result.stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert not list(tmp_path.glob(".export.partial-*"))


def test_show__filters_and_json(site: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["audit", "show", str(site)], env={"COLUMNS": "200"})
    assert result.exit_code == EXIT_OK, result.output
    assert "6 entries shown" in result.stdout and "NOPE: not allowed" in result.stdout

    result = _invoke("show", _export(site, tmp_path / "export"), "--decision", "refused", "--json")
    assert result.exit_code == EXIT_OK, result.output
    shown = json.loads(result.stdout)
    assert [e["run_id"] for e in shown] == ["run-a", "run-b"]
    assert all(e["kind"] == "AUDIT_KIND_REFUSAL" for e in shown)

    result = _invoke(
        "show", site, "--kind", "release", "--study", shown[0]["study_sha256"][:8], "--json"
    )
    assert [e["run_id"] for e in json.loads(result.stdout)] == ["run-released"]
    result = _invoke("show", site, "--since", "2026-05-01T12:00:03", "--json")
    assert [e["index"] for e in json.loads(result.stdout)] == ["2", "3", "4", "5"]
    result = _invoke("show", site, "--decision", "maybe")
    assert result.exit_code == EXIT_INPUT and "approved, refused, error" in result.stderr


def test_init__creates_state_for_an_older_site_and_refuses_twice(site: Path) -> None:
    shutil.rmtree(site / STATE_DIR)
    result = _invoke("init", site)
    assert result.exit_code == EXIT_OK, result.output
    assert AuditPaths.of(site).key.is_file()
    result = _invoke("verify", site)
    assert result.exit_code == EXIT_OK and "verified: 0 entries, 1 signed" in result.stdout
    result = _invoke("init", site)
    assert result.exit_code == EXIT_INPUT and "refusing to replace" in result.stderr


def test_exit_codes__each_is_documented() -> None:
    doc = audit_cli.__doc__ or ""
    for name in ("EXIT_OK", "EXIT_UNEXPECTED", "EXIT_INPUT", "EXIT_AUDIT_FAILED"):
        assert f"``{getattr(audit_cli, name)}`` ({name})" in doc
