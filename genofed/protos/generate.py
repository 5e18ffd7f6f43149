"""Regenerate the checked-in Python code for the ``genofed.v1`` protos.

Run as ``make protos`` (``python -m genofed.protos.generate``). With ``--out``
it writes into another directory instead, which is how the drift test
compares a fresh generation with the checked-in files.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

#: Repository root: the import root of the ``.proto`` files.
ROOT = Path(__file__).resolve().parents[2]
PROTO_DIR = Path(__file__).resolve().parent / "v1"


def proto_files() -> list[Path]:
    """The ``.proto`` sources, sorted."""
    return sorted(PROTO_DIR.glob("*.proto"))


def generate(out: Path) -> None:
    """Write ``*_pb2.py``, ``*_pb2_grpc.py`` and ``*.pyi`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    well_known = resources.files("grpc_tools") / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{ROOT}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *(str(p.relative_to(ROOT)) for p in proto_files()),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed; see the messages above")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT, help="output root")
    generate(parser.parse_args(argv).out)


if __name__ == "__main__":
    main(sys.argv[1:])
