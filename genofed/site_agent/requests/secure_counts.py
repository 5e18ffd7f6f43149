"""Genotype counts for a secure sum: ``exact`` and ``distributed-dp`` release modes.

In these modes a site's counts leave only masked by Flower's SecAgg+
(:mod:`genofed.site_agent.secure_release` does the masking), so the
coordinator learns only the sum over at least three sites. The release path's
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
``min_cohort_size`` still applies (the release path checks it).
"""

from __future__ import annotations

import json

import numpy as np

from genofed.common.errors import PolicyRefusal
from genofed.common.messages import Request
from genofed.common.reasons import BAD_REQUEST, SECURE_AGGREGATION_REQUIRED, VALUE_OUT_OF_RANGE
from genofed.common.secure_sum import CLIPPING_RANGE, MIN_SECURE_SITES, range_problem
from genofed.common.study import SECURE_MODES
from genofed.site_agent.context import Answer, RequestContext
from genofed.site_agent.privacy.accounting import epsilon_of
from genofed.site_agent.privacy.distributed import NoiseShare, noise_share
from genofed.site_agent.privacy.dp_release import plan_counts
from genofed.site_agent.privacy.ledger import Charge, Ledger, Release
from genofed.site_agent.privacy.noise import (
    IntSampler,
    add_discrete_gaussian,
    opendp_discrete_gaussian,
)
from genofed.site_agent.stats.genotype_counts import flip_counts, genotype_counts

#: The mechanism a ``distributed-dp`` charge is recorded under in the ledger.
DISTRIBUTED_MECHANISM = "distributed_discrete_gaussian"


def serve_secure_counts(
    ctx: RequestContext,
    counted: np.ndarray | None = None,
    sampler: IntSampler = opendp_discrete_gaussian,
) -> Answer:
    """This site's counts for the secure sum (unmasked; the caller seals them).

    ``counted``: the ``.fam`` rows counted (the analyses' ``samples_with``), None for all.
    """
    study, sealer, bed = ctx.study, ctx.sealer, ctx.bed
    index, flip = ctx.variant_plan
    mode = study.privacy.mode
    if sealer is None:
        raise PolicyRefusal(
            SECURE_AGGREGATION_REQUIRED,
            f"this study's release mode is {mode!r}: its genotype counts leave this site only "
            "masked by SecAgg+, and this request asked for them in the clear",
        )
    if mode not in SECURE_MODES:
        raise PolicyRefusal(
            BAD_REQUEST, f"a secure-sum round was started for a study in mode {mode!r}"
        )
    sealer.check(study.privacy.noise_shares or MIN_SECURE_SITES)
    share: NoiseShare | None = None
    ledger: Ledger | None = None
    if mode == "distributed-dp":
        assert study.privacy.noise_shares is not None
        ledger = ctx.ledger()
        plan = plan_counts(study, len(index))
        share = noise_share(
            plan.noise_multiplier, plan.sensitivity, study.privacy.noise_shares, 4 * len(index)
        )
        ledger.check(share.charged_noise_multiplier)  # refuse before computing anything
    counts = np.zeros((len(index), 4), dtype=np.int64)
    for start, dosages in bed.iter_dosages(index, sample_idx=counted):
        counts[start : start + len(dosages)] = genotype_counts(dosages)
    counts = flip_counts(counts, flip)
    if share is not None:
        counts = add_discrete_gaussian(counts, share.share_scale, sampler)
    problem = range_problem(counts)
    if problem is not None:
        raise PolicyRefusal(VALUE_OUT_OF_RANGE, problem)
    facts = {"release_mode": mode}
    if share is None:
        facts["noise"] = json.dumps(
            {
                "mechanism": "none",
                "mode": mode,
                "release": "SecAgg+ masked vector: the coordinator learns only the sum",
                "clipping_range": CLIPPING_RANGE,
            },
            sort_keys=True,
        )
        return Answer({"genotype_counts": counts}, facts)
    assert ledger is not None
    charge = _charge(ledger, share, ctx.request, facts)
    return Answer({"genotype_counts": counts}, facts, charge)


def _charge(
    ledger: Ledger,
    share: NoiseShare,
    request: Request,
    facts: dict[str, str],
) -> Charge:
    receipt = ledger.charge(
        Release(
            study_sha256=request.study.sha256,
            analysis_id=request.analysis_id,
            run_id=request.run_id,
            noise_multiplier=share.charged_noise_multiplier,
            sensitivity=share.sensitivity,
            mechanism=DISTRIBUTED_MECHANISM,
        )
    )
    facts["noise"] = json.dumps(
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
    facts["epsilon_spent_in_period"] = f"{receipt.spent:.6g}"
    facts["budget_period"] = receipt.period
    return Charge(receipt.epsilon, ledger.budget.delta)


__all__ = ["DISTRIBUTED_MECHANISM", "serve_secure_counts"]
