"""Strict TOML loading: unknown keys and wrong types are errors naming the file.

Configuration files are parsed into frozen dataclasses by their own modules;
this module holds the shared checks so that every file reports problems the
same way.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from genofed.common.errors import ConfigError


def load_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file; a missing file or a syntax error is a ConfigError."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError("file not found", path=path) from exc
    except tomllib.TOMLDecodeError as exc:
        line = _line_of(str(exc))
        raise ConfigError(
            f"not valid TOML ({exc})", path=path, line=line, hint="fix the syntax at that line"
        ) from exc


def _line_of(message: str) -> int | None:
    marker = "line "
    if marker not in message:
        return None
    tail = message.split(marker, 1)[1]
    digits = "".join(ch for ch in tail if ch.isdigit() or ch == " ").split()
    return int(digits[0]) if digits else None


def check_keys(
    table: Mapping[str, Any],
    allowed: Iterable[str],
    *,
    path: Path,
    where: str,
    required: Iterable[str] = (),
) -> None:
    """Fail on an unknown or a missing key in ``table`` (``where`` names it)."""
    allowed_set = set(allowed)
    for key in table:
        if key not in allowed_set:
            raise ConfigError(
                f"unknown key {key!r} in {where}",
                path=path,
                hint=f"allowed keys are: {', '.join(sorted(allowed_set))}",
            )
    for key in required:
        if key not in table:
            raise ConfigError(f"missing key {key!r} in {where}", path=path)


def get_typed(
    table: Mapping[str, Any],
    key: str,
    kind: type | tuple[type, ...],
    default: Any,
    *,
    path: Path,
    where: str,
) -> Any:
    """``table[key]`` checked against ``kind``; ``default`` when absent."""
    if key not in table:
        return default
    value = table[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise ConfigError(
            f"{where}.{key} must be {names}, not {type(value).__name__} ({value!r})", path=path
        )
    return value
