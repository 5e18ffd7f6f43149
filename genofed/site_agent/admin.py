"""The SiteAdmin gRPC service: the running site agent answers its own staff, locally.

``genofed-site up`` serves ``genofed.v1.SiteAdmin`` (``site_admin.proto``)
beside its SuperNode, on a **local address only**: ``127.0.0.1:PORT``,
``localhost:PORT``, ``[::1]:PORT`` or ``unix:/path/to/socket``; any other
address is refused before anything is bound. It is a separate server from
the Flower connection, which only ever connects *out* to the coordinator, so
nothing the coordinator sends can reach it.

The service is read-only (status, studies and approvals, budget, audit
entries as a server stream, latest checkpoint; the answers come from
:mod:`genofed.site_agent.node.admin_state`). Each call must carry a random token
in the ``x-genofed-admin-token`` metadata; the agent writes the address and
the token to ``<node state>/admin.json`` (mode 0600, next to the SuperNode's
logs), so only local users who can read the site's state can ask, and
removes the file when it stops. :func:`connect` is the client side used by
the ``genofed-site`` admin commands.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import secrets
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc

from genofed.common.checkpoint import rfc3339
from genofed.common.clock import utc_now
from genofed.common.errors import GenoFedError, InputError
from genofed.common.messages import AuditEntry
from genofed.common.wire.proto import audit_entry_from_proto, audit_entry_to_proto
from genofed.protos.v1 import genofed_pb2 as pb
from genofed.protos.v1 import site_admin_pb2 as sa
from genofed.protos.v1 import site_admin_pb2_grpc as sa_grpc
from genofed.site_agent.node import admin_state
from genofed.site_agent.node.admin_state import AgentInfo

log = logging.getLogger("genofed.site")

#: Where ``genofed-site up`` serves the admin service unless told otherwise (any free port).
DEFAULT_ADMIN_ADDRESS = "127.0.0.1:0"
ADMIN_FILE = "admin.json"
TOKEN_METADATA = "x-genofed-admin-token"
#: How long a client waits for the agent before reading the state directly.
CONNECT_TIMEOUT_S = 2.0
T = TypeVar("T")


def check_local_address(address: str) -> str:
    """``address`` if it is loopback-only (or a unix socket); otherwise :class:`InputError`."""
    hint = "use 127.0.0.1:PORT, [::1]:PORT, localhost:PORT or unix:/path/to/admin.sock"
    if address.startswith("unix:"):
        if not address[len("unix:") :]:
            raise InputError("the admin address unix: needs a socket path", hint=hint)
        return address
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise InputError(f"not a HOST:PORT admin address: {address!r}", hint=hint)
    if host == "localhost":
        return f"127.0.0.1:{port}"
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise InputError(
            f"refusing to serve the site admin service on {address!r}: not a loopback address",
            hint=hint,
        ) from None
    if not ip.is_loopback:
        raise InputError(
            f"refusing to serve the site admin service on {address!r}: it must never be "
            "reachable from the network (it is for this host's privacy officer and IT)",
            hint=hint,
        )
    return address


class _Servicer(sa_grpc.SiteAdminServicer):
    def __init__(self, site_dir: Path, token: str, agent: AgentInfo) -> None:
        self._site = site_dir
        self._token = token.encode("ascii")
        self._agent = agent

    def _guard(self, context: grpc.ServicerContext, action: Callable[[], T]) -> T:
        given = dict(context.invocation_metadata()).get(TOKEN_METADATA, "")
        if not hmac.compare_digest(str(given).encode("ascii", "replace"), self._token):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong admin token")
        try:
            return action()
        except GenoFedError as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        raise AssertionError("unreachable")  # pragma: no cover

    def GetStatus(self, request: Any, context: grpc.ServicerContext) -> sa.SiteStatus:
        return self._guard(context, lambda: admin_state.site_status(self._site, self._agent))

    def ListStudies(self, request: Any, context: grpc.ServicerContext) -> sa.StudyList:
        return self._guard(context, lambda: admin_state.list_studies(self._site))

    def GetBudget(self, request: Any, context: grpc.ServicerContext) -> sa.BudgetReport:
        return self._guard(context, lambda: admin_state.budget_report(self._site))

    def StreamAuditEntries(
        self, request: sa.AuditEntriesRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.AuditEntry]:
        entries = self._guard(
            context,
            lambda: list(
                admin_state.audit_entries(self._site, request.start_index, request.study_sha256)
            ),
        )
        yield from (audit_entry_to_proto(e) for e in entries)

    def GetLatestCheckpoint(self, request: Any, context: grpc.ServicerContext) -> pb.Checkpoint:
        return self._guard(context, lambda: admin_state.latest_checkpoint(self._site))


@dataclass
class AdminServer:
    """A running SiteAdmin server; :meth:`stop` it (removes ``admin.json``)."""

    server: grpc.Server
    address: str
    info_file: Path

    def stop(self, grace: float = 1.0) -> None:
        self.server.stop(grace).wait(grace + 1)
        self.info_file.unlink(missing_ok=True)


def serve_admin(
    site_dir: Path, state_dir: Path, address: str = DEFAULT_ADMIN_ADDRESS, *, superlink: str = ""
) -> AdminServer:
    """Start the SiteAdmin service for ``site_dir`` on the local ``address``.

    Writes ``state_dir/admin.json`` (address and token, mode 0600).
    """
    bind = check_local_address(address)
    token = secrets.token_urlsafe(32)
    agent = AgentInfo(started=rfc3339(utc_now()), pid=os.getpid(), superlink=superlink)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    sa_grpc.add_SiteAdminServicer_to_server(_Servicer(Path(site_dir), token, agent), server)
    if bind.startswith("unix:"):
        Path(bind[len("unix:") :]).parent.mkdir(parents=True, exist_ok=True)
    try:
        port = server.add_insecure_port(bind)
    except RuntimeError as exc:
        raise InputError(f"cannot serve the site admin service on {bind} ({exc})") from exc
    if bind.startswith("unix:"):
        os.chmod(bind[len("unix:") :], 0o600)
        where = bind
    else:
        where = f"{bind.rpartition(':')[0]}:{port}"
    server.start()
    state_dir.mkdir(parents=True, exist_ok=True)
    info = state_dir / ADMIN_FILE
    tmp = info.with_name(f".{ADMIN_FILE}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"address": where, "token": token, "pid": os.getpid()}, fh)
    os.replace(tmp, info)
    log.info("site admin service on %s", where)
    return AdminServer(server, where, info)


class AdminClient:
    """A connection to a running agent's SiteAdmin service."""

    def __init__(self, channel: grpc.Channel, token: str, address: str) -> None:
        self._channel = channel
        self._stub = sa_grpc.SiteAdminStub(channel)
        self._meta = ((TOKEN_METADATA, token),)
        self.address = address

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, fn: Callable[..., T], request: object, timeout: float = 30.0) -> T:
        try:
            return fn(request, metadata=self._meta, timeout=timeout)
        except grpc.RpcError as exc:
            raise GenoFedError(
                f"the site agent's admin service at {self.address} failed: "
                f"{exc.code().name}: {exc.details()}"
            ) from exc

    def status(self, timeout: float = 30.0) -> sa.SiteStatus:
        return self._call(self._stub.GetStatus, sa.StatusRequest(), timeout)

    def studies(self) -> sa.StudyList:
        return self._call(self._stub.ListStudies, sa.StudiesRequest())

    def budget(self) -> sa.BudgetReport:
        return self._call(self._stub.GetBudget, sa.BudgetRequest())

    def latest_checkpoint(self) -> pb.Checkpoint:
        return self._call(self._stub.GetLatestCheckpoint, sa.CheckpointRequest())

    def audit_entries(self, start: int = 0, study: str = "") -> list[AuditEntry]:
        request = sa.AuditEntriesRequest(start_index=start, study_sha256=study)
        try:
            return [
                audit_entry_from_proto(m)
                for m in self._stub.StreamAuditEntries(request, metadata=self._meta, timeout=60)
            ]
        except grpc.RpcError as exc:
            raise GenoFedError(
                f"the site agent's admin service at {self.address} failed: "
                f"{exc.code().name}: {exc.details()}"
            ) from exc


def connect(state_dir: Path, *, timeout: float = CONNECT_TIMEOUT_S) -> AdminClient | None:
    """A client for the agent serving ``state_dir``, or None when no agent answers there."""
    info = state_dir / ADMIN_FILE
    try:
        doc = json.loads(info.read_text(encoding="utf-8"))
        address, token = str(doc["address"]), str(doc["token"])
        check_local_address(address)
    except (OSError, ValueError, KeyError, TypeError, InputError):
        return None
    client = AdminClient(grpc.insecure_channel(address), token, address)
    try:
        client.status(timeout=timeout)
    except GenoFedError:
        client.close()
        log.info("no site agent answers at %s; reading the state directly", address)
        return None
    return client


__all__ = [
    "ADMIN_FILE",
    "DEFAULT_ADMIN_ADDRESS",
    "TOKEN_METADATA",
    "AdminClient",
    "AdminServer",
    "check_local_address",
    "connect",
    "serve_admin",
]
