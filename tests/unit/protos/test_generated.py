"""The checked-in generated code must equal a fresh generation (`make protos`)."""

from __future__ import annotations

from pathlib import Path

from genofed.protos.generate import PROTO_DIR, generate


def test_generated_code__matches_a_fresh_generation(tmp_path: Path) -> None:
    generate(tmp_path)
    fresh = tmp_path / "genofed" / "protos" / "v1"
    produced = sorted(p.name for p in fresh.iterdir())
    stems = sorted(p.stem for p in PROTO_DIR.glob("*.proto"))
    assert stems == ["genofed", "site_admin"]
    assert produced == sorted(
        f"{s}{x}" for s in stems for x in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")
    )
    checked_in = sorted(p.name for p in PROTO_DIR.glob("*_pb2*"))
    assert checked_in == produced, (
        "generated files without a .proto (or missing): run `make protos`"
    )
    for name in produced:
        assert (PROTO_DIR / name).read_bytes() == (fresh / name).read_bytes(), (
            f"{name} is stale: run `make protos` and commit the result"
        )
