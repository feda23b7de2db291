"""Overviews averaged while an output is written (rscore/raster/overviews.py) against GDAL's own AVERAGE."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from rscore.raster import io
from rscore.raster.io import OutputRaster, OutputSpec
from rscore.runtime import RestoreRequest, restore
from rscore.tiling.grid import Window
from tests.fixtures import rasters

DTYPES = {"Byte": np.uint8, "UInt16": np.uint16, "Int16": np.int16, "Float32": np.float32}


def _scene(dtype: str, rows: int, cols: int, nodata: float | None, seed: int) -> np.ndarray:
    """Smooth random fields with sharp steps, in the type's range, with nodata holes and isolated nodata."""
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 1, (3, rows, cols)).cumsum(axis=1).cumsum(axis=2)
    a = (a - a.min()) / (a.max() - a.min())
    a = {"Byte": a * 250, "UInt16": a * 9000, "Int16": a * 6000 - 1500, "Float32": a * 0.7}[dtype]
    a[:, rows // 3 : rows // 3 + 5] += {"Byte": 3, "UInt16": 400, "Int16": 300, "Float32": 0.05}[dtype]
    a = a.astype(DTYPES[dtype])
    if nodata is not None:
        a[:, 10:90, 20:150] = nodata
        a[1, ::7, ::5] = nodata
    return a


def _write(path: Path, a: np.ndarray, dtype: str, nodata: float | None, windows: list[Window],
           overviews: bool = True) -> gdal.Dataset:
    spec = OutputSpec(rows=a.shape[1], cols=a.shape[2], bands=a.shape[0], data_type=dtype, nodata=nodata,
                      geotransform=(0.0, 1.0, 0.0, 0.0, 0.0, -1.0), crs_wkt="", overviews=overviews)
    out = OutputRaster(path, spec)
    for w in windows:
        out.write(w, a[:, w.row_off : w.row_end, w.col_off : w.col_end])
    out.finish()
    return gdal.Open(str(out.publish()))


def _rows(rows: int, cols: int, step: int) -> list[Window]:
    return [Window(r, 0, min(step, rows - r), cols) for r in range(0, rows, step)]


def _gdal_average(path: Path, a: np.ndarray, dtype: str, nodata: float | None, levels: int) -> gdal.Dataset:
    ds = _write(path, a, dtype, nodata, _rows(a.shape[1], a.shape[2], 256), overviews=False)
    ds = gdal.Open(str(path), gdal.GA_Update)
    ds.BuildOverviews("AVERAGE", [2 ** (k + 1) for k in range(levels)])
    return ds


def _levels(ds: gdal.Dataset) -> list[np.ndarray]:
    n = ds.GetRasterBand(1).GetOverviewCount()
    return [np.stack([ds.GetRasterBand(b + 1).GetOverview(k).ReadAsArray() for b in range(ds.RasterCount)])
            for k in range(n)]


@pytest.mark.parametrize("dtype, rows, cols, nodata, step", [
    ("UInt16", 1100, 1040, None, 64),  # 1100 x 1040: 2 x 2 blocks on both levels
    ("UInt16", 1111, 1037, 0, 37),  # odd sizes (fractional windows), with nodata
    ("Byte", 1024, 600, None, 1),  # one row per write
    ("Byte", 700, 1300, 255, 100),
])
def test_byte_and_uint16_overviews_are_gdals_bit_for_bit(tmp_path, dtype, rows, cols, nodata, step):
    a = _scene(dtype, rows, cols, nodata, seed=rows)
    mine = _write(tmp_path / "mine.tif", a, dtype, nodata, _rows(rows, cols, step))
    levels = _levels(mine)
    assert len(levels) == len(io.overview_factors(rows, cols)) >= 2
    ref = _levels(_gdal_average(tmp_path / "gdal.tif", a, dtype, nodata, len(levels)))
    for k, (x, y) in enumerate(zip(levels, ref)):
        assert x.shape == y.shape, k
        np.testing.assert_array_equal(x, y, err_msg=f"level {k + 1}")


@pytest.mark.parametrize("dtype, rows, nodata", [("Int16", 1200, -9999), ("Int16", 1200, None),
                                                 ("Float32", 1200, float("nan")), ("Float32", 1200, None),
                                                 ("Byte", 1201, None), ("Float32", 1201, None)])
def test_other_cases_differ_from_gdal_by_rounding_only(tmp_path, dtype, rows, nodata):
    """GDAL averages Int16 and Float32 in float32, and where a window of an odd-sized level spans two rows it
    leaves out the fractional weight (without nodata): the same grid and nodata, values within 1 (integer types)
    or 1e-5 (on values up to 0.75)."""
    a = _scene(dtype, rows, 1030, nodata, seed=5)
    mine = _levels(_write(tmp_path / "mine.tif", a, dtype, nodata, _rows(rows, 1030, 50)))
    ref = _levels(_gdal_average(tmp_path / "gdal.tif", a, dtype, nodata, len(mine)))
    for x, y in zip(mine, ref):
        assert x.shape == y.shape
        if nodata is not None:
            xn, yn = (np.isnan(x), np.isnan(y)) if np.isnan(nodata) else (x == nodata, y == nodata)
            np.testing.assert_array_equal(xn, yn)
            x, y = x[~xn], y[~yn]
        if dtype == "Float32":
            np.testing.assert_allclose(x, y, rtol=0, atol=1e-5)
        else:
            assert np.abs(x.astype(int) - y.astype(int)).max() <= 1


def test_writes_out_of_order_fall_back_to_gdal(tmp_path):
    """Windows that are not full-width rows from the top (here: two column halves) leave the overviews to GDAL."""
    a = _scene("UInt16", 600, 640, None, seed=2)
    wins = [Window(r, c, min(100, 600 - r), 320) for r in range(0, 600, 100) for c in (0, 320)]
    mine = _levels(_write(tmp_path / "mine.tif", a, "UInt16", None, wins))
    ref = _levels(_gdal_average(tmp_path / "gdal.tif", a, "UInt16", None, 1))
    np.testing.assert_array_equal(mine[0], ref[0])


def test_engine_output_overviews_are_averages_of_its_pixels(tmp_path):
    """Through restore(): the output's overviews are GDAL's AVERAGE of the output's own full-resolution pixels."""
    from export.build_bundles import identity

    src = rasters.reflectance_uint16(tmp_path / "in.tif", 4, 1030, 777, seed=1)
    out = tmp_path / "out.tif"
    restore(RestoreRequest(str(src), str(identity(tmp_path).root), str(out), device="cpu", tile_size_px=256,
                           overlap_px=32))
    ds = gdal.Open(str(out))
    a = ds.ReadAsArray()
    nodata = ds.GetRasterBand(1).GetNoDataValue()
    mine = _levels(ds)
    assert len(mine) == 2
    ref = _levels(_gdal_average(tmp_path / "gdal.tif", a, "UInt16", nodata, len(mine)))
    for x, y in zip(mine, ref):
        np.testing.assert_array_equal(x, y)


def test_rows_in_order_are_compressed_block_row_by_block_row(tmp_path):
    """Full-width rows written in order reach GDAL in whole block rows and are compressed as each completes (the
    temporary file grows while the output is written, not only when it is finished); the rows of a block row
    not yet complete wait, so no block is compressed twice: the same pixels, overviews and file size as one
    write of the whole raster."""
    a = _scene("UInt16", 1100, 1040, None, seed=4)
    spec = OutputSpec(rows=1100, cols=1040, bands=3, data_type="UInt16", nodata=None,
                      geotransform=(0.0, 1.0, 0.0, 0.0, 0.0, -1.0), crs_wkt="")
    out = OutputRaster(tmp_path / "chunks.tif", spec)
    sizes = []
    for w in _rows(1100, 1040, 100):  # 100-row writes: block rows (256) end inside them
        out.write(w, a[:, w.row_off : w.row_end])
        sizes.append(out.tmp.stat().st_size)
    assert sizes[1] == sizes[0] and sizes[2] > sizes[1]  # rows 0-255 compressed once row 300 arrived
    assert sizes[-2] > sizes[2]
    out.finish()
    chunks = gdal.Open(str(out.publish()))
    whole = _write(tmp_path / "whole.tif", a, "UInt16", None, [Window(0, 0, 1100, 1040)])
    np.testing.assert_array_equal(chunks.ReadAsArray(), a)
    for x, y in zip(_levels(chunks), _levels(whole), strict=True):
        np.testing.assert_array_equal(x, y)
    size = (tmp_path / "chunks.tif").stat().st_size
    assert abs(size - (tmp_path / "whole.tif").stat().st_size) <= 0.002 * size


@pytest.mark.parametrize("rows, block_rows, seed", [(700, 256, 0), (256, 256, 1), (31, 256, 2), (1000, 7, 3),
                                                    (513, 1, 4)])
def test_block_row_sink_writes_whole_block_rows_once_in_order(rows, block_rows, seed):
    """Whatever the sizes of the pushes (one row, less than a block, several blocks), GDAL gets every row once,
    in order, in writes that end on a block boundary (or at the last row), each followed by a flush."""
    from rscore.raster.overviews import BlockRowSink

    rng = np.random.default_rng(seed)
    a = rng.integers(0, 1000, (2, rows, 5))
    calls: list[tuple[str, int, int]] = []
    got = []

    def write(row, v):  # noqa: ANN001, ANN202
        calls.append(("write", row, v.shape[1]))
        got.append(v.copy())

    sink = BlockRowSink(rows, block_rows, write, lambda: calls.append(("flush", 0, 0)))
    r = 0
    while r < rows:
        n = int(min(rows - r, rng.choice([1, 3, 64, 300])))
        chunk = a[:, r : r + n].copy()
        sink.push(r, chunk)
        chunk[:] = -1  # the caller reuses its array: what the sink kept must not change
        r += n
    sink.release()
    np.testing.assert_array_equal(np.concatenate(got, axis=1), a)
    writes = [c for c in calls if c[0] == "write"]
    assert [w[1] for w in writes] == list(np.cumsum([0] + [w[2] for w in writes[:-1]]))
    assert all((w[1] + w[2]) % block_rows == 0 or w[1] + w[2] == rows for w in writes)
    assert all(calls[i + 1][0] == "flush" for i, c in enumerate(calls) if c[0] == "write")
    with pytest.raises(ValueError, match="in order"):
        sink.push(0, a[:, :1])
