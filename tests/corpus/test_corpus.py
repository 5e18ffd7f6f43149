"""Every malformed input of the corpus, through the real command line (issue 21).

For each case of :mod:`tests.corpus.cases`: the command exits with its
documented code (never 1, the code of a bug), prints no traceback, names the
file (and the line or key) with what is wrong and a ``fix:``, and writes
nothing: no new or changed file beside the inputs (but a study run's run log),
no partial site or results directory. ``genofed study run --simulation`` runs
on the in-process engine (the coordinator and site code of the simulation,
without Ray), so the whole corpus takes seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from genofed.cli import analyst
from genofed.common.signing import (
    generate_private_key,
    sign_study,
    signed_study_json,
    write_keypair,
)
from genofed.common.study import load_study
from genofed.coordinator.runner import StudyOutcome, run_study
from genofed.site_agent.cli.main import app as site_app
from tests.corpus.cases import CASES, CLASSES, STUDY, Base, Case, Run, table
from tests.harness import InProcessTransport

runner = CliRunner()


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    """Two synthetic sites (120 variants), a signed study, keys and an audit export."""
    from genofed.synth import write_cohorts

    root = tmp_path_factory.mktemp("corpus-base")
    cohorts = write_cohorts(root / "cohorts", sites=2, samples=60, variants=120, seed=21)
    key, other = root / "alice", root / "mallory"
    write_keypair(key, private := generate_private_key())
    write_keypair(other, generate_private_key())
    study_path = root / "study.toml"
    study_path.write_text(STUDY)
    study = load_study(study_path)
    signed = root / "study.signed.json"
    signed.write_text(signed_study_json(study, sign_study(study, private)))
    # a study that ran, so that the exported log has request and release entries
    run_study(study, InProcessTransport(cohorts.sites), root / "results", engine="in-process")
    result = runner.invoke(
        site_app, ["audit", "export", str(cohorts.sites[0]), "--out", str(root / "export")]
    )
    assert result.exit_code == 0, result.output
    return Base(
        sites=tuple(cohorts.sites),
        scoring_file=cohorts.scoring_file,
        signed_study=signed,
        key=key,
        other_key_pub=other.with_name(other.name + ".pub"),
        export=root / "export",
    )


def in_process_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """``genofed.simulation`` as it is, but its Flower run replaced by the in-process one.

    ``run_simulated_study`` makes all its own checks, then hands the ServerApp
    and ClientApp to Flower's ``run_simulation``; here the job they carry runs
    through ``run_study`` over :class:`~tests.harness.InProcessTransport` instead
    (the same coordinator and site code, without Ray).
    """
    import genofed.simulation as simulation

    def server_app(job: Any, outcomes: list[StudyOutcome]) -> tuple[Any, list[StudyOutcome]]:
        return job, outcomes

    def run_simulation(*, server_app: Any, client_app: Any, **_: Any) -> None:
        job, outcomes = server_app
        outcomes.append(
            run_study(
                job.study,
                InProcessTransport(client_app),
                job.out,
                engine="in-process",
                overwrite=job.overwrite,
                progress=job.progress,
                signature=job.signature,
                timeout=job.site_timeout,
                receipts=job.receipts,
                study_files=job.study_files,
            )
        )

    monkeypatch.setattr(simulation, "make_server_app", server_app)
    monkeypatch.setattr(simulation, "make_client_app", list)
    monkeypatch.setattr(simulation, "run_simulation", run_simulation)


def _files(root: Path, skip: Sequence[Path]) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``root`` (but ``skip``) with its size and mtime."""
    found = {}
    for path in root.rglob("*"):
        if any(path == s or path.is_relative_to(s) for s in skip):
            continue
        stat = path.lstat()
        found[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns)
    return found


def run_case(run: Run, folder: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    """Run ``run`` through the real CLI; its exit code and its output (stdout and stderr)."""
    if run.engine:
        in_process_engine(monkeypatch)
    app = analyst.app if run.cli == "analyst" else site_app
    result = runner.invoke(app, list(run.args), env={"COLUMNS": "100"})
    # CliRunner catches what would reach the user as a traceback
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return result.exit_code, result.output


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_input__refused_with_file_fix_and_nothing_written(
    case: Case, base: Base, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if case.xfail:
        pytest.xfail(case.xfail)
    folder = tmp_path / "case"
    folder.mkdir()
    run = case.build(base, folder)
    before = _files(folder, run.changing)
    code, output = run_case(run, folder, monkeypatch)
    text = " ".join(output.split())
    assert code == run.code, output
    assert "Traceback" not in output
    assert "unexpected error" not in output, output
    for needle in run.needles:
        assert " ".join(needle.split()) in text, f"{needle!r} not in:\n{output}"
    assert "fix:" in text, output
    for path in run.absent:
        assert not path.exists(), f"{path} was written"
    after = _files(folder, run.changing)
    logs = {str(p.relative_to(folder)) for p in run.logs}
    assert {k: v for k, v in after.items() if k not in logs} == before, "files changed or left"
    leftovers = [p for p in folder.rglob("*") if ".partial-" in p.name or ".tmp-" in p.name]
    assert not leftovers


def test_corpus__at_least_100_cases_in_every_class() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(CASES) >= 100
    assert {c.klass for c in CASES} == set(CLASSES)
    assert table().splitlines()[-1].startswith(f"| **all** | **{len(CASES)}**")
