"""The site policy: the privacy officer's file that decides what a site will compute.

``policy.toml`` in the site directory holds one ``[policy]`` table::

    [policy]
    version = 1
    demo = false                 # true only for synthetic data: accepts unsigned studies
    allowed_analyses = []        # e.g. ["freq", "hardy"]
    min_cohort_size = 10         # refuse studies whose matched cohort is smaller
    min_cell_count = 10          # smallest count a released table may hold
    allowed_app_hashes = []      # Flower app bundles (FAB SHA-256) run in deployment
    allowed_release_modes = []   # "plain" (per-site sums), "dp" (noise, charged),
                                 # "exact" (SecAgg+ sums; min_cell_count does not apply),
                                 # "distributed-dp" (noise shares under SecAgg+, charged)
    require_secure_aggregation = false  # true: refuse plain releases (every analysis
                                 # then runs only in "exact" mode, or with DP noise)
    audit_sample_sets = true     # refuse releases that difference to a person (guard.py)
    min_score_rows = 10          # fewest weighted rows a PRS scoring file may have
    max_weight_ratio = 100.0     # largest |weight| over smallest non-zero |weight| in one
    guard_refusals_before_review = 3  # then an analyst's studies wait for the officer
    guard_max_sets = 2000        # most sets the guard keeps per column group (then
                                 # variants with new missing-call sets are withheld)
    guard_max_new_sets = 500     # most new missing-call sets one request may add
    km_min_grid_step = 0         # km: merge grid times closer than this (0: the study's grid)
    pca_max_directions = 10000   # pca: variant-space directions released per cohort snapshot
    cohort_columns = ["AGE", "SEX"]  # columns a study's [cohort] may filter on (default:
                                 # the allowed_<column> lists of [policy.analysis.*], else any)
    max_membership_power = 0.1   # count releases: withhold variants until the power of a
                                 # likelihood-ratio membership test is at most this (absent: off)
    membership_fpr = 0.05        # ... at this false-positive rate (membership.py)
    membership_reference = "panel.afreq"  # the attacker's reference: a plink2 .afreq of a
                                 # public panel (default: the site's own frequencies)

    [policy.analysis.glm]        # parameter bounds per analysis kind (policy_rules.py)
    max_covariates = 10

    [[policy.auto_approve]]      # studies approved without the officer (policy_rules.py)
    name = "qc-from-alice"
    analysts = ["alice"]
    analyses = ["freq", "hardy"]

    [policy.budget]              # differential privacy budget of this site
    epsilon = 3.0
    delta = 1e-6
    period = "year"              # "year", "quarter", "month" (calendar, UTC) or "lifetime"

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
but a signature that is present must still verify. Parameter bounds and
auto-approval rules are read by :mod:`genofed.site_agent.privacy.policy_rules`;
approvals by hash live in :mod:`genofed.site_agent.privacy.approvals`; small-cell
suppression with ``min_cell_count`` (0 turns it off) in
:mod:`genofed.site_agent.privacy.suppression`.

``allowed_app_hashes`` is enforced where a SuperNode would execute a bundle
(:mod:`genofed.site_agent.node.appgate`): a bundle not listed is refused before
any of it is unpacked or run. The demo policy lists the bundle of the
GenoFed version that wrote it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from genofed import __version__
from genofed.common.analyses import ANALYSIS_KINDS, QC_POLICY_KIND, VARIANTS_KIND
from genofed.common.appbundle import bundle_hash
from genofed.common.errors import ConfigError, PolicyRefusal
from genofed.common.reasons import (
    ANALYSIS_NOT_ALLOWED,
    APP_NOT_ALLOWED,
    COHORT_COLUMN_NOT_ALLOWED,
    COHORT_TOO_SMALL,
    NO_BUDGET,
    RELEASE_MODE_NOT_ALLOWED,
    SECURE_AGGREGATION_REQUIRED,
    UNSIGNED_STUDY,
)
from genofed.common.signing import StudySignature, parse_public_key, verify_study_signature
from genofed.common.study import RELEASE_MODES, Study
from genofed.common.tomlconfig import Problems, check_keys, did_you_mean, get_typed, load_toml
from genofed.site_agent.privacy.guard import DEFAULT_FAMILY_CAP, DEFAULT_OFFER_CAP
from genofed.site_agent.privacy.ledger import PERIODS, Budget
from genofed.site_agent.privacy.policy_rules import (
    AutoApproveRule,
    ParamBound,
    check_bounds,
    matching_rule,
    parse_auto_approve,
    parse_bounds,
)

POLICY_FILE = "policy.toml"
POLICY_VERSION = 1
DEFAULT_MIN_COHORT_SIZE = 10
DEFAULT_MIN_CELL_COUNT = 10
DEMO_ANALYSES = (
    "variants",
    "freq",
    "hardy",
    "missing",
    "gcount",
    "glm",
    "prs",
    "pgx",
    "km",
    "cox",
    "pca",
    "train",
)

_KEYS = (
    "version",
    "demo",
    "allowed_analyses",
    "min_cohort_size",
    "min_cell_count",
    "trusted_analysts",
    "allowed_app_hashes",
    "allowed_release_modes",
    "budget",
    "require_secure_aggregation",
    "audit_sample_sets",
    "min_score_rows",
    "max_weight_ratio",
    "guard_refusals_before_review",
    "guard_max_sets",
    "guard_max_new_sets",
    "km_min_grid_step",
    "pca_max_directions",
    "cohort_columns",
    "max_membership_power",
    "membership_fpr",
    "membership_reference",
    "analysis",
    "auto_approve",
)
_BUDGET_KEYS = ("epsilon", "delta", "period")
_ANALYST_KEYS = ("name", "public_key")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_log = logging.getLogger("genofed.site")


#: Fewest weighted rows of a scoring file: one row's score is one genotype.
DEFAULT_MIN_SCORE_ROWS = 10
#: Weights spread wider than this could encode several genotypes in one score
#: (weights 1, 3, 9, ...: the score read in base 3).
DEFAULT_MAX_WEIGHT_RATIO = 100.0
#: An analyst's studies refused by the guard before auto-approval stops for them.
DEFAULT_GUARD_REFUSALS = 3
#: Variant-space directions (columns of the blocks a pca multiplies by the site's
#: genotypes) released per cohort snapshot, over all runs: a demo-sized PCA
#: (10 components) uses about 600; a coordinator collecting more directions than
#: the site has samples could rebuild the pooled variant Gram matrix of the cohort.
DEFAULT_PCA_MAX_DIRECTIONS = 10_000
#: ``genofed-site init``'s limit on the power of the LR membership test on one count release.
DEFAULT_MAX_MEMBERSHIP_POWER = 0.1
#: The false-positive rate at which that power is taken.
DEFAULT_MEMBERSHIP_FPR = 0.05


@dataclass(frozen=True)
class SitePolicy:
    """What this site agrees to compute; see the module docstring for each field."""

    demo: bool
    allowed_analyses: frozenset[str]
    min_cohort_size: int = DEFAULT_MIN_COHORT_SIZE
    min_cell_count: int = DEFAULT_MIN_CELL_COUNT
    #: analyst name -> raw Ed25519 public key
    trusted_analysts: Mapping[str, bytes] = field(default_factory=lambda: MappingProxyType({}))
    #: SHA-256 (hex) of the Flower app bundles this site runs in deployment (``appgate.py``)
    allowed_app_hashes: frozenset[str] = frozenset()
    #: "plain", "dp", "exact", "distributed-dp"; a study asking for another is refused
    allowed_release_modes: frozenset[str] = frozenset()
    #: None: no budget, so every dp release is refused
    budget: Budget | None = None
    #: True: exact per-site sums ("plain" releases) are refused
    require_secure_aggregation: bool = False
    #: ``[policy.analysis.<kind>]`` parameter bounds
    analysis_bounds: tuple[ParamBound, ...] = ()
    #: ``[[policy.auto_approve]]`` rules, in file order
    auto_approve: tuple[AutoApproveRule, ...] = ()
    #: True: every release's sample sets are audited against all earlier ones
    #: (:mod:`genofed.site_agent.privacy.guard`); off when ``min_cell_count`` is 0
    audit_sample_sets: bool = True
    #: A PRS scoring file needs at least this many rows with a non-zero weight
    min_score_rows: int = DEFAULT_MIN_SCORE_ROWS
    #: Largest ratio of a scoring file's largest to smallest non-zero |weight|
    max_weight_ratio: float = DEFAULT_MAX_WEIGHT_RATIO
    #: Studies of one analyst the guard may refuse before auto-approval of their
    #: studies is suspended (0: never suspended)
    guard_refusals_before_review: int = DEFAULT_GUARD_REFUSALS
    #: Most sets the disclosure guard keeps per column group; then a variant whose
    #: missing-call set is new is withheld (each check costs O(sets^2))
    guard_max_sets: int = DEFAULT_FAMILY_CAP
    #: Most new per-variant missing-call sets one request may add to the guard
    guard_max_new_sets: int = DEFAULT_OFFER_CAP
    #: ``km``: this site counts on the study's grid with times closer than this to the
    #: previous kept time merged (0: the study's grid as it is)
    km_min_grid_step: float = 0.0
    #: ``pca``: most variant-space directions released per cohort snapshot, over all runs
    pca_max_directions: int = DEFAULT_PCA_MAX_DIRECTIONS
    #: columns a study's ``[cohort]`` may filter on; None: see :func:`cohort_columns`
    cohort_columns: frozenset[str] | None = None
    #: count releases (``plain``): most power of the LR membership test on one release,
    #: at ``membership_fpr``; variants are withheld until it holds (None: no check)
    max_membership_power: float | None = None
    membership_fpr: float = DEFAULT_MEMBERSHIP_FPR
    #: the attacker's reference frequencies, a plink2 ``.afreq`` file (None: the site's own)
    membership_reference: Path | None = None


#: The policy of a site without a policy file: refuses everything.
REFUSE_ALL = SitePolicy(
    demo=False,
    allowed_analyses=frozenset(),
    max_membership_power=DEFAULT_MAX_MEMBERSHIP_POWER,  # as genofed-site init's file
)

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
# Smallest count a released table may hold: a variant whose genotype counts at this
# site include a nonzero cell below it is withheld (marked suppressed); 0: off.
min_cell_count = {DEFAULT_MIN_CELL_COUNT}
# true: refuse releases of exact per-site sums ("plain"): every analysis then runs only
# in [privacy] mode = "exact" (its sums through SecAgg+: the coordinator learns only
# the sum over >= 3 sites), or with DP noise ("dp", "distributed-dp", DP-SGD).
require_secure_aggregation = false
# Audit the sample sets of every release against everything released before
# (all studies, all time): refuse a release whose sums, subtracted from earlier
# ones, would give one person's value (docs/decisions/0005-threat-model.md).
audit_sample_sets = true
# A PRS scoring file needs this many rows with a non-zero weight, and its largest
# |weight| may be at most max_weight_ratio times its smallest non-zero |weight|.
min_score_rows = {DEFAULT_MIN_SCORE_ROWS}
max_weight_ratio = {DEFAULT_MAX_WEIGHT_RATIO}
# After this many of an analyst's studies were refused by the guard (DISCLOSURE_RISK),
# auto-approval stops for that analyst: their studies wait for `genofed-site approve`.
guard_refusals_before_review = {DEFAULT_GUARD_REFUSALS}
# The guard checks each new per-variant missing-call set against those it keeps:
# at most guard_max_new_sets new ones per request and guard_max_sets per column
# group, then such variants are withheld. Each check costs O(sets^2): about 50 ms
# per set at 2,000 sets over 10,000 persons, 175 ms near 4,000 (so 500 new sets
# near 4,000 add about 90 s to a request).
guard_max_sets = {DEFAULT_FAMILY_CAP}
guard_max_new_sets = {DEFAULT_OFFER_CAP}
# km: count on the study's grid with times closer than this to the previous kept
# time merged into the next one (in the unit of the time column; 0: the study's grid).
km_min_grid_step = 0
# pca: most variant-space directions (columns of the coordinator's blocks) this site
# multiplies by its genotypes and releases per cohort snapshot, over all runs; beyond
# it a pca is refused (PCA_DIRECTIONS_EXCEEDED). A 10-component PCA uses about 600.
pca_max_directions = {DEFAULT_PCA_MAX_DIRECTIONS}
# Columns a study's [cohort] may filter on (e.g. ["AGE", "SEX"]; [] : none). Without
# it: the columns the allowed_<column> bounds below list, or, without those, any
# column of this site's phenotype and covariate tables.
# cohort_columns = ["AGE", "SEX"]
# Membership inference (docs/decisions/0007-membership-inference.md): before counts
# (freq, hardy, missing, gcount) leave in "plain" mode, the site estimates the power of a
# likelihood-ratio test telling whether a given person is in this release, at the
# false-positive rate membership_fpr, and withholds variants (marked suppressed) until it
# is at most max_membership_power. Remove max_membership_power to turn the check off.
max_membership_power = {DEFAULT_MAX_MEMBERSHIP_POWER}
membership_fpr = {DEFAULT_MEMBERSHIP_FPR}
# The attacker's reference frequencies: a public panel's plink2 .afreq file (relative
# to this file). Without it the site's own frequencies stand for the population.
# membership_reference = "panel.afreq"
# App bundles (Flower FAB SHA-256) this site runs when connected to a coordinator;
# any other bundle is refused before it runs. `genofed-site app-hash` prints the
# hash of the GenoFed version installed here.
allowed_app_hashes = []
# How results may leave: "plain" (exact per-site sums), "dp" (each release
# carries calibrated noise and is charged to the budget below), "exact" (counts
# masked by SecAgg+ so that only the sum over >= 3 sites is learned; small-cell
# suppression does not apply to them) and "distributed-dp" (a share of the
# noise under SecAgg+, charged; see docs/decisions/0003-secure-aggregation.md).
allowed_release_modes = []

# The differential privacy budget: total (epsilon, delta) per period.
# Without it, every "dp" release is refused.
# [policy.budget]
# epsilon = 3.0
# delta = 1e-6
# period = "year"   # "year", "quarter", "month" (calendar, UTC) or "lifetime"

# [[policy.trusted_analysts]]
# name = "alice"
# public_key = "ed25519:..."

# Bounds on the parameters of an allowed analysis: max_/min_<param> (a number,
# or a list's length) and allowed_<param> (the values it may take).
# [policy.analysis.glm]
# max_covariates = 10
# allowed_model = ["linear", "logistic"]
# [policy.analysis.freq]
# max_epsilon = 1.0          # dp studies: the study's epsilon

# Every study waits for `genofed-site approve STUDY_HASH` unless a rule approves it:
# [[policy.auto_approve]]
# name = "qc-from-alice"
# analysts = ["alice"]       # trusted analyst names, or "*"
# analyses = ["freq", "hardy"]
# release_modes = ["dp"]
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
# Small-cell suppression is OFF in the demo (0) so that demo results equal
# plink2 on the pooled cohort; real policies keep the default of 10.
min_cell_count = 0
require_secure_aggregation = false
# the app bundle of GenoFed {__version__}, the version that wrote this file
allowed_app_hashes = ["{bundle_hash()}"]
allowed_release_modes = ["plain", "dp", "exact", "distributed-dp"]

# A generous budget for synthetic data, so that repeated demo runs keep working.
[policy.budget]
epsilon = 100.0
delta = 1e-5
period = "year"

# The demo AUTO-APPROVES EVERY STUDY it accepts (signed or not): no
# `genofed-site approve` step. Real policies name analysts and analyses.
[[policy.auto_approve]]
name = "demo: everything"
analysts = ["*"]
"""


