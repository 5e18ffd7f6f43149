"""The app gate: the site's own SuperExec, which runs only app bundles its policy allows.

Flower's open-source SuperNode runs whatever app bundle (FAB) the SuperLink
hands it: its SuperExec launches ``flwr-clientapp``, which unpacks the bundle
and imports the ClientApp it names. ``genofed-site up`` therefore starts the
SuperNode with ``--isolation process`` (no SuperExec of its own) and runs this
gate in its place. For each task the SuperNode offers, the gate reads the
bundle's SHA-256 (``Task.fab_hash``) and:

* if ``policy.toml`` lists it in ``allowed_app_hashes``, launches
  ``flwr-clientapp`` for the task exactly as Flower's SuperExec would;
* otherwise never launches anything for it: it records the refusal in the
  site's audit log (``request_kind = "app_bundle"``) and in
  ``DIR/app-refusals.jsonl``, prints it,
  and answers the coordinator with an error reply (``INVALID_FAB``) so the
  study stops at once, naming the site, instead of waiting for a timeout.

The policy is re-read for every task, so an edit takes effect without a
restart. A Flower adapter: only this module and ``app.py`` import Flower on
the site side. ``python -m genofed.site_agent.node.appgate --help`` runs it.

What this protects against: a coordinator (or anyone who can submit runs to
the SuperLink) shipping a different or modified app bundle to the site. What
it does not: the GenoFed code installed at the site itself (vet the install),
a compromised site host, or a SuperLink that lies about a bundle's hash. The
GenoFed bundle holds no code (:mod:`genofed.common.appbundle`), and Flower
installs a bundle under its true content hash and loads it by the hash the
gate checked.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from flwr.app import Message
from flwr.app.error import Error
from flwr.common.constant import ErrorCode, SubStatus
from flwr.proto.runtime_pb2 import AcquireTaskRequest
from flwr.supercore.constant import TaskType
from flwr.supercore.interceptors import RuntimeTokenHttpInterceptor, RuntimeVersionHttpInterceptor
from flwr.supercore.retry import make_simple_http_retry_invoker
from flwr.supercore.runtime import RuntimeHttpClient
from flwr.supernode.runtime.run_clientapp import (
    pull_task_input,
    push_message,
    push_task_output,
)

from genofed.common.clock import Clock, utc_now
from genofed.common.errors import GenoFedError, PolicyRefusal
from genofed.common.messages import AuditEntry, AuditKind
from genofed.common.reasons import POLICY_UNREADABLE
from genofed.site_agent.audit.log import DECISION_REFUSED, AuditLog
from genofed.site_agent.privacy.policy import POLICY_FILE, check_app_bundle, load_policy

#: File in the site directory where refused bundles are recorded, one JSON object a line.
REFUSALS_FILE = "app-refusals.jsonl"
#: ``request_kind`` of the audit entry for a refused bundle.
APP_BUNDLE_KIND = "app_bundle"
#: Seconds between the gate's polls of the SuperNode (Flower's SuperExec default is 1 s).
DEFAULT_POLL_S = 0.1

log = logging.getLogger("genofed.site")


def decide(site_dir: Path, fab_hash: str) -> PolicyRefusal | None:
    """``None`` if the site's policy allows bundle ``fab_hash``, else the refusal."""
    try:
        check_app_bundle(load_policy(site_dir / POLICY_FILE), fab_hash)
    except PolicyRefusal as refusal:
        return refusal
    except GenoFedError as exc:  # a broken policy file refuses (fail closed)
        return PolicyRefusal(POLICY_UNREADABLE, str(exc))
    return None


def record_refusal(
    site_dir: Path, *, fab_hash: str, run_id: int, refusal: PolicyRefusal, clock: Clock = utc_now
) -> dict[str, object]:
    """Record one refusal in the site's audit log and ``DIR/app-refusals.jsonl``; return it.

    The audit entry is a refusal with ``request_kind = "app_bundle"``; a site
    directory without an audit log still gets the JSON line (which then says so).
    """
    audited = _audit_refusal(site_dir, fab_hash=fab_hash, run_id=run_id, refusal=refusal)
    entry: dict[str, object] = {
        "time": clock().isoformat(),
        "event": "app_bundle_refused",
        "fab_hash": fab_hash,
        "run_id": str(run_id),
        "reason_code": refusal.reason_code,
        "reason": str(refusal),
        "audit_index": audited,
    }
    with (site_dir / REFUSALS_FILE).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return entry


