"""The site directory: init validates everything first and writes nothing on failure."""

from __future__ import annotations

import tomllib
from pathlib import Path

import bed_reader
import numpy as np
import pytest

from genofed.common.errors import ConfigError, InputError
from genofed.site_agent.privacy.policy import POLICY_FILE, REFUSE_ALL, load_policy
from genofed.site_agent.sitedir import SITE_CONFIG, init_site, inspect_site, load_site

N_SAMPLES, N_VARIANTS = 14, 9


def write_inputs(directory: Path) -> tuple[Path, Path, Path]:
    """A small fileset plus phenotype and covariate tables; returns (bed, pheno, covar)."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    genotypes = rng.integers(0, 3, size=(N_SAMPLES, N_VARIANTS)).astype(np.float32)
    genotypes[0, 0] = np.nan
    bed = directory / "cohort.bed"
    iids = [f"s{i}" for i in range(N_SAMPLES)]
    bed_reader.to_bed(bed, genotypes, properties={"fid": ["f"] * N_SAMPLES, "iid": iids})
    pheno = directory / "pheno.tsv"
    pheno.write_text("#FID\tIID\ty\n" + "".join(f"f\ts{i}\t{i % 2 + 1}\n" for i in range(12)))
    covar = directory / "covar.tsv"
    covar.write_text("#IID age pc1\n" + "".join(f"s{i} {30 + i} 0.{i}\n" for i in range(2, 14)))
    return bed, pheno, covar


def _listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_init_site__writes_config_and_default_policy_and_counts(tmp_path: Path) -> None:
    bed, pheno, covar = write_inputs(tmp_path / "site")
    summary = init_site(
        tmp_path / "site", name="hospital-a", genotypes=bed, phenotypes=pheno, covariates=covar
    )
    assert (summary.n_samples, summary.n_variants) == (N_SAMPLES, N_VARIANTS)
    assert summary.n_with_phenotypes == 12 and summary.n_matched == 10  # s2..s11
    assert summary.phenotype_columns == ("y",)
    assert summary.covariate_columns == ("age", "pc1")
    doc = tomllib.loads((tmp_path / "site" / SITE_CONFIG).read_text())
    assert doc == {
        "site": {"name": "hospital-a"},
        "data": {"genotypes": "cohort.bed", "phenotypes": "pheno.tsv", "covariates": "covar.tsv"},
    }
    assert load_policy(tmp_path / "site" / POLICY_FILE) == REFUSE_ALL
    assert not [p for p in (tmp_path / "site").iterdir() if p.name.startswith(".")]


def test_init_site__stores_outside_paths_absolute_and_load_site_resolves_them(
    tmp_path: Path,
) -> None:
    bed, pheno, _ = write_inputs(tmp_path / "data")
    out = tmp_path / "new" / "site"
    summary = init_site(
        out, name="b", genotypes=tmp_path / "data" / "cohort", phenotypes=pheno, demo_policy=True
    )
    assert summary.n_matched == 12 and summary.covariate_columns == ()
    doc = tomllib.loads((out / SITE_CONFIG).read_text())
    assert doc["data"] == {"genotypes": str(bed), "phenotypes": str(pheno)}
    config = load_site(out)
    assert config.genotypes == bed and config.phenotypes == pheno and config.covariates is None
    assert inspect_site(config) == summary
    assert load_policy(out / POLICY_FILE).demo


def test_load_site__resolves_relative_paths_against_directory(tmp_path: Path) -> None:
    bed, _, _ = write_inputs(tmp_path / "site")
    init_site(tmp_path / "site", name="a", genotypes=bed)
    moved = tmp_path / "moved"
    (tmp_path / "site").rename(moved)
    config = load_site(moved)
    assert config.directory == moved and config.genotypes == moved / "cohort.bed"
    assert inspect_site(config).n_matched is None


@pytest.mark.parametrize("existing", [SITE_CONFIG, POLICY_FILE])
def test_init_site__refuses_existing_site_files_and_changes_nothing(
    tmp_path: Path, existing: str
) -> None:
    bed, _, _ = write_inputs(tmp_path / "site")
    (tmp_path / "site" / existing).write_text("# mine\n")
    before = _listing(tmp_path / "site")
    with pytest.raises(InputError, match="already exists") as info:
        init_site(tmp_path / "site", name="a", genotypes=bed)
    assert str(info.value).startswith(f"{tmp_path / 'site' / existing}: ")
    assert _listing(tmp_path / "site") == before
    assert (tmp_path / "site" / existing).read_text() == "# mine\n"


def test_init_site__truncated_bed_writes_nothing(tmp_path: Path) -> None:
    bed, pheno, _ = write_inputs(tmp_path / "data")
    bed.write_bytes(bed.read_bytes()[:-1])
    out = tmp_path / "site"
    with pytest.raises(InputError, match="size is") as info:
        init_site(out, name="a", genotypes=bed, phenotypes=pheno)
    assert str(bed) in str(info.value)
    assert not out.exists()


def test_init_site__non_numeric_phenotype_writes_nothing(tmp_path: Path) -> None:
    bed, pheno, covar = write_inputs(tmp_path / "site")
    covar.write_text(covar.read_text().replace("s5 35", "s5 thirty"))
    before = _listing(tmp_path / "site")
    with pytest.raises(InputError, match="'thirty'") as info:
        init_site(tmp_path / "site", name="a", genotypes=bed, phenotypes=pheno, covariates=covar)
    assert str(info.value).startswith(f"{covar}:5: ")
    assert "column 'age' (column 2)" in str(info.value)
    assert _listing(tmp_path / "site") == before


def test_init_site__no_matching_samples_writes_nothing(tmp_path: Path) -> None:
    bed, pheno, _ = write_inputs(tmp_path / "site")
    pheno.write_text("#FID IID y\n0 s1 1\n0 s2 2\n")
    with pytest.raises(InputError, match="no genotyped sample appears in"):
        init_site(tmp_path / "site", name="a", genotypes=bed, phenotypes=pheno)
    assert SITE_CONFIG not in _listing(tmp_path / "site")


@pytest.mark.parametrize("name", ["", "a b", "x" * 65, "../up", "ünï"])
def test_init_site__bad_name_is_refused_before_reading(tmp_path: Path, name: str) -> None:
    with pytest.raises(InputError, match="site name"):
        init_site(tmp_path / "site", name=name, genotypes=tmp_path / "nothing.bed")
    assert not (tmp_path / "site").exists()


def test_init_site__missing_genotypes_names_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found") as info:
        init_site(tmp_path / "site", name="a", genotypes=tmp_path / "nothing.bed")
    assert info.value.path == str(tmp_path / "nothing.bed")
    assert not (tmp_path / "site").exists()


def test_load_site__unknown_key_names_key_and_file(tmp_path: Path) -> None:
    bed, _, _ = write_inputs(tmp_path / "site")
    init_site(tmp_path / "site", name="a", genotypes=bed)
    path = tmp_path / "site" / SITE_CONFIG
    path.write_text(path.read_text().replace("[data]", '[data]\ngenotype = "x.bed"'))
    with pytest.raises(ConfigError, match="unknown key 'genotype' in \\[data\\]") as info:
        load_site(tmp_path / "site")
    assert str(info.value).startswith(f"{path}: ")


def test_load_site__missing_site_toml_says_run_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="genofed-site init") as info:
        load_site(tmp_path)
    assert info.value.path == str(tmp_path / SITE_CONFIG)


def test_load_site__bad_name_in_file_is_config_error(tmp_path: Path) -> None:
    path = tmp_path / SITE_CONFIG
    path.write_text('[site]\nname = "a b"\n[data]\ngenotypes = "x.bed"\n')
    with pytest.raises(ConfigError, match="site name 'a b'") as info:
        load_site(tmp_path)
    assert str(info.value).startswith(f"{path}: ")
