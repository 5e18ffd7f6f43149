"""``dp`` release of per-variant genotype counts: calibrate, check, noise, charge.

The study names (epsilon, delta) per site. Under add/remove-one-individual
neighbouring, one person adds 1 to exactly one of the four cells (hom-ref,
het, hom-alt, missing) of every released variant, so the L2 sensitivity of
the ``(V, 4)`` count array is ``sqrt(V)``. The site calibrates the Gaussian
noise multiplier for the study's (epsilon, delta) with the RDP accountant,
refuses at once if its ledger cannot cover that release, computes the
counts, adds OpenDP discrete Gaussian noise of scale ``z * sqrt(V)``, and
commits the charge before the reply is built.

The variant table of the harmonization round is not noised: it describes the
genotyping array, not individuals (a site that holds private variant lists
should not allow the ``variants`` request).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genofed.common.errors import PolicyRefusal
from genofed.common.messages import Request
from genofed.common.reasons import NO_BUDGET
from genofed.common.study import Study
from genofed.site_agent.privacy.accounting import calibrate_noise_multiplier
from genofed.site_agent.privacy.ledger import LEDGER_FILE, Charge, Ledger, Release
from genofed.site_agent.privacy.noise import (
    IntSampler,
    add_discrete_gaussian,
    opendp_discrete_gaussian,
)
from genofed.site_agent.privacy.policy import SitePolicy

STATE_DIR = "state"


@dataclass(frozen=True)
class DpPlan:
    noise_multiplier: float
    sensitivity: float

    @property
    def scale(self) -> float:
        return self.noise_multiplier * self.sensitivity


def ledger_for(site_dir: Path, policy: SitePolicy) -> Ledger:
    if policy.budget is None:
        raise PolicyRefusal(NO_BUDGET, "this site has no privacy budget for dp releases")
    return Ledger(Path(site_dir) / STATE_DIR / LEDGER_FILE, policy.budget)


def plan_counts(study: Study, n_variants: int) -> DpPlan:
    assert study.privacy.epsilon is not None and study.privacy.delta is not None
    z = calibrate_noise_multiplier(study.privacy.epsilon, study.privacy.delta)
    return DpPlan(noise_multiplier=z, sensitivity=math.sqrt(max(n_variants, 1)))


def release_counts(
    ledger: Ledger,
    plan: DpPlan,
    counts: np.ndarray,
    request: Request,
    facts: dict[str, str],
    sampler: IntSampler = opendp_discrete_gaussian,
) -> tuple[np.ndarray, Charge]:
    """Noised counts and their charge, committed before they are returned; fills ``facts``."""
    noisy = add_discrete_gaussian(counts, plan.scale, sampler)
    receipt = ledger.charge(
        Release(
            study_sha256=request.study.sha256,
            analysis_id=request.analysis_id,
            run_id=request.run_id,
            noise_multiplier=plan.noise_multiplier,
            sensitivity=plan.sensitivity,
        )
    )
    facts["noise"] = json.dumps(
        {
            "mechanism": "discrete_gaussian (OpenDP)",
            "scale": plan.scale,
            "noise_multiplier": plan.noise_multiplier,
            "l2_sensitivity": plan.sensitivity,
            "neighbouring": "add/remove one individual",
        },
        sort_keys=True,
    )
    facts["epsilon_spent_in_period"] = f"{receipt.spent:.6g}"
    facts["budget_period"] = receipt.period
    return noisy, Charge(receipt.epsilon, ledger.budget.delta)


__all__ = ["DpPlan", "ledger_for", "plan_counts", "release_counts"]
