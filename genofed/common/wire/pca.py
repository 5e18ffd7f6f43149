"""What the population-structure PCA (``pca``) protocol exchanges, and its parameters.

Both halves read this module so that a site and the coordinator agree on
what every released number means; a privacy officer reads it to know what
leaves the site for a ``pca`` analysis. **No array that leaves a site is
sized by its samples**: every release is per variant or a small ``l x l``
matrix, and the per-sample scores stay in the site's state directory.

The model is plink2's ``--pca meanimpute``, the relationship matrix that
``--pca approx`` always uses: genotype ``g`` (study-ALT dosage) of variant
``i`` standardized as ``x = (g - 2 f_i) / sqrt(2 f_i (1 - f_i))`` with the
pooled ALT frequency ``f_i``; a missing call and a monomorphic variant give
``x = 0`` (mean imputation), and ``K = X^T X / M`` over the ``M`` PCA
variants. It is a sum over variants of per-site products, so the federated
``K`` is plink2's exactly, however the missing calls fall. plink2's default
``--pca`` instead divides each entry ``sum_i x_ji x_ki`` by the number of
variants called in *both* samples: for a pair of samples at two sites that
count depends on both samples' missingness patterns, which no variant-sized
release carries, so no federated form equals it (with missing calls the two
plink2 modes differ; see docs/analyst.md). Held as::

    K = A A^T + diag(delta),  A_j = x_j / sqrt(M),  delta_j = 0

(``delta`` is kept in the protocol; the site's ``relationship_terms`` computes it as
zero up to rounding.)

Each site holds its rows of ``A`` and ``delta``. Requests (in this order):

``pca_counts`` (inputs ``variant_index``, ``flip``)::

    genotype_counts  int64   (V, 4)   HOM_REF, HET, HOM_ALT, MISSING (study orientation)
    founder_genotype_counts  int64 (V, 4)  the same over the founders (plink2 --pca takes
                                      their frequencies; every sample's counts when all are
                                      founders or the guard refuses that set; absent with
                                      [study] nonfounders = true)

``pca_ld`` (inputs ``variant_index``, ``flip``, ``window`` (1,) int64 and
``freq`` (V,), the pooled ALT frequencies): plink2 ``--indep-pairwise``
pair statistics of variants fewer than ``window`` apart (in the request's
order) on one chromosome, over every sample of the release, a missing call
counted as ``2 f`` (sums over the people called at both would differ by the
few missing one call: see :mod:`genofed.site_agent.requests.pca`); row
``i``, column ``d - 1`` is the pair ``(i, i + d)``, zero across
chromosomes::

    ld_n    int64   (V, window-1)      samples summed (the release's)
    ld_sum  float64 (V, window-1, 5)   sums of g_i, g_j, g_i^2, g_j^2, g_i g_j

``pca_iterate`` (inputs ``variant_index``, ``flip``, ``freq`` (V,),
``step`` (1,) int64, ``wts`` (V, l) and ``transform`` (l, l)). Step 0
starts from the random variant-space block ``wts`` = Omega: the site forms
``U = A Omega``. Step ``t > 0`` receives ``wts = A^T Q`` (pooled) and
``transform = R^-1`` with ``Q = U_prev R^-1`` orthonormal over all samples,
and forms ``U = A wts + delta * Q`` (``= K Q``). It keeps ``U`` and ``Q``
and releases::

    a_t_u   float64 (V, l)   A^T U over its samples
    gram    float64 (l, l)   U^T U
    cross   float64 (l, l)   Q^T U (zeros at step 0)

``pca_finish`` (inputs ``variant_index``, ``flip``, ``freq``, ``step``,
``transform`` (l, k)): the site stores its rows of the unit-norm sample
eigenvectors ``E = Q transform`` (``Q`` kept by the last ``pca_iterate``;
never released) and releases::

    x_t_e   float64 (V, k)   X^T E, for plink2's variant weights X^T e / sqrt(lambda)

Bounds a site enforces whatever the coordinator asks: at most
:data:`MAX_ITERATIONS` steps per run, a block of at most
:func:`block_width` ``(n_pcs)`` columns, ``k = n_pcs`` final components,
and an LD window of at most :data:`MAX_LD_WINDOW` variants. Each product
is a sum over the site's samples; a coordinator that chose its blocks
adversarially could still learn up to ``MAX_ITERATIONS * block_width``
directions of the site's variant Gram matrix per run, which the audit log
shows (one entry per step, with shapes and hashes).

Summable forms (:mod:`genofed.common.wire.summable`; in ``exact`` mode the
coordinator receives only their sums over sites, so it never sees one
site's products): every array as sent, dense already and of the shapes the
request fixes, with ``withheld`` as an int64 0/1 per variant (its sum counts
the sites withholding it; a site that sends none sends zeros).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import numpy as np

from genofed.common.errors import ParamError

#: The analysis kind (``[[analysis]] kind = "pca"``).
PCA_KIND: Final = "pca"
PCA_COUNTS_KIND: Final = "pca_counts"
PCA_LD_KIND: Final = "pca_ld"
#: ``pca_counts``' founders' table (the count round's name for it).
FOUNDER_COUNTS: Final = "founder_genotype_counts"
PCA_ITERATE_KIND: Final = "pca_iterate"
PCA_FINISH_KIND: Final = "pca_finish"
PCA_REQUEST_KINDS: Final = frozenset(
    {PCA_COUNTS_KIND, PCA_LD_KIND, PCA_ITERATE_KIND, PCA_FINISH_KIND}
)

#: plink2 --pca's default number of components.
DEFAULT_N_PCS: Final = 10
#: Widest LD window a study may ask for (pair statistics grow with it).
MAX_LD_WINDOW: Final = 1000
#: Most ``pca_iterate`` rounds one analysis may take (the start included); a site
#: refuses any step beyond it, so no coordinator can probe a site's data longer.
MAX_ITERATIONS: Final = 60


def block_width(n_pcs: int) -> int:
    """Most columns of the iterated block for ``n_pcs`` components (sites refuse wider)."""
    return 4 * n_pcs + 20


#: A glm covariate naming a principal component of the study's pca analysis.
PC_COVARIATE: Final = re.compile(r"^PC([1-9][0-9]*)$")


def check_pca_params(params: dict[str, Any]) -> dict[str, Any]:
    """Validate and normalise a ``pca`` analysis's parameters (raises ``ParamError``)."""
    n_pcs = params["n_pcs"]
    if not 1 <= n_pcs <= 100:
        raise ParamError(f"n_pcs must lie in 1..100, not {n_pcs}", "e.g. n_pcs = 10")
    maf = params["maf"]
    if not 0.0 <= maf < 0.5:
        raise ParamError(f"maf must lie in [0, 0.5), not {maf}", "e.g. maf = 0.01")
    prune = params["indep_pairwise"]
    if prune:
        ok = (
            len(prune) == 3
            and isinstance(prune[0], int)
            and isinstance(prune[1], int)
            and not isinstance(prune[0], bool)
            and not isinstance(prune[1], bool)
            and isinstance(prune[2], int | float)
            and 2 <= prune[0] <= MAX_LD_WINDOW
            and 1 <= prune[1] <= prune[0]
            and 0.0 < prune[2] <= 1.0
        )
        if not ok:
            raise ParamError(
                f"indep_pairwise must be [window, step, r2] as plink2 --indep-pairwise takes "
                f"them (window 2..{MAX_LD_WINDOW} variants, 1 <= step <= window, 0 < r2 <= 1), "
                f"not {list(prune)!r}",
                "e.g. indep_pairwise = [50, 5, 0.2]; a window in kb is not supported",
            )
        prune = (prune[0], prune[1], float(prune[2]))
    variants = params["variants"]
    if not all(isinstance(v, str) and v for v in variants) or len(set(variants)) != len(variants):
        raise ParamError(
            "variants must list distinct variant IDs", 'e.g. variants = ["1:320:A:G", ...]'
        )
    return {**params, "indep_pairwise": tuple(prune), "variants": tuple(variants)}


