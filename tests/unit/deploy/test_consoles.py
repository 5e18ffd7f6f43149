"""Site and coordinator consoles: connect, disconnect, reconnect with times; refusals by code."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from genofed.common.messages import Reply, Status
from genofed.coordinator.deploy.nodes import NodeWatch, read_nodes, registered_names
from genofed.site_agent.app import outcome_line
from genofed.site_agent.node.supernode import SiteConsole

T = "2026-12-03T13:18:08Z"
RETRY = "\x1b[93mWARNING \x1b[0m:   Connection attempt failed, retrying in 0.64 seconds"
BACK = "\x1b[92mINFO \x1b[0m:      Connection successful after 21.46 seconds and 6 tries."


def _feed(console: SiteConsole, lines: list[str]) -> list[str]:
    return [out for line in lines if (out := console.supernode(line)) is not None]


def test_site_console__one_line_each_for_connect_loss_and_reconnect_with_times() -> None:
    console = SiteConsole(clock=lambda: T)
    said = _feed(
        console,
        ["INFO :      SuperNode ID: 7", RETRY, RETRY, RETRY, BACK, BACK, "INFO :      [RUN 3]"],
    )
    assert said == [
        f"{T} connected to the coordinator as node 7",
        f"{T} lost the connection to the coordinator; retrying (up to 20 s between tries)",
        f"{T} reconnected to the coordinator (after 21 s and 6 tries, down since {T})",
    ]


def test_site_console__a_coordinator_not_up_yet_is_said_once_then_the_connection() -> None:
    console = SiteConsole(clock=lambda: T)
    said = _feed(console, [RETRY, RETRY, BACK, "INFO :      SuperNode ID: 7"])
    assert said == [
        f"{T} cannot reach the coordinator yet; retrying",
        f"{T} connected to the coordinator as node 7",
    ]


def test_site_console__a_refusal_is_shown_by_its_code_not_as_reply_sent() -> None:
    console = SiteConsole(clock=lambda: T)
    refused = Reply(
        status=Status.REFUSED, reason_code="BUDGET_EXHAUSTED", message="epsilon\nleft 0"
    )
    assert console.gate(outcome_line(refused)) is None
    assert console.supernode("INFO :      Sent successfully") == (
        "refused (BUDGET_EXHAUSTED): epsilon left 0"
    )
    assert console.gate(outcome_line(Reply(status=Status.OK))) is None
    assert console.supernode("INFO :      Sent successfully") == "reply sent"
    gate_line = (
        "REFUSED app bundle 2efa553c53b7 (run 12): APP_NOT_ALLOWED: app bundle 2efa is not in "
        "this site's allowed_app_hashes; recorded in /x/app-refusals.jsonl"
    )
    assert console.gate(gate_line) == gate_line
    assert console.supernode("INFO :      Sent successfully") == (
        "refused (APP_NOT_ALLOWED): app bundle not allowed"
    )


_SCHEMA = (
    "CREATE TABLE node (node_id BIGINT, owner_aid VARCHAR, owner_name VARCHAR, status VARCHAR,"
    " registered_at VARCHAR, last_activated_at VARCHAR, last_deactivated_at VARCHAR,"
    " unregistered_at VARCHAR, online_until FLOAT, heartbeat_interval FLOAT, public_key BLOB,"
    " location VARCHAR, name VARCHAR)"
)


def _db(path: Path, rows: list[tuple[int, str, str, float | None]]) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE IF EXISTS node")
        conn.execute(_SCHEMA)
        conn.executemany(
            "INSERT INTO node (node_id, name, status, online_until, heartbeat_interval)"
            " VALUES (?, ?, ?, ?, 30.0)",
            rows,
        )


def test_node_watch__connect_disconnect_reconnect_from_the_superlink_node_table(
    tmp_path: Path,
) -> None:
    db = tmp_path / "superlink.db"
    said: list[str] = []
    watch = NodeWatch(db, said.append)
    big = -(2**63) + 5  # Flower stores uint64 node IDs as sint64
    # before this SuperLink ran: a heartbeat from an earlier run is no connection
    _db(db, [(big, "site-a", "online", 1000.0)])
    watch.poll(now=990.0)
    watch.poll(now=992.0)
    assert said == []
    _db(db, [(big, "site-a", "online", 1060.0)])  # a heartbeat at t=1000
    watch.poll(now=1000.0)
    node = 2**63 + 5
    assert said == [f"1970-01-01T00:16:40Z site site-a (node {node}) connected"]
    assert registered_names(db) == {node: "site-a"} and read_nodes(db)[0].node_id == node
    watch.poll(now=1061.0)  # no heartbeat for two intervals: Flower counts it offline
    assert said[-1] == (
        f"1970-01-01T00:17:41Z site site-a (node {node}) disconnected "
        "(no heartbeat since 1970-01-01T00:16:40Z)"
    )
    watch.poll(now=1062.0)
    _db(db, [(big, "site-a", "online", 1130.0)])
    watch.poll(now=1070.0)
    assert said[-1] == (
        f"1970-01-01T00:17:50Z site site-a (node {node}) reconnected "
        "(away 9 s, since 1970-01-01T00:17:41Z)"
    )
    assert len(said) == 3
    assert watch.name_of(str(node)) == f"site-a (node {node})" and watch.name_of("3") == "node 3"


def test_node_watch__no_database_yet_is_no_node(tmp_path: Path) -> None:
    assert read_nodes(tmp_path / "superlink.db") == []


def test_runtime_port__a_taken_port_is_refused_naming_the_flag_and_0_picks_a_free_one() -> None:
    import socket

    import pytest

    from genofed.common.errors import InputError
    from genofed.site_agent.node.supernode import pick_runtime_port

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(InputError, match="--runtime-port") as err:
            pick_runtime_port(port)
        assert "leave it out" in (err.value.hint or "")
        assert pick_runtime_port(0) not in (0, port)