def load_policy(path: Path) -> SitePolicy:
    """Read ``policy.toml``; a missing file is :data:`REFUSE_ALL` (fail closed).

    Every problem of a present file is found before one :class:`ConfigError`
    names them all (each key, what is wrong with it and its fix), so that the
    officer fixes the file in one pass (``genofed-site check`` prints them).
    """
    path = Path(path)
    if not path.exists():
        _log.warning("no policy file at %s: refusing every request", path)
        return REFUSE_ALL
    doc = load_toml(path)
    check_keys(doc, ["policy"], path=path, where="the file", required=["policy"])
    table = doc["policy"]
    if not isinstance(table, dict):
        raise ConfigError(
            "'policy' must be a table ([policy])",
            path=path,
            hint="put the settings under one [policy] header (see genofed-site init's file)",
        )
    problems = Problems(path)
    problems.check(lambda: check_keys(table, _KEYS, path=path, where="[policy]"), None)
    if "version" not in table:
        problems.add(
            ConfigError(
                "missing key 'version' in [policy]",
                path=path,
                hint=f"add version = {POLICY_VERSION} under [policy]",
            )
        )
    version = problems.check(
        lambda: get_typed(table, "version", int, POLICY_VERSION, path=path, where="policy"),
        POLICY_VERSION,
    )
    if version != POLICY_VERSION:
        raise ConfigError(
            f"policy version {version} is not supported (this site agent reads version "
            f"{POLICY_VERSION})",
            path=path,
            hint="upgrade the site agent, or rewrite the file for version 1",
        )
    demo = problems.check(
        lambda: get_typed(table, "demo", bool, False, path=path, where="policy"), False
    )
    analyses = problems.check(lambda: _allowed_analyses(table, path), frozenset[str]())
    cohort = problems.check(
        lambda: _non_negative(table, "min_cohort_size", DEFAULT_MIN_COHORT_SIZE, path),
        DEFAULT_MIN_COHORT_SIZE,
    )
    cell = problems.check(
        lambda: _non_negative(table, "min_cell_count", DEFAULT_MIN_CELL_COUNT, path),
        DEFAULT_MIN_CELL_COUNT,
    )
    trusted: dict[str, bytes] = problems.check(lambda: _trusted_analysts(table, path), {})
    score_rows = problems.check(
        lambda: _positive(table, "min_score_rows", DEFAULT_MIN_SCORE_ROWS, path),
        DEFAULT_MIN_SCORE_ROWS,
    )
    ratio = problems.check(lambda: _weight_ratio(table, path), DEFAULT_MAX_WEIGHT_RATIO)
    no_check: tuple[float | None, float, Path | None] = (None, DEFAULT_MEMBERSHIP_FPR, None)
    membership = problems.check(lambda: _membership(table, path), no_check)
    policy = SitePolicy(
        demo=demo,
        allowed_analyses=analyses,
        trusted_analysts=MappingProxyType(trusted),
        allowed_app_hashes=problems.check(lambda: _app_hashes(table, path), frozenset()),
        allowed_release_modes=problems.check(
            lambda: _release_modes(table, path, demo), frozenset()
        ),
        budget=problems.check(lambda: _budget(table, path), None),
        require_secure_aggregation=problems.check(
            lambda: get_typed(
                table, "require_secure_aggregation", bool, False, path=path, where="policy"
            ),
            False,
        ),
        analysis_bounds=parse_bounds(table, path, analyses, problems),
        auto_approve=parse_auto_approve(table, path, frozenset(trusted), problems),
        audit_sample_sets=problems.check(
            lambda: get_typed(table, "audit_sample_sets", bool, True, path=path, where="policy"),
            True,
        ),
        min_score_rows=score_rows,
        max_weight_ratio=ratio,
        guard_refusals_before_review=problems.check(
            lambda: _non_negative(
                table, "guard_refusals_before_review", DEFAULT_GUARD_REFUSALS, path
            ),
            DEFAULT_GUARD_REFUSALS,
        ),
        guard_max_sets=problems.check(
            lambda: _positive(table, "guard_max_sets", DEFAULT_FAMILY_CAP, path),
            DEFAULT_FAMILY_CAP,
        ),
        guard_max_new_sets=problems.check(
            lambda: _positive(table, "guard_max_new_sets", DEFAULT_OFFER_CAP, path),
            DEFAULT_OFFER_CAP,
        ),
        km_min_grid_step=problems.check(lambda: _grid_step(table, path), 0.0),
        pca_max_directions=problems.check(
            lambda: _positive(table, "pca_max_directions", DEFAULT_PCA_MAX_DIRECTIONS, path),
            DEFAULT_PCA_MAX_DIRECTIONS,
        ),
        min_cohort_size=cohort,
        min_cell_count=cell,
        cohort_columns=problems.check(lambda: _cohort_columns(table, path), None),
        max_membership_power=membership[0],
        membership_fpr=membership[1],
        membership_reference=membership[2],
    )
    problems.raise_any(hint=f"correct each problem above in {path}, then run genofed-site check")
    return policy


