"""Deployment keys: the consortium CA, the coordinator's TLS certificate, site node keys.

``genofed certs init`` lays out::

    DIR/ca.pem                  CA certificate (give to every site)
    DIR/ca.key                  CA private key (0600; keep offline)
    DIR/server.pem              coordinator TLS certificate, SAN = the host
    DIR/server.key              its private key (0600)
    DIR/sites/NAME/node.key     site NAME's node key, OpenSSH ECDSA P-384 (0600)
    DIR/sites/NAME/node.pub     its public key (register it with the coordinator)

Node keys are what ``flower-supernode --auth-supernode-private-key`` reads in
flwr 1.39 (OpenSSH private key format, a NIST EC curve) and what
``flwr supernode register`` reads (OpenSSH public key). The server
certificate always also names ``localhost``, ``127.0.0.1`` and ``::1``
because the SuperLink's own ServerApp runtime connects to it over loopback
with the same certificate.

Nothing is overwritten: an existing file is an :class:`InputError`, and every
file is written to a temporary name and renamed, private keys owner-only.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from genofed.common.errors import InputError

#: Validity of the CA and server certificates.
DEFAULT_VALID_DAYS = 825
NODE_CURVE = ec.SECP384R1()
_SITE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class PkiLayout:
    """Where ``certs init`` put each file."""

    root: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    node_keys: dict[str, tuple[Path, Path]]  # site -> (private, public)


def layout(root: Path, sites: Sequence[str]) -> PkiLayout:
    """The paths ``init_pki`` writes under ``root``."""
    return PkiLayout(
        root=root,
        ca_cert=root / "ca.pem",
        ca_key=root / "ca.key",
        server_cert=root / "server.pem",
        server_key=root / "server.key",
        node_keys={
            s: (root / "sites" / s / "node.key", root / "sites" / s / "node.pub") for s in sites
        },
    )


def init_pki(
    root: Path,
    *,
    coordinator_host: str,
    sites: Sequence[str],
    now: dt.datetime | None = None,
    valid_days: int = DEFAULT_VALID_DAYS,
) -> PkiLayout:
    """Create the CA, the server certificate for ``coordinator_host`` and one node key per site."""
    if not coordinator_host or any(c.isspace() for c in coordinator_host):
        raise InputError(f"not a host name or IP address: {coordinator_host!r}")
    for s in sites:
        if not _SITE_NAME.match(s):
            raise InputError(
                f"site name {s!r} is not valid", hint="use 1-64 letters, digits, '.', '_' or '-'"
            )
    if len(set(sites)) != len(sites):
        raise InputError("a site name is given twice")
    paths = layout(Path(root), sites)
    targets = [paths.ca_cert, paths.ca_key, paths.server_cert, paths.server_key]
    targets += [p for pair in paths.node_keys.values() for p in pair]
    for p in targets:
        if p.exists():
            raise InputError(
                "already exists; refusing to overwrite a key", path=p, hint="choose another --out"
            )
    now = now or dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_cert = _ca_certificate(ca_key, now, valid_days)
    server_key = ec.generate_private_key(ec.SECP384R1())
    server_cert = _server_certificate(
        server_key, ca_key, ca_cert, coordinator_host, now, valid_days
    )
    _write(paths.ca_key, _pem_private(ca_key), private=True)
    _write(paths.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM))
    _write(paths.server_key, _pem_private(server_key), private=True)
    _write(paths.server_cert, server_cert.public_bytes(serialization.Encoding.PEM))
    for name, (priv, pub) in paths.node_keys.items():
        write_node_keypair(priv, pub, comment=name)
    return paths


def write_node_keypair(private_path: Path, public_path: Path, *, comment: str = "") -> None:
    """Write a new ECDSA P-384 node key pair in OpenSSH format (private key 0600)."""
    for p in (private_path, public_path):
        if p.exists():
            raise InputError("already exists; refusing to overwrite a key", path=p)
    key = ec.generate_private_key(NODE_CURVE)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    if comment:
        public += b" " + comment.encode()
    _write(private_path, private, private=True)
    _write(public_path, public + b"\n")


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "GenoFed consortium"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _ca_certificate(
    key: ec.EllipticCurvePrivateKey, now: dt.datetime, days: int
) -> x509.Certificate:
    name = _name("GenoFed consortium CA")
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA384())
    )


def _server_certificate(
    key: ec.EllipticCurvePrivateKey,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    host: str,
    now: dt.datetime,
    days: int,
) -> x509.Certificate:
    names: list[x509.GeneralName] = []
    for h in (host, *_LOOPBACK_NAMES):
        try:
            entry: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(h))
        except ValueError:
            entry = x509.DNSName(h)
        if entry not in names:
            names.append(entry)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(host))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA384())
    )


def _pem_private(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    """Write ``data`` to a temporary name in the same directory, then rename it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


__all__ = ["DEFAULT_VALID_DAYS", "PkiLayout", "init_pki", "layout", "write_node_keypair"]
