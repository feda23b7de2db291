"""GDAL windowed raster reading and atomic writing (no torch)."""

from rscore.raster.io import (
    InputRaster,
    OutputRaster,
    RasterError,
    RasterInfo,
    dtype_range,
    publish_all,
)

__all__ = ["InputRaster", "OutputRaster", "RasterError", "RasterInfo", "dtype_range", "publish_all"]
