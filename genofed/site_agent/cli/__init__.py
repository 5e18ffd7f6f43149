"""``genofed-site``: hospital IT's and the privacy officer's command line.

``main`` holds the typer app and the site-directory commands; ``node``
(starting the SuperNode), ``admin`` (status, budget), ``approvals`` and
``audit`` add their command groups to it.
"""

from genofed.site_agent.cli.main import app

__all__ = ["app"]
