"""The checked-in generated code must equal a fresh generation (`make protos`)."""

from __future__ import annotations

from pathlib import Path

from genofed.protos.generate import PROTO_DIR, generate


def test_generated_code__matches_a_fresh_generation(tmp_path: Path) -> None:
    generate(tmp_path)
    fresh = tmp_path / "genofed" / "protos" / "v1"
    produced = sorted(p.name for p in fresh.iterdir())
    assert produced == ["genofed_pb2.py", "genofed_pb2.pyi", "genofed_pb2_grpc.py"]
    for name in produced:
        assert (PROTO_DIR / name).read_bytes() == (fresh / name).read_bytes(), (
            f"{name} is stale: run `make protos` and commit the result"
        )
