"""A study: the analyst's ``study.toml``, its canonical form and its hash.

The canonical form is UTF-8 JSON with sorted keys, no insignificant
whitespace and every default filled in, so two files that mean the same study
have the same bytes. The SHA-256 of those bytes is the study's identity in
audit logs, ledgers and results.

Study file format (documented for analysts in docs/analyst.md)::

    [study]
    name = "demo"                    # required; letters, digits, . _ -
    description = "..."              # optional
    min_sites = 3                    # optional; default: every site must answer
    on_variant_mismatch = "stop"     # or "intersect"
    nonfounders = false              # true: freq/hardy/maf/hwe count nonfounders too

    [privacy]                        # optional; default mode = "plain"
    mode = "dp"                      # "plain": exact sums; "dp": each site adds noise;
                                     # "exact": sums through SecAgg+ (>= 3 sites);
                                     # "distributed-dp": noise shares under SecAgg+
    epsilon = 1.0                    # dp: privacy loss per site for the whole study
    delta = 1e-6                     # dp: its delta
    noise_shares = 3                 # distributed-dp: each site adds 1/noise_shares of the
                                     # noise variance (docs/decisions/0003-secure-aggregation.md)

    [qc]                             # optional: pooled variant QC (plink2 filters), applied
    maf = 0.01                       # to every later analysis; any of maf, mac, geno, hwe,
    geno = 0.1                       # hwe_midp, hwe_keep_fewhet, hwe_controls, extract,
                                     # exclude
    hwe = 1e-6

    [cohort]                         # optional: every analysis runs on these samples only
    where = ["AGE >= 40", "SEX == 2"]  # (genofed.common.cohort: syntax)
    require = ["QPHENO", "AGE"]      # and a value in each (plink2 --require-pheno/-covar)

    [sample_qc]                      # optional: local sample QC at each site, before any
    mind = 0.1                       # release (plink2 --mind; het_sd: --het F outliers)

    [[analysis]]
    kind = "hardy"                   # see genofed.common.analyses
    id = "hardy"                     # optional; defaults to the kind
    midp = false                     # parameters of the kind
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from genofed.common.analyses import ANALYSIS_KINDS, COUNT_KINDS, ParamError
from genofed.common.cohort import CohortSpec, SampleQCSpec, parse_cohort, parse_sample_qc
from genofed.common.errors import ConfigError, IntegrityError
from genofed.common.tomlconfig import check_keys, get_typed, load_toml
from genofed.common.wire.pca import pc_covariate_problem
from genofed.common.wire.summable import secure_analysis_kinds

#: Schema tag written into every canonical study.
STUDY_SCHEMA = "genofed.study/v1"
#: What to do when sites hold different variants.
MISMATCH_POLICIES = ("stop", "intersect")
DEFAULT_ON_MISMATCH = "stop"

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_STUDY_KEYS = ("name", "description", "min_sites", "on_variant_mismatch", "nonfounders")
_PRIVACY_KEYS = ("mode", "epsilon", "delta", "noise_shares")
#: Release modes a study may ask for (a site's policy says which it allows).
RELEASE_MODES = ("plain", "dp", "exact", "distributed-dp")
#: Modes whose count round is summed with Flower's SecAgg+ (genofed.common.secure_sum).
SECURE_MODES = ("exact", "distributed-dp")
DEFAULT_DELTA = 1e-6
#: Analyses that can run in ``dp`` mode: noised genotype counts, and ``train``, whose
#: DP-SGD noise comes from its own noise_multiplier / target_epsilon (sites refuse a
#: noiseless ``train`` in a dp study).
DP_KINDS = COUNT_KINDS | {"train"}


@dataclass(frozen=True)
class PrivacySpec:
    """How sites release: ``plain`` sums, or ``dp`` with (epsilon, delta) per site."""

    mode: str = "plain"
    epsilon: float | None = None
    delta: float | None = None
    #: distributed-dp: the number of sites' noise shares that make up the target noise
    noise_shares: int | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"mode": self.mode, "epsilon": self.epsilon, "delta": self.delta}
        if self.noise_shares is not None:  # absent otherwise: older studies keep their hash
            doc["noise_shares"] = self.noise_shares
        return doc


#: The ``[qc]`` keys (plink2's --maf, --mac, --geno, --hwe [midp] [keep-fewhet],
#: --extract, --exclude).
QC_KEYS = (
    "maf",
    "mac",
    "geno",
    "hwe",
    "hwe_midp",
    "hwe_keep_fewhet",
    "hwe_controls",
    "extract",
    "exclude",
)


@dataclass(frozen=True)
class QCSpec:
    """The study's pooled variant QC (``[qc]``), as plink2's variant filters.

    Computed once by the coordinator from the pooled genotype counts
    (:mod:`genofed.coordinator.combine.qc`); every later analysis of the
    study runs on the variants it keeps. ``None`` for a rule means it is off.
    """

    maf: float | None = None
    mac: int | None = None
    geno: float | None = None
    hwe: float | None = None
    hwe_midp: bool = False
    hwe_keep_fewhet: bool = False
    #: a case/control phenotype: test HWE in its controls only (PLINK 1.9's --hwe rule on
    #: case/control data); None: every (founder) sample, as plink2 2.0
    hwe_controls: str | None = None
    #: variant IDs to keep (plink2 --extract); None: every variant
    extract: tuple[str, ...] | None = None
    #: variant IDs to drop (plink2 --exclude)
    exclude: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            k: getattr(self, k)
            for k in ("maf", "mac", "geno", "hwe")
            if getattr(self, k) is not None
        }
        if self.hwe is not None:
            doc["hwe_midp"] = self.hwe_midp
            doc["hwe_keep_fewhet"] = self.hwe_keep_fewhet
            if self.hwe_controls is not None:  # absent otherwise: earlier studies keep their hash
                doc["hwe_controls"] = self.hwe_controls
        if self.extract is not None:
            doc["extract"] = list(self.extract)
        if self.exclude:
            doc["exclude"] = list(self.exclude)
        return doc


@dataclass(frozen=True)
class AnalysisSpec:
    """One ``[[analysis]]`` table with its parameters resolved."""

    id: str
    kind: str
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "params": dict(self.params)}


@dataclass(frozen=True)
class Study:
    """A validated study with its defaults filled in."""

    name: str
    analyses: tuple[AnalysisSpec, ...]
    description: str = ""
    min_sites: int | None = None
    on_variant_mismatch: str = DEFAULT_ON_MISMATCH
    #: plink2 --nonfounders: freq, hardy and [qc]'s maf/mac/hwe count every sample, not
    #: only the founders (samples whose .fam/.psam lists no parent)
    nonfounders: bool = False
    privacy: PrivacySpec = PrivacySpec()
    #: pooled variant QC (``[qc]``), or None
    qc: QCSpec | None = None
    #: the samples every analysis runs on (``[cohort]``), or None: every sample
    cohort: CohortSpec | None = None
    #: local sample QC at each site (``[sample_qc]``), or None
    sample_qc: SampleQCSpec | None = None

    def to_json(self) -> dict[str, Any]:
        # "qc", "cohort", "sample_qc" are absent without their tables, so studies without
        # them keep their hash
        return {
            **({"qc": self.qc.to_json()} if self.qc is not None else {}),
            **({"cohort": self.cohort.to_json()} if self.cohort is not None else {}),
            **({"sample_qc": self.sample_qc.to_json()} if self.sample_qc is not None else {}),
            "schema": STUDY_SCHEMA,
            "privacy": self.privacy.to_json(),
            "study": {
                "name": self.name,
                "description": self.description,
                "min_sites": self.min_sites,
                "on_variant_mismatch": self.on_variant_mismatch,
                # absent when false, so that earlier studies keep their hash
                **({"nonfounders": True} if self.nonfounders else {}),
            },
            "analyses": [a.to_json() for a in self.analyses],
        }

    def canonical_json(self) -> bytes:
        """The canonical bytes that are hashed and signed."""
        return json.dumps(
            self.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")

    @property
    def sha256(self) -> str:
        """The study's identity: SHA-256 of the canonical form, lowercase hex."""
        return hashlib.sha256(self.canonical_json()).hexdigest()


