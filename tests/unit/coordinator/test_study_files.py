"""Files a study names are read only inside the folders allowed for them.

A hostile analyst's ``scoring_file = "../../../../etc/passwd"`` (or an
absolute path, or a symbolic link out of the folder) must be refused with
the reason before any site is asked anything; a file beside the study, or
in the deployment's ``[studies] file_dirs``, is read.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from genofed.common.errors import ConfigError, InputError
from genofed.common.study import load_study
from genofed.coordinator.deploy.superlink import load_coordinator_config
from genofed.coordinator.runner import run_study
from genofed.coordinator.study_files import ANYWHERE, StudyFiles
from genofed.synth import SynthSummary, write_cohorts
from tests.harness import InProcessTransport


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    return write_cohorts(tmp_path_factory.mktemp("files") / "c", sites=3, samples=90, variants=40)


def _study_file(folder: Path, scoring: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "study.toml"
    path.write_text(
        '[study]\nname = "s"\n\n[[analysis]]\nkind = "prs"\nid = "score"\n'
        f'phenotype = "DISEASE"\nscoring_file = "{scoring}"\n',
        encoding="utf-8",
    )
    return path


def test_beside__relative_name_inside_the_study_folder_is_read(tmp_path: Path) -> None:
    (tmp_path / "pgs").mkdir()
    (tmp_path / "pgs" / "x.txt").write_text("x")
    files = StudyFiles.beside(tmp_path / "study.toml")
    got = files.resolve("pgs/x.txt", key="scoring_file", analysis="score")
    assert got == (tmp_path / "pgs" / "x.txt").resolve()
    assert files.resolve(str(tmp_path / "pgs" / "x.txt"), key="k", analysis="a") == got


@pytest.mark.parametrize("name", ["../../../../etc/passwd", "/etc/passwd", "pgs/../../outside.txt"])
def test_beside__names_leaving_the_study_folder_are_refused(tmp_path: Path, name: str) -> None:
    files = StudyFiles.beside(tmp_path / "study" / "study.toml")
    with pytest.raises(InputError, match="lies outside the folders") as err:
        files.resolve(name, key="scoring_file", analysis="score")
    text = str(err.value)
    assert "scoring_file" in text and "'score'" in text and "fix:" in text
    assert str((tmp_path / "study").resolve()) in text


def test_beside__a_symbolic_link_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("x")
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "link.txt").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(InputError, match=r"resolves to .*secret\.txt"):
        StudyFiles.beside(tmp_path / "study" / "study.toml").resolve(
            "link.txt", key="scoring_file", analysis="score"
        )


def test_configured__no_folders_reads_nothing_and_listed_folders_are_read(tmp_path: Path) -> None:
    config = tmp_path / "coordinator.toml"
    with pytest.raises(InputError, match="reads no files a study names") as err:
        StudyFiles.configured((), config).resolve("x.txt", key="scoring_file", analysis="a")
    assert "[studies] file_dirs" in str(err.value)
    (tmp_path / "scoring").mkdir()
    files = StudyFiles.configured([tmp_path / "other", tmp_path / "scoring"], config)
    assert (
        files.resolve(str(tmp_path / "scoring" / "f.txt"), key="k", analysis="a").parent
        == (tmp_path / "scoring").resolve()
    )
    # relative names are relative to the first folder
    assert files.resolve("f.txt", key="k", analysis="a") == (tmp_path / "other" / "f.txt")
    assert ANYWHERE.resolve("../x", key="k", analysis="a") == Path("../x")


def test_coordinator_config__studies_file_dirs(tmp_path: Path) -> None:
    path = tmp_path / "coordinator.toml"
    path.write_text('[studies]\nfile_dirs = ["scoring", "/srv/pgs"]\n')
    config = load_coordinator_config(path)
    assert config.study_file_dirs == (tmp_path.resolve() / "scoring", Path("/srv/pgs"))
    (tmp_path / "empty.toml").write_text("")
    assert load_coordinator_config(tmp_path / "empty.toml").study_file_dirs == ()
    path.write_text("[studies]\nfile_dirs = [1]\n")
    with pytest.raises(ConfigError, match="file_dirs must be a list of folder names"):
        load_coordinator_config(path)
    path.write_text("[studies]\nfolders = []\n")
    with pytest.raises(ConfigError, match="folders"):
        load_coordinator_config(path)


def test_run_study__a_scoring_file_outside_is_refused_before_any_site_is_asked(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    study_file = _study_file(tmp_path / "study", "../../../../../../../etc/passwd")
    transport = InProcessTransport(cohort.sites)
    with pytest.raises(InputError, match="lies outside the folders"):
        run_study(
            load_study(study_file),
            transport,
            tmp_path / "r",
            engine="in-process",
            study_files=StudyFiles.beside(study_file),
        )
    assert transport.sent == []
    assert not (tmp_path / "r").exists()


def test_run_study__a_scoring_file_beside_the_study_is_read(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    folder = tmp_path / "study"
    (folder / "pgs").mkdir(parents=True)
    (folder / "pgs" / "score.txt").write_bytes(cohort.scoring_file.read_bytes())
    study_file = _study_file(folder, "pgs/score.txt")
    outcome = run_study(
        load_study(study_file),
        InProcessTransport(cohort.sites),
        tmp_path / "r",
        engine="in-process",
        study_files=StudyFiles.beside(study_file),
    )
    assert "prs.score.summary.json" in outcome.outputs
