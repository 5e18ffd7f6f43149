"""Results of a deployed study, carried back to the analyst's machine.

The ServerApp runs on the coordinator host and writes the study's results
there (``STATE_DIR/results/RUN_ID``: the consortium's copy). Open-source
Flower 1.39 has no artifact download (``flwr pull`` needs a URL the
open-source SuperLink does not give), but ``flwr run --stream`` relays the
ServerApp's output to the analyst: the ServerApp prints the results
directory as a gzipped tar in base64 lines (``genofed-results: I/N DATA``)
before its final ``genofed-result:`` line, which names the archive's size
and SHA-256. The analyst's side reassembles the lines, checks the hash and
unpacks into ``--out`` through a staging directory, so a transfer that
breaks off leaves nothing that looks complete.

Results are aggregates the analyst is entitled to; they pass through the
SuperLink's run log, which anyone who can reach the Control API can read
(as with the progress lines): keep that API on a trusted network.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import os
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from genofed.common.errors import GenoFedError, InputError

RESULTS_PREFIX = "genofed-results: "
#: Base64 characters per line.
CHUNK_CHARS = 64 * 1024
#: Larger archives stay on the coordinator host (the analyst is told where).
MAX_ARCHIVE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Archive:
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def manifest(self) -> dict[str, object]:
        return {"bytes": len(self.data), "sha256": self.sha256, "chunks": len(self.lines_b64())}

    def lines_b64(self) -> list[str]:
        text = base64.b64encode(self.data).decode("ascii")
        return [text[i : i + CHUNK_CHARS] for i in range(0, len(text), CHUNK_CHARS)] or [""]


def pack(results: Path) -> Archive:
    """The results directory as a gzipped tar of its regular files, byte for byte reproducible.

    The same files give the same bytes whenever and wherever they are packed:
    entries sorted by name, every header with mtime 0, uid and gid 0, no user
    or group name and mode 0644, and the gzip header with mtime 0 and no file
    name (``tarfile``'s own ``w:gz`` writes the current time there).
    """
    buf = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=6, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name, path in sorted(
            (p.relative_to(results).as_posix(), p) for p in results.rglob("*") if p.is_file()
        ):
            with path.open("rb") as fh:
                tar.addfile(_entry(name, os.fstat(fh.fileno()).st_size), fh)
    return Archive(buf.getvalue())


def _entry(name: str, size: int) -> tarfile.TarInfo:
    """A regular file's tar header that holds nothing of the machine or the time."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def archive_lines(archive: Archive) -> Iterator[str]:
    """The lines the ServerApp prints, in order."""
    chunks = archive.lines_b64()
    for i, chunk in enumerate(chunks, start=1):
        yield f"{RESULTS_PREFIX}{i}/{len(chunks)} {chunk}"


@dataclass
class Reassembler:
    """Collects ``genofed-results:`` lines on the analyst's side."""

    chunks: dict[int, str] = field(default_factory=dict)
    total: int = 0

    def feed(self, line: str) -> bool:
        """Take ``line`` if it is a results line; say whether it was."""
        if RESULTS_PREFIX not in line:
            return False
        head, _, chunk = line.split(RESULTS_PREFIX, 1)[1].partition(" ")
        index, _, total = head.partition("/")
        try:
            self.chunks[int(index)] = chunk.strip()
            self.total = int(total)
        except ValueError:
            raise GenoFedError(
                f"a results line from the coordinator is garbled: {head!r}"
            ) from None
        return True

    def archive(self, manifest: dict[str, object]) -> Archive:
        """The whole archive, checked against the manifest in the final result line."""
        want = int(str(manifest.get("chunks", 0)))
        missing = [i for i in range(1, want + 1) if i not in self.chunks]
        if missing or self.total != want:
            raise GenoFedError(
                f"the results came back incomplete ({len(self.chunks)} of {want} parts); "
                "they are kept on the coordinator host"
            )
        data = base64.b64decode("".join(self.chunks[i] for i in range(1, want + 1)))
        archive = Archive(data)
        if archive.sha256 != manifest.get("sha256") or len(data) != manifest.get("bytes"):
            raise GenoFedError(
                "the results that came back do not match the coordinator's SHA-256; "
                "they are kept on the coordinator host"
            )
        return archive


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse, before anything runs, an ``--out`` the results could not be written to."""
    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a directory", path=out, hint="choose another --out")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InputError(
            "the results directory is not empty",
            path=out,
            hint="choose another --out, or pass --overwrite to replace it",
        )


def unpack(archive: Archive, out: Path, *, run_id: str, overwrite: bool) -> list[str]:
    """Unpack into ``out`` (staged beside it, moved into place last); returns the file names."""
    check_out(out, overwrite)
    staging = out.parent / f".{out.name}.partial-{run_id}"
    staging.mkdir(parents=True)
    try:
        with tarfile.open(fileobj=io.BytesIO(archive.data), mode="r:gz") as tar:
            members = tar.getmembers()
            for m in members:
                if not m.isfile():
                    raise GenoFedError(f"the results archive holds a non-file entry {m.name!r}")
                if m.name.startswith("/") or ".." in Path(m.name).parts:
                    raise GenoFedError(f"the results archive holds an unsafe name {m.name!r}")
            if hasattr(tarfile, "data_filter"):
                tar.extractall(staging, filter="data")
            else:  # Python < 3.11.4 (Debian 12's 3.11.2) has no filters; names checked above
                tar.extractall(staging)
        if out.exists():
            old = out.parent / f".{out.name}.old-{run_id}"
            out.rename(old)
            staging.rename(out)
            shutil.rmtree(old)
        else:
            staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return sorted(m.name for m in members)


__all__ = [
    "MAX_ARCHIVE_BYTES",
    "RESULTS_PREFIX",
    "Archive",
    "Reassembler",
    "archive_lines",
    "check_out",
    "pack",
    "unpack",
]
