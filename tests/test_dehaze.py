"""rsrestore:dehaze with the shipped bundles: in-process Processing, qgis_process, the modeler chain."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from rscore.degradations.haze import add_haze
from rscore.metrics.fidelity import psnr
from tests.conftest import run_qgis_process
from tests.fixtures import rasters

pytest.importorskip("qgis.core", reason="python3-qgis is not installed (run `make install`)")
pytestmark = pytest.mark.qgis

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "samples"
PARAMS = ["INPUT", "BANDS", "MODEL", "MODEL_FOLDER", "EXTENT", "STEPS", "TILE_SIZE", "OVERLAP", "SEED", "DEVICE", "COG",
          "OUTPUT"]
BGRN_NM = (490.0, 560.0, 665.0, 842.0)
RGB_NM = (665.0, 560.0, 490.0)


def _alg(name: str = "rsrestore:dehaze"):
    from qgis.core import QgsApplication

    return QgsApplication.processingRegistry().algorithmById(name)


def _run(params: dict) -> dict:
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    res, ok = _alg().run(params, QgsProcessingContext(), QgsProcessingFeedback(), {}, False)
    assert ok
    return res


@pytest.fixture(scope="module")
def hazy_s2(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A 256 x 320 crop of the Sentinel-2 sample (held-out test window) with moderate synthetic haze."""
    ds = gdal.Open(str(SAMPLES / "s2_l1c_bgrn_512.tif"))
    clean = ds.ReadAsArray(100, 60, 320, 256).astype(np.float32) * 1e-4
    hazy = add_haze(clean, BGRN_NM, np.random.default_rng(3), level="moderate")[0].image
    gt = ds.GetGeoTransform()
    path = rasters.write(tmp_path_factory.mktemp("dehaze") / "hazy_s2.tif", np.round(hazy * 1e4), "UInt16",
                         geotransform=(gt[0] + 100 * gt[1], gt[1], 0.0, gt[3] + 60 * gt[5], 0.0, gt[5]), epsg=32618)
    return path, clean


def test_parameters(qgis_app):
    from qgis.core import QgsProcessingParameterDefinition

    alg = _alg()
    assert [p.name() for p in alg.parameterDefinitions()] == PARAMS
    adv = {p.name() for p in alg.parameterDefinitions() if p.flags() & QgsProcessingParameterDefinition.FlagAdvanced}
    assert adv == {"MODEL_FOLDER", "TILE_SIZE", "OVERLAP", "SEED", "DEVICE", "COG"}
    assert alg.parameterDefinition("MODEL_FOLDER").flags() & QgsProcessingParameterDefinition.FlagOptional
    model = alg.parameterDefinition("MODEL")
    assert model.defaultValue() == "auto" and model.options()[:3] == ["auto", "dehaze-bgrn", "dehaze-rgb"]
    for name in ("STEPS", "TILE_SIZE", "OVERLAP"):  # empty = the model's default, no sentinel values
        assert alg.parameterDefinition(name).defaultValue() is None


def test_bgrn_default_model_removes_haze_and_keeps_georeference(qgis_app, hazy_s2, tmp_path):
    path, clean = hazy_s2
    out = tmp_path / "dehazed.tif"
    _run({"INPUT": str(path), "OUTPUT": str(out)})
    src, dst = gdal.Open(str(path)), gdal.Open(str(out))
    assert dst.GetGeoTransform() == src.GetGeoTransform() and dst.GetProjection() == src.GetProjection()
    assert dst.RasterCount == 4 and dst.GetRasterBand(1).DataType == gdal.GDT_UInt16
    hazy = src.ReadAsArray().astype(np.float32) * 1e-4
    restored = dst.ReadAsArray().astype(np.float32) * 1e-4
    gain = psnr(clean, restored, 1.0) - psnr(clean, hazy, 1.0)
    assert gain > 5.0, gain


def test_result_does_not_depend_on_tile_size(qgis_app, hazy_s2, tmp_path):
    path, _ = hazy_s2
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    _run({"INPUT": str(path), "OUTPUT": str(a), "SEED": 7})
    _run({"INPUT": str(path), "OUTPUT": str(b), "SEED": 7, "TILE_SIZE": 128, "OVERLAP": 32})
    da = gdal.Open(str(a)).ReadAsArray().astype(np.int64)
    db = gdal.Open(str(b)).ReadAsArray().astype(np.int64)
    diff = np.abs(da - db)
    # receptive fields wider than the margin make tiles differ by a few DN at most, and rarely
    assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 10, (diff.mean(), diff.max())


