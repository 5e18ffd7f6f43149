"""``genofed``'s exit codes: one table (genofed.cli.analyst's docstring), checked both ways.

Every ``EXIT_*`` constant of the analyst's command line is documented there,
every documented code is such a constant, and every constant is what some
code path exits with (found in the source, and exercised below for the
codes of :mod:`genofed.cli.failures`).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import genofed
from genofed.cli import analyst, exits, failures
from genofed.common.errors import (
    GenoFedError,
    StudyTimeout,
    TooFewSites,
    UnreachableError,
)
from genofed.coordinator.deploy.submit import RemoteInternalError, remote_error
from genofed.coordinator.deploy.superlink import unreachable

SOURCE = Path(genofed.__file__).parent


def _constants() -> dict[str, int]:
    found: dict[str, int] = {}
    for module in (exits, failures, analyst):
        for name, value in vars(module).items():
            if name.startswith("EXIT_"):
                assert found.setdefault(name, value) == value, name
    return found


def _documented() -> set[int]:
    return {int(m) for m in re.findall(r"^\* (\d+) — ", analyst.__doc__ or "", flags=re.M)}


def test_every_constant_is_documented_and_every_documented_code_is_a_constant() -> None:
    constants = _constants()
    assert set(constants.values()) == _documented()
    assert len(set(constants.values())) == len(constants)  # one name per code
    assert set(constants) <= set(analyst.__all__)  # the table's module exports them all


def test_every_constant_is_an_exit_some_code_path_takes() -> None:
    text = "\n".join(p.read_text() for p in SOURCE.rglob("*.py"))
    for name in _constants():
        used = re.search(rf"(?:Exit|exit)\([^)]*\b{name}\b", text)
        assert used, f"no code path exits with {name}"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (TooFewSites("too few", key="[study] min_sites"), failures.EXIT_TOO_FEW_SITES),
        (UnreachableError("no coordinator"), failures.EXIT_UNREACHABLE),
        (StudyTimeout("too slow"), failures.EXIT_TIMEOUT),
        (RemoteInternalError("a bug there"), exits.EXIT_INTERNAL),
        (KeyboardInterrupt(), failures.EXIT_INTERRUPTED),
    ],
)
def test_run_errors__maps_each_failure_to_its_code(error: BaseException, code: int) -> None:
    with pytest.raises(typer.Exit) as info, failures.run_errors(Path("study.toml")):
        raise error
    assert info.value.exit_code == code


def test_run_errors__leaves_other_errors_to_cli_errors() -> None:
    with pytest.raises(typer.Exit) as info, exits.cli_errors(), failures.run_errors():
        raise GenoFedError("plain")
    assert info.value.exit_code == exits.EXIT_INPUT


def test_min_sites_message__names_the_study_file_only_for_the_study_key(capsys) -> None:
    with pytest.raises(typer.Exit), failures.run_errors(Path("s.toml")):
        raise TooFewSites("[study] min_sites = 5, but only 2", key="[study] min_sites")
    assert "s.toml: [study] min_sites = 5" in capsys.readouterr().err
    with pytest.raises(typer.Exit), failures.run_errors(Path("s.toml")):
        raise TooFewSites("only 2 of the 3 sites expected (--sites)", key="--sites")
    assert "s.toml" not in capsys.readouterr().err


def test_the_servers_error_classes_come_back_as_their_exit_codes() -> None:
    too_few = remote_error({"error": "TooFewSites", "message": "m", "key": "--sites"})
    assert isinstance(too_few, TooFewSites) and too_few.key == "--sites"
    assert isinstance(remote_error({"error": "InternalError", "message": "m"}), RemoteInternalError)
    assert isinstance(remote_error({"error": "UnreachableError", "message": "m"}), UnreachableError)
    flwr_says = [
        "╭─ Error ─────╮",
        "│ Connection to the SuperLink is unavailable. Please check your network        │",
    ]
    assert unreachable(flwr_says)
    assert not unreachable(["Successfully started run 1234"])


def test_coordinator_unreachable__exits_6_not_bad_input(tmp_path: Path) -> None:
    """A real ``flwr run`` against a closed port: Flower says the SuperLink is unavailable."""
    study = tmp_path / "study.toml"
    study.write_text(analyst.DEMO_STUDY)
    result = CliRunner().invoke(
        analyst.app,
        [
            "study",
            "run",
            str(study),
            "--superlink",
            "127.0.0.1:1",
            "--insecure",
            "--out",
            str(tmp_path / "r"),
        ],
    )
    assert result.exit_code == failures.EXIT_UNREACHABLE, result.stderr
    assert "cannot reach the coordinator's control API at 127.0.0.1:1" in result.stderr
    assert not (tmp_path / "r").exists()


def test_site_cli__dp_accounting_warnings_are_silenced(tmp_path: Path) -> None:
    """``genofed-site`` lowers absl's logger: no ``_compute_log_a_frac`` lines before answers."""
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from genofed.site_agent.cli.main import app\n"
        "from genofed.site_agent.privacy.accounting import epsilon_of_events\n"
        "epsilon_of_events([(1.0, 0.13, 24)], 1e-5)\n"  # before: absl warns
        "print('--- genofed-site ---', file=sys.stderr, flush=True)\n"
        "CliRunner().invoke(app, ['app-hash'])\n"
        "print(epsilon_of_events([(1.0, 0.128, 24)], 1e-5))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    before, after = res.stderr.split("--- genofed-site ---")
    assert "_compute_log_a_frac failed to converge" in before  # what it silences
    assert "_compute_log_a_frac" not in after, after
    assert float(res.stdout.strip()) > 0
