"""The rounds of one pharmacogenomics (``pgx``) analysis, as the coordinator drives them.

1. ``pgx_counts``: every site calls the study's genes with its shipped
   tables and returns diplotype, phenotype and not-called tables by outcome
   (:mod:`genofed.common.wire.pgx`); the coordinator receives their sum
   over sites and tests phenotype against outcome (2 x k chi-square;
   Fisher's exact test of the test phenotype against the rest).
2. With an outcome: ``pgx_glm_stats`` then ``pgx_logistic`` rounds fit
   ``outcome ~ 1 + [test phenotype] + covariates`` with the glm machinery
   (Newton, Firth fallback) and report its odds ratio with a 95 % Wald CI.

Every round asks for the sum over sites of the replies' summable forms
(``ask_sum``): in ``plain`` mode the coordinator adds them up, in ``exact``
mode SecAgg+ does, and the coordinator never holds a site's own counts or
sums. The tables' labels come from the sites' facts (the shipped tables'
allele and phenotype names, the same at every site).

Writes ``pgx.diplotypes.tsv``, ``pgx.phenotypes.tsv`` and ``pgx.summary.json``
(``pgx.<id>.*`` when the analysis id is not ``pgx``). A site withholds a
small diplotype row with its name, so a pooled diplotype count sums the
sites that reported it (``SITES_REPORTING``; the summary says how many rows
the sites withheld in all); phenotype rows have fixed names and are marked
(``WITHHELD_AT_SITES``, counts ``NA``). ``called`` counts the samples in
released phenotype rows.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path

from scipy import stats

from genofed.common.errors import GenoFedError, SiteFailure
from genofed.common.reasons import BAD_REPLY
from genofed.common.study import AnalysisSpec
from genofed.common.wire.glm import multisets
from genofed.common.wire.pgx import (
    NOT_CALLED_REASONS,
    OUTCOME_COLUMNS,
    PGX_COUNTS_KIND,
    PGX_GLM_STATS_KIND,
    PGX_LOGISTIC_KIND,
    diplotype_names,
    logistic_shapes,
)
from genofed.coordinator.combine.covariates import SUMMARY_KEY, checked_design
from genofed.coordinator.combine.glm import LogisticFit
from genofed.coordinator.combine.pgx import (
    PooledTable,
    diplotype_table,
    fisher_2x2,
    phenotype_chi2,
    pooled_table,
)
from genofed.coordinator.combine.prs import pooled_gram
from genofed.coordinator.protocols.job import AskSites, AskSum, Pooled
from genofed.coordinator.writers.atomic import atomic_write_text

__all__ = ["run_pgx"]

MAX_LOGISTIC_ROUNDS = 15 + 25 * 6 + 2

log = logging.getLogger("genofed.coordinator")


def _names(pooled: Pooled, gene: str, what: str) -> list[str]:
    """The fact ``pgx_<gene>_<what>`` (a JSON list of the tables' names): the same at every site."""
    fact = f"pgx_{gene}_{what}"
    first = pooled.replies[0].facts.get(fact)
    for site, reply in zip(pooled.sites, pooled.replies, strict=True):
        if reply.facts.get(fact) != first:
            raise SiteFailure(
                site,
                BAD_REPLY,
                f"its {gene} {what} differ from {pooled.sites[0]}'s: "
                "are the sites on the same software version?",
            )
    try:
        names = json.loads(first) if first is not None else None
    except json.JSONDecodeError:
        names = None
    if not isinstance(names, list) or not all(isinstance(x, str) for x in names):
        raise SiteFailure(pooled.sites[0], BAD_REPLY, f"fact {fact} is not a list of names")
    return names


def _tables(pooled: Pooled, gene: str) -> tuple[PooledTable, PooledTable, PooledTable]:
    """The pooled diplotype, phenotype and not-called tables of ``gene``."""
    diplotypes = diplotype_names(_names(pooled, gene, "alleles"))
    phenotypes = _names(pooled, gene, "phenotypes")
    d, p, r, o = len(diplotypes), len(phenotypes), len(NOT_CALLED_REASONS), len(OUTCOME_COLUMNS)
    dip = diplotype_table(
        diplotypes,
        pooled.array(f"{gene}.diplotype_counts", (d, o)),
        pooled.array(f"{gene}.diplotype_sites", (d,)),
    )
    phe = pooled_table(
        phenotypes,
        pooled.array(f"{gene}.phenotype_counts", (p, o)),
        pooled.array(f"{gene}.phenotype_withheld", (p,)),
    )
    nc = pooled_table(
        NOT_CALLED_REASONS,
        pooled.array(f"{gene}.not_called", (r, o)),
        pooled.array(f"{gene}.not_called_withheld", (r,)),
    )
    return dip, phe, nc


def _rows(gene: str, table: PooledTable, *, reporting: bool = False) -> list[str]:
    """TSV rows; ``reporting``: the last column counts reporting sites, and nothing is NA."""
    total = int(table.counts.sum())
    out = []
    for label, row, last in zip(
        table.labels, table.counts.tolist(), table.withheld_at.tolist(), strict=True
    ):
        n = sum(row)
        freq = f"{n / total:.6g}" if total else "NA"
        hidden = last and not reporting
        cells = ["NA"] * 5 if hidden else [str(n), freq, *map(str, row)]
        out.append("\t".join([gene, label, *cells, str(last)]))
    return out


def run_pgx(
    spec: AnalysisSpec,
    sites: Sequence[str],
    out_dir: Path,
    ask: AskSites,
    *,
    ask_sum: AskSum,
) -> tuple[list[str], dict[str, object]]:
    """Run one pgx analysis; return the files written and headline numbers.

    ``ask`` is unused: every round is a sum over sites (``ask_sum``).
    """
    pooled = ask_sum(PGX_COUNTS_KIND, spec.id, [{}] * len(sites))
    head = "\t".join(
        [
            "GENE",
            "{}",
            "N",
            "FREQ",
            *(c.upper().replace(" ", "_") for c in OUTCOME_COLUMNS),
            "{}",
        ]
    )
    dip_lines = [head.format("DIPLOTYPE", "SITES_REPORTING")]
    phe_lines = [head.format("PHENOTYPE", "WITHHELD_AT_SITES")]
    genes: dict[str, object] = {}
    tables: dict[str, PooledTable] = {}
    for gene in spec.params["genes"]:
        dip, phe, nc = _tables(pooled, gene)
        tables[gene] = phe
        dip_lines += _rows(gene, dip, reporting=True)
        phe_lines += _rows(gene, phe)
        genes[gene] = {
            "called": int(phe.counts.sum()),
            "not_called": {
                r: int(c) for r, c in zip(nc.labels, nc.counts.sum(axis=1).tolist(), strict=True)
            },
            "phenotype_rows_withheld": int((phe.withheld_at > 0).sum()),
            "diplotype_rows_withheld": int(
                pooled.array(f"{gene}.diplotype_rows_withheld", (1,))[0]
            ),
            "unsupported_alleles": sorted(
                {
                    a
                    for reply in pooled.replies
                    for a in reply.facts.get(f"pgx_{gene}_unsupported", "").split(",")
                    if a
                }
            ),
            "not_assessable": {
                site: reply.facts.get(f"pgx_{gene}_not_assessable", "")
                for site, reply in zip(pooled.sites, pooled.replies, strict=True)
            },
        }
    summary: dict[str, object] = {
        "genes": genes,
        "build": spec.params["build"],
        "tables": "PyPGx 0.27.0 (MIT): PharmVar allele definitions, CPIC phenotypes",
    }
    rounds = 1
    if spec.params["outcome"]:
        test_gene, test = spec.params["test_gene"], spec.params["test_phenotype"]
        assoc: dict[str, object] = {
            "outcome": spec.params["outcome"],
            "gene": test_gene,
            "phenotype": test,
            "chi2_2xk": phenotype_chi2(tables[test_gene]),
            "fisher_2x2": fisher_2x2(tables[test_gene], test),
        }
        fit, extra = _logistic(spec, sites, ask_sum)
        rounds += extra
        assoc["logistic"] = fit
        summary["association"] = assoc
    summary["rounds"] = rounds
    prefix = "pgx" if spec.id == "pgx" else f"pgx.{spec.id}"
    files = [f"{prefix}.diplotypes.tsv", f"{prefix}.phenotypes.tsv", f"{prefix}.summary.json"]
    atomic_write_text(out_dir / files[0], "\n".join(dip_lines) + "\n")
    atomic_write_text(out_dir / files[1], "\n".join(phe_lines) + "\n")
    atomic_write_text(
        out_dir / files[2], json.dumps(summary, indent=2, sort_keys=True, allow_nan=False) + "\n"
    )
    headline: dict[str, object] = {
        f"{g} called": v["called"]  # type: ignore[index]
        for g, v in genes.items()
    }
    if "association" in summary:
        lg = summary["association"]["logistic"]  # type: ignore[index]
        if lg["odds_ratio"] is not None:
            headline["odds_ratio"] = round(lg["odds_ratio"], 4)
            headline["odds_ratio_ci"] = [round(x, 4) for x in lg["odds_ratio_ci"]]
        if "covariates_left_out_constant" in lg:
            headline[SUMMARY_KEY] = ", ".join(lg["covariates_left_out_constant"])
    headline["rounds"] = rounds
    return files, headline


def _logistic(
    spec: AnalysisSpec, sites: Sequence[str], ask_sum: AskSum
) -> tuple[dict[str, object], int]:
    k = len(spec.params["covariates"])
    q = k + 2
    stats_ = ask_sum(PGX_GLM_STATS_KIND, spec.id, [{}] * len(sites))
    gz, gg, zz = (
        stats_.array(n, sh)
        for n, sh in (("gz", (q,)), ("gg", (1,)), ("zz", (len(multisets(q, 2)),)))
    )
    gram = pooled_gram([gz], [gg], [zz], k)
    what = f"pgx analysis {spec.id!r}"
    gram, design, check = checked_design(gram, spec.params["covariates"], linear=False, what=what)
    warning = check.warning(what)
    if warning is not None:
        log.warning("%s", warning)
    fit = LogisticFit(gram, "fallback")
    p = q  # the sites' predictors: every covariate (design keeps the model's)
    rounds = 1
    while (pending := fit.pending()) is not None:
        rounds += 1
        if rounds > MAX_LOGISTIC_ROUNDS:
            raise GenoFedError(
                f"logistic regression did not finish in {MAX_LOGISTIC_ROUNDS} rounds"
            )
        got = ask_sum(
            PGX_LOGISTIC_KIND,
            spec.id,
            [{"beta": design.site_beta(pending.beta), "firth": pending.firth}] * len(sites),
        )
        shapes = logistic_shapes(p, int(pending.firth.sum()))
        pooled = {n: got.array(n, sh) for n, sh in shapes.items()}
        fit.receive(
            pending,
            design.moments(pooled["grad"], 1),
            design.moments(pooled["hess"], 2),
            pooled["loglik"],
            design.moments(pooled["third"], 3),
        )
    result = fit.result()
    beta, se = float(result.beta[0, 0]), float(result.se[0, 0])
    z = stats.norm.ppf(0.975)
    ok = math.isfinite(beta) and math.isfinite(se)
    return {
        "odds_ratio": math.exp(beta) if ok else None,
        "odds_ratio_ci": [math.exp(beta - z * se), math.exp(beta + z * se)] if ok else None,
        "log_odds_ratio": beta if ok else None,
        "se": se if ok else None,
        "p": float(result.p[0, 0]) if ok else None,
        "firth": bool(result.firth[0]),
        "errcode": str(result.errcode[0]),
        "n": int(result.obs_ct[0]),
        "covariates": list(spec.params["covariates"]),
        **({"covariates_left_out_constant": list(check.constant)} if check.constant else {}),
    }, rounds
