"""``genofed study run --superlink``: submit a study to a live federation with ``flwr run``.

The study file travels in the run config (``study-text``), so it need not be
on the coordinator host. The ServerApp runs on the coordinator host (in the
SuperLink's SuperExec) and keeps its copy of the results there
(``STATE_DIR/results/RUN_ID``); ``flwr run --stream`` brings its output back
here: ``genofed-progress:`` lines (one JSON study event each,
:mod:`genofed.coordinator.events`) are passed on as they come, the results come
back as an archive (:mod:`genofed.coordinator.deploy.results_transfer`) and are
unpacked into ``--out`` on this machine, and the final ``genofed-result:``
line says whether the study finished or why it failed.

The bundle submitted is :func:`genofed.common.appbundle.bundle_pyproject`
(no code), built by ``flwr run`` from a temporary app directory.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from genofed.common.appbundle import bundle_pyproject
from genofed.common.errors import (
    GenoFedError,
    HarmonizationError,
    InputError,
    SiteFailure,
    StudyTimeout,
    TooFewSites,
    UnreachableError,
)
from genofed.common.supervise import start_child
from genofed.coordinator.app import PROGRESS_PREFIX, RESULT_PREFIX
from genofed.coordinator.deploy.results_transfer import (
    RESULTS_PREFIX,
    Reassembler,
    check_out,
    unpack,
)
from genofed.coordinator.deploy.superlink import (
    CONNECTION,
    flower_cli_home,
    flower_command,
    flower_env,
)
from genofed.coordinator.events import ROUND_DONE, Event, EventFn, event_from_json

#: Longest a submitted study may take before the submitter gives up waiting.
DEFAULT_STUDY_TIMEOUT_S = 3600.0


@dataclass(frozen=True)
class Submission:
    """One study for a live federation; see ``genofed study run --help``."""

    study_file: Path
    superlink: str  # the Control API, HOST:PORT
    out: Path  # on the coordinator host
    expected_sites: int
    ca_cert: Path | None = None
    insecure: bool = False
    overwrite: bool = False
    connect_timeout_s: float = 120.0
    site_timeout_s: float = 600.0


@dataclass(frozen=True)
class DeployedOutcome:
    """What the ServerApp reported for a finished study."""

    run_id: str
    doc: dict[str, Any]
    seconds: float

    @property
    def out(self) -> Path:
        """Where the results are: ``--out`` here, or the coordinator's copy if too large."""
        return Path(str(self.doc["out"] or self.doc["coordinator_out"]))


class RemoteSiteFailure(SiteFailure):
    """A :class:`SiteFailure` the ServerApp reported; its message already names the site."""

    def __init__(self, message: str) -> None:
        GenoFedError.__init__(self, message)
        self.site = ""
        self.reason_code = ""


class RemoteInternalError(GenoFedError):
    """The ServerApp failed on an error that is not a GenoFed one: a bug on the coordinator."""


_ERRORS: dict[str, Callable[[str], GenoFedError]] = {
    "SiteFailure": RemoteSiteFailure,
    "HarmonizationError": HarmonizationError,
    "InputError": InputError,
    "ConfigError": InputError,
    "UnreachableError": UnreachableError,
    "InternalError": RemoteInternalError,
}


def remote_error(doc: dict[str, Any]) -> GenoFedError:
    """The error a failed ``genofed-result:`` line reports, as this side's exception."""
    message = str(doc.get("message", "unknown error"))
    if doc.get("error") == "TooFewSites":
        key = doc.get("key")
        return TooFewSites(message, key=str(key) if key else None)
    return _ERRORS.get(str(doc.get("error")), GenoFedError)(message)


#: Lines of Flower's output quoted when the coordinator cannot be reached.
_TAIL_LINES = 15

#: What to do when a submitted study lost its coordinator (the analyst's next step).
RERUN_ADVICE = (
    "  what to do: if the coordinator stopped, start it again (`genofed coordinator up`), "
    "wait until the sites are connected, then run the same study again with the same "
    "command; the sites answer every request they already answered from their stored "
    "releases, so nothing is charged twice and the results equal an uninterrupted run. "
    "If the coordinator is still running, the study may be too: check with `flwr list` "
    "(stop it with `flwr stop`) before you rerun."
)


def no_result_error(
    sub: Submission, lines: list[str], *, submitted: bool, last: list[Event]
) -> UnreachableError:
    """Why ``flwr run`` ended without a ``genofed-result:`` line, and what to do next.

    Not submitted: the coordinator cannot be reached. Submitted: the connection
    was lost mid-study (the SuperLink or its ServerApp died, or the network
    broke): say how far the study got, that nothing was written to
    ``--out``, and how to finish it (:data:`RERUN_ADVICE`).
    """
    shown = [ln for ln in lines if PROGRESS_PREFIX not in ln and RESULTS_PREFIX not in ln]
    tail = "\n".join(shown[-_TAIL_LINES:])
    if not submitted:
        return UnreachableError(
            f"cannot reach the coordinator's control API at {sub.superlink}:\n{tail}\n"
            "  fix: check --superlink HOST:PORT, that `genofed coordinator up` runs there, "
            "and that this machine can reach that port (and --ca-cert)"
        )
    if last:
        event = last[-1]
        names = ", ".join(str(a) for a in _as_list(event.get("analyses"))) or "variants"
        where = f" after round {event.get('round')} of {names}"
    else:
        where = " before its first round finished"
    return UnreachableError(
        f"the connection to the coordinator at {sub.superlink} was lost mid-study{where}; "
        f"no results were written to {sub.out}:\n{tail}\n{RERUN_ADVICE}"
    )


