"""The site's answers to ``pgx_*`` requests (pharmacogenomics).

For each gene of the study, the site finds the table's variants among its
own (same chromosome and position, same two alleles in either order; the
build's forward strand, so no strand flips), keeps the alleles whose core
variants it genotyped (the others are reported, by name, in the reply's
facts as not assessable here), calls every genotyped sample
(:mod:`genofed.site_agent.stats.pgx`), and releases the frequency tables of
:mod:`genofed.common.wire.pgx` with small cells withheld (rows with a cell
in ``[1, min_cell_count)``, :mod:`genofed.site_agent.privacy.suppression`). The
outcome, when the study names one, is a case/control column of the
phenotype table (1/2 or 0/1; missing allowed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from genofed.common.chromosomes import bare_chrom
from genofed.common.errors import InputError, PolicyRefusal
from genofed.common.reasons import BAD_REQUEST, UNKNOWN_REQUEST
from genofed.common.receipts import GUARD_LEFT_OUT_FACT
from genofed.common.study import AnalysisSpec
from genofed.common.wire.pgx import (
    PGX_COUNTS_KIND,
    PGX_GLM_STATS_KIND,
    PGX_LOGISTIC_KIND,
    PGX_REQUEST_KINDS,
)
from genofed.common.wire.records import NamedArrays
from genofed.site_agent.context import Answer, RequestContext, Server
from genofed.site_agent.io.genotypes import GenotypeFile
from genofed.site_agent.io.pheno import match_samples, read_pheno_table
from genofed.site_agent.privacy.guard import CLINICAL, GENOTYPES
from genofed.site_agent.privacy.suppression import small_cell_rows
from genofed.site_agent.requests.glm import glm_samples
from genofed.site_agent.requests.pgx_tables import GeneDefinition, gene_definition
from genofed.site_agent.sitedir import SITE_CONFIG, SiteConfig
from genofed.site_agent.stats.glm import gram_upper, linear_chunk, logistic_chunk
from genofed.site_agent.stats.pgx import CALLED, call_diplotypes

__all__ = ["SERVER", "serve_pgx"]

PGX_KIND = "pgx"


@dataclass(frozen=True)
class GeneCalls:
    """One gene at this site: the alleles kept, and per genotyped sample the call."""

    definition: GeneDefinition
    keep: np.ndarray  # allele indices kept (into definition.alleles)
    missing_alleles: tuple[str, ...]
    diplotype: np.ndarray  # str per sample ("" when not called)
    phenotype: np.ndarray  # str per sample ("" when not called)
    reason: np.ndarray  # int8 per sample


def gene_calls(bed: GenotypeFile, gene: str, build: str) -> GeneCalls:
    """Call ``gene`` for every genotyped sample."""
    d = gene_definition(gene, build)
    v = bed.variants
    at = {
        (bare_chrom(str(c)), int(p)): (i, str(r).upper(), str(a).upper())
        for i, (c, p, r, a) in enumerate(
            zip(v.chrom.tolist(), v.pos.tolist(), v.ref.tolist(), v.alt.tolist(), strict=True)
        )
    }
    local = np.full(len(d.variants), -1, dtype=np.int64)
    swapped = np.zeros(len(d.variants), dtype=np.bool_)
    for k, (chrom, pos, ref, alt) in enumerate(d.variants):
        hit = at.get((chrom, pos))
        if hit is not None and {hit[1], hit[2]} == {ref, alt}:
            local[k] = hit[0]
            swapped[k] = hit[2] != alt
    have = local >= 0
    keep = np.flatnonzero(~(d.cores[:, ~have] > 0).any(axis=1))
    missing_alleles = tuple(
        d.alleles[i] for i in np.flatnonzero((d.cores[:, ~have] > 0).any(axis=1))
    )
    cols = np.flatnonzero(have)
    n = bed.n_samples
    dosages = np.zeros((n, len(cols)), dtype=np.int8)
    if cols.size:
        for start, chunk in bed.iter_dosages(local[cols]):
            g = chunk.astype(np.int8)
            sw = swapped[cols[start : start + len(chunk)]]
            g[sw] = np.where(g[sw] < 0, g[sw], 2 - g[sw])
            dosages[:, start : start + len(chunk)] = g.T
    calls = call_diplotypes(d.cores[np.ix_(keep, cols)], dosages)
    diplotype = np.full(n, "", dtype=object)
    phenotype = np.full(n, "", dtype=object)
    called = np.flatnonzero(calls.reason == CALLED)
    pairs = np.stack([keep[calls.first[called]], keep[calls.second[called]]], axis=1)
    if called.size:  # name each distinct pair once
        unique, inverse = np.unique(pairs, axis=0, return_inverse=True)
        inverse = np.asarray(inverse).reshape(-1)
        names = np.array([d.diplotype(int(a), int(b)) for a, b in unique], dtype=object)
        kinds = np.array([d.phenotype(int(a), int(b)) for a, b in unique], dtype=object)
        diplotype[called] = names[inverse]
        phenotype[called] = kinds[inverse]
    return GeneCalls(d, keep, missing_alleles, diplotype, phenotype, calls.reason)


def _outcome(config: SiteConfig, bed: GenotypeFile, column: str) -> np.ndarray:
    """Per genotyped sample: 0, 1 or -1 (missing or no outcome asked)."""
    out = np.full(bed.n_samples, -1, dtype=np.int64)
    if not column:
        return out
    if config.phenotypes is None:
        raise InputError(
            "this site has no phenotypes file, which the study's pgx outcome needs",
            path=config.directory / SITE_CONFIG,
            hint='add phenotypes = "FILE" under [data]',
        )
    table = read_pheno_table(config.phenotypes)
    match = match_samples(bed.samples, table)
    values = table.column(column)[match.table_idx[0]]
    levels = set(np.unique(values[~np.isnan(values)]).tolist())
    if levels <= {1.0, 2.0}:
        coded = values - 1.0
    elif levels <= {0.0, 1.0}:
        coded = values
    else:
        raise InputError(
            f"outcome {column!r} is not a case/control column (values other than 1/2 or 0/1)",
            path=table.path,
            hint="code the drug response 2 (event) / 1 (none), or 1 / 0",
        )
    ok = ~np.isnan(coded)
    out[match.genotype_idx[ok]] = coded[ok].astype(np.int64)
    return out


def _table(labels: np.ndarray, outcome: np.ndarray, order: list[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(order)}
    col = np.where(outcome < 0, 2, outcome)
    counts = np.zeros((len(order), 3), dtype=np.int64)
    rows = np.array([index[x] for x in labels.tolist()], dtype=np.int64)
    np.add.at(counts, (rows, col), 1)
    return counts


def serve_pgx(ctx: RequestContext) -> Answer:
    """The counts or regression sums of a pgx request."""
    spec, bed, inputs, request, policy = ctx.analysis, ctx.bed, ctx.inputs, ctx.request, ctx.policy
    config = ctx.site
    facts: dict[str, str] = {}
    build = spec.params["build"]
    if request.kind == PGX_COUNTS_KIND:
        columns = (GENOTYPES, CLINICAL) if spec.params["outcome"] else (GENOTYPES,)
        # every genotyped sample, or an earlier release's samples inside them (the guard)
        served = ctx.guard.align(columns, np.arange(bed.n_samples, dtype=np.int64))
        if len(served) < bed.n_samples:
            facts[GUARD_LEFT_OUT_FACT] = str(bed.n_samples - len(served))
        in_set = np.zeros(bed.n_samples, dtype=np.bool_)
        in_set[served] = True
        for column in columns:
            ctx.declare(column, in_set)
        outcome = _outcome(config, bed, spec.params["outcome"])
        out: NamedArrays = {}
        for gene in spec.params["genes"]:
            calls = gene_calls(bed, gene, build)
            facts[f"pgx_{gene}_not_assessable"] = ",".join(calls.missing_alleles)
            facts[f"pgx_{gene}_unsupported"] = ",".join(calls.definition.unsupported)
            # the labels of the tables' rows, the same at every site (not statistics)
            facts[f"pgx_{gene}_alleles"] = json.dumps(list(calls.definition.alleles))
            called = (calls.reason == CALLED) & in_set
            diplotypes = sorted(set(calls.diplotype[called].tolist()))
            phenotypes = list(calls.definition.phenotypes())
            tables = {
                "diplotype": (
                    diplotypes,
                    _table(calls.diplotype[called], outcome[called], diplotypes),
                ),
                "phenotype": (
                    phenotypes,
                    _table(calls.phenotype[called], outcome[called], phenotypes),
                ),
            }
            facts[f"pgx_{gene}_phenotypes"] = json.dumps(phenotypes)
            labels, counts = tables["diplotype"]
            hidden = small_cell_rows(counts, policy.min_cell_count)
            # a withheld diplotype leaves no trace, not even its name
            out[f"{gene}.allele"] = np.array(calls.definition.alleles, dtype=str)
            out[f"{gene}.diplotype"] = np.array(labels, dtype=str)[~hidden]
            out[f"{gene}.diplotype_counts"] = counts[~hidden]
            out[f"{gene}.diplotype_rows_withheld"] = np.array([hidden.sum()], dtype=np.int64)
            labels, counts = tables["phenotype"]
            hidden = small_cell_rows(counts, policy.min_cell_count)
            out[f"{gene}.phenotype"] = np.array(labels, dtype=str)
            out[f"{gene}.phenotype_counts"] = np.where(hidden[:, None], 0, counts)
            out[f"{gene}.phenotype_withheld"] = hidden
            uncalled = in_set & ~called
            reasons = calls.reason[uncalled].astype(np.int64) - 1
            nc = np.zeros((3, 3), dtype=np.int64)
            np.add.at(nc, (reasons, np.where(outcome[uncalled] < 0, 2, outcome[uncalled])), 1)
            hidden = small_cell_rows(nc, policy.min_cell_count)
            out[f"{gene}.not_called"] = np.where(hidden[:, None], 0, nc)
            out[f"{gene}.not_called_withheld"] = hidden
        return Answer(out, facts)
    if not spec.params["outcome"]:
        raise PolicyRefusal(BAD_REQUEST, "this pgx analysis names no outcome to associate")
    x, covariates, y, rows = _association_samples(config, bed, spec)
    aligned = ctx.guard.align((CLINICAL, GENOTYPES), rows)
    if len(aligned) < len(rows):  # an earlier release's samples, inside this cohort
        facts[GUARD_LEFT_OUT_FACT] = str(len(rows) - len(aligned))
        keep = np.isin(rows, aligned)
        x, covariates, y, rows = x[keep], covariates[keep], y[keep], rows[keep]
    ctx.declare(CLINICAL, rows)
    ctx.declare(GENOTYPES, rows)
    facts["pgx_association_samples"] = str(len(y))
    g = x[None, :]
    none_missing = np.zeros_like(g, dtype=np.bool_)
    if request.kind == PGX_GLM_STATS_KIND:
        design = np.column_stack([np.ones(len(y)), covariates, y])
        chunk = linear_chunk(g, none_missing, design)
        return Answer({"gz": chunk.gz[0], "gg": chunk.gg, "zz": gram_upper(design)}, facts)
    if request.kind == PGX_LOGISTIC_KIND:
        beta, firth = inputs.get("beta"), inputs.get("firth")
        p = covariates.shape[1] + 2
        if (
            beta is None
            or firth is None
            or beta.shape != (1, p)
            or beta.dtype != np.float64
            or firth.shape != (1,)
            or firth.dtype != np.bool_
            or not np.isfinite(beta).all()
        ):
            raise PolicyRefusal(BAD_REQUEST, "the pgx_logistic request's betas are malformed")
        c = logistic_chunk(g, none_missing, covariates, y, beta, firth)
        return Answer({"grad": c.grad, "hess": c.hess, "loglik": c.loglik, "third": c.third}, facts)
    raise PolicyRefusal(UNKNOWN_REQUEST, f"this site does not know request kind {request.kind!r}")


SERVER = Server(
    analyses=frozenset({PGX_KIND}),
    request_kinds=PGX_REQUEST_KINDS,
    modes=frozenset({"plain"}),
    unsupported="pgx analyses release exact counts only",
    serve=serve_pgx,
)


def _association_samples(
    config: SiteConfig, bed: GenotypeFile, spec: AnalysisSpec
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Indicator of the test phenotype, covariates, outcome and .fam rows of the samples."""
    as_glm = AnalysisSpec(
        id=spec.id,
        kind="glm",
        params=MappingProxyType(
            {
                "phenotype": spec.params["outcome"],
                "covariates": spec.params["covariates"],
                "model": "logistic",
                "firth": "fallback",
            }
        ),
    )
    samples = glm_samples(config, bed, as_glm)
    calls = gene_calls(bed, spec.params["test_gene"], spec.params["build"])
    called = (calls.reason == CALLED)[samples.index]
    x = (calls.phenotype[samples.index] == spec.params["test_phenotype"]).astype(np.float64)
    if not called.any():
        raise InputError(
            f"no sample with the outcome has a called {spec.params['test_gene']} diplotype",
            path=config.directory / SITE_CONFIG,
        )
    return x[called], samples.covariates[called], samples.y[called], samples.index[called]
