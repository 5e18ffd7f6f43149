"""The analysis kinds a study may name, with their parameters and defaults.

Both sides read this table: the coordinator to validate a study and decide
how to combine, the site to check a request against its policy. Adding an
analysis means adding its entry here, a local half under
``site_agent/stats/`` and a combine half under ``coordinator/combine/``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of an analysis: its type and its default."""

    kind: type
    default: Any
    help: str


@dataclass(frozen=True)
class AnalysisKind:
    """An analysis a study may list under ``[[analysis]]``."""

    name: str
    summary: str
    params: MappingProxyType[str, ParamSpec]
    outputs: tuple[str, ...]
    #: Checks the parameters together and returns them normalised; raises ParamError.
    check: Callable[[dict[str, Any]], dict[str, Any]] | None = None


class ParamError(ValueError):
    """An analysis's parameters do not make sense together; ``hint`` says what to do."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


def _kind(name: str, summary: str, outputs: tuple[str, ...], **params: ParamSpec) -> AnalysisKind:
    return AnalysisKind(name, summary, MappingProxyType(dict(params)), outputs)


#: ``glm`` regression models and Firth modes (plink2 --glm, its firth-fallback / firth / no-firth).
GLM_MODELS = ("auto", "linear", "logistic")
GLM_FIRTH_MODES = ("fallback", "always", "never")


def _check_glm(params: dict[str, Any]) -> dict[str, Any]:
    phenotype = params["phenotype"]
    if not phenotype:
        raise ParamError(
            "missing key 'phenotype'", 'name the phenotype column, e.g. phenotype = "QPHENO"'
        )
    covariates = params["covariates"]
    if not all(isinstance(c, str) and c for c in covariates):
        raise ParamError(
            "covariates must be a list of column names", 'e.g. covariates = ["AGE", "SEX"]'
        )
    if len(set(covariates)) != len(covariates) or phenotype in covariates:
        raise ParamError(
            "covariates must be distinct and must not include the phenotype",
            "list each covariate column once",
        )
    if params["model"] not in GLM_MODELS:
        raise ParamError(
            f"model must be one of {GLM_MODELS}, not {params['model']!r}",
            '"auto" picks logistic for a case/control phenotype and linear otherwise',
        )
    if params["firth"] not in GLM_FIRTH_MODES:
        raise ParamError(
            f"firth must be one of {GLM_FIRTH_MODES}, not {params['firth']!r}",
            '"fallback" is plink2\'s default (Firth where logistic regression fails)',
        )
    if params["model"] == "linear" and params["firth"] != "fallback":
        raise ParamError(
            "firth applies to logistic regression only",
            'remove firth = ..., or set model = "logistic"',
        )
    return {**params, "covariates": tuple(covariates)}


#: Every analysis kind a study may name, by name.
ANALYSIS_KINDS: MappingProxyType[str, AnalysisKind] = MappingProxyType(
    {
        k.name: k
        for k in (
            _kind("freq", "ALT allele frequencies (plink2 --freq)", ("freq.afreq",)),
            _kind(
                "hardy",
                "Hardy-Weinberg exact test (plink2 --hardy)",
                ("hardy.hardy",),
                midp=ParamSpec(bool, False, "report the mid-p value (plink2 --hardy midp)"),
            ),
            _kind("missing", "variant missingness (plink2 --missing)", ("missing.vmiss",)),
            _kind("gcount", "genotype counts (plink2 --geno-counts)", ("geno.gcount",)),
            AnalysisKind(
                "glm",
                "GWAS: linear or logistic regression with covariates (plink2 --glm)",
                MappingProxyType(
                    {
                        "phenotype": ParamSpec(str, "", "phenotype column"),
                        "covariates": ParamSpec(list, (), "covariate columns, in order"),
                        "model": ParamSpec(str, "auto", "auto, linear or logistic"),
                        "firth": ParamSpec(str, "fallback", "fallback, always or never"),
                    }
                ),
                ("gwas.<PHENOTYPE>.glm.linear", "gwas.<PHENOTYPE>.glm.logistic.hybrid"),
                check=_check_glm,
            ),
        )
    }
)

#: Request kind of the harmonization round that precedes every study.
VARIANTS_KIND = "variants"

#: Analysis kinds whose local half is per-variant genotype counts.
COUNT_KINDS = frozenset({"freq", "hardy", "missing", "gcount"})

#: Analysis kind of the GWAS (multi-round regression protocol, ``coordinator/glm_protocol.py``).
GLM_KIND = "glm"

__all__ = [
    "ANALYSIS_KINDS",
    "COUNT_KINDS",
    "GLM_FIRTH_MODES",
    "GLM_KIND",
    "GLM_MODELS",
    "VARIANTS_KIND",
    "AnalysisKind",
    "ParamError",
    "ParamSpec",
]