def _as_list(value: object) -> list[object]:
    return list(value) if isinstance(value, list | tuple) else []


def submit_study(
    sub: Submission,
    *,
    emit: Callable[[str], None] = print,
    on_event: EventFn | None = None,
    timeout_s: float = DEFAULT_STUDY_TIMEOUT_S,
    log_path: Path | None = None,
) -> DeployedOutcome:
    """Run ``sub`` on the federation; return the ServerApp's result or raise its error.

    ``on_event`` receives the ServerApp's study events (:mod:`genofed.coordinator.events`);
    ``emit`` every other line worth showing (the run's submission, a progress line
    that is not an event). Errors: :class:`UnreachableError` when the coordinator
    cannot be reached or the stream ends without a result, :class:`StudyTimeout`
    after ``timeout_s``, else the error the ServerApp reported.
    """
    if not sub.study_file.is_file():
        raise InputError("study file not found", path=sub.study_file)
    if sub.expected_sites < 1:
        raise InputError("--sites must be at least 1")
    check_out(sub.out, sub.overwrite)
    run_id = uuid.uuid4().hex[:16]
    started = time.monotonic()
    with flower_cli_home(sub.superlink, ca_cert=sub.ca_cert, insecure=sub.insecure) as home:
        app_dir = home / "app"
        app_dir.mkdir()
        (app_dir / "pyproject.toml").write_text(bundle_pyproject(), encoding="utf-8")
        overrides = {
            "study-text": sub.study_file.read_text(encoding="utf-8"),
            "study-suffix": sub.study_file.suffix,
            "out-dir": "",
            "return-results": True,
            "expected-sites": sub.expected_sites,
            "run-id": run_id,
            "overwrite": False,
            "connect-timeout": float(sub.connect_timeout_s),
            "site-timeout": float(sub.site_timeout_s),
        }
        run_config = home / "run-config.toml"
        run_config.write_text(tomli_w.dumps(overrides), encoding="utf-8")
        results: list[dict[str, Any]] = []
        parts = Reassembler()
        started_run: list[str] = []
        done_rounds: list[Event] = []  # the rounds the ServerApp reported finished

        def _translate(line: str) -> str | None:
            if parts.feed(line):
                return None
            if PROGRESS_PREFIX in line:
                text = line.split(PROGRESS_PREFIX, 1)[1]
                try:
                    event = event_from_json(json.loads(text))
                except ValueError:  # json.JSONDecodeError too: a plain progress line
                    return text
                if event.name == ROUND_DONE:
                    done_rounds.append(event)
                if on_event is not None:
                    on_event(event)
                return None
            if RESULT_PREFIX in line:
                results.append(json.loads(line.split(RESULT_PREFIX, 1)[1]))
                return None
            if "Successfully started run" in line:
                started_run.append(line)
                return f"submitted: flower {line.strip().lower().removeprefix('successfully ')}"
            return None

        argv = [
            flower_command("flwr"),
            "run",
            str(app_dir),
            CONNECTION,
            "--run-config",
            str(run_config),
            "--stream",
        ]
        child = start_child(
            "flwr-run",
            argv,
            env=flower_env(home),
            log_path=log_path,
            translate=_translate,
            emit=emit,
            cwd=home,  # never the caller's folder: Flower reads a pyproject.toml there
        )
        try:
            child.process.wait(timeout=timeout_s)
        except KeyboardInterrupt:
            child.stop(grace=2)
            raise
        except Exception:
            child.stop()
            raise StudyTimeout(
                f"the study did not finish within {timeout_s:.0f} s; it may still be running "
                "on the coordinator (flwr list / flwr stop)"
            ) from None
        finally:
            if child.relay is not None:
                child.relay.join(timeout=10)
    if not results:
        raise no_result_error(sub, child.lines, submitted=bool(started_run), last=done_rounds)
    doc = results[-1]
    if doc.get("status") != "ok":
        raise remote_error(doc)
    if doc.get("run_id") != run_id:
        raise GenoFedError("the coordinator reported a different run than the one submitted")
    doc["coordinator_out"] = doc.get("out")
    manifest = doc.get("results_archive")
    if isinstance(manifest, dict):
        unpack(parts.archive(manifest), sub.out, run_id=run_id, overwrite=sub.overwrite)
        doc["out"] = str(sub.out.resolve())
    else:
        doc["out"] = None  # too large to stream: only the coordinator's copy exists
    return DeployedOutcome(run_id=run_id, doc=doc, seconds=time.monotonic() - started)


__all__ = [
    "DEFAULT_STUDY_TIMEOUT_S",
    "RERUN_ADVICE",
    "DeployedOutcome",
    "RemoteInternalError",
    "RemoteSiteFailure",
    "Submission",
    "no_result_error",
    "submit_study",
]
