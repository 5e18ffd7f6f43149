"""Signed studies end to end (in-process): sites with a real policy accept only
studies signed by a trusted analyst, and refuse everything else the same way."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from genofed.common.errors import SiteFailure
from genofed.common.signing import (
    StudySignature,
    generate_private_key,
    public_key_text,
    sign_study,
)
from genofed.common.study import study_from_mapping
from genofed.coordinator.runner import run_study
from genofed.site_agent.privacy.policy import POLICY_FILE
from genofed.synth import write_cohorts
from tests.harness import InProcessTransport

ANALYST = generate_private_key()
STRANGER = generate_private_key()
QC = study_from_mapping(
    {"study": {"name": "qc"}, "analysis": [{"kind": "freq"}, {"kind": "hardy"}]},
    path=Path("<test>"),
)


def _real_policy(trusted: str) -> str:
    return f"""
[policy]
version = 1
allowed_analyses = ["variants", "freq", "hardy"]
allowed_release_modes = ["plain"]

[[policy.trusted_analysts]]
name = "alice"
public_key = "{trusted}"

[[policy.auto_approve]]
name = "qc from alice"
analysts = ["alice"]
"""


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("signed")
    cohort = write_cohorts(root / "cohorts", sites=3, samples=120, variants=80, seed=5)
    for site in cohort.sites:
        (site / POLICY_FILE).write_text(_real_policy(public_key_text(ANALYST.public_key())))
    return list(cohort.sites)


def test_signed_by_trusted_analyst__runs_and_provenance_names_the_key(
    sites: list[Path], tmp_path: Path
) -> None:
    signature = sign_study(QC, ANALYST)
    outcome = run_study(
        QC, InProcessTransport(sites), tmp_path / "r", engine="in-process", signature=signature
    )
    prov = json.loads((outcome.out / "provenance.json").read_text())
    assert prov["study"]["signed"] is True
    assert prov["study"]["signer_public_key"] == public_key_text(ANALYST.public_key())
    assert all(s["policy"] == "site policy" for s in prov["sites"])


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("unsigned", "UNSIGNED_STUDY"),
        ("unknown analyst", "INTEGRITY"),
        ("signature over another study", "INTEGRITY"),
        ("forged signature", "INTEGRITY"),
    ],
)
def test_refusals__reach_the_coordinator_and_nothing_is_written(
    sites: list[Path], tmp_path: Path, case: str, code: str
) -> None:
    signature: StudySignature | None
    if case == "unsigned":
        signature = None
    elif case == "unknown analyst":
        signature = sign_study(QC, STRANGER)
    elif case == "signature over another study":
        other = study_from_mapping(
            {"study": {"name": "qc2"}, "analysis": [{"kind": "freq"}]}, path=Path("<t>")
        )
        signature = sign_study(other, ANALYST)
    else:
        good = sign_study(QC, ANALYST)
        signature = StudySignature(good.public_key, bytes(64))
    with pytest.raises(SiteFailure) as info:
        run_study(
            QC, InProcessTransport(sites), tmp_path / "r", engine="in-process", signature=signature
        )
    assert info.value.reason_code == code
    assert not (tmp_path / "r").exists()


def test_refusal_messages__do_not_say_which_integrity_check_failed(
    sites: list[Path], tmp_path: Path
) -> None:
    messages = set()
    for key in (STRANGER, ANALYST):
        sig = sign_study(QC, key)
        if key is ANALYST:
            sig = StudySignature(sig.public_key, bytes(64))
        with pytest.raises(SiteFailure) as info:
            run_study(
                QC, InProcessTransport(sites), tmp_path / "r", engine="in-process", signature=sig
            )
        messages.add(str(info.value))
    assert len(messages) == 1


def test_demo_site__accepts_unsigned_but_checks_a_present_signature(
    sites: list[Path], tmp_path: Path
) -> None:
    demo = tmp_path / "demo-sites"
    for site in sites:
        shutil.copytree(site, demo / site.name)
        text = (demo / site.name / POLICY_FILE).read_text()
        (demo / site.name / POLICY_FILE).write_text(
            text.replace("version = 1", "version = 1\ndemo = true").replace(
                'analysts = ["alice"]', 'analysts = ["*"]'
            )
        )
    demo_sites = [demo / s.name for s in sites]
    run_study(QC, InProcessTransport(demo_sites), tmp_path / "r1", engine="in-process")
    with pytest.raises(SiteFailure) as info:
        run_study(
            QC,
            InProcessTransport(demo_sites),
            tmp_path / "r2",
            engine="in-process",
            signature=sign_study(QC, STRANGER),
        )
    assert info.value.reason_code == "INTEGRITY"


@pytest.mark.parametrize(
    ("edit", "code"),
    [
        ("delete", "NO_POLICY"),
        ('allowed_analyses = ["variants", "freq"]', "ANALYSIS_NOT_ALLOWED"),
        ("min_cohort_size = 100000", "COHORT_TOO_SMALL"),
    ],
)
def test_policy_refusals__signed_study_is_still_refused(
    sites: list[Path], tmp_path: Path, edit: str, code: str
) -> None:
    copies = []
    for site in sites:
        target = tmp_path / "sites" / site.name
        shutil.copytree(site, target)
        policy = target / POLICY_FILE
        if edit == "delete":
            policy.unlink()
        elif edit.startswith("allowed_analyses"):
            policy.write_text(
                policy.read_text().replace('allowed_analyses = ["variants", "freq", "hardy"]', edit)
            )
        else:
            policy.write_text(policy.read_text().replace("version = 1", f"version = 1\n{edit}"))
        copies.append(target)
    with pytest.raises(SiteFailure) as info:
        run_study(
            QC,
            InProcessTransport(copies),
            tmp_path / "r",
            engine="in-process",
            signature=sign_study(QC, ANALYST),
        )
    assert info.value.reason_code == code
    assert not (tmp_path / "r").exists()
