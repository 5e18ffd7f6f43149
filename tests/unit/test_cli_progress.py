"""``genofed study run``'s progress output: ``--json``, ``--quiet``, plain lines, the live board.

The simulation engine is replaced by the in-process one (the same runner and
events; no Ray), so these run in seconds.
"""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

import genofed.simulation
from genofed.cli import analyst as cli
from genofed.cli.progress import LIVE, PLAIN, RESULT_EVENT, Board, PlainLines, choose_mode
from genofed.coordinator.events import EVENT_NAMES, Event
from genofed.coordinator.runner import run_study
from genofed.synth import write_cohorts
from tests.harness import InProcessTransport

runner = CliRunner()

STUDY = """\
[study]
name = "progress"

[[analysis]]
kind = "freq"

[[analysis]]
kind = "glm"
phenotype = "DISEASE"
covariates = ["AGE", "SEX"]
"""


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory):
    return write_cohorts(
        tmp_path_factory.mktemp("c") / "cohorts", sites=3, samples=120, variants=30, seed=1
    )


@pytest.fixture
def in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--simulation`` runs the study in-process, reporting the same events."""

    def run(study, site_dirs, out, *, progress=None, overwrite=False, **_kwargs):  # type: ignore[no-untyped-def]
        return run_study(
            study,
            InProcessTransport(site_dirs),
            out,
            engine="in-process",
            overwrite=overwrite,
            progress=progress,
        )

    monkeypatch.setattr(genofed.simulation, "run_simulated_study", run)


def _run(cohort, tmp_path: Path, *extra: str, study: str = STUDY):  # type: ignore[no-untyped-def]
    study_file = tmp_path / "study.toml"
    study_file.write_text(study)
    argv = ["study", "run", str(study_file), "--simulation", "--out", str(tmp_path / "r")]
    for site in cohort.sites:
        argv += ["--site", str(site)]
    return runner.invoke(cli.app, [*argv, *extra])


def test_json__one_documented_event_per_stdout_line_and_nothing_else(
    cohort, tmp_path: Path, in_process: None
) -> None:
    result = _run(cohort, tmp_path, "--json")
    assert result.exit_code == cli.EXIT_OK, result.stderr
    docs = [json.loads(line) for line in result.stdout.splitlines()]  # every line is JSON
    names = [d["event"] for d in docs]
    assert set(names) <= {*EVENT_NAMES, RESULT_EVENT}
    assert names[0] == "study_started" and names[-2:] == ["study_done", RESULT_EVENT]
    for name in ("analysis_started", "round_started", "site_answered", "round_done"):
        assert name in names
    assert all({"event", "time", "elapsed", "study", "run_id"} <= set(d) for d in docs)
    assert Path(docs[-1]["out"]).resolve() == (tmp_path / "r").resolve()
    assert docs[-1]["summary"]["freq"]["variants"] == 30
    # the documented names are the events the coordinator has, and result
    documented = set(re.findall(r"^\* ``(\w+)`` — ", cli.__doc__ or "", flags=re.M))
    assert documented == {*EVENT_NAMES, RESULT_EVENT}


def test_quiet__only_the_summary(cohort, tmp_path: Path, in_process: None) -> None:
    result = _run(cohort, tmp_path, "--quiet")
    assert result.exit_code == cli.EXIT_OK, result.stderr
    assert "round" not in result.stderr and "harmonization" not in result.stderr
    assert "results:" in result.stdout
    assert result.stderr.strip().splitlines() == [f"run log: {tmp_path / 'r.log'}"]


def test_plain_lines__at_analysis_and_round_boundaries_never_per_site(
    cohort, tmp_path: Path, in_process: None
) -> None:
    result = _run(cohort, tmp_path)  # CliRunner's streams are not terminals
    assert result.exit_code == cli.EXIT_OK, result.stderr
    err = result.stderr
    assert "variant harmonization on 3 sites" in err
    assert "glm (glm) on 3 sites" in err
    assert re.search(r"  glm done in [\d.]+ s, \d\d rounds: 4 files", err)  # glm: IRLS rounds
    assert "glm: round" not in err  # quick rounds where every site answered: no line each
    assert "study done in" in err
    assert not re.search(r"site-[abc]: \w+ ok", err)  # the old per-site lines
    assert "site-a" not in err  # no site is named unless it fails
    # each per-site answer went to the run log instead
    log = (tmp_path / "r.log").read_text()
    assert "DEBUG genofed.coordinator: site-a: glm_logistic ok" in log


def test_plain_lines__a_failed_or_dropped_site_and_a_slow_round_are_said() -> None:
    console = Console(record=True, width=200)
    lines = PlainLines(console)
    common = {"study": "s", "run_id": "r", "analyses": ["glm"], "round": 3, "study_round": 5}
    lines(
        Event(
            "site_failed",
            "t",
            1.0,
            {
                **common,
                "request": "glm_logistic",
                "site": "site-c",
                "status": "no_reply",
                "reason_code": "NO_REPLY",
                "message": "no reply within 5 s",
            },
        )
    )
    lines(
        Event(
            "site_dropped",
            "t",
            1.0,
            {**common, "site": "site-c", "reason_code": "NO_REPLY", "remaining": 2, "min_sites": 2},
        )
    )
    round_done = {"request": "glm_logistic", "asked": 3, "answered": 2, "seconds": 5.0}
    lines(Event("round_done", "t", 6.0, {**common, **round_done}))
    lines(Event("round_done", "t", 9.0, {**common, **round_done, "answered": 3, "seconds": 9.5}))
    lines(Event("round_done", "t", 9.1, {**common, **round_done, "answered": 3, "seconds": 0.1}))
    text = console.export_text()
    assert "glm: site-c no reply (NO_REPLY) at round 3: no reply within 5 s" in text
    assert "glm: round 3 (glm_logistic): 2/3 sites answered, 5.0 s" in text  # a site missing
    assert "glm: round 3 (glm_logistic): 3/3 sites answered, 9.5 s" in text  # a slow round
    assert "0.1 s" not in text  # a quick, complete round
    assert "site-c dropped out at round 5 (NO_REPLY); continuing with 2 sites" in text


def test_live_board__one_line_per_analysis_with_round_sites_and_drops(
    cohort, tmp_path: Path
) -> None:
    board = Board()
    events: list[Event] = []

    def both(event: Event) -> None:
        events.append(event)
        board(event)

    study_file = tmp_path / "study.toml"
    study_file.write_text(STUDY)
    run_study(
        cli.load_study(study_file),
        InProcessTransport(cohort.sites),
        tmp_path / "r",
        engine="in-process",
        progress=both,
    )
    console = Console(record=True, width=120)
    console.print(board)
    text = console.export_text()
    assert "study progress done" in text
    lines = text.splitlines()
    glm = next(line for line in lines if "glm (glm)" in line)
    rounds = sum(e.name == "round_started" and e.get("analyses") == ["glm"] for e in events)
    assert f"round {rounds}" in glm and "sites 3/3" in glm and "✓" in glm
    assert any("variant harmonization" in line and "sites 3/3" in line for line in lines)
    # a site that drops out is shown on its analysis's line
    board(
        Event(
            "site_dropped",
            "t",
            1.0,
            {"analyses": ["glm"], "site": "site-c", "reason_code": "NO_REPLY", "remaining": 2},
        )
    )
    console = Console(record=True, width=120)
    console.print(board)
    glm = next(line for line in console.export_text().splitlines() if "glm (glm)" in line)
    assert "site-c dropped out (NO_REPLY)" in glm


def test_choose_mode__live_only_on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (tmp_path / "err.txt").open("w") as fh:
        assert choose_mode(as_json=False, quiet=False, console=Console(file=fh)) == PLAIN
    tty = Console(force_terminal=True)
    assert choose_mode(as_json=True, quiet=False, console=tty) == "json"
    assert choose_mode(as_json=False, quiet=True, console=tty) == "quiet"
    # a terminal for standard error, but standard output (captured here) is not one
    assert choose_mode(as_json=False, quiet=False, console=tty) == PLAIN
    monkeypatch.setattr(sys, "stdout", _Terminal())
    assert choose_mode(as_json=False, quiet=False, console=tty) == LIVE


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_min_sites_above_the_sites_given__exit_5_naming_the_file_key_and_fix(
    cohort, tmp_path: Path
) -> None:
    study = STUDY.replace('name = "progress"', 'name = "progress"\nmin_sites = 5')
    result = _run(cohort, tmp_path, study=study)  # the real simulation: refused before Ray
    assert result.exit_code == cli.EXIT_TOO_FEW_SITES, result.stderr
    err = " ".join(result.stderr.split())
    assert f"{tmp_path / 'study.toml'}: [study] min_sites = 5, but only 3 sites take part" in err
    assert "fix: lower [study] min_sites to at most 3" in err
