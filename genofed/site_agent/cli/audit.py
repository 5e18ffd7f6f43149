"""``genofed-site audit``: the privacy officer's commands for the site's audit log.

* ``audit export SITE_DIR --out DIR``: a portable copy (entries, checkpoints, public key).
* ``audit verify PATH``: offline verification of a site directory or an export.
* ``audit show PATH``: the entries as a table (or ``--json``), with filters.
* ``audit init SITE_DIR``: a new audit key and log for a site directory made
  before GenoFed kept one (``genofed-site init`` does this for new sites).

Exit codes (as for the rest of ``genofed-site``, plus one):

* ``0`` (EXIT_OK): success; for ``verify``, the log verifies.
* ``1`` (EXIT_UNEXPECTED): an unexpected error (a bug): one line names the file
  holding its traceback (in the temporary folder); please report it with that file.
* ``2`` (EXIT_INPUT): bad input: a missing file or directory, a malformed key
  or saved checkpoint; the message says what and where.
* ``3`` (EXIT_AUDIT_FAILED): ``verify`` found the log changed, cut short or
  not signed by the key; each problem names the line, entry or checkpoint.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from genofed.common.checkpoint import Checkpoint, checkpoint_from_json, checkpoint_to_json
from genofed.common.errors import InputError, IntegrityError
from genofed.common.messages import AuditEntry, AuditKind
from genofed.common.wire.proto import audit_entry_from_bytes
from genofed.site_agent.audit.log import (
    DECISION_APPROVED,
    DECISION_ERROR,
    DECISION_REFUSED,
    AuditPaths,
    canonical_json,
    entry_to_json,
    export_log,
    init_audit,
)
from genofed.site_agent.audit.verify import LogFiles, Verification, load_log_files, verify_path
from genofed.site_agent.cli.admin import agent_for
from genofed.site_agent.cli.exits import (
    EXIT_AUDIT_FAILED,
    EXIT_INPUT,
    EXIT_OK,
    EXIT_UNEXPECTED,
    console,
    run_guarded,
)
from genofed.site_agent.sitedir import SITE_CONFIG

#: What to do when a log does not verify.
_VERIFY_FIX = (
    "this copy is not the log the site signed (or --pubkey is not the site's key): export "
    "the log again (genofed-site audit export SITE_DIR --out DIR) and verify that copy; if "
    "the site's own log fails too, keep both and tell the site's privacy officer"
)
#: Problems printed before "... and N more".
MAX_PROBLEMS_SHOWN = 20

log = logging.getLogger("genofed.site")
app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="The site's audit log: export, verify offline, show.",
)
_DECISIONS = (DECISION_APPROVED, DECISION_REFUSED, DECISION_ERROR)
_KINDS = {
    AuditKind.REQUEST: "request",
    AuditKind.DECISION: "decision",
    AuditKind.REFUSAL: "refusal",
    AuditKind.RELEASE: "release",
}


@app.command("init")
def init_cmd(
    site_dir: Annotated[Path, typer.Argument(help="Site directory holding site.toml.")],
) -> None:
    """Create the audit key and an empty, signed log for an existing site directory.

    Refuses if the site already has a key or log. Give the printed public key
    file to your privacy officer.

    Example:

        genofed-site audit init site-a
    """

    def action() -> None:
        if not (site_dir / SITE_CONFIG).is_file():
            raise InputError(
                "not a site directory (no site.toml)",
                path=site_dir,
                hint="create one with: genofed-site init --name NAME --genotypes X.bed --out DIR",
            )
        init_audit(site_dir)

    run_guarded(action)
    console().print(f"Audit log created. Public key: {escape(str(AuditPaths.of(site_dir).pub))}")


@app.command("export")
def export_cmd(
    site_dir: Annotated[Path, typer.Argument(help="Site directory.")],
    out: Annotated[Path, typer.Option(help="New directory for the export.")],
) -> None:
    """Write a portable copy of the log: entries.jsonl, checkpoints.jsonl, audit.pub.

    Example:

        genofed-site audit export site-a --out audit-2026-05
    """
    snapshot = run_guarded(lambda: export_log(site_dir, out))
    console().print(
        f"Exported {len(snapshot.leaves)} entries and {len(snapshot.checkpoints)} checkpoints "
        f"to {escape(str(out))}."
    )


def _read_checkpoint(path: Path) -> Checkpoint:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError("file not found", path=path) from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(
            "not JSON", path=path, hint="pass a file written by `audit verify --save-checkpoint`"
        ) from exc
    return checkpoint_from_json(doc, path=path)


def _read_key(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(
            f"cannot read the public key ({exc.strerror or exc})",
            path=path,
            hint="pass the site's audit.pub as you received it",
        ) from exc


def _save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(checkpoint_to_json(checkpoint), indent=2) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        raise InputError(f"cannot write ({exc.strerror or exc})", path=path) from exc
    finally:
        tmp.unlink(missing_ok=True)


def _verification_json(result: Verification) -> str:
    latest = checkpoint_to_json(result.latest) if result.latest else None
    return json.dumps(
        {
            "ok": result.ok,
            "problems": list(result.problems),
            "n_entries": result.n_entries,
            "n_checkpoints": result.n_checkpoints,
            "key_id": result.key_id,
            "latest_checkpoint": latest,
        },
        indent=2,
    )


@app.command("verify")
def verify_cmd(
    path: Annotated[Path, typer.Argument(help="Site directory or audit export.")],
    pubkey: Annotated[
        Path | None,
        typer.Option(help="The site's public key as you hold it (default: the one in PATH)."),
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="A checkpoint you saved earlier: the log must extend it."),
    ] = None,
    save_checkpoint: Annotated[
        Path | None,
        typer.Option(help="If the log verifies, write its latest checkpoint here."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Verify the log offline: every entry, every checkpoint signature, and the saved checkpoint.

    Exits 3 if anything does not verify, naming each line, entry or checkpoint.
    Without --pubkey the key stored with the log is used, which proves only
    that the log is self-consistent: pass the key you hold.

    Example:

        genofed-site audit verify audit-2026-05 --pubkey site-a-audit.pub \\
            --checkpoint saved.json --save-checkpoint saved.json
    """
    saved = run_guarded(lambda: _read_checkpoint(checkpoint)) if checkpoint else None
    key = run_guarded(lambda: _read_key(pubkey)) if pubkey else None
    result = run_guarded(lambda: verify_path(path, public_key_pem=key, saved=saved))
    out = console()
    if as_json:
        out.print_json(_verification_json(result))
    elif result.ok:
        latest = result.latest
        assert latest is not None  # ok implies at least one checkpoint
        out.print(
            f"[bold green]verified:[/] {result.n_entries} entries, {result.n_checkpoints} "
            f"signed checkpoints, key {result.key_id}"
            + ("" if pubkey else " [yellow](the key stored with the log)[/]")
        )
        out.print(
            f"latest checkpoint: tree size {latest.tree_size}, root {latest.root_hash.hex()}, "
            f"{latest.time}"
        )
        if saved is not None:
            out.print(f"extends the saved checkpoint of tree size {saved.tree_size}")
    else:
        err = console(stderr=True)
        err.print(
            f"[bold red]the audit log at {escape(str(path))} does NOT verify[/] "
            f"({len(result.problems)} problem(s)):"
        )
        for problem in result.problems[:MAX_PROBLEMS_SHOWN]:
            err.print(f"  [red]- {escape(problem)}[/]")
        if len(result.problems) > MAX_PROBLEMS_SHOWN:
            err.print(f"  ... and {len(result.problems) - MAX_PROBLEMS_SHOWN} more")
        err.print(f"  fix: {escape(_VERIFY_FIX)}")
    if not result.ok:
        raise typer.Exit(EXIT_AUDIT_FAILED)
    if save_checkpoint is not None and result.latest is not None:
        latest = result.latest
        run_guarded(lambda: _save_checkpoint(save_checkpoint, latest))