#: What ``allowed_analyses`` may name: the analysis kinds, and the variant
#: harmonization round every study starts with.
POLICY_ANALYSES = frozenset(ANALYSIS_KINDS) | {VARIANTS_KIND}


def _allowed_analyses(table: Mapping[str, object], path: Path) -> frozenset[str]:
    analyses = get_typed(table, "allowed_analyses", list, [], path=path, where="policy")
    known = ", ".join(sorted(POLICY_ANALYSES))
    for name in analyses:
        if not isinstance(name, str):
            raise ConfigError(
                f"policy.allowed_analyses must hold strings, not {name!r}",
                path=path,
                hint=f'quote each analysis kind, e.g. allowed_analyses = ["freq", "hardy"]; '
                f"kinds: {known}",
            )
    unknown = [name for name in analyses if name not in POLICY_ANALYSES]
    if unknown:
        raise ConfigError(
            f"policy.allowed_analyses names {', '.join(map(repr, unknown))}, which "
            f"{'are not analysis kinds' if len(unknown) > 1 else 'is not an analysis kind'} "
            "GenoFed knows",
            path=path,
            hint=f"{did_you_mean(unknown, POLICY_ANALYSES)}remove "
            f"{'them' if len(unknown) > 1 else 'it'}, or use a known kind: {known}",
        )
    return frozenset(analyses)


