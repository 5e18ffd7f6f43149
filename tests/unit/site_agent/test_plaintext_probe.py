"""``genofed-site up --insecure`` against a TLS coordinator fails in seconds, saying why.

Servers here are real and on 127.0.0.1: a TLS server (the standard library's
``ssl`` with a throwaway self-signed certificate), a gRPC server without TLS,
and the gRPC server with TLS that Flower's SuperLink uses.
"""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from genofed.common.errors import InputError
from genofed.site_agent.node.probe import plaintext_problem
from genofed.site_agent.node.supernode import NodeOptions, run_site_node
from genofed.synth import write_cohorts


def _self_signed(tmp: Path) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@pytest.fixture
def tls_socket_server(tmp_path: Path) -> Iterator[str]:
    cert, key = _self_signed(tmp_path)
    (tmp_path / "c.pem").write_bytes(cert)
    (tmp_path / "k.pem").write_bytes(key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(timeout=5)
    listener.close()


def _grpc_server(tmp_path: Path, tls: bool) -> tuple[grpc.Server, str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    if tls:
        cert, key = _self_signed(tmp_path)
        creds = grpc.ssl_server_credentials([(key, cert)])
        port = server.add_secure_port("127.0.0.1:0", creds)
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


def test_probe__a_tls_server_is_no_plaintext_coordinator(tls_socket_server: str) -> None:
    problem = plaintext_problem(tls_socket_server)
    assert problem is not None and tls_socket_server in problem


@pytest.mark.parametrize("tls", [False, True], ids=["grpc plaintext", "grpc tls"])
def test_probe__a_grpc_server_answers_as_it_is_configured(tmp_path: Path, tls: bool) -> None:
    server, address = _grpc_server(tmp_path, tls)
    try:
        problem = plaintext_problem(address)
    finally:
        server.stop(None)
    assert (problem is not None) == tls


def test_probe__nothing_listening_is_left_to_the_supernode_to_retry() -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        address = f"127.0.0.1:{s.getsockname()[1]}"
    assert plaintext_problem(address) is None


def test_site_up__insecure_against_tls_fails_within_seconds(tmp_path: Path) -> None:
    server, address = _grpc_server(tmp_path, tls=True)
    site = write_cohorts(tmp_path / "c", sites=1, samples=60, variants=20, seed=3).sites[0]
    opts = NodeOptions(site_dir=site, superlink=address, insecure=True)
    started = time.monotonic()
    try:
        with pytest.raises(InputError) as info:
            run_site_node(opts, emit=lambda line: None)
    finally:
        server.stop(None)
    assert time.monotonic() - started < 30
    text = str(info.value)
    assert "--insecure" in text and address in text and "--ca-cert" in text
