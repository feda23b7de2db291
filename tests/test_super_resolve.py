"""rsrestore:super_resolve: parameters, SCALE and TARGET_RESOLUTION, the exact output grid through Processing,
the shipped bundles on a held-out crop, qgis_process, and a modeler chain that super-resolves then dehazes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from rscore.degradations.resample import SENSOR_NOISE, downsample, sample_downsample_params
from rscore.metrics.fidelity import psnr
from rscore.tiling.grid import Window
from rscore.tiling.resample import resample_window
from tests.conftest import run_qgis_process
from tests.fixtures import rasters
from tests.fixtures.modeler import then_dehaze

pytest.importorskip("qgis.core", reason="python3-qgis is not installed (run `make install`)")
pytestmark = pytest.mark.qgis

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "samples"
PARAMS = ["INPUT", "BANDS", "MODEL", "MODEL_FOLDER", "SCALE", "TARGET_RESOLUTION", "EXTENT", "STEPS", "TILE_SIZE",
          "OVERLAP", "SEED", "DEVICE", "COG", "OUTPUT"]
#: gain over bicubic of the shipped sr-bgrn on the held-out crop below (sensor-like down-sampling with realistic
#: noise): measured +1.07 dB (third version, default 4 steps, seed 0; the second version: +0.28 dB); pinned with a
#: margin for onnxruntime versions
GAIN_X4_PIN = 0.8
#: 10 m pixels (the fixture's default geotransform is replaced by this one)
GT_10M = (500000.0, 10.0, 0.0, 4100000.0, 0.0, -10.0)


def _alg():
    from qgis.core import QgsApplication

    return QgsApplication.processingRegistry().algorithmById("rsrestore:super_resolve")


def _run(params: dict) -> dict:
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    res, ok = _alg().run(params, QgsProcessingContext(), QgsProcessingFeedback(), {}, False)
    assert ok
    return res


@pytest.fixture(scope="module")
def lr_tif(tmp_path_factory) -> Path:
    data = np.round(rasters.scene(4, 30, 26, seed=2) * 1e4).astype(np.uint16)
    data[:, 4, 7] = 0
    return rasters.write(tmp_path_factory.mktemp("sr_alg") / "lr.tif", data, "UInt16", nodata=0,
                         geotransform=GT_10M, epsg=32633)


@pytest.fixture(scope="module")
def s2_pair(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray]:
    """A held-out 128 x 128 crop of the Sentinel-2 sample, down-sampled x4 like a coarser sensor:
    (LR raster, HR truth, bicubic of the LR) in reflectance."""
    ds = gdal.Open(str(SAMPLES / "s2_l1c_bgrn_512.tif"))
    hr = ds.ReadAsArray(140, 100, 128, 128).astype(np.float32) * 1e-4
    rng = np.random.default_rng(11)
    lr = np.round(downsample(hr, sample_downsample_params(rng, factor=4.0, **SENSOR_NOISE), rng) * 1e4) / 1e4
    bic = resample_window(lr, Window(0, 0, 32, 32), 32, 32, 4.0, Window(0, 0, 128, 128), "bicubic")
    gt = ds.GetGeoTransform()
    path = rasters.write(tmp_path_factory.mktemp("sr_s2") / "lr_s2.tif", np.round(lr * 1e4), "UInt16",
                         geotransform=(gt[0] + 140 * gt[1], gt[1] * 4, 0.0, gt[3] + 100 * gt[5], 0.0, gt[5] * 4),
                         epsg=32618)
    return path, hr, bic


def test_parameters(qgis_app):
    from qgis.core import QgsProcessingParameterDefinition

    alg = _alg()
    assert [p.name() for p in alg.parameterDefinitions()] == PARAMS
    adv = {p.name() for p in alg.parameterDefinitions() if p.flags() & QgsProcessingParameterDefinition.FlagAdvanced}
    assert adv == {"MODEL_FOLDER", "TILE_SIZE", "OVERLAP", "SEED", "DEVICE", "COG"}
    assert alg.parameterDefinition("MODEL_FOLDER").flags() & QgsProcessingParameterDefinition.FlagOptional
    assert alg.parameterDefinition("SCALE").defaultValue() == 4.0


def test_exact_grid_and_target_resolution(qgis_app, bundles, lr_tif, tmp_path):
    """SCALE 2.5 and TARGET_RESOLUTION 4 m (10 m pixels) give the same exact grid and the same raster."""
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    _run({"INPUT": str(lr_tif), "MODEL_FOLDER": str(bundles["toy-ldcsr"]), "SCALE": 2.5, "SEED": 4, "OUTPUT": str(a)})
    _run({"INPUT": str(lr_tif), "MODEL_FOLDER": str(bundles["toy-ldcsr"]), "SCALE": 7.0, "TARGET_RESOLUTION": 4.0,
          "SEED": 4, "TILE_SIZE": 32, "OVERLAP": 8, "OUTPUT": str(b)})
    src, da, db = gdal.Open(str(lr_tif)), gdal.Open(str(a)), gdal.Open(str(b))
    assert (da.RasterYSize, da.RasterXSize) == (75, 65)
    np.testing.assert_allclose(da.GetGeoTransform(), (500000.0, 4.0, 0.0, 4100000.0, 0.0, -4.0))
    assert da.GetProjection() == src.GetProjection() and da.GetRasterBand(1).DataType == gdal.GDT_UInt16
    assert da.GetRasterBand(1).GetNoDataValue() == 0
    np.testing.assert_array_equal(da.ReadAsArray(), db.ReadAsArray())  # TARGET_RESOLUTION wins, any tile size
    got = da.ReadAsArray()
    assert np.all(got[:, 10:12, 18:20] == 0) and np.all(got[:, 13, 18:20] != 0)  # nodata pixel (4, 7) scaled


def test_target_resolution_outside_the_range_and_wrong_bands_refused(qgis_app, bundles, lr_tif, tmp_path):
    from qgis.core import QgsProcessingContext

    ok, msg = _alg().checkParameterValues({"INPUT": str(lr_tif), "MODEL_FOLDER": str(bundles["toy-ldcsr"]),
                                           "TARGET_RESOLUTION": 0.5, "OUTPUT": str(tmp_path / "o.tif")},
                                          QgsProcessingContext())
    assert not ok and "scale factor of 20" in msg and "between 1.25 and 10" in msg
    ok, msg = _alg().checkParameterValues({"INPUT": str(lr_tif), "MODEL_FOLDER": str(bundles["toy-ldcsr"]),
                                           "TARGET_RESOLUTION": 20.0, "OUTPUT": str(tmp_path / "o.tif")},
                                          QgsProcessingContext())
    assert not ok and "scale factor of 0.5" in msg
    two = rasters.write(tmp_path / "two.tif", np.round(rasters.scene(2, 20, 20) * 1e4))
    ok, msg = _alg().checkParameterValues({"INPUT": str(two), "OUTPUT": str(tmp_path / "o.tif")},
                                          QgsProcessingContext())
    assert not ok and "needs 4 bands" in msg and "2 band(s)" in msg
    assert not (tmp_path / "o.tif").exists()


def test_shipped_bgrn_model_beats_bicubic_on_a_held_out_crop(qgis_app, s2_pair, tmp_path):
    path, hr, bic = s2_pair
    out = tmp_path / "sr.tif"
    _run({"INPUT": str(path), "SCALE": 4.0, "OUTPUT": str(out)})
    ds = gdal.Open(str(out))
    assert (ds.RasterYSize, ds.RasterXSize, ds.RasterCount) == (128, 128, 4)
    sr = ds.ReadAsArray().astype(np.float32) * 1e-4
    gain = psnr(hr, sr, 1.0) - psnr(hr, bic, 1.0)
    assert gain > GAIN_X4_PIN, gain


def test_qgis_process_and_modeler_chain_super_resolve_then_dehaze(qgis_env, s2_pair, tmp_path):
    assert run_qgis_process(qgis_env, "plugins", "enable", "rsrestore").returncode == 0
    assert "rsrestore:super_resolve" in run_qgis_process(qgis_env, "list").stdout
    path, _, _ = s2_pair
    bad = tmp_path / "bad.tif"
    r = run_qgis_process(qgis_env, "run", "rsrestore:super_resolve", "--", f"INPUT={path}", "TARGET_RESOLUTION=1",
                         f"OUTPUT={bad}")
    assert r.returncode == 1 and "outside 1-8" in r.stdout + r.stderr and not bad.exists()

    model_file = then_dehaze(tmp_path / "sr_then_dehaze.model3", "rsrestore:super_resolve", {"INPUT": "coarse"},
                             {"SCALE": 2.0})
    result = tmp_path / "chain.tif"
    r = run_qgis_process(qgis_env, "run", str(model_file), "--", f"coarse={path}", f"dehaze:result={result}")
    assert r.returncode == 0, r.stdout + r.stderr
    src, dst = gdal.Open(str(path)), gdal.Open(str(result))
    assert (dst.RasterYSize, dst.RasterXSize, dst.RasterCount) == (64, 64, 4)
    gt_in, gt_out = src.GetGeoTransform(), dst.GetGeoTransform()
    np.testing.assert_allclose(gt_out, (gt_in[0], gt_in[1] / 2, 0.0, gt_in[3], 0.0, gt_in[5] / 2))
