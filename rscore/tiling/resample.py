"""Resampling between the input and output grids in global pixel coordinates.

Output pixel j (global) samples the input at u = (j + 0.5) / scale - 0.5 (pixel centres), with taps clamped
to the *raster* (not the tile), so a tile reproduces exactly what resampling the whole raster would give.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from rscore.tiling.grid import Window

ResampleMethod = Literal["nearest", "bilinear", "bicubic"]

#: input pixels of support each method needs on each side of the mapped window
SUPPORT_PX: dict[str, int] = {"nearest": 1, "bilinear": 1, "bicubic": 2}


def _keys_cubic(d: np.ndarray, a: float = -0.5) -> np.ndarray:
    d = np.abs(d)
    return np.where(
        d <= 1,
        (a + 2) * d**3 - (a + 3) * d**2 + 1,
        np.where(d < 2, a * d**3 - 5 * a * d**2 + 8 * a * d - 4 * a, 0.0),
    )


def _axis_taps(out_off: int, out_len: int, src_off: int, src_len: int, total_in: int, scale: float,
               method: ResampleMethod) -> list[tuple[np.ndarray, np.ndarray]]:
    """(local source index, weight) per tap for output pixels out_off..out_off+out_len along one axis."""
    j = np.arange(out_off, out_off + out_len, dtype=np.float64)
    if method == "nearest":
        taps = [(np.floor((j + 0.5) / scale).astype(np.int64), np.ones(out_len))]
    else:
        u = (j + 0.5) / scale - 0.5
        base = np.floor(u).astype(np.int64)
        if method == "bilinear":
            frac = u - base
            taps = [(base, 1.0 - frac), (base + 1, frac)]
        elif method == "bicubic":
            taps = [(base + k, _keys_cubic(u - (base + k))) for k in (-1, 0, 1, 2)]
        else:
            raise ValueError(f"unknown resampling method {method!r}; use nearest, bilinear or bicubic")
    out = []
    for idx, w in taps:
        local = np.clip(idx, 0, total_in - 1) - src_off
        if local.min() < 0 or local.max() >= src_len:
            raise ValueError("source window does not cover the resampling support (engine bug)")
        out.append((local, w))
    return out


def _apply_taps(a: np.ndarray, taps: list[tuple[np.ndarray, np.ndarray]], axis: int) -> np.ndarray:
    # Tap by tap in a fixed order: every output pixel gets the same arithmetic whatever the window, so a
    # tile is bit-identical to the same pixels of the whole raster.
    shape = [1, 1, 1]
    shape[axis] = -1
    out = None
    for idx, w in taps:
        term = np.take(a, idx, axis=axis) * w.reshape(shape)
        out = term if out is None else out + term
    assert out is not None
    return out


def resample_window(
    src: np.ndarray,
    src_win: Window,
    in_rows: int,
    in_cols: int,
    scale_factor: float,
    out_win: Window,
    method: ResampleMethod = "bicubic",
) -> np.ndarray:
    """Resample a tile of the input grid to a window of the output grid.

    Args:
        src: float array (bands, src_win.rows, src_win.cols).
        src_win: where ``src`` lies on the input grid (must cover the support, see
            :meth:`rscore.tiling.grid.OutputGrid.input_window_for`).
        in_rows, in_cols: input raster size in pixels.
        scale_factor: output pixels per input pixel.
        out_win: requested window of the output grid.
        method: interpolation kernel.

    Returns:
        float32 array (bands, out_win.rows, out_win.cols).
    """
    if math.isclose(scale_factor, 1.0, rel_tol=0.0, abs_tol=1e-12) and method != "nearest":
        r, c = out_win.slices(src_win)
        return np.ascontiguousarray(src[:, r, c], dtype=np.float32)
    tr = _axis_taps(out_win.row_off, out_win.rows, src_win.row_off, src_win.rows, in_rows, scale_factor, method)
    tc = _axis_taps(out_win.col_off, out_win.cols, src_win.col_off, src_win.cols, in_cols, scale_factor, method)
    out = _apply_taps(_apply_taps(src.astype(np.float64), tr, axis=1), tc, axis=2)
    return out.astype(np.float32)
