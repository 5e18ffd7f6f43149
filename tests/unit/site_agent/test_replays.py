"""Idempotent charged releases: the same request of the same study gets its stored reply.

A rerun of a ``dp`` study (the coordinator died, the analyst ran the signed
study again) must not charge any site twice, and must not hand out a second
independent noise draw of the same statistic (averaging two draws halves the
noise variance). A different request is a new release and is charged; so is
the same study after the site's data changed.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from genofed.common.study import Study, study_from_mapping
from genofed.common.wire.proto import audit_entry_from_bytes
from genofed.coordinator.receipt_check import REQUIRE, ReceiptCheck, load_audit_key
from genofed.coordinator.runner import run_study
from genofed.site_agent.audit.log import AuditPaths, entry_to_json, read_site_log
from genofed.site_agent.privacy.ledger import LEDGER_FILE, Budget, Ledger
from genofed.site_agent.privacy.replays import REPLAYS_FILE, Replays, data_id, replay_key
from genofed.site_agent.sitedir import load_site
from genofed.synth import SynthSummary, write_cohorts
from tests.harness import InProcessTransport


def _study(epsilon: float) -> Study:
    return study_from_mapping(
        {
            "study": {"name": "dpqc"},
            "privacy": {"mode": "dp", "epsilon": epsilon},
            "analysis": [{"kind": "freq"}],
        },
        path=Path("<test>"),
    )


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    return write_cohorts(tmp_path_factory.mktemp("rp") / "c", sites=3, samples=300, variants=30)


def _sites(cohort: SynthSummary, root: Path) -> list[Path]:
    out = []
    for site in cohort.sites:
        shutil.copytree(site, root / site.name)
        out.append(root / site.name)
    return out


def _keys(sites: list[Path]) -> dict[str, Any]:
    return {load_site(s).name: load_audit_key(AuditPaths.of(s).pub) for s in sites}


def _charges(site: Path) -> int:
    return len(Ledger(site / "state" / LEDGER_FILE, Budget(100.0, 1e-5)).entries())


def _audit_entries(site: Path) -> list[dict[str, Any]]:
    return [entry_to_json(audit_entry_from_bytes(leaf)) for leaf in read_site_log(site).leaves]


def test_rerun__same_noise_no_second_charge_and_the_replay_is_audited(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    sites = _sites(cohort, tmp_path / "sites")
    first = run_study(_study(5.0), InProcessTransport(sites), tmp_path / "r1", engine="t")
    # each request opens the site's stores afresh, as a restarted site agent does; the
    # coordinator requires every receipt to verify
    again = run_study(
        _study(5.0),
        InProcessTransport(sites),
        tmp_path / "r2",
        engine="t",
        receipts=ReceiptCheck(_keys(sites), REQUIRE),
    )
    assert first.run_id != again.run_id
    assert (first.out / "freq.afreq").read_bytes() == (again.out / "freq.afreq").read_bytes()
    assert [_charges(s) for s in sites] == [1, 1, 1]
    doc = json.loads((again.out / "provenance.json").read_text())
    before = json.loads((first.out / "provenance.json").read_text())
    for record, earlier in zip(doc["sites"], before["sites"], strict=True):
        (counts,) = [r for r in record["releases"] if r["request"] == "genotype_counts"]
        (original,) = [r for r in earlier["releases"] if r["request"] == "genotype_counts"]
        assert "epsilon_charged" not in counts  # nothing charged by the rerun
        # the same receipt as the first run's: the original entry and its signed checkpoint
        assert counts["receipt"].pop("receipt_check") == "verified"
        assert counts["receipt"] == original["receipt"], record["name"]
        assert counts["replay_of_audit_index"] == original["receipt"]["audit_index"]
    for site in sites:
        releases = [e for e in _audit_entries(site) if e["kind"] == "AUDIT_KIND_RELEASE"]
        replays = [e for e in releases if "replay" in str(e.get("noise", ""))]
        assert len(replays) == 1
        noise = json.loads(str(replays[0]["noise"]))
        assert noise["mechanism"] == "replay" and noise["replay_of_audit_index"] >= 0
        assert float(replays[0].get("epsilon", 0.0)) == 0.0
        # the replayed arrays are the original's, byte for byte (same SHA-256 in the log)
        (original,) = [
            e for e in releases if e["request_kind"] == "genotype_counts" and e not in replays
        ]
        counts = [a for a in original["arrays"] if a["name"] == "genotype_counts"]
        again_counts = [a for a in replays[0]["arrays"] if a["name"] == "genotype_counts"]
        assert counts == again_counts
        assert Replays(site).count() == 1  # one stored release per site, read after "restart"


def test_a_different_request_or_changed_data_is_a_new_charged_release(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    sites = _sites(cohort, tmp_path / "sites")
    run_study(_study(5.0), InProcessTransport(sites), tmp_path / "r1", engine="t")
    run_study(_study(4.0), InProcessTransport(sites), tmp_path / "r2", engine="t")
    assert [_charges(s) for s in sites] == [2, 2, 2]  # another epsilon: another study
    # a site's phenotype table replaced (same study): its answer is a new release
    pheno = sites[0] / "data" / "pheno.tsv"
    pheno.write_text(pheno.read_text() + "\n")
    run_study(_study(5.0), InProcessTransport(sites), tmp_path / "r3", engine="t")
    assert [_charges(s) for s in sites] == [3, 2, 2]


def test_the_same_site_directory_at_another_path__replays_and_is_not_charged_again(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    """A container mounts the site directory elsewhere than the host sees it (or it moved).

    Its files are the same (sizes, modification times), so the rerun is a
    replay: no second charge, the same noisy values.
    """
    sites = _sites(cohort, tmp_path / "host")
    first = run_study(_study(5.0), InProcessTransport(sites), tmp_path / "r1", engine="t")
    (tmp_path / "host").rename(tmp_path / "mounted")
    moved = [tmp_path / "mounted" / s.name for s in sites]
    again = run_study(_study(5.0), InProcessTransport(moved), tmp_path / "r2", engine="t")
    assert [_charges(s) for s in moved] == [1, 1, 1]
    assert (first.out / "freq.afreq").read_bytes() == (again.out / "freq.afreq").read_bytes()


def test_data_id__names_files_in_the_site_directory_relative_to_it(tmp_path: Path) -> None:
    for d in ("one", "two"):
        (tmp_path / d / "data").mkdir(parents=True)
        (tmp_path / d / "data" / "x.bed").write_bytes(b"abc")
        os.utime(tmp_path / d / "data" / "x.bed", ns=(10**18, 10**18))
        (tmp_path / d / "policy.toml").write_text("[policy]\n")
    ids = [
        data_id("", [tmp_path / d / "data" / "x.bed"], tmp_path / d / "policy.toml", tmp_path / d)
        for d in ("one", "two")
    ]
    assert ids[0] == ids[1]
    # without the site directory (or outside it) the absolute path still names the file
    bare = data_id("", [tmp_path / "one" / "data" / "x.bed"], tmp_path / "one" / "policy.toml")
    other = data_id("", [tmp_path / "two" / "data" / "x.bed"], tmp_path / "two" / "policy.toml")
    assert bare != other


def test_replay_key__names_inputs_and_data_not_the_run() -> None:
    base = {
        "study_sha256": "a" * 64,
        "analysis_id": "freq",
        "request_kind": "genotype_counts",
        "step": "2",
        "round_": 2,
        "inputs": {"variant_index": np.arange(5), "flip": np.zeros(5, bool)},
        "data_id": "d",
    }
    key = replay_key(**base)  # type: ignore[arg-type]
    assert replay_key(**base) == key  # type: ignore[arg-type]
    for change in (
        {"inputs": {"variant_index": np.arange(5)[::-1].copy(), "flip": np.zeros(5, bool)}},
        {"inputs": {"variant_index": np.arange(5).astype(np.int32), "flip": np.zeros(5, bool)}},
        {"data_id": "e"},
        {"step": "3"},
        {"analysis_id": "freq2"},
    ):
        assert replay_key(**{**base, **change}) != key  # type: ignore[arg-type]
    assert REPLAYS_FILE.parts[0] == "state"


def test_a_store_written_before_receipts_were_kept__gains_the_column_and_replays(
    tmp_path: Path,
) -> None:
    import sqlite3

    path = tmp_path / REPLAYS_FILE
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE releases (key TEXT PRIMARY KEY, time TEXT NOT NULL, study_sha256 TEXT"
            " NOT NULL, analysis_id TEXT NOT NULL, request_kind TEXT NOT NULL, audit_index"
            " INTEGER NOT NULL, facts TEXT NOT NULL, arrays BLOB NOT NULL)"
        )
    store = Replays(tmp_path)
    store.put("k", time="t", study_sha256="s", analysis_id="a", request_kind="r",
              audit_index=3, facts={}, arrays={"x": np.arange(3)})  # fmt: skip
    stored = store.get("k")
    assert stored is not None and stored.audit_index == 3 and stored.receipt is None
    store.put("k2", time="t", study_sha256="s", analysis_id="a", request_kind="r",
              audit_index=4, facts={}, arrays={}, receipt=b"\x08\x01")  # fmt: skip
    assert Replays(tmp_path).get("k2").receipt == b"\x08\x01"  # type: ignore[union-attr]


def test_two_answers_to_one_charged_request_at_once__one_charge_and_one_replay(
    cohort: SynthSummary, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a coordinator restart the rerun's request can reach a site while the killed
    run's answer to it is still being computed. The site lets one answer at a time through
    its release path, so the second finds the first one's stored release: one charge."""
    import dataclasses
    import threading
    import time

    from genofed.common.receipts import REPLAY_FACT
    from genofed.site_agent import release
    from genofed.site_agent.requests import counts

    sites = _sites(cohort, tmp_path / "sites")

    class Capture(InProcessTransport):
        first: tuple[Any, Any] | None = None

        def exchange(self, outgoing: Any, *, timeout: float) -> Any:
            for node, o in outgoing.items():
                if node == 1 and o.request.kind == "genotype_counts" and self.first is None:
                    self.first = (o.request, o.inputs)
            return super().exchange(outgoing, timeout=timeout)

    transport = Capture(sites)
    run_study(_study(5.0), transport, tmp_path / "r", engine="t")
    assert transport.first is not None
    request, inputs = transport.first  # node 1's: the first site's
    site = tmp_path / "fresh" / sites[0].name  # the same site before it answered anything
    shutil.copytree(cohort.sites[0], site)
    slow = counts.SERVER.serve

    def serve(ctx: Any) -> Any:
        time.sleep(0.5)  # long enough that the other thread arrives meanwhile
        return slow(ctx)

    slowed = dataclasses.replace(counts.SERVER, serve=serve)
    monkeypatch.setattr(release, "server_for", lambda kind: slowed)
    before = _charges(site)
    replies: list[Any] = []
    threads = [
        threading.Thread(
            target=lambda: replies.append(release.handle_request(site, request, inputs))
        )
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(replies) == 2 and all(r.ok for r, _ in replies)
    assert _charges(site) - before == 1
    assert sorted(REPLAY_FACT in r.facts for r, _ in replies) == [False, True]
    (_, first_arrays), (_, second_arrays) = replies
    assert first_arrays.keys() == second_arrays.keys()
    for name in first_arrays:
        assert np.array_equal(first_arrays[name], second_arrays[name]), name
