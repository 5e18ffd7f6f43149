"""The rounds of one population-structure PCA (``pca``), as the coordinator drives them.

1. ``pca_counts``: pooled ALT frequencies of the study's variants; the
   study's ``maf`` and ``variants`` select the PCA variants.
2. ``pca_ld`` (only with ``indep_pairwise``): pooled pair sums; plink2's
   pairwise pruning picks the variants kept.
3. ``pca_iterate`` rounds: randomized subspace iteration on the relationship
   matrix ``K`` (:mod:`genofed.common.wire.pca`) with a block of
   ``l = min(4 n_pcs + 20, variants, samples)`` columns (generous
   oversampling: fewer rounds for a few more bytes per round), from a random
   Gaussian start seeded by the study hash and analysis id. Each round
   sends every site a variant-space block and gets back variant-space
   products and two ``l x l`` sums. It stops when every wanted Ritz pair's
   relative residual ``||K q - theta q|| / theta`` is below
   :data:`RESIDUAL_TOL` (the eigenvalue error is then about the residual
   squared over the eigen-gap), and after at most :data:`MAX_ITERATIONS`
   rounds in any case: then the summary says ``converged = false``.
4. ``pca_finish``: sites keep their rows of the sample eigenvectors and send
   ``X^T E`` for plink2's variant weights.

So a PCA takes ``1 + [1] + iterations + 1`` rounds, at most
``3 + MAX_ITERATIONS``. Every round asks for the sum over sites
(``ask_sum``): in ``exact`` mode SecAgg+ adds the sites' products, and the
coordinator never holds one site's. The math is in :mod:`genofed.coordinator.combine.pca`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from genofed.common.errors import GenoFedError, InputError
from genofed.common.study import AnalysisSpec
from genofed.common.wire.pca import (
    EXPONENTS_INPUT,
    FOUNDER_COUNTS,
    MAX_ITERATIONS,
    PCA_COUNTS_KIND,
    PCA_FINISH_KIND,
    PCA_ITERATE_KIND,
    PCA_KIND,
    PCA_LD_KIND,
    PCA_SAMPLES_FACT,
    block_width,
)
from genofed.common.wire.records import NamedArrays
from genofed.coordinator.combine.harmonize import Harmonization
from genofed.coordinator.combine.pca import (
    ProductBounds,
    minor_allele_frequency,
    prune_pairwise,
    r_squared,
    ritz,
    select_variants,
    variant_weights,
    whiten,
)
from genofed.coordinator.protocols.job import AskSites, AskSum, Pooled
from genofed.coordinator.writers.pca_tables import write_pca_outputs

log = logging.getLogger("genofed.coordinator")


#: Relative residual at which a Ritz pair counts as converged.
RESIDUAL_TOL = 1e-4


def block_size(n_pcs: int, n_variants: int, n_samples: int) -> int:
    """Columns of the iterated block: oversampled, never more than the matrix allows."""
    return min(block_width(n_pcs), n_variants, n_samples)


def _seed(study_sha256: str, analysis_id: str) -> int:
    digest = hashlib.sha256(f"{study_sha256}/{analysis_id}/pca".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _pooled(pooled: Pooled, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """The sites' sums of ``shapes``' arrays, as float64 (the pooling's arithmetic)."""
    out = {}
    for name, shape in shapes.items():
        got = pooled.arrays.get(name)
        if got is None or got.shape != shape or not np.isfinite(got).all():
            raise GenoFedError(
                f"the sites' summed {name} must be finite, of shape {shape}: "
                "are the sites on the same software version?"
            )
        out[name] = np.asarray(got, dtype=np.float64)
    return out


def run_pca(
    spec: AnalysisSpec,
    harmonization: Harmonization,
    out_dir: Path,
    ask: AskSites,
    *,
    ask_sum: AskSum | None = None,
    study_sha256: str,
    prefix: str = "pca",
) -> tuple[list[str], dict[str, object]]:
    """Run one pca analysis; return the files written and headline numbers."""
    plans = harmonization.plans
    variants = harmonization.variants
    k = int(spec.params["n_pcs"])

    def plan(sel: np.ndarray, **extra: np.ndarray) -> list[NamedArrays]:
        return [{"variant_index": p.index[sel], "flip": p.flip[sel], **extra} for p in plans]

    if ask_sum is None:
        raise TypeError("run_pca needs ask_sum: every pca round is a sum over sites")
    everything = np.arange(len(variants))
    first = ask_sum(PCA_COUNTS_KIND, spec.id, plan(everything))
    nv = len(variants)
    shapes = {"genotype_counts": (nv, 4), "withheld": (nv,)}
    if FOUNDER_COUNTS in first.arrays:  # plink2 --pca: the founders' allele frequencies
        shapes[FOUNDER_COUNTS] = (nv, 4)
    sums = _pooled(first, shapes)
    counts = sums.get(FOUNDER_COUNTS, sums["genotype_counts"])
    # a variant some site withheld for small genotype cells is left out of the PCA
    withheld = sums["withheld"] > 0
    n_samples = sum(
        int(r.facts.get(PCA_SAMPLES_FACT) or r.facts.get("n_samples", "0")) for r in first.replies
    )  # a site's guard may have served the PCA over an earlier release's samples
    called = counts[:, :3].sum(axis=1)
    alt = counts[:, 1] + 2 * counts[:, 2]
    variable = (counts[:, :3] > 0).sum(axis=1) > 1
    with np.errstate(divide="ignore", invalid="ignore"):
        freq = np.where(called > 0, alt / (2.0 * called), np.nan)
    keep, absent = select_variants(
        variants.id.astype(str), freq, float(spec.params["maf"]), tuple(spec.params["variants"])
    )
    if absent:
        shown = ", ".join(absent[:5]) + (" ..." if len(absent) > 5 else "")
        raise InputError(
            f"pca analysis {spec.id!r}: {len(absent)} listed variants are not among the "
            f"study's variants: {shown}",
            hint="list IDs as the sites' .bim files spell them (see harmonization.tsv)",
        )
    every = sums["genotype_counts"]
    hidden = np.flatnonzero(keep & ~withheld & ~variable & ((every[:, :3] > 0).sum(axis=1) > 1))
    if len(hidden):  # plink2 stops on such a variant too ("Zero-MAF variant is not ...")
        raise InputError(
            f"pca analysis {spec.id!r}: variant {variants.id[hidden[0]]} ({len(hidden)} in all) "
            "is monomorphic among the founders but not among every sample, so the founders' "
            "frequencies cannot standardize it (plink2 --pca stops there too)",
            hint="add maf = 0.01 (or another floor) to the pca analysis, or set nonfounders "
            "= true under [study] (plink2 --nonfounders)",
        )
    keep &= (called > 0) & ~withheld
    rounds = 1
    selected = np.flatnonzero(keep)
    prune = tuple(spec.params["indep_pairwise"])
    if prune and len(selected) > 1:
        window, step, threshold = int(prune[0]), int(prune[1]), float(prune[2])
        got_ld = ask_sum(
            PCA_LD_KIND,
            spec.id,
            plan(selected, window=np.array([window]), freq=freq[selected]),
        )
        rounds += 1
        v = len(selected)
        ld = _pooled(got_ld, {"ld_n": (v, window - 1), "ld_sum": (v, window - 1, 5)})
        kept = prune_pairwise(
            variants.chrom[selected].astype(str),
            minor_allele_frequency(freq[selected]),
            variable[selected],
            r_squared(ld["ld_n"].astype(np.int64), ld["ld_sum"]),
            window,
            step,
            threshold,
        )
        selected = selected[kept]
    v = len(selected)
    if k > min(v, n_samples) - 1:
        raise InputError(
            f"pca analysis {spec.id!r} asks for {k} components from {v} variants and "
            f"{n_samples} samples",
            hint="lower n_pcs, or select more variants (maf, indep_pairwise, variants)",
        )
    f_sel = freq[selected]
    width = block_size(k, v, n_samples)
    rng = np.random.default_rng(_seed(study_sha256, spec.id))
    # each site's products lie below bounds from the pooled counts: 4 limbs each, not 7
    bounds = ProductBounds.from_counts(every[selected], f_sel)
    start = rng.standard_normal((v, width))
    inputs: dict[str, np.ndarray] = {
        "freq": f_sel,
        "step": np.array([0]),
        "wts": start,
        EXPONENTS_INPUT: bounds.iterate(0, start),
    }
    shapes = {"a_t_u": (v, width), "gram": (width, width), "cross": (width, width)}
    pairs = None
    converged = False
    iteration = 0
    for iteration in range(MAX_ITERATIONS):
        got = _pooled(ask_sum(PCA_ITERATE_KIND, spec.id, plan(selected, **inputs)), shapes)
        rounds += 1
        if iteration > 0:
            pairs = ritz(got["cross"], got["gram"])
            worst = float(pairs.residuals[:k].max())
            log.debug("pca %s step %d: worst residual %.3g", spec.id, iteration, worst)
            if worst < RESIDUAL_TOL:
                converged = True
                break
        try:
            transform = whiten(got["gram"])
        except ValueError as exc:
            raise GenoFedError(f"pca analysis {spec.id!r}: {exc}") from exc
        inputs = {
            "freq": f_sel,
            "step": np.array([iteration + 1]),
            "wts": got["a_t_u"] @ transform,
            "transform": transform,
            EXPONENTS_INPUT: bounds.iterate(iteration + 1, start),
        }
    if pairs is None:
        raise GenoFedError(f"pca analysis {spec.id!r}: MAX_ITERATIONS must be at least 2")
    if not converged:
        log.warning(
            "pca %s stopped after %d rounds with relative residual %.3g (tolerance %g)",
            spec.id,
            MAX_ITERATIONS,
            float(pairs.residuals[:k].max()),
            RESIDUAL_TOL,
        )
    w = pairs.vectors[:, :k]
    w = w * np.where(w[np.abs(w).argmax(axis=0), np.arange(k)] < 0, -1.0, 1.0)
    finish = {
        "freq": f_sel,
        "step": np.array([iteration + 1]),
        "transform": w,
        EXPONENTS_INPUT: bounds.finish(),
    }
    done = ask_sum(PCA_FINISH_KIND, spec.id, plan(selected, **finish))
    rounds += 1
    x_t_e = _pooled(done, {"x_t_e": (v, k)})["x_t_e"]
    eigenvalues = pairs.values[:k]
    weights = variant_weights(x_t_e, eigenvalues, f_sel)
    files = write_pca_outputs(out_dir, prefix, variants.take(selected), f_sel, eigenvalues, weights)
    return files, {
        "variants": v,
        "samples": n_samples,
        "eigenvalues": [round(float(x), 4) for x in eigenvalues[: min(k, 5)]],
        "rounds": rounds,
        "iterations": iteration + 1,
        "converged": converged,
        "max_relative_residual": float(f"{pairs.residuals[:k].max():.3g}"),
    }


__all__ = ["MAX_ITERATIONS", "PCA_KIND", "RESIDUAL_TOL", "block_size", "run_pca"]
