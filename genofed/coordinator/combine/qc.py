"""Pooled variant QC: plink2's variant filters on the pooled genotype counts.

The filters, their thresholds and their order are plink2's (v2.00a3.5,
``plink2.cc`` ``Plink2Core`` and ``plink2_filter.cc``):

1. ``extract`` / ``exclude`` (``--extract``, ``--exclude``): by variant ID,
   when the variants are loaded.
2. ``withheld``: not a plink2 rule. A variant some site withheld
   (small-cell suppression) or whose exact pooled counts hold a small cell
   has no complete pooled counts, so no filter can be checked on it: QC
   removes it.
3. ``geno`` (``EnforceGenoThresh``): removed when its missing calls exceed
   ``int(geno * (1 + 2^-44) * n_samples)``, ``n_samples`` every sample.
4. ``hwe`` (``EnforceHweThresh``): the exact test of :mod:`.hardy` (mid-p
   with ``midp``); removed when ``p < hwe * (1 - 2^-44)``. A variant with no
   calls is kept. With ``keep_fewhet`` a variant with ``het^2 <= 4 hom1
   hom2`` (no excess of heterozygotes) is kept without a test.
5. ``maf`` then ``mac`` (``EnforceFreqConstraints``, one plink2 count for
   both): removed when ``min(f, 1 - f) < maf * (1 - 2^-44)``, ``f`` the REF
   frequency (0.5 when every call is missing, as ``ComputeAlleleFreqs``
   sets it), or when the minor allele count is below ``mac``.

Every rule is a property of one variant, so the kept set does not depend on
the order; the order decides which rule a variant that fails several is
counted against (the funnel), as in plink2's log. ``--geno`` counts every
sample; ``--hwe``, ``--maf`` and ``--mac`` the founders only (samples whose
``.fam``/``.psam`` lists no parent), as plink2 does without
``--nonfounders``: sites whose files list parents send their founders'
counts too.

Pure core: arrays in, a frozen dataclass out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from genofed.coordinator.combine.hardy import hwe_exact_p

__all__ = ["QC_RULES", "QCResult", "variant_qc"]

#: plink2's kSmallEpsilon (2^-44), which widens each threshold against rounding.
SMALL_EPSILON = 2.0**-44
#: The rules in the order they are applied (and counted).
QC_RULES = ("extract", "exclude", "withheld", "geno", "hwe", "maf", "mac")


@dataclass(frozen=True)
class QCResult:
    """Which variants pass, and which rule removed each of the others."""

    #: variants left after every rule
    keep: npt.NDArray[np.bool_]
    #: per rule, in :data:`QC_RULES` order (rules that are off included, all False):
    #: the variants this rule removed (not removed by an earlier rule)
    removed: tuple[tuple[str, npt.NDArray[np.bool_]], ...]

    def removed_by(self, rule: str) -> npt.NDArray[np.bool_]:
        return dict(self.removed)[rule]

    def before(self, rule: str) -> npt.NDArray[np.bool_]:
        """The variants still in when ``rule`` is applied."""
        still = np.ones(self.keep.shape, dtype=np.bool_)
        for name, mask in self.removed:
            if name == rule:
                return still
            still &= ~mask
        raise KeyError(rule)

    def funnel(self, active: Sequence[str]) -> list[dict[str, object]]:
        """Per active rule: variants removed and left (the report's funnel)."""
        left = int(self.keep.size)
        rows: list[dict[str, object]] = []
        for name, mask in self.removed:
            n = int(mask.sum())
            left -= n
            if name in active or n:
                rows.append({"rule": name, "removed": n, "left": left})
        return rows


def variant_qc(
    counts: npt.ArrayLike,
    ids: Sequence[str],
    *,
    maf: float | None = None,
    mac: int | None = None,
    geno: float | None = None,
    hwe: float | None = None,
    hwe_midp: bool = False,
    hwe_keep_fewhet: bool = False,
    extract: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    withheld: npt.ArrayLike | None = None,
    founder_counts: npt.ArrayLike | None = None,
    hwe_counts: npt.ArrayLike | None = None,
) -> QCResult:
    """plink2's ``--extract --exclude --geno --hwe --maf --mac`` on pooled counts.

    ``counts``: ``(n_variants, 4)`` pooled ``[HOM_REF, HET, HOM_ALT, MISSING]``;
    ``ids``: the variant IDs; ``withheld``: variants whose counts are incomplete;
    ``founder_counts``: the founders' counts, which plink2 tests ``--hwe``,
    ``--maf`` and ``--mac`` on (default: ``counts``, every sample a founder);
    ``hwe_counts``: the counts ``--hwe`` tests instead (the controls', ``hwe_controls``).
    """
    c = np.asarray(counts)
    if c.ndim != 2 or c.shape[1] != 4 or not np.issubdtype(c.dtype, np.integer):
        raise ValueError(f"counts must be an integer array of shape (n_variants, 4), got {c.shape}")
    c = c.astype(np.int64, copy=False)
    m = c.shape[0]
    if len(ids) != m:
        raise ValueError(f"{len(ids)} variant IDs for {m} variants")
    id_arr = np.asarray(ids, dtype=str)
    hold = np.zeros(m, dtype=np.bool_) if withheld is None else np.asarray(withheld, dtype=bool)
    missing = c[:, 3]
    f = c if founder_counts is None else np.asarray(founder_counts).astype(np.int64, copy=False)
    if f.shape != c.shape:
        raise ValueError(f"founder counts of shape {f.shape} beside counts of shape {c.shape}")
    hom_ref, het, hom_alt = f[:, 0], f[:, 1], f[:, 2]
    fails: dict[str, npt.NDArray[np.bool_]] = {}
    off = np.zeros(m, dtype=np.bool_)
    fails["extract"] = off if extract is None else ~np.isin(id_arr, np.asarray(extract, dtype=str))
    fails["exclude"] = np.isin(id_arr, np.asarray(exclude, dtype=str)) if exclude else off
    fails["withheld"] = hold
    if geno is not None:
        n_samples = c.sum(axis=1)
        most = (geno * (1 + SMALL_EPSILON) * n_samples.astype(np.float64)).astype(np.int64)
        fails["geno"] = missing > most
    if hwe is not None:
        h = f if hwe_counts is None else np.asarray(hwe_counts).astype(np.int64, copy=False)
        if h.shape != c.shape:
            raise ValueError(f"HWE counts of shape {h.shape} beside counts of shape {c.shape}")
        h_ref, h_het, h_alt = h[:, 0], h[:, 1], h[:, 2]
        p = hwe_exact_p(h_het, h_ref, h_alt, midp=hwe_midp)
        failed = p < hwe * (1 - SMALL_EPSILON)
        if hwe_keep_fewhet:
            failed &= h_het * h_het > 4 * h_ref * h_alt
        fails["hwe"] = failed
    if maf is not None or mac is not None:
        ref_ct = 2 * hom_ref + het
        alt_ct = 2 * hom_alt + het
        if maf is not None:
            obs = ref_ct + alt_ct
            with np.errstate(invalid="ignore", divide="ignore"):
                ref_f = np.where(obs > 0, ref_ct / np.maximum(obs, 1).astype(np.float64), 0.5)
            fails["maf"] = np.minimum(ref_f, 1.0 - ref_f) < maf * (1 - SMALL_EPSILON)
        if mac is not None:
            fails["mac"] = np.minimum(ref_ct, alt_ct) < mac
    still = np.ones(m, dtype=np.bool_)
    removed = []
    for rule in QC_RULES:
        hit = fails.get(rule, off) & still
        removed.append((rule, hit))
        still &= ~hit
    return QCResult(keep=still, removed=tuple(removed))
