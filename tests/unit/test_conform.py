"""``genofed study conform``: a study on a synthetic federation against plink2 on pooled data."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from genofed import cli
from genofed.coordinator import conform

STUDY = """\
[study]
name = "conform-test"

[[analysis]]
kind = "freq"

[[analysis]]
kind = "hardy"

[[analysis]]
kind = "glm"
id = "gwas_q"
phenotype = "QPHENO"
covariates = ["AGE", "SEX"]

[[analysis]]
kind = "pca"
n_pcs = 2
"""
SIZE = ["--samples", "300", "--variants", "100"]
runner = CliRunner()


@pytest.fixture()
def study_file(tmp_path: Path) -> Path:
    if shutil.which("plink2") is None:
        pytest.fail("plink2 not found on PATH; install it with: apt-get install -y plink2")
    path = tmp_path / "study.toml"
    path.write_text(STUDY, encoding="utf-8")
    return path


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "conform.tsv").open(encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def test_conform__freq_hardy_linear_glm_all_pass(study_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "conform"
    result = runner.invoke(cli.app, ["study", "conform", str(study_file), "--out", str(out), *SIZE])
    assert result.exit_code == 0, result.output
    rows = _rows(out)
    checked = [r for r in rows if r["analysis"] != "pca"]
    assert {r["analysis"] for r in checked} == {"freq", "hardy", "gwas_q"}
    assert all(r["status"] == conform.PASS for r in checked), [
        r for r in checked if r["status"] != conform.PASS
    ]
    by_col = {(r["analysis"], r["column"]): r for r in checked}
    assert by_col[("gwas_q", "BETA")]["tolerance"] == "rel 1.01e-05"
    assert by_col[("freq", "OBS_CT")]["tolerance"] == "exact"
    assert float(by_col[("gwas_q", "P")]["max_rel_diff"]) <= 1.01e-5
    (pca,) = [r for r in rows if r["analysis"] == "pca"]
    assert pca["status"] == conform.NOT_CHECKED


def test_conform__a_wrong_reference_value_fails(
    study_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = conform.run_plink2

    def tampering(plink2: Path) -> conform.Runner:
        run = real(plink2)

        def tampered(args: Sequence[str]) -> None:
            run(args)
            if "--freq" in args:  # one ALT_FREQS of the pooled table off by 1e-3
                table = Path(args[args.index("--out") + 1] + ".afreq")
                lines = table.read_text().splitlines()
                cells = lines[1].split("\t")
                j = lines[0].split("\t").index("ALT_FREQS")
                cells[j] = f"{float(cells[j]) + 1e-3:g}"
                table.write_text("\n".join([lines[0], "\t".join(cells), *lines[2:]]) + "\n")

        return tampered

    monkeypatch.setattr(conform, "run_plink2", tampering)
    out = tmp_path / "conform"
    result = runner.invoke(cli.app, ["study", "conform", str(study_file), "--out", str(out), *SIZE])
    assert result.exit_code == 1, result.output
    failed = [(r["analysis"], r["column"]) for r in _rows(out) if r["status"] == conform.FAIL]
    assert failed == [("freq", "ALT_FREQS")]


def test_conform__says_plink2_is_missing(
    study_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = runner.invoke(cli.app, ["study", "conform", str(study_file), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "plink2 is not on the PATH" in result.output
