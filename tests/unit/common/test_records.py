"""Codec between genofed.v1 messages and Flower records: round trips and tampering."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from genofed.common.errors import IntegrityError
from genofed.common.messages import Reply, Request, Status
from genofed.common.wire.records import (
    ARRAYS_KEY,
    reply_from_recorddict,
    reply_to_recorddict,
    request_from_recorddict,
    request_to_recorddict,
)

_arrays = st.dictionaries(
    st.text(alphabet="abcdefgh_", min_size=1, max_size=8),
    hnp.arrays(
        dtype=st.sampled_from([np.int64, np.int8, np.float64, np.bool_]),
        shape=hnp.array_shapes(min_dims=1, max_dims=2, max_side=5),
    ),
    max_size=3,
)


@settings(max_examples=40, deadline=None)
@given(_arrays)
def test_reply_codec__round_trips_arrays_and_manifest(arrays: dict[str, np.ndarray]) -> None:
    reply = Reply(site="site-a", status=Status.OK, analysis_id="freq", facts={"n_samples": "12"})
    got, got_arrays = reply_from_recorddict(reply_to_recorddict(reply, arrays))
    assert got.site == "site-a" and got.facts["n_samples"] == "12"
    assert [a.name for a in got.arrays] == list(arrays)
    assert set(got_arrays) == set(arrays)
    for name, value in arrays.items():
        np.testing.assert_array_equal(got_arrays[name], value)
        assert got_arrays[name].dtype == value.dtype


@settings(max_examples=20, deadline=None)
@given(_arrays)
def test_request_codec__round_trips(arrays: dict[str, np.ndarray]) -> None:
    request = Request(kind="genotype_counts", analysis_id="freq,hardy", round=2)
    got, got_arrays = request_from_recorddict(request_to_recorddict(request, arrays))
    assert got.kind == "genotype_counts" and got.round == 2
    assert set(got_arrays) == set(arrays)


def test_reply_codec__array_swapped_in_transit_is_refused() -> None:
    content = reply_to_recorddict(Reply(site="a"), {"counts": np.arange(4)})
    from flwr.app import Array

    content.array_records[ARRAYS_KEY]["counts"] = Array(np.arange(4) + 1)
    with pytest.raises(IntegrityError):
        reply_from_recorddict(content)


def test_reply_codec__missing_record_is_refused() -> None:
    from flwr.app import RecordDict

    with pytest.raises(IntegrityError):
        reply_from_recorddict(RecordDict())
