"""Exception tree shared by the site agent and the coordinator.

::

    GenoFedError                 root of everything GenoFed raises on purpose
    ├── InputError               a user-supplied file or value is wrong
    │   └── ConfigError          a TOML config (study, site, policy) is wrong
    ├── ParamError               an analysis's parameters do not fit together
    │                            (also a ValueError; loading a study turns it into ConfigError)
    ├── HarmonizationError       sites do not hold the same variants
    ├── SiteFailure              a site replied with an error or a refusal
    ├── TooFewSites              fewer sites take part than the study needs
    ├── UnreachableError         the coordinator cannot be reached, or the connection was lost
    ├── StudyTimeout             the study did not finish in the time the submitter waits
    ├── PolicyRefusal            the site's policy refuses a request
    └── IntegrityError           a signature, hash or proof does not verify

Messages say what was wrong, where (file, line, column, variant, sample), and
what to do about it. Library errors are converted at the boundary with
``raise ... from exc``.
"""

from __future__ import annotations

from pathlib import Path


class GenoFedError(Exception):
    """Root of the GenoFed exception tree."""


class InputError(GenoFedError):
    """A user-supplied file or value is wrong.

    ``path`` and ``line`` (1-based) locate the problem when it is in a file.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.hint = hint
        where = ""
        if self.path is not None:
            where = self.path if line is None else f"{self.path}:{line}"
            where += ": "
        text = f"{where}{message}"
        if hint:
            text += f"\n  fix: {hint}"
        super().__init__(text)


class ConfigError(InputError):
    """A TOML configuration file (study, site, policy) is wrong."""


class ParamError(GenoFedError, ValueError):
    """An analysis's parameters do not make sense together; ``hint`` says what to do.

    Raised by the parameter checks in :mod:`genofed.common.wire` (and
    :mod:`genofed.common.analyses`); :func:`genofed.common.study.load_study`
    reports it as a :class:`ConfigError` naming the file and the analysis.
    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class HarmonizationError(GenoFedError):
    """Sites do not hold the same variants and the study does not allow it."""


class SiteFailure(GenoFedError):
    """A site replied with an error or a refusal."""

    def __init__(self, site: str, reason_code: str, message: str) -> None:
        self.site = site
        self.reason_code = reason_code
        super().__init__(f"site {site!r}: {reason_code}: {message}")


class TooFewSites(GenoFedError):
    """Fewer sites take part than the study needs.

    ``key`` names the setting that asks for them (``"[study] min_sites"`` in
    the study file, or a command-line option such as ``"--sites"``), so that
    the command line can name the file; ``hint`` says what to do.
    """

    def __init__(self, message: str, *, key: str | None = None, hint: str | None = None) -> None:
        self.key = key
        self.hint = hint
        super().__init__(f"{message}\n  fix: {hint}" if hint else message)


class UnreachableError(GenoFedError):
    """The coordinator (its SuperLink) cannot be reached, or the connection to it was lost."""


class StudyTimeout(GenoFedError):
    """A submitted study did not finish within the time the submitter waits for it."""


class PolicyRefusal(GenoFedError):
    """The site's policy refuses a request; ``reason_code`` is sent back."""

    def __init__(self, reason_code: str, message: str) -> None:
        self.reason_code = reason_code
        super().__init__(message)


class IntegrityError(GenoFedError):
    """A signature, hash or proof does not verify.

    Deliberately opaque: it never says which check failed.
    """

    def __init__(self) -> None:
        super().__init__("integrity check failed")


__all__ = [
    "ConfigError",
    "GenoFedError",
    "HarmonizationError",
    "InputError",
    "IntegrityError",
    "ParamError",
    "PolicyRefusal",
    "SiteFailure",
    "StudyTimeout",
    "TooFewSites",
    "UnreachableError",
]
