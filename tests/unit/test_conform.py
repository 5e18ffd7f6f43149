"""``genofed study conform``: a study on a synthetic federation against plink2 on pooled data."""

from __future__ import annotations

import csv
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from genofed import cli
from genofed.coordinator import conform
from genofed.site_agent.io.plink import read_bim, read_fam

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


SURVIVAL_STUDY = """\
[study]
name = "conform-survival"

[[analysis]]
kind = "km"
time = "RFS_DAYS"
event = "RFS_EVENT"
grid = [91, 182, 365, 548, 730, 1095, 1461, 1826]

[[analysis]]
kind = "km"
id = "km_sex"
time = "RFS_DAYS"
event = "RFS_EVENT"
group = "SEX"
levels = [1, 2]
grid = [91, 182, 365, 548, 730, 1095, 1461, 1826]

[[analysis]]
kind = "cox"
time = "RFS_DAYS"
event = "RFS_EVENT"
covariates = ["AGE", "SEX"]

[[analysis]]
kind = "cox"
id = "cox_breslow"
time = "RFS_DAYS"
event = "RFS_EVENT"
covariates = ["AGE", "SEX"]
ties = "breslow"
"""
SURVIVAL_SIZE = ["--samples", "300", "--variants", "20"]


@pytest.fixture()
def survival_file(study_file: Path, tmp_path: Path) -> Path:
    path = tmp_path / "survival.toml"
    path.write_text(SURVIVAL_STUDY, encoding="utf-8")
    return path


