"""The train summable forms: FedAvg and the evaluation from sums over sites only.

The coordinator used to average the sites' own weights, each weighted by
its ``train_samples`` fact, and to keep each site's evaluation histogram;
now it receives only the sum over sites of each site's summable form
(:mod:`genofed.common.wire.train`): samples x weights, the samples, and the
histogram. These tests check that the sums give the old average to 1 ulp
(float32 weights), that the forms' shapes depend only on the request, that
a malformed reply is a clear ValueError, and that ``run_train`` never asks
for a site's arrays.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from genofed.common.errors import GenoFedError
from genofed.common.fixed_point import layout_of
from genofed.common.messages import Reply
from genofed.common.study import study_from_mapping
from genofed.common.wire.records import NamedArrays
from genofed.common.wire.summable import secure_analysis_kinds, summed
from genofed.common.wire.train import (
    EVAL_HISTOGRAM,
    N_EVAL_BINS,
    SUMMABLE_FORMS,
    TRAIN_EVAL_KIND,
    TRAIN_ROUND_KIND,
    TRAIN_SAMPLES,
    WEIGHT_PREFIX,
    parameter_shapes,
)
from genofed.coordinator.combine import train as combine
from genofed.coordinator.combine.harmonize import Harmonization, VariantTable, harmonize
from genofed.coordinator.protocols.job import Answer, Pooled
from genofed.coordinator.protocols.train import run_train

round_form = SUMMABLE_FORMS[TRAIN_ROUND_KIND]
eval_form = SUMMABLE_FORMS[TRAIN_EVAL_KIND]
SITES = ["site-a", "site-b", "site-c"]


def _old_fedavg(
    updates: Sequence[Mapping[str, np.ndarray]], n_samples: Sequence[int]
) -> dict[str, np.ndarray]:
    """The coordinator's FedAvg before secure aggregation, from each site's own weights."""
    total = float(sum(n_samples))
    return {
        name: np.sum(
            [
                np.asarray(u[name], np.float64) * (n / total)
                for u, n in zip(updates, n_samples, strict=True)
            ],
            axis=0,
        ).astype(np.float32)
        for name in updates[0]
    }


def _request(shapes: Mapping[str, tuple[int, ...]]) -> NamedArrays:
    return {WEIGHT_PREFIX + k: np.zeros(s, dtype=np.float32) for k, s in shapes.items()}


def _reply(rng: np.random.Generator, shapes: Mapping[str, tuple[int, ...]], n: int) -> NamedArrays:
    scale = 10.0 ** rng.integers(-3, 2)
    reply = {
        WEIGHT_PREFIX + k: (rng.normal(size=s) * scale).astype(np.float32)
        for k, s in shapes.items()
    }
    return {**reply, TRAIN_SAMPLES: np.array([n], dtype=np.int64)}


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.lists(st.integers(1, 200_000), min_size=1, max_size=6),
    model=st.sampled_from(["logistic", "mlp"]),
)
def test_round_form__fedavg_of_the_sums_equals_the_old_average_to_one_ulp(
    seed: int, n: list[int], model: str
) -> None:
    rng = np.random.default_rng(seed)
    shapes = parameter_shapes(model, 7, 5)
    replies = [_reply(rng, shapes, m) for m in n]
    sites = [f"s{i}" for i in range(len(n))]
    total = summed([round_form(r, _request(shapes)) for r in replies], sites)
    assert int(total[TRAIN_SAMPLES][0]) == sum(n)
    weighted = {k: total[WEIGHT_PREFIX + k] for k in shapes}
    ours = combine.fedavg_from_sums(weighted, int(total[TRAIN_SAMPLES][0]))
    updates = [{k: r[WEIGHT_PREFIX + k] for k in shapes} for r in replies]
    old = _old_fedavg(updates, n)
    for name in shapes:
        assert ours[name].dtype == np.float32
        assert combine.fedavg(updates, n)[name].tobytes() == ours[name].tobytes(), name
        # the old average rounded each site's share in float64 before adding; the sums are
        # exact, so the two can differ where float64 rounding meets a float32 tie: by 1 ulp
        # (seed=112, n=[112, 112, 112], "mlp" is one such case)
        np.testing.assert_array_max_ulp(ours[name], old[name], maxulp=1)


def test_round_form__shapes_fixed_by_the_request_not_the_data() -> None:
    rng = np.random.default_rng(1)
    shapes = parameter_shapes("mlp", 4, 3)
    layouts = {
        layout_of(round_form(_reply(rng, shapes, n), _request(shapes))) for n in (1, 37, 9000)
    }
    assert len(layouts) == 1
    form = round_form(_reply(rng, shapes, 12), _request(shapes))
    assert {k: v.shape for k, v in form.items()} == {
        TRAIN_SAMPLES: (1,),
        **{WEIGHT_PREFIX + k: s for k, s in shapes.items()},
    }
    assert form[TRAIN_SAMPLES].dtype == np.int64
    assert all(form[WEIGHT_PREFIX + k].dtype == np.float64 for k in shapes)


def test_eval_form__sum_is_the_pooled_histogram_and_has_a_fixed_shape() -> None:
    rng = np.random.default_rng(2)
    hists = [rng.integers(-3, 40, size=(2, N_EVAL_BINS)) for _ in SITES]  # noisy: may be < 0
    forms = [eval_form({EVAL_HISTOGRAM: h}, {}) for h in hists]
    assert {layout_of(f) for f in forms} == {layout_of(forms[0])}
    total = summed(forms, SITES)[EVAL_HISTOGRAM]
    assert total.dtype == np.int64 and np.array_equal(total, np.sum(hists, axis=0))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({TRAIN_SAMPLES: None}, "train_samples is missing"),
        ({TRAIN_SAMPLES: np.array([3, 4])}, r"train_samples must have shape \(1,\)"),
        ({TRAIN_SAMPLES: np.array([1.5])}, r"train_samples must have shape \(1,\)"),
        ({TRAIN_SAMPLES: np.array([0])}, r"train_samples must be in \[1, "),
        ({"w.linear.bias": None}, "w.linear.bias is missing"),
        ({"w.linear.weight": np.zeros((1, 2), np.float32)}, "w.linear.weight must have shape"),
        ({"w.linear.weight": np.zeros((1, 3), np.int64)}, "w.linear.weight must have shape"),
        ({"w.linear.bias": np.array([np.nan], np.float32)}, "w.linear.bias holds a value"),
        ({"w.hidden.bias": np.zeros(2, np.float32)}, "did not ask for"),
    ],
)
def test_round_form__malformed_reply_is_a_clear_error(
    change: dict[str, np.ndarray | None], message: str
) -> None:
    shapes = parameter_shapes("logistic", 3, 1)
    reply = _reply(np.random.default_rng(3), shapes, 50)
    for name, value in change.items():
        if value is None:
            del reply[name]
        else:
            reply[name] = value
    with pytest.raises(ValueError, match=message):
        round_form(reply, _request(shapes))


def test_forms__malformed_request_or_histogram_is_a_clear_error() -> None:
    shapes = parameter_shapes("logistic", 3, 1)
    reply = _reply(np.random.default_rng(3), shapes, 50)
    with pytest.raises(ValueError, match="request has no weights"):
        round_form(reply, {"variant_index": np.zeros(2, np.int64)})
    with pytest.raises(ValueError, match="eval_histogram is missing"):
        eval_form({}, {})
    with pytest.raises(ValueError, match=rf"eval_histogram must have shape \(2, {N_EVAL_BINS}\)"):
        eval_form({EVAL_HISTOGRAM: np.zeros((2, 3), np.int64)}, {})
    with pytest.raises(ValueError, match="eval_histogram must have shape"):
        eval_form({EVAL_HISTOGRAM: np.zeros((2, N_EVAL_BINS))}, {})


def test_train__admitted_in_exact_mode() -> None:
    assert "train" in secure_analysis_kinds()


def _harmonization(n_variants: int) -> Harmonization:
    table = VariantTable(
        chrom=np.array(["1"] * n_variants),
        pos=np.arange(1, n_variants + 1) * 100,
        id=np.array([f"v{i}" for i in range(n_variants)]),
        ref=np.array(["A"] * n_variants),
        alt=np.array(["G"] * n_variants),
    )
    return harmonize(SITES, [table] * len(SITES), allow_intersection=False)


def test_run_train__fedavg_and_evaluation_from_the_sums_only(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    n = [120, 333, 58]
    asked: list[str] = []
    got_updates: list[list[dict[str, np.ndarray]]] = []
    hists = [rng.integers(0, 20, size=(2, N_EVAL_BINS)) for _ in SITES]

    def ask(kind: str, ident: str, inputs: Sequence[NamedArrays]) -> list[Answer]:
        raise AssertionError("run_train asked for the sites' own arrays")

    def ask_sum(kind: str, ident: str, inputs: Sequence[NamedArrays]) -> Pooled:
        asked.append(kind)
        shapes = {k[len(WEIGHT_PREFIX) :]: v.shape for k, v in inputs[0].items() if "w." in k}
        if kind == TRAIN_ROUND_KIND:
            replies = [_reply(rng, shapes, m) for m in n]
            got_updates.append([{k: r[WEIGHT_PREFIX + k] for k in shapes} for r in replies])
        else:
            replies = [{EVAL_HISTOGRAM: h} for h in hists]
        forms = [SUMMABLE_FORMS[kind](r, x) for r, x in zip(replies, inputs, strict=True)]
        return Pooled([Reply(site=s) for s in SITES], summed(forms, SITES), list(SITES))

    table = {
        "kind": "train",
        "target": "DISEASE",
        "variants": ["v1", "v3"],
        "covariates": ["AGE"],
        "covariate_ranges": [[30, 80]],
        "noise_multiplier": 0.0,
        "rounds": 3,
        "model": "mlp",
        "hidden_units": 4,
    }
    study = study_from_mapping({"study": {"name": "t"}, "analysis": [table]}, path=Path("t"))
    files, _ = run_train(
        study.analyses[0],
        _harmonization(5),
        tmp_path,
        ask,
        ask_sum=ask_sum,
        study_sha256="0" * 64,
    )
    assert asked == [TRAIN_ROUND_KIND] * 3 + [TRAIN_EVAL_KIND]
    assert files == ["model.pt", "train.summary.json", "train.calibration.tsv"]
    summary = json.loads((tmp_path / "train.summary.json").read_text())
    assert summary["train_samples"] == sum(n)
    pooled = np.sum(hists, axis=0)
    assert summary["auc"] == round(combine.auc_from_histogram(pooled), 6)
    assert summary["calibration"] == json.loads(
        json.dumps(combine.calibration_from_histogram(pooled))
    )
    assert set(summary["sites"]) == set(SITES)
    assert all(set(v) == {"epsilon", "noise"} for v in summary["sites"].values())
    rows = (tmp_path / "train.calibration.tsv").read_text().splitlines()[1:]
    assert len(rows) == 10 and all(r.startswith("pooled\t") for r in rows)
    model = torch.load(tmp_path / "model.pt", weights_only=True)
    want = _old_fedavg(got_updates[-1], n)
    for name, value in want.items():
        assert model["state_dict"][name].numpy().tobytes() == value.tobytes(), name


def test_run_train__sums_of_the_wrong_shape_are_an_error(tmp_path: Path) -> None:
    def ask_sum(kind: str, ident: str, inputs: Sequence[NamedArrays]) -> Pooled:
        arrays = {TRAIN_SAMPLES: np.array([10]), "w.linear.weight": np.zeros((1, 9))}
        return Pooled([Reply(site=s) for s in SITES], arrays, list(SITES))

    table = {
        "kind": "train",
        "target": "DISEASE",
        "variants": ["v1"],
        "noise_multiplier": 0.0,
        "rounds": 1,
    }
    study = study_from_mapping({"study": {"name": "t"}, "analysis": [table]}, path=Path("t"))
    with pytest.raises(GenoFedError, match=r"summed w.linear.weight is of shape \(1, 9\)"):
        run_train(
            study.analyses[0],
            _harmonization(2),
            tmp_path,
            lambda *a: [],
            ask_sum=ask_sum,
            study_sha256="0" * 64,
        )
