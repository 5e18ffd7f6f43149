"""``genotype_counts``: per-variant genotype counts for the count analyses.

One request serves every count analysis of a study (``freq``, ``hardy``,
``missing``, ``gcount``; its ``analysis_id`` names them, comma-separated).
Per study variant it releases the numbers of samples with 0, 1 and 2 copies
of the study's ALT allele and with a missing call, by release mode:

* ``plain``: variants with a nonzero genotype count below the policy's
  ``min_cell_count`` are withheld and marked in a ``suppressed`` array
  (:mod:`genofed.site_agent.privacy.suppression`), and, under the policy's
  ``max_membership_power``, the variants that would let a likelihood-ratio
  test tell members apart too well
  (:mod:`genofed.site_agent.privacy.membership_release`);
* ``dp``: discrete Gaussian noise (OpenDP), charged to the ledger first
  (:mod:`genofed.site_agent.privacy.dp_release`);
* ``exact``, ``distributed-dp``: only masked by Flower's SecAgg+
  (:mod:`.secure_counts`), never in the clear.
"""

from __future__ import annotations

import numpy as np

from genofed.common.analyses import COUNT_KINDS, GENOTYPE_COUNTS_KIND
from genofed.common.errors import InputError
from genofed.common.receipts import GUARD_LEFT_OUT_FACT
from genofed.common.study import RELEASE_MODES, SECURE_MODES
from genofed.site_agent.context import Answer, RequestContext, Server
from genofed.site_agent.io.genotypes import GenotypeFile
from genofed.site_agent.io.pheno import match_samples, read_pheno_table
from genofed.site_agent.privacy.dp_release import plan_counts, release_counts
from genofed.site_agent.privacy.guard import GENOTYPES
from genofed.site_agent.privacy.membership_release import check_variants
from genofed.site_agent.privacy.suppression import (
    GENOTYPE_CELLS,
    SUPPRESSED_ARRAY,
    Suppressed,
    suppress_small_cells,
)
from genofed.site_agent.requests.secure_counts import serve_secure_counts
from genofed.site_agent.sitedir import SITE_CONFIG, SiteConfig
from genofed.site_agent.stats.genotype_counts import MISSING_DOSAGE, flip_counts, genotype_counts


def serve_counts(ctx: RequestContext) -> Answer:
    """The site's genotype counts for the study's variants, released as the mode says.

    The counts are sums over every genotyped sample (the genotype column's
    base set, declared to the disclosure guard). In ``plain`` mode a variant is
    also withheld where its called samples would leave, inside some group of
    people that earlier releases tell apart, 1 to ``min_cell_count - 1`` people
    (:meth:`~genofed.site_agent.privacy.guard.ReleaseGuard.unsafe_variants`).
    """
    columns = tuple(ctx.specs[0].params.get("samples_with", ())) if ctx.specs else ()
    asked = (
        samples_with(ctx.site, ctx.bed, columns)
        if columns
        else np.arange(ctx.bed.n_samples, dtype=np.int64)
    )
    aligned = ctx.guard.align(GENOTYPES, asked)
    counted = None if len(aligned) == ctx.bed.n_samples and not columns else aligned
    ctx.declare(GENOTYPES, aligned)
    left_out = len(asked) - len(aligned)
    if ctx.sealer is not None or ctx.mode in SECURE_MODES:
        answer = serve_secure_counts(ctx, counted)
        if left_out:
            answer.facts[GUARD_LEFT_OUT_FACT] = str(left_out)
        return answer
    index, flip = ctx.variant_plan
    if ctx.mode == "dp":
        ledger = ctx.ledger()
        dp_plan = plan_counts(ctx.study, len(index))
        ledger.check(dp_plan.noise_multiplier)  # refuse before computing anything
    counts = np.zeros((len(index), 4), dtype=np.int64)
    isolating = np.zeros(len(index), dtype=np.bool_)
    rows = np.arange(ctx.bed.n_samples) if counted is None else counted
    for start, dosages in ctx.bed.iter_dosages(index, sample_idx=counted):
        counts[start : start + len(dosages)] = genotype_counts(dosages)
        if ctx.guard.enabled and ctx.mode == "plain":
            isolating[start : start + len(dosages)] = ctx.guard.unsafe_variants(
                GENOTYPES, rows, (dosages == MISSING_DOSAGE).T
            )
    counts = flip_counts(counts, flip)
    if ctx.mode == "dp":
        facts: dict[str, str] = {}
        if left_out:
            facts[GUARD_LEFT_OUT_FACT] = str(left_out)
        noisy, charge = release_counts(ledger, dp_plan, counts, ctx.request, facts)
        return Answer({"genotype_counts": noisy}, facts, charge)
    released = suppress_small_cells(counts, ctx.policy.min_cell_count, GENOTYPE_CELLS)
    if isolating.any():
        released.counts[isolating] = 0
        released = Suppressed(released.counts, released.withheld | isolating)
    checked: dict[str, str] = {}
    if ctx.policy.max_membership_power is not None:
        decision = check_variants(
            ctx.policy, ctx.directory, ctx.bed, rows, counts, released.withheld, index, flip
        )
        released.counts[decision.withheld] = 0
        released = Suppressed(released.counts, released.withheld | decision.withheld)
        checked = decision.facts
    facts = {
        "counted_samples": str(len(rows)),
        "min_cell_count": str(ctx.policy.min_cell_count),
        "suppressed_variants": str(released.n_withheld),
        **({GUARD_LEFT_OUT_FACT: str(left_out)} if left_out else {}),
        **checked,
    }
    return Answer({"genotype_counts": released.counts, SUPPRESSED_ARRAY: released.withheld}, facts)


def samples_with(config: SiteConfig, bed: GenotypeFile, columns: tuple[str, ...]) -> np.ndarray:
    """``.fam`` rows of the samples with every named phenotype or covariate column present."""
    tables = {}
    for key in ("phenotypes", "covariates"):
        path = getattr(config, key)
        if path is not None:
            tables[key] = read_pheno_table(path)
    if not tables:
        raise InputError(
            "the study's count analyses use samples_with, and this site has no phenotype "
            "or covariate file",
            path=config.directory / SITE_CONFIG,
            hint='add phenotypes = "FILE" under [data]',
        )
    keep = np.ones(bed.n_samples, dtype=np.bool_)
    for column in columns:
        owner = next((t for t in tables.values() if column in t.columns), None)
        if owner is None:
            next(iter(tables.values())).column(column)  # raises, naming the file and columns
            raise AssertionError("unreachable")
        match = match_samples(bed.samples, owner)
        present = np.zeros(bed.n_samples, dtype=np.bool_)
        values = owner.column(column)[match.table_idx[0]]
        present[match.genotype_idx[~np.isnan(values)]] = True
        keep &= present
    return np.flatnonzero(keep).astype(np.int64)


SERVER = Server(
    analyses=COUNT_KINDS,
    request_kinds=frozenset({GENOTYPE_COUNTS_KIND}),
    modes=frozenset(RELEASE_MODES),
    unsupported="",
    serve=serve_counts,
    secure=True,
)

__all__ = ["SERVER", "serve_counts"]
