"""The simulation engine leaves the caller's environment as it found it (Ray exports PYTHONPATH)."""

from __future__ import annotations

import os

import pytest

from genofed.simulation import _restore_environ


def test_restore_environ__removes_added_and_restores_changed_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GENOFED_TEST_KEEP", "1")
    monkeypatch.delenv("PYTHONPATH", raising=False)
    saved = dict(os.environ)
    os.environ["PYTHONPATH"] = "/somewhere/site-packages"
    os.environ["GENOFED_TEST_KEEP"] = "changed"
    _restore_environ(saved)
    assert "PYTHONPATH" not in os.environ
    assert os.environ["GENOFED_TEST_KEEP"] == "1"
    assert dict(os.environ) == saved
