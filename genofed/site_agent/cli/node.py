"""``genofed-site up`` and ``genofed-site app-hash``: connect this site to the coordinator.

Mounted on ``genofed-site`` (:mod:`genofed.site_agent.cli.main`); exit codes are
that command's: 0 stopped on request (SIGTERM / Ctrl-C), 1 unexpected error,
2 bad input (missing key or certificate, plaintext without ``--insecure``),
and otherwise the SuperNode's own exit code when it stopped by itself (Flower
exits 305 when the coordinator refuses the node key).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from genofed.common.appbundle import bundle_hash
from genofed.site_agent.admin import DEFAULT_ADMIN_ADDRESS
from genofed.site_agent.cli.exits import console, run_guarded


def up(
    directory: Annotated[Path, typer.Argument(help="Site directory holding site.toml.")],
    superlink: Annotated[str, typer.Option(help="The coordinator's Fleet API, HOST:PORT (gRPC).")],
    ca_cert: Annotated[
        Path | None, typer.Option(help="The consortium CA certificate (ca.pem).")
    ] = None,
    node_key: Annotated[
        Path | None, typer.Option(help="This site's node private key (node.key).")
    ] = None,
    runtime_port: Annotated[
        int,
        typer.Option(
            help="Local port (127.0.0.1) of the SuperNode's runtime API, for the app gate; "
            "each site agent on a host needs its own. 0: any free port."
        ),
    ] = 0,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="PLAINTEXT, no node auth: test setups only.")
    ] = False,
    admin_address: Annotated[
        str,
        typer.Option(
            help="Local address of the SiteAdmin service: 127.0.0.1:PORT (0: any free port), "
            "[::1]:PORT or unix:/path. Non-loopback addresses are refused."
        ),
    ] = DEFAULT_ADMIN_ADDRESS,
) -> None:
    """Start this site's Flower SuperNode and app gate until SIGTERM or Ctrl-C.

    Connects out to the coordinator (no inbound port), with TLS and this site's
    node key, and runs only app bundles listed in policy.toml
    (allowed_app_hashes). Prints one line per request and reply ("reply sent",
    or "refused (CODE): why"), and when it connected, lost the coordinator and
    reconnected, with UTC times. Several site agents on one host each take a
    free runtime port unless --runtime-port names one. Serves the
    read-only SiteAdmin service on a local address (--admin-address) for
    `genofed-site status`, `budget`, `studies` and `audit show`.

    Example:

        genofed-site up site-a --superlink coord.example.org:9092 \\
            --ca-cert certs/ca.pem --node-key certs/sites/a/node.key
    """
    from genofed.site_agent.node.supernode import NodeOptions, run_site_node

    err = console(stderr=True)

    def emit(line: str) -> None:
        style = "bold red" if ("WARNING" in line or "REFUSED" in line) else None
        err.print(line, style=style, highlight=False, markup=False)

    opts = NodeOptions(
        site_dir=directory,
        superlink=superlink,
        ca_cert=ca_cert,
        node_key=node_key,
        insecure=insecure,
        runtime_port=runtime_port,
        admin_address=admin_address,
    )
    code = run_guarded(lambda: run_site_node(opts, emit=emit))
    raise typer.Exit(code)


def app_hash() -> None:
    """Print the SHA-256 of this GenoFed version's app bundle (for allowed_app_hashes).

    Example:

        genofed-site app-hash
    """
    console().print(bundle_hash(), highlight=False)


__all__ = ["app_hash", "up"]
