"""The analysis kinds a study may name, with their parameters and defaults.

Both sides read this table: the coordinator to validate a study and decide
how to combine, the site to check a request against its policy. Adding an
analysis means adding its entry here, a local half under
``site_agent/stats/`` and a combine half under ``coordinator/combine/``.
"""

from __future__ import annotations

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


def _kind(name: str, summary: str, outputs: tuple[str, ...], **params: ParamSpec) -> AnalysisKind:
    return AnalysisKind(name, summary, MappingProxyType(dict(params)), outputs)


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
        )
    }
)

#: Request kind of the harmonization round that precedes every study.
VARIANTS_KIND = "variants"

#: Analysis kinds whose local half is per-variant genotype counts.
COUNT_KINDS = frozenset({"freq", "hardy", "missing", "gcount"})

__all__ = [
    "ANALYSIS_KINDS",
    "COUNT_KINDS",
    "VARIANTS_KIND",
    "AnalysisKind",
    "ParamSpec",
]
