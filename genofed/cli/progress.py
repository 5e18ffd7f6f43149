"""How ``genofed study run`` and ``genofed demo`` show a study's progress.

The coordinator reports a run as events (:mod:`genofed.coordinator.events`);
this module renders them in one of four ways (:func:`choose_mode`):

* ``live``: on a terminal, a Rich Live display with one line per analysis
  (its round, the sites that answered this round, elapsed time, a site that
  failed or dropped out), redrawn in place;
* ``plain``: when standard output or standard error is not a terminal, one
  line at each analysis and round boundary, and for each site that failed or
  dropped out (never one per site answer);
* ``quiet`` (``--quiet``): nothing; the final summary and errors only;
* ``json`` (``--json``): one JSON object per event on standard output, and
  nothing else there.

:func:`run_log` sends what is not for the terminal to the run log, a file
beside the results directory: every GenoFed log record (DEBUG and up, e.g.
each site's answer), Python warnings (Ray's FutureWarning and the like) and,
unless ``--verbose``, other libraries' log records.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from genofed.common.analyses import COUNT_KINDS
from genofed.common.clock import utc_now
from genofed.coordinator.events import (
    ANALYSIS_DONE,
    ANALYSIS_STARTED,
    ROUND_DONE,
    ROUND_STARTED,
    SITE_ANSWERED,
    SITE_DROPPED,
    SITE_FAILED,
    STUDY_DONE,
    STUDY_FAILED,
    STUDY_STARTED,
    Event,
    EventFn,
    event_line,
)

LIVE = "live"
PLAIN = "plain"
QUIET = "quiet"
JSON = "json"
MODES = (LIVE, PLAIN, QUIET, JSON)

#: The last line ``--json`` prints: the study's summary (not a coordinator event).
RESULT_EVENT = "result"


def choose_mode(*, as_json: bool, quiet: bool, console: Console) -> str:
    """``json`` or ``quiet`` when asked; ``live`` on a terminal; else ``plain``."""
    if as_json:
        return JSON
    if quiet:
        return QUIET
    if console.is_terminal and not console.is_dumb_terminal and sys.stdout.isatty():
        return LIVE
    return PLAIN


@contextmanager
def progress_display(mode: str, console: Console) -> Iterator[EventFn]:
    """An event callback that renders in ``mode`` (:data:`MODES`) while the block runs."""
    if mode == JSON:
        yield JsonLines()
    elif mode == QUIET:
        yield lambda _event: None
    elif mode == PLAIN:
        yield PlainLines(console)
    else:
        board = Board()
        with Live(
            board, console=console, refresh_per_second=4, transient=False, redirect_stdout=False
        ):
            yield board


class JsonLines:
    """``--json``: each event as one line of JSON on standard output, the summary last."""

    def __init__(self) -> None:
        self.elapsed = 0.0

    def __call__(self, event: Event) -> None:
        self.elapsed = event.elapsed
        print(event_line(event), flush=True)

    def result(self, doc: Mapping[str, object]) -> None:
        """The last line: the ``result`` event, the study's summary."""
        stamp = utc_now().isoformat(timespec="milliseconds")
        print(event_line(Event(RESULT_EVENT, stamp, self.elapsed, dict(doc))), flush=True)


def _label(analyses: Sequence[object], kind: str) -> str:
    if not analyses:
        return "variant harmonization"
    if kind in COUNT_KINDS or kind == "genotype_counts":
        return ", ".join(str(a) for a in analyses) + " (genotype counts)"
    return f"{', '.join(str(a) for a in analyses)} ({kind})"


