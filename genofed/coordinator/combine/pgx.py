"""Combine half of pharmacogenomics: pooled diplotype and phenotype tables, association tests.

* Tables: the sites' rows summed by label (diplotype or phenotype); a row a
  site withheld contributes nothing and is counted in ``withheld_at``, so a
  pooled count with ``withheld_at > 0`` is a lower bound.
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

__all__ = ["PooledTable", "fisher_2x2", "phenotype_chi2", "pool_table"]


@dataclass(frozen=True)
class PooledTable:
    """Labels (first-seen order across sites, then sorted), counts (k, 3), sites withholding."""

    labels: tuple[str, ...]
    counts: npt.NDArray[np.int64]
    withheld_at: npt.NDArray[np.int64]


def pool_table(
    labels: Sequence[np.ndarray], counts: Sequence[np.ndarray], withheld: Sequence[np.ndarray]
) -> PooledTable:
    """Sum per-site tables by label."""
    names = sorted({str(x) for site in labels for x in site.tolist()})
    where = {name: i for i, name in enumerate(names)}
    total = np.zeros((len(names), 3), dtype=np.int64)
    hidden = np.zeros(len(names), dtype=np.int64)
    for lab, cnt, wh in zip(labels, counts, withheld, strict=True):
        rows = np.array([where[str(x)] for x in lab.tolist()], dtype=np.int64)
        if rows.size:
            np.add.at(total, rows, np.asarray(cnt, dtype=np.int64))
            np.add.at(hidden, rows, np.asarray(wh, dtype=np.int64))
    return PooledTable(tuple(names), total, hidden)


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