def _cohort_columns(table: Mapping[str, object], path: Path) -> frozenset[str] | None:
    names = get_typed(table, "cohort_columns", list, None, path=path, where="policy")
    if names is None:
        return None
    if not all(isinstance(n, str) and n for n in names):
        raise ConfigError(
            "policy.cohort_columns must be a list of column names",
            path=path,
            hint='e.g. cohort_columns = ["AGE", "SEX"] ([] : no study may filter its cohort)',
        )
    return frozenset(names)


#: Analysis parameters that name phenotype or covariate columns.
COLUMN_PARAMS = ("phenotype", "covariates", "outcome", "time", "event", "group", "target")


def cohort_columns(policy: SitePolicy) -> frozenset[str] | None:
    """The columns a study's ``[cohort]`` may filter on; None: any column of the site's tables.

    ``cohort_columns`` when the policy sets it; otherwise the columns its
    ``[policy.analysis.<kind>]`` bounds allow (``allowed_covariates``,
    ``allowed_phenotype``, ...) when it has any such list; otherwise any.
    """
    if policy.cohort_columns is not None:
        return policy.cohort_columns
    allowed = [
        b.value for b in policy.analysis_bounds if b.op == "allowed" and b.param in COLUMN_PARAMS
    ]
    if not allowed:
        return None
    return frozenset(str(v) for values in allowed for v in values)


