"""The analyst's and the coordinator operator's command line (``genofed``).

A composition root: it may import both sides. ``analyst`` holds the study,
demo and synth commands; ``deploy`` the coordinator's deployment commands.
"""

from genofed.cli.analyst import app, main

__all__ = ["app", "main"]
