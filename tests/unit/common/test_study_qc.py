"""``[qc]`` in study.toml: parsed, canonical, and every mistake named with its fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from genofed.common.errors import ConfigError
from genofed.common.study import QCSpec, study_from_canonical, study_from_mapping

PATH = Path("study.toml")


def _study(qc: Any = None, analyses: Any = None, **extra: Any):
    raw: dict[str, Any] = {
        "study": {"name": "s"},
        "analysis": analyses or [{"kind": "freq"}],
        **extra,
    }
    if qc is not None:
        raw["qc"] = qc
    return study_from_mapping(raw, path=PATH)


def test_qc__parsed_and_round_trips_through_the_canonical_form() -> None:
    study = _study({"maf": 0.01, "mac": 5, "geno": 0, "hwe": 1e-6, "hwe_midp": True,
                    "exclude": ["rs1"]})  # fmt: skip
    assert study.qc == QCSpec(maf=0.01, mac=5, geno=0.0, hwe=1e-6, hwe_midp=True, exclude=("rs1",))
    again = study_from_canonical(study.canonical_json(), study.sha256)
    assert again.qc == study.qc
    assert again.sha256 == study.sha256


def test_study_without_qc__keeps_its_hash() -> None:
    study = _study()
    assert study.qc is None
    assert b'"qc"' not in study.canonical_json()
    assert study.sha256 != _study({"maf": 0.01}).sha256


@pytest.mark.parametrize(
    ("qc", "extra", "message"),
    [
        ({"maf": 0.01, "mf": 1}, {}, "unknown key 'mf' in [qc]"),
        ({"maf": 0.7}, {}, "qc.maf must lie in (0, 0.5]"),
        ({"geno": -0.1}, {}, "qc.geno must lie in [0, 1]"),
        ({"hwe": 1.0}, {}, "qc.hwe must lie in (0, 1)"),
        ({"hwe": 0.6, "hwe_midp": True}, {}, "below 0.5 with hwe_midp"),
        ({"maf": 0.01, "hwe_midp": True}, {}, "qc.hwe is not set"),
        ({"mac": 0}, {}, "qc.mac must be at least 1"),
        ({"mac": 2.5}, {}, "qc.mac must be int"),
        ({"extract": []}, {}, "qc.extract is empty"),
        ({"exclude": ["rs1", 3]}, {}, "qc.exclude must be a list of variant IDs"),
        ({"hwe_midp": False}, {}, "[qc] names no filter"),
        ({"hwe": 1e-6, "hwe_controls_only": True}, {}, "has no hwe_controls_only"),
        ({"maf": 0.01, "hwe_controls": "DISEASE"}, {}, "qc.hwe is not set"),
        ({"hwe": 1e-6, "hwe_controls": ""}, {}, "must name a case/control phenotype"),
        ({"hwe": 1e-6, "hwe_controls": 1}, {}, "qc.hwe_controls must be str"),
        ("maf", {}, "[qc] must be a table"),
        ({"maf": 0.01}, {"privacy": {"mode": "dp", "epsilon": 1.0}}, "[qc] is not available"),
    ],
)
def test_qc_mistakes__name_the_key_and_the_fix(qc: Any, extra: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _study(qc, **extra)
    assert message in str(info.value)
    assert info.value.hint


def test_hwe_controls__in_the_canonical_form_only_when_set() -> None:
    study = _study({"hwe": 1e-6, "hwe_controls": "DISEASE"})
    assert study.to_json()["qc"]["hwe_controls"] == "DISEASE"
    assert "hwe_controls" not in _study({"hwe": 1e-6}).to_json()["qc"]
    assert study.sha256 != _study({"hwe": 1e-6}).sha256


def test_qc_with_samples_with_counts__refused() -> None:
    with pytest.raises(ConfigError, match="every genotyped sample"):
        _study({"maf": 0.01}, [{"kind": "freq", "samples_with": ["QPHENO"]}])