def test_conform__km_and_cox_equal_lifelines_on_the_pooled_cohort(
    survival_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "conform"
    args = ["study", "conform", str(survival_file), "--out", str(out), *SURVIVAL_SIZE]
    result = runner.invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    rows = _rows(out)
    checked = [r for r in rows if r["analysis"] != "cox_breslow"]
    assert all(r["status"] == conform.PASS for r in checked), [
        r for r in checked if r["status"] != conform.PASS
    ]
    by_col = {(r["analysis"], r["file"], r["column"]): r for r in checked}
    for name in ("SURV", "LOWER", "UPPER", "N_RISK", "N_EVENT"):
        assert ("km", "km.tsv", name) in by_col
        assert ("km_sex", "km_sex.km.tsv", name) in by_col
    assert by_col[("km", "km.tsv", "SURV")]["tolerance"] == "rel 1e-09"
    assert by_col[("km", "km.tsv", "N_RISK")]["tolerance"] == "exact"
    assert not any(r["file"].endswith("logrank.tsv") for r in rows if r["analysis"] == "km")
    assert by_col[("km_sex", "km_sex.logrank.tsv", "CHISQ")]["status"] == conform.PASS
    for name in ("COEF", "SE", "HR", "P", "Z"):
        row = by_col[("cox", "cox.tsv", name)]
        assert float(row["max_rel_diff"]) <= (1e-5 if name == "P" else 1e-6)
    assert by_col[("cox", "cox.tsv", "COEF")]["tolerance"] == "rel 1e-06"
    assert by_col[("cox", "cox.tsv", "TERM")]["rows"] == "2"
    (breslow,) = [r for r in rows if r["analysis"] == "cox_breslow"]
    assert breslow["status"] == conform.NOT_CHECKED
    assert "Efron" in breslow["note"]


def test_conform__a_wrong_km_estimate_fails(
    survival_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lifelines import KaplanMeierFitter

    real_fit = KaplanMeierFitter.fit

    def shifted(self: KaplanMeierFitter, *args: object, **kwargs: object) -> KaplanMeierFitter:
        fitted = real_fit(self, *args, **kwargs)
        self.survival_function_ = fitted.survival_function_ * (1 - 1e-6)
        return fitted

    monkeypatch.setattr(KaplanMeierFitter, "fit", shifted)
    out = tmp_path / "conform"
    args = ["study", "conform", str(survival_file), "--out", str(out), *SURVIVAL_SIZE]
    result = runner.invoke(cli.app, args)
    assert result.exit_code == 1, result.output
    failed = {(r["analysis"], r["column"]) for r in _rows(out) if r["status"] == conform.FAIL}
    assert failed == {("km", "SURV"), ("km_sex", "SURV")}


def test_conform__km_or_cox_without_lifelines_says_which_extra_to_install(
    survival_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "lifelines", None)
    out = tmp_path / "conform"
    result = runner.invoke(cli.app, ["study", "conform", str(survival_file), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "genofed[dev]" in result.output
    assert not out.exists()


def test_conform__a_glm_on_pca_covariates_is_listed_not_run(
    study_file: Path, tmp_path: Path
) -> None:
    """PCs come from the study's pca at each site: nothing central to compare them with."""
    study_file.write_text(
        STUDY
        + '\n[[analysis]]\nkind = "glm"\nid = "g_pcs"\nphenotype = "QPHENO"\n'
        + 'covariates = ["AGE", "PC1"]\n',
        encoding="utf-8",
    )
    out = tmp_path / "conform"
    result = runner.invoke(cli.app, ["study", "conform", str(study_file), "--out", str(out), *SIZE])
    assert result.exit_code == 0, result.output
    rows = _rows(out)
    (pcs,) = [r for r in rows if r["analysis"] == "g_pcs"]
    assert pcs["status"] == conform.NOT_CHECKED and "PC1" in pcs["note"]
    assert all(r["status"] != conform.FAIL for r in rows)


def test_conform_sites__named_sites_pooled_exactly_and_all_pass(
    study_file: Path, tmp_path: Path
) -> None:
    from genofed.synth import write_cohorts

    cohort = write_cohorts(tmp_path / "c", sites=3, samples=301, variants=90, seed=4)
    out = tmp_path / "conform"
    args = [a for s in cohort.sites for a in ("--site", str(s))]
    result = runner.invoke(cli.app, ["study", "conform", str(study_file), "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    # the pooled fileset conform made from the sites is the synth's own pooled one
    for name in ("pooled.bed", "pooled.bim", "pooled.fam"):
        assert (out / "pooled" / name).read_bytes() == (cohort.pooled / name).read_bytes(), name
    rows = _rows(out)
    checked = [r for r in rows if r["analysis"] != "pca"]
    assert {r["analysis"] for r in checked} == {"freq", "hardy", "gwas_q"}
    assert all(r["status"] == conform.PASS for r in checked)
    assert not (out / "cohorts").exists()


def test_conform_sites__pgen_sites_pooled_to_the_same_bed_and_all_pass(
    study_file: Path, tmp_path: Path
) -> None:
    from genofed.synth import write_cohorts

    args = {"sites": 3, "samples": 301, "variants": 90, "seed": 4}
    as_bed = write_cohorts(tmp_path / "bed", **args)  # type: ignore[arg-type]
    cohort = write_cohorts(tmp_path / "c", genotype_format="pgen", **args)  # type: ignore[arg-type]
    out = tmp_path / "conform"
    sites = [a for s in cohort.sites for a in ("--site", str(s))]
    result = runner.invoke(
        cli.app, ["study", "conform", str(study_file), "--out", str(out), *sites]
    )
    assert result.exit_code == 0, result.output
    # decoded from the sites' .pgen files and written as .bed codes: the bed cohort's pooled
    # genotypes byte for byte, its variants and samples field for field (the text spacing differs)
    assert (out / "pooled" / "pooled.bed").read_bytes() == (
        as_bed.pooled / "pooled.bed"
    ).read_bytes()
    fams = [read_fam(p / "pooled.fam") for p in (out / "pooled", as_bed.pooled)]
    for field in ("fid", "iid", "sex"):
        assert getattr(fams[0], field).tolist() == getattr(fams[1], field).tolist(), field
    ours, theirs = (read_bim(p / "pooled.bim") for p in (out / "pooled", as_bed.pooled))
    for field in ("chrom", "pos", "id", "ref", "alt"):
        assert getattr(ours, field).tolist() == getattr(theirs, field).tolist(), field
    checked = [r for r in _rows(out) if r["analysis"] != "pca"]
    assert {r["analysis"] for r in checked} == {"freq", "hardy", "gwas_q"}
    assert all(r["status"] == conform.PASS for r in checked)


def test_conform_sites__different_variants_or_a_shared_individual_are_refused(
    study_file: Path, tmp_path: Path
) -> None:
    from genofed.synth import write_cohorts

    cohort = write_cohorts(tmp_path / "c", sites=2, samples=120, variants=30, seed=5)
    a, b = cohort.sites
    bim = b / "data" / "genotypes.bim"
    lines = bim.read_text().splitlines()
    cells = lines[6].split("\t")
    cells[4], cells[5] = cells[5], cells[4]  # alleles swapped at line 7
    bim.write_text("\n".join([*lines[:6], "\t".join(cells), *lines[7:]]) + "\n")
    site_args = ["--site", str(a), "--site", str(b)]
    result = runner.invoke(
        cli.app, ["study", "conform", str(study_file), "--out", str(tmp_path / "o1"), *site_args]
    )
    assert result.exit_code == 2, result.output
    text = result.output.replace("\n", "")  # the console wraps long lines
    assert "site-b/data/genotypes.bim" in text and "line 7" in text
    assert "Traceback" not in text

    twice = ["--site", str(a), "--site", str(a)]
    result = runner.invoke(
        cli.app, ["study", "conform", str(study_file), "--out", str(tmp_path / "o2"), *twice]
    )
    assert result.exit_code == 2, result.output
    assert "is at sites" in result.output.replace("\n", " ")