def _as_list(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []


def _failure(event: Event) -> str:
    status = str(event.get("status", "failed")).replace("_", " ")
    return f"{event.get('site')} {status} ({event.get('reason_code')})"


#: A round whose every site answered gets a plain line only when it took this long (seconds).
SLOW_ROUND_SECONDS = 5.0


class PlainLines:
    """Plain lines at analysis boundaries, for slow or incomplete rounds, and for each site that
    fails or drops out: a logistic GWAS's thirty quick rounds are one line, not thirty."""

    def __init__(self, console: Console) -> None:
        self._console = console

    def _say(self, line: str) -> None:
        self._console.print(line, markup=False, highlight=False, soft_wrap=True)

    def __call__(self, event: Event) -> None:
        analyses = _as_list(event.get("analyses"))
        name = ", ".join(str(a) for a in analyses) or "variants"
        if event.name == STUDY_STARTED:
            n = len(_as_list(event.get("analyses")))
            self._say(
                f"study {event.get('study')}: {n} analyses on {event.get('nodes')} sites "
                f"(run {event.get('run_id')})"
            )
        elif event.name == ANALYSIS_STARTED:
            label = _label(analyses, str(event.get("kind")))
            sites = len(_as_list(event.get("sites")))
            again = int(str(event.get("attempt", 1))) > 1
            self._say(f"{'again: ' if again else ''}{label} on {sites} sites")
        elif event.name == ROUND_DONE:
            seconds = float(str(event.get("seconds", 0)))
            if event.get("answered") == event.get("asked") and seconds < SLOW_ROUND_SECONDS:
                return
            self._say(
                f"  {name}: round {event.get('round')} ({event.get('request')}): "
                f"{event.get('answered')}/{event.get('asked')} sites answered, "
                f"{float(str(event.get('seconds', 0))):.1f} s"
            )
        elif event.name == SITE_FAILED:
            self._say(
                f"  {name}: {_failure(event)} at round {event.get('round')}: {event.get('message')}"
            )
        elif event.name == SITE_DROPPED:
            self._say(
                f"  {event.get('site')} dropped out at round {event.get('study_round')} "
                f"({event.get('reason_code')}); continuing with {event.get('remaining')} sites "
                f"(min_sites = {event.get('min_sites')})"
            )
        elif event.name == ANALYSIS_DONE:
            files = len(_as_list(event.get("outputs")))
            rounds = int(str(event.get("rounds", 0)))
            self._say(
                f"  {name} done in {float(str(event.get('seconds', 0))):.1f} s"
                + (f", {rounds} round{'s' if rounds != 1 else ''}" if rounds else "")
                + (f": {files} file{'s' if files != 1 else ''}" if files else "")
            )
        elif event.name == STUDY_DONE:
            self._say(
                f"study done in {float(str(event.get('seconds', 0))):.1f} s: "
                f"results in {event.get('out')}"
            )


@dataclass
class _Line:
    """One line of the live display: an analysis, the count analyses' round, or harmonization."""

    label: str
    ids: frozenset[str]
    state: str = "waiting"  # waiting, running, done, failed
    round: int = 0
    asked: int = 0
    answered: int = 0
    started: float | None = None
    seconds: float | None = None
    done_ids: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)  # failed or dropped sites
    round_notes: list[str] = field(default_factory=list)  # this round's failures


class Board:
    """The live display's state, updated by events and drawn by Rich."""

    def __init__(self) -> None:
        self.title = "starting"
        self.lines: list[_Line] = []
        self._by_id: dict[str, _Line] = {}
        self._variants = _Line("variant harmonization", frozenset())
        self._started = time.monotonic()
        self._finished: float | None = None
        self._spinner = Spinner("dots")

    def _line(self, analyses: Sequence[object], kind: str) -> _Line:
        if not analyses:
            return self._variants
        found = self._by_id.get(str(analyses[0]))
        if found is None:  # an analysis the study_started event did not list
            found = _Line(_label(analyses, kind), frozenset(str(a) for a in analyses))
            self.lines.append(found)
            for a in found.ids:
                self._by_id[a] = found
        return found

    def __call__(self, event: Event) -> None:
        analyses = _as_list(event.get("analyses"))
        if event.name == STUDY_STARTED:
            self._start(event)
            return
        if event.name in (STUDY_DONE, STUDY_FAILED):
            self._finished = time.monotonic()
            self.title = (
                f"study {event.get('study')} done"
                if event.name == STUDY_DONE
                else f"study {event.get('study')} failed: {event.get('error')}"
            )
            for line in self.lines:
                if line.state == "running":
                    line.state = "done" if event.name == STUDY_DONE else "failed"
            return
        line = self._line(analyses, str(event.get("kind", event.get("request", ""))))
        if event.name == ANALYSIS_STARTED:
            line.state, line.started, line.seconds = "running", time.monotonic(), None
            line.round = line.answered = 0
            line.asked = len(_as_list(event.get("sites")))
            if int(str(event.get("attempt", 1))) > 1:
                line.notes.append(f"attempt {event.get('attempt')}")
        elif event.name == ROUND_STARTED:
            line.round = int(str(event.get("round", 0)))
            line.asked = len(_as_list(event.get("sites")))
            line.answered = 0
            line.round_notes = []
        elif event.name == SITE_ANSWERED:
            line.answered += 1
        elif event.name == SITE_FAILED:
            line.round_notes.append(_failure(event))
        elif event.name == SITE_DROPPED:
            line.notes.append(f"{event.get('site')} dropped out ({event.get('reason_code')})")
        elif event.name == ROUND_DONE:
            line.answered = int(str(event.get("answered", line.answered)))
        elif event.name == ANALYSIS_DONE:
            line.done_ids.update(str(a) for a in analyses)
            if not line.ids or line.done_ids >= line.ids:
                line.state = "done"
                line.seconds = float(str(event.get("seconds", 0)))

    def _start(self, event: Event) -> None:
        self.title = f"study {event.get('study')} (run {event.get('run_id')})"
        self.lines = [self._variants]
        counts = [
            str(a["id"])
            for a in _as_list(event.get("analyses"))
            if isinstance(a, dict) and a.get("kind") in COUNT_KINDS
        ]
        if counts:
            self._line(counts, "genotype_counts")
        for a in _as_list(event.get("analyses")):
            if isinstance(a, dict) and a.get("kind") not in COUNT_KINDS:
                self._line([str(a["id"])], str(a.get("kind")))

    def __rich__(self) -> RenderableType:
        now = self._finished or time.monotonic()
        table = Table.grid(padding=(0, 2))
        for _ in range(6):
            table.add_column()
        marks = {"waiting": Text("·", style="dim"), "done": Text("✓", style="green")}
        marks["failed"] = Text("✗", style="bold red")
        for line in self.lines:
            mark: RenderableType = marks.get(line.state) or self._spinner
            elapsed = (
                line.seconds
                if line.seconds is not None
                else (now - line.started if line.started is not None else None)
            )
            notes = [*line.notes, *line.round_notes]
            table.add_row(
                mark,
                Text(line.label, style="dim" if line.state == "waiting" else ""),
                Text(f"round {line.round}" if line.round else ""),
                Text(f"sites {line.answered}/{line.asked}" if line.asked else ""),
                Text(f"{elapsed:.1f} s" if elapsed is not None else ""),
                Text("; ".join(notes), style="yellow") if notes else Text(""),
            )
        header = Text(f"{self.title}  {now - self._started:.0f} s", style="bold")
        return Group(header, table)


