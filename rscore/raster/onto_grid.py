"""Opening a secondary raster (a mask, a reference date) on another raster's grid: one function for all.

A raster already on the grid (same size and geotransform and CRS, or no georeferencing at all and the same size)
is read as it is; any other georeferenced raster is warped onto the grid through VRTs in ``/vsimem/``, which
are unlinked when the returned raster is closed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from osgeo import gdal

from rscore.raster.io import InputRaster, RasterError
from rscore.tiling.grid import Window

#: resampling onto the grid: "max" for masks (a target pixel is marked when any source pixel inside it is, so a
#: finer mask loses no cloud), "bilinear" for images
GridResample = Literal["nearest", "bilinear", "cubic", "max"]

_IDENTITY_GT = (0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


@dataclass(frozen=True)
class TargetGrid:
    """A north-up (or rotated) pixel grid: size, geotransform and CRS (WKT, may be empty)."""

    rows: int
    cols: int
    geotransform: tuple[float, ...]
    crs_wkt: str


class GridRaster(InputRaster):
    """An :class:`InputRaster` that also owns the ``/vsimem/`` files it was warped through; with ``alpha_band``
    (the warp's alpha, after the selected bands), pixels outside the source's footprint are invalid too."""

    def __init__(self, path: str, bands: Sequence[int] | None, owned: list[str], alpha_band: int | None = None
                 ) -> None:
        self._owned = owned
        self._alpha = alpha_band
        try:
            super().__init__(path, bands, require_crs=False)
        except BaseException:
            self._unlink()
            raise

    def read(self, win: Window) -> tuple[np.ndarray, np.ndarray]:
        values, valid = super().read(win)
        if self._alpha is not None:
            alpha = self._ds.GetRasterBand(self._alpha).ReadAsArray(win.col_off, win.row_off, win.cols, win.rows)
            valid &= alpha > 0
        return values, valid

    def _unlink(self) -> None:
        for v in self._owned:
            gdal.Unlink(v)
        self._owned = []

    def close(self) -> None:
        super().close()
        self._unlink()


def same_crs(a_wkt: str, b_wkt: str) -> bool:
    from osgeo import osr

    a, b = osr.SpatialReference(), osr.SpatialReference()
    a.ImportFromWkt(a_wkt)
    b.ImportFromWkt(b_wkt)
    return bool(a.IsSame(b))


def _warp(path: str, bands: Sequence[int] | None, grid: TargetGrid, resample: str, what: str,
          alpha: bool = False) -> list[str]:
    """VRTs in /vsimem/ (band selection, then the warp onto the grid, with an alpha band after the image bands
    when ``alpha``); the last one is the warped raster."""
    x0, pw, rot1, y0, rot2, ph = grid.geotransform
    if rot1 != 0.0 or rot2 != 0.0:
        raise RasterError(
            f"the input raster's grid is rotated (geotransform {tuple(grid.geotransform)}), so the {what} on another "
            "grid cannot be aligned with it; give it on the input's own grid (same size and geotransform), or warp "
            "the input to a north-up grid first (gdalwarp)")
    bounds = (x0, y0 + grid.rows * ph, x0 + grid.cols * pw, y0)
    vrt = f"/vsimem/rsrestore_grid_{os.getpid()}_{time.monotonic_ns()}.vrt"
    opts = gdal.WarpOptions(format="VRT", outputBounds=bounds, width=grid.cols, height=grid.rows,
                            dstSRS=grid.crs_wkt, resampleAlg=resample, multithread=False, dstAlpha=alpha)
    made: list[str] = []
    try:
        src = gdal.Open(path)
        if src is None:
            raise RasterError(f"cannot open {what} {path!r}")
        if bands:
            made.append(f"{vrt}.sel.vrt")
            src = gdal.Translate(made[-1], src, format="VRT", bandList=list(bands))
        made.append(vrt)
        out = gdal.Warp(vrt, src, options=opts)
        if out is None:
            raise RasterError(f"cannot warp {what} {path!r} onto the grid: {gdal.GetLastErrorMsg()}")
        out = None
    except BaseException as exc:
        for v in made:
            gdal.Unlink(v)
        if isinstance(exc, RuntimeError):  # gdal.UseExceptions() is on
            raise RasterError(f"cannot use {what} {path!r}: {exc}") from exc
        raise
    return made


def open_onto_grid(path: str, bands: Sequence[int] | None, grid: TargetGrid, resample: GridResample,
                   what: str, option: str, footprint: bool = False) -> InputRaster:
    """``path`` (its ``bands``, 1-based; None = all) readable on ``grid``.

    Args:
        what: how messages name the raster ("mask raster", "reference raster").
        option: the parameter that gives it, for the fix in messages ("MASK", "REFERENCE").
        footprint: grid pixels outside the raster's footprint read as invalid (an image that must not be taken
            for data where it has none); otherwise they read as 0.

    Raises:
        RasterError: it does not exist, cannot be read, has no georeferencing and another size, or cannot be
            warped (e.g. a rotated grid); the message names the fix.
    """
    if not os.path.exists(path) and ":" not in Path(path).name and not path.startswith("/vsi"):
        raise RasterError(f"the {what} {path!r} does not exist; choose an existing {option}")
    probe = InputRaster(path, bands, require_crs=False)
    info = probe.info
    same_size = (info.rows, info.cols) == (grid.rows, grid.cols)
    no_georef = not info.crs_wkt and tuple(info.geotransform) == _IDENTITY_GT
    same_gt = all(abs(a - b) <= 1e-9 * max(1.0, abs(b)) for a, b in zip(info.geotransform, grid.geotransform))
    on_grid = same_size and (no_georef or (same_gt and (not info.crs_wkt or same_crs(info.crs_wkt, grid.crs_wkt))))
    if on_grid:
        return probe
    probe.close()
    if no_georef:
        raise RasterError(
            f"the {what} {path!r} has no georeferencing and a different size ({info.cols} x {info.rows}) from the "
            f"grid it must cover ({grid.cols} x {grid.rows}); give a {option} on that grid or a georeferenced one")
    made = _warp(path, bands, grid, resample, what, alpha=footprint)
    if not footprint:
        return GridRaster(made[-1], None, made)
    count = len(bands) if bands else info.band_count
    return GridRaster(made[-1], list(range(1, count + 1)), made, alpha_band=count + 1)
