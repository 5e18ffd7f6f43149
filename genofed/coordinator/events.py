"""Progress events of a study run: what the coordinator tells a display.

The runner (:mod:`.runner`) reports what it does through one callback, an
:data:`EventFn`; it never prints. Each :class:`Event` has a name, a UTC
timestamp, the seconds since the study started and the fields of its kind;
every event carries ``study`` (the study's name) and ``run_id``.

========================  ===================================================
event                     fields (besides event, time, elapsed, study, run_id)
========================  ===================================================
``study_started``         ``sha256``, ``engine``, ``nodes`` (connected),
                          ``min_sites`` (null: every site), ``analyses``
                          (``[{"id", "kind"}]`` in study order)
``analysis_started``      ``analyses`` (ids; ``[]`` for variant harmonization,
                          the count analyses together for their shared
                          round), ``kind``, ``attempt`` (2 and up: run again
                          without a site that dropped out), ``sites``
``round_started``         ``analyses``, ``round`` (the analysis's own, from 1),
                          ``study_round`` (the study's), ``request``,
                          ``sites`` (asked), ``secure`` (a SecAgg+ sum)
``site_answered``         ``analyses``, ``round``, ``study_round``,
                          ``request``, ``site``
``site_failed``           the same, and ``status`` (``refused``, ``error``,
                          ``no_reply``), ``reason_code``, ``message``
``site_dropped``          ``analyses``, ``round``, ``study_round``,
                          ``request``, ``site``, ``reason_code``,
                          ``remaining`` (sites left), ``min_sites``
``round_done``            ``analyses``, ``round``, ``study_round``,
                          ``request``, ``asked``, ``answered``, ``seconds``
``analysis_done``         ``analyses``, ``kind``, ``seconds``, ``outputs``
``study_done``            ``out``, ``outputs``, ``sites``, ``sites_missing``,
                          ``seconds``
``study_failed``          ``error`` (the exception's class), ``message``,
                          ``seconds``
========================  ===================================================

A failed or dropped site is a ``site_failed`` event; when the study goes on
without it (``min_sites``), a ``site_dropped`` event follows, else
``study_failed``. In deployment the ServerApp prints each event as one JSON
line (:func:`event_from_json` reads it back on the analyst's machine).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from genofed.common.clock import Clock, utc_now

STUDY_STARTED = "study_started"
ANALYSIS_STARTED = "analysis_started"
ROUND_STARTED = "round_started"
SITE_ANSWERED = "site_answered"
SITE_FAILED = "site_failed"
SITE_DROPPED = "site_dropped"
ROUND_DONE = "round_done"
ANALYSIS_DONE = "analysis_done"
STUDY_DONE = "study_done"
STUDY_FAILED = "study_failed"

#: Every event name, in the order a study emits them.
EVENT_NAMES = (
    STUDY_STARTED,
    ANALYSIS_STARTED,
    ROUND_STARTED,
    SITE_ANSWERED,
    SITE_FAILED,
    SITE_DROPPED,
    ROUND_DONE,
    ANALYSIS_DONE,
    STUDY_DONE,
    STUDY_FAILED,
)

#: The fields each event has besides ``event``, ``time``, ``elapsed``, ``study`` and ``run_id``.
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    STUDY_STARTED: ("sha256", "engine", "nodes", "min_sites", "analyses"),
    ANALYSIS_STARTED: ("analyses", "kind", "attempt", "sites"),
    ROUND_STARTED: ("analyses", "round", "study_round", "request", "sites", "secure"),
    SITE_ANSWERED: ("analyses", "round", "study_round", "request", "site"),
    SITE_FAILED: (
        "analyses",
        "round",
        "study_round",
        "request",
        "site",
        "status",
        "reason_code",
        "message",
    ),
    SITE_DROPPED: (
        "analyses",
        "round",
        "study_round",
        "request",
        "site",
        "reason_code",
        "remaining",
        "min_sites",
    ),
    ROUND_DONE: ("analyses", "round", "study_round", "request", "asked", "answered", "seconds"),
    ANALYSIS_DONE: ("analyses", "kind", "seconds", "rounds", "outputs"),
    STUDY_DONE: ("out", "outputs", "sites", "sites_missing", "seconds"),
    STUDY_FAILED: ("error", "message", "seconds"),
}

#: The fields every event has.
COMMON_FIELDS = ("event", "time", "elapsed", "study", "run_id")


@dataclass(frozen=True)
class Event:
    """One thing that happened in a study run."""

    name: str
    time: str  # ISO 8601, UTC, to the millisecond
    elapsed: float  # seconds since the study started
    data: Mapping[str, object] = field(default_factory=dict)

    def get(self, key: str, default: object = None) -> object:
        return self.data.get(key, default)

    def to_json(self) -> dict[str, object]:
        """The event as one JSON object: ``event``, ``time``, ``elapsed``, then its fields."""
        return {"event": self.name, "time": self.time, "elapsed": self.elapsed, **self.data}


EventFn = Callable[[Event], None]


def event_from_json(doc: object) -> Event:
    """The :class:`Event` of :meth:`Event.to_json`; ``ValueError`` if ``doc`` is not one."""
    if not isinstance(doc, Mapping):
        raise ValueError("not a study event: not a JSON object")
    name = doc.get("event")
    if name not in EVENT_FIELDS:
        raise ValueError(f"not a study event: {name!r}")
    elapsed = doc.get("elapsed", 0.0)
    data = {k: v for k, v in doc.items() if k not in ("event", "time", "elapsed")}
    return Event(
        str(name),
        str(doc.get("time", "")),
        float(elapsed) if isinstance(elapsed, int | float) else 0.0,
        data,
    )


def event_line(event: Event) -> str:
    """One line of JSON (no newline inside)."""
    return json.dumps(event.to_json(), sort_keys=False, default=str, separators=(",", ":"))


class Events:
    """Stamps and sends the events of one study run to ``sink`` (nothing when None)."""

    def __init__(
        self, sink: EventFn | None, *, study: str, run_id: str, clock: Clock = utc_now
    ) -> None:
        self._sink = sink
        self._common = {"study": study, "run_id": run_id}
        self._clock = clock
        self._started = time.monotonic()

    def seconds(self) -> float:
        """Seconds since the study started."""
        return round(time.monotonic() - self._started, 3)

    def emit(self, name: str, **data: object) -> None:
        if self._sink is None:
            return
        stamp = self._clock().isoformat(timespec="milliseconds")
        self._sink(Event(name, stamp, self.seconds(), {**self._common, **data}))


__all__ = [
    "ANALYSIS_DONE",
    "ANALYSIS_STARTED",
    "COMMON_FIELDS",
    "EVENT_FIELDS",
    "EVENT_NAMES",
    "ROUND_DONE",
    "ROUND_STARTED",
    "SITE_ANSWERED",
    "SITE_DROPPED",
    "SITE_FAILED",
    "STUDY_DONE",
    "STUDY_FAILED",
    "STUDY_STARTED",
    "Event",
    "EventFn",
    "Events",
    "event_from_json",
    "event_line",
]
