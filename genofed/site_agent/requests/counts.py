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

from genofed.common.analyses import (
    CONTROL_COUNTS_ARRAY,
    COUNT_KINDS,
    FOUNDER_COUNTS_ARRAY,
    FOUNDER_KINDS,
    FOUNDER_QC_KEYS,
    GENOTYPE_COUNTS_KIND,
)
from genofed.common.errors import InputError, PolicyRefusal
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
    left_out = len(asked) - len(aligned)
    founders = founder_rows(ctx, aligned)
    controls = control_rows(ctx, aligned)
    extra = [r for r in (founders, controls) if r is not None]
    if extra and ctx.mode != "plain":
        why = (
            "the study's [qc] tests HWE in controls only"
            if founders is None
            else "this site's sample file lists parents, so plink2 computes --freq, --hardy "
            "and --maf/--mac/--hwe on its founders only"
        )
        raise InputError(
            f"{why}; GenoFed releases those counts beside every sample's in plain mode "
            f"only, not in {ctx.mode!r} mode",
            path=ctx.bed.path,
            hint="set nonfounders = true under [study] (plink2 --nonfounders: count every "
            "sample) and leave out hwe_controls, or run the study with [privacy] mode = "
            '"plain"',
        )
    try:
        ctx.declare(GENOTYPES, aligned, *extra)
    except PolicyRefusal as exc:
        if not extra:
            raise
        raise PolicyRefusal(
            exc.reason_code,
            f"{exc}; the founders' counts (plink2 counts founders only for --freq, --hardy, "
            "--maf, --mac and --hwe) or the controls' (hwe_controls) are sets of this "
            "release too: with nonfounders = true under [study] and no hwe_controls every "
            "table counts every sample",
        ) from exc
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
    founder_counts = control_counts = None
    if founders is not None:
        founder_counts, unsafe = _counts(ctx, founders)
        isolating |= unsafe
    if controls is not None:
        control_counts, unsafe = _counts(ctx, controls)
        isolating |= unsafe
    if ctx.mode == "dp":
        facts: dict[str, str] = {}
        if left_out:
            facts[GUARD_LEFT_OUT_FACT] = str(left_out)
        noisy, charge = release_counts(ledger, dp_plan, counts, ctx.request, facts)
        return Answer({"genotype_counts": noisy}, facts, charge)
    released = suppress_small_cells(counts, ctx.policy.min_cell_count, GENOTYPE_CELLS)
    for table in (founder_counts, control_counts):  # withheld in one table: in every one
        if table is not None:
            isolating |= suppress_small_cells(
                table, ctx.policy.min_cell_count, GENOTYPE_CELLS
            ).withheld
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
    arrays = {"genotype_counts": released.counts, SUPPRESSED_ARRAY: released.withheld}
    for name, table in (
        (FOUNDER_COUNTS_ARRAY, founder_counts),
        (CONTROL_COUNTS_ARRAY, control_counts),
    ):
        if table is not None:
            table[released.withheld] = 0
            arrays[name] = table
    return Answer(arrays, facts)


def control_rows(ctx: RequestContext, counted: np.ndarray) -> np.ndarray | None:
    """The counted (founder) samples that are controls of ``[qc] hwe_controls``, or None.

    Controls are coded 1 (cases 2) or 0 (cases 1), as glm reads a case/control
    phenotype; a sample without a value is not a control.
    """
    qc = ctx.study.qc
    if qc is None or qc.hwe_controls is None:
        return None
    name = qc.hwe_controls
    values = _column(ctx.site, ctx.bed, name)
    present = values[~np.isnan(values)]
    levels = set(np.unique(present).tolist())
    if not levels or not (levels <= {1.0, 2.0} or levels <= {0.0, 1.0}):
        raise InputError(
            f"[qc] hwe_controls names {name!r}, which is not a case/control column here "
            "(values other than 1/2 or 0/1, or none)",
            path=ctx.site.directory / SITE_CONFIG,
            hint="name a case/control phenotype (controls 1, cases 2), or remove hwe_controls",
        )
    # 1/2 coding (1 alone included: plink2's default) makes 1 a control; 0/1 coding, 0
    control = values == (1.0 if levels <= {1.0, 2.0} else 0.0)
    if not ctx.study.nonfounders:
        control &= ctx.bed.samples.founders()
    return counted[control[counted]]


def _column(config: SiteConfig, bed: GenotypeFile, column: str) -> np.ndarray:
    """The named phenotype or covariate column per genotyped sample (NaN: missing)."""
    tables = [read_pheno_table(p) for p in (config.phenotypes, config.covariates) if p is not None]
    owner = next((t for t in tables if column in t.columns), None)
    if owner is None:
        if tables:
            tables[0].column(column)  # raises, naming the file and its columns
        raise InputError(
            f"[qc] hwe_controls names {column!r}, and this site has no phenotype or covariate file",
            path=config.directory / SITE_CONFIG,
            hint='add phenotypes = "FILE" under [data]',
        )
    match = match_samples(bed.samples, owner)
    values = np.full(bed.n_samples, np.nan)
    values[match.genotype_idx] = owner.column(column)[match.table_idx[0]]
    return values


def founder_rows(ctx: RequestContext, counted: np.ndarray) -> np.ndarray | None:
    """The counted samples that are founders, when a table the study asks for needs them.

    plink2 computes ``--freq``, ``--hardy``, ``--maf``, ``--mac`` and ``--hwe``
    on founders only (samples whose sample file lists no parent); None when
    the study counts every sample (``nonfounders = true``), asks for none of
    them, or every counted sample is a founder (one table then serves all).
    """
    study = ctx.study
    if study.nonfounders:
        return None
    kinds = {s.kind for s in ctx.specs}
    qc = study.qc
    wants = bool(kinds & FOUNDER_KINDS) or (
        qc is not None and any(getattr(qc, k) is not None for k in FOUNDER_QC_KEYS)
    )
    if not wants:
        return None
    founder = ctx.bed.samples.founders()
    if founder[counted].all():
        return None
    return counted[founder[counted]]


def _counts(ctx: RequestContext, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Genotype counts over ``rows`` in the study's orientation, and the guard's unsafe variants."""
    index, flip = ctx.variant_plan
    counts = np.zeros((len(index), 4), dtype=np.int64)
    unsafe = np.zeros(len(index), dtype=np.bool_)
    for start, dosages in ctx.bed.iter_dosages(index, sample_idx=rows):
        counts[start : start + len(dosages)] = genotype_counts(dosages)
        if ctx.guard.enabled:
            unsafe[start : start + len(dosages)] = ctx.guard.unsafe_variants(
                GENOTYPES, rows, (dosages == MISSING_DOSAGE).T
            )
    return flip_counts(counts, flip), unsafe


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
