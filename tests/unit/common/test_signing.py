"""Study signatures: keys, signing, verification and the signed-study file."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from genofed.common.errors import ConfigError, InputError, IntegrityError
from genofed.common.signing import (
    StudySignature,
    generate_private_key,
    load_private_key,
    load_public_key,
    load_signed_study,
    parse_public_key,
    public_key_text,
    sign_study,
    signed_study_json,
    verify_study_signature,
    write_keypair,
)
from genofed.common.study import Study, study_from_mapping

KEY = generate_private_key()
OTHER = generate_private_key()


def _study(name: str = "qc") -> Study:
    return study_from_mapping(
        {"study": {"name": name}, "analysis": [{"kind": "freq"}]}, path=Path("<t>")
    )


def _trusted(*keys) -> dict[str, bytes]:
    return {
        f"analyst{i}": parse_public_key(public_key_text(k.public_key())) for i, k in enumerate(keys)
    }


def test_sign_and_verify__names_the_trusted_analyst() -> None:
    study = _study()
    sig = sign_study(study, KEY)
    assert verify_study_signature(study.canonical_json(), sig, _trusted(OTHER, KEY)) == "analyst1"


@pytest.mark.parametrize("case", ["unknown key", "altered study", "bad signature", "short key"])
def test_verify__every_failure_is_the_same_opaque_error(case: str) -> None:
    study = _study()
    sig = sign_study(study, KEY)
    data = study.canonical_json()
    trusted = _trusted(KEY)
    if case == "unknown key":
        trusted = _trusted(OTHER)
    elif case == "altered study":
        data = _study("qc2").canonical_json()
    elif case == "bad signature":
        sig = StudySignature(sig.public_key, bytes(64))
    else:
        sig = StudySignature(sig.public_key[:5], sig.signature)
        trusted = {"x": sig.public_key}
    with pytest.raises(IntegrityError) as info:
        verify_study_signature(data, sig, trusted)
    assert str(info.value) == "integrity check failed"


@given(st.binary(min_size=1, max_size=200))
def test_verify__signature_over_other_bytes_never_verifies(other: bytes) -> None:
    study = _study()
    sig = sign_study(study, KEY)
    if other == study.canonical_json():
        return
    with pytest.raises(IntegrityError):
        verify_study_signature(other, sig, _trusted(KEY))


def test_keypair_files__private_is_owner_only_and_round_trips(tmp_path: Path) -> None:
    pub = write_keypair(tmp_path / "keys" / "alice", KEY)
    assert stat.S_IMODE((tmp_path / "keys" / "alice").stat().st_mode) == 0o600
    assert load_public_key(pub) == parse_public_key(public_key_text(KEY.public_key()))
    loaded = load_private_key(tmp_path / "keys" / "alice")
    study = _study()
    assert sign_study(study, loaded) == sign_study(study, KEY)  # Ed25519 is deterministic


def test_write_keypair__refuses_to_overwrite(tmp_path: Path) -> None:
    write_keypair(tmp_path / "k", KEY)
    with pytest.raises(InputError, match="already exists"):
        write_keypair(tmp_path / "k", OTHER)


def test_load_private_key__not_a_key_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "k"
    bad.write_text("hello")
    with pytest.raises(InputError) as info:
        load_private_key(bad)
    assert str(bad) in str(info.value)
    assert "genofed study keygen" in str(info.value)


@pytest.mark.parametrize("text", ["ssh-ed25519 AAAA", "ed25519:!!!", "ed25519:AAAA"])
def test_parse_public_key__rejects_malformed(text: str) -> None:
    with pytest.raises(ValueError):
        parse_public_key(text)


def test_signed_study_file__round_trips(tmp_path: Path) -> None:
    study = _study()
    sig = sign_study(study, KEY)
    path = tmp_path / "study.signed.json"
    path.write_text(signed_study_json(study, sig))
    assert load_signed_study(path) == (study, sig)


def test_signed_study_file__altered_after_signing_is_refused(tmp_path: Path) -> None:
    study = _study()
    doc = json.loads(signed_study_json(study, sign_study(study, KEY)))
    other = _study("qc2")
    doc["study"], doc["sha256"] = other.canonical_json().decode(), other.sha256
    path = tmp_path / "s.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="altered after signing") as info:
        load_signed_study(path)
    assert str(path) in str(info.value)


def test_signed_study_file__wrong_format_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text('{"format": "other"}')
    with pytest.raises(ConfigError, match="not a signed study"):
        load_signed_study(path)