def _audit_refusal(
    site_dir: Path, *, fab_hash: str, run_id: int, refusal: PolicyRefusal
) -> int | None:
    try:
        with AuditLog.open(site_dir) as audit:
            index, _checkpoint = audit.append(
                AuditEntry(
                    kind=AuditKind.REFUSAL,
                    decision=DECISION_REFUSED,
                    reason=f"{refusal.reason_code}: app bundle {fab_hash}: {refusal}",
                    run_id=str(run_id),
                    request_kind=APP_BUNDLE_KIND,
                )
            )
        return index
    except Exception as exc:  # no audit log here, or it cannot be written: keep the JSON line
        log.error("cannot audit the refusal of app bundle %s: %s", fab_hash, exc)
        return None


class AppGate:
    """Polls a SuperNode's Runtime API and launches or refuses each ClientApp task."""

    def __init__(
        self, runtime_api_address: str, site_dir: Path, *, poll_s: float = DEFAULT_POLL_S
    ) -> None:
        self.address = runtime_api_address
        self.site_dir = Path(site_dir)
        self.poll_s = poll_s
        self.children: list[subprocess.Popen[bytes]] = []
        self._client = RuntimeHttpClient.from_server_address(
            server_address=runtime_api_address,
            insecure=True,  # loopback only: the SuperNode's Runtime API
            root_certificates=None,
            interceptors=[RuntimeVersionHttpInterceptor(component_name="SuperExec")],
            retry_invoker=make_simple_http_retry_invoker(),
        )

    def run(self, stop: threading.Event) -> None:
        """Serve tasks until ``stop`` is set."""
        try:
            while not stop.is_set():
                self.poll_once()
                self.children = [c for c in self.children if c.poll() is None]
                stop.wait(self.poll_s)
        finally:
            self._client.close()

    def poll_once(self) -> None:
        res = self._client.AcquireTask(
            AcquireTaskRequest(supported_task_types=[TaskType.CLIENT_APP.value])
        )
        if not (res.HasField("task") and res.token):
            return
        fab_hash = res.task.fab_hash
        refusal = decide(self.site_dir, fab_hash)
        if refusal is None:
            print(f"app bundle {fab_hash[:12]} allowed: running the ClientApp", flush=True)
            self.children.append(self._launch(res.token))
            return
        entry = record_refusal(
            self.site_dir, fab_hash=fab_hash, run_id=res.task.run_id, refusal=refusal
        )
        print(
            f"REFUSED app bundle {fab_hash[:12]} (run {entry['run_id']}): "
            f"{refusal.reason_code}: {refusal}; recorded in {self.site_dir / REFUSALS_FILE}",
            flush=True,
        )
        self._reply_refusal(res.token, f"{refusal.reason_code}: {refusal}")

    def _launch(self, token: str) -> subprocess.Popen[bytes]:
        command = [
            flower_command(TaskType.CLIENT_APP.value),
            "--runtime-api-address",
            self.address,
            "--token",
            token,
            "--insecure",
            "--parent-pid",
            str(os.getpid()),
        ]
        return subprocess.Popen(command)

    def _reply_refusal(self, token: str, reason: str) -> None:
        """Answer the task with an error reply without unpacking or importing the bundle."""
        client = RuntimeHttpClient.from_server_address(
            server_address=self.address,
            insecure=True,
            root_certificates=None,
            interceptors=[
                RuntimeVersionHttpInterceptor(component_name="flwr-clientapp"),
                RuntimeTokenHttpInterceptor(token),
            ],
            retry_invoker=make_simple_http_retry_invoker(),
        )
        try:
            message, context, _run, _fab = pull_task_input(client)  # bytes only; nothing runs
            reply = Message(Error(code=ErrorCode.INVALID_FAB, reason=reason), reply_to=message)
            push_message(client, reply, context)
            push_task_output(client, context, SubStatus.FAILED, reason)
        finally:
            client.close()


def flower_command(name: str) -> str:
    """The Flower executable ``name`` beside this Python, else whatever ``PATH`` finds."""
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m genofed.site_agent.node.appgate",
        description="Run ClientApp tasks of a SuperNode only for app bundles the site allows.",
    )
    parser.add_argument("--runtime-api-address", required=True, help="the SuperNode's HOST:PORT")
    parser.add_argument("--site-dir", required=True, type=Path)
    parser.add_argument("--poll", type=float, default=DEFAULT_POLL_S, help="seconds between polls")
    args = parser.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    gate = AppGate(args.runtime_api_address, args.site_dir, poll_s=args.poll)
    print(f"app gate: serving {args.runtime_api_address} for {args.site_dir}", flush=True)
    while not stop.is_set():
        try:
            gate.run(stop)
        except Exception as exc:  # the SuperNode restarting: keep serving
            print(f"app gate: {exc!r}; retrying", file=sys.stderr, flush=True)
            time.sleep(1.0)
            gate = AppGate(args.runtime_api_address, args.site_dir, poll_s=args.poll)
    return 0


__all__ = [
    "DEFAULT_POLL_S",
    "REFUSALS_FILE",
    "AppGate",
    "decide",
    "flower_command",
    "main",
    "record_refusal",
]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
