"""DESIGN.md's package rules, enforced by import-linter contracts in pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts__all_kept() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_import_contracts__cover_the_design_rules() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert 'modules = ["genofed.coordinator", "genofed.site_agent"]' in text
    for core in ("genofed.site_agent.stats", "genofed.coordinator.combine"):
        assert core in text
