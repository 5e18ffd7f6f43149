"""The site policy: the privacy officer's file that decides what a site will compute.

``policy.toml`` in the site directory holds one ``[policy]`` table::

    [policy]
    version = 1
    demo = false                 # true only for synthetic data: accepts unsigned studies
    allowed_analyses = []        # e.g. ["freq", "hardy"]
    min_cohort_size = 10         # refuse studies whose matched cohort is smaller
    min_cell_count = 10          # smallest count a released table may hold

    [[policy.trusted_analysts]]  # one table per analyst whose signed studies count
    name = "alice"
    public_key = "ed25519:..."   # the .pub file `genofed study keygen` wrote

Fail closed: a site directory without ``policy.toml`` loads as
:data:`REFUSE_ALL` (no analysis allowed, not demo), so a deleted or misplaced
file can only make the site refuse more, never release more. A file that is
present but wrong (unknown key, wrong type, unsupported version) is a
:class:`ConfigError` rather than a silent fallback, because the officer meant
something by it.

A non-demo policy accepts only studies signed by one of its trusted analysts
(:mod:`genofed.common.signing`); a demo policy also accepts unsigned ones,
but a signature that is present must still verify. Budgets and suppression
join the same table in later changes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from genofed.common.errors import ConfigError, PolicyRefusal
from genofed.common.signing import StudySignature, parse_public_key, verify_study_signature
from genofed.common.tomlconfig import check_keys, get_typed, load_toml

POLICY_FILE = "policy.toml"
POLICY_VERSION = 1
DEFAULT_MIN_COHORT_SIZE = 10
DEFAULT_MIN_CELL_COUNT = 10
DEMO_ANALYSES = ("variants", "freq", "hardy", "missing", "gcount")

_KEYS = (
    "version",
    "demo",
    "allowed_analyses",
    "min_cohort_size",
    "min_cell_count",
    "trusted_analysts",
)
_ANALYST_KEYS = ("name", "public_key")
_log = logging.getLogger("genofed.site")


@dataclass(frozen=True)
class SitePolicy:
    """What this site agrees to compute; see the module docstring for each field."""

    demo: bool
    allowed_analyses: frozenset[str]
    min_cohort_size: int = DEFAULT_MIN_COHORT_SIZE
    min_cell_count: int = DEFAULT_MIN_CELL_COUNT
    #: analyst name -> raw Ed25519 public key
    trusted_analysts: Mapping[str, bytes] = field(default_factory=lambda: MappingProxyType({}))


#: The policy of a site without a policy file: refuses everything.
REFUSE_ALL = SitePolicy(demo=False, allowed_analyses=frozenset())

DEFAULT_POLICY_TOML = f"""\
# GenoFed site policy, owned by this site's privacy officer.
#
# This policy REFUSES EVERY STUDY until you edit it. To allow analyses, list
# them in allowed_analyses, e.g. allowed_analyses = ["freq", "hardy"].
# Studies must be signed by a trusted analyst: add one [[policy.trusted_analysts]]
# table per analyst (name, and the public key from their `genofed study keygen`).
# Never set demo = true on real patient data.

[policy]
version = {POLICY_VERSION}
demo = false
allowed_analyses = []
# Refuse studies whose cohort at this site is smaller than this.
min_cohort_size = {DEFAULT_MIN_COHORT_SIZE}
# Smallest count a released table may hold (smaller cells are suppressed).
min_cell_count = {DEFAULT_MIN_CELL_COUNT}

# [[policy.trusted_analysts]]
# name = "alice"
# public_key = "ed25519:..."
"""

DEMO_POLICY_TOML = f"""\
# DEMO POLICY: FOR SYNTHETIC DATA ONLY.
# IT ACCEPTS UNSIGNED STUDIES FROM ANYONE. NEVER USE IT WITH REAL PATIENT DATA.
# For real data, replace this file with the default policy
# (genofed-site init without --demo-policy writes one) and edit that.

