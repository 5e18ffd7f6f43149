"""Manhattan and QQ plots of a GWAS, as PNG files (matplotlib's Agg canvas, no display)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from genofed.coordinator.writers.figures import figure, save_png

GENOME_WIDE_P = 5e-8
_COLOURS = ("#1f4e79", "#7fa7d1")


def _chrom_key(chrom: str) -> tuple[int, str]:
    return (int(chrom), "") if chrom.isdigit() else (10**6, chrom)


def write_manhattan(
    path: Path, chrom: Sequence[str] | np.ndarray, pos: np.ndarray, p: np.ndarray, title: str
) -> None:
    """-log10 P along the genome, chromosomes side by side in alternating colours."""
    chrom = np.asarray(chrom).astype(str)
    pos = np.asarray(pos, dtype=np.float64)
    ok = np.isfinite(p) & (p > 0)
    fig = figure((10, 4))
    ax = fig.add_subplot()
    offset, ticks, labels = 0.0, [], []
    for i, c in enumerate(sorted(set(chrom.tolist()), key=_chrom_key)):
        sel = (chrom == c) & ok
        span = float(pos[chrom == c].max()) if np.any(chrom == c) else 0.0
        ax.scatter(pos[sel] + offset, -np.log10(p[sel]), s=4, color=_COLOURS[i % 2], linewidths=0)
        ticks.append(offset + span / 2)
        labels.append(c)
        offset += span * 1.02 + 1
    ax.axhline(-np.log10(GENOME_WIDE_P), color="#b22222", linewidth=0.8, linestyle="--")
    ax.set_xticks(ticks, labels)
    ax.set_xlabel("chromosome")
    ax.set_ylabel("-log10(P)")
    ax.set_title(f"Manhattan plot: {title}")
    fig.tight_layout()
    save_png(fig, path)


def write_qq(path: Path, p: np.ndarray, lambda_gc: float, title: str) -> None:
    """Observed against expected -log10 P under the null, with lambda_GC."""
    obs = np.sort(p[np.isfinite(p) & (p > 0)])
    n = len(obs)
    expected = -np.log10((np.arange(1, n + 1) - 0.5) / max(n, 1))
    fig = figure((5, 5))
    ax = fig.add_subplot()
    ax.scatter(expected, -np.log10(obs), s=5, color=_COLOURS[0], linewidths=0)
    top = float(max(expected.max() if n else 1.0, 1.0))
    ax.plot([0, top], [0, top], color="#b22222", linewidth=0.8)
    ax.set_xlabel("expected -log10(P)")
    ax.set_ylabel("observed -log10(P)")
    ax.set_title(f"QQ plot: {title}\nlambda_GC = {lambda_gc:.3f}")
    fig.tight_layout()
    save_png(fig, path)


__all__ = ["write_manhattan", "write_qq"]