def _membership(table: Mapping[str, object], path: Path) -> tuple[float | None, float, Path | None]:
    """``max_membership_power``, ``membership_fpr`` and ``membership_reference``, checked."""
    limit = get_typed(table, "max_membership_power", (int, float), None, path=path, where="policy")
    fpr = get_typed(
        table, "membership_fpr", (int, float), DEFAULT_MEMBERSHIP_FPR, path=path, where="policy"
    )
    if not 0 < fpr < 1:
        raise ConfigError(
            f"policy.membership_fpr must lie strictly between 0 and 1, not {fpr}",
            path=path,
            hint=f"e.g. membership_fpr = {DEFAULT_MEMBERSHIP_FPR} (the default)",
        )
    if limit is not None and not fpr < limit <= 1:
        raise ConfigError(
            f"policy.max_membership_power must lie in (membership_fpr, 1] = ({fpr:g}, 1], "
            f"not {limit}: the test's power is never below its false-positive rate, so a "
            "lower limit would withhold every variant",
            path=path,
            hint=f"e.g. max_membership_power = {DEFAULT_MAX_MEMBERSHIP_POWER} with "
            f"membership_fpr = {DEFAULT_MEMBERSHIP_FPR}; remove the key to turn the check off",
        )
    name = get_typed(table, "membership_reference", str, None, path=path, where="policy")
    reference = None
    if name is not None:
        reference = (path.parent / name) if not Path(name).is_absolute() else Path(name)
        if not reference.is_file():
            raise ConfigError(
                f"policy.membership_reference names {name!r}, and there is no file {reference}",
                path=path,
                hint="give a plink2 --freq .afreq file of a public panel (relative to the "
                "policy file), or remove the key to use the site's own frequencies",
            )
    return (None if limit is None else float(limit), float(fpr), reference)


