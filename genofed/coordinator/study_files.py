"""Where the coordinator may read the files a study names (``scoring_file``).

A study is written by an analyst, whom the threat model does not trust
(``docs/decisions/0005-threat-model.md``), and the coordinator reads the
files it names on its own host. So a name resolves only inside the folders
allowed for it, after following ``..`` and symbolic links:

* ``genofed study run`` (in process or ``--simulation``): the study file's
  own folder and what lies below it; a relative name is relative to that
  folder (as ``coordinator.toml``'s paths are relative to it);
* a deployment ServerApp: the folders ``[studies] file_dirs`` of
  ``coordinator.toml`` lists (none by default: such a coordinator reads no
  study files); a relative name is relative to the first of them.

Anything else is refused, naming the analysis, the key, the folders allowed
and how to allow another, before any site computes anything. A program that
calls :func:`genofed.coordinator.runner.run_study` itself chooses, and by
default reads from anywhere (:data:`ANYWHERE`), relative to its working
directory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from genofed.common.errors import InputError

__all__ = ["ANYWHERE", "StudyFiles"]


@dataclass(frozen=True)
class StudyFiles:
    """The folders a study's files may lie in (``None``: anywhere)."""

    roots: tuple[Path, ...] | None
    #: where the folders come from, for messages
    origin: str = ""
    #: how to allow another folder, for messages
    hint: str = ""

    @classmethod
    def beside(cls, study_file: Path) -> StudyFiles:
        """The study file's folder (``genofed study run``)."""
        return cls(
            (Path(study_file).resolve().parent,),
            "the study file's folder",
            "put the file in the study file's folder (or below it) and name it relative to "
            "the study file",
        )

    @classmethod
    def configured(cls, dirs: Sequence[Path], config: Path) -> StudyFiles:
        """``[studies] file_dirs`` of ``coordinator.toml`` (a deployment ServerApp)."""
        return cls(
            tuple(Path(d).resolve() for d in dirs),
            f"[studies] file_dirs of {config}",
            f"ask the coordinator's operator to put the file in a folder of [studies] file_dirs "
            f"in {config}",
        )

    def resolve(self, name: str, *, key: str, analysis: str) -> Path:
        """The file ``name`` (value of ``key`` in analysis ``analysis``), if it may be read."""
        path = Path(name).expanduser()
        if self.roots is None:
            return path
        what = f"{key} = {name!r} of analysis {analysis!r}"
        if not self.roots:
            raise InputError(
                f"{what}: this coordinator reads no files a study names ({self.origin} is empty)",
                hint=self.hint,
            )
        real = (path if path.is_absolute() else self.roots[0] / path).resolve()
        if any(real.is_relative_to(root) for root in self.roots):
            return real
        folders = ", ".join(str(r) for r in self.roots)
        raise InputError(
            f"{what} lies outside the folders the coordinator reads study files from "
            f"({self.origin}: {folders}); it resolves to {real}",
            hint=self.hint,
        )


#: Read from anywhere, relative to the working directory (programs calling run_study).
ANYWHERE = StudyFiles(None)
