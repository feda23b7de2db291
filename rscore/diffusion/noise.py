"""Gaussian noise drawn per global pixel position (counter-based, numpy only).

A stochastic sampler must give the same result whatever the tile size. So the noise at a pixel is a pure
function of (seed, stream, band, global row, global col): a counter-based generator (splitmix64 mixing of
the coordinates, then Box-Muller) instead of a sequential RNG whose state depends on tile order.
"""

from __future__ import annotations

import numpy as np

_U64 = np.uint64
_GOLDEN = _U64(0x9E3779B97F4A7C15)
_M1 = _U64(0xBF58476D1CE4E5B9)
_M2 = _U64(0x94D049BB133111EB)
_OFFSET = 1 << 40  # makes negative coordinates (padding outside the raster) non-negative


def _mix64(z: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on a uint64 array (wrapping arithmetic)."""
    z = (z ^ (z >> _U64(30))) * _M1
    z = (z ^ (z >> _U64(27))) * _M2
    return z ^ (z >> _U64(31))


def _key(seed: int, stream: int, band: int) -> np.uint64:
    with np.errstate(over="ignore"):
        k = _mix64(np.array([(seed * 0x632BE59BD9B4E019 + 0x1234567) & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))
        k = _mix64(k + _U64((stream + _OFFSET) & 0xFFFFFFFFFFFFFFFF) * _GOLDEN)
        k = _mix64(k + _U64(band + 1) * _M1)
    return k[0]


def gaussian_field(
    seed: int,
    stream: int,
    bands: int,
    row_off: int,
    col_off: int,
    rows: int,
    cols: int,
) -> np.ndarray:
    """Standard normal noise for a window of a global pixel grid.

    Args:
        seed: user seed (any int).
        stream: independent stream index (e.g. -1 for the initial state, k for sampling step k; callers
            offset it per sample when drawing several samples).
        bands: number of bands.
        row_off: global row of the window's first row (may be negative: padding outside the raster).
        col_off: global column of the window's first column (may be negative).
        rows: window height in pixels.
        cols: window width in pixels.

    Returns:
        float32 array (bands, rows, cols); the value at a global position does not depend on the window.
    """
    r = (np.arange(rows, dtype=np.int64) + (row_off + _OFFSET)).astype(np.uint64)
    c = (np.arange(cols, dtype=np.int64) + (col_off + _OFFSET)).astype(np.uint64)
    out = np.empty((bands, rows, cols), dtype=np.float32)
    with np.errstate(over="ignore"):
        rh = _mix64(r * _GOLDEN)[:, None]
        for b in range(bands):
            h1 = _mix64((rh + _key(seed, stream, b)) ^ (c * _M2)[None, :])
            h2 = _mix64(h1 ^ _GOLDEN)
            # 53-bit uniforms in (0, 1): Box-Muller needs u1 > 0.
            u1 = ((h1 >> _U64(11)).astype(np.float64) + 0.5) * (1.0 / 9007199254740992.0)
            u2 = (h2 >> _U64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)
            out[b] = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
    return out