def load_study(path: Path) -> Study:
    """Read and validate ``study.toml``; errors name the file and the key."""
    raw = load_toml(path)
    return study_from_mapping(raw, path=path)


def study_from_mapping(raw: Mapping[str, Any], *, path: Path) -> Study:
    """Validate a parsed study file (``path`` is only used in messages)."""
    check_keys(
        raw,
        ("study", "analysis", "privacy", "qc", "cohort", "sample_qc"),
        path=path,
        where="the study file",
        required=("study",),
    )
    head = raw["study"]
    if not isinstance(head, dict):
        raise ConfigError(
            "[study] must be a table",
            path=path,
            hint='start the file with a [study] header, then name = "..." on the next line',
        )
    check_keys(head, _STUDY_KEYS, path=path, where="[study]", required=("name",))
    name = get_typed(head, "name", str, None, path=path, where="study")
    if not _NAME.match(name):
        raise ConfigError(
            f"study.name {name!r} is not a valid name",
            path=path,
            hint="use 1-64 letters, digits, '.', '_' or '-'",
        )
    min_sites = get_typed(head, "min_sites", int, None, path=path, where="study")
    if min_sites is not None and min_sites < 1:
        raise ConfigError(
            f"study.min_sites must be at least 1, not {min_sites}",
            path=path,
            hint="set min_sites to the fewest sites the study may run on, or leave it out "
            "(then every site must answer)",
        )
    mismatch = get_typed(
        head, "on_variant_mismatch", str, DEFAULT_ON_MISMATCH, path=path, where="study"
    )
    if mismatch not in MISMATCH_POLICIES:
        raise ConfigError(
            f"study.on_variant_mismatch must be one of {MISMATCH_POLICIES}, not {mismatch!r}",
            path=path,
            hint='use "stop" (refuse sites that hold different variants) or "intersect" '
            "(run on the variants every site holds)",
        )
    nonfounders = get_typed(head, "nonfounders", bool, False, path=path, where="study")
    tables = raw.get("analysis", [])
    if not isinstance(tables, list) or not tables:
        raise ConfigError(
            "the study lists no analyses",
            path=path,
            hint='add at least one [[analysis]] table, e.g. kind = "freq"',
        )
    analyses = tuple(_analysis(t, i, path) for i, t in enumerate(tables, start=1))
    seen: set[str] = set()
    for a in analyses:
        if a.id in seen:
            raise ConfigError(
                f"two analyses have the id {a.id!r}",
                path=path,
                hint="give each [[analysis]] a unique id = ...",
            )
        seen.add(a.id)
    filters = {tuple(a.params["samples_with"]) for a in analyses if a.kind in COUNT_KINDS}
    if any(not (isinstance(c, str) and c) for f in filters for c in f):
        raise ConfigError(
            "samples_with must be a list of column names",
            path=path,
            hint='e.g. samples_with = ["QPHENO", "AGE", "SEX"]',
        )
    if len(filters) > 1:
        raise ConfigError(
            "the study's count analyses (freq, hardy, missing, gcount) name different "
            "samples_with lists; they are counted in one round over one set of samples",
            path=path,
            hint="give them the same samples_with, or put them in separate studies",
        )
    pc_problem = pc_covariate_problem(analyses)
    if pc_problem is not None:
        raise ConfigError(pc_problem[0], path=path, hint=pc_problem[1])
    privacy = _privacy(raw.get("privacy", {}), path, analyses)
    qc = _qc(raw["qc"], path, analyses, privacy) if "qc" in raw else None
    cohort = parse_cohort(raw["cohort"], path) if "cohort" in raw else None
    sample_qc = parse_sample_qc(raw["sample_qc"], path) if "sample_qc" in raw else None
    return Study(
        name=name,
        description=get_typed(head, "description", str, "", path=path, where="study"),
        min_sites=min_sites,
        on_variant_mismatch=mismatch,
        nonfounders=nonfounders,
        analyses=analyses,
        privacy=privacy,
        qc=qc,
        cohort=cohort,
        sample_qc=sample_qc,
    )


