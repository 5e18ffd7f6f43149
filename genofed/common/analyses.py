"""The analysis kinds a study may name, with their parameters and defaults.

Both sides read this table: the coordinator to validate a study and decide
how to combine, the site to check a request against its policy. Adding an
analysis means adding its entry here, a local half under
``site_agent/stats/`` and a combine half under ``coordinator/combine/``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from genofed.common.errors import ParamError
from genofed.common.wire import pca as pca_wire
from genofed.common.wire import pgx as pgx_wire
from genofed.common.wire import prs as prs_wire
from genofed.common.wire import survival as survival_wire
from genofed.common.wire import train as train_wire


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

    def counted(self) -> AnalysisKind:
        """This kind with the count analyses' parameter check."""
        return replace(self, check=_count_params)


def _count_params(params: dict[str, Any]) -> dict[str, Any]:
    """A count analysis's parameters, ``samples_with`` as a tuple (as every list param)."""
    return {**params, "samples_with": tuple(params["samples_with"])}


def _kind(name: str, summary: str, outputs: tuple[str, ...], **params: ParamSpec) -> AnalysisKind:
    return AnalysisKind(name, summary, MappingProxyType(dict(params)), outputs)


#: ``glm`` regression models and Firth modes (plink2 --glm, its firth-fallback / firth / no-firth).
GLM_MODELS = ("auto", "linear", "logistic")
GLM_FIRTH_MODES = ("fallback", "always", "never")
#: What a site does with a variant that 1..min_cell_count-1 analysis samples miss: its
#: missing-call sums would describe those few people.
GLM_FEW_MISSING = ("withhold", "impute", "impute-unreleasable")


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
    if params["few_missing"] not in GLM_FEW_MISSING:
        raise ParamError(
            f"few_missing must be one of {GLM_FEW_MISSING}, not {params['few_missing']!r}",
            '"impute" keeps variants a few samples miss at a site (their calls imputed '
            'there); "impute-unreleasable" also those whose missing calls the site\'s '
            'disclosure guard cannot release; "withhold" (the default) keeps results '
            "equal to plink2",
        )
    if params["model"] == "linear" and params["firth"] != "fallback":
        raise ParamError(
            "firth applies to logistic regression only",
            'remove firth = ..., or set model = "logistic"',
        )
    return {**params, "covariates": tuple(covariates)}


#: The count analyses' sample filter (plink2 --require-pheno / --require-covar): count
#: only the samples with every listed phenotype or covariate column present, e.g. the
#: samples of a GWAS, so that its sums and the counts are over one set.
_SAMPLES_WITH = ParamSpec(
    list, (), "count only samples with these phenotype/covariate columns present"
)

