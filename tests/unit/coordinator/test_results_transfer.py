"""Results carried back from the coordinator: pack, print as lines, reassemble, check, unpack."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import time
from pathlib import Path

import pytest

from genofed.common.errors import GenoFedError, InputError
from genofed.coordinator.deploy import results_transfer as rt


@pytest.fixture
def results(tmp_path: Path) -> Path:
    out = tmp_path / "coordinator" / "results" / "run1"
    out.mkdir(parents=True)
    (out / "freq.afreq").write_text("#CHROM\tID\n1\trs1\n")
    (out / "provenance.json").write_text('{"schema": "x"}\n')
    (out / "big.bin").write_bytes(os.urandom(200_000))  # incompressible: several lines
    return out


def _roundtrip_lines(results: Path) -> tuple[list[str], dict[str, object]]:
    archive = rt.pack(results)
    return list(rt.archive_lines(archive)), archive.manifest()


def test_archive__comes_back_byte_for_byte_through_the_printed_lines(
    results: Path, tmp_path: Path
) -> None:
    lines, manifest = _roundtrip_lines(results)
    assert int(str(manifest["chunks"])) == len(lines) > 1
    parts = rt.Reassembler()
    for line in ["INFO: something else", *(f"[stream] {x}" for x in reversed(lines))]:
        parts.feed(line)
    out = tmp_path / "analyst" / "results"
    names = rt.unpack(parts.archive(manifest), out, run_id="run1", overwrite=False)
    assert names == ["big.bin", "freq.afreq", "provenance.json"]
    for name in names:
        assert (out / name).read_bytes() == (results / name).read_bytes()
    assert not list(out.parent.glob(".results.partial-*"))


def test_pack__same_files_give_the_same_bytes_later_elsewhere_whatever_their_stat(
    results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = rt.pack(results)
    other = tmp_path / "elsewhere" / "run1"
    shutil.copytree(results, other)
    for i, path in enumerate(sorted(other.iterdir())):
        os.utime(path, (1_000_000 + i, 1_000_000 + i))
        path.chmod(0o600 if i % 2 else 0o755)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 86_400.5)  # packed a day later
    again = rt.pack(other)
    assert again.data == first.data
    assert first.data[4:8] == bytes(4)  # the gzip header's MTIME field
    with tarfile.open(fileobj=io.BytesIO(first.data), mode="r:gz") as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["big.bin", "freq.afreq", "provenance.json"]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in members} == {
        (0, 0, 0, "", "", 0o644)
    }


def test_reassembler__a_missing_part_is_an_error_and_nothing_is_written(
    results: Path, tmp_path: Path
) -> None:
    lines, manifest = _roundtrip_lines(results)
    parts = rt.Reassembler()
    for line in lines[:-1]:
        parts.feed(line)
    with pytest.raises(GenoFedError, match="incomplete"):
        parts.archive(manifest)


def test_reassembler__a_changed_part_fails_the_hash(results: Path) -> None:
    lines, manifest = _roundtrip_lines(results)
    parts = rt.Reassembler()
    for line in lines:
        parts.feed(line)
    first = parts.chunks[1]
    parts.chunks[1] = ("B" if first[10] != "B" else "C").join([first[:10], first[11:]])
    with pytest.raises(GenoFedError, match="SHA-256"):
        parts.archive(manifest)


def test_unpack__refuses_a_non_empty_out_without_overwrite(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(InputError, match="not empty"):
        rt.check_out(out, overwrite=False)
    rt.unpack(rt.pack(results), out, run_id="r2", overwrite=True)
    assert not (out / "mine.txt").exists() and (out / "freq.afreq").is_file()
