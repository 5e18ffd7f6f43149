"""The site's answers to ``km_counts`` and ``cox_step`` requests (survival analyses).

What leaves the site, exactly (layouts in :mod:`genofed.common.wire.survival`):

* ``km_counts``: per group and point of the study's time grid, the number
  at risk and the number of events, with every cell whose risk set is below
  the policy's ``min_cell_count`` withheld (``-1``, flagged in
  ``suppressed``; an empty risk set is not withheld). No event time, no
  individual row: times are only ever compared with the grid the signed
  study fixes, so the release is the same whatever the exact times inside
  each grid interval.
* ``cox_step``: this site's log partial likelihood, its gradient (``p``
  numbers) and Hessian (``p x p``) at the coefficients the coordinator sent.
  A site with some but fewer than ``min_cell_count`` events refuses (with so
  few events the gradient comes close to describing the patients who had
  them); a site with none releases zeros.

Both refuse studies whose analysis cohort at the site is smaller than
``min_cohort_size``, and both release exact values only (``plain`` mode,
or ``exact`` mode, where the reply leaves the site only in its summable
form, masked by SecAgg+; a ``dp`` study is refused). The analysis samples are the genotyped samples
present in the phenotype table (and the covariate table when a column is
there) with every column the analysis names; time and event come from the
phenotype table, group and covariates from the phenotype table or else the
covariate table. Times must be >= 0 and events 0 (censored) or 1 (event);
anything else stops the analysis with an error naming the file, the line and
the column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from genofed.common.errors import InputError, PolicyRefusal
from genofed.common.reasons import BAD_REQUEST, COHORT_TOO_SMALL, TOO_FEW_EVENTS
from genofed.common.receipts import GUARD_LEFT_OUT_FACT
from genofed.common.study import AnalysisSpec
from genofed.common.wire.records import NamedArrays
from genofed.common.wire.survival import (
    COX_KIND,
    COX_STEP_KIND,
    KM_COUNTS_KIND,
    KM_KIND,
    SUPPRESSED_VALUE,
    SURVIVAL_KINDS,
    SURVIVAL_REQUEST_KINDS,
)
from genofed.site_agent.context import Answer, RequestContext, Server
from genofed.site_agent.io.genotypes import GenotypeFile
from genofed.site_agent.io.pheno import PhenoTable, match_samples, read_pheno_table
from genofed.site_agent.privacy.guard import CLINICAL
from genofed.site_agent.sitedir import SITE_CONFIG, SiteConfig
from genofed.site_agent.stats.survival import (
    cox_derivatives,
    grid_counts,
    suppress_small_risk_sets,
)

_KIND_OF_REQUEST = {KM_COUNTS_KIND: KM_KIND, COX_STEP_KIND: COX_KIND}


@dataclass(frozen=True)
class SurvivalSamples:
    """The analysis samples of one survival analysis at this site."""

    time: np.ndarray  # float64 (n,)
    event: np.ndarray  # bool (n,)
    columns: np.ndarray  # float64 (n, k): the extra columns asked for, in order
    index: np.ndarray | None = None  # int (n,): the samples' .fam rows


def _restricted(samples: SurvivalSamples, keep: np.ndarray) -> SurvivalSamples:
    assert samples.index is not None
    return SurvivalSamples(
        samples.time[keep], samples.event[keep], samples.columns[keep], samples.index[keep]
    )


def serve_survival(ctx: RequestContext) -> Answer:
    """The counts or Cox sums of a survival request."""
    spec, bed, inputs, request, policy = ctx.analysis, ctx.bed, ctx.inputs, ctx.request, ctx.policy
    config = ctx.site
    kind = spec.kind
    facts: dict[str, str] = {}
    extra = _extra_columns(spec)
    samples = survival_samples(config, bed, spec, extra)
    assert samples.index is not None
    aligned = ctx.guard.align(CLINICAL, samples.index)
    if len(aligned) < len(samples.index):  # an earlier release's samples, inside this cohort
        facts[GUARD_LEFT_OUT_FACT] = str(len(samples.index) - len(aligned))
        samples = _restricted(samples, np.isin(samples.index, aligned))
    if len(samples.time) < max(policy.min_cohort_size, 1):
        raise PolicyRefusal(
            COHORT_TOO_SMALL,
            f"the {kind} cohort at this site is below its minimum of "
            f"{policy.min_cohort_size} samples",
        )
    facts[f"{kind}_samples"] = str(len(samples.time))
    # the sums are over the analysis samples and, for a grouped curve, each group
    groups = group_codes(spec, samples.columns) if kind == KM_KIND else np.zeros(0)
    ctx.declare(
        CLINICAL,
        samples.index,
        *(samples.index[groups == g] for g in np.unique(groups[groups >= 0])),
    )
    if request.kind == KM_COUNTS_KIND:
        arrays = _km_counts(spec, samples, policy.min_cell_count, policy.km_min_grid_step)
        if "merged" in arrays:
            facts["km_grid_points_merged"] = str(int(arrays["merged"].sum()))
        return Answer(arrays, facts)
    return Answer(_cox_step(spec, samples, inputs, policy.min_cell_count), facts)


SERVER = Server(
    analyses=SURVIVAL_KINDS,
    request_kinds=SURVIVAL_REQUEST_KINDS,
    modes=frozenset({"plain"}),
    unsupported="{kind} analyses release exact counts or sums only; "
    "this study asks for noisy releases",
    serve=serve_survival,
    analysis_of=_KIND_OF_REQUEST,
)


def _extra_columns(spec: AnalysisSpec) -> tuple[str, ...]:
    if spec.kind == KM_KIND:
        return (spec.params["group"],) if spec.params["group"] else ()
    return tuple(spec.params["covariates"])


def survival_samples(
    config: SiteConfig, bed: GenotypeFile, spec: AnalysisSpec, extra: Sequence[str]
) -> SurvivalSamples:
    """Select the samples with time, event and every ``extra`` column; check the values."""
    if config.phenotypes is None:
        raise InputError(
            f"this site has no phenotypes file, which the study's {spec.kind} analysis needs",
            path=config.directory / SITE_CONFIG,
            hint='add phenotypes = "FILE" under [data]',
        )
    pheno = read_pheno_table(config.phenotypes)
    tables = [pheno]
    sources: list[int] = []
    for name in extra:
        if name in pheno.columns:
            sources.append(0)
            continue
        if config.covariates is None:
            pheno.column(name)  # raises: names the file and lists its columns
        if len(tables) == 1:
            tables.append(read_pheno_table(config.covariates))
        tables[1].column(name)  # raises if absent there too
        sources.append(1)
    match = match_samples(bed.samples, *tables)
    rows = match.table_idx[0]
    time = pheno.column(spec.params["time"])[rows]
    event = pheno.column(spec.params["event"])[rows]
    columns = [tables[s].column(c)[match.table_idx[s]] for s, c in zip(sources, extra, strict=True)]
    values = np.column_stack(columns) if columns else np.zeros((len(rows), 0))
    keep = ~np.isnan(time) & ~np.isnan(event) & ~np.isnan(values).any(axis=1)
    _check_values(pheno, rows, time, keep, spec.params["time"], time < 0, "a negative time")
    bad_event = (event != 0) & (event != 1)
    _check_values(pheno, rows, event, keep, spec.params["event"], bad_event, "not 0 or 1")
    return SurvivalSamples(
        time=np.ascontiguousarray(time[keep]),
        event=np.ascontiguousarray(event[keep] == 1),
        columns=np.ascontiguousarray(values[keep]),
        index=match.genotype_idx[keep],
    )


def _check_values(
    table: PhenoTable,
    rows: np.ndarray,
    values: np.ndarray,
    keep: np.ndarray,
    column: str,
    bad: np.ndarray,
    what: str,
) -> None:
    wrong = np.flatnonzero(keep & bad)
    if not wrong.size:
        return
    hint = (
        "times are durations from the start of follow-up, >= 0"
        if what.startswith("a negative")
        else "code events 1 (event) and censored follow-up 0; missing as NA or -9"
    )
    raise InputError(
        f"column {column!r} has {what} ({wrong.size} row(s) in all)",
        path=table.path,
        line=_line_of(table, int(rows[wrong[0]])),
        hint=hint,
    )


def _line_of(table: PhenoTable, row: int) -> int | None:
    """The file line of data row ``row``, as the table reader counts lines."""
    seen = -1  # the header is the first line that counts
    lines = table.path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields or (seen == -1 and fields[0].startswith("##")):
            continue
        if seen == row:
            return number
        seen += 1
    return None


def group_codes(spec: AnalysisSpec, values: np.ndarray) -> np.ndarray:
    """Group of each sample (row order of the count arrays), -1 for none."""
    if not spec.params["group"]:
        return np.zeros(len(values), dtype=np.int64)
    column = values[:, 0]
    cuts = np.asarray(spec.params["cuts"], dtype=np.float64)
    if cuts.size:
        return np.searchsorted(cuts, column, side="right").astype(np.int64)
    levels = np.asarray(spec.params["levels"], dtype=np.float64)
    codes = np.full(len(column), -1, dtype=np.int64)
    for i, level in enumerate(levels):
        codes[column == level] = i
    return codes


def coarse_points(grid: np.ndarray, step: float) -> np.ndarray:
    """Which grid times a site with ``km_min_grid_step = step`` keeps.

    Walking up the grid, a time is kept when it is at least ``step`` after the
    last kept one (the first is kept when it is at least ``step`` after 0);
    the last time is always kept, and the kept time before it is dropped if
    the two are closer than ``step``. Events and censorings at a dropped time
    count at the next kept one.
    """
    keep = np.zeros(len(grid), dtype=np.bool_)
    last = 0.0
    for j, t in enumerate(grid):
        if t - last >= step:
            keep[j], last = True, float(t)
    keep[-1] = True
    kept = np.flatnonzero(keep)
    if len(kept) > 1 and grid[kept[-1]] - grid[kept[-2]] < step:
        keep[kept[-2]] = False
    return keep


def _km_counts(
    spec: AnalysisSpec, samples: SurvivalSamples, min_cell_count: int, step: float = 0.0
) -> NamedArrays:
    grid = np.asarray(spec.params["grid"], dtype=np.float64)
    codes = group_codes(spec, samples.columns)
    n_groups = (
        len(spec.params["cuts"]) + 1 if spec.params["cuts"] else max(len(spec.params["levels"]), 1)
    )
    keep = coarse_points(grid, step) if step > 0 else np.ones(len(grid), dtype=np.bool_)
    n_risk, n_event = grid_counts(samples.time, samples.event, codes, n_groups, grid[keep])
    n_risk, n_event, mask = suppress_small_risk_sets(
        n_risk, n_event, min_cell_count, SUPPRESSED_VALUE
    )
    if keep.all():
        return {"n_risk": n_risk, "n_event": n_event, "suppressed": mask}
    # back on the study's grid: the merged times hold nothing and are marked
    full = {
        "n_risk": np.zeros((n_groups, len(grid)), dtype=np.int64),
        "n_event": np.zeros((n_groups, len(grid)), dtype=np.int64),
        "suppressed": np.zeros((n_groups, len(grid)), dtype=np.bool_),
    }
    full["n_risk"][:, keep], full["n_event"][:, keep], full["suppressed"][:, keep] = (
        n_risk,
        n_event,
        mask,
    )
    return {**full, "merged": ~keep}


def _cox_step(
    spec: AnalysisSpec, samples: SurvivalSamples, inputs: NamedArrays, min_cell_count: int
) -> NamedArrays:
    p = len(spec.params["covariates"])
    beta = inputs.get("beta")
    if (
        beta is None
        or beta.shape != (p,)
        or beta.dtype != np.float64
        or not np.isfinite(beta).all()
    ):
        raise PolicyRefusal(BAD_REQUEST, f"the cox_step request's beta must be {p} finite floats")
    if 0 < int(samples.event.sum()) < min_cell_count:
        raise PolicyRefusal(
            TOO_FEW_EVENTS,
            f"this site has fewer events than its minimum cell count ({min_cell_count}) "
            "for this Cox model",
        )
    d = cox_derivatives(samples.time, samples.event, samples.columns, beta, spec.params["ties"])
    return {"loglik": np.array([d.loglik]), "grad": d.grad, "hess": d.hess}


__all__ = ["SERVER", "SurvivalSamples", "group_codes", "serve_survival", "survival_samples"]
