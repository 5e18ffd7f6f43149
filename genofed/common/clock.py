"""The one wall clock: ``utc_now`` and the ``Clock`` type that tests replace it with.

Every module that stamps a time (audit entries, ledger charges, approvals,
run records, status reports) takes a ``clock`` argument of type
:data:`Clock` defaulting to :func:`utc_now`, so a test can pin time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

#: A function returning the current time, timezone-aware.
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time in UTC (timezone-aware)."""
    return datetime.now(UTC)


__all__ = ["Clock", "utc_now"]
