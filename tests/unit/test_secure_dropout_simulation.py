"""A site that leaves a masked round: SecAgg+ unmasks the others' sum, ``min_sites`` applies.

Four sites run a ``distributed-dp`` count study with ``min_sites = 3``;
one site's privacy budget is too small, so it refuses at the
collect-masked-vectors stage, after the key exchange. SecAgg+ removes its
masks with the other sites' shares of its key and unmasks the sum of the
three that sent a masked vector; the runner records the site as missing and
the study goes on (before, a secure round was all or nothing). The pooled
sample counts are the three sites', not the four's.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from genofed.common.errors import GenoFedError
from genofed.common.study import study_from_mapping
from genofed.simulation import run_simulated_study
from genofed.site_agent.audit.log import read_site_log
from genofed.site_agent.audit.verify import verify_path
from genofed.synth import write_cohorts


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("secdrop")
    return list(write_cohorts(root / "c", sites=4, samples=480, variants=30, seed=5).sites)


def test_site_refusing_its_masked_vector__sum_of_the_other_three_and_study_goes_on(
    sites: list[Path], tmp_path: Path
) -> None:
    copies = []
    for site in sites:
        shutil.copytree(site, tmp_path / site.name)
        copies.append(tmp_path / site.name)
    policy = copies[3] / "policy.toml"
    policy.write_text(policy.read_text().replace("epsilon = 100.0", "epsilon = 0.5"))
    study = study_from_mapping(
        {
            "study": {"name": "drop", "min_sites": 3},
            "privacy": {"mode": "distributed-dp", "epsilon": 3.0, "noise_shares": 3},
            "analysis": [{"kind": "freq"}],
        },
        path=Path("<test>"),
    )
    outcome = run_simulated_study(study, copies, tmp_path / "out")
    prov = json.loads((outcome.out / "provenance.json").read_text())
    assert [(m["site"], m["round"], m["reason_code"]) for m in prov["sites_missing"]] == [
        (copies[3].name, 2, "BUDGET_EXCEEDED")
    ]
    survivors = {s["name"]: s for s in prov["sites"] if "missing" not in s}
    assert sorted(survivors) == sorted(c.name for c in copies[:3])
    for record in survivors.values():
        release = record["releases"][-1]
        assert release["request"] == "genotype_counts"
        assert release["receipt"]["receipt_check"] == "verified"
    header, *rows = (outcome.out / "freq.afreq").read_text().splitlines()
    obs = np.array([float(r.split("\t")[header.split("\t").index("OBS_CT")]) for r in rows])
    three = 2 * prov["n_samples_total"]  # allele observations of the three sites
    assert prov["n_samples_total"] < 480
    assert abs(np.median(obs) - three) < 0.1 * three  # noisy, but the sum of three sites
    for site in copies:
        assert verify_path(site).ok


def test_site_leaving_a_three_site_round__no_sum_of_two_is_unmasked(
    sites: list[Path], tmp_path: Path
) -> None:
    """With three sites, one leaving would leave a sum of two: the study stops, naming it."""
    copies = []
    for site in sites[:3]:
        shutil.copytree(site, tmp_path / site.name)
        copies.append(tmp_path / site.name)
    policy = copies[2] / "policy.toml"
    policy.write_text(policy.read_text().replace("epsilon = 100.0", "epsilon = 0.5"))
    study = study_from_mapping(
        {
            "study": {"name": "drop2", "min_sites": 2},
            "privacy": {"mode": "distributed-dp", "epsilon": 3.0, "noise_shares": 3},
            "analysis": [{"kind": "freq"}],
        },
        path=Path("<test>"),
    )
    with pytest.raises(GenoFedError, match=rf"{copies[2].name} left the secure-sum round"):
        run_simulated_study(study, copies, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    for site in copies[:2]:  # the two others never gave the shares that unmask their sum
        text = read_site_log(site).entries_text()
        assert '"request_kind":"secagg_unmask"' not in text