def _qc(table: Any, path: Path, analyses: tuple[AnalysisSpec, ...], privacy: PrivacySpec) -> QCSpec:
    """The ``[qc]`` table: plink2's variant filters on the pooled counts."""
    if not isinstance(table, dict):
        raise ConfigError(
            "[qc] must be a table",
            path=path,
            hint="write it as a table: [qc] then maf = 0.01 on the next line",
        )
    if "hwe_controls_only" in table:
        raise ConfigError(
            "[qc] has no hwe_controls_only: name the case/control phenotype whose controls "
            "the HWE test runs on",
            path=path,
            hint='e.g. hwe_controls = "DISEASE" (or remove it: plink2 2.0 tests every founder)',
        )
    check_keys(table, QC_KEYS, path=path, where="[qc]")
    if not set(table) & {"maf", "mac", "geno", "hwe", "extract", "exclude"}:
        raise ConfigError(
            "[qc] names no filter",
            path=path,
            hint="add at least one of maf, mac, geno, hwe, extract, exclude (e.g. maf = 0.01), "
            "or remove [qc]",
        )
    if privacy.mode in ("dp", "distributed-dp"):
        raise ConfigError(
            f'[qc] is not available with [privacy] mode = "{privacy.mode}": its filters need '
            "the exact pooled counts",
            path=path,
            hint='use mode = "plain" or "exact" for a study with [qc], or remove [qc]',
        )
    if any(a.params.get("samples_with") for a in analyses if a.kind in COUNT_KINDS):
        raise ConfigError(
            "[qc] is computed over every genotyped sample, from the count analyses' round, "
            "but the study's count analyses count only the samples_with samples",
            path=path,
            hint="remove samples_with from the count analyses, or put them in a separate study",
        )

    def number(key: str, hi: float, example: str, *, zero: bool = False) -> float | None:
        """qc.key in (0, hi], [0, hi] with ``zero``, (0, hi) when hi is 1 (hwe)."""
        value = get_typed(table, key, (int, float), None, path=path, where="qc")
        if value is None:
            return None
        above = value >= 0 if zero else value > 0
        if not (above and (value < hi if key == "hwe" else value <= hi)):
            bound = ("[0" if zero else "(0") + f", {hi:g}" + (")" if key == "hwe" else "]")
            raise ConfigError(
                f"qc.{key} must lie in {bound}, not {value}", path=path, hint=f"e.g. {example}"
            )
        return float(value)

    maf = number("maf", 0.5, "maf = 0.01 (drops variants with MAF below 1 %)")
    geno = number(
        "geno", 1.0, "geno = 0.1 (drops variants more than 10 % of samples miss)", zero=True
    )
    hwe = number("hwe", 1.0, "hwe = 1e-6 (drops variants with HWE exact p below 1e-6)")
    mac = get_typed(table, "mac", int, None, path=path, where="qc")
    if mac is not None and mac < 1:
        raise ConfigError(
            f"qc.mac must be at least 1, not {mac}",
            path=path,
            hint="e.g. mac = 5 (drops variants with fewer than 5 minor alleles)",
        )
    midp = get_typed(table, "hwe_midp", bool, False, path=path, where="qc")
    fewhet = get_typed(table, "hwe_keep_fewhet", bool, False, path=path, where="qc")
    if (midp or fewhet) and hwe is None:
        raise ConfigError(
            "qc.hwe_midp and qc.hwe_keep_fewhet modify the HWE filter, but qc.hwe is not set",
            path=path,
            hint="add hwe = 1e-6 (the p-value threshold), or remove them",
        )
    controls = get_typed(table, "hwe_controls", str, None, path=path, where="qc")
    if controls is not None and hwe is None:
        raise ConfigError(
            "qc.hwe_controls names the phenotype whose controls the HWE filter tests, but "
            "qc.hwe is not set",
            path=path,
            hint="add hwe = 1e-6 (the p-value threshold), or remove hwe_controls",
        )
    if controls is not None and not controls:
        raise ConfigError(
            "qc.hwe_controls must name a case/control phenotype",
            path=path,
            hint='e.g. hwe_controls = "DISEASE"',
        )
    if midp and hwe is not None and hwe >= 0.5:
        raise ConfigError(
            f"qc.hwe must be below 0.5 with hwe_midp = true, not {hwe}",
            path=path,
            hint="e.g. hwe = 1e-6",
        )
    lists = {}
    for key in ("extract", "exclude"):
        ids = get_typed(table, key, list, None, path=path, where="qc")
        if ids is not None and not all(isinstance(v, str) and v for v in ids):
            raise ConfigError(
                f"qc.{key} must be a list of variant IDs",
                path=path,
                hint=f'e.g. {key} = ["rs123", "1:320:A:G"] (IDs as in harmonization.tsv)',
            )
        if key == "extract" and ids == []:
            raise ConfigError(
                "qc.extract is empty: it would drop every variant",
                path=path,
                hint="list the variant IDs to keep, or remove extract",
            )
        lists[key] = None if ids is None else tuple(ids)
    return QCSpec(
        maf=maf,
        mac=mac,
        geno=geno,
        hwe=hwe,
        hwe_midp=midp,
        hwe_keep_fewhet=fewhet,
        hwe_controls=controls,
        extract=lists["extract"],
        exclude=lists["exclude"] or (),
    )


