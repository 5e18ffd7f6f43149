"""The GenoFed Flower app bundle (FAB): what a deployment run ships, and its hash.

The bundle holds **no code**: only a ``pyproject.toml`` that names the
ServerApp (``genofed.coordinator.app:app``) and the ClientApp
(``genofed.site_agent.app:app``) and declares the run-config keys. Each host
runs those components from the GenoFed it has installed, so a hospital never
executes code that arrived over the network, and the bundle's SHA-256 (what
Flower calls the FAB hash) depends only on the GenoFed version. A site's
policy lists the bundle hashes it allows (``allowed_app_hashes``); ``genofed
app-hash`` and ``genofed-site app-hash`` print the hash of this version.

:func:`bundle_bytes` writes the same bytes as ``flwr build`` / ``flwr run``
(flwr 1.39: sorted entries, a fixed date, a ``.info/CONTENT`` manifest); a
unit test holds it to Flower's own builder, so the hash a site computes here
is the hash the SuperNode sees.
"""

from __future__ import annotations

import hashlib
import io
import tomllib
import zipfile

import tomli_w

from genofed import __version__

#: Run-config keys the ServerApp reads, with their defaults.
RUN_CONFIG_DEFAULTS: dict[str, str | int | bool | float] = {
    "study-text": "",
    "study-suffix": ".toml",
    "study-path": "",
    "out-dir": "",
    "expected-sites": 1,
    "run-id": "",
    "overwrite": False,
    "connect-timeout": 120.0,
    "site-timeout": 600.0,
    "return-results": False,
}

#: Flower's fixed timestamp for FAB entries (flwr.common.constant.FAB_DATE).
_FAB_DATE = (2024, 10, 1, 0, 0, 0)


def bundle_pyproject(version: str = __version__) -> str:
    """The bundle's ``pyproject.toml`` for GenoFed ``version``."""
    doc = {
        "build-system": {"requires": ["hatchling"], "build-backend": "hatchling.build"},
        "project": {"name": "genofed-app", "version": version, "dependencies": []},
        "tool": {
            "flwr": {
                "app": {
                    "publisher": "genofed",
                    "components": {
                        "serverapp": "genofed.coordinator.app:app",
                        "clientapp": "genofed.site_agent.app:app",
                    },
                    "config": dict(RUN_CONFIG_DEFAULTS),
                }
            }
        },
    }
    return tomli_w.dumps(doc)


def bundle_bytes(version: str = __version__) -> bytes:
    """The FAB for GenoFed ``version``, byte for byte as Flower 1.39 builds it."""
    pyproject = tomli_w.dumps(tomllib.loads(bundle_pyproject(version))).encode("utf-8")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as fab:
        _add(fab, "pyproject.toml", pyproject)
        manifest = f"pyproject.toml,{hashlib.sha256(pyproject).hexdigest()},{len(pyproject) * 8}"
        _add(fab, ".info/CONTENT", manifest.encode("utf-8"))
    return buffer.getvalue()


def bundle_hash(version: str = __version__) -> str:
    """SHA-256 (hex) of :func:`bundle_bytes`: the FAB hash a SuperNode reports."""
    return hashlib.sha256(bundle_bytes(version)).hexdigest()


def _add(fab: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name)
    info.date_time = _FAB_DATE
    fab.writestr(info, data)


__all__ = ["RUN_CONFIG_DEFAULTS", "bundle_bytes", "bundle_hash", "bundle_pyproject"]
