"""Releases over the same people add up: the membership check counts the earlier ones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from genofed.common.membership import power, site_terms
from genofed.site_agent.privacy.membership_history import History
from genofed.site_agent.privacy.membership_release import check_release
from genofed.site_agent.privacy.policy import SitePolicy

POLICY = SitePolicy(demo=False, allowed_analyses=frozenset({"freq"}), max_membership_power=0.1)
PEOPLE = [f"f{i}\ti{i}" for i in range(400)]


def _release(
    counts: np.ndarray, rows: np.ndarray, history: History | None
) -> tuple[dict[str, float], np.ndarray]:
    """The audit record of a release of ``rows``, and the rows it let out."""
    ids = np.array([f"rs{i}" for i in rows])
    ref, alt = np.full(len(rows), "A"), np.full(len(rows), "G")
    none = np.zeros(len(rows), dtype=np.bool_)
    decision = check_release(POLICY, counts[rows], none, ids, ref, alt, history)
    return json.loads(decision.facts["noise"])["membership"], rows[~decision.withheld]


@pytest.fixture
def counts() -> np.ndarray:
    rng = np.random.default_rng(11)
    g = rng.binomial(2, rng.uniform(0.1, 0.5, 2000), size=(400, 2000))
    return np.stack([(g == 0).sum(0), (g == 1).sum(0), (g == 2).sum(0), np.zeros(2000)], 1)


def test_history__a_second_half_pays_for_the_first(tmp_path: Path, counts: np.ndarray) -> None:
    history = History.open(tmp_path, PEOPLE)
    first, out_first = _release(counts, np.arange(0, 2000, 2), history)
    second, out_second = _release(counts, np.arange(1, 2000, 2), history)
    assert first["variants_released_before"] == 0
    assert second["variants_released_before"] == len(out_first)
    assert second["power"] <= 0.1
    together = np.concatenate([out_first, out_second])
    assert power(site_terms(counts[together]), 0.05) <= 0.1 + 1e-6
    # without the history the second half would have let out as much as the first
    _, alone = _release(counts, np.arange(1, 2000, 2), None)
    assert len(alone) > len(out_second)


def test_history__repeating_a_release_costs_nothing_more(
    tmp_path: Path, counts: np.ndarray
) -> None:
    history = History.open(tmp_path, PEOPLE)
    rows = np.arange(1000)
    _, first = _release(counts, rows, history)
    record, again = _release(counts, rows, history)
    assert record["variants_released_before"] == 0  # the same variants: not counted twice
    assert np.array_equal(first, again)


def test_history__other_people_have_their_own_account(tmp_path: Path, counts: np.ndarray) -> None:
    _release(counts, np.arange(0, 2000, 2), History.open(tmp_path, PEOPLE))
    other, _ = _release(counts, np.arange(1, 2000, 2), History.open(tmp_path, PEOPLE[:-1]))
    assert other["variants_released_before"] == 0
