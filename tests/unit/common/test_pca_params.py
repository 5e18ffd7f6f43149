"""``[[analysis]] kind = "pca"``: parameters, and glm ``PC<k>`` covariates across analyses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from genofed.common.errors import ConfigError
from genofed.common.study import study_from_canonical, study_from_mapping
from genofed.common.wire.pca import pc_index, pc_source


def _study(*analyses: dict[str, Any]):  # type: ignore[no-untyped-def]
    return study_from_mapping(
        {"study": {"name": "s"}, "analysis": list(analyses)}, path=Path("study.toml")
    )


def test_pca__defaults_to_ten_components_on_all_variants_and_round_trips() -> None:
    study = _study({"kind": "pca"}, {"kind": "pca", "id": "p2", "indep_pairwise": [50, 5, 0.2]})
    params = study.analyses[0].params
    assert params["n_pcs"] == 10 and params["maf"] == 0.0
    assert params["indep_pairwise"] == () and params["variants"] == ()
    assert study.analyses[1].params["indep_pairwise"] == (50, 5, 0.2)
    assert study_from_canonical(study.canonical_json(), study.sha256) == study


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n_pcs": 0}, "n_pcs must lie in 1..100"),
        ({"maf": 0.5}, "maf must lie in"),
        ({"indep_pairwise": [50, 5]}, "indep_pairwise must be"),
        ({"indep_pairwise": [50, 60, 0.2]}, "indep_pairwise must be"),
        ({"indep_pairwise": ["50kb", 5, 0.2]}, "indep_pairwise must be"),
        ({"variants": ["1:1:A:G", "1:1:A:G"]}, "distinct variant IDs"),
    ],
)
def test_pca__bad_parameters_name_the_analysis_and_the_fix(
    params: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as exc:
        _study({"kind": "pca", **params})
    assert "[[analysis]] #1 (pca)" in str(exc.value)


def test_glm_pc_covariates__come_from_the_pca_listed_before_it() -> None:
    glm = {"kind": "glm", "phenotype": "Q", "covariates": ["AGE", "PC1", "PC3"]}
    study = _study({"kind": "pca", "n_pcs": 3}, glm)
    assert pc_source(study.analyses, "glm") is study.analyses[0]
    assert [pc_index(c) for c in ("PC1", "PC10", "PC0", "PCA", "AGE")] == [0, 9, None, None, None]
    # no pca before the glm: PC columns are read from the covariate table, as before
    later = _study(glm, {"kind": "pca"})
    assert pc_source(later.analyses, "glm") is None


def test_glm_pc_covariates__beyond_n_pcs_or_with_two_pcas_are_refused() -> None:
    glm = {"kind": "glm", "phenotype": "Q", "covariates": ["PC4"]}
    with pytest.raises(ConfigError, match="names PC4, but pca analysis 'pca' keeps 3"):
        _study({"kind": "pca", "n_pcs": 3}, glm)
    with pytest.raises(ConfigError, match="ambiguous"):
        _study({"kind": "pca"}, {"kind": "pca", "id": "other"}, glm)