def _weight_ratio(table: Mapping[str, object], path: Path) -> float:
    ratio = get_typed(
        table, "max_weight_ratio", (int, float), DEFAULT_MAX_WEIGHT_RATIO, path=path, where="policy"
    )
    if not ratio >= 1:
        raise ConfigError(
            f"policy.max_weight_ratio must be >= 1, not {ratio}",
            path=path,
            hint=f"e.g. max_weight_ratio = {DEFAULT_MAX_WEIGHT_RATIO} (the default)",
        )
    return float(ratio)


def _positive(table: Mapping[str, object], key: str, default: int, path: Path) -> int:
    value = int(get_typed(table, key, int, default, path=path, where="policy"))
    if value < 1:
        raise ConfigError(
            f"policy.{key} must be >= 1, not {value}",
            path=path,
            hint=f"e.g. {key} = {default} (the default)",
        )
    return value


def _non_negative(table: Mapping[str, object], key: str, default: int, path: Path) -> int:
    value = int(get_typed(table, key, int, default, path=path, where="policy"))
    if value < 0:
        raise ConfigError(
            f"policy.{key} must be >= 0, not {value}",
            path=path,
            hint=f"e.g. {key} = {default} (the default)",
        )
    return value


def _grid_step(table: Mapping[str, object], path: Path) -> float:
    value = float(get_typed(table, "km_min_grid_step", (int, float), 0, path=path, where="policy"))
    if not value >= 0:
        raise ConfigError(
            f"policy.km_min_grid_step must be >= 0, not {value}",
            path=path,
            hint="km_min_grid_step = 0 counts on the study's own grid",
        )
    return value