def _entries(files: LogFiles) -> list[AuditEntry]:
    """The entries of a log, for display (not verified: that is ``audit verify``)."""
    entries = []
    for number, line in enumerate(files.entries.decode("ascii", "replace").splitlines(), 1):
        try:
            entry = audit_entry_from_bytes(_leaf_bytes(line))
        except (ValueError, KeyError, TypeError, IntegrityError):
            log.warning("entries line %d is unreadable; run `genofed-site audit verify`", number)
            continue
        entries.append(entry)
    return entries


def _shown_entries(path: Path) -> list[AuditEntry]:
    """From the running agent when it serves this site directory, else from the files."""
    if (path / SITE_CONFIG).is_file():
        client = agent_for(path)
        if client is not None:
            with client:
                return client.audit_entries()
    return _entries(load_log_files(path))


def _leaf_bytes(line: str) -> bytes:
    return base64.b64decode(json.loads(line)["leaf"], validate=True)


def _since(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InputError(
            f"--since {text!r} is not a date", hint="give a date like 2026-05-01"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _at_or_after(time: str, start: datetime) -> bool:
    try:
        return datetime.fromisoformat(time) >= start
    except ValueError:
        return True  # an unreadable time is shown, not hidden; `audit verify` reports it


def _details(entry: AuditEntry) -> str:
    if entry.kind == AuditKind.RELEASE:
        return ", ".join(
            f"{a.name} {a.dtype}[{'×'.join(str(d) for d in a.shape)}] {a.sha256[:12]}"
            for a in entry.arrays
        )
    if entry.kind == AuditKind.REQUEST:
        return f"{entry.request_kind} (step {entry.step}, round {entry.round})"
    return entry.reason


@app.command("show")
def show_cmd(
    path: Annotated[Path, typer.Argument(help="Site directory or audit export.")],
    study: Annotated[
        str | None, typer.Option(help="Only this study (its SHA-256, or a prefix of it).")
    ] = None,
    decision: Annotated[
        str | None, typer.Option(help="Only this decision: approved, refused or error.")
    ] = None,
    kind: Annotated[
        str | None, typer.Option(help="Only this kind: request, refusal or release.")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only entries at or after this date (ISO, UTC).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the entries as JSON.")] = False,
) -> None:
    """List the log's entries: what was asked, refused and released, and when.

    This does not verify the log; run `genofed-site audit verify` for that.
    For a site directory served by a running agent, the entries come from its
    SiteAdmin service; otherwise they are read from the files.

    Example:

        genofed-site audit show site-a --decision refused --since 2026-05-01
    """

    def select() -> list[AuditEntry]:
        for option, value, allowed in (
            ("--decision", decision, _DECISIONS),
            ("--kind", kind, tuple(_KINDS.values())),
        ):
            if value is not None and value not in allowed:
                raise InputError(
                    f"{option} {value!r} is not one of: {', '.join(allowed)}",
                    hint=f"e.g. {option} {allowed[0]}",
                )
        start = _since(since) if since else None
        chosen = []
        for entry in _shown_entries(path):
            if study and not entry.study_sha256.startswith(study.lower()):
                continue
            if decision and entry.decision != decision:
                continue
            if kind and _KINDS.get(entry.kind, "") != kind:
                continue
            if start and not _at_or_after(entry.time, start):
                continue
            chosen.append(entry)
        return chosen

    entries = run_guarded(select)
    out = console()
    if as_json:
        out.print_json(canonical_json([entry_to_json(e) for e in entries]))
        return
    table = Table(title=f"audit log {escape(str(path))} ({len(entries)} entries shown)")
    for column in ("#", "time (UTC)", "kind", "decision", "study", "analysis", "run", "details"):
        table.add_column(column, overflow="fold")
    table.add_column("ε", justify="right")
    for e in entries:
        table.add_row(
            str(e.index),
            escape(e.time[:19].replace("T", " ")),
            _KINDS.get(e.kind, "?"),
            escape(e.decision),
            escape(e.study_sha256[:12]),
            escape(e.analysis_id),
            escape(e.run_id),
            escape(_details(e)),
            f"{e.epsilon:g}" if e.kind == AuditKind.RELEASE else "",
        )
    out.print(table)


__all__ = ["EXIT_AUDIT_FAILED", "EXIT_INPUT", "EXIT_OK", "EXIT_UNEXPECTED", "app"]
