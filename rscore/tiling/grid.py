"""Tile windows on the output grid and the input windows they need.

Vocabulary (all sizes in pixels):

* *input grid*: the raster the user gives, ``in_rows x in_cols``.
* *output grid* (the work grid, where sampling runs): ``round(in * scale_factor)``; equal to the input grid
  for restoration (scale 1), finer for super-resolution. Pixel (j) of the output grid has its centre at input
  coordinate ``(j + 0.5) / scale_factor`` (pixel-corner convention, same origin).
* *core window*: the part of the output a tile is responsible for; core windows overlap by ``overlap_px``
  and are blended there.
* *work window*: the core window grown by the network's receptive margin, snapped to the network's size
  multiple in global coordinates (see :meth:`rscore.runtime.engine.TiledRunner._run_tile`); the part
  outside the raster is filled by reflection, so every tiling gives every pixel the same context.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    """A rectangle of a pixel grid: rows [row_off, row_off + rows), cols [col_off, col_off + cols)."""

    row_off: int
    col_off: int
    rows: int
    cols: int

    @property
    def row_end(self) -> int:
        return self.row_off + self.rows

    @property
    def col_end(self) -> int:
        return self.col_off + self.cols

    def slices(self, origin: Window | None = None) -> tuple[slice, slice]:
        """Slices of this window inside an array that covers ``origin`` (default: the full grid)."""
        r0 = self.row_off - (origin.row_off if origin else 0)
        c0 = self.col_off - (origin.col_off if origin else 0)
        return slice(r0, r0 + self.rows), slice(c0, c0 + self.cols)


@dataclass(frozen=True)
class OutputGrid:
    """Shape of the output grid for an input shape and a real scale factor.

    Attributes:
        in_rows, in_cols: input raster size in pixels.
        scale_factor: output pixels per input pixel along each axis (> 0; 1 for restoration).
    """

    in_rows: int
    in_cols: int
    scale_factor: float = 1.0

    def __post_init__(self) -> None:
        if self.in_rows < 1 or self.in_cols < 1:
            raise ValueError(f"raster must have at least one pixel, got {self.in_rows} x {self.in_cols}")
        if not self.scale_factor > 0:
            raise ValueError(f"scale factor must be > 0, got {self.scale_factor}")

    @property
    def rows(self) -> int:
        return max(1, int(round(self.in_rows * self.scale_factor)))

    @property
    def cols(self) -> int:
        return max(1, int(round(self.in_cols * self.scale_factor)))

    def geotransform(self, in_geotransform: tuple[float, ...]) -> tuple[float, ...]:
        """GDAL geotransform of the output grid: same origin, pixel size divided by the scale factor."""
        x0, px_w, rot1, y0, rot2, px_h = in_geotransform
        s = self.scale_factor
        return (x0, px_w / s, rot1 / s, y0, rot2 / s, px_h / s)

    def input_window_for(self, out: Window, support_px: int) -> Window:
        """Input pixels needed to compute output window ``out``, plus ``support_px`` input pixels of
        resampling support on each side, clipped to the input raster."""
        s = self.scale_factor
        r0 = max(0, math.floor(out.row_off / s) - support_px)
        c0 = max(0, math.floor(out.col_off / s) - support_px)
        r1 = min(self.in_rows, math.ceil(out.row_end / s) + support_px)
        c1 = min(self.in_cols, math.ceil(out.col_end / s) + support_px)
        return Window(r0, c0, max(1, r1 - r0), max(1, c1 - c0))


def axis_starts(length_px: int, tile_px: int, overlap_px: int) -> list[int]:
    """Start offsets of tiles along one axis.

    Tiles have size ``min(tile_px, length_px)`` and advance by ``tile_px - overlap_px``; the last tile is
    shifted back so that it ends exactly at the raster edge (no tile leaves the raster).

    Raises:
        ValueError: for a non-positive tile or an overlap that leaves no stride.
    """
    if tile_px < 1:
        raise ValueError(f"tile size must be >= 1 px, got {tile_px}")
    if not 0 <= overlap_px < tile_px:
        raise ValueError(f"overlap must be in [0, tile size) = [0, {tile_px}), got {overlap_px}")
    if length_px <= tile_px:
        return [0]
    stride = tile_px - overlap_px
    starts = list(range(0, length_px - tile_px, stride))
    starts.append(length_px - tile_px)
    return starts


@dataclass(frozen=True)
class TilePlan:
    """Row-major tiles of the output grid.

    Attributes:
        grid: the output grid.
        tile_px: core tile size in output pixels.
        overlap_px: overlap between neighbouring core tiles in output pixels.
        row_starts, col_starts: tile offsets along each axis.
    """

    grid: OutputGrid
    tile_px: int
    overlap_px: int
    row_starts: tuple[int, ...]
    col_starts: tuple[int, ...]

    @property
    def num_tiles(self) -> int:
        return len(self.row_starts) * len(self.col_starts)

    def core(self, i: int, j: int) -> Window:
        """Core window of tile (row index i, column index j)."""
        h = min(self.tile_px, self.grid.rows)
        w = min(self.tile_px, self.grid.cols)
        return Window(self.row_starts[i], self.col_starts[j], h, w)

    def rows_of_tiles(self) -> list[list[Window]]:
        """Core windows grouped by tile row, top to bottom."""
        return [[self.core(i, j) for j in range(len(self.col_starts))] for i in range(len(self.row_starts))]


def balanced_tile_px(rows: int, cols: int, tile_px: int, overlap_px: int, align_px: int = 1) -> int:
    """The smallest core tile size, a multiple of ``align_px`` and at most ``tile_px``, that covers a
    ``rows`` x ``cols`` grid with as many tiles along each axis as ``tile_px`` itself needs.

    With ``tile_px`` alone the last tile of an axis is shifted back to the raster edge and can overlap its
    neighbour almost entirely: 1024 px at 512 px tiles and 32 px of overlap takes three tiles whose cores
    cover 1536 px. Spreading the same three tiles evenly needs cores of 363 px (rounded up to ``align_px``), so
    the networks evaluate about 40 % fewer pixels for the same output; on a large raster the saving is small.
    """
    if align_px < 1:
        raise ValueError(f"tile alignment must be >= 1 px, got {align_px}")
    need = 1
    for length in (rows, cols):
        n = len(axis_starts(length, tile_px, overlap_px))
        if n == 1:
            t = min(tile_px, length)
        else:  # n tiles of t px advancing by t - overlap cover (n - 1) (t - overlap) + t >= length
            t = -(-(length + (n - 1) * overlap_px) // n)
        need = max(need, t)
    need = -(-need // align_px) * align_px
    return max(min(need, tile_px), overlap_px + 1)


def plan_tiles(grid: OutputGrid, tile_px: int, overlap_px: int, *, balanced: bool = False,
               align_px: int = 1) -> TilePlan:
    """Tile the output grid with ``tile_px`` core tiles overlapping by ``overlap_px``.

    ``balanced``: use :func:`balanced_tile_px` instead of ``tile_px`` (the same number of tiles, spread evenly,
    each as small as that allows).
    """
    if balanced:
        tile_px = balanced_tile_px(grid.rows, grid.cols, tile_px, overlap_px, align_px)
    return TilePlan(
        grid=grid,
        tile_px=tile_px,
        overlap_px=overlap_px,
        row_starts=tuple(axis_starts(grid.rows, tile_px, overlap_px)),
        col_starts=tuple(axis_starts(grid.cols, tile_px, overlap_px)),
    )