def _release_modes(table: Mapping[str, object], path: Path, demo: bool) -> frozenset[str]:
    default = list(RELEASE_MODES) if demo else []
    modes = get_typed(table, "allowed_release_modes", list, default, path=path, where="policy")
    unknown = [mode for mode in modes if mode not in RELEASE_MODES]
    if unknown:
        raise ConfigError(
            f"policy.allowed_release_modes names {', '.join(map(repr, unknown))}, not a "
            "release mode",
            path=path,
            hint=f"{did_you_mean(unknown, RELEASE_MODES)}the release modes are: "
            f"{', '.join(RELEASE_MODES)}",
        )
    return frozenset(modes)


def _budget(table: Mapping[str, object], path: Path) -> Budget | None:
    if "budget" not in table:
        return None
    sub = table["budget"]
    if not isinstance(sub, dict):
        raise ConfigError(
            "policy.budget must be a table ([policy.budget])",
            path=path,
            hint="write the budget as its own table: [policy.budget] then epsilon = 3.0",
        )
    check_keys(sub, _BUDGET_KEYS, path=path, where="[policy.budget]", required=("epsilon",))
    epsilon = get_typed(sub, "epsilon", (int, float), None, path=path, where="policy.budget")
    delta = get_typed(sub, "delta", (int, float), 1e-6, path=path, where="policy.budget")
    period = get_typed(sub, "period", str, "year", path=path, where="policy.budget")
    if not epsilon > 0:
        raise ConfigError(
            f"policy.budget.epsilon must be > 0, not {epsilon}",
            path=path,
            hint="e.g. epsilon = 3.0 (the privacy loss this site accepts per period)",
        )
    if not 0 < delta < 1e-2:
        raise ConfigError(
            f"policy.budget.delta must lie in (0, 0.01), not {delta}",
            path=path,
            hint="e.g. delta = 1e-6",
        )
    if period not in PERIODS:
        raise ConfigError(
            f"policy.budget.period must be one of {PERIODS}, not {period!r}",
            path=path,
            hint=f"use one of: {', '.join(PERIODS)}",
        )
    return Budget(epsilon=float(epsilon), delta=float(delta), period=period)


def check_release_mode(policy: SitePolicy, mode: str) -> None:
    """Refuse a study whose release mode the policy does not allow."""
    if mode not in policy.allowed_release_modes:
        raise PolicyRefusal(
            RELEASE_MODE_NOT_ALLOWED,
            f"this site does not release in mode {mode!r} "
            f"(it allows: {', '.join(sorted(policy.allowed_release_modes)) or 'none'})",
        )
    if mode in ("dp", "distributed-dp") and policy.budget is None:
        raise PolicyRefusal(NO_BUDGET, f"this site has no privacy budget for {mode} releases")


def _app_hashes(table: Mapping[str, object], path: Path) -> frozenset[str]:
    hashes = get_typed(table, "allowed_app_hashes", list, [], path=path, where="policy")
    for h in hashes:
        if not (isinstance(h, str) and _SHA256_HEX.match(h)):
            raise ConfigError(
                f"policy.allowed_app_hashes must hold SHA-256 hex digests, not {h!r}",
                path=path,
                hint="`genofed-site app-hash` prints the hash of the installed GenoFed app",
            )
    return frozenset(hashes)


def check_app_bundle(policy: SitePolicy, fab_hash: str) -> None:
    """Raise :class:`PolicyRefusal` unless ``policy`` allows the app bundle ``fab_hash``."""
    if fab_hash.lower() not in policy.allowed_app_hashes:
        raise PolicyRefusal(
            APP_NOT_ALLOWED,
            f"app bundle {fab_hash[:16]} is not in this site's allowed_app_hashes",
        )


def _trusted_analysts(table: Mapping[str, object], path: Path) -> dict[str, bytes]:
    entries = get_typed(table, "trusted_analysts", list, [], path=path, where="policy")
    trusted: dict[str, bytes] = {}
    for number, entry in enumerate(entries, start=1):
        where = f"[[policy.trusted_analysts]] #{number}"
        if not isinstance(entry, dict):
            raise ConfigError(
                f"{where} must be a table",
                path=path,
                hint='write [[policy.trusted_analysts]] then name = "..." and public_key = "..."',
            )
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
            raise ConfigError(
                f"{where}: analyst {name!r} is listed twice",
                path=path,
                hint="keep one [[policy.trusted_analysts]] table per analyst",
            )
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
            UNSIGNED_STUDY,
            "this site accepts only studies signed by a trusted analyst "
            "(genofed study sign study.toml --key KEY)",
        )
    return None


