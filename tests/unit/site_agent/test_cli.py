"""``genofed-site``: init and check, exit codes, and messages a person can act on."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import bed_reader
import numpy as np
import pytest
from typer.testing import CliRunner

from genofed.site_agent.cli import main as cli
from genofed.site_agent.cli.main import EXIT_INPUT, EXIT_OK, EXIT_UNEXPECTED, app
from genofed.site_agent.privacy.policy import DEMO_ANALYSES, POLICY_FILE
from genofed.site_agent.sitedir import SITE_CONFIG

runner = CliRunner()


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A site directory holding a 10-sample, 6-variant fileset and a phenotype table."""
    directory = tmp_path / "site"
    directory.mkdir()
    genotypes = np.random.default_rng(3).integers(0, 3, size=(10, 6)).astype(np.float32)
    genotypes[1, 2] = np.nan
    iids = [f"s{i}" for i in range(10)]
    bed_reader.to_bed(directory / "cohort.bed", genotypes, properties={"iid": iids})
    (directory / "pheno.tsv").write_text(
        "#IID\ty\tbmi\n" + "".join(f"s{i}\t{1 + i % 2}\t2{i}.5\n" for i in range(8))
    )
    return directory


def _init(directory: Path, *extra: str):
    return runner.invoke(
        app,
        [
            "init",
            "--name",
            "hospital-a",
            "--genotypes",
            str(directory / "cohort.bed"),
            "--phenotypes",
            str(directory / "pheno.tsv"),
            "--out",
            str(directory),
            *extra,
        ],
    )


def test_init__prints_counts_and_writes_refuse_all_policy(data: Path) -> None:
    result = _init(data)
    assert result.exit_code == EXIT_OK, result.output
    out = result.stdout
    assert re.search(r"samples\s+│\s+10\b", out)
    assert re.search(r"variants\s+│\s+6\b", out)
    assert re.search(r"matched samples\s+│\s+8\b", out)
    assert "y, bmi" in out
    assert "refuses every study" in out
    assert "DEMO" not in out
    assert (data / SITE_CONFIG).is_file() and (data / POLICY_FILE).is_file()


def test_init__demo_policy_is_announced_loudly(data: Path) -> None:
    result = _init(data, "--demo-policy")
    assert result.exit_code == EXIT_OK, result.output
    assert "DEMO POLICY: FOR SYNTHETIC DATA ONLY." in result.stdout
    assert "demo = true" in (data / POLICY_FILE).read_text()
    assert "max_membership_power not set" in " ".join(result.stdout.split())


def test_init__json_summary(data: Path) -> None:
    result = _init(data, "--json")
    assert result.exit_code == EXIT_OK, result.output
    summary = json.loads(result.stdout)
    assert summary["n_samples"] == 10 and summary["n_matched"] == 8
    assert summary["phenotype_columns"] == ["y", "bmi"]
    assert summary["policy"]["allowed_analyses"] == []
    # the membership check is on in the written policy (docs/decisions/0007)
    assert summary["policy"]["max_membership_power"] == 0.1
    assert summary["policy"]["membership_fpr"] == 0.05


def test_init__non_numeric_phenotype_exits_2_names_file_line_and_writes_nothing(
    data: Path,
) -> None:
    pheno = data / "pheno.tsv"
    pheno.write_text(pheno.read_text().replace("s3\t2\t23.5", "s3\t2\tabc"))
    result = _init(data)
    assert result.exit_code == EXIT_INPUT
    assert f"{pheno}:5: column 'bmi' (column 3) has 'abc'" in result.stderr
    assert result.stdout == ""
    assert not (data / SITE_CONFIG).exists() and not (data / POLICY_FILE).exists()


def test_init__existing_site_exits_2_and_keeps_files(data: Path) -> None:
    assert _init(data).exit_code == EXIT_OK
    before = (data / SITE_CONFIG).read_text()
    result = _init(data)
    assert result.exit_code == EXIT_INPUT
    assert f"{data / SITE_CONFIG}: already exists" in result.stderr
    assert (data / SITE_CONFIG).read_text() == before


def test_init__unexpected_error_exits_1(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(cli, "init_site", boom)
    monkeypatch.setattr(tempfile, "tempdir", str(data.parent))  # where the trace goes
    result = _init(data)
    assert result.exit_code == EXIT_UNEXPECTED
    assert "unexpected error" in result.stderr and "RuntimeError('bug')" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(list(data.parent.glob("genofed-site-error-*.log"))) == 1


def test_check__prints_summary_of_existing_site(data: Path) -> None:
    assert _init(data, "--demo-policy").exit_code == EXIT_OK
    result = runner.invoke(app, ["check", str(data)])
    assert result.exit_code == EXIT_OK, result.output
    assert re.search(r"matched samples\s+│\s+8\b", result.stdout)
    flat = re.sub(r"[\s│]+", " ", result.stdout)  # the table wraps long cells
    assert ", ".join(sorted(DEMO_ANALYSES)) in flat
    assert "DEMO POLICY" in result.stdout


def test_check__unknown_key_in_site_toml_exits_2_naming_key_and_file(data: Path) -> None:
    assert _init(data).exit_code == EXIT_OK
    site = data / SITE_CONFIG
    site.write_text(site.read_text() + "\n[extra]\nx = 1\n")
    result = runner.invoke(app, ["check", str(data)])
    assert result.exit_code == EXIT_INPUT
    assert f"{site}: unknown key 'extra'" in result.stderr


def test_check__unknown_key_in_policy_toml_exits_2_naming_key_and_file(data: Path) -> None:
    assert _init(data).exit_code == EXIT_OK
    policy = data / POLICY_FILE
    policy.write_text(policy.read_text().replace("demo = false", "demo = false\ncolour = 1"))
    result = runner.invoke(app, ["check", str(data)])
    assert result.exit_code == EXIT_INPUT
    assert f"{policy}: unknown key 'colour' in [policy]" in result.stderr


def test_help__shows_an_example() -> None:
    result = runner.invoke(app, ["init", "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == EXIT_OK
    assert "genofed-site init --name hospital-a" in result.stdout


def test_exit_codes__each_is_documented_in_module_docstring() -> None:
    doc = cli.__doc__ or ""
    for name in ("EXIT_OK", "EXIT_UNEXPECTED", "EXIT_INPUT"):
        code = getattr(cli, name)
        assert f"``{code}`` ({name})" in doc


def test_init__a_vcf_prints_its_multi_allelic_records_and_their_split(tmp_path: Path) -> None:
    from tests.unit.site_agent.test_vcf_reader import MULTI_ROWS, MULTI_SAMPLES, write

    vcf = write(tmp_path / "calls.vcf", MULTI_ROWS, samples=MULTI_SAMPLES)
    args = ["init", "--name", "h", "--genotypes", str(vcf), "--out", str(tmp_path / "site")]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == EXIT_OK, result.output
    assert re.search(r"variants\s+│\s+9\b", result.stdout)
    assert re.search(
        r"multi-allelic records\s+│\s+3 split into 7 biallelic variants, one per ALT, as "
        r"bcftools norm -m- \(at most 3 ALTs in one record\)",
        result.stdout,
    )
    result = runner.invoke(app, [*args[:-1], str(tmp_path / "site2"), "--json"])
    assert result.exit_code == EXIT_OK, result.output
    summary = json.loads(result.stdout)
    assert (summary["n_variants"], summary["n_multiallelic"]) == (9, 3)
    assert (summary["n_split_variants"], summary["max_alts"]) == (7, 3)
