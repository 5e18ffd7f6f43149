"""train end to end in-process: FedAvg vs a central model, epsilon per site, budget refusal."""

from __future__ import annotations

import json
import math
import shutil
import sqlite3
from pathlib import Path

import dp_accounting
import numpy as np
import pytest
import torch
from dp_accounting.rdp import RdpAccountant
from opacus.accountants import RDPAccountant

from genofed.common.errors import ConfigError, InputError, SiteFailure
from genofed.common.messages import AuditKind
from genofed.common.study import Study, study_from_mapping
from genofed.common.wire.proto import audit_entry_from_bytes
from genofed.common.wire.train import model_logits, scale_covariates
from genofed.coordinator.runner import run_study
from genofed.site_agent.audit.log import read_site_log
from genofed.site_agent.io.pheno import match_samples, read_pheno_table
from genofed.site_agent.io.plink import BedFile
from genofed.site_agent.privacy.accounting import calibrate_noise_multiplier
from genofed.site_agent.privacy.ledger import LEDGER_FILE
from genofed.site_agent.privacy.policy import POLICY_FILE
from genofed.synth import SynthSummary, write_cohorts
from tests.harness import InProcessTransport

RANGES = [[30, 80], [1, 2]]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    return write_cohorts(
        tmp_path_factory.mktemp("train") / "cohorts", sites=3, samples=900, variants=120, seed=3
    )


def _study(cohort: SynthSummary, **params: object) -> Study:
    table = {
        "kind": "train",
        "target": "DISEASE",
        "variants": list(cohort.causal_variants),
        "covariates": ["AGE", "SEX"],
        "covariate_ranges": RANGES,
        "batch_size": 32,
        **params,
    }
    return study_from_mapping({"study": {"name": "t"}, "analysis": [table]}, path=Path("<t>"))


def _copy(cohort: SynthSummary, root: Path) -> list[Path]:
    sites = []
    for site in cohort.sites:
        shutil.copytree(site, root / site.name)
        sites.append(root / site.name)
    return sites


def _pooled(cohort: SynthSummary) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of the pooled cohort, built here independently of the site code."""
    pooled = cohort.pooled
    with BedFile(next(pooled.glob("*.bed"))) as bed:
        pheno = read_pheno_table(pooled / "pheno.tsv")
        covar = read_pheno_table(pooled / "covar.tsv")
        match = match_samples(bed.samples, pheno, covar)
        disease = pheno.column("DISEASE")[match.table_idx[0]]
        cov = np.column_stack([covar.column(c)[match.table_idx[1]] for c in ("AGE", "SEX")])
        ids = list(bed.variants.id)
        index = np.array([ids.index(v) for v in cohort.causal_variants])
        dosages = np.concatenate([d for _, d in bed.iter_dosages(index)], axis=0)
    keep = ~np.isnan(disease) & ~np.isnan(cov).any(axis=1)
    g = dosages[:, match.genotype_idx].T.astype(np.float64)
    g = np.where(g < 0, 0.0, g - 1.0)
    x = np.column_stack([g, scale_covariates(cov, RANGES)])[keep]
    return x, (disease[keep] == 2).astype(np.float64)


def _n_train(site: Path) -> int:
    """A site's samples with the target and both covariates, counted here independently."""
    data = site / "data"
    with BedFile(data / "genotypes.bed") as bed:
        pheno = read_pheno_table(data / "pheno.tsv")
        covar = read_pheno_table(data / "covar.tsv")
        match = match_samples(bed.samples, pheno, covar)
    disease = pheno.column("DISEASE")[match.table_idx[0]]
    cov = np.column_stack([covar.column(c)[match.table_idx[1]] for c in ("AGE", "SEX")])
    return int((~np.isnan(disease) & ~np.isnan(cov).any(axis=1)).sum())


