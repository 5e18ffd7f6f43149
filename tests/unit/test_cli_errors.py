"""How both command lines print errors (issue 21): as written, and a bug as one line.

Messages go through Rich, which reads ``[...]`` as markup and ``:name:`` as an
emoji code: ``[[analysis]] #2`` printed as ``[] #2`` and ``x.bim:100:`` as
``x.bim💯``. An unexpected exception prints one line naming the file that
holds its traceback, never the traceback itself.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from genofed.cli import analyst
from genofed.cli import exits as analyst_exits
from genofed.common.errors import ConfigError
from genofed.site_agent.cli import exits as site_exits
from genofed.site_agent.cli import main as site_main

runner = CliRunner()

#: Text that Rich would change if it read it as markup or emoji codes.
TRICKY = "x.bim:100: add at least one [[analysis]] table; [bold]not bold[/] :smile: [red]"


def test_analyst_error__printed_exactly_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    analyst_exits.print_error("error:", TRICKY)
    assert f"error: {TRICKY}\n" in capsys.readouterr().err


def test_site_error__printed_exactly_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    site_exits.print_error(TRICKY)
    assert f"error: {TRICKY}\n" in capsys.readouterr().err


def test_analyst_cli__input_error_with_markup_and_emoji_codes_is_shown_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(path: Path) -> None:
        raise ConfigError("bad [[analysis]] #2", path=f"{tmp_path}/x.bim", line=100, hint=TRICKY)

    monkeypatch.setattr(analyst, "load_study", refuse)
    result = runner.invoke(analyst.app, ["study", "show", str(tmp_path / "study.toml")])
    assert result.exit_code == analyst.EXIT_INPUT
    assert f"{tmp_path}/x.bim:100: bad [[analysis]] #2" in result.output
    assert f"fix: {TRICKY}" in result.output


def test_site_cli__input_error_with_markup_and_emoji_codes_is_shown_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(directory: Path) -> None:
        raise ConfigError("[[policy.trusted_analysts]] #2", path=f"{tmp_path}/x.bim", line=100)

    monkeypatch.setattr(site_main, "load_site", refuse)
    result = runner.invoke(site_main.app, ["check", str(tmp_path)])
    assert result.exit_code == site_main.EXIT_INPUT
    assert f"{tmp_path}/x.bim:100: [[policy.trusted_analysts]] #2" in result.stderr


def test_analyst_cli__paths_on_standard_output_are_shown_as_written(tmp_path: Path) -> None:
    folder = tmp_path / "keys [bold]x :smile: [[analysis]]"
    folder.mkdir()
    key = folder / "alice:100:"
    result = runner.invoke(analyst.app, ["study", "keygen", "--out", str(key)])
    assert result.exit_code == 0, result.output
    assert f"private key: {key} (keep it secret)" in result.stdout
    assert f"public key:  {key}.pub" in result.stdout


def _one_line_naming_a_trace(output: str, program: str) -> Path:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert "Traceback" not in output
    found = re.search(rf"the full traceback is in (\S*{program}-error-\S+\.log)", lines[0])
    assert found, lines[0]
    log = Path(found.group(1))
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "RuntimeError: bug [x] :100:" in text
    return log


@pytest.fixture
def trace_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Crash logs go to the temporary folder: here, ``tmp_path``."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def _bug(*args: object, **kwargs: object) -> None:
    raise RuntimeError("bug [x] :100:")


def test_analyst_cli__unexpected_error_is_one_line_and_a_trace_file(
    trace_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(analyst, "load_study", _bug)
    result = runner.invoke(analyst.app, ["study", "show", str(trace_dir / "study.toml")])
    assert result.exit_code == analyst.EXIT_INTERNAL
    assert result.exception is None or isinstance(result.exception, SystemExit)
    log = _one_line_naming_a_trace(result.output, "genofed")
    assert log.parent == trace_dir
    assert "RuntimeError('bug [x] :100:')" in result.output  # as written


def test_analyst_main__an_error_outside_the_wrappers_is_one_line_too(
    trace_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(analyst, "app", _bug)
    with pytest.raises(SystemExit) as info:
        analyst.main()
    assert info.value.code == analyst.EXIT_INTERNAL
    _one_line_naming_a_trace(capsys.readouterr().err, "genofed")


def test_site_cli__unexpected_error_is_one_line_and_a_trace_file(
    trace_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(site_main, "load_site", _bug)
    result = runner.invoke(site_main.app, ["check", str(trace_dir)])
    assert result.exit_code == site_main.EXIT_UNEXPECTED
    _one_line_naming_a_trace(result.output, "genofed-site")


def test_unexpected_error__says_so_when_no_trace_file_can_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    monkeypatch.setattr(site_main, "load_site", _bug)
    result = runner.invoke(site_main.app, ["check", str(tmp_path)])
    assert result.exit_code == site_main.EXIT_UNEXPECTED
    assert "the traceback could not be written to a file" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_site_entry_point__an_error_outside_the_wrappers_is_one_line_too(
    trace_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import genofed.site_agent.cli

    monkeypatch.setattr(site_main, "app", _bug)
    with pytest.raises(SystemExit) as info:
        genofed.site_agent.cli.app()  # what pyproject.toml's genofed-site runs
    assert info.value.code == site_main.EXIT_UNEXPECTED
    _one_line_naming_a_trace(capsys.readouterr().err, "genofed-site")