def _privacy(table: Any, path: Path, analyses: tuple[AnalysisSpec, ...]) -> PrivacySpec:
    if not isinstance(table, dict):
        raise ConfigError(
            "[privacy] must be a table",
            path=path,
            hint='write it as a table: [privacy] then mode = "dp" on the next line',
        )
    check_keys(table, _PRIVACY_KEYS, path=path, where="[privacy]")
    mode = get_typed(table, "mode", str, "plain", path=path, where="privacy")
    if mode not in RELEASE_MODES:
        raise ConfigError(
            f"privacy.mode must be one of {RELEASE_MODES}, not {mode!r}",
            path=path,
            hint='use mode = "dp" with epsilon = ..., or leave [privacy] out for plain sums',
        )
    if mode in SECURE_MODES:
        return _secure_privacy(table, mode, path, analyses)
    if "noise_shares" in table:
        raise ConfigError(
            'privacy.noise_shares applies only to mode = "distributed-dp"',
            path=path,
            hint='remove noise_shares, or set mode = "distributed-dp"',
        )
    epsilon = get_typed(table, "epsilon", (int, float), None, path=path, where="privacy")
    delta = get_typed(table, "delta", (int, float), None, path=path, where="privacy")
    if mode == "plain":
        if epsilon is not None or delta is not None:
            raise ConfigError(
                'privacy.epsilon and privacy.delta apply only to mode = "dp"',
                path=path,
                hint='add mode = "dp" to [privacy], or remove epsilon and delta',
            )
        return PrivacySpec()
    if epsilon is None or not 0 < epsilon <= 100:
        raise ConfigError(
            'privacy.epsilon must be given for mode = "dp" and lie in (0, 100]',
            path=path,
            hint="e.g. epsilon = 1.0 (the privacy loss each site accepts for this study)",
        )
    not_dp = sorted({a.kind for a in analyses} - DP_KINDS)
    if not_dp:
        raise ConfigError(
            f'mode = "dp" is available for {", ".join(sorted(DP_KINDS))} only, '
            f"not for {', '.join(not_dp)}",
            path=path,
            hint='run those analyses in a separate study without [privacy] mode = "dp"',
        )
    delta = DEFAULT_DELTA if delta is None else delta
    if not 0 < delta < 1e-2:
        raise ConfigError(
            f"privacy.delta must lie in (0, 0.01), not {delta}",
            path=path,
            hint="e.g. delta = 1e-6 (the default)",
        )
    return PrivacySpec(mode=mode, epsilon=float(epsilon), delta=float(delta))


