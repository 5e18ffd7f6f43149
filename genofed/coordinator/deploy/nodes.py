"""Which site nodes the SuperLink knows, by name, and when each connects, drops and comes back.

Flower 1.39's SuperLink logs a node's first activation, but not a heartbeat,
a node that stopped sending them, or a node that comes back after the
SuperLink restarted (its SuperNode just resumes its heartbeats). Its
database (``STATE/superlink.db``, table ``node``) holds what it knows of each
registered node: the name given at ``genofed coordinator register-site``,
its status, and ``online_until`` (the UNIX time until which the last
heartbeat keeps it online: the heartbeat's time plus two heartbeat
intervals, 60 s at Flower's default).

:class:`NodeWatch` reads that table (read-only) every few seconds and turns
the changes into console lines with UTC times: a node whose ``online_until``
moved on sent a heartbeat to *this* SuperLink (connected, or reconnected
after a gap); a node whose ``online_until`` passed is disconnected, as far
as Flower is concerned. :func:`registered_names` gives the ServerApp the
registered name of each node, so a site that refused before it could say
its name (an app bundle it does not allow) is still named.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

#: The SuperLink database file inside the coordinator's state directory.
DATABASE = "superlink.db"
#: Seconds between two reads of the node table.
POLL_S = 2.0
_UINT64 = 1 << 64
#: A heartbeat keeps a node online this many heartbeat intervals (Flower's HEARTBEAT_PATIENCE).
_PATIENCE = 2


@dataclass(frozen=True)
class NodeRow:
    """One registered node as the SuperLink's database holds it."""

    node_id: int
    name: str
    status: str
    online_until: float | None
    heartbeat_interval: float | None

    @property
    def label(self) -> str:
        return f"{self.name} (node {self.node_id})" if self.name else f"node {self.node_id}"


def read_nodes(database: Path) -> list[NodeRow]:
    """The node table of a SuperLink database, read-only; ``[]`` when there is none yet."""
    if not Path(database).is_file():
        return []
    uri = f"{Path(database).resolve().as_uri()}?mode=ro"
    try:
        with sqlite3.connect(uri, uri=True, timeout=2.0) as conn:
            rows = conn.execute(
                "SELECT node_id, name, status, online_until, heartbeat_interval FROM node"
            ).fetchall()
    except sqlite3.Error:  # not created yet, or being written: the next poll reads it
        return []
    return [
        NodeRow(
            node_id=int(node_id) % _UINT64,  # Flower stores uint64 node IDs as sint64
            name=str(name or ""),
            status=str(status or ""),
            online_until=None if until is None else float(until),
            heartbeat_interval=None if interval is None else float(interval),
        )
        for node_id, name, status, until, interval in rows
    ]


def registered_names(database: Path) -> dict[int, str]:
    """Node ID → the name it was registered under (``register-site NAME``)."""
    return {row.node_id: row.name for row in read_nodes(database) if row.name}


def stamp(moment: float | None = None) -> str:
    """A UTC time to the second, as the consoles print it."""
    when = datetime.fromtimestamp(time.time() if moment is None else moment, UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


class NodeWatch:
    """Turns successive reads of the node table into connect / disconnect / reconnect lines."""

    def __init__(self, database: Path, emit: Callable[[str], None]) -> None:
        self.database = Path(database)
        self.emit = emit
        self._seen: dict[int, float | None] = {}  # online_until at the last read
        self._online: dict[int, bool] = {}  # what the console last said
        self._gone_at: dict[int, float] = {}
        self._first = True
        self.names: dict[int, str] = {}

    def poll(self, now: float | None = None) -> None:
        """Read the table once and say what changed since the last read."""
        now = time.time() if now is None else now
        rows = read_nodes(self.database)
        self.names = {r.node_id: r.name for r in rows if r.name}
        for row in rows:
            before = self._seen.get(row.node_id, None if self._first else 0.0)
            self._seen[row.node_id] = row.online_until
            until = row.online_until or 0.0
            alive = row.status == "online" and until > now
            if self._first:
                # a heartbeat recorded before this SuperLink started proves nothing: wait for one
                continue
            heartbeat = row.online_until is not None and (before is None or until > before)
            if heartbeat and alive and not self._online.get(row.node_id, False):
                gone = self._gone_at.pop(row.node_id, None)
                if gone is None:
                    self.emit(f"{stamp(now)} site {row.label} connected")
                else:
                    self.emit(
                        f"{stamp(now)} site {row.label} reconnected "
                        f"(away {now - gone:.0f} s, since {stamp(gone)})"
                    )
                self._online[row.node_id] = True
            elif self._online.get(row.node_id, False) and not alive:
                self._online[row.node_id] = False
                self._gone_at[row.node_id] = now
                why = row.status  # "offline": the site stopped its node; "unregistered"
                if row.status == "online":  # Flower has not noticed yet: the heartbeats stopped
                    last = until - _PATIENCE * (row.heartbeat_interval or 30.0)
                    why = f"no heartbeat since {stamp(last)}" if last > 0 else "no heartbeat"
                self.emit(f"{stamp(now)} site {row.label} disconnected ({why})")
        self._first = False

    def run(self, stop: threading.Event, poll_s: float = POLL_S) -> None:
        while not stop.wait(poll_s):
            self.poll()

    def start(self, poll_s: float = POLL_S) -> Callable[[], None]:
        """Poll in a daemon thread; return the function that stops it."""
        stop = threading.Event()
        thread = threading.Thread(
            target=self.run, args=(stop, poll_s), name="node-watch", daemon=True
        )
        thread.start()

        def _stop() -> None:
            stop.set()
            thread.join(timeout=poll_s + 5)

        return _stop

    def name_of(self, node: str) -> str:
        """``node`` (a node ID as text) as the console shows it: its registered name if known."""
        name = self.names.get(int(node)) if node.isdigit() else None
        return f"{name} (node {node})" if name else f"node {node}"


__all__ = [
    "DATABASE",
    "NodeRow",
    "NodeWatch",
    "read_nodes",
    "registered_names",
    "stamp",
]