def check_study(policy: SitePolicy, study: Study) -> None:
    """Raise :class:`PolicyRefusal` unless the policy allows the study as a whole.

    Every analysis must be allowed and within the policy's parameter bounds,
    and the release mode allowed; with ``require_secure_aggregation`` a plain
    release (exact per-site sums) is refused: ``exact`` releases the same
    sums through SecAgg+ (:mod:`genofed.site_agent.requests.secure_counts`).
    """
    for spec in study.analyses:
        if spec.kind not in policy.allowed_analyses:
            raise PolicyRefusal(
                ANALYSIS_NOT_ALLOWED,
                f"analysis {spec.kind!r} is not in this site's allowed_analyses",
            )
    if study.qc is not None and QC_POLICY_KIND not in policy.allowed_analyses:
        raise PolicyRefusal(
            ANALYSIS_NOT_ALLOWED,
            f"the study's [qc] is computed from the genotype counts that {QC_POLICY_KIND!r} "
            f"releases, and {QC_POLICY_KIND!r} is not in this site's allowed_analyses",
        )
    check_release_mode(policy, study.privacy.mode)
    if policy.require_secure_aggregation and study.privacy.mode == "plain":
        raise PolicyRefusal(
            SECURE_AGGREGATION_REQUIRED,
            "this site releases exact sums only under secure aggregation: ask for "
            '[privacy] mode = "exact" (SecAgg+ sums over >= 3 sites), or "dp"',
        )
    check_bounds(policy.analysis_bounds, study)
    if study.cohort is not None:
        allowed = cohort_columns(policy)
        used = _analysis_columns(study)
        refused = [c for c in study.cohort.columns if allowed is not None and c not in allowed]
        # Requiring a value in a column an analysis of the study uses anyway keeps the
        # people that analysis keeps: it needs no cohort_columns entry.
        refused += [
            c
            for c in study.cohort.require
            if allowed is not None and c not in allowed and c not in used
        ]
        if refused:
            listed = ", ".join(sorted(allowed or ())) or "(none)"
            raise PolicyRefusal(
                COHORT_COLUMN_NOT_ALLOWED,
                f"the study's [cohort] filters on {refused[0]!r}, which this site's policy "
                f"does not allow a cohort to use; the columns it allows: {listed}",
            )


def _analysis_columns(study: Study) -> frozenset[str]:
    """The table columns the study's analyses name (phenotype, covariates, time, ...)."""
    names: set[str] = set()
    for spec in study.analyses:
        for param in COLUMN_PARAMS:
            value = spec.params.get(param)
            if isinstance(value, str):
                names.add(value)
            elif isinstance(value, (list, tuple)):
                names.update(v for v in value if isinstance(v, str))
    return frozenset(names)


def auto_approval_rule(policy: SitePolicy, study: Study, analyst: str | None) -> str | None:
    """The name of the policy's first auto-approval rule that approves the study, or None."""
    return matching_rule(policy.auto_approve, study, analyst)


def check_request(policy: SitePolicy, *, kind: str, signed: bool, n_samples: int) -> None:
    """Raise :class:`PolicyRefusal` unless ``policy`` allows this request.

    The messages go back to the coordinator, so they never state the site's
    exact cohort size.
    """
    if kind not in policy.allowed_analyses:
        raise PolicyRefusal(
            ANALYSIS_NOT_ALLOWED,
            f"analysis {kind!r} is not in this site's allowed_analyses",
        )
    if not signed and not policy.demo:
        raise PolicyRefusal(
            UNSIGNED_STUDY,
            "this site accepts only studies signed by a trusted analyst "
            "(genofed study sign study.toml --key KEY)",
        )
    check_cohort_size(policy, n_samples)


def check_cohort_size(policy: SitePolicy, n_samples: int) -> None:
    """Refuse when the site's cohort is below the policy's minimum (without saying its size)."""
    if n_samples < policy.min_cohort_size:
        raise PolicyRefusal(
            COHORT_TOO_SMALL,
            f"the cohort at this site is below its minimum of {policy.min_cohort_size} samples",
        )


__all__ = [
    "DEFAULT_MAX_MEMBERSHIP_POWER",
    "DEFAULT_MEMBERSHIP_FPR",
    "DEFAULT_MIN_CELL_COUNT",
    "DEFAULT_MIN_COHORT_SIZE",
    "DEFAULT_POLICY_TOML",
    "DEMO_ANALYSES",
    "DEMO_POLICY_TOML",
    "POLICY_FILE",
    "REFUSE_ALL",
    "SitePolicy",
    "auto_approval_rule",
    "check_app_bundle",
    "check_cohort_size",
    "check_release_mode",
    "check_request",
    "check_study",
    "check_study_signature",
    "cohort_columns",
    "load_policy",
]
