"""Strict TOML loading: unknown keys and wrong types are errors naming the file.

Configuration files are parsed into frozen dataclasses by their own modules;
this module holds the shared checks so that every file reports problems the
same way.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from genofed.common.errors import ConfigError, InputError

T = TypeVar("T")


def load_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file; a missing, unreadable or binary file or a syntax error is a ConfigError."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(
            "file not found", path=path, hint="check the path and its spelling"
        ) from exc
    except IsADirectoryError as exc:
        raise ConfigError(
            "is a directory, not a TOML file", path=path, hint="give the path of the .toml file"
        ) from exc
    except OSError as exc:
        raise ConfigError(
            f"cannot read the file ({exc.strerror or exc})",
            path=path,
            hint="check that the file exists and is readable by this user",
        ) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"not a TOML text file (byte {exc.start + 1} is not UTF-8 text)",
            path=path,
            line=data.count(b"\n", 0, exc.start) + 1,
            hint="give the TOML text file (saved as UTF-8), not a binary or another encoding",
        ) from exc
    try:
        return tomllib.loads(text)
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
    """Fail on unknown keys (all named at once) or missing ones in ``table`` (``where``)."""
    allowed_set = set(allowed)
    unknown = [key for key in table if key not in allowed_set]
    if unknown:
        raise ConfigError(
            f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
            f"in {where}",
            path=path,
            hint=f"{did_you_mean(unknown, allowed_set)}remove or rename "
            f"{'them' if len(unknown) > 1 else 'it'}; allowed keys are: "
            f"{', '.join(sorted(allowed_set)) or '(none)'}",
        )
    missing = [key for key in required if key not in table]
    if missing:
        raise ConfigError(
            f"missing key{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} "
            f"in {where}",
            path=path,
            hint=f"add {' and '.join(f'{key} = ...' for key in missing)} to {where}",
        )


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
            f"{where}.{key} must be {names}, not {type(value).__name__} ({value!r})",
            path=path,
            hint=f"write {key} = {_EXAMPLES.get(kinds[0], '...')} ({names})",
        )
    return value


#: An example value of each TOML type, for hints.
_EXAMPLES: dict[type, str] = {
    str: '"text"',
    int: "10",
    float: "1.0",
    bool: "true",
    list: '["a", "b"]',
    dict: "{ ... } (a table)",
}


def close_match(word: str, choices: Iterable[str]) -> str | None:
    """The choice ``word`` was most likely meant to be (a typo), or None."""
    found = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def did_you_mean(words: Iterable[str], choices: Iterable[str]) -> str:
    """``"did you mean 'freq' (for 'frq')? "`` for the words that look like typos, else ``""``."""
    options = sorted(choices)
    pairs = [
        f"{match!r} (for {word!r})"
        for word in words
        if isinstance(word, str) and (match := close_match(word, options)) is not None
    ]
    return f"did you mean {', '.join(pairs)}? " if pairs else ""


def bare_message(exc: InputError) -> str:
    """What ``exc`` says is wrong, without its file prefix and its fix."""
    text = str(exc)
    if exc.path is not None:
        where = exc.path if exc.line is None else f"{exc.path}:{exc.line}"
        text = text.removeprefix(f"{where}: ")
    if exc.hint:
        text = text.removesuffix(f"\n  fix: {exc.hint}")
    return text


class Problems:
    """Every problem found in one file, so that one :class:`ConfigError` can name them all.

    A reader calls :meth:`check` around each independent part of the file (a
    key, a table) and :meth:`raise_any` at the end: one problem is raised as
    it was, several as one error listing each with its line and its fix.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.errors: list[ConfigError] = []

    def add(self, exc: ConfigError) -> None:
        self.errors.append(exc)

    def check(self, read: Callable[[], T], fallback: T) -> T:
        """``read()``, or ``fallback`` after noting the ConfigError it raised."""
        try:
            return read()
        except ConfigError as exc:
            self.add(exc)
            return fallback

    def raise_any(self, *, hint: str) -> None:
        """Raise the one problem, or one error listing all of them (``hint``: the overall fix)."""
        if len(self.errors) == 1:
            raise self.errors[0]
        if not self.errors:
            return
        lines = [f"{len(self.errors)} problems:"]
        for number, exc in enumerate(self.errors, start=1):
            at = f" (line {exc.line})" if exc.line is not None else ""
            lines.append(f"  {number}. {bare_message(exc)}{at}")
            if exc.hint:
                lines.append(f"     fix: {exc.hint}")
        raise ConfigError("\n".join(lines), path=self.path, hint=hint)
