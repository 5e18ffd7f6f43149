"""The policy's rules about a whole study: parameter bounds and auto-approval.

Two tables of ``policy.toml`` (:mod:`genofed.site_agent.privacy.policy`) are read
here, so that the officer's vocabulary and its checks live in one place.

**Parameter bounds**, one table per analysis kind::

    [policy.analysis.glm]
    max_covariates = 10                  # list parameter: its length
    allowed_covariates = ["AGE", "SEX", "PC1", "PC2"]   # every element must be listed
    allowed_model = ["linear", "logistic"]              # str parameter: its value

    [policy.analysis.freq]
    max_epsilon = 1.0                    # the study's privacy.epsilon (dp studies)

A key is ``max_<param>``, ``min_<param>`` or ``allowed_<param>``, where
``<param>`` is a parameter of that analysis kind (:mod:`genofed.common.analyses`)
or one of the study's privacy parameters ``epsilon`` and ``delta`` (checked
for ``dp`` studies only: a ``plain`` study has none, and the policy's
``allowed_release_modes`` decides whether plain releases happen at all).
``max_``/``min_`` bound a number, or the length of a list parameter;
``allowed_`` lists the values a string or boolean parameter may take, or the
elements a list parameter may hold. Any other key, a kind GenoFed does not
know, a bound on a kind that ``allowed_analyses`` does not list, or a value of
the wrong type stops the agent (:class:`ConfigError` naming the key and the
file). A study with a parameter out of bounds is refused with
``PARAMETER_OUT_OF_BOUNDS``, naming the analysis, the parameter and the bound.

**Auto-approval rules**: a study that the rest of the policy accepts is
approved without the privacy officer when one rule matches it
(:mod:`genofed.site_agent.privacy.approvals`)::

    [[policy.auto_approve]]
    name = "qc-from-alice"               # recorded as the approver
    analysts = ["alice"]                 # trusted analysts' names; "*": anyone the policy accepts
    analyses = ["freq", "hardy"]         # optional: every analysis of the study is one of these
    release_modes = ["dp"]               # optional: the study's release mode is one of these

``"*"`` in ``analysts`` also matches unsigned studies, which only a demo
policy accepts at all. Without ``analyses`` or ``release_modes`` a rule
matches any the policy allows. No rule, no auto-approval: every study waits
for ``genofed-site approve``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genofed.common.analyses import ANALYSIS_KINDS
from genofed.common.errors import ConfigError, PolicyRefusal
from genofed.common.reasons import PARAMETER_OUT_OF_BOUNDS
from genofed.common.study import RELEASE_MODES, Study
from genofed.common.tomlconfig import Problems, check_keys, did_you_mean, get_typed

#: Study-level parameters a bound may name for every kind (``dp`` studies only).
PRIVACY_PARAMS = ("epsilon", "delta")
ANY_ANALYST = "*"
_OPS = ("max", "min", "allowed")
_RULE_KEYS = ("name", "analysts", "analyses", "release_modes")


@dataclass(frozen=True)
class ParamBound:
    """One ``<op>_<param>`` key of a ``[policy.analysis.<kind>]`` table."""

    kind: str
    op: str  # "max", "min" or "allowed"
    param: str
    value: Any  # a number for max/min, a tuple for allowed

    @property
    def key(self) -> str:
        return f"policy.analysis.{self.kind}.{self.op}_{self.param}"


@dataclass(frozen=True)
class AutoApproveRule:
    """One ``[[policy.auto_approve]]`` table; None fields match anything the policy allows."""

    name: str
    analysts: frozenset[str]
    analyses: frozenset[str] | None = None
    release_modes: frozenset[str] | None = None


def _param_type(kind: str, param: str) -> type:
    if param in PRIVACY_PARAMS:
        return float
    return ANALYSIS_KINDS[kind].params[param].kind


def parse_bounds(
    table: Mapping[str, object],
    path: Path,
    allowed_analyses: frozenset[str],
    problems: Problems | None = None,
) -> tuple[ParamBound, ...]:
    """The ``[policy.analysis.*]`` tables of ``[policy]``, checked (see the module docstring).

    With ``problems``, each table's problem is noted there and the others are still read.
    """
    section = table.get("analysis", {})
    if not isinstance(section, dict):
        _problem(
            problems,
            ConfigError(
                "policy.analysis must hold tables ([policy.analysis.KIND])",
                path=path,
                hint="write one table per analysis kind, e.g. [policy.analysis.glm]",
            ),
        )
        return ()
    bounds: list[ParamBound] = []
    for kind, sub in section.items():
        try:
            bounds.extend(_kind_bounds(kind, sub, path, allowed_analyses))
        except ConfigError as exc:
            _problem(problems, exc)
    return tuple(bounds)


def _problem(problems: Problems | None, exc: ConfigError) -> None:
    """Note ``exc`` in ``problems``, or raise it when there is none."""
    if problems is None:
        raise exc
    problems.add(exc)


def _kind_bounds(
    kind: str, sub: object, path: Path, allowed_analyses: frozenset[str]
) -> list[ParamBound]:
    where = f"[policy.analysis.{kind}]"
    if kind not in ANALYSIS_KINDS:
        raise ConfigError(
            f"{where}: unknown analysis kind {kind!r}",
            path=path,
            hint=f"{did_you_mean([kind], ANALYSIS_KINDS)}known kinds: "
            f"{', '.join(sorted(ANALYSIS_KINDS))}",
        )
    if kind not in allowed_analyses:
        raise ConfigError(
            f"{where} bounds an analysis that policy.allowed_analyses does not allow",
            path=path,
            hint=f'add "{kind}" to allowed_analyses, or remove the table',
        )
    if not isinstance(sub, dict):
        raise ConfigError(
            f"{where} must be a table",
            path=path,
            hint=f"write {where} on its own line, then max_/min_/allowed_<param> = ... keys",
        )
    params = (*ANALYSIS_KINDS[kind].params, *PRIVACY_PARAMS)
    check_keys(sub, [f"{op}_{p}" for op in _OPS for p in params], path=path, where=where)
    bounds = []
    for key, value in sub.items():
        op, param = key.split("_", 1)
        bounds.append(_bound(kind, op, param, value, path))
    return bounds


def _bound(kind: str, op: str, param: str, value: object, path: Path) -> ParamBound:
    ptype = _param_type(kind, param)
    key = f"policy.analysis.{kind}.{op}_{param}"
    if op in ("max", "min"):
        if ptype not in (int, float, list):
            raise ConfigError(
                f"{key}: {param!r} is a {ptype.__name__} parameter; bound it with allowed_{param}",
                path=path,
                hint=f"replace {op}_{param} by allowed_{param} = [...] (the values it may take)",
            )
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(
                f"{key} must be a number >= 0, not {value!r}",
                path=path,
                hint=f"e.g. {op}_{param} = 10",
            )
        return ParamBound(kind, op, param, value)
    element = str if ptype is list else ptype
    if ptype not in (str, bool, list):
        raise ConfigError(
            f"{key}: {param!r} is a number; bound it with max_{param} / min_{param}",
            path=path,
            hint=f"replace allowed_{param} by max_{param} = ... and/or min_{param} = ...",
        )
    if not isinstance(value, list):
        raise ConfigError(
            f"{key} must be a list of the values {param!r} may take, not {value!r}",
            path=path,
            hint=f'e.g. allowed_{param} = ["a", "b"]',
        )
    for item in value:
        if type(item) is not element:
            raise ConfigError(
                f"{key} must hold {element.__name__} values, not {item!r}",
                path=path,
                hint=f"list only {element.__name__} values in allowed_{param}",
            )
    return ParamBound(kind, op, param, tuple(value))


def check_bounds(bounds: Sequence[ParamBound], study: Study) -> None:
    """Raise ``PARAMETER_OUT_OF_BOUNDS`` for the first analysis parameter out of bounds."""
    for spec in study.analyses:
        for bound in bounds:
            if bound.kind != spec.kind:
                continue
            if bound.param in PRIVACY_PARAMS:
                if study.privacy.mode not in ("dp", "distributed-dp"):
                    continue
                value: Any = getattr(study.privacy, bound.param)
            else:
                # a parameter a study's canonical form leaves out has its default
                # (km's horizon, when the study names its grid)
                default = ANALYSIS_KINDS[spec.kind].params[bound.param].default
                value = spec.params.get(bound.param, default)
            problem = _violation(bound, value)
            if problem is not None:
                raise PolicyRefusal(
                    PARAMETER_OUT_OF_BOUNDS,
                    f"analysis {spec.id!r} ({spec.kind}): {bound.param} {problem} "
                    f"(this site's {bound.key})",
                )


def _violation(bound: ParamBound, value: Any) -> str | None:
    if bound.op == "allowed":
        items = list(value) if isinstance(value, list | tuple) else [value]
        bad = [v for v in items if v not in bound.value]
        return None if not bad else f"{', '.join(map(repr, bad))} is not allowed"
    measured = len(value) if isinstance(value, list | tuple) else value
    what = f"has {measured} entries" if isinstance(value, list | tuple) else f"= {measured:g}"
    if bound.op == "max" and measured > bound.value:
        return f"{what}, above the maximum of {bound.value:g}"
    if bound.op == "min" and measured < bound.value:
        return f"{what}, below the minimum of {bound.value:g}"
    return None


def parse_auto_approve(
    table: Mapping[str, object],
    path: Path,
    analysts: frozenset[str],
    problems: Problems | None = None,
) -> tuple[AutoApproveRule, ...]:
    """The ``[[policy.auto_approve]]`` tables; analyst names must be trusted ones (or "*").

    With ``problems``, each rule's problem is noted there and the others are still read.
    """
    try:
        entries = get_typed(table, "auto_approve", list, [], path=path, where="policy")
    except ConfigError as exc:
        _problem(problems, exc)
        return ()
    rules: list[AutoApproveRule] = []
    for number, entry in enumerate(entries, start=1):
        try:
            rules.append(_rule(entry, f"[[policy.auto_approve]] #{number}", path, analysts))
        except ConfigError as exc:
            _problem(problems, exc)
    return tuple(rules)


def _rule(entry: object, where: str, path: Path, analysts: frozenset[str]) -> AutoApproveRule:
    if not isinstance(entry, dict):
        raise ConfigError(
            f"{where} must be a table",
            path=path,
            hint='write [[policy.auto_approve]] then name = "..." and analysts = [...]',
        )
    check_keys(entry, _RULE_KEYS, path=path, where=where, required=("name", "analysts"))
    name = get_typed(entry, "name", str, None, path=path, where=where)
    names = _strings(entry, "analysts", where, path)
    unknown = sorted(set(names) - analysts - {ANY_ANALYST})
    if unknown or not names:
        raise ConfigError(
            f"{where}.analysts names {', '.join(map(repr, unknown)) or 'nobody'}, "
            "not a trusted analyst",
            path=path,
            hint='use names from [[policy.trusted_analysts]], or "*" for any of them',
        )
    kinds = _strings(entry, "analyses", where, path) if "analyses" in entry else None
    bad_kinds = [k for k in kinds or () if k not in ANALYSIS_KINDS]
    if bad_kinds:
        raise ConfigError(
            f"{where}.analyses names {', '.join(map(repr, bad_kinds))}, not an analysis kind",
            path=path,
            hint=f"known kinds: {', '.join(sorted(ANALYSIS_KINDS))}",
        )
    modes = _strings(entry, "release_modes", where, path) if "release_modes" in entry else None
    bad_modes = [m for m in modes or () if m not in RELEASE_MODES]
    if bad_modes:
        raise ConfigError(
            f"{where}.release_modes may hold {RELEASE_MODES}, not "
            f"{', '.join(map(repr, bad_modes))}",
            path=path,
            hint=f"the release modes are: {', '.join(RELEASE_MODES)}",
        )
    return AutoApproveRule(
        name=name,
        analysts=frozenset(names),
        analyses=None if kinds is None else frozenset(kinds),
        release_modes=None if modes is None else frozenset(modes),
    )


def _strings(entry: Mapping[str, object], key: str, where: str, path: Path) -> list[str]:
    values = get_typed(entry, key, list, [], path=path, where=where)
    for value in values:
        if not isinstance(value, str):
            raise ConfigError(
                f"{where}.{key} must hold strings, not {value!r}",
                path=path,
                hint=f'quote each value, e.g. {key} = ["a", "b"]',
            )
    return list(values)


def matching_rule(
    rules: Sequence[AutoApproveRule], study: Study, analyst: str | None
) -> str | None:
    """The name of the first rule that approves ``study`` signed by ``analyst``, or None."""
    kinds = {a.kind for a in study.analyses}
    for rule in rules:
        if ANY_ANALYST not in rule.analysts and analyst not in rule.analysts:
            continue
        if rule.analyses is not None and not kinds <= rule.analyses:
            continue
        if rule.release_modes is not None and study.privacy.mode not in rule.release_modes:
            continue
        return rule.name
    return None


__all__ = [
    "ANY_ANALYST",
    "PRIVACY_PARAMS",
    "AutoApproveRule",
    "ParamBound",
    "check_bounds",
    "matching_rule",
    "parse_auto_approve",
    "parse_bounds",
]
