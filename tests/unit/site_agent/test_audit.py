"""The site's audit log: append and verify, every mutation caught, and the handler audits."""

from __future__ import annotations

import json
import shutil
import sqlite3
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import bed_reader
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genofed.common.checkpoint import (
    Checkpoint,
    checkpoint_from_json,
    checkpoint_to_json,
    public_key_from_pem,
    public_key_to_pem,
    rfc3339,
    sign_checkpoint,
    verify_checkpoint,
)
from genofed.common.errors import InputError, IntegrityError, SiteFailure
from genofed.common.merkle import EMPTY_ROOT, inclusion_proof, leaf_hash, verify_inclusion
from genofed.common.messages import (
    ArraySpec,
    AuditEntry,
    AuditKind,
    Reply,
    Request,
    Status,
)
from genofed.common.reasons import AUDIT_UNAVAILABLE
from genofed.common.study import study_from_mapping
from genofed.common.wire.proto import audit_entry_from_bytes, audit_entry_to_bytes
from genofed.common.wire.records import (
    array_manifest,
    array_spec,
    reply_to_recorddict,
    signed_study,
)
from genofed.coordinator.runner import run_study
from genofed.site_agent.audit import log as audit_module
from genofed.site_agent.audit.log import (
    AuditLog,
    AuditPaths,
    checkpoint_line,
    entry_line,
    init_audit,
    read_site_log,
    refusal_entry,
    release_entry,
    request_entry,
)
from genofed.site_agent.audit.verify import LogFiles, verify_log, verify_path
from genofed.site_agent.privacy.policy import DEFAULT_POLICY_TOML, POLICY_FILE
from genofed.site_agent.release import handle_request
from genofed.synth import write_cohorts
from tests.harness import InProcessTransport

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
QC = study_from_mapping(
    {"study": {"name": "qc"}, "analysis": [{"kind": "freq"}, {"kind": "hardy"}]},
    path=Path("<test>"),
)


