"""A study's cohort (``[cohort]``) and local sample QC (``[sample_qc]``).

``[cohort]`` restricts every analysis of the study to the samples whose
phenotype or covariate values meet every condition of its ``where`` list::

    [cohort]
    where = ["AGE >= 40", "SEX == 2", "DIAG in [1, 3]"]

``require`` (plink2's ``--require-pheno`` / ``--require-covar``) keeps only the
samples with a value (not missing) in each named column, so that every
analysis of the study runs on the same people::

    [cohort]
    require = ["QPHENO", "DISEASE", "AGE", "SEX"]

A study whose analyses use columns missing for different few people would
otherwise release sums over sets a few people apart, which a site's
disclosure guard refuses (ADR 0005). A cohort needs ``where``, ``require`` or
both.

One condition is ``COLUMN OP VALUE``: ``COLUMN`` a column of the site's
phenotype or covariate table (or ``SEX`` of the ``.fam`` when no table has a
``SEX`` column), ``OP`` one of ``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``
with a number, or ``in`` / ``not in`` with a list of numbers in brackets.
Phenotype and covariate tables hold numbers, so categories are numeric codes
(``DIAG in [1, 3]``). A sample whose value is missing never meets a
condition (not even ``!=``). The conditions are parsed by a regular
expression, never evaluated as code; the canonical form (what the study hash
covers) writes each condition back in one spelling (``AGE >= 40``).

``[sample_qc]`` drops samples at each site before any release::

    [sample_qc]
    mind = 0.1       # plink2 --mind 0.1: samples missing more than 10 % of calls
    het_sd = 3.0     # --het F more than 3 SD from the site's mean F

Sites count and report, per rule, how many samples each removed (small
counts withheld); see :mod:`genofed.site_agent.cohort`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genofed.common.errors import ConfigError
from genofed.common.tomlconfig import check_keys, get_typed

#: Comparison operators a condition may use with one number.
COMPARISONS = ("==", "!=", "<=", ">=", "<", ">")
#: Operators that take a list of numbers.
MEMBERSHIP = ("in", "not in")
OPERATORS = COMPARISONS + MEMBERSHIP
#: Most conditions one cohort may list.
MAX_CONDITIONS = 20
#: The ``.fam`` column a condition may name when no table has it.
FAM_SEX = "SEX"

_CONDITION = re.compile(
    r"^\s*(?P<column>[A-Za-z_][A-Za-z0-9_.]{0,63})\s*"
    r"(?P<op>==|!=|<=|>=|<|>|\bnot\s+in\b|\bin\b)\s*"
    r"(?P<value>.+?)\s*$"
)
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,63}$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_SYNTAX_HINT = (
    'write each condition as COLUMN OP VALUE, e.g. "AGE >= 40", "SEX == 2" or '
    '"DIAG in [1, 3]" (OP: ==, !=, <, <=, >, >=, in, not in; values are numbers)'
)
SAMPLE_QC_KEYS = ("mind", "het_sd")
#: Sample QC rules as sites report them, in the order they apply.
SAMPLE_QC_RULES = ("mind", "het")
#: Reply facts: the cohort's size at a site, and the samples each QC rule removed.
COHORT_SAMPLES_FACT = "cohort_samples"
SAMPLE_QC_FACT = "sample_qc_removed_{rule}"
#: A count a site withheld by its small-cell rule.
WITHHELD = "withheld"


@dataclass(frozen=True)
class Condition:
    """One parsed cohort condition."""

    column: str
    op: str
    values: tuple[float, ...]

    def text(self) -> str:
        """The canonical spelling (``AGE >= 40``, ``DIAG in [1, 3]``)."""
        if self.op in MEMBERSHIP:
            return f"{self.column} {self.op} [{', '.join(_number_text(v) for v in self.values)}]"
        return f"{self.column} {self.op} {_number_text(self.values[0])}"


@dataclass(frozen=True)
class CohortSpec:
    """The study's ``[cohort]``: every condition must hold (AND), every required column a value."""

    conditions: tuple[Condition, ...]
    #: columns a sample must have a value in (plink2 --require-pheno / --require-covar)
    require: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns the conditions name, each once, in order."""
        return tuple(dict.fromkeys(c.column for c in self.conditions))

    def text(self) -> str:
        """The definition for people: ``AGE >= 40 and SEX == 2 and QPHENO present``."""
        parts = [c.text() for c in self.conditions] + [f"{c} present" for c in self.require]
        return " and ".join(parts)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        if self.conditions:
            doc["where"] = [c.text() for c in self.conditions]
        if self.require:
            doc["require"] = list(self.require)
        return doc


@dataclass(frozen=True)
class SampleQCSpec:
    """The study's ``[sample_qc]``: plink2's ``--mind``, and heterozygosity outliers."""

    #: plink2 --mind: drop samples missing more than this fraction of calls; None: off
    mind: float | None = None
    #: drop samples whose plink2 --het F lies more than het_sd SD from the site's mean
    het_sd: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in SAMPLE_QC_KEYS if getattr(self, k) is not None}

    def text(self) -> str:
        parts = []
        if self.mind is not None:
            parts.append(f"mind {self.mind:g}")
        if self.het_sd is not None:
            parts.append(f"|het F - mean| > {self.het_sd:g} SD")
        return ", ".join(parts)


def _number_text(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def _number(token: str, condition: str, path: Path) -> float:
    token = token.strip()
    if not _NUMBER.match(token):
        what = "a text value" if token[:1] in "\"'" or token[:1].isalpha() else repr(token)
        raise ConfigError(
            f"cohort condition {condition!r}: {what} is not a number",
            path=path,
            hint="phenotype and covariate tables hold numbers: compare with a number, and "
            'code categories as numbers (e.g. "DIAG in [1, 3]")',
        )
    value = float(token)
    if not math.isfinite(value):
        raise ConfigError(
            f"cohort condition {condition!r}: {token!r} is not a finite number",
            path=path,
            hint=_SYNTAX_HINT,
        )
    return value


def parse_condition(text: str, path: Path) -> Condition:
    """One ``COLUMN OP VALUE`` condition (see the module docstring); ConfigError if malformed."""
    match = _CONDITION.match(text)
    if match is None:
        raise ConfigError(
            f"cohort condition {text!r} is not understood", path=path, hint=_SYNTAX_HINT
        )
    column, op, value = match["column"], " ".join(match["op"].split()), match["value"]
    if op in MEMBERSHIP:
        if not (value.startswith("[") and value.endswith("]")):
            raise ConfigError(
                f"cohort condition {text!r}: {op!r} takes a list of numbers in brackets",
                path=path,
                hint=f'e.g. "{column} {op} [1, 3]"',
            )
        inner = value[1:-1].strip()
        tokens = [t for t in inner.split(",")] if inner else []
        if not tokens or any(not t.strip() for t in tokens):
            raise ConfigError(
                f"cohort condition {text!r}: the list is empty or has an empty entry",
                path=path,
                hint=f'e.g. "{column} {op} [1, 3]"',
            )
        values = tuple(sorted({_number(t, text, path) for t in tokens}))
    else:
        values = (_number(value, text, path),)
    return Condition(column=column, op=op, values=values)


def parse_cohort(table: Any, path: Path) -> CohortSpec:
    """The ``[cohort]`` table."""
    if not isinstance(table, dict):
        raise ConfigError(
            "[cohort] must be a table",
            path=path,
            hint='write it as a table: [cohort] then where = ["AGE >= 40"] on the next line',
        )
    check_keys(table, ("where", "require"), path=path, where="[cohort]")
    if "where" not in table and "require" not in table:
        raise ConfigError(
            "[cohort] names neither where nor require",
            path=path,
            hint='add where = ["AGE >= 40"] (conditions) and/or require = ["QPHENO"] '
            "(columns every sample must have a value in), or remove [cohort]",
        )
    require = _require(table, path)
    if "where" not in table:
        return CohortSpec((), require)
    where = get_typed(table, "where", list, None, path=path, where="cohort")
    if not where or not all(isinstance(c, str) for c in where):
        raise ConfigError(
            "cohort.where must be a non-empty list of conditions (strings)",
            path=path,
            hint='e.g. where = ["AGE >= 40", "SEX == 2"]',
        )
    if len(where) > MAX_CONDITIONS:
        raise ConfigError(
            f"cohort.where lists {len(where)} conditions; at most {MAX_CONDITIONS}",
            path=path,
            hint="combine conditions on one column (e.g. one 'in' list)",
        )
    conditions = tuple(parse_condition(c, path) for c in where)
    if len({c.text() for c in conditions}) != len(conditions):
        raise ConfigError(
            "cohort.where lists the same condition twice",
            path=path,
            hint="list each condition once",
        )
    return CohortSpec(conditions, require)


def _require(table: dict[str, Any], path: Path) -> tuple[str, ...]:
    """``cohort.require``: column names, each once (order kept: it is the study's text)."""
    if "require" not in table:
        return ()
    names = get_typed(table, "require", list, None, path=path, where="cohort")
    hint = 'e.g. require = ["QPHENO", "AGE", "SEX"] (columns of the phenotype/covariate tables)'
    if not names or not all(isinstance(n, str) for n in names):
        raise ConfigError(
            "cohort.require must be a non-empty list of column names", path=path, hint=hint
        )
    bad = [n for n in names if not _COLUMN.match(n)]
    if bad:
        raise ConfigError(f"cohort.require: {bad[0]!r} is not a column name", path=path, hint=hint)
    if len(set(names)) != len(names):
        raise ConfigError("cohort.require lists a column twice", path=path, hint=hint)
    if len(names) > MAX_CONDITIONS:
        raise ConfigError(
            f"cohort.require lists {len(names)} columns; at most {MAX_CONDITIONS}",
            path=path,
            hint=hint,
        )
    return tuple(names)


def parse_sample_qc(table: Any, path: Path) -> SampleQCSpec:
    """The ``[sample_qc]`` table."""
    if not isinstance(table, dict):
        raise ConfigError(
            "[sample_qc] must be a table",
            path=path,
            hint="write it as a table: [sample_qc] then mind = 0.1 on the next line",
        )
    if "check_sex" in table:
        raise ConfigError(
            "[sample_qc] check_sex is not available: GenoFed does not read chrX "
            "heterozygosity yet (plink2 --check-sex)",
            path=path,
            hint="remove check_sex",
        )
    check_keys(table, SAMPLE_QC_KEYS, path=path, where="[sample_qc]")
    if not table:
        raise ConfigError(
            "[sample_qc] names no rule",
            path=path,
            hint="add mind = 0.1 and/or het_sd = 3.0, or remove [sample_qc]",
        )
    mind = get_typed(table, "mind", (int, float), None, path=path, where="sample_qc")
    if mind is not None and not 0 <= mind <= 1:
        raise ConfigError(
            f"sample_qc.mind must lie in [0, 1], not {mind}",
            path=path,
            hint="e.g. mind = 0.1 (drops samples missing more than 10 % of calls)",
        )
    het = get_typed(table, "het_sd", (int, float), None, path=path, where="sample_qc")
    if het is not None and not 1 <= het <= 100:
        raise ConfigError(
            f"sample_qc.het_sd must lie in [1, 100], not {het}",
            path=path,
            hint="e.g. het_sd = 3.0 (drops samples whose F is more than 3 SD from the mean)",
        )
    return SampleQCSpec(
        mind=None if mind is None else float(mind), het_sd=None if het is None else float(het)
    )


__all__ = [
    "COHORT_SAMPLES_FACT",
    "FAM_SEX",
    "MAX_CONDITIONS",
    "OPERATORS",
    "SAMPLE_QC_FACT",
    "SAMPLE_QC_KEYS",
    "SAMPLE_QC_RULES",
    "WITHHELD",
    "CohortSpec",
    "Condition",
    "SampleQCSpec",
    "parse_cohort",
    "parse_condition",
    "parse_sample_qc",
]
