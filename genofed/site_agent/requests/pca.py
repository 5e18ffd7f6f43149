"""The site's answers to the ``pca_*`` requests (see :mod:`genofed.common.wire.pca`).

Each request is checked against the study (the analysis must be a ``pca``
analysis of it) and the policy (``pca`` in ``allowed_analyses``, plain
release), then the requested variants are streamed in chunks. What leaves is
sized by variants (or ``l x l``); the per-sample blocks and the final scores
stay in ``state/pca/`` (:mod:`genofed.site_agent.requests.pca_state`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genofed.common.analyses import FOUNDER_COUNTS_ARRAY
from genofed.common.errors import PolicyRefusal
from genofed.common.reasons import BAD_REQUEST, DISCLOSURE_RISK
from genofed.common.receipts import GUARD_LEFT_OUT_FACT
from genofed.common.wire.pca import (
    MAX_ITERATIONS,
    MAX_LD_WINDOW,
    PCA_COUNTS_KIND,
    PCA_ITERATE_KIND,
    PCA_KIND,
    PCA_LD_KIND,
    PCA_REQUEST_KINDS,
    PCA_SAMPLES_FACT,
    block_width,
)
from genofed.common.wire.records import NamedArrays
from genofed.site_agent.context import Answer, RequestContext, Server
from genofed.site_agent.io.genotypes import GenotypeFile
from genofed.site_agent.privacy.guard import GENOTYPES
from genofed.site_agent.privacy.membership_release import (
    check_variants,
    record_withheld,
    refuse_withheld,
)
from genofed.site_agent.privacy.suppression import GENOTYPE_CELLS, small_cell_rows
from genofed.site_agent.requests.pca_state import (
    IterateState,
    load_iterate,
    pca_dir,
    save_iterate,
    save_scores,
)
from genofed.site_agent.stats.genotype_counts import flip_counts, genotype_counts
from genofed.site_agent.stats.glm import oriented
from genofed.site_agent.stats.pca import ld_pair_sums, relationship_terms, standardized


def serve_pca(ctx: RequestContext) -> Answer:
    """The counts, LD sums or products of a pca request."""
    spec, bed, inputs, request = ctx.analysis, ctx.bed, ctx.inputs, ctx.request
    index, flip = ctx.variant_plan
    # every genotyped sample, or an earlier release's set inside it (the guard's alignment)
    rows = ctx.guard.align(GENOTYPES, np.arange(bed.n_samples, dtype=np.int64))
    ctx.declare(GENOTYPES, rows)
    left_out = bed.n_samples - len(rows)
    only = rows if left_out else None  # iter_dosages' sample_idx: None reads everyone
    facts = (
        {GUARD_LEFT_OUT_FACT: str(left_out), PCA_SAMPLES_FACT: str(len(rows))} if left_out else {}
    )
    if request.kind == PCA_COUNTS_KIND:
        counts = np.zeros((len(index), 4), dtype=np.int64)
        for start, d in bed.iter_dosages(index, sample_idx=only):
            counts[start : start + len(d)] = genotype_counts(d)
        withheld = small_cell_rows(counts, ctx.policy.min_cell_count, GENOTYPE_CELLS)
        counts = flip_counts(counts, flip)
        if ctx.policy.max_membership_power is not None:
            decision = check_variants(
                ctx.policy, ctx.directory, bed, rows, counts, withheld, index, flip
            )
            withheld = withheld | decision.withheld
            facts.update(decision.facts)
            record_withheld(pca_dir(ctx.directory, ctx.study.sha256, spec.id), index[withheld])
        arrays: dict[str, np.ndarray] = {}
        if not ctx.study.nonfounders:  # plink2 --pca: the founders' allele frequencies
            founders = _founder_counts(ctx, bed, index, flip, rows, counts, facts)
            withheld = withheld | small_cell_rows(
                founders, ctx.policy.min_cell_count, GENOTYPE_CELLS
            )
            arrays[FOUNDER_COUNTS_ARRAY] = np.where(withheld[:, None], 0, founders)
        counts = np.where(withheld[:, None], 0, counts)
        facts["pca_withheld_variants"] = str(int(withheld.sum()))
        return Answer({"genotype_counts": counts, "withheld": withheld, **arrays}, facts)
    if ctx.policy.max_membership_power is not None:
        refuse_withheld(pca_dir(ctx.directory, ctx.study.sha256, spec.id), index, PCA_COUNTS_KIND)
    _refuse_small_cells(bed, index, ctx.policy.min_cell_count, only)
    freq = _array(inputs, "freq", (len(index),))
    if freq.size and (freq.min() < 0.0 or freq.max() > 1.0):
        raise PolicyRefusal(BAD_REQUEST, "the pca request's allele frequencies are not in [0, 1]")
    if request.kind == PCA_LD_KIND:
        return Answer(_ld(bed, index, flip, inputs, only, freq), facts)
    directory = pca_dir(ctx.directory, ctx.study.sha256, spec.id)
    step = int(_array(inputs, "step", (1,), kind="i")[0])
    last = MAX_ITERATIONS - 1 if request.kind == PCA_ITERATE_KIND else MAX_ITERATIONS
    if not 0 <= step <= last:
        raise PolicyRefusal(BAD_REQUEST, f"a pca analysis takes at most {MAX_ITERATIONS} steps")
    if request.kind == PCA_ITERATE_KIND:
        width = block_width(int(spec.params["n_pcs"]))
        arrays, state = _iterate(
            bed, index, flip, freq, step, inputs, directory, request.run_id, width, only
        )
        save_iterate(directory, state)
        return Answer(arrays, facts, directions=int(inputs["wts"].shape[1]))
    state = load_iterate(directory, request.run_id, step)
    transform = _array(inputs, "transform", (state.q.shape[1], int(spec.params["n_pcs"])))
    if state.q.shape[0] != len(rows):
        raise PolicyRefusal(BAD_REQUEST, "the pca iterations ran over other samples; run again")
    scores = state.q @ transform
    x_t_e = np.zeros((len(index), scores.shape[1]))
    for start, d in bed.iter_dosages(index, sample_idx=only):
        stop = start + len(d)
        x, _ = standardized(d, flip[start:stop], freq[start:stop])
        x_t_e[start:stop] = x @ scores
    # a sample the guard left out has no score: a glm on these PCs leaves it out too
    every = np.full((bed.n_samples, scores.shape[1]), np.nan)
    every[rows] = scores
    save_scores(directory, bed.samples, every, request.run_id)
    return Answer(
        {"x_t_e": x_t_e},
        {**facts, "pca_scores_kept": str(scores.shape[1])},
        directions=int(scores.shape[1]),
    )


SERVER = Server(
    analyses=frozenset({PCA_KIND}),
    request_kinds=PCA_REQUEST_KINDS,
    modes=frozenset({"plain"}),
    unsupported="pca releases exact products only; this study asks for noisy releases",
    serve=serve_pca,
)


def _refuse_small_cells(
    bed: GenotypeFile, index: np.ndarray, min_cell: int, only: np.ndarray | None
) -> None:
    """Refuse LD or product rounds over a variant the counts round withheld."""
    if min_cell <= 0:
        return
    for _, d in bed.iter_dosages(index, sample_idx=only):
        if small_cell_rows(genotype_counts(d), min_cell, GENOTYPE_CELLS).any():
            raise PolicyRefusal(
                DISCLOSURE_RISK,
                "the request includes a variant this site withheld for small genotype cells",
            )


def _array(inputs: NamedArrays, name: str, shape: tuple[int, ...], kind: str = "f") -> np.ndarray:
    """A request input of the given shape (-1: any) and dtype kind, all finite."""
    a = inputs.get(name)
    if (
        a is None
        or a.ndim != len(shape)
        or any(want not in (-1, got) for want, got in zip(shape, a.shape, strict=True))
        or a.dtype.kind != kind
        or (kind == "f" and not np.isfinite(a).all())
    ):
        raise PolicyRefusal(BAD_REQUEST, f"the pca request's {name!r} is malformed")
    return a.astype(np.float64) if kind == "f" else a.astype(np.int64)


def _founder_counts(
    ctx: RequestContext,
    bed: GenotypeFile,
    index: np.ndarray,
    flip: np.ndarray,
    rows: np.ndarray,
    counts: np.ndarray,
    facts: dict[str, str],
) -> np.ndarray:
    """The founders' genotype counts among ``rows`` (``counts`` itself when all are founders).

    Every site sends this table, so that the sites' sums line up in ``exact``
    mode. Where the guard refuses the founders' set (1 to ``min_cell_count -
    1`` nonfounders: the two tables would differ by them), the site sends its
    counts over every sample instead and says so (``pca_founder_counts_withheld``);
    the PCA then standardizes that site's samples with every sample's frequencies.
    """
    founder = bed.samples.founders()[rows]
    if founder.all():
        return counts
    kept = rows[founder]
    if not ctx.guard.declare_if_safe(GENOTYPES, kept):
        facts["pca_founder_counts_withheld"] = "true"
        return counts
    out = np.zeros_like(counts)
    for start, d in bed.iter_dosages(index, sample_idx=kept):
        out[start : start + len(d)] = genotype_counts(d)
    return flip_counts(out, flip)


def _ld(
    bed: GenotypeFile,
    index: np.ndarray,
    flip: np.ndarray,
    inputs: NamedArrays,
    only: np.ndarray | None,
    freq: np.ndarray,
) -> NamedArrays:
    """LD pair sums over the base set, a missing call counted as ``2 f`` (pooled ``f``).

    Summed over the people called at both variants (plink2's pair-wise rule),
    a pair's sums would run over a set that differs from the counts round's,
    and from the next pair's, by the few people missing one call: subtracted,
    one person's genotypes at every variant of the window (the attack in
    ``tests/privacy/test_pca_ld_attack.py``). Here every pair sums over the
    release's base set, with the values the PCA's products standardize (a
    missing call at the pooled mean), so the LD round adds no sample set and
    no value the products do not already sum. r² equals plink2's where no
    call is missing, and is slightly lower otherwise.
    """
    window = int(_array(inputs, "window", (1,), kind="i")[0])
    if not 2 <= window <= MAX_LD_WINDOW:
        raise PolicyRefusal(BAD_REQUEST, f"the LD window must lie in 2..{MAX_LD_WINDOW}")
    v = len(index)
    chrom = np.asarray(bed.variants.chrom)[index]
    n_out = np.zeros((v, window - 1), dtype=np.int64)
    sums = np.zeros((v, window - 1, 5))
    chunk = max(512, 2 * window)  # rows per block; each block reads window - 1 more
    for start in range(0, v, chunk):
        rows = min(chunk, v - start)
        stop = min(v, start + rows + window - 1)
        g = np.empty((stop - start, bed.n_samples if only is None else len(only)))
        called = np.empty(g.shape, dtype=np.bool_)
        for offset, d in bed.iter_dosages(index[start:stop], sample_idx=only):
            at = slice(start + offset, start + offset + len(d))
            part, missing = oriented(d, flip[at])
            g[offset : offset + len(d)] = np.where(missing, 2.0 * freq[at, None], part)
            called[offset : offset + len(d)] = True
        c = chrom[start:stop]
        same = np.zeros((rows, window - 1), dtype=np.bool_)
        for dist in range(1, window):
            m = min(rows, len(c) - dist)
            if m > 0:
                same[:m, dist - 1] = c[:m] == c[dist : dist + m]
        n_out[start : start + rows], sums[start : start + rows] = ld_pair_sums(
            g, called, rows, window, same
        )
    return {"ld_n": n_out, "ld_sum": sums}


def _iterate(
    bed: GenotypeFile,
    index: np.ndarray,
    flip: np.ndarray,
    freq: np.ndarray,
    step: int,
    inputs: NamedArrays,
    directory: Path,
    run_id: str,
    width: int,
    only: np.ndarray | None,
) -> tuple[NamedArrays, IterateState]:
    wts = _array(inputs, "wts", (len(index), -1))
    l_cols = wts.shape[1]
    if not 1 <= l_cols <= width:
        raise PolicyRefusal(BAD_REQUEST, f"the pca block may have at most {width} columns")
    n = bed.n_samples if only is None else len(only)
    xw = np.zeros((n, l_cols))
    sumsq = np.zeros(n)
    for start, d in bed.iter_dosages(index, sample_idx=only):
        stop = start + len(d)
        x, _ = standardized(d, flip[start:stop], freq[start:stop])
        xw += x.T @ wts[start:stop]
        if step == 0:
            sumsq += np.einsum("ij,ij->j", x, x)
    if step == 0:
        row_scale, delta = relationship_terms(sumsq, len(index))
        q = np.zeros((n, l_cols))
        u = row_scale[:, None] * xw
    else:
        prev = load_iterate(directory, run_id, step)
        if prev.u.shape[0] != n:
            raise PolicyRefusal(BAD_REQUEST, "the pca iterations ran over other samples; run again")
        transform = _array(inputs, "transform", (prev.u.shape[1], l_cols))
        row_scale, delta = prev.row_scale, prev.delta
        q = prev.u @ transform
        u = row_scale[:, None] * xw + delta[:, None] * q
    scaled = row_scale[:, None] * u
    a_t_u = np.zeros((len(index), l_cols))
    for start, d in bed.iter_dosages(index, sample_idx=only):
        stop = start + len(d)
        x, _ = standardized(d, flip[start:stop], freq[start:stop])
        a_t_u[start:stop] = x @ scaled
    arrays = {"a_t_u": a_t_u, "gram": u.T @ u, "cross": q.T @ u}
    return arrays, IterateState(run_id, step, u, q, row_scale, delta)


__all__ = ["SERVER", "serve_pca"]
