"""``exact`` and ``distributed-dp`` modes without Flower: refusals and what the site audits.

The SecAgg+ masking itself needs a Flower engine (test_secure_study_simulation.py);
here a stand-in sealer replaces it, to check the site's order of checks, its
ledger charge and its audit entry, and the coordinator's up-front refusals.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from genofed.common.errors import GenoFedError, PolicyRefusal
from genofed.common.messages import Request, Status
from genofed.common.study import Study, study_from_mapping
from genofed.common.wire.records import NamedArrays, signed_study
from genofed.coordinator.receipt_check import WARN, ReceiptCheck
from genofed.coordinator.runner import run_study
from genofed.site_agent.audit.log import read_site_log
from genofed.site_agent.privacy.accounting import calibrate_noise_multiplier
from genofed.site_agent.privacy.ledger import LEDGER_FILE, Budget, Ledger
from genofed.site_agent.privacy.policy import POLICY_FILE, check_study, load_policy
from genofed.site_agent.release import handle_request
from genofed.synth import write_cohorts
from tests.harness import InProcessTransport

N_VARIANTS = 30


def _study(privacy: dict[str, object]) -> Study:
    return study_from_mapping(
        {"study": {"name": "sec"}, "privacy": privacy, "analysis": [{"kind": "freq"}]},
        path=Path("<test>"),
    )


EXACT = _study({"mode": "exact"})
DDP = _study({"mode": "distributed-dp", "epsilon": 2.0, "noise_shares": 3})


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory):
    return write_cohorts(
        tmp_path_factory.mktemp("sec") / "c", sites=3, samples=90, variants=N_VARIANTS, seed=4
    )


@pytest.fixture
def site(cohort, tmp_path: Path) -> Path:
    target = tmp_path / "site-a"
    shutil.copytree(cohort.sites[0], target)
    return target


def _counts_request(study: Study) -> tuple[Request, NamedArrays]:
    request = Request(
        study=signed_study(study, None),
        analysis_id="freq",
        kind="genotype_counts",
        step="genotype_counts",
        round=2,
        run_id="run-1",
    )
    inputs = {
        "variant_index": np.arange(N_VARIANTS, dtype=np.int64),
        "flip": np.zeros(N_VARIANTS, dtype=np.bool_),
    }
    return request, inputs


class StandInSealer:
    """Records what it was asked to seal; 'masks' by adding a constant (not a real mask)."""

    def __init__(self, refuse: str | None = None) -> None:
        self.refuse = refuse
        self.sealed: NamedArrays | None = None
        self.min_participants = 0

    def check(self, min_participants: int) -> None:
        self.min_participants = min_participants
        if self.refuse:
            raise PolicyRefusal("SECURE_AGGREGATION_SETTINGS", self.refuse)

    def seal(self, vector: np.ndarray) -> NamedArrays:
        self.sealed = {"genotype_counts": vector}
        return {"secagg_masked_0": vector + 12345}


def test_exact_study__needs_flowers_secaggplus_and_three_sites(cohort, tmp_path: Path) -> None:
    sites = list(cohort.sites)
    with pytest.raises(GenoFedError, match="needs Flower's SecAgg\\+"):
        run_study(EXACT, InProcessTransport(sites), tmp_path / "r3", engine="t")
    with pytest.raises(GenoFedError, match="needs Flower's SecAgg\\+"):  # receipts wrap it
        run_study(
            EXACT,
            InProcessTransport(sites),
            tmp_path / "r3",
            engine="t",
            receipts=ReceiptCheck({}, WARN),
        )
    with pytest.raises(GenoFedError, match="at least 3 sites"):
        run_study(EXACT, InProcessTransport(sites[:2]), tmp_path / "r2", engine="t")
    assert not (tmp_path / "r3").exists() and not (tmp_path / "r2").exists()


def test_site__refuses_secure_mode_counts_asked_for_in_the_clear(site: Path) -> None:
    for study in (EXACT, DDP):
        reply, arrays = handle_request(site, *_counts_request(study))
        assert reply.status == Status.REFUSED
        assert reply.reason_code == "SECURE_AGGREGATION_REQUIRED"
        assert arrays == {}


def test_site__audits_the_masked_vector_not_the_counts(site: Path) -> None:
    sealer = StandInSealer()
    reply, arrays = handle_request(site, *_counts_request(EXACT), sealer=sealer)
    assert reply.status == Status.OK, reply.message
    assert list(arrays) == ["secagg_masked_0"]
    assert sealer.sealed is not None  # the counts alone: no suppression flags
    counts = sealer.sealed["genotype_counts"]
    assert counts.shape == (N_VARIANTS, 4)
    assert np.all(counts.sum(axis=1) == int(reply.facts["n_samples"]))  # exact, unnoised
    assert [a.name for a in reply.arrays] == ["secagg_masked_0"]
    assert reply.facts["release_mode"] == "exact"
    assert json.loads(reply.facts["noise"])["mode"] == "exact"  # the audit entry's noise field
    assert reply.receipt.audited and reply.receipt.epsilon_charged == 0.0
    text = read_site_log(site).entries_text()
    assert reply.arrays[0].sha256 in text  # the audit entry records the masked vector's hash


def test_site__refuses_an_unsafe_round_before_computing(site: Path) -> None:
    reply, arrays = handle_request(
        site, *_counts_request(EXACT), sealer=StandInSealer(refuse="2 participants")
    )
    assert (reply.status, reply.reason_code) == (
        Status.REFUSED,
        "SECURE_AGGREGATION_SETTINGS",
    )
    assert arrays == {}
    assert "2 participants" in read_site_log(site).entries_text().splitlines()[-1]


def test_site__policy_without_exact_refuses(site: Path) -> None:
    policy = site / POLICY_FILE
    policy.write_text(
        policy.read_text().replace(
            'allowed_release_modes = ["plain", "dp", "exact", "distributed-dp"]',
            'allowed_release_modes = ["plain", "dp"]',
        )
    )
    reply, _ = handle_request(site, *_counts_request(EXACT), sealer=StandInSealer())
    assert reply.reason_code == "RELEASE_MODE_NOT_ALLOWED"


def test_policy__require_secure_aggregation_accepts_exact_and_refuses_plain(site: Path) -> None:
    policy_file = site / POLICY_FILE
    policy_file.write_text(
        policy_file.read_text().replace(
            "require_secure_aggregation = false", "require_secure_aggregation = true"
        )
    )
    policy = load_policy(policy_file)
    check_study(policy, EXACT)
    with pytest.raises(PolicyRefusal) as info:
        check_study(policy, _study({"mode": "plain"}))
    assert info.value.reason_code == "SECURE_AGGREGATION_REQUIRED"


def test_coordinator__refuses_fewer_sites_than_noise_shares(cohort, tmp_path: Path) -> None:
    study = _study({"mode": "distributed-dp", "epsilon": 1.0, "noise_shares": 4})
    with pytest.raises(GenoFedError, match="noise_shares = 4"):
        run_study(study, InProcessTransport(list(cohort.sites)), tmp_path / "r", engine="t")


def test_site__distributed_dp_adds_a_share_and_charges_the_guarantee(site: Path) -> None:
    sealer = StandInSealer()
    reply, _ = handle_request(site, *_counts_request(DDP), sealer=sealer)
    assert reply.status == Status.OK, reply.message
    assert sealer.min_participants == 3  # the site asks SecAgg+ for >= noise_shares sites
    facts = json.loads(reply.facts["noise"])
    z = calibrate_noise_multiplier(2.0, 1e-6)
    assert facts["noise_shares"] == 3
    assert facts["share_scale"] == pytest.approx(z * np.sqrt(N_VARIANTS) / np.sqrt(3))
    assert facts["epsilon_if_alone"] > reply.receipt.epsilon_charged > 0
    charges = Ledger(site / "state" / LEDGER_FILE, Budget(100.0, 1e-5)).spent()
    assert charges == pytest.approx(reply.receipt.epsilon_charged)
    exact = StandInSealer()
    handle_request(site, *_counts_request(EXACT), sealer=exact)
    assert sealer.sealed is not None and exact.sealed is not None
    noise = sealer.sealed["genotype_counts"] - exact.sealed["genotype_counts"]
    assert noise.std() > 0.5 * z * np.sqrt(N_VARIANTS) / np.sqrt(3)