#: Every analysis kind a study may name, by name.
ANALYSIS_KINDS: MappingProxyType[str, AnalysisKind] = MappingProxyType(
    {
        k.name: k
        for k in (
            _kind(
                "freq",
                "ALT allele frequencies (plink2 --freq)",
                ("freq.afreq",),
                samples_with=_SAMPLES_WITH,
            ).counted(),
            _kind(
                "hardy",
                "Hardy-Weinberg exact test (plink2 --hardy)",
                ("hardy.hardy",),
                midp=ParamSpec(bool, False, "report the mid-p value (plink2 --hardy midp)"),
                samples_with=_SAMPLES_WITH,
            ).counted(),
            _kind(
                "missing",
                "variant missingness (plink2 --missing)",
                ("missing.vmiss",),
                samples_with=_SAMPLES_WITH,
            ).counted(),
            _kind(
                "gcount",
                "genotype counts (plink2 --geno-counts)",
                ("geno.gcount",),
                samples_with=_SAMPLES_WITH,
            ).counted(),
            AnalysisKind(
                "glm",
                "GWAS: linear or logistic regression with covariates (plink2 --glm)",
                MappingProxyType(
                    {
                        "phenotype": ParamSpec(str, "", "phenotype column"),
                        "covariates": ParamSpec(list, (), "covariate columns, in order"),
                        "model": ParamSpec(str, "auto", "auto, linear or logistic"),
                        "firth": ParamSpec(str, "fallback", "fallback, always or never"),
                        "few_missing": ParamSpec(
                            str,
                            "withhold",
                            "a site's variant with 1..min_cell_count-1 missing calls "
                            "(or, impute-unreleasable, missing calls the guard cannot "
                            "release): withhold, impute or impute-unreleasable",
                        ),
                    }
                ),
                ("gwas.<PHENOTYPE>.glm.linear", "gwas.<PHENOTYPE>.glm.logistic.hybrid"),
                check=_check_glm,
            ),
            AnalysisKind(
                "pca",
                "population-structure PCA by federated subspace iteration (plink2 --pca)",
                MappingProxyType(
                    {
                        "n_pcs": ParamSpec(int, pca_wire.DEFAULT_N_PCS, "principal components"),
                        "maf": ParamSpec(float, 0.0, "minimum minor allele frequency (--maf)"),
                        "indep_pairwise": ParamSpec(
                            list, (), "[window, step, r2] LD pruning (--indep-pairwise)"
                        ),
                        "variants": ParamSpec(list, (), "variant IDs to use (--extract)"),
                    }
                ),
                ("pca.eigenval", "pca.eigenvec.var"),
                check=pca_wire.check_pca_params,
            ),
            AnalysisKind(
                "km",
                "Kaplan-Meier curves per group on a time grid, with a log-rank test",
                MappingProxyType(
                    {
                        "time": ParamSpec(str, "", "time-to-event column"),
                        "event": ParamSpec(str, "", "event column: 1 event, 0 censored"),
                        "group": ParamSpec(str, "", "grouping column (none: one curve)"),
                        "cuts": ParamSpec(list, (), "cut points of a score group column"),
                        "levels": ParamSpec(list, (), "values of a categorical group column"),
                        "grid": ParamSpec(list, (), "time grid the sites count on"),
                        "horizon": ParamSpec(int, 0, "instead of grid: the finest grid to it"),
                    }
                ),
                ("km.tsv", "logrank.tsv", "km.png"),
                check=survival_wire.check_km,
            ),
            AnalysisKind(
                "cox",
                "Cox proportional hazards stratified by site (federated Newton-Raphson)",
                MappingProxyType(
                    {
                        "time": ParamSpec(str, "", "time-to-event column"),
                        "event": ParamSpec(str, "", "event column: 1 event, 0 censored"),
                        "covariates": ParamSpec(list, (), "covariate columns, in order"),
                        "ties": ParamSpec(str, "efron", "efron or breslow"),
                    }
                ),
                ("cox.tsv",),
                check=survival_wire.check_cox,
            ),
            AnalysisKind(
                "prs",
                "polygenic risk score from a PGS Catalog scoring file (plink2 --score)",
                MappingProxyType(
                    {
                        "scoring_file": ParamSpec(str, "", "PGS Catalog scoring file (format 2)"),
                        "scoring_sha256": ParamSpec(str, "", "SHA-256 the file must have"),
                        "phenotype": ParamSpec(str, "", "phenotype column"),
                        "covariates": ParamSpec(list, (), "covariate columns, in order"),
                        "model": ParamSpec(str, "auto", "auto, linear or logistic"),
                        "n_bins": ParamSpec(int, prs_wire.DEFAULT_N_BINS, "histogram bins"),
                        "thresholds": ParamSpec(
                            int, prs_wire.DEFAULT_THRESHOLDS, "score thresholds for the AUC"
                        ),
                        "calibration_groups": ParamSpec(
                            int, prs_wire.DEFAULT_CALIBRATION_GROUPS, "calibration groups"
                        ),
                        "ambiguous": ParamSpec(str, "keep", "A/T, C/G rows: keep or drop"),
                    }
                ),
                ("prs.summary.json", "prs.histogram.tsv", "prs.calibration.tsv", "prs.png"),
                check=prs_wire.check_prs,
            ),
            AnalysisKind(
                "pgx",
                "pharmacogenomics: star-allele diplotypes, phenotypes, drug-response association",
                MappingProxyType(
                    {
                        "genes": ParamSpec(list, (), "genes (default: all with tables)"),
                        "build": ParamSpec(str, "GRCh38", "genome build of the sites' files"),
                        "outcome": ParamSpec(str, "", "binary drug-response column"),
                        "covariates": ParamSpec(list, (), "covariates of the association"),
                        "test_gene": ParamSpec(str, "CYP2C19", "gene of the tested phenotype"),
                        "test_phenotype": ParamSpec(str, "Poor Metabolizer", "tested phenotype"),
                    }
                ),
                ("pgx.diplotypes.tsv", "pgx.phenotypes.tsv", "pgx.summary.json"),
                check=pgx_wire.check_pgx,
            ),
            AnalysisKind(
                "train",
                "risk model trained by DP-SGD (Opacus) at each site and FedAvg across sites",
                MappingProxyType(
                    {
                        "target": ParamSpec(str, "", "binary (case/control) target column"),
                        "variants": ParamSpec(list, (), "variant IDs whose dosages are features"),
                        "covariates": ParamSpec(list, (), "covariate columns, in order"),
                        "covariate_ranges": ParamSpec(list, (), "public [lo, hi] per covariate"),
                        "model": ParamSpec(str, "logistic", "logistic or mlp"),
                        "hidden_units": ParamSpec(int, 16, "mlp hidden layer width"),
                        "rounds": ParamSpec(int, 10, "FedAvg rounds"),
                        "local_epochs": ParamSpec(int, 1, "epochs per round at each site"),
                        "batch_size": ParamSpec(int, 64, "expected batch size (Poisson)"),
                        "learning_rate": ParamSpec(float, 0.5, "SGD learning rate"),
                        "clipping_norm": ParamSpec(float, 1.0, "per-sample gradient L2 clip"),
                        "noise_multiplier": ParamSpec(
                            float, train_wire.UNSET_NOISE, "DP-SGD noise multiplier (0: none)"
                        ),
                        "target_epsilon": ParamSpec(float, 0.0, "per-site epsilon to calibrate"),
                        "eval_epsilon": ParamSpec(float, 1.0, "epsilon of the noisy evaluation"),
                        "seed": ParamSpec(int, 0, "seed of the initial weights"),
                    }
                ),
                ("model.pt", "train.summary.json", "train.calibration.tsv"),
                check=train_wire.check_train,
            ),
        )
    }
)

