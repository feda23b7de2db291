"""Smooth blending weights for overlapping tiles.

A tile's weight rises as sin^2 over the part it shares with a neighbour and is 1 elsewhere, including at
raster edges (no neighbour: no taper, no division by a vanishing weight sum). Where two tiles overlap by
exactly the ramp length the two ramps sum to 1 (sin^2 + cos^2); elsewhere the engine divides by the
accumulated weight, so any overlap is seamless.
"""

from __future__ import annotations

import numpy as np

from rscore.tiling.grid import Window


def _ramp(length_px: int) -> np.ndarray:
    i = np.arange(length_px, dtype=np.float64)
    return np.sin(0.5 * np.pi * (i + 0.5) / length_px) ** 2


def _axis_weights(off: int, size: int, total: int, starts: tuple[int, ...], tile_px: int) -> np.ndarray:
    w = np.ones(size, dtype=np.float64)
    end = off + size
    # overlap with the previous tile along this axis
    prev = [s for s in starts if s < off]
    if prev:
        n = min(prev[-1] + min(tile_px, total) - off, size)
        if n > 0:
            w[:n] = np.minimum(w[:n], _ramp(n))
    nxt = [s for s in starts if s > off]
    if nxt:
        n = min(end - nxt[0], size)
        if n > 0:
            w[size - n :] = np.minimum(w[size - n :], _ramp(n)[::-1])
    return w


def blend_weights(core: Window, grid_rows: int, grid_cols: int, row_starts: tuple[int, ...],
                  col_starts: tuple[int, ...], tile_px: int) -> np.ndarray:
    """Weights (float64, rows x cols of ``core``), > 0 everywhere, tapering only towards neighbours."""
    wr = _axis_weights(core.row_off, core.rows, grid_rows, row_starts, tile_px)
    wc = _axis_weights(core.col_off, core.cols, grid_cols, col_starts, tile_px)
    return wr[:, None] * wc[None, :]