@contextmanager
def run_log(path: Path, console: Console, *, verbose: bool = False) -> Iterator[Path]:
    """Send log records and warnings to ``path`` (created at the first record) while running.

    GenoFed's warnings and errors still reach the terminal, through
    ``console`` (so that they print above a live display); DEBUG and INFO
    records, Python warnings and, unless ``verbose``, other libraries' records
    go to the file only.
    """
    file_handler = logging.FileHandler(path, encoding="utf-8", delay=True)
    file_handler.setLevel(logging.DEBUG)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    console_handler = _ConsoleHandler(console, verbose=verbose)
    root = logging.getLogger()
    genofed = logging.getLogger("genofed")
    py_warnings = logging.getLogger("py.warnings")
    saved_root = (root.level, list(root.handlers))
    saved_genofed = genofed.level
    saved_warnings = py_warnings.propagate
    stream_handlers = [
        h
        for h in root.handlers
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
    ]
    for h in stream_handlers:  # the terminal gets records through console_handler instead
        root.removeHandler(h)
    root.addHandler(file_handler)
    root.addHandler(console_handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    genofed.setLevel(logging.DEBUG)
    py_warnings.propagate = True
    logging.captureWarnings(True)
    try:
        yield path
    finally:
        logging.captureWarnings(False)
        py_warnings.propagate = saved_warnings
        genofed.setLevel(saved_genofed)
        root.removeHandler(file_handler)
        root.removeHandler(console_handler)
        file_handler.close()
        root.setLevel(saved_root[0])
        for h in saved_root[1]:
            if h not in root.handlers:
                root.addHandler(h)


def run_log_path(out: Path) -> Path:
    """The run log of a study whose results go to ``out``: ``OUT.log`` beside it."""
    return out.parent / f"{out.name}.log"


class _ConsoleHandler(logging.Handler):
    """GenoFed's warnings and errors (and with ``verbose`` every library's) on ``console``."""

    def __init__(self, console: Console, *, verbose: bool) -> None:
        super().__init__(logging.DEBUG if verbose else logging.WARNING)
        self._console = console
        self._verbose = verbose

    def emit(self, record: logging.LogRecord) -> None:
        ours = record.name == "genofed" or record.name.startswith("genofed.")
        if ours and record.levelno < logging.WARNING:
            return  # the run log has them
        if not ours and (not self._verbose or record.name.split(".")[0] == "flwr"):
            return  # the run log has them; with --verbose, Flower prints its own
        try:
            style = "bold red" if record.levelno >= logging.ERROR else "yellow"
            self._console.print(
                Text.assemble((f"{record.levelname.lower()}:", style), " ", record.getMessage()),
                soft_wrap=True,
            )
        except Exception:  # a display must not stop the study
            self.handleError(record)


__all__ = [
    "JSON",
    "LIVE",
    "MODES",
    "PLAIN",
    "QUIET",
    "RESULT_EVENT",
    "Board",
    "JsonLines",
    "PlainLines",
    "choose_mode",
    "progress_display",
    "run_log",
    "run_log_path",
]
