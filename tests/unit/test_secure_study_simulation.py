"""``exact`` and ``distributed-dp`` on Flower's simulation engine, through real SecAgg+.

The exact study's tables must equal the plain study's byte for byte; the
coordinator sees only masked vectors (every site's reply lists masked arrays,
and its receipt verifies); each site's audit log records the key exchange and
the masked release and still verifies. One Ray start per study (tens of
seconds on 2 cores): the exact test runs in ``make test``, the
distributed-dp one is marked ``slow``.
"""

from __future__ import annotations

import filecmp
import json
import shutil
from pathlib import Path

import pytest

from genofed.common.errors import SiteFailure
from genofed.common.study import Study, study_from_mapping
from genofed.coordinator.runner import run_study
from genofed.simulation import run_simulated_study
from genofed.site_agent.audit.log import read_site_log
from genofed.site_agent.audit.verify import verify_path
from genofed.synth import write_cohorts
from tests.harness import InProcessTransport

KINDS = ("freq", "missing", "gcount", "hardy")


def _study(name: str, privacy: dict[str, object]) -> Study:
    return study_from_mapping(
        {"study": {"name": name}, "privacy": privacy, "analysis": [{"kind": k} for k in KINDS]},
        path=Path("<test>"),
    )


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("secagg")
    cohort = write_cohorts(root / "c", sites=3, samples=150, variants=60, seed=3)
    return list(cohort.sites)


def test_exact_study__secaggplus_sum_equals_plain_byte_for_byte(
    sites: list[Path], tmp_path: Path
) -> None:
    plain = run_study(
        _study("qc", {"mode": "plain"}), InProcessTransport(sites), tmp_path / "p", engine="t"
    )
    run_simulated_study(_study("qc", {"mode": "exact"}), sites, tmp_path / "e")
    tables = [f for f in plain.outputs if not f.endswith((".json", ".html"))]  # run facts differ
    assert {"freq.afreq", "missing.vmiss", "geno.gcount", "hardy.hardy"} <= set(tables)
    for name in tables:
        assert filecmp.cmp(tmp_path / "p" / name, tmp_path / "e" / name, shallow=False), name
    prov = json.loads((tmp_path / "e" / "provenance.json").read_text())
    assert prov["privacy"]["release_mode"] == "exact"
    for record in prov["sites"]:
        release = record["releases"][-1]
        assert release["request"] == "genotype_counts"
        assert [a["name"] for a in release["arrays"]] == ["secagg_masked_0", "secagg_masked_1"]
        assert release["receipt"]["receipt_check"] == "verified"
    for site in sites:
        assert verify_path(site).ok
        text = read_site_log(site).entries_text()
        for kind in ("secagg_setup", "secagg_share_keys", "secagg_unmask"):
            assert f'"request_kind":"{kind}"' in text


@pytest.mark.slow
def test_distributed_dp_study__runs_and_charges_each_site(
    sites: list[Path], tmp_path: Path
) -> None:
    copies = []
    for site in sites:
        shutil.copytree(site, tmp_path / site.name)
        copies.append(tmp_path / site.name)
    study = _study("ddp", {"mode": "distributed-dp", "epsilon": 3.0, "noise_shares": 3})
    outcome = run_simulated_study(study, copies, tmp_path / "d")
    prov = json.loads((outcome.out / "provenance.json").read_text())
    for record in prov["sites"]:
        release = record["releases"][-1]
        assert 0 < release["receipt"]["epsilon_charged"] <= 3.0
        assert release["noise"]["noise_shares"] == 3
    assert (outcome.out / "freq.afreq").is_file()


@pytest.mark.slow
def test_secure_round__a_site_refusal_stops_the_study_with_its_reason(
    sites: list[Path], tmp_path: Path
) -> None:
    """A site over budget refuses at the masked-vector stage: no sum, the study stops."""
    copies = []
    for site in sites:
        shutil.copytree(site, tmp_path / site.name)
        copies.append(tmp_path / site.name)
    policy = copies[1] / "policy.toml"
    policy.write_text(policy.read_text().replace("epsilon = 100.0", "epsilon = 0.5"))
    study = _study("ddp-over", {"mode": "distributed-dp", "epsilon": 3.0, "noise_shares": 3})
    with pytest.raises(SiteFailure) as info:
        run_simulated_study(study, copies, tmp_path / "d")
    assert (info.value.site, info.value.reason_code) == (copies[1].name, "BUDGET_EXCEEDED")
    assert not (tmp_path / "d").exists()


def test_exact_study__pooled_small_cells_are_withheld_by_the_coordinator(
    sites: list[Path], tmp_path: Path
) -> None:
    """No site suppresses what it sends masked; the coordinator suppresses the pooled table."""
    copies = []
    for site in sites:
        shutil.copytree(site, tmp_path / site.name)
        policy = tmp_path / site.name / "policy.toml"
        policy.write_text(policy.read_text().replace("min_cell_count = 0", "min_cell_count = 10"))
        copies.append(tmp_path / site.name)
    outcome = run_simulated_study(_study("qc", {"mode": "exact"}), copies, tmp_path / "e")
    listed = (outcome.out / "suppressed.tsv").read_text().splitlines()
    assert listed[0] == "#CHROM\tPOS\tID\tREF\tALT\tN_SITES\tREASON"
    rows = [line.split("\t") for line in listed[1:]]
    assert rows and all(r[5] == "0" and r[6].startswith("small pooled cells") for r in rows)
    header, *table = [
        line.split("\t") for line in (outcome.out / "geno.gcount").read_text().splitlines()
    ]
    shown = {r[header.index("ID")]: r for r in table}
    for r in rows:  # a withheld variant prints NA, not its pooled counts
        assert shown[r[2]][header.index("HOM_REF_CT")] == "NA"
    counts = [
        [int(x) for x in r[header.index("HOM_REF_CT") : header.index("HOM_REF_CT") + 3]]
        for r in table
        if r[header.index("HOM_REF_CT")] != "NA"
    ]
    assert all(c == 0 or c >= 10 for row in counts for c in row)
    assert outcome.summary["suppressed"]["small pooled cells"] == len(rows)  # type: ignore[index]


def test_exact_study__the_sites_membership_limit_is_applied_to_the_pooled_counts(
    sites: list[Path], tmp_path: Path
) -> None:
    """No site checks what it sends masked; the coordinator checks the pooled table."""
    copies = []
    for site in sites:
        shutil.copytree(site, tmp_path / site.name)
        policy = tmp_path / site.name / "policy.toml"
        policy.write_text(
            policy.read_text().replace(
                "min_cell_count = 0", "min_cell_count = 0\nmax_membership_power = 0.1"
            )
        )
        copies.append(tmp_path / site.name)
    outcome = run_simulated_study(_study("member", {"mode": "exact"}), copies, tmp_path / "e")
    rows = [
        line.split("\t") for line in (outcome.out / "suppressed.tsv").read_text().splitlines()[1:]
    ]
    assert rows and all(r[5] == "0" and r[6].startswith("membership limit") for r in rows)
    assert outcome.summary["suppressed"]["membership limit (pooled)"] == len(rows)  # type: ignore[index]
    (entry,) = outcome.summary["membership_power"]  # type: ignore[misc]
    assert entry["site"] == "pooled (exact)" and entry["power"] <= 0.1
    header, *table = [
        line.split("\t") for line in (outcome.out / "freq.afreq").read_text().splitlines()
    ]
    shown = {r[header.index("ID")]: r for r in table}
    assert all(shown[r[2]][header.index("ALT_FREQS")] == "NA" for r in rows)
