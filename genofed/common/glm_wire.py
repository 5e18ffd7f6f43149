"""What the GWAS (``glm``) protocol exchanges: request kinds, array names and layouts.

Both halves read this module so that a site and the coordinator agree on
what every released number means; a privacy officer reads it to know what
leaves the site for a ``glm`` analysis.

Predictors are ordered as plink2 orders them: ``x = [1, g, C_1, ..., C_k]``,
where ``g`` is the study-ALT allele dosage (0, 1, 2) after the harmonization
flip. The coordinator re-expresses results for plink2's A1 allele itself, so
a site never needs to know which allele is A1.

``glm_stats`` (one round; serves linear regression completely and is the
starting point of logistic regression, whose first Newton step is at beta=0)::

    allele_counts  int64   (V, 2)   called samples, ALT dosage, over ALL genotyped samples
    gz             float64 (V, k+2) sum of g * z over analysis samples with a call
    gg             float64 (V,)     sum of g^2 over the same samples
    zz             float64 (T,)     sum of z z^T (upper triangle) over all analysis samples
    miss_index     int64   (m,)     rows (of the request) with a missing call in an analysis sample
    miss_zz        float64 (m, T)   sum of z z^T over the analysis samples missing that call

with ``z = [1, C_1, ..., C_k, y]`` and ``T = (k+2)(k+3)/2``. Sizes depend on
variants and covariates only: ``(k+3)`` floats per variant, plus ``T`` floats
for each variant that has missing calls at the site.

``glm_logistic`` (one per Newton or Firth step; inputs ``beta`` (V, p) in the
site's orientation and ``firth`` (V,) bool)::

    grad    float64 (V, p)                  X^T (y - mu)
    hess    float64 (V, p(p+1)/2)           X^T W X, W = mu (1 - mu)
    loglik  float64 (V,)                    sum y log mu + (1 - y) log(1 - mu)
    third   float64 (F, p(p+1)(p+2)/6)      sum w (1/2 - mu) x_a x_b x_c, firth rows only

Symmetric arrays are sent as their unique entries, in the order of
:func:`multisets`. The third-moment tensor is what lets the coordinator form
Firth's penalized score ``X^T (y - mu + h (1/2 - mu))`` with the hat diagonal
``h_i = w_i x_i^T (X^T W X)^{-1} x_i`` from pooled sums in the same round:
``sum_i w_i (1/2 - mu_i) x_i x_i^T A x_i = third : A`` for the pooled inverse ``A``.
"""

from __future__ import annotations

from functools import cache
from itertools import combinations_with_replacement
from typing import Final

GLM_STATS_KIND: Final = "glm_stats"
GLM_LOGISTIC_KIND: Final = "glm_logistic"
GLM_REQUEST_KINDS: Final = frozenset({GLM_STATS_KIND, GLM_LOGISTIC_KIND})

#: Fact a site reports with ``glm_stats``: "binary" or "quantitative".
PHENOTYPE_TYPE_FACT: Final = "glm_phenotype_type"
BINARY: Final = "binary"
QUANTITATIVE: Final = "quantitative"


@cache
def multisets(n: int, degree: int) -> tuple[tuple[int, ...], ...]:
    """Index tuples of the unique entries of a symmetric ``n``-dimensional tensor."""
    return tuple(combinations_with_replacement(range(n), degree))


__all__ = [
    "BINARY",
    "GLM_LOGISTIC_KIND",
    "GLM_REQUEST_KINDS",
    "GLM_STATS_KIND",
    "PHENOTYPE_TYPE_FACT",
    "QUANTITATIVE",
    "multisets",
]
