"""Fixtures for comparisons with PLINK 2 on the same data."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

PLINK2_INSTALL_HINT = "apt-get install -y plink2 libopenblas0-pthread"


@pytest.fixture(scope="session")
def plink2() -> Path:
    """Path of the ``plink2`` executable; the reference suite fails without it.

    Failing (not skipping) keeps a missing reference binary from turning the
    PLINK 2 comparisons into a silent pass.
    """
    found = shutil.which("plink2")
    if found is None:
        pytest.fail(f"plink2 not found on PATH; install it with: {PLINK2_INSTALL_HINT}")
    return Path(found)