def pc_index(covariate: str) -> int | None:
    """0-based component index of a covariate named ``PC<k>``, else None."""
    found = PC_COVARIATE.match(covariate)
    return None if found is None else int(found.group(1)) - 1


def pc_source(analyses: Sequence[Any], glm_id: str) -> Any | None:
    """The ``pca`` analysis whose scores serve glm ``glm_id``'s ``PC<k>`` covariates.

    That is the study's pca analysis when it is listed before the glm; a
    study without one reads ``PC<k>`` columns from the covariate table, as
    before PCA existed.
    """
    for a in analyses:
        if a.id == glm_id:
            return None
        if a.kind == "pca":
            return a
    return None


def pc_covariate_problem(analyses: Sequence[Any]) -> tuple[str, str] | None:
    """Why the study's ``PC<k>`` glm covariates cannot be served, as (message, hint); or None.

    A glm listed after a ``pca`` analysis takes ``PC1``...``PCk`` from its
    scores; that needs exactly one pca analysis in the study and
    ``n_pcs >= k``.
    """
    n_pca = sum(a.kind == "pca" for a in analyses)
    for a in analyses:
        if a.kind != "glm":
            continue
        wanted = [j for c in a.params["covariates"] if (j := pc_index(c)) is not None]
        source = pc_source(analyses, a.id)
        if not wanted or source is None:
            continue
        if n_pca != 1:
            return (
                f"glm analysis {a.id!r} names PC covariates and the study has {n_pca} pca "
                "analyses, so which one supplies them is ambiguous",
                "keep one pca analysis in a study whose glm names PC covariates",
            )
        if max(wanted) + 1 > source.params["n_pcs"]:
            return (
                f"glm analysis {a.id!r} names PC{max(wanted) + 1}, but pca analysis "
                f"{source.id!r} keeps {source.params['n_pcs']} components",
                "raise n_pcs or name fewer PC covariates",
            )
    return None


