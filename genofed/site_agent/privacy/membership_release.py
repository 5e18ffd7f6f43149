"""The membership check of a count release: estimate, withhold, and say so in the audit.

Called by the count analyses (:mod:`genofed.site_agent.requests.counts`) in
``plain`` mode, after small-cell suppression and the guard's rule, when the
policy sets ``max_membership_power``. It estimates the power of the
likelihood-ratio membership test on the variants about to leave
(:mod:`genofed.common.membership`), against the policy's
``membership_reference`` panel where it has the variant and the site's own
frequencies elsewhere, and withholds variants (greedy, most separation first)
until the power is at most the limit. Withheld variants join the
``suppressed`` array, so the coordinator prints them as ``NA`` and lists them
in ``suppressed.tsv`` as it does small cells; nothing says why.

With a :class:`~genofed.site_agent.privacy.membership_history.History`
(the account of the people the release sums over), the variants released
over them before and not repeated here count in the power, and the variants
this release lets out are added to it.

The decision is recorded in the release's audit entry (its ``noise`` field,
``{"mechanism": "none", "membership": {...}}``: the power before and after,
the limit, the false-positive rate, the reference, the numbers of variants
checked, withheld and released before over the same people) and the reply
fact :data:`MEMBERSHIP_POWER_FACT` carries the power after withholding.

``glm_stats`` runs the same check over its analysis samples' genotype counts
(:mod:`genofed.site_agent.requests.glm`); the variants it withheld are recorded
beside the study's genotype cache (:func:`record_withheld`) and a Newton round
naming one is refused (:func:`refuse_withheld`); ``pca_counts`` likewise, for
the LD and product rounds after it (:mod:`genofed.site_agent.requests.pca`),
and ``prs_match`` for the score rounds (:mod:`genofed.site_agent.requests.prs`).
``dp`` releases are not checked (their noise bounds every inference,
membership included); ``exact`` (SecAgg+) releases and ``pgx`` are not
checked yet (ADR 0007).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from genofed.common.errors import PolicyRefusal
from genofed.common.membership import (
    LRTerms,
    panel_terms,
    site_terms,
    withhold_for_power,
)
from genofed.common.reasons import DISCLOSURE_RISK
from genofed.common.receipts import MEMBERSHIP_POWER_FACT
from genofed.site_agent.io.genotypes import GenotypeFile
from genofed.site_agent.privacy.membership_history import History, variant_keys
from genofed.site_agent.privacy.policy import SitePolicy
from genofed.site_agent.privacy.reference_panel import read_panel


@dataclass(frozen=True)
class MembershipDecision:
    """Variants to withhold for the membership limit, and the facts that record it."""

    withheld: npt.NDArray[np.bool_]
    facts: dict[str, str]


def release_terms(
    policy: SitePolicy,
    counts: npt.NDArray[np.integer],
    ids: npt.ArrayLike,
    ref: npt.ArrayLike,
    alt: npt.ArrayLike,
) -> tuple[LRTerms, int]:
    """Per-variant LR terms of a count table (study orientation) and how many used the panel.

    ``ids``, ``ref``, ``alt``: each row's variant ID and alleles, ALT being the
    allele whose copies ``counts`` counts.
    """
    terms = site_terms(counts)
    if policy.membership_reference is None:
        return terms, 0
    freq = read_panel(policy.membership_reference).alt_frequency(ids, ref, alt)
    matched = ~np.isnan(freq)
    if not matched.any():
        return terms, 0
    panel = panel_terms(np.asarray(counts)[matched], freq[matched])
    for name in ("shift", "var0", "var1", "exclusion"):
        getattr(terms, name)[matched] = getattr(panel, name)
    return terms, int(matched.sum())


def check_release(
    policy: SitePolicy,
    counts: npt.NDArray[np.integer],
    withheld: npt.NDArray[np.bool_],
    ids: npt.ArrayLike,
    ref: npt.ArrayLike,
    alt: npt.ArrayLike,
    history: History | None = None,
) -> MembershipDecision:
    """The variants to withhold (beyond ``withheld``) to keep the power under the limit.

    ``history``: the account of the people this release sums over; the
    variants released over them before (and not repeated here) count in the
    power, and the variants this release lets out are added to it.
    """
    limit = policy.max_membership_power
    if limit is None:
        raise ValueError("the policy sets no max_membership_power")
    terms, on_panel = release_terms(policy, counts, ids, ref, alt)
    released = ~np.asarray(withheld, dtype=np.bool_)
    keys = variant_keys(ids, ref, alt) if history is not None else []
    prior, n_before = history.earlier(keys) if history is not None else (None, 0)
    outcome = withhold_for_power(
        terms, policy.membership_fpr, limit, released=released, prior=prior
    )
    if history is not None:
        out = np.flatnonzero(released & ~outcome.withheld)
        history.record([keys[i] for i in out], terms.table()[out])
    record = {
        "test": "likelihood ratio (Sankararaman et al. 2009), normal approximation",
        "power_before": round(outcome.power_before, 6),
        "power": round(outcome.power_after, 6),
        "max_power": limit,
        "fpr": policy.membership_fpr,
        "reference": "panel" if on_panel else "site frequencies",
        "variants_on_panel": on_panel,
        "variants_checked": int(released.sum()),
        "variants_withheld": outcome.n_withheld,
        "variants_released_before": n_before,
    }
    facts = {
        MEMBERSHIP_POWER_FACT: f"{outcome.power_after:.4g}",
        "noise": json.dumps({"mechanism": "none", "membership": record}, sort_keys=True),
    }
    return MembershipDecision(outcome.withheld, facts)


def people_of(bed: GenotypeFile, rows: npt.NDArray[np.int64]) -> list[str]:
    """``FID<tab>IID`` of the samples at ``rows`` of ``bed`` (a release's people)."""
    fid, iid = bed.samples.fid[rows], bed.samples.iid[rows]
    return [f"{f}\t{i}" for f, i in zip(fid, iid, strict=True)]


def check_variants(
    policy: SitePolicy,
    site_dir: Path,
    bed: GenotypeFile,
    rows: npt.NDArray[np.int64],
    counts: npt.NDArray[np.integer],
    withheld: npt.NDArray[np.bool_],
    index: npt.NDArray[np.int64],
    flip: npt.NDArray[np.bool_],
) -> MembershipDecision:
    """:func:`check_release` of ``counts`` (study orientation) of ``bed``'s variants
    ``index`` (``flip``: the study's ALT is the site's REF) over the samples ``rows``,
    with the history of those people in ``site_dir``."""
    variants = bed.variants
    ref = np.where(flip, variants.alt[index], variants.ref[index])
    alt = np.where(flip, variants.ref[index], variants.alt[index])
    history = History.open(site_dir, people_of(bed, rows))
    return check_release(policy, counts, withheld, variants.id[index], ref, alt, history)


#: File beside a multi-round analysis's genotype cache: the variants (site indexes) its
#: first round withheld, small cells and the membership check together.
WITHHELD_FILE = "withheld-variants.npy"


def record_withheld(directory: Path, variants: npt.NDArray[np.int64]) -> None:
    """Record (atomically) which variants the first round withheld."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = directory / (WITHHELD_FILE + ".tmp")
    with tmp.open("wb") as fh:
        np.save(fh, np.asarray(variants, dtype=np.int64))
    tmp.replace(directory / WITHHELD_FILE)


def refuse_withheld(
    directory: Path, index: npt.NDArray[np.int64], first_round: str = "glm_stats"
) -> None:
    """Refuse a later round that names a variant the first round withheld (or has no record).

    ``DISCLOSURE_RISK``: only a hostile coordinator (or changed data) asks for
    one; without a record (the first round ran before the policy set the
    limit), the study has to be run again.
    """
    path = Path(directory) / WITHHELD_FILE
    if not path.exists():
        raise PolicyRefusal(
            DISCLOSURE_RISK,
            "this site has no record of which variants its first round withheld under "
            "its membership limit; run the study again",
        )
    if np.isin(index, np.load(path)).any():
        raise PolicyRefusal(
            DISCLOSURE_RISK,
            f"the request includes a variant this site withheld from {first_round}",
        )


__all__ = [
    "WITHHELD_FILE",
    "History",
    "MembershipDecision",
    "check_release",
    "check_variants",
    "people_of",
    "record_withheld",
    "refuse_withheld",
    "release_terms",
]