def _central_logistic(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Maximum-likelihood logistic regression (Newton) on the pooled data."""
    design = np.column_stack([np.ones(len(y)), x])
    beta = np.zeros(design.shape[1])
    for _ in range(50):
        mu = 1 / (1 + np.exp(-design @ beta))
        step = np.linalg.solve((design.T * (mu * (1 - mu))) @ design, design.T @ (y - mu))
        beta += step
        if np.abs(step).max() < 1e-10:
            break
    return design @ beta


def _auc(scores: np.ndarray, y: np.ndarray) -> float:
    cases, controls = scores[y == 1], scores[y == 0]
    greater = (cases[:, None] > controls[None, :]).sum()
    ties = (cases[:, None] == controls[None, :]).sum()
    return float((greater + ties / 2) / (len(cases) * len(controls)))


def test_train__noiseless_fedavg_reaches_the_central_models_auc(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    study = _study(cohort, noise_multiplier=0.0, rounds=4, local_epochs=8, learning_rate=0.3)
    sites = _copy(cohort, tmp_path)
    outcome = run_study(study, InProcessTransport(sites), out, engine="t")
    summary = json.loads((out / "train.summary.json").read_text())
    x, y = _pooled(cohort)
    central = _auc(_central_logistic(x, y), y)
    assert abs(summary["auc"] - central) < 0.02
    # the model file holds the weights and the features; its exact AUC matches the binned one
    model = torch.load(out / "model.pt", weights_only=True)
    assert [f["id"] for f in model["features"] if f["kind"] == "variant"] == list(
        cohort.causal_variants
    )
    assert [f["name"] for f in model["features"] if f["kind"] == "covariate"] == ["AGE", "SEX"]
    weights = {k: v.numpy() for k, v in model["state_dict"].items()}
    assert abs(_auc(model_logits("logistic", weights, x), y) - summary["auc"]) < 0.005
    assert summary["epsilon_per_site"] == {s.name: None for s in cohort.sites}
    # only the sum over sites reaches the coordinator: no per-site sample count or AUC
    assert summary["train_samples"] == len(y) == sum(_n_train(s) for s in sites)
    assert all(set(v) == {"epsilon", "noise"} for v in summary["sites"].values())
    assert outcome.summary["train"]["rounds"] == 4  # type: ignore[index]
    for name in ("model.pt", "train.summary.json", "train.calibration.tsv"):
        assert name in outcome.outputs
    # only weights and histograms left the sites: never an array sized by samples
    provenance = json.loads((out / "provenance.json").read_text())
    for site in provenance["sites"]:
        for release in site["releases"][1:]:
            assert {a["name"] for a in release["arrays"]} <= {
                "w.linear.weight",
                "w.linear.bias",
                "train_samples",
                "eval_histogram",
            }


def test_train__each_sites_epsilon_equals_an_independent_accountant(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    rounds, z, batch, eval_eps = 2, 1.2, 32, 1.0
    study = _study(cohort, noise_multiplier=z, rounds=rounds, model="mlp", hidden_units=4)
    sites = _copy(cohort, tmp_path)
    run_study(study, InProcessTransport(sites), out, engine="t")
    summary = json.loads((out / "train.summary.json").read_text())
    provenance = json.loads((out / "provenance.json").read_text())
    delta = 1e-5  # the demo policy's budget delta
    for site in sites:
        reported = summary["sites"][site.name]
        n = _n_train(site)
        batches = math.ceil(n / batch)
        q, steps = 1 / batches, batches * 1  # local_epochs = 1
        z_eval = calibrate_noise_multiplier(eval_eps, delta)
        independent = RdpAccountant()
        step = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(z))
        independent.compose(step, rounds * steps)
        independent.compose(dp_accounting.GaussianDpEvent(z_eval))
        expected = independent.get_epsilon(delta)
        assert reported["epsilon"] == pytest.approx(expected, rel=1e-9)
        opacus = RDPAccountant()
        opacus.history = [(z, q, rounds * steps), (z_eval, 1.0, 1)]
        assert reported["opacus_epsilon"] == pytest.approx(opacus.get_epsilon(delta), rel=1e-9)
        assert reported["epsilon"] == pytest.approx(reported["opacus_epsilon"], rel=2e-3)
        assert (
            provenance["privacy"]["train_epsilon_per_site"]["train"][site.name]
            == (reported["epsilon"])
        )
        # the ledger holds exactly these charges: rounds of DP-SGD steps, then the evaluation
        with sqlite3.connect(site / "state" / LEDGER_FILE) as db:
            rows = db.execute(
                "SELECT noise_multiplier, sampling_rate, steps FROM charges"
            ).fetchall()
        assert rows[:rounds] == [(z, q, steps)] * rounds and len(rows) == rounds + 1
        noise = [
            r["noise"]
            for r in next(s for s in provenance["sites"] if s["name"] == site.name)["releases"]
            if r["request"] == "train_round"
        ]
        assert all("torchcsprng" in r["randomness"] for r in noise)


def test_train__round_that_would_exceed_the_budget_is_refused(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    sites = _copy(cohort, tmp_path)
    policy = sites[1] / POLICY_FILE
    text = policy.read_text()
    assert "epsilon = 100.0" in text
    policy.write_text(text.replace("epsilon = 100.0", "epsilon = 2.7"))
    out = tmp_path / "results"
    study = _study(cohort, noise_multiplier=1.2, rounds=3)
    with pytest.raises(SiteFailure) as failed:
        run_study(study, InProcessTransport(sites), out, engine="t")
    assert failed.value.reason_code == "BUDGET_EXCEEDED"
    assert not out.exists()
    with sqlite3.connect(sites[1] / "state" / LEDGER_FILE) as db:
        charged = db.execute("SELECT COUNT(*) FROM charges").fetchone()[0]
    assert charged == 1  # round 1 fit (epsilon 2.39) and was charged; round 2 was refused
    entries = []
    for leaf in read_site_log(sites[1]).leaves:
        entry = audit_entry_from_bytes(leaf)
        entries.append(entry)
    released = [
        e for e in entries if e.kind == AuditKind.RELEASE and e.request_kind == "train_round"
    ]
    refused = [
        e for e in entries if e.request_kind == "train_round" and "BUDGET_EXCEEDED" in e.reason
    ]
    assert len(released) == 1 and len(refused) == 1  # audited: one release, then the refusal


def test_train__bad_parameters_are_errors_naming_the_fix(cohort: SynthSummary) -> None:
    with pytest.raises(ConfigError, match="exactly one of noise_multiplier"):
        _study(cohort)
    with pytest.raises(ConfigError, match="covariate_ranges"):
        _study(cohort, noise_multiplier=0.0, covariate_ranges=[[30, 80]])


def test_train__non_binary_target_and_unknown_variant_are_errors_naming_the_fix(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    sites = _copy(cohort, tmp_path)
    study = _study(cohort, target="QPHENO", noise_multiplier=0.0, rounds=1)
    with pytest.raises(SiteFailure, match=r"pheno.tsv: train target 'QPHENO' is not"):
        run_study(study, InProcessTransport(sites), tmp_path / "a", engine="t")
    table = {"variants": [*cohort.causal_variants, "9:1:A:C"], "noise_multiplier": 0.0}
    with pytest.raises(InputError, match=r"(?s)variant '9:1:A:C'.*harmonization.tsv"):
        run_study(_study(cohort, **table), InProcessTransport(sites), tmp_path / "b", engine="t")


def test_train__target_epsilon_is_calibrated_by_each_site_for_all_rounds(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    rounds, target = 2, 2.0
    study = _study(cohort, target_epsilon=target, rounds=rounds)
    run_study(study, InProcessTransport(_copy(cohort, tmp_path)), out, engine="t")
    provenance = json.loads((out / "provenance.json").read_text())
    for site in provenance["sites"]:
        noise = [r["noise"] for r in site["releases"] if r["request"] == "train_round"]
        assert len(noise) == rounds and len({n["noise_multiplier"] for n in noise}) == 1
        z, q, steps = noise[0]["noise_multiplier"], noise[0]["sampling_rate"], noise[0]["steps"]
        accountant = RdpAccountant()
        step = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(z))
        accountant.compose(step, rounds * steps)
        assert target * 0.99 < accountant.get_epsilon(1e-5) <= target  # tight, never above
        assert noise[-1]["epsilon_train_so_far"] == pytest.approx(accountant.get_epsilon(1e-5))
