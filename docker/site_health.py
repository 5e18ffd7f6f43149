"""Container health check of a site agent (``genofed-site up``): exit 0 when healthy, 1 when not.

    python site_health.py SITE_DIR [STATE_DIR]

Healthy means, all three:

1. the agent's local SiteAdmin gRPC service answers ``GetStatus`` with the
   token in ``STATE_DIR/admin.json`` (default ``SITE_DIR/.genofed-node``):
   the agent process runs and can read its site directory, policy and audit
   log;
2. its Flower SuperNode (``flower-supernode``) and app gate
   (``genofed.site_agent.node.appgate``) processes are alive;
3. the SuperNode holds an established TCP connection to the coordinator's
   Fleet API (the ``--superlink`` address the agent reports), read from
   ``/proc/net/tcp`` and ``/proc/net/tcp6`` of this container.

Prints one line saying which check failed, or what is healthy.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterable
from pathlib import Path

PROCESSES = {"SuperNode": "flower-supernode", "app gate": "genofed.site_agent.node.appgate"}
_ESTABLISHED = "01"


def process_cmdlines(proc: Path = Path("/proc")) -> list[str]:
    """The command lines of the processes visible here, arguments joined by spaces."""
    lines = []
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                raw = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            lines.append(raw.replace(b"\0", b" ").decode("utf-8", "replace").strip())
    return lines


def missing_processes(cmdlines: Iterable[str]) -> list[str]:
    """The names in :data:`PROCESSES` whose marker is in no command line."""
    seen = list(cmdlines)
    return [name for name, marker in PROCESSES.items() if not any(marker in c for c in seen)]


def _address(hex_address: str) -> tuple[str, int]:
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        ip = socket.inet_ntop(socket.AF_INET, raw[::-1])
    else:  # four little-endian 32-bit words
        words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
        ip = socket.inet_ntop(socket.AF_INET6, words)
        if ip.startswith("::ffff:"):
            ip = ip[len("::ffff:") :]
    return ip, int(port, 16)


def established_peers(tables: Iterable[str]) -> set[tuple[str, int]]:
    """Remote (ip, port) of every ESTABLISHED socket in ``/proc/net/tcp``-format tables."""
    peers = set()
    for table in tables:
        for line in table.splitlines()[1:]:
            fields = line.split()
            if len(fields) > 3 and fields[3] == _ESTABLISHED:
                peers.add(_address(fields[2]))
    return peers


def _read_tables() -> list[str]:
    tables = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            tables.append(Path(name).read_text(encoding="ascii"))
        except OSError:
            continue
    return tables


def connected_to(superlink: str, peers: set[tuple[str, int]]) -> bool:
    """Whether one of ``peers`` is the Fleet API ``HOST:PORT`` (HOST resolved here)."""
    host, _, port = superlink.rpartition(":")
    host = host.strip("[]")
    try:
        ips = {info[4][0] for info in socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)}
    except (OSError, ValueError):
        return False
    return any(ip in ips and p == int(port) for ip, p in peers)


def check(site_dir: Path, state_dir: Path) -> tuple[bool, str]:
    from genofed.site_agent.admin import connect

    client = connect(state_dir)
    if client is None:
        return False, f"unhealthy: no site admin service answers (see {state_dir}/admin.json)"
    with client:
        status = client.status(timeout=5.0)
    missing = missing_processes(process_cmdlines())
    if missing:
        return False, f"unhealthy: {' and '.join(missing)} not running (site {status.site})"
    if not connected_to(status.superlink, established_peers(_read_tables())):
        return False, (
            f"unhealthy: the SuperNode of site {status.site} has no connection to the "
            f"coordinator at {status.superlink}"
        )
    return True, (
        f"healthy: site {status.site}, agent pid {status.pid}, connected to "
        f"{status.superlink}, {status.audit_entries} audit entries"
    )


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print("usage: site_health.py SITE_DIR [STATE_DIR]", file=sys.stderr)
        return 1
    site_dir = Path(argv[0])
    state_dir = Path(argv[1]) if len(argv) == 2 else site_dir / ".genofed-node"
    try:
        ok, line = check(site_dir, state_dir)
    except Exception as exc:  # a health check reports; it never raises
        ok, line = False, f"unhealthy: {type(exc).__name__}: {exc}"
    print(line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
