"""The site's refusal paths, as data: one case per way a site says no.

Shared by the in-process tests (``tests/unit/test_privacy_refusals_inprocess.py``)
and the simulation-engine tests (``tests/unit/test_privacy_refusals_simulation.py``),
so both engines exercise exactly the same paths. Each case copies a set of
sites, edits their policy or approval state, and names the study, the
signature and the reason code the coordinator must see.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from genofed.common.signing import (
    StudySignature,
    generate_private_key,
    public_key_text,
    sign_study,
)
from genofed.common.study import Study, study_from_mapping
from genofed.site_agent.privacy.approvals import refuse
from genofed.site_agent.privacy.policy import POLICY_FILE

ANALYST = generate_private_key()
STRANGER = generate_private_key()


def _study(name: str, analyses: list[dict[str, object]], privacy: dict[str, object] | None = None):
    raw: dict[str, object] = {"study": {"name": name}, "analysis": analyses}
    if privacy is not None:
        raw["privacy"] = privacy
    return study_from_mapping(raw, path=Path("<test>"))


QC = _study("qc", [{"kind": "freq"}, {"kind": "hardy"}])
DP_QC = _study("dpqc", [{"kind": "freq"}], {"mode": "dp", "epsilon": 5.0})
GWAS = _study("gwas", [{"kind": "glm", "phenotype": "QPHENO", "covariates": ["AGE", "SEX"]}])
AUTO_RULE = """
[[policy.auto_approve]]
name = "studies from alice"
analysts = ["alice"]
"""


def site_policy(*, auto_approve: bool = True, extra: str = "", tables: str = "") -> str:
    """A real (non-demo) policy trusting ANALYST as alice; ``extra`` joins [policy]."""
    return f"""
[policy]
version = 1
allowed_analyses = ["variants", "freq", "hardy", "glm"]
allowed_release_modes = ["plain", "dp"]
min_cohort_size = 10
min_cell_count = 0
{extra}

[policy.budget]
epsilon = 2.0
delta = 1e-6
period = "lifetime"

[policy.analysis.glm]
max_covariates = 1
{tables}

[[policy.trusted_analysts]]
name = "alice"
public_key = "{public_key_text(ANALYST.public_key())}"
{AUTO_RULE if auto_approve else ""}
"""


@dataclass(frozen=True)
class RefusalCase:
    name: str
    code: str
    study: Study = QC
    signer: object | None = ANALYST  # a private key, None (unsigned) or "tampered"
    policy: str | None = None  # None: the file is deleted
    prepare: Callable[[Path, Study], None] | None = None  # after the policy is written

    def signature(self) -> StudySignature | None:
        if self.signer is None:
            return None
        if self.signer == "tampered":  # signed, then changed: the signature covers another study
            return sign_study(_study("qc", [{"kind": "freq"}]), ANALYST)
        return sign_study(self.study, self.signer)  # type: ignore[arg-type]

    def sites(self, cohort_sites: list[Path], root: Path) -> list[Path]:
        copies = []
        for site in cohort_sites:
            target = root / site.name
            shutil.copytree(site, target)
            policy = target / POLICY_FILE
            if self.policy is None:
                policy.unlink()
            else:
                policy.write_text(self.policy)
            if self.prepare is not None:
                self.prepare(target, self.study)
            copies.append(target)
        return copies


def _refused_by_officer(site: Path, study: Study) -> None:
    refuse(site, study.sha256, by="officer", reason="not in our data agreement")


CASES = (
    RefusalCase("unsigned", "UNSIGNED_STUDY", signer=None, policy=site_policy()),
    RefusalCase("tampered", "INTEGRITY", signer="tampered", policy=site_policy()),
    RefusalCase("unknown analyst", "INTEGRITY", signer=STRANGER, policy=site_policy()),
    RefusalCase("over budget", "BUDGET_EXCEEDED", study=DP_QC, policy=site_policy()),
    RefusalCase(
        "cohort too small",
        "COHORT_TOO_SMALL",
        policy=site_policy(extra="").replace("min_cohort_size = 10", "min_cohort_size = 100000"),
    ),
    RefusalCase(
        "analysis not allowed",
        "ANALYSIS_NOT_ALLOWED",
        policy=site_policy().replace('"freq", "hardy", "glm"', '"freq", "glm"'),
    ),
    RefusalCase("policy missing", "NO_POLICY", policy=None),
    RefusalCase(
        "policy invalid",
        "POLICY_INVALID",
        policy=site_policy(extra="colour = 1"),
    ),
    RefusalCase("pending approval", "PENDING_APPROVAL", policy=site_policy(auto_approve=False)),
    RefusalCase(
        "refused study", "STUDY_REFUSED", policy=site_policy(), prepare=_refused_by_officer
    ),
    RefusalCase(
        "parameter out of bounds", "PARAMETER_OUT_OF_BOUNDS", study=GWAS, policy=site_policy()
    ),
    RefusalCase(
        "secure aggregation required",
        "SECURE_AGGREGATION_REQUIRED",
        policy=site_policy(extra="require_secure_aggregation = true"),
    ),
)

__all__ = ["ANALYST", "CASES", "DP_QC", "GWAS", "QC", "STRANGER", "RefusalCase", "site_policy"]
