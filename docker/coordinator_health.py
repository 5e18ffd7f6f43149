"""Container health check of the coordinator (``genofed coordinator up``): exit 0 healthy, 1 not.

    python coordinator_health.py COORDINATOR_TOML

Healthy means both, reached on this host's loopback and verified with the
consortium CA certificate (``[tls] ca_cert``):

1. the Fleet API, where the sites connect, opens a gRPC channel over TLS;
2. the Control API, where studies are submitted (HTTPS in Flower 1.39),
   answers ``GET /health`` with 200.

Prints one line saying what failed, or what is healthy.
"""

from __future__ import annotations

import ssl
import sys
import urllib.request
from pathlib import Path

TIMEOUT_S = 5.0


def _local(address: str) -> str:
    host, _, port = address.rpartition(":")
    if host in ("0.0.0.0", "::", "[::]", ""):
        host = "127.0.0.1"
    return f"{host}:{port}"


def tls_ready(address: str, ca_cert: Path, timeout: float = TIMEOUT_S) -> str | None:
    """None when a TLS gRPC channel to ``address`` becomes ready, else why not."""
    import grpc

    credentials = grpc.ssl_channel_credentials(root_certificates=ca_cert.read_bytes())
    with grpc.secure_channel(address, credentials) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            return f"no TLS gRPC connection to {address} within {timeout:.0f} s"
    return None


def https_health(address: str, ca_cert: Path, timeout: float = TIMEOUT_S) -> str | None:
    """None when ``https://ADDRESS/health`` answers 200 over verified TLS, else why not."""
    context = ssl.create_default_context(cafile=str(ca_cert))
    try:
        with urllib.request.urlopen(
            f"https://{address}/health", timeout=timeout, context=context
        ) as reply:
            code = reply.status
    except (OSError, ssl.SSLError) as exc:
        return f"GET https://{address}/health failed: {exc}"
    return None if code == 200 else f"GET https://{address}/health answered {code}"


def check(config_path: Path) -> tuple[bool, str]:
    from genofed.coordinator.deploy.superlink import load_coordinator_config

    config = load_coordinator_config(config_path)
    if config.ca_cert is None:
        return False, f"unhealthy: {config_path} has no [tls]; the coordinator refuses plaintext"
    fleet, control = _local(config.fleet_address), _local(config.control_address)
    problem = tls_ready(fleet, config.ca_cert, TIMEOUT_S)
    if problem:
        return False, f"unhealthy: Fleet API: {problem}"
    problem = https_health(control, config.ca_cert, TIMEOUT_S)
    if problem:
        return False, f"unhealthy: Control API: {problem}"
    return True, f"healthy: Fleet API {fleet} (gRPC, TLS), Control API {control} (HTTPS)"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: coordinator_health.py COORDINATOR_TOML", file=sys.stderr)
        return 1
    try:
        ok, line = check(Path(argv[0]))
    except Exception as exc:  # a health check reports; it never raises
        ok, line = False, f"unhealthy: {type(exc).__name__}: {exc}"
    print(line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
