"""The runner's progress events (coordinator/events.py) on a tiny in-process federation.

Every event has its documented fields and no others, the stream starts with
``study_started`` and ends with ``study_done`` or ``study_failed``, each round
says which sites answered, and a site that fails or drops out is named.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import pytest

from genofed.common.errors import SiteFailure, TooFewSites
from genofed.common.study import Study, study_from_mapping
from genofed.coordinator.app import _print_progress
from genofed.coordinator.events import (
    COMMON_FIELDS,
    EVENT_FIELDS,
    EVENT_NAMES,
    Event,
    event_from_json,
    event_line,
)
from genofed.coordinator.receipt_check import WARN, ReceiptCheck
from genofed.coordinator.runner import run_study
from genofed.coordinator.transport import Incoming, Outgoing, ReplyFn, StreamingTransport
from genofed.synth import write_cohorts
from tests.harness import InProcessTransport

GLM = {"kind": "glm", "phenotype": "DISEASE", "covariates": ["AGE", "SEX"]}


def _study(*analyses: Mapping[str, object], min_sites: int | None = None) -> Study:
    head: dict[str, object] = {"name": "events"}
    if min_sites is not None:
        head["min_sites"] = min_sites
    return study_from_mapping({"study": head, "analysis": list(analyses)}, path=Path("<test>"))


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory):
    return write_cohorts(
        tmp_path_factory.mktemp("c") / "cohorts", sites=3, samples=120, variants=30, seed=1
    )


def _names(events: list[Event]) -> list[str]:
    return [e.name for e in events]


def _check_fields(events: list[Event]) -> None:
    for e in events:
        doc = e.to_json()
        assert set(doc) == set(COMMON_FIELDS) | set(EVENT_FIELDS[e.name]), e.name
        assert datetime.fromisoformat(e.time).tzinfo is not None
        assert json.loads(event_line(e)) == json.loads(json.dumps(doc, default=str))
    elapsed = [e.elapsed for e in events]
    assert elapsed == sorted(elapsed)


def test_events__one_study_in_order_with_documented_fields(cohort, tmp_path: Path) -> None:
    events: list[Event] = []
    study = _study({"kind": "freq"}, {"kind": "hardy"}, GLM)
    run_study(
        study,
        InProcessTransport(cohort.sites),
        tmp_path / "r",
        engine="in-process",
        progress=events.append,
    )
    names = _names(events)
    assert names[0] == "study_started" and names[-1] == "study_done"
    assert set(names) <= set(EVENT_NAMES)
    _check_fields(events)
    started = [e for e in events if e.name == "analysis_started"]
    assert [e.get("analyses") for e in started] == [[], ["freq", "hardy"], ["glm"]]
    assert [e.get("kind") for e in started] == ["variants", "genotype_counts", "glm"]
    done = [e.get("analyses") for e in events if e.name == "analysis_done"]
    assert done == [[], ["freq"], ["hardy"], ["glm"]]
    # every round: started, one answer per site asked, done with the count
    rounds = [e for e in events if e.name == "round_started"]
    finished = [e for e in events if e.name == "round_done"]
    assert len(rounds) == len(finished) > 3
    assert [e.get("study_round") for e in rounds] == list(range(1, len(rounds) + 1))
    glm_rounds = [e.get("round") for e in rounds if e.get("analyses") == ["glm"]]
    assert glm_rounds == list(range(1, len(glm_rounds) + 1))  # the analysis's own count
    answered = [e for e in events if e.name == "site_answered"]
    assert len(answered) == 3 * len(rounds)
    assert {e.get("site") for e in answered} == {"site-a", "site-b", "site-c"}
    assert all(e.get("answered") == e.get("asked") == 3 for e in finished)
    end = events[-1]
    assert end.get("sites") == ["site-a", "site-b", "site-c"]
    assert end.get("sites_missing") == []
    assert "provenance.json" in list(end.get("outputs"))  # type: ignore[arg-type]


class SilentFrom(InProcessTransport):
    """Node ``node`` stops answering at exchange number ``call`` (1-based) and after."""

    def __init__(self, site_dirs: list[Path], node: int, call: int) -> None:
        super().__init__(site_dirs)
        self.silent_node, self.silent_from, self.calls = node, call, 0

    def exchange(self, outgoing: Mapping[int, Outgoing], *, timeout: float) -> dict[int, Incoming]:
        self.calls += 1
        live = {
            n: o
            for n, o in outgoing.items()
            if n != self.silent_node or self.calls < self.silent_from
        }
        got = super().exchange(live, timeout=timeout)
        for n in outgoing:
            got.setdefault(n, Incoming(None, error=f"no reply within {timeout:.0f} s"))
        return got


def test_events__site_dropping_out_mid_glm_is_named_and_the_glm_starts_again(
    cohort, tmp_path: Path
) -> None:
    events: list[Event] = []
    transport = SilentFrom(list(cohort.sites), node=3, call=4)  # silent from glm round 2
    run_study(
        _study({"kind": "freq"}, GLM, min_sites=2),
        transport,
        tmp_path / "r",
        engine="in-process",
        progress=events.append,
        timeout=5,
    )
    _check_fields(events)
    (failed,) = [e for e in events if e.name == "site_failed"]
    assert (failed.get("site"), failed.get("status")) == ("site-c", "no_reply")
    assert failed.get("reason_code") == "NO_REPLY" and failed.get("analyses") == ["glm"]
    (dropped,) = [e for e in events if e.name == "site_dropped"]
    assert dropped.get("site") == "site-c" and dropped.get("remaining") == 2
    assert dropped.get("min_sites") == 2
    names = _names(events)
    assert names.index("site_failed") < names.index("site_dropped")
    glm_starts = [e for e in events if e.name == "analysis_started" and e.get("kind") == "glm"]
    assert [e.get("attempt") for e in glm_starts] == [1, 2]
    assert glm_starts[1].get("sites") == ["site-a", "site-b"]
    assert events[-1].name == "study_done"
    assert events[-1].get("sites_missing") == ["site-c"]


def test_events__a_site_that_stops_the_study_ends_the_stream_with_study_failed(
    cohort, tmp_path: Path
) -> None:
    events: list[Event] = []
    with pytest.raises(SiteFailure):
        run_study(
            _study({"kind": "freq"}, GLM),
            SilentFrom(list(cohort.sites), node=2, call=4),
            tmp_path / "r",
            engine="in-process",
            progress=events.append,
            timeout=5,
        )
    _check_fields(events)
    assert events[-1].name == "study_failed"
    assert events[-1].get("error") == "SiteFailure"
    assert "site-b" in str(events[-1].get("message"))
    assert "site_dropped" not in _names(events)


def test_min_sites_above_the_federation__names_the_key_and_the_fix(cohort, tmp_path: Path) -> None:
    events: list[Event] = []
    with pytest.raises(TooFewSites) as info:
        run_study(
            _study({"kind": "freq"}, min_sites=5),
            InProcessTransport(cohort.sites),
            tmp_path / "r",
            engine="in-process",
            progress=events.append,
        )
    assert info.value.key == "[study] min_sites"
    assert "[study] min_sites = 5, but only 3 sites take part" in str(info.value)
    assert "fix: lower [study] min_sites to at most 3" in str(info.value)
    assert _names(events) == ["study_started", "study_failed"]
    assert events[-1].get("error") == "TooFewSites"
    assert not (tmp_path / "r").exists()


class Streaming(InProcessTransport):
    """Says each reply as soon as it is made, as the Grid transport does."""

    def __init__(self, site_dirs: list[Path], seen: list[Event]) -> None:
        super().__init__(site_dirs)
        self.seen = seen
        self.answered_before: list[int] = []  # site_answered events seen before each reply

    def exchange_streaming(
        self, outgoing: Mapping[int, Outgoing], *, timeout: float, on_reply: ReplyFn
    ) -> dict[int, Incoming]:
        result = {}
        for node, o in outgoing.items():
            result[node] = super().exchange({node: o}, timeout=timeout)[node]
            self.answered_before.append(sum(e.name == "site_answered" for e in self.seen))
            on_reply(node, result[node])
        return result


def test_streaming_transport__each_answer_is_an_event_as_it_arrives(cohort, tmp_path: Path) -> None:
    events: list[Event] = []
    transport = Streaming(list(cohort.sites), events)
    assert isinstance(transport, StreamingTransport)
    checked = ReceiptCheck({}, WARN).wrap(transport)  # the receipt check keeps it streaming
    assert isinstance(checked, StreamingTransport)
    run_study(
        _study({"kind": "freq"}),
        checked,
        tmp_path / "r",
        engine="in-process",
        progress=events.append,
    )
    assert transport.answered_before == [0, 1, 2, 3, 4, 5]  # one event per reply, in time
    assert sum(e.name == "site_answered" for e in events) == 6  # and no second one at the end


def test_deployment_progress_lines__are_json_events_read_back(capsys) -> None:
    event = Event("round_done", "2026-01-01T00:00:00.000+00:00", 1.5, {"study": "s", "round": 2})
    _print_progress(event)
    line = capsys.readouterr().out.strip()
    assert line.startswith("genofed-progress: {")
    back = event_from_json(json.loads(line.split(": ", 1)[1]))
    assert back == event
    with pytest.raises(ValueError):
        event_from_json({"event": "not_an_event"})
    with pytest.raises(ValueError):
        event_from_json([1, 2])
