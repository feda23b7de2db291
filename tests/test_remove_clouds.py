"""rsrestore:remove_clouds with the shipped bundles: in-process Processing and qgis_process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from rscore.degradations.clouds import add_clouds
from rscore.metrics.fidelity import psnr
from tests.conftest import run_qgis_process
from tests.fixtures import rasters

pytest.importorskip("qgis.core", reason="python3-qgis is not installed (run `make install`)")
pytestmark = pytest.mark.qgis

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "samples"
PARAMS = ["INPUT", "BANDS", "MODEL", "MODEL_FOLDER", "ETA", "MASK", "MASK_BAND", "AUTO_MASK", "MASK_THRESHOLD",
          "SAMPLES", "EXTENT", "STEPS", "TILE_SIZE", "OVERLAP", "SEED", "DEVICE", "COG", "OUTPUT", "UNCERTAINTY_OUTPUT"]
BGRN_NM = (490.0, 560.0, 665.0, 842.0)
RGB_NM = (665.0, 560.0, 490.0)


def _alg():
    from qgis.core import QgsApplication

    return QgsApplication.processingRegistry().algorithmById("rsrestore:remove_clouds")


def _run(params: dict) -> dict:
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    res, ok = _alg().run(params, QgsProcessingContext(), QgsProcessingFeedback(), {}, False)
    assert ok
    return res


def _read(path: Path) -> np.ndarray:
    ds = gdal.Open(str(path))
    return ds.ReadAsArray()


@pytest.fixture(scope="module")
def cloudy_s2(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray]:
    """A 192 x 256 crop of the Sentinel-2 sample (test window) under visible thin clouds: (path, clean, cloud
    mask). The first seed from 11 whose clouds cost the crop at least 4.5 dB (input below 25 dB PSNR, like the
    "thin" condition of docs/quality.md): the faintest veils of the generator (seed 11: median opacity 0.04,
    29 dB) are left alone by the corpus-trained bundle, as its model card says."""
    ds = gdal.Open(str(SAMPLES / "s2_l1c_bgrn_512.tif"))
    clean = ds.ReadAsArray(120, 80, 256, 192).astype(np.float32) * 1e-4
    for seed in range(11, 40):
        res, _ = add_clouds(clean, BGRN_NM, np.random.default_rng(seed), cloud_type="thin")
        if psnr(clean, res.image, 1.0) < 25.0:
            break
    else:
        raise AssertionError("no seed in 11-39 gives visible thin clouds on the sample crop")
    gt = ds.GetGeoTransform()
    path = rasters.write(tmp_path_factory.mktemp("clouds") / "cloudy_s2.tif", np.round(res.image * 1e4), "UInt16",
                         geotransform=(gt[0] + 120 * gt[1], gt[1], 0.0, gt[3] + 80 * gt[5], 0.0, gt[5]), epsg=32618)
    return path, clean, res.mask > 0.02


def test_parameters(qgis_app):
    from qgis.core import QgsProcessingParameterDefinition

    alg = _alg()
    assert [p.name() for p in alg.parameterDefinitions()] == PARAMS
    adv = {p.name() for p in alg.parameterDefinitions() if p.flags() & QgsProcessingParameterDefinition.FlagAdvanced}
    assert adv == {"MODEL_FOLDER", "TILE_SIZE", "OVERLAP", "SEED", "DEVICE", "COG", "MASK_BAND", "MASK_THRESHOLD"}
    assert alg.parameterDefinition("AUTO_MASK").defaultValue() is True
    for name in ("MODEL_FOLDER", "MASK", "UNCERTAINTY_OUTPUT", "ETA", "MASK_THRESHOLD"):
        assert alg.parameterDefinition(name).flags() & QgsProcessingParameterDefinition.FlagOptional
    assert alg.parameterDefinition("ETA").defaultValue() is None  # empty: the model's default (0.3 shipped)
    assert alg.parameterDefinition("MODEL").options()[:3] == ["auto", "clouds-bgrn", "clouds-rgb"]


def test_bgrn_default_model_removes_thin_clouds_and_keeps_georeference(qgis_app, cloudy_s2, tmp_path):
    path, clean, _ = cloudy_s2
    out = tmp_path / "clear.tif"
    _run({"INPUT": str(path), "OUTPUT": str(out)})
    src, dst = gdal.Open(str(path)), gdal.Open(str(out))
    assert dst.GetGeoTransform() == src.GetGeoTransform() and dst.GetProjection() == src.GetProjection()
    assert dst.RasterCount == 4 and dst.GetRasterBand(1).DataType == gdal.GDT_UInt16
    cloudy = src.ReadAsArray().astype(np.float32) * 1e-4
    restored = dst.ReadAsArray().astype(np.float32) * 1e-4
    gain = psnr(clean, restored, 1.0) - psnr(clean, cloudy, 1.0)
    # measured 1.53 dB here (one pass with the automatic mask; 1.7 dB without the mask): on this dark scene the
    # corpus-trained bundle removes less thin cloud than on the held-out scenes of docs/quality.md (+7.6 dB)
    assert gain > 1.0, gain


def test_automatic_mask_by_default_and_its_switch(qgis_app, bundles, tmp_path):
    """AUTO_MASK (default on) restores only what the model's own cloud map marks; off, every pixel may change;
    a model without a cloud map runs unmasked with a warning."""
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    values = np.full((4, 96, 96), 1000, np.uint16)
    values[:, 30:54, 40:64] = 9000  # toy-de-mask's cloud map marks very bright pixels
    src = rasters.write(tmp_path / "in.tif", values, "UInt16")
    auto, off, old = tmp_path / "auto.tif", tmp_path / "off.tif", tmp_path / "old.tif"
    _run({"INPUT": str(src), "MODEL_FOLDER": str(bundles["toy-de-mask"]), "OUTPUT": str(auto)})
    changed = np.any(_read(auto) != values, axis=0)
    assert changed[30:54, 40:64].all() and not changed[:28].any() and not changed[:, :38].any()
    _run({"INPUT": str(src), "MODEL_FOLDER": str(bundles["toy-de-mask"]), "AUTO_MASK": False, "OUTPUT": str(off)})
    assert np.any(_read(off) != values, axis=0)[:28].mean() > 0.9

    class Warn(QgsProcessingFeedback):
        warnings: list[str] = []

        def pushWarning(self, text: str) -> None:  # noqa: N802 - QGIS API
            self.warnings.append(text)

    fb = Warn()
    _, ok = _alg().run({"INPUT": str(src), "MODEL_FOLDER": str(bundles["toy-de"]), "OUTPUT": str(old)},
                       QgsProcessingContext(), fb, {}, False)
    assert ok and any("cannot find clouds by itself" in w for w in fb.warnings)


def test_result_does_not_depend_on_tile_size(qgis_app, cloudy_s2, tmp_path):
    path, _, _ = cloudy_s2
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    _run({"INPUT": str(path), "OUTPUT": str(a), "SEED": 7, "STEPS": 5})
    _run({"INPUT": str(path), "OUTPUT": str(b), "SEED": 7, "STEPS": 5, "TILE_SIZE": 128, "OVERLAP": 32})
    diff = np.abs(_read(a).astype(np.int64) - _read(b).astype(np.int64))
    # receptive fields wider than the margin make tiles differ by a few DN at most, and rarely
    assert diff.mean() < 2.0 and np.percentile(diff, 99) <= 20, (diff.mean(), np.percentile(diff, 99))


def test_mask_keeps_clear_pixels_and_uncertainty_is_high_under_cloud(qgis_app, cloudy_s2, tmp_path):
    path, _, cloud = cloudy_s2
    cloud = cloud.copy()
    cloud[:, 128:] = False  # the right half is declared clear: those tiles are not processed
    mask = rasters.write(tmp_path / "mask.tif", cloud[None].astype(np.uint8), "Byte",
                         geotransform=gdal.Open(str(path)).GetGeoTransform(), epsg=32618)
    out, unc = tmp_path / "o.tif", tmp_path / "u.tif"
    res = _run({"INPUT": str(path), "OUTPUT": str(out), "MASK": str(mask), "SAMPLES": 2, "STEPS": 3,
                "TILE_SIZE": 128, "OVERLAP": 16, "UNCERTAINTY_OUTPUT": str(unc)})
    assert res["UNCERTAINTY_OUTPUT"] == str(unc)
    got, inp, std = _read(out), _read(path), _read(unc)
    np.testing.assert_array_equal(got[:, ~cloud], inp[:, ~cloud])
    assert (got[:, cloud] != inp[:, cloud]).mean() > 0.5
    assert (std[:, ~cloud] == 0).all() and std[:, cloud].mean() > 0
    assert gdal.Open(str(unc)).GetRasterBand(1).DataType == gdal.GDT_Float32


def test_uncertainty_needs_several_samples(qgis_app, cloudy_s2, tmp_path):
    from qgis.core import QgsProcessingException

    path, _, _ = cloudy_s2
    with pytest.raises(QgsProcessingException, match="SAMPLES to 2 or more"):
        _run({"INPUT": str(path), "OUTPUT": str(tmp_path / "o.tif"), "UNCERTAINTY_OUTPUT": str(tmp_path / "u.tif")})
    assert not (tmp_path / "o.tif").exists()


def test_rgb_default_model(qgis_app, tmp_path):
    """8-bit RGB rendering of the Sentinel-2 sample (reflectance / 0.35, the RGB bundle's training domain)
    under thick clouds. (On the 10 cm aerial sample the RGB model gains little: see docs/quality.md.)"""
    ds = gdal.Open(str(SAMPLES / "s2_l1c_bgrn_512.tif"))
    refl = ds.ReadAsArray(120, 80, 256, 192).astype(np.float32) * 1e-4
    clean = np.round(np.clip(refl[[2, 1, 0]] / 0.35, 0, 1) * 255) / 255
    cloudy = np.clip(add_clouds(clean, RGB_NM, np.random.default_rng(6), cloud_type="thick")[0].image, 0, 1)
    src = rasters.write(tmp_path / "cloudy_rgb.tif", np.round(cloudy * 255), "Byte", epsg=32618)
    out = tmp_path / "o.tif"
    _run({"INPUT": str(src), "OUTPUT": str(out)})
    dst = gdal.Open(str(out))
    assert dst.GetRasterBand(1).DataType == gdal.GDT_Byte and dst.RasterCount == 3
    gain = psnr(clean, dst.ReadAsArray() / 255.0, 1.0) - psnr(clean, np.round(cloudy * 255) / 255.0, 1.0)
    assert gain > 6.0, gain  # measured 10.3 dB with the shipped clouds-rgb (reference + automatic mask)


def test_two_bands_refused(qgis_app, tmp_path):
    from qgis.core import QgsProcessingContext

    two = rasters.write(tmp_path / "two.tif", np.round(rasters.scene(2, 40, 40) * 1e4))
    ok, msg = _alg().checkParameterValues({"INPUT": str(two), "OUTPUT": str(tmp_path / "o.tif")},
                                          QgsProcessingContext())
    assert not ok and "needs 4 bands" in msg and "2 band(s)" in msg and "BANDS" in msg


def test_eta_refused_for_a_model_without_reference_fusion(qgis_app, bundles, bgrn_tif, tmp_path):
    from qgis.core import QgsProcessingContext, QgsProcessingException, QgsProcessingFeedback

    params = {"INPUT": str(bgrn_tif), "MODEL_FOLDER": str(bundles["toy-ddim"]), "ETA": 0.5,
              "OUTPUT": str(tmp_path / "o.tif")}
    with pytest.raises(QgsProcessingException, match="ETA applies to Diffusion Enhancement .*'toy-ddim' \\(ddim\\)"):
        _alg().processAlgorithm(params, QgsProcessingContext(), QgsProcessingFeedback())
    assert not (tmp_path / "o.tif").exists()


def test_qgis_process_remove_clouds_with_mask(qgis_env, cloudy_s2, tmp_path):
    assert run_qgis_process(qgis_env, "plugins", "enable", "rsrestore").returncode == 0
    assert "rsrestore:remove_clouds" in run_qgis_process(qgis_env, "list").stdout
    two = rasters.write(tmp_path / "two.tif", np.round(rasters.scene(2, 40, 40) * 1e4))
    r = run_qgis_process(qgis_env, "run", "rsrestore:remove_clouds", "--", f"INPUT={two}",
                         f"OUTPUT={tmp_path / 'x.tif'}")
    assert r.returncode == 1 and "needs 4 bands" in r.stdout + r.stderr and not (tmp_path / "x.tif").exists()
    path, _, cloud = cloudy_s2
    mask = rasters.write(tmp_path / "mask.tif", cloud[None].astype(np.uint8), "Byte",
                         geotransform=gdal.Open(str(path)).GetGeoTransform(), epsg=32618)
    out = tmp_path / "o.tif"
    r = run_qgis_process(qgis_env, "run", "rsrestore:remove_clouds", "--", f"INPUT={path}", f"MASK={mask}",
                         "STEPS=3", "ETA=0.5", f"OUTPUT={out}")
    assert r.returncode == 0, r.stdout + r.stderr
    got, inp = _read(out), _read(path)
    np.testing.assert_array_equal(got[:, ~cloud], inp[:, ~cloud])
    dst, src = gdal.Open(str(out)), gdal.Open(str(path))
    assert dst.GetGeoTransform() == src.GetGeoTransform() and dst.GetProjection() == src.GetProjection()
