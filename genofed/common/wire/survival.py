"""What the survival analyses (``km``, ``cox``) exchange, and their parameters.

Both halves read this module so that a site and the coordinator agree on
what every released number means; a privacy officer reads it to know what
leaves the site. Event times are sensitive: **no time, event indicator,
covariate or group value of any patient leaves a site**, only the arrays
below.

``km_counts`` (one round per ``km`` analysis; no inputs: the grid and the
groups are in the signed study). With the analyst's grid
``t_1 < ... < t_J`` and ``t_0 = -inf``, for each group ``g`` and grid point
``j``::

    n_risk      int64 (G, J)  samples with time > t_{j-1} (at risk at the start of interval j)
    n_event     int64 (G, J)  events with t_{j-1} < time <= t_j
    suppressed  bool  (G, J)  the site withheld this cell (0 < n_risk < policy min_cell_count)
    merged      bool  (J,)    only from a site whose policy sets km_min_grid_step: grid
                              times it merged into the next kept one (their cells hold 0;
                              the kept times count on the coarser grid; the last is kept)

A withheld cell holds ``SUPPRESSED_VALUE`` (-1) in both count arrays, never
a zero. Because ``n_risk`` only falls along the grid, a group's withheld
cells run from its first small risk set to the point where nobody is left
(an empty risk set is not withheld). Samples with time beyond ``t_J`` are at
risk at every grid point and are never counted as events.

So the curves are Kaplan-Meier estimates at the grid's resolution: they
equal the ordinary estimate on the times rounded up to the grid (an event or
a censoring in ``(t_{j-1}, t_j]`` taken to happen at ``t_j``, and follow-up
beyond ``t_J`` censored there), not on the raw times. A study names the
grid (``grid``), or gives ``horizon`` for :func:`default_grid`, the finest
grid the protocol allows up to that time.

``cox_step`` (one per Newton iteration; input ``beta`` float64 (p,), the
coefficients of the study's covariates in order)::

    loglik  float64 (1,)    the site's log partial likelihood at beta (Efron or Breslow ties)
    grad    float64 (p,)    its gradient
    hess    float64 (p, p)  its Hessian (negative information)

The site is one stratum of a Cox model stratified by site, so the pooled
log partial likelihood, its gradient and its Hessian are the sums of the
sites' (``p`` numbers and a ``p x p`` matrix per round, whatever the
cohort size).

Summable forms (:mod:`genofed.common.wire.summable`; the coordinator
receives only their sums over sites). ``km_counts``, of the shapes the
study fixes (``G`` groups, ``J`` grid times, merged or not)::

    n_risk           int64 (G, J)  released at-risk counts, withheld cells 0; a merged time
                                   holds the site's count at the next time it kept (those at
                                   risk after the last time it kept before), so column ``a``
                                   of a coarser common grid's interval ``(t_{a-1}, t_b]``
                                   sums the sites' at-risk counts at its start
    n_event          int64 (G, J)  released event counts, withheld cells 0
    suppressed       int64 (G, J)  0/1: sums to the number of sites withholding each cell
    suppressed_runs  int64 (G,)    runs of withheld cells along the times the site kept
                                   (0 or 1: a group's withheld cells are one run)
    suppressed_span  int64 (G, J)  1 from the first time of each run up to, not including,
                                   its last: with the runs, gives the cells of any coarser
                                   common grid the sites withheld (:func:`withheld_cells`)
    merged           int64 (J,)    0/1: sums to the number of sites merging each grid time

``cox_step``: ``loglik``, ``grad``, ``hess`` as sent, of the shapes the
request's ``beta`` fixes.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from typing import Any, Final

import numpy as np

from genofed.common.errors import ParamError

KM_KIND: Final = "km"
COX_KIND: Final = "cox"
SURVIVAL_KINDS: Final = frozenset({KM_KIND, COX_KIND})

KM_COUNTS_KIND: Final = "km_counts"
COX_STEP_KIND: Final = "cox_step"
SURVIVAL_REQUEST_KINDS: Final = frozenset({KM_COUNTS_KIND, COX_STEP_KIND})

#: Value of a withheld (suppressed) cell in ``n_risk`` and ``n_event``.
SUPPRESSED_VALUE: Final = -1
#: Ways of handling tied event times in the Cox partial likelihood.
COX_TIES: Final = ("efron", "breslow")
#: Group label of the whole cohort when ``km`` has no ``group``.
ALL_GROUP: Final = "ALL"
#: Largest grid a ``km`` analysis may ask for.
MAX_GRID: Final = 1000


def _column(params: dict[str, Any], key: str, example: str) -> str:
    value = params[key]
    if not value:
        raise ParamError(
            f"missing key {key!r}", f'name the phenotype column, e.g. {key} = "{example}"'
        )
    return str(value)


def _numbers(values: Any, key: str, example: str) -> tuple[float, ...]:
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ParamError(
                f"{key} must be a list of numbers, not {v!r}", f"e.g. {key} = {example}"
            )
        out.append(float(v))
    if any(b <= a for a, b in itertools.pairwise(out)):
        raise ParamError(f"{key} must be strictly increasing", f"e.g. {key} = {example}")
    return tuple(out)


def check_km(params: dict[str, Any]) -> dict[str, Any]:
    """Normalise and check a ``km`` analysis's parameters."""
    time = _column(params, "time", "RFS_DAYS")
    event = _column(params, "event", "RFS_EVENT")
    grid = _numbers(params["grid"], "grid", "[365, 730, 1095]")
    horizon = params["horizon"]
    if horizon < 0:
        raise ParamError(f"horizon must be a time > 0, not {horizon}", "e.g. horizon = 3652")
    if horizon and not grid:
        grid = default_grid(horizon)
    elif horizon and grid != default_grid(horizon):
        raise ParamError(
            "give either grid (the times to count at) or horizon (the finest grid up to it)",
            f"remove one of them; horizon = {horizon} is the grid of {MAX_GRID} equal steps to it",
        )
    if not grid:
        raise ParamError(
            "missing key 'grid': sites release counts only on a time grid the study names",
            "e.g. grid = [180, 365, 730, 1095, 1461, 1826] (in the unit of the time column), "
            f"or horizon = 3652 for the finest grid up to that time ({MAX_GRID} points)",
        )
    if len(grid) > MAX_GRID or grid[0] < 0:
        raise ParamError(f"grid must hold 1 to {MAX_GRID} non-negative times", "coarsen the grid")
    group = str(params["group"])
    cuts = _numbers(params["cuts"], "cuts", "[18, 31]")
    levels = _numbers(params["levels"], "levels", "[1, 2]")
    if group and bool(cuts) == bool(levels):
        raise ParamError(
            f"group = {group!r} needs exactly one of cuts (a score) or levels (a category)",
            "e.g. cuts = [18, 31] for a score, or levels = [1, 2] for SEX",
        )
    if not group and (cuts or levels):
        raise ParamError("cuts and levels need group = COLUMN", 'e.g. group = "RSCORE"')
    if group in (time, event) or time == event:
        raise ParamError("time, event and group must be different columns", "check the names")
    checked = {**params, "grid": grid, "cuts": cuts, "levels": levels}
    if not horizon:
        # not part of a study that names its grid, so such a study's canonical form
        # (and hash) is what it was before horizon existed
        del checked["horizon"]
    return checked


