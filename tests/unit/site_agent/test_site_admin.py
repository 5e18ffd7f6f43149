"""The SiteAdmin gRPC service: local only, token-guarded, same answers as reading the state."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from typer.testing import CliRunner

from genofed.common.errors import InputError
from genofed.common.study import study_from_mapping
from genofed.coordinator.runner import run_study
from genofed.protos.v1 import site_admin_pb2 as sa
from genofed.protos.v1 import site_admin_pb2_grpc as sa_grpc
from genofed.site_agent.admin import (
    ADMIN_FILE,
    AdminServer,
    check_local_address,
    connect,
    serve_admin,
)
from genofed.site_agent.cli.main import app
from genofed.site_agent.node import admin_state, supernode
from genofed.site_agent.node.supernode import (
    STATE_DIRNAME,
    NodeOptions,
    check_options,
    run_site_node,
)
from genofed.site_agent.sitedir import load_site
from genofed.synth import write_cohorts
from tests.harness import InProcessTransport

runner = CliRunner()
DP = study_from_mapping(
    {
        "study": {"name": "dpqc"},
        "privacy": {"mode": "dp", "epsilon": 5.0},
        "analysis": [{"kind": "freq"}],
    },
    path=Path("<test>"),
)
DP4 = dataclasses.replace(DP, privacy=dataclasses.replace(DP.privacy, epsilon=4.0))


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three sites after a dp study twice (the rerun replays) and another: entries, charges."""
    root = tmp_path_factory.mktemp("admin")
    cohort = write_cohorts(root / "c", sites=3, samples=300, variants=30, seed=3)
    copies = []
    for src in cohort.sites:
        shutil.copytree(src, root / src.name)
        copies.append(root / src.name)
    run_study(DP, InProcessTransport(copies), root / "r1", engine="t")
    run_study(DP, InProcessTransport(copies), root / "r2", engine="t")
    run_study(DP4, InProcessTransport(copies), root / "r3", engine="t")
    return copies


@pytest.fixture
def served(sites: list[Path]) -> Iterator[AdminServer]:
    server = serve_admin(sites[0], sites[0] / STATE_DIRNAME, "127.0.0.1:0")
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize(
    "address", ["0.0.0.0:7000", "10.0.0.5:7000", "[::]:7000", "coord.example.org:7000", "7000"]
)
def test_check_local_address__refuses_anything_but_loopback(address: str) -> None:
    with pytest.raises(InputError, match="admin"):
        check_local_address(address)


@pytest.mark.parametrize("address", ["127.0.0.1:0", "[::1]:7000", "localhost:7000", "unix:/x/s"])
def test_check_local_address__accepts_loopback_and_unix_sockets(address: str) -> None:
    assert check_local_address(address)


def test_site_up__refuses_a_non_loopback_admin_address_before_starting(sites: list[Path]) -> None:
    opts = NodeOptions(sites[0], "127.0.0.1:1", insecure=True, admin_address="0.0.0.0:7001")
    with pytest.raises(InputError, match="never be reachable from the network"):
        check_options(opts)


def test_service__answers_as_the_state_reads(sites: list[Path], served: AdminServer) -> None:
    info = json.loads((sites[0] / STATE_DIRNAME / ADMIN_FILE).read_text())
    assert info["address"] == served.address and served.address.startswith("127.0.0.1:")
    assert (sites[0] / STATE_DIRNAME / ADMIN_FILE).stat().st_mode & 0o077 == 0
    client = connect(sites[0] / STATE_DIRNAME)
    assert client is not None
    with client:
        status = client.status()
        assert status.site == load_site(sites[0]).name and status.pid > 0
        direct = admin_state.site_status(sites[0])
        assert status.audit_entries == direct.audit_entries > 0
        assert status.latest_checkpoint == direct.latest_checkpoint
        assert client.latest_checkpoint() == direct.latest_checkpoint
        assert client.budget() == admin_state.budget_report(sites[0])
        assert client.studies() == admin_state.list_studies(sites[0])
        entries = client.audit_entries()
        assert entries == list(admin_state.audit_entries(sites[0]))
        assert [e.index for e in entries] == list(range(status.audit_entries))
        later = client.audit_entries(start=3)
        assert [e.index for e in later] == list(range(3, status.audit_entries))


