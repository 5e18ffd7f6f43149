"""The GenoFed app bundle: the bytes Flower builds, so the hash a site allows is the one it sees."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest
from flwr.cli.build import build_fab_from_disk

from genofed.common.appbundle import bundle_bytes, bundle_hash, bundle_pyproject


# flwr's builder uses pathspec's deprecated pattern class; not ours to fix.
@pytest.mark.filterwarnings("ignore:GitWildMatchPattern:DeprecationWarning")
def test_bundle_bytes__equal_flowers_own_build_of_the_same_app(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(bundle_pyproject())
    assert build_fab_from_disk(tmp_path) == bundle_bytes()
    assert bundle_hash() == hashlib.sha256(build_fab_from_disk(tmp_path)).hexdigest()


def test_bundle__holds_no_code() -> None:
    names = zipfile.ZipFile(io.BytesIO(bundle_bytes())).namelist()
    assert sorted(names) == [".info/CONTENT", "pyproject.toml"]


def test_bundle_hash__changes_with_the_version() -> None:
    assert bundle_hash("0.1.0") != bundle_hash("0.1.1")
