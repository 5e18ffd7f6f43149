"""The coordinator checks each reply's receipt against the site's published audit key."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from genofed.common.errors import ConfigError, IntegrityError, SiteFailure
from genofed.common.messages import Receipt, Reply, Request, Status
from genofed.common.receipts import REPLAY_FACT, verify_receipt
from genofed.common.study import study_from_mapping
from genofed.common.wire.records import signed_study
from genofed.coordinator.app import deployment_receipts
from genofed.coordinator.deploy import superlink
from genofed.coordinator.deploy.superlink import CONFIG_ENV, load_coordinator_config
from genofed.coordinator.receipt_check import (
    REQUIRE,
    VERIFIED,
    WARN,
    ReceiptCheck,
    load_audit_key,
)
from genofed.coordinator.runner import run_study
from genofed.coordinator.transport import Incoming, Outgoing
from genofed.site_agent.audit.log import AuditPaths
from genofed.site_agent.release import handle_request
from genofed.site_agent.sitedir import load_site
from genofed.synth import write_cohorts
from tests.harness import InProcessTransport

QC = study_from_mapping(
    {"study": {"name": "qc"}, "analysis": [{"kind": "freq"}]}, path=Path("<test>")
)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory):
    return write_cohorts(
        tmp_path_factory.mktemp("c") / "cohorts", sites=3, samples=60, variants=30, seed=11
    )


@pytest.fixture
def sites(cohort, tmp_path: Path) -> list[Path]:
    out = []
    for i, src in enumerate(cohort.sites):
        shutil.copytree(src, tmp_path / f"s{i}")
        out.append(tmp_path / f"s{i}")
    return out


def _keys(sites: list[Path]) -> dict[str, Ed25519PublicKey]:
    return {load_site(s).name: load_audit_key(AuditPaths.of(s).pub) for s in sites}


def _provenance_checks(out: Path) -> list[str]:
    prov = json.loads((out / "provenance.json").read_text())
    return [r["receipt"]["receipt_check"] for s in prov["sites"] for r in s["releases"]]


def test_require__every_receipt_verifies_and_provenance_says_so(
    sites: list[Path], tmp_path: Path
) -> None:
    check = ReceiptCheck(_keys(sites), REQUIRE)
    run_study(QC, InProcessTransport(sites), tmp_path / "r", engine="t", receipts=check)
    checks = _provenance_checks(tmp_path / "r")
    assert checks == [VERIFIED] * 6  # 3 sites x (variants, genotype_counts)


def test_require__a_site_with_another_key_is_refused_by_name(
    sites: list[Path], tmp_path: Path
) -> None:
    keys = _keys(sites)
    name = load_site(sites[1]).name
    keys[name] = Ed25519PrivateKey.generate().public_key()
    with pytest.raises(SiteFailure) as info:
        run_study(
            QC,
            InProcessTransport(sites),
            tmp_path / "r",
            engine="t",
            receipts=ReceiptCheck(keys, REQUIRE),
        )
    assert info.value.site == name and info.value.reason_code == "RECEIPT_INVALID"
    assert name in str(info.value)
    assert not (tmp_path / "r").exists()


def test_require__a_site_without_a_listed_key_is_refused_by_name(
    sites: list[Path], tmp_path: Path
) -> None:
    keys = _keys(sites)
    name = load_site(sites[2]).name
    del keys[name]
    with pytest.raises(SiteFailure) as info:
        run_study(
            QC,
            InProcessTransport(sites),
            tmp_path / "r",
            engine="t",
            receipts=ReceiptCheck(keys, REQUIRE),
        )
    assert info.value.site == name and info.value.reason_code == "NO_AUDIT_KEY"
    assert "receipts.audit_keys" in str(info.value)


class _Tampering:
    """An in-process transport that alters every OK reply of one site before it arrives."""

    def __init__(self, inner: InProcessTransport, node: int, alter: Callable[[Reply], Reply]):
        self.inner, self.node, self.alter = inner, node, alter

    def nodes(self) -> list[int]:
        return self.inner.nodes()

    def exchange(self, outgoing: Mapping[int, Outgoing], *, timeout: float) -> dict[int, Incoming]:
        got = self.inner.exchange(outgoing, timeout=timeout)
        reply = got[self.node].reply
        assert reply is not None
        got[self.node] = replace(got[self.node], reply=self.alter(reply))
        return got


def _receipt(reply: Reply, **changes: object) -> Reply:
    return replace(reply, receipt=replace(reply.receipt, **changes))


def _no_receipt(reply: Reply) -> Reply:
    return replace(reply, receipt=Receipt())


def _epsilon_changed(reply: Reply) -> Reply:
    return _receipt(reply, epsilon_charged=reply.receipt.epsilon_charged + 0.5)


def _proof_cut(reply: Reply) -> Reply:
    proof = reply.receipt.inclusion_proof
    return _receipt(reply, inclusion_proof=proof[:-1] if proof else (b"\0" * 32,))


def _entry_flipped(reply: Reply) -> Reply:
    data = bytearray(reply.receipt.entry)
    data[len(data) // 2] ^= 1
    return _receipt(reply, entry=bytes(data))


def _index_moved(reply: Reply) -> Reply:
    return _receipt(reply, audit_index=reply.receipt.audit_index + 1)


def _root_resigned_by_other_key(reply: Reply) -> Reply:
    checkpoint = reply.receipt.checkpoint
    assert checkpoint is not None
    signature = Ed25519PrivateKey.generate().sign(b"x")
    return _receipt(reply, checkpoint=replace(checkpoint, signature=signature))


def _manifest_changed(reply: Reply) -> Reply:
    first = replace(reply.arrays[0], sha256="00" * 32)
    return replace(reply, arrays=(first, *reply.arrays[1:]))


@pytest.mark.parametrize(
    "alter",
    [
        _no_receipt,
        _epsilon_changed,
        _proof_cut,
        _entry_flipped,
        _index_moved,
        _root_resigned_by_other_key,
        _manifest_changed,
    ],
)
def test_require__an_altered_receipt_stops_the_study(
    sites: list[Path], tmp_path: Path, alter: Callable[[Reply], Reply]
) -> None:
    transport = _Tampering(InProcessTransport(sites), 2, alter)
    with pytest.raises(SiteFailure) as info:
        run_study(
            QC, transport, tmp_path / "r", engine="t", receipts=ReceiptCheck(_keys(sites), REQUIRE)
        )
    assert info.value.reason_code == "RECEIPT_INVALID"
    assert info.value.site == load_site(sites[1]).name


def test_warn__an_altered_receipt_is_recorded_not_fatal(
    sites: list[Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    transport = _Tampering(InProcessTransport(sites), 1, _entry_flipped)
    run_study(QC, transport, tmp_path / "r", engine="t", receipts=ReceiptCheck(_keys(sites), WARN))
    checks = _provenance_checks(tmp_path / "r")
    assert checks.count("NOT VERIFIED: RECEIPT_INVALID") == 2 and checks.count(VERIFIED) == 4
    assert "RECEIPT_INVALID" in caplog.text


def _reply(site: Path, request: Request) -> Reply:
    reply, _ = handle_request(site, request, {})
    assert reply.status == Status.OK
    return reply


def test_verify_receipt__binds_the_reply_to_its_request(sites: list[Path]) -> None:
    request = Request(
        study=signed_study(QC, None),
        analysis_id="variants",
        kind="variants",
        step="variants",
        round=1,
        run_id="run-1",
    )
    key = load_audit_key(AuditPaths.of(sites[0]).pub)
    reply = _reply(sites[0], request)
    entry = verify_receipt(key, request, reply)
    assert entry.index == reply.receipt.audit_index and entry.run_id == "run-1"
    other = replace(request, run_id="run-2")  # a replayed receipt from another run
    with pytest.raises(IntegrityError):
        verify_receipt(key, other, reply)
    # a replay carries its original's receipt: accepted only as the replay of that very entry
    index = str(reply.receipt.audit_index)
    replayed = replace(reply, facts={**reply.facts, REPLAY_FACT: index})
    assert verify_receipt(key, other, replayed).run_id == "run-1"
    elsewhere = replace(reply, facts={**reply.facts, REPLAY_FACT: str(int(index) + 1)})
    with pytest.raises(IntegrityError):
        verify_receipt(key, other, elsewhere)
    with pytest.raises(IntegrityError):  # the study still binds
        other_study = study_from_mapping(
            {"study": {"name": "qc2"}, "analysis": [{"kind": "freq"}]}, path=Path("<test>")
        )
        verify_receipt(key, replace(other, study=signed_study(other_study, None)), replayed)
    refused = replace(reply, receipt=replace(reply.receipt, audited=False))
    with pytest.raises(IntegrityError):
        verify_receipt(key, request, refused)


def _config(tmp_path: Path, receipts: str) -> Path:
    path = tmp_path / "coordinator.toml"
    path.write_text('[coordinator]\nstate_dir = "state"\n' + receipts, encoding="utf-8")
    return path


def test_coordinator_toml__lists_audit_keys_and_defaults_to_require(
    sites: list[Path], tmp_path: Path
) -> None:
    pub = AuditPaths.of(sites[0]).pub
    config = load_coordinator_config(
        _config(tmp_path, f'[receipts.audit_keys]\nsite-a = "{pub}"\n')
    )
    assert config.receipts.mode == REQUIRE and set(config.receipts.keys) == {"site-a"}
    assert load_coordinator_config(_config(tmp_path, "")).receipts.mode == REQUIRE


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        ('[receipts]\nmode = "off"\n', "mode must be one of"),
        ('[receipts]\nkeys = "x"\n', "unknown key 'keys'"),
        ('[receipts.audit_keys]\nsite-a = "missing.pub"\n', "missing.pub"),
        ("[receipts.audit_keys]\nsite-a = 3\n", "site-a"),
    ],
)
def test_coordinator_toml__bad_receipts_table_names_the_problem(
    tmp_path: Path, table: str, needle: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_coordinator_config(_config(tmp_path, table))
    assert needle in str(info.value) and "coordinator.toml" in str(info.value)


def test_deployment_receipts__refuse_to_run_without_the_coordinator_config(
    sites: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    with pytest.raises(ConfigError, match=CONFIG_ENV):
        deployment_receipts()
    pub = AuditPaths.of(sites[0]).pub
    monkeypatch.setenv(CONFIG_ENV, str(_config(tmp_path, f'[receipts.audit_keys]\nx = "{pub}"\n')))
    check = deployment_receipts()
    assert check.mode == REQUIRE and set(check.keys) == {"x"} and not check.outcomes


def test_coordinator_up__names_its_config_for_the_serverapp_and_warns_without_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    captured: dict[str, dict[str, str]] = {}

    class _Child:
        pid = 1

    def fake_start(name: str, argv: list[str], *, env: dict[str, str], **kw: object) -> _Child:
        captured[name] = env
        return _Child()

    monkeypatch.setattr(superlink, "start_child", fake_start)
    monkeypatch.setattr(superlink, "supervise", lambda children: 0)
    config = load_coordinator_config(_config(tmp_path, ""))
    lines: list[str] = []
    assert superlink.run_coordinator(config, insecure=True, emit=lines.append) == 0
    assert captured["superlink"][CONFIG_ENV] == str(config.path.resolve())
    assert any("receipts: require; audit keys for no site" in line for line in lines)
    assert any("every site reply will be refused" in line for line in lines)