def _secure_privacy(
    table: dict[str, Any], mode: str, path: Path, analyses: tuple[AnalysisSpec, ...]
) -> PrivacySpec:
    """``exact`` (SecAgg+ sums) or ``distributed-dp`` (noise shares under SecAgg+)."""
    # exact: every analysis whose requests all have a summable form; distributed-dp: counts
    available = COUNT_KINDS | secure_analysis_kinds() if mode == "exact" else COUNT_KINDS
    not_available = sorted({a.kind for a in analyses} - available)
    if not_available:
        raise ConfigError(
            f"mode = {mode!r} is available for {', '.join(sorted(available))} only, "
            f"not for {', '.join(not_available)}",
            path=path,
            hint=f"run those analyses in a separate study without [privacy] mode = {mode!r}",
        )
    if mode == "exact":
        extra = sorted(set(table) & {"epsilon", "delta", "noise_shares"})
        if extra:
            raise ConfigError(
                f'privacy.{extra[0]} does not apply to mode = "exact" (no noise is added)',
                path=path,
                hint=f'remove {extra[0]}, or use mode = "dp" for noisy releases',
            )
        return PrivacySpec(mode=mode)
    dp = _privacy(
        {k: v for k, v in table.items() if k != "noise_shares"} | {"mode": "dp"}, path, analyses
    )
    shares = get_typed(table, "noise_shares", int, None, path=path, where="privacy")
    if shares is None or not 1 <= shares <= 1000:
        raise ConfigError(
            'privacy.noise_shares must be given for mode = "distributed-dp" and lie in [1, 1000]',
            path=path,
            hint="e.g. noise_shares = 3: each site adds 1/3 of the target noise variance, and "
            "the target holds while at least 3 sites' shares are in the secure sum",
        )
    return PrivacySpec(mode=mode, epsilon=dp.epsilon, delta=dp.delta, noise_shares=shares)