def test_service__budget_and_studies_show_the_dp_runs(sites: list[Path]) -> None:
    budget = admin_state.budget_report(sites[1])
    assert budget.has_budget and len(budget.charges) == 2
    first, second = budget.charges
    assert second.epsilon_spent_after > first.epsilon_spent_after >= first.epsilon > 0
    assert budget.epsilon_spent == pytest.approx(second.epsilon_spent_after)
    studies = admin_state.list_studies(sites[1]).studies
    (dp,) = [s for s in studies if s.study_sha256 == DP.sha256]
    # 2 runs x (variants, counts), the second run's counts a replay of the first's
    assert dp.n_releases == 4 and dp.n_refusals == 0
    assert dp.epsilon_charged == pytest.approx(first.epsilon)
    (dp4,) = [s for s in studies if s.study_sha256 == DP4.sha256]
    assert dp4.epsilon_charged == pytest.approx(second.epsilon)


def test_service__refuses_a_call_without_the_token(served: AdminServer) -> None:
    with grpc.insecure_channel(served.address) as channel:
        stub = sa_grpc.SiteAdminStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.GetStatus(sa.StatusRequest(), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as info:
            list(
                stub.StreamAuditEntries(
                    sa.AuditEntriesRequest(), metadata=(("x-genofed-admin-token", "no"),)
                )
            )
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_service__serves_on_a_unix_socket(sites: list[Path], tmp_path: Path) -> None:
    sock = tmp_path / "a.sock"
    server = serve_admin(sites[0], tmp_path / "state", f"unix:{sock}")
    try:
        assert sock.stat().st_mode & 0o077 == 0
        client = connect(tmp_path / "state")
        assert client is not None
        with client:
            assert client.status().site == load_site(sites[0]).name
    finally:
        server.stop()
    assert connect(tmp_path / "state") is None


def test_cli__uses_the_agent_when_it_runs_and_the_state_when_not(
    sites: list[Path],
) -> None:
    site = str(sites[0])
    with_agent = serve_admin(sites[0], sites[0] / STATE_DIRNAME, "127.0.0.1:0")
    try:
        live = {
            cmd: runner.invoke(app, [*cmd.split(), site, "--json"])
            for cmd in ("status", "budget", "audit show")
        }
        studies_live = runner.invoke(app, ["studies", "--site", site, "--json"])
    finally:
        with_agent.stop()
    for result in [*live.values(), studies_live]:
        assert result.exit_code == 0, result.output
        assert "from the running site agent at 127.0.0.1:" in result.stderr
    offline = {
        cmd: runner.invoke(app, [*cmd.split(), site, "--json"])
        for cmd in ("status", "budget", "audit show")
    }
    studies_offline = runner.invoke(app, ["studies", "--site", site, "--json"])
    for result in [*offline.values(), studies_offline]:
        assert result.exit_code == 0, result.output
        assert "site agent not running" in result.stderr
    assert json.loads(live["audit show"].stdout) == json.loads(offline["audit show"].stdout)
    assert json.loads(live["budget"].stdout) == json.loads(offline["budget"].stdout)
    assert json.loads(studies_live.stdout) == json.loads(studies_offline.stdout)
    live_status = json.loads(live["status"].stdout)["status"]
    offline_status = json.loads(offline["status"].stdout)["status"]
    assert live_status["pid"] > 0 and offline_status["pid"] == 0
    assert live_status["audit_entries"] == offline_status["audit_entries"]
    entries = json.loads(offline["audit show"].stdout)
    assert {e["kind"] for e in entries} >= {"AUDIT_KIND_REQUEST", "AUDIT_KIND_RELEASE"}


def test_site_up__serves_admin_while_the_node_runs_and_not_after(
    sites: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, str] = {}

    def children(opts: NodeOptions, emit: object) -> int:  # stands in for SuperNode + gate
        client = connect(opts.state)
        assert client is not None
        with client:
            seen["site"] = client.status().superlink
        return 0

    monkeypatch.setattr(supernode, "_run_children", children)
    lines: list[str] = []
    opts = NodeOptions(sites[0], "127.0.0.1:1", insecure=True, state_dir=tmp_path / "node")
    assert run_site_node(opts, emit=lines.append) == 0
    assert seen == {"site": "127.0.0.1:1"}
    assert any("site admin service (local only) on 127.0.0.1:" in line for line in lines)
    assert not (tmp_path / "node" / ADMIN_FILE).exists()
    assert connect(tmp_path / "node") is None
