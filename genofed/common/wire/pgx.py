"""What the pharmacogenomics (``pgx``) protocol exchanges, and its study parameters.

Both halves read this module; a privacy officer reads it to know what leaves
the site for a ``pgx`` analysis. Allele definitions and phenotype rules are
the site's own shipped tables (PyPGx 0.27.0, see
``genofed/site_agent/pgx_data/SOURCE.md``); the request carries none.

``pgx_counts`` (one round), per gene ``G`` of the study (``O`` = 3 outcome
columns: outcome 0, outcome 1, outcome missing or not asked)::

    G.diplotype            str   (k,)     diplotypes called at this site, but those withheld
    G.diplotype_counts     int64 (k, O)   samples per diplotype and outcome
    G.diplotype_rows_withheld int64 (1,)  how many diplotype rows were withheld (a cell in
                                          [1, min_cell_count)): neither their names nor
                                          their counts leave
    G.phenotype            str   (p,)     every phenotype of the gene (fixed by the tables)
    G.phenotype_counts     int64 (p, O)
    G.phenotype_withheld   bool  (p,)     rows withheld (sent as zeros)
    G.not_called           int64 (3, O)   not called: missing call, unexplained, ambiguous
    G.not_called_withheld  bool  (3,)

``pgx_glm_stats`` and ``pgx_logistic`` fit ``outcome ~ 1 + x + covariates``
with ``x`` = 1 when the sample's ``test_gene`` phenotype is
``test_phenotype`` (samples with the outcome, every covariate and a called
``test_gene``), as ``prs_stats`` / ``prs_logistic`` do for the score (the
arrays of :mod:`genofed.common.wire.glm`, for one row).
"""

from __future__ import annotations

from typing import Any, Final

from genofed.common.errors import ParamError

PGX_COUNTS_KIND: Final = "pgx_counts"
PGX_GLM_STATS_KIND: Final = "pgx_glm_stats"
PGX_LOGISTIC_KIND: Final = "pgx_logistic"
PGX_REQUEST_KINDS: Final = frozenset({PGX_COUNTS_KIND, PGX_GLM_STATS_KIND, PGX_LOGISTIC_KIND})

#: Genes with shipped tables (the site's ``pgx_tables.GENES``), and builds.
PGX_GENES: Final = ("CYP2C19", "CYP2C9", "VKORC1", "SLCO1B1", "DPYD", "TPMT")
PGX_BUILDS: Final = ("GRCh37", "GRCh38")
NOT_CALLED_REASONS: Final = ("missing call", "unexplained genotype", "ambiguous phase")
OUTCOME_COLUMNS: Final = ("outcome 0", "outcome 1", "no outcome")


def check_pgx(params: dict[str, Any]) -> dict[str, Any]:
    """Check a ``pgx`` analysis's parameters together (raises ``ParamError``)."""
    genes = list(params["genes"]) or list(PGX_GENES)
    unknown = [g for g in genes if g not in PGX_GENES]
    if unknown or len(set(genes)) != len(genes):
        raise ParamError(
            f"genes must be distinct names among {', '.join(PGX_GENES)}, not {genes}",
            'e.g. genes = ["CYP2C19", "CYP2C9"]',
        )
    if params["build"] not in PGX_BUILDS:
        raise ParamError(f"build must be one of {PGX_BUILDS}, not {params['build']!r}")
    covariates = params["covariates"]
    if not all(isinstance(c, str) and c for c in covariates) or len(set(covariates)) != len(
        covariates
    ):
        raise ParamError("covariates must be distinct column names", 'e.g. ["AGE", "SEX"]')
    if params["outcome"]:
        if params["test_gene"] not in genes:
            raise ParamError(
                f"test_gene {params['test_gene']!r} is not among the study's genes",
                'e.g. test_gene = "CYP2C19"',
            )
        if not params["test_phenotype"]:
            raise ParamError("test_phenotype is empty", 'e.g. test_phenotype = "Poor Metabolizer"')
        if params["outcome"] in covariates:
            raise ParamError("the outcome must not be a covariate")
    elif covariates:
        raise ParamError("covariates apply to the outcome association; name an outcome")
    return {**params, "genes": tuple(genes), "covariates": tuple(covariates)}


__all__ = [
    "NOT_CALLED_REASONS",
    "OUTCOME_COLUMNS",
    "PGX_BUILDS",
    "PGX_COUNTS_KIND",
    "PGX_GENES",
    "PGX_GLM_STATS_KIND",
    "PGX_LOGISTIC_KIND",
    "PGX_REQUEST_KINDS",
    "check_pgx",
]