def _analysis(table: Any, number: int, path: Path) -> AnalysisSpec:
    where = f"[[analysis]] #{number}"
    if not isinstance(table, dict):
        raise ConfigError(
            f"{where} must be a table",
            path=path,
            hint='write each analysis as a table: [[analysis]] then kind = "freq"',
        )
    kind_name = get_typed(table, "kind", str, None, path=path, where=where)
    if kind_name is None:
        raise ConfigError(
            f"missing key 'kind' in {where}",
            path=path,
            hint=f"add kind = ... to {where}; kinds: {', '.join(sorted(ANALYSIS_KINDS))}",
        )
    if kind_name not in ANALYSIS_KINDS:
        raise ConfigError(
            f"unknown analysis kind {kind_name!r} in {where}",
            path=path,
            hint=f"known kinds: {', '.join(sorted(ANALYSIS_KINDS))}",
        )
    kind = ANALYSIS_KINDS[kind_name]
    check_keys(table, ("kind", "id", *kind.params), path=path, where=f"{where} ({kind_name})")
    ident = get_typed(table, "id", str, kind_name, path=path, where=where)
    if not _NAME.match(ident):
        raise ConfigError(
            f"{where}: id {ident!r} is not a valid name",
            path=path,
            hint="use 1-64 letters, digits, '.', '_' or '-'",
        )
    params = {
        key: get_typed(table, key, spec.kind, spec.default, path=path, where=where)
        for key, spec in kind.params.items()
    }
    if kind.check is not None:
        try:
            params = kind.check(params)
        except ParamError as exc:
            raise ConfigError(f"{where} ({kind_name}): {exc}", path=path, hint=exc.hint) from exc
    return AnalysisSpec(id=ident, kind=kind_name, params=MappingProxyType(params))


def study_from_canonical(data: bytes, expected_sha256: str) -> Study:
    """Rebuild a study from its canonical bytes, checking the hash.

    Raises the opaque IntegrityError when the bytes do not hash to the
    expected value or are not the canonical form of a valid study.
    """
    if hashlib.sha256(data).hexdigest() != expected_sha256:
        raise IntegrityError()
    try:
        doc = json.loads(data.decode("utf-8"))
        if doc.get("schema") != STUDY_SCHEMA:
            raise IntegrityError()
        head = {k: v for k, v in doc["study"].items() if v is not None}
        privacy = {k: v for k, v in doc["privacy"].items() if v is not None}
        raw = {
            "study": head,
            "privacy": privacy,
            "analysis": [
                {"kind": a["kind"], "id": a["id"], **a["params"]} for a in doc["analyses"]
            ],
        }
        for table in ("qc", "cohort", "sample_qc"):
            if table in doc:
                raw[table] = doc[table]
        study = study_from_mapping(raw, path=Path("<canonical study>"))
    except (ValueError, KeyError, TypeError, AttributeError, ConfigError) as exc:
        raise IntegrityError() from exc
    if study.canonical_json() != data:
        raise IntegrityError()
    return study


__all__ = [
    "MISMATCH_POLICIES",
    "QC_KEYS",
    "RELEASE_MODES",
    "SECURE_MODES",
    "STUDY_SCHEMA",
    "AnalysisSpec",
    "PrivacySpec",
    "QCSpec",
    "Study",
    "load_study",
    "study_from_canonical",
    "study_from_mapping",
]
