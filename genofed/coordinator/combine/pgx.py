"""Combine half of pharmacogenomics: pooled diplotype and phenotype tables, association tests.

* Tables: the sums over sites of the rows (:mod:`genofed.common.wire.pgx`'s
  summable forms), sorted by label (diplotype or phenotype); a row a site
  withheld contributes nothing and is counted in ``withheld_at``, so a pooled
  count with ``withheld_at > 0`` is a lower bound. For diplotypes, whose
  withheld rows leave no trace, ``withheld_at`` counts the sites reporting
  the row instead, and only rows some site reported are kept.
* 2 x k test: phenotype (columns: the phenotypes with a called, released
  sample) by outcome (rows: 0, 1), Pearson chi-square without continuity
  correction (``scipy.stats.chi2_contingency``).
* 2 x 2 test: the test phenotype against every other called phenotype,
  Fisher's exact test (``scipy.stats.fisher_exact``) with its conditional
  odds ratio estimate replaced by the sample odds ratio.

Pure core: arrays in, arrays out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

__all__ = ["PooledTable", "diplotype_table", "fisher_2x2", "phenotype_chi2", "pooled_table"]


@dataclass(frozen=True)
class PooledTable:
    """Labels (sorted), counts (k, 3), sites withholding each row (diplotypes: reporting it)."""

    labels: tuple[str, ...]
    counts: npt.NDArray[np.int64]
    withheld_at: npt.NDArray[np.int64]


def pooled_table(
    labels: Sequence[str], counts: npt.ArrayLike, withheld_at: npt.ArrayLike
) -> PooledTable:
    """The pooled rows ``counts`` (k, 3) and ``withheld_at`` (k,) of ``labels``, sorted by label."""
    order = sorted(range(len(labels)), key=lambda i: labels[i])
    total = np.asarray(counts, dtype=np.int64).reshape(len(labels), 3)[order]
    hidden = np.asarray(withheld_at, dtype=np.int64).reshape(len(labels))[order]
    return PooledTable(tuple(labels[i] for i in order), total, hidden)


def diplotype_table(
    names: Sequence[str], counts: npt.ArrayLike, sites: npt.ArrayLike
) -> PooledTable:
    """The diplotypes some site reported (``sites`` > 0), with ``withheld_at`` = ``sites``."""
    reporting = np.asarray(sites, dtype=np.int64).reshape(len(names))
    keep = np.flatnonzero(reporting > 0)
    rows = np.asarray(counts, dtype=np.int64).reshape(len(names), 3)[keep]
    return pooled_table([names[i] for i in keep.tolist()], rows, reporting[keep])


def phenotype_chi2(table: PooledTable) -> dict[str, object]:
    """Pearson chi-square of phenotype by outcome over phenotypes with samples."""
    obs = table.counts[:, :2].T  # rows: outcome 0, 1
    keep = obs.sum(axis=0) > 0
    obs = obs[:, keep]
    if obs.shape[1] < 2 or (obs.sum(axis=1) == 0).any():
        return {"chi2": None, "df": 0, "p": None, "phenotypes": int(keep.sum())}
    res = stats.chi2_contingency(obs, correction=False)
    return {
        "chi2": float(res.statistic),
        "df": int(res.dof),
        "p": float(res.pvalue),
        "phenotypes": int(keep.sum()),
    }


def fisher_2x2(table: PooledTable, test: str) -> dict[str, object]:
    """Fisher's exact test: ``test`` phenotype vs the other called phenotypes, by outcome."""
    if test not in table.labels:
        carrier = np.zeros(2, dtype=np.int64)
    else:
        carrier = table.counts[table.labels.index(test), :2]
    other = table.counts[:, :2].sum(axis=0) - carrier
    grid = np.array([[carrier[1], carrier[0]], [other[1], other[0]]])  # rows: test, other
    if (grid.sum(axis=0) == 0).any() or (grid.sum(axis=1) == 0).any():
        return {"table": grid.tolist(), "odds_ratio": None, "p": None}
    res = stats.fisher_exact(grid)
    with np.errstate(divide="ignore", invalid="ignore"):
        odds = (grid[0, 0] * grid[1, 1]) / (grid[0, 1] * grid[1, 0])
    return {
        "table": grid.tolist(),
        "odds_ratio": float(odds) if np.isfinite(odds) else None,
        "p": float(res.pvalue),
    }
