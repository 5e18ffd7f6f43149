"""Deployment keys: the formats Flower 1.39 reads, owner-only private keys, no overwrites."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_ssh_private_key, load_ssh_public_key

from genofed.common.errors import InputError
from genofed.common.pki import init_pki


def test_init_pki__server_cert_names_host_and_loopback_and_chains_to_ca(tmp_path: Path) -> None:
    paths = init_pki(tmp_path, coordinator_host="coord.example.org", sites=["a", "b"])
    ca = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(paths.server_cert.read_bytes())
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "coord.example.org" in san.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
    server.verify_directly_issued_by(ca)


def test_init_pki__ip_host_becomes_an_ip_san(tmp_path: Path) -> None:
    paths = init_pki(tmp_path, coordinator_host="10.1.2.3", sites=[])
    server = x509.load_pem_x509_certificate(paths.server_cert.read_bytes())
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("10.1.2.3") in san.get_values_for_type(x509.IPAddress)


def test_init_pki__node_keys_are_openssh_p384_as_flower_reads_them(tmp_path: Path) -> None:
    paths = init_pki(tmp_path, coordinator_host="127.0.0.1", sites=["a"])
    private, public = paths.node_keys["a"]
    key = load_ssh_private_key(private.read_bytes(), None)  # what flower-supernode calls
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp384r1"
    pub = load_ssh_public_key(public.read_bytes())  # what `flwr supernode register` calls
    assert pub == key.public_key()


def test_init_pki__private_keys_are_owner_only(tmp_path: Path) -> None:
    paths = init_pki(tmp_path, coordinator_host="127.0.0.1", sites=["a"])
    for p in (paths.ca_key, paths.server_key, paths.node_keys["a"][0]):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p


def test_init_pki__refuses_to_overwrite_existing_keys(tmp_path: Path) -> None:
    init_pki(tmp_path, coordinator_host="127.0.0.1", sites=["a"])
    before = (tmp_path / "ca.key").read_bytes()
    with pytest.raises(InputError, match="refusing to overwrite"):
        init_pki(tmp_path, coordinator_host="127.0.0.1", sites=["a"])
    assert (tmp_path / "ca.key").read_bytes() == before


@pytest.mark.parametrize("sites", [["a", "a"], ["bad name"]])
def test_init_pki__rejects_bad_site_names_before_writing(tmp_path: Path, sites: list[str]) -> None:
    with pytest.raises(InputError):
        init_pki(tmp_path / "k", coordinator_host="127.0.0.1", sites=sites)
    assert not (tmp_path / "k").exists()
