"""Automatic restoration masks: a bundle's own per-pixel degradation map, thresholded and grown.

``rsrestore:remove_clouds`` without a user MASK first runs the bundle's one-pass stage over the raster to
get its degradation map (0 = clear, 1 = opaque cloud), then restores only the pixels this module marks:
every other pixel is copied from the input bit for bit (see :class:`rscore.runtime.engine.TiledRunner`).
"""

from __future__ import annotations

import numpy as np
from osgeo import gdal

from rscore.raster.io import RasterError

#: pixels processed at once (rows = this / width, at least 16; plus the dilation margin above and below)
BLOCK_PIXELS = 1 << 22


def dilate(mask: np.ndarray, radius_px: int) -> np.ndarray:
    """Binary dilation by a (2 r + 1) square, separable (rows, then columns); edges are not wrapped."""
    out = mask.copy()
    if radius_px <= 0:
        return out
    for axis in (0, 1):
        src = out.copy()
        n = src.shape[axis]
        for d in range(1, radius_px + 1):
            if d >= n:
                break
            lo = [slice(None)] * 2
            hi = [slice(None)] * 2
            lo[axis], hi[axis] = slice(0, n - d), slice(d, n)
            out[tuple(lo)] |= src[tuple(hi)]
            out[tuple(hi)] |= src[tuple(lo)]
    return out


def threshold_mask(map_path: str, mask_path: str, threshold: float, dilate_px: int) -> tuple[float, int]:
    """Write a Byte mask (1 = restore) on the map's grid: map >= ``threshold``, dilated by ``dilate_px``.

    Nodata pixels of the map (the input's nodata) are never marked.

    Args:
        map_path: one-band Float32 degradation map, 0-1.
        mask_path: GeoTIFF to write (same grid, CRS and size).
        threshold: degradation at or above which a pixel is restored, 0-1.
        dilate_px: pixels the mask grows by on every side.

    Returns:
        (fraction of valid pixels marked, number of pixels marked).
    """
    src = gdal.Open(map_path)
    if src is None:
        raise RasterError(f"cannot read the degradation map {map_path!r}: {gdal.GetLastErrorMsg()}")
    band = src.GetRasterBand(1)
    rows, cols = src.RasterYSize, src.RasterXSize
    nodata = band.GetNoDataValue()
    drv = gdal.GetDriverByName("GTiff")
    dst = drv.Create(mask_path, cols, rows, 1, gdal.GDT_Byte,
                     options=["COMPRESS=DEFLATE", "TILED=YES", "BIGTIFF=IF_SAFER"])
    if dst is None:
        raise RasterError(f"cannot write the automatic mask {mask_path!r}: {gdal.GetLastErrorMsg()}")
    dst.SetGeoTransform(src.GetGeoTransform())
    dst.SetProjection(src.GetProjection())
    marked = 0
    valid_total = 0
    m = int(dilate_px)
    block_rows = max(16, BLOCK_PIXELS // max(cols, 1))
    for r0 in range(0, rows, block_rows):
        r1 = min(rows, r0 + block_rows)
        a, b = max(0, r0 - m), min(rows, r1 + m)
        values = band.ReadAsArray(0, a, cols, b - a)
        if values is None:
            raise RasterError(f"cannot read rows {a}-{b} of the degradation map {map_path!r}")
        valid = np.isfinite(values)
        if nodata is not None:
            valid &= values != nodata
        hit = dilate(valid & (values >= threshold), m) & valid
        core = hit[r0 - a : r0 - a + (r1 - r0)]
        dst.GetRasterBand(1).WriteArray(core.astype(np.uint8), 0, r0)
        marked += int(core.sum())
        valid_total += int(valid[r0 - a : r0 - a + (r1 - r0)].sum())
    dst.FlushCache()
    dst = None
    src = None
    return (marked / valid_total if valid_total else 0.0), marked
