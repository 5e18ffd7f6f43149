"""Every refusal path of the site's policy, end to end in-process.

The same cases run on Flower's simulation engine in
``test_privacy_refusals_simulation.py`` (slow). Each one must reach the
coordinator as its reason code, stop the study, leave no result, and be in
the refusing site's audit log.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genofed.common.errors import ConfigError, SiteFailure
from genofed.common.messages import AuditEntry, AuditKind
from genofed.common.signing import sign_study
from genofed.common.study import study_from_mapping
from genofed.common.wire.proto import audit_entry_from_bytes
from genofed.coordinator.runner import run_study
from genofed.site_agent.audit.log import read_site_log
from genofed.site_agent.node.supernode import NodeOptions, check_options
from genofed.site_agent.privacy.approvals import approve, list_studies
from genofed.synth import write_cohorts
from tests.harness import InProcessTransport
from tests.privacy_cases import ANALYST, CASES, QC, RefusalCase, site_policy


@pytest.fixture(scope="module")
def cohort_sites(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("refusals")
    return list(write_cohorts(root / "c", sites=3, samples=120, variants=80, seed=5).sites)


def _entries(site: Path) -> list[AuditEntry]:
    return [audit_entry_from_bytes(leaf) for leaf in read_site_log(site).leaves]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_refusal__reaches_the_coordinator_is_audited_and_nothing_is_written(
    case: RefusalCase, cohort_sites: list[Path], tmp_path: Path
) -> None:
    sites = case.sites(cohort_sites, tmp_path / "sites")
    with pytest.raises(SiteFailure) as info:
        run_study(
            case.study,
            InProcessTransport(sites),
            tmp_path / "r",
            engine="in-process",
            signature=case.signature(),
        )
    assert info.value.reason_code == case.code
    assert not (tmp_path / "r").exists()
    refusing = next(s for s in sites if s.name == info.value.site)
    refusals = [e for e in _entries(refusing) if e.kind == AuditKind.REFUSAL]
    assert refusals and refusals[-1].reason.startswith(f"{case.code}: ")
    released = [e for e in _entries(refusing) if e.kind == AuditKind.RELEASE]
    assert not any(e.request_kind == "genotype_counts" for e in released)


def test_refusal__every_refusing_site_is_named_with_its_code(
    cohort_sites: list[Path], tmp_path: Path
) -> None:
    """Three sites refuse in one round: the analyst hears of each, not only the first."""
    case = next(c for c in CASES if c.code == "PENDING_APPROVAL")
    sites = case.sites(cohort_sites, tmp_path / "sites")
    with pytest.raises(SiteFailure) as info:
        run_study(
            QC, InProcessTransport(sites), tmp_path / "r", engine="t", signature=case.signature()
        )
    text = str(info.value)
    assert "3 sites failed at round" in text and "the study needs every site" in text
    for site in sites:
        assert f"site {site.name!r}: PENDING_APPROVAL" in text
    assert info.value.site == sites[0].name  # still one site: the first to refuse


def test_pending_study__is_recorded_then_runs_once_the_officer_approves(
    cohort_sites: list[Path], tmp_path: Path
) -> None:
    case = next(c for c in CASES if c.code == "PENDING_APPROVAL")
    sites = case.sites(cohort_sites, tmp_path / "sites")
    signature = sign_study(QC, ANALYST)
    with pytest.raises(SiteFailure):
        run_study(QC, InProcessTransport(sites), tmp_path / "r", engine="t", signature=signature)
    first = list_studies(sites[0])
    assert [(s.study_sha256, s.status, s.analyst, s.study_name) for s in first] == [
        (QC.sha256, "pending", "alice", "qc")
    ]
    for site in sites:
        approve(site, QC.sha256, by="officer")
    outcome = run_study(
        QC, InProcessTransport(sites), tmp_path / "r", engine="t", signature=signature
    )
    assert (outcome.out / "freq.afreq").is_file()
    decisions = [e for e in _entries(sites[0]) if e.kind == AuditKind.DECISION]
    assert [(d.decision, d.reason) for d in decisions] == [("approved", "by officer")]


def _column(path: Path, name: str) -> list[str]:
    lines = path.read_text().splitlines()
    col = lines[0].split("\t").index(name)
    return [line.split("\t")[col] for line in lines[1:]]


def test_small_cells__withheld_at_the_site_and_marked_na_in_every_table(
    cohort_sites: list[Path], tmp_path: Path
) -> None:
    study = study_from_mapping(
        {
            "study": {"name": "qc4"},
            "analysis": [{"kind": k} for k in ("freq", "missing", "gcount", "hardy")],
        },
        path=Path("<test>"),
    )
    policy = site_policy().replace('"hardy", "glm"', '"hardy", "glm", "missing", "gcount"')
    plain = RefusalCase("none", "", study=study, policy=policy)
    exact = run_study(
        study,
        InProcessTransport(plain.sites(cohort_sites, tmp_path / "exact-sites")),
        tmp_path / "exact",
        engine="t",
        signature=sign_study(study, ANALYST),
    )
    small = RefusalCase(
        "small cells",
        "",
        study=study,
        policy=policy.replace("min_cell_count = 0", "min_cell_count = 10"),
    )
    sites = small.sites(cohort_sites, tmp_path / "sites")
    signature = sign_study(study, ANALYST)
    outcome = run_study(
        study, InProcessTransport(sites), tmp_path / "r", engine="t", signature=signature
    )
    listed = (outcome.out / "suppressed.tsv").read_text().splitlines()
    assert listed[0].startswith("#CHROM\tPOS\tID")
    withheld_ids = {line.split("\t")[2] for line in listed[1:]}
    summary = outcome.summary["suppressed"]
    assert isinstance(summary, dict) and summary["any site"] == len(withheld_ids) > 0
    assert all(summary[s.name] > 0 for s in outcome.sites)
    # each site said so in its reply and its release carries the mask
    prov = json.loads((outcome.out / "provenance.json").read_text())
    for record in prov["sites"]:
        names = [a["name"] for a in record["releases"][-1]["arrays"]]
        assert names == ["genotype_counts", "suppressed"]
    for table, column in (
        ("freq.afreq", "ALT_FREQS"),
        ("missing.vmiss", "F_MISS"),
        ("geno.gcount", "HOM_REF_CT"),
        ("hardy.hardy", "P"),
    ):
        ids = _column(outcome.out / table, "ID")
        got = _column(outcome.out / table, column)
        want = _column(exact.out / table, column)
        for variant, value, truth in zip(ids, got, want, strict=True):
            if variant in withheld_ids:
                assert value == "NA"  # never a silent zero
            else:
                assert value == truth


def test_invalid_policy__stops_the_site_node_before_it_starts(
    cohort_sites: list[Path], tmp_path: Path
) -> None:
    case = next(c for c in CASES if c.code == "POLICY_INVALID")
    site = case.sites(cohort_sites[:1], tmp_path / "sites")[0]
    with pytest.raises(ConfigError) as info:
        check_options(NodeOptions(site_dir=site, superlink="127.0.0.1:9092", insecure=True))
    assert "unknown key 'colour' in [policy]" in str(info.value)
    assert str(site / "policy.toml") in str(info.value)
