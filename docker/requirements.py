"""Write the image's pip inputs from pyproject.toml: its runtime requirements and a CPU-torch pin.

Used inside the image builds (stdlib only, Python 3.11)::

    python3 requirements.py pyproject.toml OUTDIR [EXTRA ...]

writes ``OUTDIR/requirements.txt`` (``[project] dependencies``, the pins
``make test`` installs, and those of each ``EXTRA`` named, e.g. ``plot`` and
``train`` for the coordinator image) and ``OUTDIR/constraints.txt``
(``torch==X+cpu`` for the ``train`` extra's ``torch==X`` pin; empty without
``train``), so that pip can only install PyTorch's CPU build: from the local
wheel directory, or PyTorch's CPU index, never a CUDA build from PyPI. Exits 2
with a message when the pin is not an exact version or an extra is unknown.
"""

from __future__ import annotations

import re
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

_TORCH_PIN = re.compile(r"^torch\s*==\s*([0-9][0-9A-Za-z.]*)\s*$")


def pip_inputs(pyproject: Path, extras: Sequence[str] = ()) -> tuple[list[str], list[str]]:
    """(requirements, constraints) for ``pyproject`` with ``extras``."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    deps = list(project["dependencies"])
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        if extra not in optional:
            raise ValueError(f"{pyproject}: no extra {extra!r} (it has: {', '.join(optional)})")
        deps.extend(optional[extra])
    torch = [d for d in deps if re.match(r"^torch\b", d)]
    if not torch:  # an image without genofed[train]: no PyTorch at all
        return deps, []
    pins = [m[1] for d in torch if (m := _TORCH_PIN.match(d))]
    if len(torch) != 1 or len(pins) != 1:
        raise ValueError(
            f"{pyproject}: expected one exact torch pin (torch==X.Y.Z) in the dependencies "
            f"of {', '.join(extras) or '[project]'}, found {torch}"
        )
    return deps, [f"torch=={pins[0]}+cpu"]


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: requirements.py PYPROJECT OUTDIR [EXTRA ...]", file=sys.stderr)
        return 2
    try:
        requirements, constraints = pip_inputs(Path(argv[0]), argv[2:])
    except (OSError, KeyError, ValueError, tomllib.TOMLDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(argv[1])
    (out / "requirements.txt").write_text("\n".join(requirements) + "\n", encoding="utf-8")
    (out / "constraints.txt").write_text("\n".join(constraints) + "\n", encoding="utf-8")
    print(f"{len(requirements)} requirements; constraints: {', '.join(constraints) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