def default_grid(horizon: int) -> tuple[float, ...]:
    """The grid of a ``km`` analysis that gives ``horizon`` instead of ``grid``.

    :data:`MAX_GRID` equal steps up to ``horizon``, ``t_k = horizon * k /
    MAX_GRID``: the finest grid the protocol allows (a site's policy may
    allow fewer points, ``max_grid``, and then refuses the study).
    """
    return tuple(horizon * k / MAX_GRID for k in range(1, MAX_GRID + 1))


def check_cox(params: dict[str, Any]) -> dict[str, Any]:
    """Normalise and check a ``cox`` analysis's parameters."""
    time = _column(params, "time", "RFS_DAYS")
    event = _column(params, "event", "RFS_EVENT")
    covariates = params["covariates"]
    if not covariates or not all(isinstance(c, str) and c for c in covariates):
        raise ParamError(
            "covariates must be a non-empty list of column names",
            'e.g. covariates = ["RSCORE", "AGE", "SEX"]',
        )
    if len(set(covariates)) != len(covariates) or {time, event} & set(covariates):
        raise ParamError(
            "covariates must be distinct and must not include the time or event column",
            "list each covariate column once",
        )
    if params["ties"] not in COX_TIES:
        raise ParamError(
            f"ties must be one of {COX_TIES}, not {params['ties']!r}",
            '"efron" is the default of lifelines and R survival',
        )
    return {**params, "covariates": tuple(covariates)}


def km_group_labels(group: str, cuts: tuple[float, ...], levels: tuple[float, ...]) -> list[str]:
    """Labels of a ``km`` analysis's groups, in the order of the count arrays' rows.

    With cuts ``c_1 < ... < c_m`` a sample with score ``s`` is in group ``i``
    where ``c_i <= s < c_{i+1}`` (``c_0 = -inf``, ``c_{m+1} = inf``).
    """
    if not group:
        return [ALL_GROUP]
    if levels:
        return [f"{group}={_num(v)}" for v in levels]
    edges = [_num(c) for c in cuts]
    labels = [f"{group}<{edges[0]}"]
    labels += [f"{a}<={group}<{b}" for a, b in itertools.pairwise(edges)]
    labels.append(f"{group}>={edges[-1]}")
    return labels


