"""Checks shared by the summable forms (:mod:`genofed.common.wire.summable`) of every analysis.

A form reads one site's reply; a reply that lacks an array, or holds it in
another shape or dtype than the request fixes, is refused with a
``ValueError`` naming the array, which the coordinator reports as the
site's ``BAD_REPLY`` (and a site reports about its own reply before masking).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def checked_array(
    reply: Mapping[str, np.ndarray], name: str, shape: tuple[int, ...], kinds: str
) -> np.ndarray:
    """``reply[name]``, which must have ``shape`` and a dtype of one of ``kinds``."""
    got = reply.get(name)
    if got is None:
        raise ValueError(f"{name} is missing")
    if got.shape != shape or got.dtype.kind not in kinds:
        raise ValueError(f"{name} must have shape {shape}, not {got.shape} ({got.dtype})")
    return got


__all__ = ["checked_array"]
