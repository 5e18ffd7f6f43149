"""The analyst's `genofed` CLI: documented exit codes and clear errors."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from genofed.cli import analyst as cli

runner = CliRunner()


def test_exit_codes__each_is_documented_in_the_module_docstring() -> None:
    codes = {v for k, v in vars(cli).items() if k.startswith("EXIT_")}
    documented = {int(m) for m in re.findall(r"^\* (\d+) — ", cli.__doc__ or "", flags=re.M)}
    assert codes == documented


def test_study_show__prints_hash(tmp_path: Path) -> None:
    study = tmp_path / "study.toml"
    study.write_text(cli.DEMO_STUDY)
    result = runner.invoke(cli.app, ["study", "show", str(study)])
    assert result.exit_code == cli.EXIT_OK
    assert "sha256:" in result.output


def test_study_show__unknown_key_exits_2_naming_file(tmp_path: Path) -> None:
    study = tmp_path / "study.toml"
    study.write_text(cli.DEMO_STUDY.replace("[study]", "[study]\nsize = 3"))
    result = runner.invoke(cli.app, ["study", "show", str(study)])
    assert result.exit_code == cli.EXIT_INPUT
    assert "unknown key 'size'" in result.output
    assert str(study) in result.output.replace("\n", "")


def test_study_run__without_simulation_or_superlink_asks_where_to_run(tmp_path: Path) -> None:
    study = tmp_path / "study.toml"
    study.write_text(cli.DEMO_STUDY)
    result = runner.invoke(cli.app, ["study", "run", str(study), "--out", str(tmp_path / "r")])
    assert result.exit_code == cli.EXIT_INPUT
    assert "--superlink" in result.output


def test_study_run__superlink_without_ca_cert_refuses_plaintext(tmp_path: Path) -> None:
    study = tmp_path / "study.toml"
    study.write_text(cli.DEMO_STUDY)
    result = runner.invoke(
        cli.app,
        ["study", "run", str(study), "--superlink", "127.0.0.1:1", "--out", str(tmp_path / "r")],
    )
    assert result.exit_code == cli.EXIT_INPUT
    assert "without TLS" in result.output
    assert not (tmp_path / "r").exists()


def test_study_run__missing_site_dir_exits_2(tmp_path: Path) -> None:
    study = tmp_path / "study.toml"
    study.write_text(cli.DEMO_STUDY)
    result = runner.invoke(
        cli.app,
        [
            "study",
            "run",
            str(study),
            "--simulation",
            "--site",
            str(tmp_path / "nope"),
            "--out",
            str(tmp_path / "r"),
        ],
    )
    assert result.exit_code == cli.EXIT_INPUT
    assert not (tmp_path / "r").exists()


def test_study_show__notes_a_scoring_file_that_is_not_here(tmp_path: Path) -> None:
    study = tmp_path / "study.toml"
    study.write_text(cli.DEMO_STUDY)  # names cohorts/pgs/GENOFED_SIM.txt, absent here
    result = runner.invoke(cli.app, ["study", "show", str(study)])
    assert result.exit_code == cli.EXIT_OK, result.output
    text = " ".join(result.output.split())
    assert "note: scoring_file 'cohorts/pgs/GENOFED_SIM.txt' of analysis 'prs'" in text
    assert "not checked" in text


def test_study_show__checks_a_scoring_file_that_is_here(tmp_path: Path) -> None:
    (tmp_path / "cohorts" / "pgs").mkdir(parents=True)
    (tmp_path / "cohorts" / "pgs" / "GENOFED_SIM.txt").write_bytes(b"\x1f\x8b\x08\x00garbage")
    study = tmp_path / "study.toml"
    study.write_text(cli.DEMO_STUDY)
    result = runner.invoke(cli.app, ["study", "show", str(study)])
    assert result.exit_code == cli.EXIT_INPUT, result.output
    assert "GENOFED_SIM.txt: starts like a gzip file" in " ".join(result.output.split())
