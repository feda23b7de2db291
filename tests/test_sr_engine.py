"""Latent super-resolution through the engine (toy-ldcsr: per-latent-pixel toy networks): the exact output grid
at non-integer scales, the same raster for any tile size, noise by latent position, nodata on the output grid,
the one-pass regression path, and the network evaluations the phases imply."""

from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal

from rscore.bundle import load_bundle
from rscore.runtime import RequestError, RestoreRequest, restore
from tests.fixtures import rasters


def _read(path):
    return gdal.Open(str(path)).ReadAsArray()


@pytest.fixture(scope="module")
def lr_tif(tmp_path_factory):
    data = np.round(rasters.scene(4, 37, 43, seed=5) * 1e4).astype(np.uint16)
    data[:, 3, 5] = 0  # a nodata pixel
    return rasters.write(tmp_path_factory.mktemp("sr") / "lr.tif", data, "UInt16", nodata=0)


@pytest.mark.parametrize("scale", [2.5, 4.0, 1.7])
def test_exact_grid_and_tile_invariance(tmp_path, bundles, lr_tif, scale):
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    rep = restore(RestoreRequest(str(lr_tif), str(bundles["toy-ldcsr"]), str(a), scale_factor=scale, seed=3,
                                 tile_size_px=64, overlap_px=16))
    restore(RestoreRequest(str(lr_tif), str(bundles["toy-ldcsr"]), str(b), scale_factor=scale, seed=3,
                           tile_size_px=40, overlap_px=8))
    src, out = gdal.Open(str(lr_tif)), gdal.Open(str(a))
    assert (out.RasterYSize, out.RasterXSize) == (round(37 * scale), round(43 * scale))
    gt_in, gt_out = src.GetGeoTransform(), out.GetGeoTransform()
    np.testing.assert_allclose(gt_out, (gt_in[0], gt_in[1] / scale, 0.0, gt_in[3], 0.0, gt_in[5] / scale))
    assert out.GetRasterBand(1).DataType == gdal.GDT_UInt16 and out.GetRasterBand(1).GetNoDataValue() == 0
    np.testing.assert_array_equal(_read(a), _read(b))  # the same raster for any tile size
    assert rep.network_evals == rep.tiles_total * (1 + 4 + 1) - 6 * rep.tiles_skipped


def test_noise_changes_with_the_seed_and_one_pass_is_the_regression_path(tmp_path, bundles, lr_tif):
    runs = {}
    for key, kw in {"s3": {"seed": 3}, "s4": {"seed": 4}, "one": {"options": {"one_pass": True}}}.items():
        runs[key] = tmp_path / f"{key}.tif"
        restore(RestoreRequest(str(lr_tif), str(bundles["toy-ldcsr"]), str(runs[key]), scale_factor=2.0, **kw))
    s3, s4, one = (_read(runs[k]).astype(np.int64) for k in ("s3", "s4", "one"))
    assert np.abs(s3 - s4).max() > 0 and np.abs(s3 - one).max() > 0


def test_nodata_is_scaled_to_the_output_grid(tmp_path, bundles, lr_tif):
    out = tmp_path / "o.tif"
    restore(RestoreRequest(str(lr_tif), str(bundles["toy-ldcsr"]), str(out), scale_factor=4.0))
    got = _read(out)
    assert np.all(got[:, 12:16, 20:24] == 0)  # input pixel (3, 5) -> output pixels 12-15 x 20-23
    assert np.all(got[:, 11, 20:24] != 0) and np.all(got[:, 16, 20:24] != 0)


def test_scale_outside_the_range_and_the_manifest_grids(tmp_path, bundles, lr_tif):
    with pytest.raises(RequestError, match=r"supports scale factors 1.0..8.0, got 9"):
        restore(RestoreRequest(str(lr_tif), str(bundles["toy-ldcsr"]), str(tmp_path / "o.tif"), scale_factor=9.0))
    m = load_bundle(bundles["toy-ldcsr"]).manifest
    assert m.schema_version == 2 and m.latent.factor == 8
    assert m.tensor("denoiser", "x_t").grid == "latent" and m.tensor("decoder", "x").grid == "output"
