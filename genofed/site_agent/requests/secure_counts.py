"""Genotype counts for a secure sum: ``exact`` and ``distributed-dp`` release modes.

In these modes a site's counts leave only masked by Flower's SecAgg+
(:mod:`genofed.site_agent.secure_release` does the masking), so the
coordinator learns only the sum over at least three sites. The handler's
checks (signature, policy, cohort size, approval) have run before
:func:`serve_secure_counts` is called; here the site

1. refuses a request for these counts in the clear (``SECURE_AGGREGATION_REQUIRED``);
2. checks the SecAgg+ round the coordinator set up (:class:`Sealer.check`:
   at least three participants, the exact-sum settings);
3. ``distributed-dp``: checks its ledger for its noise share before computing;
4. computes the counts; ``distributed-dp``: adds its discrete Gaussian share
   (OpenDP) of scale ``sigma / sqrt(noise_shares)``
   (:mod:`genofed.site_agent.privacy.distributed`);
5. refuses (``VALUE_OUT_OF_RANGE``) a vector SecAgg+ would clip;
6. ``distributed-dp``: commits the ledger charge before anything is masked.

Small-cell suppression is **not** applied: the site's vector is masked and
only the sum over >= 3 sites is learned, so a small cell at one site is not
released as such, and a per-site ``suppressed`` flag would itself leak which
variants are rare at which site (docs/decisions/0003-secure-aggregation.md).
``min_cohort_size`` still applies (the handler checks it).
"""

from __future__ import annotations

import json
from typing import Protocol

import numpy as np

from genofed.common.errors import PolicyRefusal
from genofed.common.secure_sum import CLIPPING_RANGE, MIN_SECURE_SITES, range_problem
from genofed.common.study import SECURE_MODES, Study
from genofed.common.wire.records import NamedArrays
from genofed.protos.v1 import genofed_pb2 as pb
from genofed.site_agent.io.plink import BedFile
from genofed.site_agent.privacy.accounting import epsilon_of
from genofed.site_agent.privacy.distributed import NoiseShare, noise_share
from genofed.site_agent.privacy.dp_release import ledger_for, plan_counts
from genofed.site_agent.privacy.ledger import Ledger, Release
from genofed.site_agent.privacy.noise import (
    IntSampler,
    add_discrete_gaussian,
    opendp_discrete_gaussian,
)
from genofed.site_agent.privacy.policy import SitePolicy
from genofed.site_agent.sitedir import SiteConfig
from genofed.site_agent.stats.genotype_counts import flip_counts, genotype_counts

#: The mechanism a ``distributed-dp`` charge is recorded under in the ledger.
DISTRIBUTED_MECHANISM = "distributed_discrete_gaussian"


class Sealer(Protocol):
    """Turns a site's vector into what leaves for a secure sum (SecAgg+ masking)."""

    def check(self, min_participants: int) -> None:
        """Raise :class:`PolicyRefusal` before anything is computed if the round is unsafe.

        ``min_participants``: the fewest sites the secure sum may have for this study.
        """
        ...

    def seal(self, arrays: NamedArrays) -> NamedArrays:
        """The masked arrays that leave instead of ``arrays``."""
        ...


def serve_secure_counts(
    config: SiteConfig,
    policy: SitePolicy,
    study: Study,
    request: pb.AnalysisRequest,
    reply: pb.SiteReply,
    bed: BedFile,
    index: np.ndarray,
    flip: np.ndarray,
    sealer: Sealer | None,
    sampler: IntSampler = opendp_discrete_gaussian,
) -> NamedArrays:
    """This site's counts for the secure sum (unmasked; the caller seals them)."""
    mode = study.privacy.mode
    if sealer is None:
        raise PolicyRefusal(
            "SECURE_AGGREGATION_REQUIRED",
            f"this study's release mode is {mode!r}: its genotype counts leave this site only "
            "masked by SecAgg+, and this request asked for them in the clear",
        )
    if mode not in SECURE_MODES:
        raise PolicyRefusal(
            "BAD_REQUEST", f"a secure-sum round was started for a study in mode {mode!r}"
        )
    sealer.check(study.privacy.noise_shares or MIN_SECURE_SITES)
    share: NoiseShare | None = None
    ledger: Ledger | None = None
    if mode == "distributed-dp":
        assert study.privacy.noise_shares is not None
        ledger = ledger_for(config.directory, policy)
        plan = plan_counts(study, len(index))
        share = noise_share(
            plan.noise_multiplier, plan.sensitivity, study.privacy.noise_shares, 4 * len(index)
        )
        ledger.check(share.charged_noise_multiplier)  # refuse before computing anything
    counts = np.zeros((len(index), 4), dtype=np.int64)
    for start, dosages in bed.iter_dosages(index):
        counts[start : start + len(dosages)] = genotype_counts(dosages)
    counts = flip_counts(counts, flip)
    if share is not None:
        counts = add_discrete_gaussian(counts, share.share_scale, sampler)
    problem = range_problem(counts)
    if problem is not None:
        raise PolicyRefusal("VALUE_OUT_OF_RANGE", problem)
    reply.facts["release_mode"] = mode
    if share is None:
        reply.facts["noise"] = json.dumps(
            {
                "mechanism": "none",
                "mode": mode,
                "release": "SecAgg+ masked vector: the coordinator learns only the sum",
                "clipping_range": CLIPPING_RANGE,
            },
            sort_keys=True,
        )
        return {"genotype_counts": counts}
    assert ledger is not None
    _charge(ledger, share, request, reply)
    return {"genotype_counts": counts}


def _charge(
    ledger: Ledger,
    share: NoiseShare,
    request: pb.AnalysisRequest,
    reply: pb.SiteReply,
) -> None:
    receipt = ledger.charge(
        Release(
            study_sha256=request.study.study.sha256,
            analysis_id=request.analysis_id,
            run_id=request.run_id,
            noise_multiplier=share.charged_noise_multiplier,
            sensitivity=share.sensitivity,
            mechanism=DISTRIBUTED_MECHANISM,
        )
    )
    reply.receipt.epsilon_charged = receipt.epsilon
    reply.receipt.delta_charged = ledger.budget.delta
    reply.facts["noise"] = json.dumps(
        {
            "mechanism": "distributed discrete_gaussian share (OpenDP) under SecAgg+",
            "mode": "distributed-dp",
            "share_scale": share.share_scale,
            "noise_shares": share.shares,
            "target_noise_multiplier": share.noise_multiplier,
            "charged_noise_multiplier": share.charged_noise_multiplier,
            "l2_sensitivity": share.sensitivity,
            "tau": share.tau,
            "epsilon_if_alone": epsilon_of([share.alone_noise_multiplier], ledger.budget.delta),
            "assumption": (
                f"honest-but-curious coordinator; at least {share.shares} sites' shares "
                "(this one included) are in the secure sum"
            ),
            "neighbouring": "add/remove one individual",
        },
        sort_keys=True,
    )
    reply.facts["epsilon_spent_in_period"] = f"{receipt.spent:.6g}"
    reply.facts["budget_period"] = receipt.period


__all__ = ["DISTRIBUTED_MECHANISM", "Sealer", "serve_secure_counts"]
