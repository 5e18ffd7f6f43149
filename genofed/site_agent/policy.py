"""The site policy: the privacy officer's file that decides what a site will compute.

``policy.toml`` in the site directory holds one ``[policy]`` table::

    [policy]
    version = 1
    demo = false                 # true only for synthetic data: accepts unsigned studies
    allowed_analyses = []        # e.g. ["freq", "hardy"]
    min_cohort_size = 10         # refuse studies whose matched cohort is smaller
    min_cell_count = 10          # smallest count a released table may hold

Fail closed: a site directory without ``policy.toml`` loads as
:data:`REFUSE_ALL` (no analysis allowed, not demo), so a deleted or misplaced
file can only make the site refuse more, never release more. A file that is
present but wrong (unknown key, wrong type, unsupported version) is a
:class:`ConfigError` rather than a silent fallback, because the officer meant
something by it.

Signed studies arrive with a later change; until then only a ``demo = true``
policy accepts a study at all. Later changes add trusted analyst keys,
budgets and suppression to the same table.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from genofed.common.errors import ConfigError, PolicyRefusal
from genofed.common.tomlconfig import check_keys, get_typed, load_toml

POLICY_FILE = "policy.toml"
POLICY_VERSION = 1
DEFAULT_MIN_COHORT_SIZE = 10
DEFAULT_MIN_CELL_COUNT = 10
DEMO_ANALYSES = ("variants", "freq", "hardy", "missing", "gcount")

_KEYS = ("version", "demo", "allowed_analyses", "min_cohort_size", "min_cell_count")
_log = logging.getLogger("genofed.site")


@dataclass(frozen=True)
class SitePolicy:
    """What this site agrees to compute; see the module docstring for each field."""

    demo: bool
    allowed_analyses: frozenset[str]
    min_cohort_size: int = DEFAULT_MIN_COHORT_SIZE
    min_cell_count: int = DEFAULT_MIN_CELL_COUNT


#: The policy of a site without a policy file: refuses everything.
REFUSE_ALL = SitePolicy(demo=False, allowed_analyses=frozenset())

DEFAULT_POLICY_TOML = f"""\
# GenoFed site policy, owned by this site's privacy officer.
#
# This policy REFUSES EVERY STUDY until you edit it. To allow analyses, list
# them in allowed_analyses, e.g. allowed_analyses = ["freq", "hardy"].
# Studies must be signed by a trusted analyst (signing arrives in a later
# GenoFed release; until then a non-demo site refuses all studies).
# Never set demo = true on real patient data.

[policy]
version = {POLICY_VERSION}
demo = false
allowed_analyses = []
# Refuse studies whose cohort at this site is smaller than this.
min_cohort_size = {DEFAULT_MIN_COHORT_SIZE}
# Smallest count a released table may hold (smaller cells are suppressed).
min_cell_count = {DEFAULT_MIN_CELL_COUNT}
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
    return SitePolicy(demo=demo, allowed_analyses=frozenset(analyses), **minimums)


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
            "this site requires signed studies; study signing is not available yet, "
            "so until it is only sites with a demo policy (synthetic data) accept studies",
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
    "load_policy",
]
