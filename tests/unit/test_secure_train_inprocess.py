"""A ``require_secure_aggregation`` site and ``train``: exact updates only masked (no Flower).

A stand-in sealer replaces SecAgg+ (as in test_secure_study_inprocess.py):
the site must accept an ``exact`` study's noiseless ``train_round``, hand
the sealer only its summable form (samples x weights and the samples), and
refuse the same update in the clear, saying how to ask for it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from genofed.common.errors import PolicyRefusal
from genofed.common.fixed_point import decode, layout_from_text
from genofed.common.messages import Request, Status
from genofed.common.secure_sum import SECAGG_LAYOUT_FACT
from genofed.common.study import Study, study_from_mapping
from genofed.common.wire.records import NamedArrays, signed_study
from genofed.common.wire.train import TRAIN_SAMPLES, WEIGHT_PREFIX, parameter_shapes
from genofed.site_agent.audit.log import read_site_log
from genofed.site_agent.privacy.policy import POLICY_FILE, load_policy
from genofed.site_agent.release import handle_request
from genofed.site_agent.requests.train import serve_train
from genofed.synth import SynthSummary, write_cohorts

N_VARIANTS = 20


class StandInSealer:
    """Records the vector it is asked to seal; 'masks' it by adding a constant."""

    def __init__(self) -> None:
        self.sealed: np.ndarray | None = None

    def check(self, min_participants: int) -> None:
        if min_participants < 3:
            raise PolicyRefusal("SECURE_AGGREGATION_SETTINGS", "too few participants")

    def seal(self, vector: np.ndarray) -> NamedArrays:
        self.sealed = vector
        return {"secagg_masked_0": vector + 12345}


def _study(privacy: dict[str, object], **params: object) -> Study:
    table = {
        "kind": "train",
        "target": "DISEASE",
        "variants": [],
        "covariates": ["AGE", "SEX"],
        "covariate_ranges": [[30, 80], [1, 2]],
        "noise_multiplier": 0.0,
        "rounds": 1,
        **params,
    }
    return study_from_mapping(
        {"study": {"name": "sec-train"}, "privacy": privacy, "analysis": [table]},
        path=Path("<test>"),
    )


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    return write_cohorts(
        tmp_path_factory.mktemp("sectrain") / "c", sites=3, samples=90, variants=N_VARIANTS, seed=4
    )


@pytest.fixture
def site(cohort: SynthSummary, tmp_path: Path) -> Path:
    target = tmp_path / "site-a"
    shutil.copytree(cohort.sites[0], target)
    policy = target / POLICY_FILE
    text = policy.read_text()
    assert "require_secure_aggregation = false" in text
    policy.write_text(
        text.replace("require_secure_aggregation = false", "require_secure_aggregation = true")
    )
    return target


def _round_request(study: Study) -> tuple[Request, NamedArrays]:
    request = Request(
        study=signed_study(study, None),
        analysis_id="train",
        kind="train_round",
        step="train_round",
        round=2,
        run_id="run-1",
    )
    shapes = parameter_shapes("logistic", 2, 1)
    inputs: NamedArrays = {
        "variant_index": np.zeros(0, dtype=np.int64),
        "flip": np.zeros(0, dtype=np.bool_),
        **{WEIGHT_PREFIX + k: np.full(s, 0.25, dtype=np.float32) for k, s in shapes.items()},
    }
    return request, inputs


def test_require_secure_aggregation__accepts_an_exact_train_study_masked(site: Path) -> None:
    sealer = StandInSealer()
    reply, arrays = handle_request(site, *_round_request(_study({"mode": "exact"})), sealer=sealer)
    assert reply.status == Status.OK, reply.message
    assert list(arrays) == ["secagg_masked_0"]  # the update leaves only masked
    assert TRAIN_SAMPLES not in reply.facts  # no per-site sample count in the clear
    assert reply.facts["release_mode"] == "exact"
    assert sealer.sealed is not None
    assert sealer.sealed is not None
    form = decode(sealer.sealed, layout_from_text(reply.facts[SECAGG_LAYOUT_FACT]))
    assert set(form) == {TRAIN_SAMPLES, "w.linear.weight", "w.linear.bias"}
    n = int(form[TRAIN_SAMPLES][0])
    assert 10 <= n <= 90
    assert np.all(np.isfinite(form["w.linear.weight"])) and form["w.linear.weight"].shape == (1, 2)
    # samples x float32 weights: dividing by the samples gives float32 values back exactly
    w = form["w.linear.weight"] / n
    assert np.array_equal(w.astype(np.float32).astype(np.float64), w)


def test_require_secure_aggregation__refuses_plain_exact_updates(site: Path) -> None:
    reply, arrays = handle_request(site, *_round_request(_study({"mode": "plain"})))
    assert (reply.status, reply.reason_code) == (Status.REFUSED, "SECURE_AGGREGATION_REQUIRED")
    assert arrays == {}
    assert 'mode = "exact"' in reply.message
    assert "SECURE_AGGREGATION_REQUIRED" in read_site_log(site).entries_text().splitlines()[-1]


def test_serve_train__plain_exact_updates_refused_naming_exact_mode_and_noise(
    site: Path,
) -> None:
    # check_study refuses a plain study first; serve_train refuses on its own as well
    study = _study({"mode": "plain"})
    request, inputs = _round_request(study)
    ctx = SimpleNamespace(
        analysis=study.analyses[0],
        bed=None,
        request=request,
        policy=load_policy(site / POLICY_FILE),
        site=None,
        variant_plan=(inputs["variant_index"], inputs["flip"]),
        inputs=inputs,
        mode="plain",
    )
    with pytest.raises(PolicyRefusal) as info:
        serve_train(ctx)  # type: ignore[arg-type]
    assert info.value.reason_code == "SECURE_AGGREGATION_REQUIRED"
    assert 'ask for [privacy] mode = "exact"' in str(info.value)
    assert "noise_multiplier > 0 or target_epsilon" in str(info.value)
    assert "does not offer yet" not in str(info.value)


def test_noisy_train_in_exact_mode__masked_and_charged_as_in_plain(site: Path) -> None:
    noisy = _study({"mode": "exact"}, noise_multiplier=1.2)
    sealer = StandInSealer()
    reply, arrays = handle_request(site, *_round_request(noisy), sealer=sealer)
    assert reply.status == Status.OK, reply.message
    assert list(arrays) == ["secagg_masked_0"]
    assert reply.receipt.epsilon_charged > 0  # the DP-SGD steps are charged as before
    assert sealer.sealed is not None
    form = decode(sealer.sealed, layout_from_text(reply.facts[SECAGG_LAYOUT_FACT]))
    assert set(form) == {TRAIN_SAMPLES, "w.linear.weight", "w.linear.bias"}