def test_rgb_default_model(qgis_app, tmp_path):
    """8-bit RGB rendering of the Sentinel-2 sample (reflectance / 0.35) under moderate haze, and the 10 cm aerial
    sample, where the model is cautious (grey roofs and streets look like a veil without a NIR band)."""
    ds = gdal.Open(str(SAMPLES / "s2_l1c_bgrn_512.tif"))
    refl = ds.ReadAsArray(120, 80, 256, 192).astype(np.float32) * 1e-4
    s2 = np.round(np.clip(refl[[2, 1, 0]] / 0.35, 0, 1) * 255) / 255
    aerial = gdal.Open(str(SAMPLES / "aerial_rgb_512.tif")).ReadAsArray(0, 0, 256, 256).astype(np.float32) / 255.0
    gains = {}
    for name, clean in (("s2", s2), ("aerial", aerial)):
        hazy = np.clip(add_haze(clean, RGB_NM, np.random.default_rng(5), level="moderate")[0].image, 0, 1)
        src = rasters.write(tmp_path / f"hazy_{name}.tif", np.round(hazy * 255), "Byte", epsg=32612)
        out = tmp_path / f"o_{name}.tif"
        _run({"INPUT": str(src), "OUTPUT": str(out)})
        dst = gdal.Open(str(out))
        assert dst.GetRasterBand(1).DataType == gdal.GDT_Byte and dst.RasterCount == 3
        gains[name] = psnr(clean, dst.ReadAsArray() / 255.0, 1.0) - psnr(clean, np.round(hazy * 255) / 255.0, 1.0)
    # measured with the shipped dehaze-rgb (one pass): +7.2 dB on the Sentinel-2 rendering, +0.18 dB on the aerial
    assert gains["s2"] > 4.0 and gains["aerial"] > -0.5, gains


def test_two_bands_and_wrong_type_refused(qgis_app, tmp_path):
    from qgis.core import QgsProcessingContext

    two = rasters.write(tmp_path / "two.tif", np.round(rasters.scene(2, 40, 40) * 1e4))
    ok, msg = _alg().checkParameterValues({"INPUT": str(two), "OUTPUT": str(tmp_path / "o.tif")},
                                          QgsProcessingContext())
    assert not ok and "needs 4 bands" in msg and "2 band(s)" in msg and "BANDS" in msg
    byte4 = rasters.write(tmp_path / "b4.tif", np.round(rasters.scene(4, 40, 40) * 255), "Byte")
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="data type Byte is not supported by model 'dehaze-bgrn'"):
        _run({"INPUT": str(byte4), "OUTPUT": str(tmp_path / "o.tif")})
    assert not (tmp_path / "o.tif").exists()



def test_qgis_process_dehaze_and_modeler_chain(qgis_env, hazy_s2, tmp_path):
    assert run_qgis_process(qgis_env, "plugins", "enable", "rsrestore").returncode == 0
    assert "rsrestore:dehaze" in run_qgis_process(qgis_env, "list").stdout
    path, _ = hazy_s2
    two = rasters.write(tmp_path / "two.tif", np.round(rasters.scene(2, 40, 40) * 1e4))
    r = run_qgis_process(qgis_env, "run", "rsrestore:dehaze", "--", f"INPUT={two}", f"OUTPUT={tmp_path / 'x.tif'}")
    assert r.returncode == 1 and "needs 4 bands" in r.stdout + r.stderr and not (tmp_path / "x.tif").exists()
    out = tmp_path / "chain.tif"
    r = run_qgis_process(qgis_env, "run", str(ROOT / "tests" / "fixtures" / "dehaze_chain.model3"), "--", f"hazy={path}",
            f"second_model={ROOT / 'models' / 'demo-smooth-bgrn'}", f"second:result={out}")
    assert r.returncode == 0, r.stdout + r.stderr
    dst, src = gdal.Open(str(out)), gdal.Open(str(path))
    assert dst.GetGeoTransform() == src.GetGeoTransform() and dst.RasterCount == 4