#: Request kind of the harmonization round that precedes every study.
VARIANTS_KIND = "variants"

#: Request kind of the one round of per-variant genotype counts that serves every count analysis.
GENOTYPE_COUNTS_KIND = "genotype_counts"

#: Analysis kinds whose local half is per-variant genotype counts.
COUNT_KINDS = frozenset({"freq", "hardy", "missing", "gcount"})
#: Count analyses plink2 computes on founders only (without --nonfounders): ``--freq``,
#: ``--hardy``; ``--missing`` and ``--geno-counts`` count every sample.
FOUNDER_KINDS = frozenset({"freq", "hardy"})
#: ``[qc]`` filters plink2 computes on founders only: ``--maf``, ``--mac``, ``--hwe``.
FOUNDER_QC_KEYS = ("maf", "mac", "hwe")
#: The reply array of founders' genotype counts (sent only where a counted sample is not one).
FOUNDER_COUNTS_ARRAY = "founder_genotype_counts"
#: The reply array of the controls' genotype counts (``[qc] hwe_controls``).
CONTROL_COUNTS_ARRAY = "control_genotype_counts"

#: What a ``genotype_counts`` request's ``analysis_id`` list names when the counts also
#: serve the study's ``[qc]`` (not a valid analysis id, so it never names an analysis).
QC_COUNTS_ID = "[qc]"
#: The count analysis whose release the ``[qc]`` counts are (the same genotype counts):
#: a site's policy must allow it for a study with ``[qc]``.
QC_POLICY_KIND = "gcount"

#: Analysis kind of the GWAS (multi-round regression protocol, ``coordinator/protocols/glm.py``).
GLM_KIND = "glm"

#: Analysis kind of polygenic risk scores (``coordinator/protocols/prs.py``).
PRS_KIND = "prs"

#: Analysis kind of risk-model training (``coordinator/protocols/train.py``).
TRAIN_KIND = train_wire.TRAIN_KIND

#: Analysis kind of pharmacogenomics (``coordinator/protocols/pgx.py``).
PGX_KIND = "pgx"

__all__ = [
    "ANALYSIS_KINDS",
    "CONTROL_COUNTS_ARRAY",
    "COUNT_KINDS",
    "FOUNDER_COUNTS_ARRAY",
    "FOUNDER_KINDS",
    "FOUNDER_QC_KEYS",
    "GENOTYPE_COUNTS_KIND",
    "GLM_FIRTH_MODES",
    "GLM_KIND",
    "GLM_MODELS",
    "PGX_KIND",
    "PRS_KIND",
    "QC_COUNTS_ID",
    "QC_POLICY_KIND",
    "TRAIN_KIND",
    "VARIANTS_KIND",
    "AnalysisKind",
    "ParamError",
    "ParamSpec",
]
