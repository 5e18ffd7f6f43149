"""What ``genofed study run --superlink`` says when ``flwr run`` ends without a result.

Before the run was submitted the coordinator cannot be reached (check the
address). After it was submitted the connection was lost mid-study (the
SuperLink or its ServerApp died): the analyst is told how far the study got,
that nothing was written, and how to finish it (restart, rerun the same
study: the sites replay what they already released, nothing is charged twice).
Both exit 6 (:data:`genofed.cli.failures.EXIT_UNREACHABLE`).
"""

from __future__ import annotations

from pathlib import Path

from genofed.common.errors import UnreachableError
from genofed.coordinator.app import PROGRESS_PREFIX
from genofed.coordinator.deploy.results_transfer import RESULTS_PREFIX
from genofed.coordinator.deploy.submit import RERUN_ADVICE, Submission, no_result_error
from genofed.coordinator.events import ROUND_DONE, Event

SUB = Submission(Path("study.signed.json"), "coord:9093", Path("results"), 3)
FLOWER_UNAVAILABLE = "Connection to the SuperLink is unavailable. Please check your network"


def _round(n: int, analysis: str = "glm") -> Event:
    return Event(
        ROUND_DONE, "2026-01-01T00:00:00.000+00:00", 1.0, {"analyses": [analysis], "round": n}
    )


def test_not_submitted__cannot_reach_the_control_api_and_says_which_address() -> None:
    err = no_result_error(SUB, [FLOWER_UNAVAILABLE], submitted=False, last=[])
    assert isinstance(err, UnreachableError)
    text = str(err)
    assert "cannot reach the coordinator's control API at coord:9093" in text
    assert "fix: check --superlink" in text
    assert "mid-study" not in text


def test_lost_mid_study__names_the_last_round_and_says_to_restart_and_rerun() -> None:
    lines = [
        "Successfully started run 123",
        f'{PROGRESS_PREFIX}{{"event": "round_done"}}',
        f"{RESULTS_PREFIX}1/2 AAAA",
        FLOWER_UNAVAILABLE,
    ]
    err = no_result_error(SUB, lines, submitted=True, last=[_round(1), _round(2)])
    text = str(err)
    # Flower's own message says "unavailable", but the run had started: lost, not unreachable
    assert "lost mid-study after round 2 of glm" in text
    assert "cannot reach" not in text and "fix: check --superlink" not in text
    assert "no results were written to results" in text
    assert text.endswith(RERUN_ADVICE)
    assert "`genofed coordinator up`" in RERUN_ADVICE
    assert "run the same study again" in RERUN_ADVICE
    assert "nothing is charged twice" in RERUN_ADVICE
    # the quoted tail is Flower's output, not the relayed events or result chunks
    assert FLOWER_UNAVAILABLE in text
    assert PROGRESS_PREFIX not in text and RESULTS_PREFIX not in text


def test_lost_before_any_round__says_so() -> None:
    err = no_result_error(SUB, ["Successfully started run 9"], submitted=True, last=[])
    assert "lost mid-study before its first round finished" in str(err)
