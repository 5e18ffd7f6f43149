"""Study files: validation, canonical form and hash."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from genofed.common.errors import ConfigError, IntegrityError
from genofed.common.study import load_study, study_from_canonical

STUDY = """
[study]
name = "qc"

[[analysis]]
kind = "freq"

[[analysis]]
kind = "hardy"
midp = true
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.toml"
    path.write_text(text)
    return path


def test_load_study__fills_defaults(tmp_path: Path) -> None:
    study = load_study(_write(tmp_path, STUDY))
    assert [a.id for a in study.analyses] == ["freq", "hardy"]
    assert study.analyses[1].params == {"midp": True, "samples_with": ()}
    assert study.on_variant_mismatch == "stop"
    assert study.min_sites is None


def test_study_hash__ignores_formatting_and_key_order(tmp_path: Path) -> None:
    reordered = STUDY.replace('[study]\nname = "qc"', '[study]\n\n  name   =   "qc"  # c')
    a = load_study(_write(tmp_path, STUDY))
    (tmp_path / "b").mkdir()
    b = load_study(_write(tmp_path / "b", reordered))
    assert a.sha256 == b.sha256
    assert a.canonical_json() == b.canonical_json()


def test_study_hash__changes_with_a_parameter(tmp_path: Path) -> None:
    a = load_study(_write(tmp_path, STUDY))
    (tmp_path / "b").mkdir()
    b = load_study(_write(tmp_path / "b", STUDY.replace("midp = true", "midp = false")))
    assert a.sha256 != b.sha256


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (STUDY.replace('name = "qc"', 'name = "qc"\ncolour = "red"'), "unknown key 'colour'"),
        (STUDY.replace("midp = true", "midp = 1"), "midp must be bool"),
        (STUDY.replace('kind = "freq"', 'kind = "frq"'), "unknown analysis kind 'frq'"),
        (STUDY.replace("midp = true", "midp = true\nalpha = 3"), "unknown key 'alpha'"),
        ('[study]\nname = "x"\n', "lists no analyses"),
        ("[study]\nname = \n", "not valid TOML"),
        (STUDY + '\n[[analysis]]\nkind = "freq"\n', "two analyses have the id 'freq'"),
        (
            STUDY.replace('name = "qc"', 'name = "qc"\non_variant_mismatch = "ignore"'),
            "on_variant_mismatch",
        ),
    ],
)
def test_load_study__bad_file_names_file_and_problem(
    tmp_path: Path, text: str, needle: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_study(path)
    assert needle in str(info.value)
    assert str(path) in str(info.value)


def test_study_from_canonical__round_trips(tmp_path: Path) -> None:
    study = load_study(_write(tmp_path, STUDY))
    assert study_from_canonical(study.canonical_json(), study.sha256) == study


@given(st.integers(min_value=0), st.integers(min_value=0, max_value=7))
def test_study_from_canonical__any_bit_flip_is_refused(position: int, bit: int) -> None:
    from genofed.common.study import AnalysisSpec, Study

    study = Study(name="qc", analyses=(AnalysisSpec("freq", "freq"),))
    data = bytearray(study.canonical_json())
    data[position % len(data)] ^= 1 << bit
    with pytest.raises(IntegrityError):
        study_from_canonical(bytes(data), study.sha256)