def _num(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _get(
    reply: Mapping[str, np.ndarray], name: str, shape: tuple[int, ...] | None, kinds: str
) -> np.ndarray:
    """``reply[name]``, which must have ``shape`` (any 2-d if None) and a dtype of ``kinds``."""
    got = reply.get(name)
    if got is None:
        raise ValueError(f"{name} is missing")
    if shape is None:
        if got.ndim != 2 or got.dtype.kind not in kinds:
            raise ValueError(
                f"{name} must be a (groups, grid) array, not {got.shape} ({got.dtype})"
            )
    elif got.shape != shape or got.dtype.kind not in kinds:
        raise ValueError(f"{name} must have shape {shape}, not {got.shape} ({got.dtype})")
    return got


def _km_form(
    reply: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """One site's ``km_counts``, dense and summable (layout in the module docstring)."""
    n_risk = _get(reply, "n_risk", None, "iu").astype(np.int64)
    g, j = n_risk.shape
    n_event = _get(reply, "n_event", (g, j), "iu").astype(np.int64)
    suppressed = _get(reply, "suppressed", (g, j), "b")
    merged = _get(reply, "merged", (j,), "b") if "merged" in reply else np.zeros(j, dtype=np.bool_)
    if j == 0 or merged[-1]:
        raise ValueError("km counts need a grid whose last time is kept (merged[-1] False)")
    if (n_risk[suppressed] != SUPPRESSED_VALUE).any() or (
        n_event[suppressed] != SUPPRESSED_VALUE
    ).any():
        raise ValueError(f"withheld km cells must hold {SUPPRESSED_VALUE} in n_risk and n_event")
    shown = ~suppressed
    if (n_risk[shown] < 0).any() or (n_event[shown] < 0).any() or (n_event > n_risk)[shown].any():
        raise ValueError("km counts must be 0 <= events <= at risk")
    if (
        (n_risk[:, merged] != 0).any()
        or (n_event[:, merged] != 0).any()
        or suppressed[:, merged].any()
    ):
        raise ValueError("the cells of merged km grid times must hold 0 and not be withheld")
    risk = np.where(shown, n_risk, 0)
    event = np.where(shown, n_event, 0)
    kept = np.flatnonzero(~merged)
    # each grid time -> the first time at or after it that the site kept
    next_kept = kept[np.searchsorted(kept, np.arange(j))]
    runs = np.zeros(g, dtype=np.int64)
    span = np.zeros((g, j), dtype=np.int64)
    for row in range(g):
        flags = suppressed[row, kept]
        starts = np.flatnonzero(flags & ~np.concatenate([[False], flags[:-1]]))
        ends = np.flatnonzero(flags & ~np.concatenate([flags[1:], [False]]))
        runs[row] = len(starts)
        for a, b in zip(kept[starts], kept[ends], strict=True):
            span[row, a:b] = 1
    return {
        "n_risk": risk[:, next_kept],
        "n_event": event,
        "suppressed": suppressed.astype(np.int64),
        "suppressed_runs": runs,
        "suppressed_span": span,
        "merged": merged.astype(np.int64),
    }


def withheld_cells(runs: np.ndarray, span: np.ndarray, kept: np.ndarray) -> int:
    """The cells the sites withheld on the common grid ``kept``, from the summed km forms.

    A site's run of withheld cells from grid time ``s`` to ``e`` meets one
    common interval more than the common times in ``[s, e)``: the sum over
    sites is ``sum(runs) + sum(span[:, kept])``.
    """
    return int(np.sum(runs) + np.sum(span[:, np.asarray(kept, dtype=np.bool_)]))


def _cox_form(
    reply: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """``loglik`` (1,), ``grad`` (p,), ``hess`` (p, p) for the request's ``beta``: as sent."""
    beta = inputs.get("beta")
    if beta is None or beta.ndim != 1:
        raise ValueError("the request's beta is missing or is not a vector")
    p = len(beta)
    return {
        name: _get(reply, name, shape, "f").astype(np.float64)
        for name, shape in (("loglik", (1,)), ("grad", (p,)), ("hess", (p, p)))
    }


#: Request kind -> its summable form (:mod:`genofed.common.wire.summable`).
SUMMABLE_FORMS: Final[
    Mapping[
        str, Callable[[Mapping[str, np.ndarray], Mapping[str, np.ndarray]], dict[str, np.ndarray]]
    ]
] = {KM_COUNTS_KIND: _km_form, COX_STEP_KIND: _cox_form}


__all__ = [
    "ALL_GROUP",
    "COX_KIND",
    "COX_STEP_KIND",
    "COX_TIES",
    "KM_COUNTS_KIND",
    "KM_KIND",
    "MAX_GRID",
    "SUMMABLE_FORMS",
    "SUPPRESSED_VALUE",
    "SURVIVAL_KINDS",
    "SURVIVAL_REQUEST_KINDS",
    "check_cox",
    "check_km",
    "default_grid",
    "km_group_labels",
    "withheld_cells",
]
