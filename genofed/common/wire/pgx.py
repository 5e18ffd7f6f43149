"""What the pharmacogenomics (``pgx``) protocol exchanges, and its study parameters.

Both halves read this module; a privacy officer reads it to know what leaves
the site for a ``pgx`` analysis. Allele definitions and phenotype rules are
the site's own shipped tables (PyPGx 0.27.0, see
``genofed/site_agent/pgx_data/SOURCE.md``); the request carries none.

``pgx_counts`` (one round), per gene ``G`` of the study (``O`` = 3 outcome
columns: outcome 0, outcome 1, outcome missing or not asked)::

    G.allele               str   (a,)     the alleles the tables can call (fixed by the tables)
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

and, in the reply's facts, the labels the coordinator writes the tables with
(the same at every site; JSON lists): ``pgx_G_alleles`` and
``pgx_G_phenotypes``.

``pgx_glm_stats`` and ``pgx_logistic`` fit ``outcome ~ 1 + x + covariates``
with ``x`` = 1 when the sample's ``test_gene`` phenotype is
``test_phenotype`` (samples with the outcome, every covariate and a called
``test_gene``), as ``prs_stats`` / ``prs_logistic`` do for the score (the
arrays of :mod:`genofed.common.wire.glm`, for one row).

Summable forms (:mod:`genofed.common.wire.summable`; the coordinator
receives only their sums over sites). ``pgx_counts``, per gene, with
``D = a (a + 1) / 2`` the gene's possible diplotypes (:func:`diplotype_names`)::

    G.diplotype_counts        int64 (D, O)  the released rows, zero elsewhere
    G.diplotype_sites         int64 (D,)    1 where the site released the row: sums to
                                            the number of sites reporting it
    G.diplotype_rows_withheld int64 (1,)    sums to the rows withheld over all sites
    G.phenotype_counts        int64 (p, O)
    G.phenotype_withheld      int64 (p,)    0/1: sums to the sites withholding the row
    G.not_called              int64 (3, O)
    G.not_called_withheld     int64 (3,)

``pgx_glm_stats``: ``gz``, ``gg``, ``zz`` as sent; ``pgx_logistic``:
``grad``, ``hess``, ``loglik``, ``third`` as sent, of the shapes the
request's ``beta`` and ``firth`` fix.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import numpy as np

from genofed.common.errors import ParamError
from genofed.common.wire.checked import checked_array
from genofed.common.wire.glm import multisets

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


def diplotype_names(alleles: Sequence[str]) -> tuple[str, ...]:
    """Every diplotype ``A/B`` of a gene's alleles, ``A`` at or before ``B`` in table order."""
    n = len(alleles)
    return tuple(f"{alleles[i]}/{alleles[j]}" for i in range(n) for j in range(i, n))


