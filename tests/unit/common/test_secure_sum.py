"""Secure-sum settings, range checks, the request codec, and the secure study modes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from genofed.common.errors import ConfigError, IntegrityError
from genofed.common.messages import Request
from genofed.common.secure_sum import (
    CLIPPING_RANGE,
    MAX_WEIGHT,
    MODULUS_RANGE,
    QUANTIZATION_RANGE,
    exact_sum,
    range_problem,
    request_from_config,
    request_to_config,
    secaggplus_settings,
    settings_problem,
)
from genofed.common.study import Study, study_from_canonical, study_from_mapping
from genofed.common.wire.records import signed_study


def _study(privacy: dict[str, object], kinds: tuple[str, ...] = ("freq", "hardy")) -> Study:
    return study_from_mapping(
        {"study": {"name": "s"}, "privacy": privacy, "analysis": [{"kind": k} for k in kinds]},
        path=Path("study.toml"),
    )


def test_secaggplus_settings__give_a_quantization_step_of_one_and_need_three_sites() -> None:
    s = secaggplus_settings(3)
    assert s["quantization_range"] == 2 * s["clipping_range"] == QUANTIZATION_RANGE
    assert s["max_weight"] == MAX_WEIGHT == 1.0
    assert (s["num_shares"], s["reconstruction_threshold"]) == (3, 2)
    assert 2047 * QUANTIZATION_RANGE < MODULUS_RANGE  # the masked sum cannot wrap
    with pytest.raises(ValueError, match=r"between 3"):
        secaggplus_settings(2)


def test_settings_problem__refuses_two_participants_and_other_settings() -> None:
    good = {
        "clipping_range": float(CLIPPING_RANGE),
        "target_range": QUANTIZATION_RANGE,
        "mod_range": MODULUS_RANGE,
        "max_weight": 1.0,
    }
    assert settings_problem(sample_num=3, **good) is None  # type: ignore[arg-type]
    assert "at least 3" in str(settings_problem(sample_num=2, **good))  # type: ignore[arg-type]
    wrong = good | {"clipping_range": 8.0}
    assert "not be exact" in str(settings_problem(sample_num=3, **wrong))  # type: ignore[arg-type]
    # distributed-dp: fewer participants than noise shares would not make up the noise
    short = settings_problem(sample_num=3, min_participants=4, **good)  # type: ignore[arg-type]
    assert "at least 4" in str(short)


def test_range_problem__refuses_what_secaggplus_would_clip_silently() -> None:
    assert range_problem(np.array([[0, CLIPPING_RANGE], [-CLIPPING_RANGE, 5]])) is None
    assert "clipping range" in str(range_problem(np.array([CLIPPING_RANGE + 1])))
    assert "clipping range" in str(range_problem(np.array([-CLIPPING_RANGE - 1])))
    assert "integers" in str(range_problem(np.array([0.5])))


def test_exact_sum__rounds_the_unmasked_mean_and_refuses_a_non_integral_one() -> None:
    counts = np.array([[1_000_000, 3, 0, 7]])
    assert exact_sum(counts / 3, 3).tolist() == counts.tolist()
    with pytest.raises(IntegrityError):
        exact_sum(np.array([0.25]), 3)


def test_request_config__round_trips_and_catches_tampering() -> None:
    request = Request(kind="genotype_counts", analysis_id="freq", round=2, run_id="r")
    inputs = {"variant_index": np.arange(5, dtype=np.int64), "flip": np.zeros(5, dtype=np.bool_)}
    config = request_to_config(request, inputs)
    back, arrays = request_from_config(config)
    assert back.kind == "genotype_counts" and back.round == 2
    assert {k: v.tolist() for k, v in arrays.items()} == {k: v.tolist() for k, v in inputs.items()}
    tampered = dict(config)
    tampered["genofed.input.variant_index"] = np.arange(1, 6, dtype=np.int64).tobytes()
    with pytest.raises(IntegrityError):
        request_from_config(tampered)
    with pytest.raises(IntegrityError):
        request_from_config({k: v for k, v in config.items() if k != "genofed.input.flip"})


def test_study__exact_and_distributed_dp_parse_and_keep_their_hash() -> None:
    exact = _study({"mode": "exact"})
    assert exact.privacy.mode == "exact" and exact.privacy.epsilon is None
    ddp = _study({"mode": "distributed-dp", "epsilon": 1.0, "noise_shares": 3})
    assert (ddp.privacy.epsilon, ddp.privacy.delta, ddp.privacy.noise_shares) == (1.0, 1e-6, 3)
    for study in (exact, ddp):
        signed = signed_study(study, None)
        assert study_from_canonical(signed.canonical_json, signed.sha256) == study
    # studies without noise_shares keep the canonical form (and hash) they had before
    assert b"noise_shares" not in _study({"mode": "dp", "epsilon": 1.0}).canonical_json()


@pytest.mark.parametrize(
    ("privacy", "kinds", "message"),
    [
        ({"mode": "exact", "epsilon": 1.0}, ("freq",), "does not apply"),
        (
            {"mode": "distributed-dp", "epsilon": 1.0, "noise_shares": 3},
            ("freq", "glm"),
            "available for",
        ),
        ({"mode": "distributed-dp", "epsilon": 1.0}, ("freq",), "noise_shares must be given"),
        ({"mode": "distributed-dp", "epsilon": 1.0, "noise_shares": 0}, ("freq",), "noise_shares"),
        ({"mode": "distributed-dp", "noise_shares": 3}, ("freq",), "epsilon must be given"),
        ({"mode": "dp", "epsilon": 1.0, "noise_shares": 3}, ("freq",), "only to mode"),
    ],
)
def test_study__secure_modes_refuse_bad_privacy_tables(
    privacy: dict[str, object], kinds: tuple[str, ...], message: str
) -> None:
    if "glm" in kinds:
        raw_kinds = [{"kind": "freq"}, {"kind": "glm", "phenotype": "QPHENO"}]
        with pytest.raises(ConfigError, match=message):
            study_from_mapping(
                {"study": {"name": "s"}, "privacy": privacy, "analysis": raw_kinds},
                path=Path("study.toml"),
            )
        return
    with pytest.raises(ConfigError, match=message):
        _study(privacy, kinds)