def _rows(inputs: Mapping[str, np.ndarray]) -> int:
    index = inputs.get("variant_index")
    if index is None or index.ndim != 1:
        raise ValueError("the request's variant_index is missing or is not a vector")
    return len(index)


def _columns(inputs: Mapping[str, np.ndarray], name: str) -> int:
    got = inputs.get(name)
    if got is None or got.ndim != 2:
        raise ValueError(f"the request's {name} is missing or is not a matrix")
    return int(got.shape[1])


def _take(
    arrays: Mapping[str, np.ndarray], shapes: Mapping[str, tuple[int, ...]], kinds: str
) -> dict[str, np.ndarray]:
    out = {}
    for name, shape in shapes.items():
        got = arrays.get(name)
        if got is None or got.shape != shape or got.dtype.kind not in kinds:
            raise ValueError(f"{name} must have shape {shape}")
        if got.dtype.kind == "f" and not np.isfinite(got).all():
            raise ValueError(f"{name} holds a value that is not finite")
        out[name] = np.asarray(got, dtype=np.float64 if got.dtype.kind == "f" else np.int64)
    return out


def _counts_form(
    arrays: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    v = _rows(inputs)
    out = _take(arrays, {"genotype_counts": (v, 4)}, "iu")
    if FOUNDER_COUNTS in arrays:  # every site sends it, or none (nonfounders = true)
        out.update(_take(arrays, {FOUNDER_COUNTS: (v, 4)}, "iu"))
    held = arrays.get("withheld")
    if held is None:
        out["withheld"] = np.zeros(v, dtype=np.int64)
    elif held.shape != (v,) or held.dtype.kind not in "biu":
        raise ValueError(f"withheld must have shape ({v},)")
    else:
        out["withheld"] = (np.asarray(held) != 0).astype(np.int64)
    return out


def _ld_form(
    arrays: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    v, window = _rows(inputs), inputs.get("window")
    if window is None or window.shape != (1,) or int(window[0]) < 2:
        raise ValueError("the request's window is malformed")
    w = int(window[0]) - 1
    return {
        **_take(arrays, {"ld_n": (v, w)}, "iu"),
        **_take(arrays, {"ld_sum": (v, w, 5)}, "f"),
    }


def _iterate_form(
    arrays: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    v, width = _rows(inputs), _columns(inputs, "wts")
    shapes = {"a_t_u": (v, width), "gram": (width, width), "cross": (width, width)}
    return _take(arrays, shapes, "f")


def _finish_form(
    arrays: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    return _take(arrays, {"x_t_e": (_rows(inputs), _columns(inputs, "transform"))}, "f")


#: Input holding the scale exponents of a request's real arrays, in the order of
#: :data:`SCALED_ARRAYS` (int64): ``|value| < 2**e`` at every site, from the pooled counts.
EXPONENTS_INPUT: Final = "fixed_point_exponents"
#: Request kind -> the reply arrays a coordinator may give scale exponents.
SCALED_ARRAYS: Final[Mapping[str, tuple[str, ...]]] = {
    PCA_ITERATE_KIND: ("a_t_u", "cross", "gram"),
    PCA_FINISH_KIND: ("x_t_e",),
}


def _exponents(kind: str) -> Callable[[Mapping[str, np.ndarray]], dict[str, int]]:
    names = SCALED_ARRAYS[kind]

    def exponents(inputs: Mapping[str, np.ndarray]) -> dict[str, int]:
        got = inputs.get(EXPONENTS_INPUT)
        if got is None:  # a coordinator that sends none: the generic encoding
            return {}
        if got.shape != (len(names),) or got.dtype.kind not in "iu":
            raise ValueError(f"the request's {EXPONENTS_INPUT} must be {len(names)} integers")
        return {name: int(e) for name, e in zip(names, got, strict=True)}

    return exponents


#: Request kind -> the scale exponents its inputs give (:func:`genofed.common.fixed_point.encode`).
FIXED_POINT_EXPONENTS: Final[Mapping[str, Callable[..., dict[str, int]]]] = {
    kind: _exponents(kind) for kind in SCALED_ARRAYS
}

#: Request kind -> its summable form (:mod:`genofed.common.wire.summable`).
SUMMABLE_FORMS: Final[Mapping[str, Callable[..., dict[str, np.ndarray]]]] = {
    PCA_COUNTS_KIND: _counts_form,
    PCA_LD_KIND: _ld_form,
    PCA_ITERATE_KIND: _iterate_form,
    PCA_FINISH_KIND: _finish_form,
}


#: Reply fact of a site whose disclosure guard served the PCA over an earlier release's
#: samples: how many samples it used (else the site's ``n_samples``).
PCA_SAMPLES_FACT = "pca_samples"

__all__ = [
    "DEFAULT_N_PCS",
    "EXPONENTS_INPUT",
    "FIXED_POINT_EXPONENTS",
    "FOUNDER_COUNTS",
    "MAX_ITERATIONS",
    "MAX_LD_WINDOW",
    "PCA_COUNTS_KIND",
    "PCA_FINISH_KIND",
    "PCA_ITERATE_KIND",
    "PCA_KIND",
    "PCA_LD_KIND",
    "PCA_REQUEST_KINDS",
    "PCA_SAMPLES_FACT",
    "PC_COVARIATE",
    "SCALED_ARRAYS",
    "SUMMABLE_FORMS",
    "block_width",
    "check_pca_params",
    "pc_covariate_problem",
    "pc_index",
    "pc_source",
]
