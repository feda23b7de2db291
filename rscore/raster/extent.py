"""An area of interest: the window of the input grid that covers it, and a VRT of that window to restore.

Footprints are shapely polygons in the input raster's CRS (the plugin reprojects the user's extent, with its
edges densified, before calling :func:`window_for_area`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from osgeo import gdal

from rscore.raster.io import RasterError
from rscore.tiling.grid import Window


@dataclass(frozen=True)
class AreaWindow:
    """The part of the input an area of interest asks for.

    Attributes:
        window: input-grid pixels covering the area (snapped outwards to whole pixels).
        covered_fraction: share of the area inside the raster's footprint (0-1).
    """

    window: Window
    covered_fraction: float


def footprint(geotransform: Sequence[float], rows: int, cols: int):  # noqa: ANN201 - shapely Polygon
    """The raster's footprint polygon in its own CRS."""
    from shapely.geometry import Polygon

    gt = geotransform

    def at(px: float, py: float) -> tuple[float, float]:
        return gt[0] + px * gt[1] + py * gt[2], gt[3] + px * gt[4] + py * gt[5]

    return Polygon([at(0, 0), at(cols, 0), at(cols, rows), at(0, rows)])


def window_for_area(area_wkt: str, geotransform: Sequence[float], rows: int, cols: int,
                    what: str = "EXTENT") -> AreaWindow:
    """The input-grid window covering ``area_wkt`` (a polygon in the raster's CRS), clipped to the raster.

    Raises:
        RasterError: a rotated raster, an empty or invalid area, or an area outside the raster.
    """
    from shapely import wkt
    from shapely.errors import ShapelyError

    gt = tuple(float(v) for v in geotransform)
    if gt[2] != 0.0 or gt[4] != 0.0:
        raise RasterError(f"{what} needs a north-up raster (this one is rotated); warp it north-up first, or leave "
                          f"{what} empty")
    try:
        area = wkt.loads(area_wkt)
    except (ShapelyError, ValueError) as exc:
        raise RasterError(f"{what} is not a valid area ({exc})") from None
    if area.is_empty or area.area <= 0.0:
        raise RasterError(f"{what} is empty; draw or type an area with a width and a height, or leave {what} empty")
    inside = area.intersection(footprint(gt, rows, cols))
    if inside.is_empty or inside.area <= 0.0:
        raise RasterError(f"{what} does not overlap the input raster; choose an area over the raster (check its "
                          "CRS), or leave it empty to restore the whole raster")
    x0, y0, x1, y1 = inside.bounds
    # pixel coordinates of the bounds (north-up: y grows downwards when gt[5] < 0); snap outwards, with a
    # tolerance so that an extent exactly on pixel edges does not gain a pixel from rounding noise
    cols_px = sorted(((x0 - gt[0]) / gt[1], (x1 - gt[0]) / gt[1]))
    rows_px = sorted(((y0 - gt[3]) / gt[5], (y1 - gt[3]) / gt[5]))
    eps = 1e-6
    c0, c1 = max(0, math.floor(cols_px[0] + eps)), min(cols, math.ceil(cols_px[1] - eps))
    r0, r1 = max(0, math.floor(rows_px[0] + eps)), min(rows, math.ceil(rows_px[1] - eps))
    if c1 <= c0 or r1 <= r0:
        raise RasterError(f"{what} covers less than one pixel of the input raster; choose a larger area")
    return AreaWindow(Window(r0, c0, r1 - r0, c1 - c0), float(inside.area / area.area))


def window_vrt(src_path: str, window: Window, vrt_path: Path) -> Path:
    """A VRT of ``window`` of ``src_path`` (every band, nodata, scale/offset and georeference kept)."""
    src = gdal.Open(str(src_path))
    if src is None:
        raise RasterError(f"cannot open {src_path}: {gdal.GetLastErrorMsg()}")
    ds = gdal.Translate(str(vrt_path), src, format="VRT",
                        srcWin=[window.col_off, window.row_off, window.cols, window.rows])
    if ds is None:
        raise RasterError(f"cannot make a window of {src_path}: {gdal.GetLastErrorMsg()}")
    ds = None
    return vrt_path


def coverage_of(path: str, geotransform: Sequence[float], rows: int, cols: int, crs_wkt: str,
                densify: int = 32) -> float:
    """Share (0-1) of a grid's footprint (``geotransform``, ``rows`` x ``cols``, in ``crs_wkt``) that the raster
    at ``path`` covers, computed with shapely in the grid's CRS (the raster's footprint reprojected, its edges
    densified to ``densify`` points). A raster without georeferencing counts as on the grid when it has the same
    size (the engine reads it so), else as covering nothing.

    Raises:
        RasterError: the raster cannot be opened, or its footprint cannot be reprojected.
    """
    from osgeo import osr
    from shapely.geometry import Polygon

    ds = gdal.Open(path)
    if ds is None:
        raise RasterError(f"cannot open {path!r} as a raster")
    gt_o, r_o, c_o, crs_o = ds.GetGeoTransform(can_return_null=True), ds.RasterYSize, ds.RasterXSize, ds.GetProjection()
    ds = None
    grid = footprint(geotransform, rows, cols)
    if gt_o is None:
        return 1.0 if (r_o, c_o) == (rows, cols) else 0.0
    pts = []
    for (px0, py0), (px1, py1) in zip(((0, 0), (c_o, 0), (c_o, r_o), (0, r_o)),
                                      ((c_o, 0), (c_o, r_o), (0, r_o), (0, 0)), strict=True):
        for k in range(densify):
            f = k / densify
            px, py = px0 + f * (px1 - px0), py0 + f * (py1 - py0)
            pts.append((gt_o[0] + px * gt_o[1] + py * gt_o[2], gt_o[3] + px * gt_o[4] + py * gt_o[5]))
    if crs_o and crs_wkt:
        src, dst = osr.SpatialReference(), osr.SpatialReference()
        src.ImportFromWkt(crs_o)
        dst.ImportFromWkt(crs_wkt)
        if not src.IsSame(dst):
            for s in (src, dst):
                s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
            tr = osr.CoordinateTransformation(src, dst)
            try:
                pts = [tuple(p[:2]) for p in tr.TransformPoints(pts)]
            except RuntimeError as exc:
                raise RasterError(f"cannot reproject the footprint of {path!r} into the output CRS: {exc}") from None
    other = Polygon(pts).buffer(0)
    return float(grid.intersection(other).area / grid.area) if grid.area > 0 else 0.0
