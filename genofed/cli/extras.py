"""The optional parts of an install (``pyproject.toml``'s extras) and a check for them.

A site agent installs ``genofed`` alone; the commands that synthesize cohorts
or run Flower's simulation engine need extras, and say which instead of
failing on an import. (The coordinator's plots check ``genofed[plot]`` in
:mod:`genofed.coordinator.writers.figures`, before a study's first round.)
"""

from __future__ import annotations

import importlib.util
from types import MappingProxyType

from genofed.common.errors import GenoFedError

#: The modules each extra brings, by extra name (``tests/unit/test_packaging.py``
#: checks them against ``pyproject.toml``).
EXTRA_MODULES: MappingProxyType[str, tuple[str, ...]] = MappingProxyType(
    {
        "synth": ("msprime", "tskit", "bed_reader"),
        "plot": ("matplotlib",),
        "simulation": ("ray",),
        "train": ("torch", "opacus"),
        # the reference libraries: ``genofed study conform`` checks km and cox with lifelines
        "dev": ("lifelines",),
    }
)


def require_extras(command: str, *extras: str) -> None:
    """Raise :class:`GenoFedError` if an extra ``command`` needs is not installed."""
    missing = [
        extra
        for extra in extras
        if any(importlib.util.find_spec(m) is None for m in EXTRA_MODULES[extra])
    ]
    if missing:
        spec = f"genofed[{','.join(missing)}]"
        raise GenoFedError(
            f"{command} needs {spec}, which this install does not have\n  fix: pip install '{spec}'"
        )


__all__ = ["EXTRA_MODULES", "require_extras"]
