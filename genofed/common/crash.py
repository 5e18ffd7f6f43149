"""What a command line does with an error it did not expect: one line, and a file with the trace.

A person running ``genofed`` or ``genofed-site`` never sees a Python
traceback. An unexpected exception (a bug) prints one line naming the
exception and the file that holds its full traceback, which the person can
attach to a bug report; the file is written to the system's temporary folder
(``$TMPDIR``, else ``/tmp``), because the site or results directory may be the
very thing that could not be written.
"""

from __future__ import annotations

import os
import sys
import tempfile
import traceback
from datetime import UTC, datetime
from pathlib import Path

from genofed import __version__

#: Longest exception text kept in the one line (the file has all of it).
MAX_SUMMARY = 300


def write_crash_log(exc: BaseException, *, program: str) -> Path | None:
    """Write ``exc``'s traceback to a new file; its path, or None if none could be written."""
    text = "".join(traceback.format_exception(exc))
    head = (
        f"{program} {__version__} at {datetime.now(UTC).isoformat(timespec='seconds')}\n"
        f"command: {' '.join(sys.argv)}\n\n"
    )
    try:
        fd, name = tempfile.mkstemp(prefix=f"{program}-error-", suffix=".log")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(head + text)
    except OSError:
        return None
    return Path(name)


def unexpected_error_line(exc: BaseException, log_file: Path | None) -> str:
    """The one line that tells a person about an unexpected error."""
    summary = " ".join(repr(exc).split())
    if len(summary) > MAX_SUMMARY:
        summary = summary[: MAX_SUMMARY - 3] + "..."
    where = (
        f"the full traceback is in {log_file}"
        if log_file is not None
        else "the traceback could not be written to a file"
    )
    return f"unexpected error: {summary} ({where}; please report this)"


__all__ = ["unexpected_error_line", "write_crash_log"]
