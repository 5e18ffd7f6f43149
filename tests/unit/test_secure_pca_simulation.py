"""A pca study in ``exact`` mode on Flower's simulation engine: every round masked, same tables.

The counts, the LD pair sums of ``indep_pairwise`` and every subspace
iteration's variant-space products go through SecAgg+; the eigenvalues and
variant weights must equal the ``plain`` study's byte for byte, in as many
rounds, and no site's products reach the coordinator in the clear.
"""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import numpy as np
import pytest

from genofed.common.fixed_point import SCALED_LIMBS
from genofed.common.study import Study, study_from_mapping
from genofed.coordinator.protocols.pca import block_size
from genofed.coordinator.runner import run_study
from genofed.simulation import run_simulated_study
from genofed.synth import write_cohorts
from tests.harness import InProcessTransport

ANALYSES = [{"kind": "pca", "n_pcs": 3, "indep_pairwise": [20, 5, 0.5]}]


def _study(mode: str) -> Study:
    return study_from_mapping(
        {"study": {"name": "pcs"}, "privacy": {"mode": mode}, "analysis": ANALYSES},
        path=Path("<test>"),
    )


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("secpca")
    return list(write_cohorts(root / "c", sites=3, samples=150, variants=120, seed=8).sites)


def test_exact_pca__every_round_masked_and_tables_equal_plain(
    sites: list[Path], tmp_path: Path
) -> None:
    plain = run_study(_study("plain"), InProcessTransport(sites), tmp_path / "p", engine="t")
    run_simulated_study(_study("exact"), sites, tmp_path / "e")
    tables = [f for f in plain.outputs if not f.endswith((".json", ".html"))]
    assert {"pca.eigenval", "pca.eigenvec.var"} <= set(tables)
    for name in tables:
        assert filecmp.cmp(tmp_path / "p" / name, tmp_path / "e" / name, shallow=False), name
    p_doc = json.loads((tmp_path / "p" / "provenance.json").read_text())
    e_doc = json.loads((tmp_path / "e" / "provenance.json").read_text())
    assert p_doc["summary"]["pca"]["rounds"] == e_doc["summary"]["pca"]["rounds"]
    v, n = e_doc["summary"]["pca"]["variants"], e_doc["summary"]["pca"]["samples"]
    width = block_size(3, v, n)
    for record in e_doc["sites"]:
        # the products travel as scaled fixed point: 4 limbs per value, not 7 (and
        # SecAgg+'s one weight element)
        iterate = [r for r in record["releases"] if r["request"] == "pca_iterate"]
        for release in iterate:
            limbs = sum(int(np.prod(a["shape"])) for a in release["arrays"])
            assert limbs == SCALED_LIMBS * (v * width + 2 * width * width) + 1
        kinds = [r["request"] for r in record["releases"] if r["request"].startswith("pca")]
        assert kinds[:2] == ["pca_counts", "pca_ld"] and kinds[-1] == "pca_finish"
        assert kinds.count("pca_iterate") >= 2
        for release in record["releases"]:
            if release["request"].startswith("pca"):
                assert all(a["name"].startswith("secagg_masked_") for a in release["arrays"])