def _counts_form(
    reply: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """One site's ``pgx_counts`` tables, dense over every diplotype the tables can name."""
    genes = [name.removesuffix(".allele") for name in reply if name.endswith(".allele")]
    if not genes:
        raise ValueError("the reply has no gene's alleles (G.allele)")
    out: dict[str, np.ndarray] = {}
    o = len(OUTCOME_COLUMNS)
    for g in genes:
        alleles = reply[f"{g}.allele"]
        if alleles.ndim != 1 or alleles.dtype.kind != "U":
            raise ValueError(f"{g}.allele must be a list of names")
        where = {name: i for i, name in enumerate(diplotype_names(alleles.tolist()))}
        labels = reply.get(f"{g}.diplotype")
        if labels is None or labels.ndim != 1 or (labels.size and labels.dtype.kind != "U"):
            raise ValueError(f"{g}.diplotype must be a list of names")
        counts = checked_array(reply, f"{g}.diplotype_counts", (len(labels), o), "iu")
        unknown = sorted(set(labels.tolist()) - set(where))
        if unknown:
            raise ValueError(f"{g}.diplotype names {unknown[:3]}, not diplotypes of {g}.allele")
        rows = np.array([where[x] for x in labels.tolist()], dtype=np.int64)
        if len(np.unique(rows)) != len(rows):
            raise ValueError(f"{g}.diplotype names a diplotype twice")
        dense = np.zeros((len(where), o), dtype=np.int64)
        dense[rows] = counts
        reported = np.zeros(len(where), dtype=np.int64)
        reported[rows] = 1
        out[f"{g}.diplotype_counts"] = dense
        out[f"{g}.diplotype_sites"] = reported
        out[f"{g}.diplotype_rows_withheld"] = checked_array(
            reply, f"{g}.diplotype_rows_withheld", (1,), "iu"
        ).astype(np.int64)
        phenotypes = reply.get(f"{g}.phenotype")
        if phenotypes is None or phenotypes.ndim != 1:
            raise ValueError(f"{g}.phenotype must be a list of names")
        p = len(phenotypes)
        for name, shape in (
            ("phenotype_counts", (p, o)),
            ("phenotype_withheld", (p,)),
            ("not_called", (len(NOT_CALLED_REASONS), o)),
            ("not_called_withheld", (len(NOT_CALLED_REASONS),)),
        ):
            out[f"{g}.{name}"] = checked_array(reply, f"{g}.{name}", shape, "biu").astype(np.int64)
    return out


def _as_sent(
    reply: Mapping[str, np.ndarray], shapes: Mapping[str, tuple[int, ...]]
) -> dict[str, np.ndarray]:
    return {n: checked_array(reply, n, sh, "f").astype(np.float64) for n, sh in shapes.items()}


def _glm_stats_form(
    reply: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """``gz`` (q,), ``gg`` (1,), ``zz`` (q (q + 1) / 2,): summed as sent."""
    gz = reply.get("gz")
    if gz is None or gz.ndim != 1:
        raise ValueError("gz is missing or is not a vector")
    q = len(gz)
    return _as_sent(reply, {"gz": (q,), "gg": (1,), "zz": (len(multisets(q, 2)),)})


def _logistic_form(
    reply: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """``grad``, ``hess``, ``loglik``, ``third`` for the request's betas: summed as sent."""
    beta, firth = inputs.get("beta"), inputs.get("firth")
    if beta is None or firth is None or beta.ndim != 2 or firth.ndim != 1:
        raise ValueError("the request's beta and firth are malformed")
    p, f = beta.shape[1], int(np.count_nonzero(firth))
    return _as_sent(reply, logistic_shapes(p, f))


def logistic_shapes(p: int, firth: int) -> dict[str, tuple[int, ...]]:
    """The ``pgx_logistic`` arrays' shapes for ``p`` predictors and ``firth`` Firth rows."""
    return {
        "grad": (1, p),
        "hess": (1, len(multisets(p, 2))),
        "loglik": (1,),
        "third": (firth, len(multisets(p, 3))),
    }


#: Request kind -> its summable form (:mod:`genofed.common.wire.summable`).
SUMMABLE_FORMS: Final[
    Mapping[
        str, Callable[[Mapping[str, np.ndarray], Mapping[str, np.ndarray]], dict[str, np.ndarray]]
    ]
] = {
    PGX_COUNTS_KIND: _counts_form,
    PGX_GLM_STATS_KIND: _glm_stats_form,
    PGX_LOGISTIC_KIND: _logistic_form,
}


__all__ = [
    "NOT_CALLED_REASONS",
    "OUTCOME_COLUMNS",
    "PGX_BUILDS",
    "PGX_COUNTS_KIND",
    "PGX_GENES",
    "PGX_GLM_STATS_KIND",
    "PGX_LOGISTIC_KIND",
    "PGX_REQUEST_KINDS",
    "SUMMABLE_FORMS",
    "check_pgx",
    "diplotype_names",
    "logistic_shapes",
]
