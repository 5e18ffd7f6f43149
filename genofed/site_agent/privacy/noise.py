"""Noise for releases: OpenDP's discrete Gaussian for integer arrays.

OpenDP's samplers draw from the operating system's secure randomness and
are exact (no floating-point sampling of a rounded continuous variate), which
is what DESIGN.md asks of noise that protects privacy; ``np.random`` is never
used here. The sampler is a parameter so that tests can check the
distribution and callers can substitute a vetted alternative.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import opendp.prelude as dp

IntSampler = Callable[[np.ndarray, float], np.ndarray]

dp.enable_features("contrib")


def opendp_discrete_gaussian(values: np.ndarray, scale: float) -> np.ndarray:
    """``values`` plus discrete Gaussian noise of scale ``scale`` (OpenDP, secure RNG)."""
    flat = np.ascontiguousarray(values, dtype=np.int64).ravel()
    if flat.size == 0:
        return flat.reshape(values.shape)
    space = dp.vector_domain(dp.atom_domain(T=int)), dp.l2_distance(T=int)
    mechanism = dp.m.make_gaussian(*space, scale=float(scale))
    noisy = np.asarray(mechanism(flat.tolist()), dtype=np.int64)
    return noisy.reshape(values.shape)


def add_discrete_gaussian(
    values: np.ndarray, scale: float, sampler: IntSampler = opendp_discrete_gaussian
) -> np.ndarray:
    """Integer ``values`` with discrete Gaussian noise; scale 0 returns them unchanged."""
    if scale < 0:
        raise ValueError("noise scale must be >= 0")
    if scale == 0:
        return np.asarray(values, dtype=np.int64).copy()
    return sampler(np.asarray(values, dtype=np.int64), scale)


__all__ = ["IntSampler", "add_discrete_gaussian", "opendp_discrete_gaussian"]