[policy]
version = {POLICY_VERSION}
demo = true
allowed_analyses = [{", ".join(f'"{a}"' for a in DEMO_ANALYSES)}]
min_cohort_size = {DEFAULT_MIN_COHORT_SIZE}
min_cell_count = {DEFAULT_MIN_CELL_COUNT}
"""


def load_policy(path: Path) -> SitePolicy:
    """Read ``policy.toml``; a missing file is :data:`REFUSE_ALL` (fail closed)."""
    path = Path(path)
    if not path.exists():
        _log.warning("no policy file at %s: refusing every request", path)
        return REFUSE_ALL
    doc = load_toml(path)
    check_keys(doc, ["policy"], path=path, where="the file", required=["policy"])
    table = doc["policy"]
    if not isinstance(table, dict):
        raise ConfigError("'policy' must be a table ([policy])", path=path)
    check_keys(table, _KEYS, path=path, where="[policy]", required=["version"])
    version = get_typed(table, "version", int, None, path=path, where="policy")
    if version != POLICY_VERSION:
        raise ConfigError(
            f"policy version {version} is not supported (this site agent reads version "
            f"{POLICY_VERSION})",
            path=path,
            hint="upgrade the site agent, or rewrite the file for version 1",
        )
    demo = get_typed(table, "demo", bool, False, path=path, where="policy")
    analyses = get_typed(table, "allowed_analyses", list, [], path=path, where="policy")
    for name in analyses:
        if not isinstance(name, str):
            raise ConfigError(f"policy.allowed_analyses must hold strings, not {name!r}", path=path)
    minimums = {}
    for key, default in (
        ("min_cohort_size", DEFAULT_MIN_COHORT_SIZE),
        ("min_cell_count", DEFAULT_MIN_CELL_COUNT),
    ):
        value = get_typed(table, key, int, default, path=path, where="policy")
        if value < 0:
            raise ConfigError(f"policy.{key} must be >= 0, not {value}", path=path)
        minimums[key] = value
    return SitePolicy(
        demo=demo,
        allowed_analyses=frozenset(analyses),
        trusted_analysts=MappingProxyType(_trusted_analysts(table, path)),
        **minimums,
    )


def _trusted_analysts(table: Mapping[str, object], path: Path) -> dict[str, bytes]:
    entries = get_typed(table, "trusted_analysts", list, [], path=path, where="policy")
    trusted: dict[str, bytes] = {}
    for number, entry in enumerate(entries, start=1):
        where = f"[[policy.trusted_analysts]] #{number}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be a table", path=path)
        check_keys(entry, _ANALYST_KEYS, path=path, where=where, required=_ANALYST_KEYS)
        name = get_typed(entry, "name", str, None, path=path, where=where)
        text = get_typed(entry, "public_key", str, None, path=path, where=where)
        try:
            key = parse_public_key(text)
        except ValueError as exc:
            raise ConfigError(
                f"{where}.public_key is not an Ed25519 public key: {exc}",
                path=path,
                hint="paste the one line of the analyst's KEY.pub file (ed25519:...)",
            ) from exc
        if name in trusted:
            raise ConfigError(f"{where}: analyst {name!r} is listed twice", path=path)
        trusted[name] = key
    return trusted


def check_study_signature(
    policy: SitePolicy, canonical_json: bytes, signature: StudySignature | None
) -> str | None:
    """The trusted analyst who signed the study, or None for an unsigned one.

    A signature that is present must verify against a trusted key, even under
    a demo policy; any failure is the same opaque :class:`IntegrityError`. An
    unsigned study is refused unless the policy is a demo policy.
    """
    if signature is not None:
        return verify_study_signature(canonical_json, signature, policy.trusted_analysts)
    if not policy.demo:
        raise PolicyRefusal(
            "UNSIGNED_STUDY",
            "this site accepts only studies signed by a trusted analyst "
            "(genofed study sign study.toml --key KEY)",
        )
    return None


def check_request(policy: SitePolicy, *, kind: str, signed: bool, n_samples: int) -> None:
    """Raise :class:`PolicyRefusal` unless ``policy`` allows this request.

    The messages go back to the coordinator, so they never state the site's
    exact cohort size.
    """
    if kind not in policy.allowed_analyses:
        raise PolicyRefusal(
            "ANALYSIS_NOT_ALLOWED",
            f"analysis {kind!r} is not in this site's allowed_analyses",
        )
    if not signed and not policy.demo:
        raise PolicyRefusal(
            "UNSIGNED_STUDY",
            "this site accepts only studies signed by a trusted analyst "
            "(genofed study sign study.toml --key KEY)",
        )
    if n_samples < policy.min_cohort_size:
        raise PolicyRefusal(
            "COHORT_TOO_SMALL",
            f"the cohort at this site is below its minimum of {policy.min_cohort_size} samples",
        )


__all__ = [
    "DEFAULT_MIN_CELL_COUNT",
    "DEFAULT_MIN_COHORT_SIZE",
    "DEFAULT_POLICY_TOML",
    "DEMO_ANALYSES",
    "DEMO_POLICY_TOML",
    "POLICY_FILE",
    "REFUSE_ALL",
    "SitePolicy",
    "check_request",
    "check_study_signature",
    "load_policy",
]
