"""A glm study in ``exact`` mode on Flower's simulation engine, through real SecAgg+.

Every round of a linear and a logistic (Newton, and Firth where plink2
falls back to it) GWAS is a masked sum: the tables must equal the ``plain``
study's byte for byte, with no more rounds, and what the coordinator
received from each site must look like noise (a per-byte chi-square on the
masked vectors, which Flower draws modulo 2^32) while their unmasked sum is
the plain sum of the sites' summable forms.
"""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from genofed.common.secure_sum import MODULUS_RANGE
from genofed.common.study import Study, study_from_mapping
from genofed.coordinator import secure_round
from genofed.coordinator.runner import run_study
from genofed.simulation import run_simulated_study
from genofed.synth import write_cohorts
from tests.harness import InProcessTransport

ANALYSES = [
    {"kind": "glm", "id": "lin", "phenotype": "QPHENO", "covariates": ["AGE", "SEX"]},
    {"kind": "glm", "id": "log", "phenotype": "DISEASE", "covariates": ["AGE"]},
]


def _study(mode: str) -> Study:
    return study_from_mapping(
        {"study": {"name": "gwas"}, "privacy": {"mode": mode}, "analysis": ANALYSES},
        path=Path("<test>"),
    )


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("secglm")
    return list(write_cohorts(root / "c", sites=3, samples=180, variants=40, seed=11).sites)


def test_exact_glm__every_round_masked_and_tables_equal_plain(
    sites: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = run_study(_study("plain"), InProcessTransport(sites), tmp_path / "p", engine="t")
    received: list[np.ndarray] = []
    collected = secure_round._collected

    def spy(msg):  # type: ignore[no-untyped-def]
        got = collected(msg)
        if got.arrays:
            received.extend(got.arrays.values())
        return got

    monkeypatch.setattr(secure_round, "_collected", spy)
    run_simulated_study(_study("exact"), sites, tmp_path / "e")

    tables = [f for f in plain.outputs if not f.endswith((".json", ".html"))]
    assert {"gwas.QPHENO.glm.linear", "gwas.DISEASE.glm.logistic.hybrid"} <= set(tables)
    for name in tables:
        assert filecmp.cmp(tmp_path / "p" / name, tmp_path / "e" / name, shallow=False), name

    p_sum = json.loads((tmp_path / "p" / "provenance.json").read_text())
    e_sum = json.loads((tmp_path / "e" / "provenance.json").read_text())
    rounds = {a: p_sum["summary"][a]["rounds"] for a in ("lin", "log")}
    assert rounds == {a: e_sum["summary"][a]["rounds"] for a in ("lin", "log")}
    assert rounds["log"] > 1  # logistic Newton rounds, each one masked
    for record in e_sum["sites"]:
        kinds = [r["request"] for r in record["releases"]]
        assert kinds.count("glm_stats") == 2 and "glm_logistic" in kinds
        for release in record["releases"]:
            if release["request"].startswith("glm"):
                assert all(a["name"].startswith("secagg_masked_") for a in release["arrays"])
                assert release["receipt"]["receipt_check"] == "verified"

    # what the coordinator held of each site: uniform bytes modulo 2^32
    assert len(received) >= 3 * (1 + rounds["lin"] + rounds["log"])
    values = np.concatenate([np.asarray(v).ravel() for v in received]).astype(np.int64)
    assert values.min() >= 0 and values.max() < MODULUS_RANGE
    low = values.astype("<u4").view(np.uint8)  # the four bytes a mask covers
    assert low.size > 20_000
    observed = np.bincount(low, minlength=256)
    assert stats.chisquare(observed).pvalue > 1e-4


def test_exact_glm__samples_missing_only_a_constant_covariate_taken_back_as_in_plain(
    sites: list[Path], tmp_path: Path
) -> None:
    """X is 1.0 where known and missing for three samples a site: both modes take them back.

    The ``glm_covariates`` round and the second ``glm_stats`` (and every
    logistic round, with the covariate mask) are masked sums too, and the
    tables equal the plain study's byte for byte.
    """
    import shutil

    copies = []
    for site in sites:
        target = tmp_path / "sites" / site.name
        shutil.copytree(site, target)
        table = target / "data" / "covar.tsv"
        lines = table.read_text().splitlines()
        rows = [f"{line}\t{'NA' if 5 <= i < 8 else '1.0'}" for i, line in enumerate(lines[1:])]
        table.write_text("\n".join([f"{lines[0]}\tX", *rows]) + "\n")
        copies.append(target)
    analyses = [
        {"kind": "glm", "id": "lin", "phenotype": "QPHENO", "covariates": ["AGE", "X", "SEX"]},
        {"kind": "glm", "id": "log", "phenotype": "DISEASE", "covariates": ["X", "AGE"]},
    ]

    def study(mode: str) -> Study:
        return study_from_mapping(
            {"study": {"name": "gwas"}, "privacy": {"mode": mode}, "analysis": analyses},
            path=Path("<test>"),
        )

    plain = run_study(study("plain"), InProcessTransport(copies), tmp_path / "p", engine="t")
    run_simulated_study(study("exact"), copies, tmp_path / "e")
    tables = [f for f in plain.outputs if not f.endswith((".json", ".html"))]
    assert {"gwas.QPHENO.glm.linear", "gwas.DISEASE.glm.logistic.hybrid"} <= set(tables)
    for name in tables:
        assert filecmp.cmp(tmp_path / "p" / name, tmp_path / "e" / name, shallow=False), name
    e_sum = json.loads((tmp_path / "e" / "provenance.json").read_text())
    for a in ("lin", "log"):
        assert plain.summary[a]["samples taken back (missed only left-out covariates)"] > 0  # type: ignore[index]
        assert e_sum["summary"][a] == json.loads(json.dumps(plain.summary[a]))
    for record in e_sum["sites"]:
        kinds = [r["request"] for r in record["releases"]]
        assert kinds.count("glm_covariates") == 2 and kinds.count("glm_stats") == 4
        for release in record["releases"]:
            if release["request"].startswith("glm"):
                assert all(a["name"].startswith("secagg_masked_") for a in release["arrays"])