class StepClock:
    """A clock that moves one second per reading."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def _request(kind: str = "variants", run_id: str = "run-1") -> Request:
    return Request(
        study=signed_study(QC, None),
        analysis_id=kind,
        kind=kind,
        step=kind,
        round=1,
        run_id=run_id,
    )


def _fill(site: Path, n: int) -> None:
    """Append ``n`` entries of every kind to the log of ``site``."""
    spec = ArraySpec(name="genotype_counts", dtype="<i8", shape=[3, 4], sha256="ab" * 32)
    with AuditLog.open(site, clock=StepClock()) as log:
        for i in range(n):
            request = _request(run_id=f"run-{i}")
            entry = [
                request_entry(request),
                refusal_entry(request, decision="refused", reason="NOT_ALLOWED: no"),
                release_entry(request, [spec]),
            ][i % 3]
            log.append(entry)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    directory = tmp_path / "site"
    init_audit(directory, clock=StepClock())
    return directory


@pytest.fixture(scope="module")
def log_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[LogFiles, bytes]:
    """A real log of 7 entries as export bytes, and its public key PEM."""
    directory = tmp_path_factory.mktemp("log") / "site"
    init_audit(directory, clock=StepClock())
    _fill(directory, 7)
    snapshot = read_site_log(directory)
    files = LogFiles(
        snapshot.entries_text().encode(),
        snapshot.checkpoints_text().encode(),
        snapshot.public_key_pem,
        source="export",
    )
    return files, snapshot.public_key_pem


# -- the log itself ---------------------------------------------------------------------------


def test_init_audit__writes_owner_only_key_public_key_and_signed_empty_log(site: Path) -> None:
    paths = AuditPaths.of(site)
    assert stat.S_IMODE(paths.key.stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.state.stat().st_mode) == 0o700
    snapshot = read_site_log(site)
    assert snapshot.leaves == ()
    (empty,) = snapshot.checkpoints
    assert (empty.tree_size, empty.root_hash) == (0, EMPTY_ROOT)
    verify_checkpoint(public_key_from_pem(paths.pub.read_bytes()), empty)
    with pytest.raises(InputError, match="refusing to replace"):
        init_audit(site)


def test_append__returns_index_and_a_checkpoint_that_proves_inclusion(site: Path) -> None:
    key = public_key_from_pem(AuditPaths.of(site).pub.read_bytes())
    results = []
    with AuditLog.open(site, clock=StepClock()) as log:
        for i in range(5):
            results.append(log.append(request_entry(_request(run_id=f"r{i}"))))
    assert [index for index, _ in results] == [0, 1, 2, 3, 4]
    snapshot = read_site_log(site)  # another connection: committed before append returned
    hashes = [leaf_hash(leaf) for leaf in snapshot.leaves]
    for index, checkpoint in results:
        assert checkpoint.tree_size == index + 1
        verify_checkpoint(key, checkpoint)
        proof = inclusion_proof(hashes[: checkpoint.tree_size], index)
        verify_inclusion(index, checkpoint.tree_size, hashes[index], proof, checkpoint.root_hash)
        entry = audit_entry_from_bytes(snapshot.leaves[index])
        assert entry.index == index and entry.run_id == f"r{index}"
        assert entry.time == checkpoint.time
    assert [c.tree_size for c in snapshot.checkpoints] == [0, 1, 2, 3, 4, 5]
    assert verify_path(site).ok


def test_log__refuses_update_and_delete(site: Path) -> None:
    _fill(site, 2)
    conn = sqlite3.connect(AuditPaths.of(site).db)
    try:
        for sql in (
            "UPDATE audit_entries SET leaf = x'00' WHERE idx = 0",
            "DELETE FROM audit_entries WHERE idx = 1",
            "DELETE FROM audit_checkpoints",
        ):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(sql)
    finally:
        conn.close()


def test_open__missing_key_names_the_file_and_the_fix(site: Path) -> None:
    AuditPaths.of(site).key.unlink()
    with pytest.raises(InputError, match=r"audit\.key: the site's audit key is missing") as info:
        AuditLog.open(site)
    assert "genofed-site audit init" in str(info.value)


def test_checkpoint__json_round_trip_and_opaque_failures() -> None:
    key = Ed25519PrivateKey.generate()
    cp = sign_checkpoint(key, 3, b"\x01" * 32, rfc3339(T0))
    assert cp.time == "2026-05-01T12:00:00.000000Z"
    again = checkpoint_from_json(json.loads(json.dumps(checkpoint_to_json(cp))))
    assert again == cp
    verify_checkpoint(key.public_key(), again)
    for bad in (
        Checkpoint(4, cp.root_hash, cp.time, cp.key_id, cp.signature),
        Checkpoint(3, b"\x02" * 32, cp.time, cp.key_id, cp.signature),
        Checkpoint(3, cp.root_hash, "2026-05-01T12:00:01.000000Z", cp.key_id, cp.signature),
        Checkpoint(3, cp.root_hash, cp.time, cp.key_id, b"\x00" * 64),
    ):
        with pytest.raises(IntegrityError):
            verify_checkpoint(key.public_key(), bad)
    with pytest.raises(IntegrityError):
        verify_checkpoint(Ed25519PrivateKey.generate().public_key(), cp)


# -- mutations: every one is caught -----------------------------------------------------------


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")[:-1]


def _join(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\n" for line in lines)


def _verify(files: LogFiles, pem: bytes, *, saved: Checkpoint | None = None):
    return verify_log(files, public_key_from_pem(pem), saved=saved)


def _latest(files: LogFiles) -> Checkpoint:
    return checkpoint_from_json(json.loads(_lines(files.checkpoints)[-1]))


def test_verify_log__real_log_verifies(log_files: tuple[LogFiles, bytes]) -> None:
    files, pem = log_files
    result = _verify(files, pem, saved=_latest(files))
    assert result.ok, result.problems
    assert (result.n_entries, result.n_checkpoints) == (7, 8)


_settings = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_settings
@given(which=st.sampled_from(["entries", "checkpoints"]), data=st.data())
def test_verify_log__any_flipped_byte_is_caught(
    log_files: tuple[LogFiles, bytes], which: str, data
) -> None:
    files, pem = log_files
    original = getattr(files, which)
    at = data.draw(st.integers(0, len(original) - 1), label="byte")
    mask = data.draw(st.integers(1, 255), label="xor")
    changed = bytearray(original)
    changed[at] ^= mask
    tampered = LogFiles(**{**files.__dict__, which: bytes(changed)})
    result = _verify(tampered, pem, saved=_latest(files))
    assert not result.ok


def _forged_line(index: int) -> bytes:
    forged = replace(release_entry(_request(run_id="forged"), []), index=index, time=rfc3339(T0))
    return entry_line(index, audit_entry_to_bytes(forged)).encode()


@_settings
@given(
    mutation=st.sampled_from(["drop", "swap", "duplicate", "forge", "cut_entries", "cut_both"]),
    data=st.data(),
)
def test_verify_log__dropped_reordered_inserted_forged_or_cut_entries_are_caught(
    log_files: tuple[LogFiles, bytes], mutation: str, data
) -> None:
    files, pem = log_files
    entries = _lines(files.entries)
    checkpoints = _lines(files.checkpoints)
    n = len(entries)
    i = data.draw(st.integers(0, n - 1), label="i")
    if mutation == "drop":
        del entries[i]
    elif mutation == "swap":
        j = data.draw(st.integers(0, n - 1).filter(lambda j: j != i), label="j")
        entries[i], entries[j] = entries[j], entries[i]
    elif mutation == "duplicate":
        entries.insert(data.draw(st.integers(0, n), label="at"), entries[i])
    elif mutation == "forge":
        entries[i] = _forged_line(i)
    elif mutation == "cut_entries":
        del entries[i:]
    else:  # cut the log and its checkpoints to a consistent prefix
        del entries[i:]
        checkpoints = checkpoints[: i + 1]
    tampered = LogFiles(_join(entries), _join(checkpoints), files.public_key_pem, "export")
    assert not _verify(tampered, pem, saved=_latest(files)).ok


def test_verify_log__a_consistent_prefix_needs_the_saved_checkpoint_to_be_caught(
    log_files: tuple[LogFiles, bytes],
) -> None:
    files, pem = log_files
    entries, checkpoints = _lines(files.entries), _lines(files.checkpoints)
    cut = LogFiles(_join(entries[:4]), _join(checkpoints[:5]), files.public_key_pem, "export")
    assert _verify(cut, pem).ok  # a cut at a signed size is self-consistent...
    result = _verify(cut, pem, saved=_latest(files))  # ...but not with what the officer saved
    assert not result.ok
    assert "entries were removed since you saved it" in result.problems[0]


@_settings
@given(
    mutation=st.sampled_from(["time", "root", "size", "resign", "other_key", "drop_last"]),
    data=st.data(),
)
def test_verify_log__rewritten_checkpoints_are_caught(
    log_files: tuple[LogFiles, bytes], mutation: str, data
) -> None:
    files, pem = log_files
    lines = _lines(files.checkpoints)
    i = data.draw(st.integers(0, len(lines) - 1), label="checkpoint")
    cp = checkpoint_from_json(json.loads(lines[i]))
    stranger = Ed25519PrivateKey.generate()
    if mutation == "time":
        new = Checkpoint(cp.tree_size, cp.root_hash, rfc3339(T0), cp.key_id, cp.signature)
    elif mutation == "root":
        new = Checkpoint(cp.tree_size, leaf_hash(b"x"), cp.time, cp.key_id, cp.signature)
    elif mutation == "size":
        new = Checkpoint(cp.tree_size + 1, cp.root_hash, cp.time, cp.key_id, cp.signature)
    elif mutation == "resign":  # signed by another key that claims the site's key id
        other = sign_checkpoint(stranger, cp.tree_size, cp.root_hash, cp.time)
        new = Checkpoint(cp.tree_size, cp.root_hash, cp.time, cp.key_id, other.signature)
    elif mutation == "other_key":
        new = sign_checkpoint(stranger, cp.tree_size, leaf_hash(b"x"), cp.time)
    else:
        new = None
    if new is None:
        lines = lines[:-1]
    else:
        lines[i] = checkpoint_line(new).encode()
    tampered = LogFiles(files.entries, _join(lines), files.public_key_pem, "export")
    assert not _verify(tampered, pem, saved=_latest(files)).ok


def test_verify_log__wrong_key_or_saved_checkpoint_of_another_log_fails(
    log_files: tuple[LogFiles, bytes],
) -> None:
    files, pem = log_files
    stranger = Ed25519PrivateKey.generate()
    result = _verify(files, public_key_to_pem(stranger.public_key()))
    assert not result.ok
    assert any("not by the given key" in p for p in result.problems)
    latest = _latest(files)
    foreign = sign_checkpoint(stranger, latest.tree_size, latest.root_hash, latest.time)
    assert not _verify(files, pem, saved=foreign).ok


# -- the handler audits every request ---------------------------------------------------------


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory):
    return write_cohorts(
        tmp_path_factory.mktemp("c") / "cohorts", sites=3, samples=90, variants=40, seed=5
    )


def _copy_site(cohort, tmp_path: Path, i: int = 0) -> Path:
    site = tmp_path / f"site-{i}"
    shutil.copytree(cohort.sites[i], site)
    return site


def _log_entries(site: Path) -> list[AuditEntry]:
    return [audit_entry_from_bytes(leaf) for leaf in read_site_log(site).leaves]


def test_handle_request__release_is_audited_with_the_bytes_that_leave(
    cohort, tmp_path: Path
) -> None:
    site = _copy_site(cohort, tmp_path)
    reply, arrays = handle_request(site, _request(), {}, clock=StepClock())
    assert reply.status == Status.OK
    request_e, approval_e, release_e = _log_entries(site)
    assert request_e.kind == AuditKind.REQUEST and request_e.request_kind == "variants"
    # the demo policy's auto-approval rule approved the study: a decision entry
    assert approval_e.kind == AuditKind.DECISION and approval_e.decision == "approved"
    assert release_e.kind == AuditKind.RELEASE and release_e.decision == "approved"
    assert release_e.study_sha256 == QC.sha256 and release_e.run_id == "run-1"
    assert [a.name for a in release_e.arrays] == list(arrays)
    assert list(release_e.arrays) == list(reply.arrays)
    for spec in release_e.arrays:
        assert array_spec(spec.name, arrays[spec.name]) == spec
    assert reply.receipt.audited and reply.receipt.audit_index == 2
    checkpoint = reply.receipt.checkpoint
    assert checkpoint is not None
    assert checkpoint.tree_size == 3
    assert verify_path(site, saved=checkpoint).ok


def test_handle_request__refusal_is_audited_with_its_reason(cohort, tmp_path: Path) -> None:
    site = _copy_site(cohort, tmp_path)
    (site / POLICY_FILE).write_text(DEFAULT_POLICY_TOML)
    reply, arrays = handle_request(site, _request(), {})
    assert reply.status == Status.REFUSED and arrays == {}
    request_e, refusal = _log_entries(site)
    assert request_e.kind == AuditKind.REQUEST
    assert refusal.kind == AuditKind.REFUSAL and refusal.decision == "refused"
    assert refusal.reason.startswith(f"{reply.reason_code}: ")
    assert not refusal.arrays
    assert reply.receipt.audited and reply.receipt.audit_index == 1


def test_handle_request__without_an_audit_key_nothing_is_released(cohort, tmp_path: Path) -> None:
    site = _copy_site(cohort, tmp_path)
    AuditPaths.of(site).key.unlink()
    reply, arrays = handle_request(site, _request(), {})
    assert reply.status == Status.ERROR and reply.reason_code == AUDIT_UNAVAILABLE
    assert arrays == {} and not reply.facts and not reply.arrays
    assert "audit.key" in reply.message


def test_handle_request__release_that_cannot_be_audited_is_not_sent(
    cohort, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = _copy_site(cohort, tmp_path)
    real_append = AuditLog.append
    calls = []

    def append_then_fail(self, entry):
        calls.append(entry.kind)
        if entry.kind == AuditKind.RELEASE:
            raise InputError("cannot write the audit log (disk full)")
        return real_append(self, entry)

    monkeypatch.setattr(audit_module.AuditLog, "append", append_then_fail)
    reply, arrays = handle_request(site, _request(), {})
    assert calls == [AuditKind.REQUEST, AuditKind.DECISION, AuditKind.RELEASE]
    assert reply.status == Status.ERROR and reply.reason_code == AUDIT_UNAVAILABLE
    assert arrays == {} and not reply.facts and not reply.arrays


def test_study__receipts_in_provenance_verify_against_each_sites_log(
    cohort, tmp_path: Path
) -> None:
    sites = [_copy_site(cohort, tmp_path, i) for i in range(3)]
    run_study(QC, InProcessTransport(sites), tmp_path / "results", engine="in-process")
    prov = json.loads((tmp_path / "results" / "provenance.json").read_text())
    for site, record in zip(sites, prov["sites"], strict=True):
        key = public_key_from_pem(AuditPaths.of(site).pub.read_bytes())
        leaves = read_site_log(site).leaves
        hashes = [leaf_hash(leaf) for leaf in leaves]
        assert len(record["releases"]) == 2
        for release in record["releases"]:
            receipt = release["receipt"]
            assert receipt["audited"] is True
            checkpoint = checkpoint_from_json(receipt["checkpoint"])
            verify_checkpoint(key, checkpoint)
            index = receipt["audit_index"]
            assert index < checkpoint.tree_size <= len(leaves)
            verify_inclusion(
                index,
                checkpoint.tree_size,
                hashes[index],
                inclusion_proof(hashes[: checkpoint.tree_size], index),
                checkpoint.root_hash,
            )
            entry = audit_entry_from_bytes(leaves[index])
            assert entry.kind == AuditKind.RELEASE
            assert entry.study_sha256 == prov["study"]["sha256"]
            assert entry.run_id == prov["run"]["run_id"]
            assert [
                {"name": a.name, "dtype": a.dtype, "shape": list(a.shape), "sha256": a.sha256}
                for a in entry.arrays
            ] == release["arrays"]
            assert verify_path(site, saved=checkpoint).ok


def test_study__a_refusing_site_audits_the_refusal(cohort, tmp_path: Path) -> None:
    sites = [_copy_site(cohort, tmp_path, i) for i in range(3)]
    (sites[1] / POLICY_FILE).write_text(DEFAULT_POLICY_TOML)
    with pytest.raises(SiteFailure) as info:
        run_study(QC, InProcessTransport(sites), tmp_path / "results", engine="in-process")
    refusals = [e for e in _log_entries(sites[1]) if e.kind == AuditKind.REFUSAL]
    assert len(refusals) == 1
    assert refusals[0].reason.startswith(info.value.reason_code)
    assert not any(e.kind == AuditKind.RELEASE for e in _log_entries(sites[1]))
    assert verify_path(sites[1]).ok


def test_array_manifest__encoder_refuses_arrays_other_than_the_audited_ones() -> None:
    audited = {"counts": np.arange(4)}
    reply = Reply(arrays=array_manifest(audited))
    reply_to_recorddict(reply, audited)
    with pytest.raises(IntegrityError):
        reply_to_recorddict(reply, {"counts": np.arange(4) + 1})


def test_init_site__failure_after_the_audit_state_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from genofed.site_agent import sitedir

    source = tmp_path / "data"
    source.mkdir()
    genotypes = np.random.default_rng(2).integers(0, 3, size=(12, 4)).astype(np.float32)
    bed_reader.to_bed(source / "c.bed", genotypes, properties={"iid": list("abcdefghijkl")})

    def disk_full(directory: Path, files: list) -> None:
        raise InputError("cannot write the site files (disk full)", path=directory)

    monkeypatch.setattr(sitedir, "_write_all", disk_full)
    with pytest.raises(InputError, match="disk full"):
        sitedir.init_site(tmp_path / "new", name="a", genotypes=source / "c.bed")
    assert not (tmp_path / "new").exists()
