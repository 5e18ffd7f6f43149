"""``genofed certs`` / ``genofed coordinator`` / ``genofed app-hash``: deployment commands.

A composition root beside :mod:`genofed.cli.analyst`, which mounts these Typer apps;
it imports the coordinator side only. Errors and exit codes are those of
:mod:`genofed.cli.analyst` (:mod:`genofed.cli.exits`).

Examples::

    genofed certs init --out certs --coordinator-host coord.example.org --sites a,b,c
    genofed coordinator up --config coordinator.toml
    genofed coordinator register-site site-a certs/sites/a/node.pub --config coordinator.toml
    genofed app-hash
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from genofed.cli.exits import EXIT_OK, cli_errors
from genofed.cli.failures import EXIT_UNREACHABLE, run_errors
from genofed.common.appbundle import bundle_hash
from genofed.common.pki import init_pki

certs_app = typer.Typer(no_args_is_help=True, help="Make the consortium's TLS and node keys.")
coordinator_app = typer.Typer(
    no_args_is_help=True, help="Run the coordinator: a Flower SuperLink with TLS and node auth."
)

#: Paths and names are printed as written: no markup, no emoji codes.
_out = Console(markup=False, emoji=False, highlight=False)
_err = Console(stderr=True, emoji=False)


@contextmanager
def _guard() -> Iterator[None]:
    """The command line's error mapping (:func:`genofed.cli.exits.cli_errors`).

    With :func:`genofed.cli.failures.run_errors` inside it: an unreachable
    coordinator exits 6, not 2.
    """
    with cli_errors(), run_errors():
        yield


def _say(line: str) -> None:
    style = "bold red" if line.startswith(("WARNING", "[coordinator] WARNING")) else None
    _err.print(line, style=style, highlight=False, markup=False, soft_wrap=True)


@certs_app.command("init")
def certs_init(
    out: Annotated[Path, typer.Option(help="directory for the keys (created)")],
    coordinator_host: Annotated[
        str, typer.Option(help="DNS name or IP address the sites use to reach the coordinator")
    ],
    sites: Annotated[str, typer.Option(help="comma-separated site names, e.g. a,b,c")] = "",
) -> None:
    """Create a CA, the coordinator's TLS certificate and one node key pair per site.

    Private keys are written owner-only (0600); nothing existing is overwritten.

    Example: genofed certs init --out certs --coordinator-host 10.0.0.5 --sites a,b,c
    """
    names = [s.strip() for s in sites.split(",") if s.strip()]
    with _guard():
        paths = init_pki(out, coordinator_host=coordinator_host, sites=names)
    _out.print(f"CA certificate (give to every site): {paths.ca_cert}")
    _out.print(f"CA private key (keep offline):       {paths.ca_key}")
    _out.print(f"coordinator TLS certificate:         {paths.server_cert} (SAN {coordinator_host})")
    _out.print(f"coordinator TLS key:                 {paths.server_key}")
    for name, (private, public) in paths.node_keys.items():
        _out.print(f"site {name}: node key {private} (give to the site), public key {public}")


@coordinator_app.command("up")
def coordinator_up(
    config: Annotated[
        Path,
        typer.Option(help="coordinator.toml (the paths in it are relative to its folder)"),
    ],
    insecure: Annotated[
        bool, typer.Option("--insecure", help="PLAINTEXT, no node auth: test setups only")
    ] = False,
) -> None:
    """Start the SuperLink (gRPC Fleet API, TLS, SuperNode auth) until SIGTERM or Ctrl-C.

    Prints one line per event: a site connected, disconnected or reconnected
    (with UTC times, by its registered name), run started, reply received.

    Example: genofed coordinator up --config coordinator.toml
    """
    from genofed.coordinator.deploy.superlink import load_coordinator_config, run_coordinator

    with _guard():
        code = run_coordinator(load_coordinator_config(config), insecure=insecure, emit=_say)
    # stopped by SIGTERM or Ctrl-C: 0; the SuperLink ended by itself (its log says why): 6
    raise typer.Exit(EXIT_OK if code == 0 else EXIT_UNREACHABLE)


@coordinator_app.command("register-site")
def coordinator_register_site(
    name: Annotated[str, typer.Argument(help="site name")],
    pubkey: Annotated[Path, typer.Argument(help="the site's node.pub")],
    config: Annotated[Path, typer.Option(help="coordinator.toml")] = Path("coordinator.toml"),
    insecure: Annotated[bool, typer.Option("--insecure", help="plaintext Control API")] = False,
) -> None:
    """Allow a site's node key to connect to the running coordinator.

    Example: genofed coordinator register-site site-a certs/sites/a/node.pub
    """
    from genofed.coordinator.deploy.superlink import load_coordinator_config, register_site

    with _guard():
        node_id = register_site(load_coordinator_config(config), name, pubkey, insecure=insecure)
    _out.print(f"registered site {name}: node {node_id}")


def app_hash() -> None:
    """Print the SHA-256 of this GenoFed version's app bundle (for allowed_app_hashes).

    Example: genofed app-hash
    """
    _out.print(bundle_hash(), highlight=False)


def iter_apps() -> Iterator[tuple[typer.Typer, str]]:
    yield certs_app, "certs"
    yield coordinator_app, "coordinator"


__all__ = ["app_hash", "certs_app", "coordinator_app", "iter_apps"]
