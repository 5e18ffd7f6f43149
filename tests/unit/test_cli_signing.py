"""`genofed study keygen | sign | show` for signed studies."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from typer.testing import CliRunner

from genofed.cli import analyst as cli

runner = CliRunner()


def _keygen(tmp_path: Path) -> Path:
    key = tmp_path / "keys" / "alice"
    result = runner.invoke(cli.app, ["study", "keygen", "--out", str(key)])
    assert result.exit_code == cli.EXIT_OK, result.output
    return key


def test_keygen__writes_owner_only_private_key_and_pasteable_public_key(tmp_path: Path) -> None:
    key = _keygen(tmp_path)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert (tmp_path / "keys" / "alice.pub").read_text().startswith("ed25519:")
    again = runner.invoke(cli.app, ["study", "keygen", "--out", str(key)])
    assert again.exit_code == cli.EXIT_INPUT
    assert "already exists" in again.output


def test_sign_then_show__same_hash_and_names_the_signer(tmp_path: Path) -> None:
    key = _keygen(tmp_path)
    study = tmp_path / "study.toml"
    study.write_text(cli.DEMO_STUDY)
    signed = runner.invoke(cli.app, ["study", "sign", str(study), "--key", str(key)])
    assert signed.exit_code == cli.EXIT_OK, signed.output
    signed_file = tmp_path / "study.signed.json"
    plain = runner.invoke(cli.app, ["study", "show", str(study)])
    shown = runner.invoke(cli.app, ["study", "show", str(signed_file)])
    assert shown.exit_code == cli.EXIT_OK, shown.output
    sha = [line for line in plain.output.splitlines() if line.startswith("sha256:")]
    assert sha and sha[0] in shown.output
    pub = (tmp_path / "keys" / "alice.pub").read_text().strip()
    assert pub in shown.output.replace("\n", "")


def test_show__tampered_signed_study_exits_2(tmp_path: Path) -> None:
    key = _keygen(tmp_path)
    study = tmp_path / "study.toml"
    study.write_text(cli.DEMO_STUDY)
    runner.invoke(cli.app, ["study", "sign", str(study), "--key", str(key)])
    signed_file = tmp_path / "study.signed.json"
    doc = json.loads(signed_file.read_text())
    doc["study"] = doc["study"].replace('"midp":false', '"midp":true')
    signed_file.write_text(json.dumps(doc))
    result = runner.invoke(cli.app, ["study", "show", str(signed_file)])
    assert result.exit_code == cli.EXIT_INPUT
    assert "altered after signing" in result.output


def test_sign__with_a_non_key_file_exits_2_naming_it(tmp_path: Path) -> None:
    study = tmp_path / "study.toml"
    study.write_text(cli.DEMO_STUDY)
    bogus = tmp_path / "notakey"
    bogus.write_text("x")
    result = runner.invoke(cli.app, ["study", "sign", str(study), "--key", str(bogus)])
    assert result.exit_code == cli.EXIT_INPUT
    assert "notakey" in result.output
    assert not (tmp_path / "study.signed.json").exists()
