"""``[cohort]`` and ``[sample_qc]``: parsing without eval, canonical form, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from genofed.common.cohort import parse_condition
from genofed.common.errors import ConfigError
from genofed.common.study import study_from_canonical, study_from_mapping

P = Path("study.toml")


def _study(**tables: object):
    return study_from_mapping(
        {"study": {"name": "s"}, "analysis": [{"kind": "freq"}], **tables}, path=P
    )


@pytest.mark.parametrize(
    ("text", "column", "op", "values", "canonical"),
    [
        ("AGE >= 40", "AGE", ">=", (40.0,), "AGE >= 40"),
        ("AGE>=40.0", "AGE", ">=", (40.0,), "AGE >= 40"),
        ("  SEX == 2 ", "SEX", "==", (2.0,), "SEX == 2"),
        ("BMI < 30.5", "BMI", "<", (30.5,), "BMI < 30.5"),
        ("DIAG in [3, 1, 3]", "DIAG", "in", (1.0, 3.0), "DIAG in [1, 3]"),
        ("DIAG not  in [2]", "DIAG", "not in", (2.0,), "DIAG not in [2]"),
        ("X != -1e3", "X", "!=", (-1000.0,), "X != -1000"),
    ],
)
def test_condition__parsed_and_written_back_in_one_spelling(
    text: str, column: str, op: str, values: tuple[float, ...], canonical: str
) -> None:
    c = parse_condition(text, P)
    assert (c.column, c.op, c.values) == (column, op, values)
    assert c.text() == canonical


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("__import__('os').system('id')", "is not understood"),
        ("AGE >= __import__('os')", "is not a number"),
        ('DIAG == "T1D"', "a text value is not a number"),
        ("DIAG in T1D", "takes a list of numbers in brackets"),
        ("DIAG in []", "the list is empty"),
        ("AGE >= nan", "is not a number"),
        ("AGE => 40", "is not understood"),
        ("AGE 40", "is not understood"),
    ],
)
def test_condition__malformed_is_a_config_error_naming_it(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_condition(text, P)
    assert message in str(info.value) and str(P) in str(info.value)


def test_cohort_and_sample_qc__round_trip_through_the_canonical_form() -> None:
    study = _study(
        cohort={"where": ["AGE>=40", "DIAG in [2,1]"]}, sample_qc={"mind": 0.1, "het_sd": 3}
    )
    doc = study.to_json()
    assert doc["cohort"] == {"where": ["AGE >= 40", "DIAG in [1, 2]"]}
    assert doc["sample_qc"] == {"mind": 0.1, "het_sd": 3.0}
    again = study_from_canonical(study.canonical_json(), study.sha256)
    assert again == study
    assert study.cohort is not None and study.cohort.text() == "AGE >= 40 and DIAG in [1, 2]"
    # the same cohort spelled differently is the same study
    assert (
        _study(cohort={"where": ["AGE >= 40", "DIAG in [1, 2]"]}).sha256
        == _study(cohort={"where": ["AGE>=40.0", "DIAG in [2, 1]"]}).sha256
    )


def test_studies_without_the_tables__keep_their_canonical_form() -> None:
    doc = _study().to_json()
    assert "cohort" not in doc and "sample_qc" not in doc


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ({"cohort": {"where": []}}, "non-empty list of conditions"),
        ({"cohort": {"where": ["AGE >= 40", "AGE>=40"]}}, "the same condition twice"),
        ({"cohort": {"age": 1}}, "age"),
        ({"cohort": "AGE >= 40"}, "[cohort] must be a table"),
        ({"sample_qc": {}}, "names no rule"),
        ({"sample_qc": {"mind": 1.5}}, "sample_qc.mind must lie in [0, 1]"),
        ({"sample_qc": {"het_sd": 0.5}}, "sample_qc.het_sd must lie in [1, 100]"),
        ({"sample_qc": {"check_sex": True}}, "check_sex is not available"),
    ],
)
def test_bad_tables__are_config_errors(tables: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _study(**tables)
    assert message in str(info.value)


def test_require__round_trips_and_keeps_earlier_studies_hashes() -> None:
    both = _study(cohort={"where": ["AGE >= 40"], "require": ["QPHENO", "BMI"]})
    assert both.to_json()["cohort"] == {"where": ["AGE >= 40"], "require": ["QPHENO", "BMI"]}
    assert both.cohort is not None
    assert both.cohort.text() == "AGE >= 40 and QPHENO present and BMI present"
    assert study_from_canonical(both.canonical_json(), both.sha256) == both
    alone = _study(cohort={"require": ["QPHENO"]})
    assert alone.to_json()["cohort"] == {"require": ["QPHENO"]}
    assert study_from_canonical(alone.canonical_json(), alone.sha256) == alone
    assert alone.cohort is not None and alone.cohort.columns == ()  # no condition to allow
    # a cohort without require is written as before (the hash of an earlier study holds)
    assert _study(cohort={"where": ["AGE >= 40"]}).to_json()["cohort"] == {"where": ["AGE >= 40"]}


@pytest.mark.parametrize(
    ("cohort", "message"),
    [
        ({}, "names neither where nor require"),
        ({"require": []}, "non-empty list of column names"),
        ({"require": "QPHENO"}, "require"),
        ({"require": ["QPHENO", "QPHENO"]}, "lists a column twice"),
        ({"require": ["AGE >= 40"]}, "is not a column name"),
        ({"require": ["Q"], "keep": 1}, "keep"),
    ],
)
def test_require__malformed_is_a_config_error(cohort: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _study(cohort=cohort)
    assert message in str(info.value)
