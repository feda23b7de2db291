"""Real cloud shapes: opacity maps read from a pinned package (``rscore.data.sources.CLOUD_SHAPES``).

They only give synthetic clouds realistic outlines and textures; their pixels are never imagery to restore.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rscore.data.fetch import member_path
from rscore.data.sources import CLOUD_SHAPES


def load_cloud_opacity(name: str, cache_dir: Path) -> np.ndarray:
    """float32 (rows, cols) cloud opacity in [0, 1] of the shape source ``name``.

    A paletted raster's opacity is its palette's alpha (the layer is white; only transparency varies); a grey
    raster's opacity is its value / 255. For a global layer, rows beyond ``lat_limit_deg`` are dropped.

    Raises:
        KeyError: unknown name.
        FileNotFoundError: not fetched yet (the message gives the command).
    """
    from osgeo import gdal

    if name not in CLOUD_SHAPES:
        raise KeyError(f"unknown cloud-shape source {name!r}; expected one of {sorted(CLOUD_SHAPES)}")
    spec = CLOUD_SHAPES[name]
    path = member_path(spec.archive, spec.member, Path(cache_dir))
    ds = gdal.Open(str(path))
    if ds is None:
        raise FileNotFoundError(f"cannot read cloud shapes {path}: {gdal.GetLastErrorMsg()}")
    band = ds.GetRasterBand(1)
    values = band.ReadAsArray()
    table = band.GetColorTable()
    if table is not None:
        alpha = np.array([table.GetColorEntry(i)[3] for i in range(table.GetCount())], np.float32)
        opacity = alpha[np.clip(values, 0, len(alpha) - 1)] / 255.0
    elif ds.RasterCount == 4:  # RGBA
        opacity = ds.GetRasterBand(4).ReadAsArray().astype(np.float32) / 255.0
    else:
        opacity = values.astype(np.float32) / 255.0
    rows = opacity.shape[0]
    cut = int(round(rows * (90.0 - spec.lat_limit_deg) / 180.0))
    return np.ascontiguousarray(opacity[cut : rows - cut], dtype=np.float32)
