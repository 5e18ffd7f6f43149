"""``genofed-site``: hospital IT's and the privacy officer's command line.

``main`` holds the typer app and the site-directory commands; ``node``
(starting the SuperNode), ``admin`` (status, budget), ``approvals`` and
``audit`` add their command groups to it.

``app`` here is the console entry point that ``pyproject.toml`` names: the
Typer app of ``main`` behind :func:`genofed.site_agent.cli.main.main`, so that
no error reaches a person as a traceback. Tests drive ``main.app`` itself.
"""

from genofed.site_agent.cli.main import main as app

__all__ = ["app"]
