"""matplotlib for the result plots, imported only when a plot is drawn.

matplotlib is the ``genofed[plot]`` extra, so that a site agent's install does
not carry it; the coordinator needs it for the analyses that draw plots
(:data:`genofed.coordinator.protocols.PROTOCOLS` says which), and the runner
calls :func:`require_matplotlib` before the first round so that a study never
fails after the sites have released (and spent budget) for it.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from genofed.common.errors import GenoFedError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: What to install for the plots.
PLOT_EXTRA = "genofed[plot]"


def require_matplotlib(what: str) -> None:
    """Raise :class:`GenoFedError` naming ``what`` needs plots if matplotlib is not installed."""
    if importlib.util.find_spec("matplotlib") is None:
        raise GenoFedError(
            f"{what} draw plots, which need matplotlib, and it is not installed\n"
            f"  fix: pip install '{PLOT_EXTRA}' on this machine, then run the study again"
        )


def figure(figsize: tuple[float, float]) -> Figure:
    """A new matplotlib figure, not bound to any display."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def save_png(fig: Figure, path: Path, *, dpi: int = 110) -> None:
    """Render ``fig`` to ``path`` through a temporary file and a rename (Agg canvas)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, format="png", dpi=dpi)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


__all__ = ["PLOT_EXTRA", "figure", "require_matplotlib", "save_png"]
