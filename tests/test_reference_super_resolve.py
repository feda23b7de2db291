"""rsrestore:reference_super_resolve: parameters, a run through the Processing API with a reference on another
CRS, refusal of a reference elsewhere (checkParameterValues passes, the run fails naming the overlap, nothing
written), qgis_process, and a modeler chain that super-resolves with a reference then dehazes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from tests.conftest import run_qgis_process
from tests.fixtures import rasters
from tests.fixtures.modeler import then_dehaze

pytest.importorskip("qgis.core", reason="python3-qgis is not installed (run `make install`)")
pytestmark = pytest.mark.qgis

PARAMS = ["INPUT", "BANDS", "MODEL", "MODEL_FOLDER", "REFERENCE", "REFERENCE_BANDS", "SCALE", "TARGET_RESOLUTION",
          "EXTENT", "STEPS", "TILE_SIZE", "OVERLAP", "SEED", "DEVICE", "COG", "OUTPUT"]
ROOT_MODELS = Path(__file__).resolve().parents[1] / "models"
#: PSNR gain of the shipped refsr-bgrn (default: one pass) over sr-bgrn on the Bouconne pair below, by the
#: down-sampler's Gaussian PSF (LR pixels; 0 = a plain area average), measured for the bundle re-based on the fourth
#: sr-bgrn (shipped 2026-12-01): -0.11 dB with none, +0.18, +0.29 and +0.22 dB with 0.3, 0.5 and 0.7 LR px. The pins
#: sit 0.05 dB under them. History, area average: the bundle built on the third sr-bgrn's one pass measured +0.04
#: against that sr-bgrn and -0.35 against the fourth, which trained on area averages too and is 0.4 dB better there;
#: the two built on bicubic before it +0.20 and +0.27 (against the third), +0.04 (against the second). The re-based
#: bundle gains on sensor-like inputs and loses a little on the area average, where its transferred detail
#: over-sharpens what the fourth sr-bgrn already restores (docs/models/refsr-bgrn.md)
GAIN_OVER_PLAIN_PINS = {0.0: -0.16, 0.3: 0.13, 0.5: 0.24, 0.7: 0.17}
#: PSNR of a clean raster through the shipped refsr-bgrn at scale 1 (the July acquisition as reference) against
#: itself: measured 57.07 dB (largest difference 0.012 reflectance)
CLEAN_PSNR_PIN_DB = 55.0
GT_HR = (500000.0, 10.0, 0.0, 4100000.0, 0.0, -10.0)
GT_LR = (500000.0, 40.0, 0.0, 4100000.0, 0.0, -40.0)


def _alg():
    from qgis.core import QgsApplication

    return QgsApplication.processingRegistry().algorithmById("rsrestore:reference_super_resolve")


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("refsr_alg")
    hr = rasters.scene(4, 96, 96, seed=8)
    lr = hr.reshape(4, 24, 4, 24, 4).mean(axis=(2, 4))
    ref = rasters.write(d / "ref_utm.tif", np.round(hr * 1e4), "UInt16", geotransform=GT_HR, epsg=32633)
    ll = d / "ref_ll.tif"
    gdal.Warp(str(ll), str(ref), dstSRS="EPSG:4326")
    # 6 bands, blue, green, red, NIR as bands 6, 2, 4, 1: REFERENCE_BANDS picks them
    filler = rasters.scene(2, 96, 96, seed=9)
    six = np.concatenate([hr[3:4], hr[1:2], filler[0:1], hr[2:3], filler[1:2], hr[0:1]])
    return {"lr": rasters.write(d / "lr.tif", np.round(lr * 1e4), "UInt16", geotransform=GT_LR, epsg=32633),
            "ref": ref, "ref_ll": ll,
            "ref_six": rasters.write(d / "ref_six.tif", np.round(six * 1e4), "UInt16", geotransform=GT_HR,
                                     epsg=32633),
            "away": rasters.write(d / "away.tif", np.round(hr * 1e4), "UInt16",
                                  geotransform=(520000.0, 10.0, 0.0, 4100000.0, 0.0, -10.0), epsg=32633)}


def test_parameters(qgis_app):
    from qgis.core import QgsProcessingParameterDefinition

    alg = _alg()
    assert [p.name() for p in alg.parameterDefinitions()] == PARAMS
    assert not alg.parameterDefinition("REFERENCE").flags() & QgsProcessingParameterDefinition.FlagOptional
    assert alg.parameterDefinition("REFERENCE_BANDS").flags() & QgsProcessingParameterDefinition.FlagOptional
    assert "at least half of the output extent" in alg.shortHelpString()
    assert "plain super-resolution" in alg.shortHelpString()


def test_processing_run_with_a_reference_on_another_crs_and_reference_bands(qgis_app, bundles, pair, tmp_path):
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    class Log(QgsProcessingFeedback):
        lines: list[str] = []

        def pushInfo(self, info: str) -> None:  # noqa: N802 - QGIS API
            self.lines.append(info)

    out, out6 = tmp_path / "out.tif", tmp_path / "out6.tif"
    fb = Log()
    params = {"INPUT": str(pair["lr"]), "MODEL_FOLDER": str(bundles["toy-refsr"]), "REFERENCE": str(pair["ref_ll"]),
              "SCALE": 4.0, "OUTPUT": str(out)}
    ok, msg = _alg().checkParameterValues(params, QgsProcessingContext())
    assert ok, msg
    res, ok = _alg().run(params, QgsProcessingContext(), fb, {}, False)
    assert ok and res["OUTPUT"] == str(out)
    ds = gdal.Open(str(out))
    assert (ds.RasterYSize, ds.RasterXSize, ds.RasterCount) == (96, 96, 4)
    np.testing.assert_allclose(ds.GetGeoTransform(), GT_HR)
    assert any("reference covers 100 % of the output" in line for line in fb.lines)
    assert ds.GetMetadataItem("REFERENCE", "RSRESTORE") == "ref_ll.tif"
    # REFERENCE_BANDS picks blue, green, red, NIR out of six bands: the same result as the 4-band reference
    _alg().run({**params, "REFERENCE": str(pair["ref_six"]), "REFERENCE_BANDS": [6, 2, 4, 1], "OUTPUT": str(out6)},
               QgsProcessingContext(), QgsProcessingFeedback(), {}, False)
    _alg().run({**params, "REFERENCE": str(pair["ref"]), "OUTPUT": str(tmp_path / "out4.tif")},
               QgsProcessingContext(), QgsProcessingFeedback(), {}, False)
    np.testing.assert_array_equal(gdal.Open(str(out6)).ReadAsArray(),
                                  gdal.Open(str(tmp_path / "out4.tif")).ReadAsArray())


def test_qgis_process_refuses_a_reference_elsewhere_and_a_modeler_chain_runs(qgis_env, bundles, pair, tmp_path):
    assert run_qgis_process(qgis_env, "plugins", "enable", "rsrestore").returncode == 0
    assert "rsrestore:reference_super_resolve" in run_qgis_process(qgis_env, "list").stdout
    bad = tmp_path / "bad.tif"
    r = run_qgis_process(qgis_env, "run", "rsrestore:reference_super_resolve", "--", f"INPUT={pair['lr']}",
                         f"REFERENCE={pair['away']}", f"MODEL_FOLDER={bundles['toy-refsr']}", f"OUTPUT={bad}")
    assert r.returncode == 1 and "overlaps only 0 %" in r.stdout + r.stderr and not bad.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(("bad", ".bad"))]

    model_file = then_dehaze(tmp_path / "refsr_then_dehaze.model3", "rsrestore:reference_super_resolve",
                             {"INPUT": "coarse", "REFERENCE": "reference"},
                             {"MODEL_FOLDER": str(bundles["toy-refsr"]), "SCALE": 2.0})
    result = tmp_path / "chain.tif"
    r = run_qgis_process(qgis_env, "run", str(model_file), "--", f"coarse={pair['lr']}",
                         f"reference={pair['ref']}", f"dehaze:result={result}")
    assert r.returncode == 0, r.stdout + r.stderr
    dst = gdal.Open(str(result))
    assert (dst.RasterYSize, dst.RasterXSize, dst.RasterCount) == (48, 48, 4)
    np.testing.assert_allclose(dst.GetGeoTransform(), (500000.0, 20.0, 0.0, 4100000.0, 0.0, -20.0))


@pytest.mark.parametrize("psf_sigma_lr_px", sorted(GAIN_OVER_PLAIN_PINS))
def test_shipped_bgrn_model_against_plain_sr_with_a_real_other_date_reference(qgis_app, tmp_path, psf_sigma_lr_px):
    """Bouconne forest in November 2018 down-sampled x4 to 40 m (no noise), super-resolved with the July 2018
    acquisition of the same place (a scene the RefSR bundle never trained on) against plain super-resolution
    (sr-bgrn)."""
    from rscore.degradations.resample import DownsampleParams, downsample
    from rscore.metrics.fidelity import psnr
    from rscore.runtime import RestoreRequest, restore

    samples = Path(__file__).resolve().parents[1] / "data" / "samples"
    src = gdal.Open(str(samples / "s2_bouconne_20181115_bgrn.tif"))
    truth = src.ReadAsArray(0, 0, 224, 244).astype(np.float32)
    lr = downsample(truth, DownsampleParams(factor=4.0, psf_sigma_lr_px=psf_sigma_lr_px), np.random.default_rng(0))
    assert lr.shape == (4, 61, 56)
    gt = src.GetGeoTransform()
    lr_tif = rasters.write(tmp_path / "lr.tif", np.round(lr), "UInt16", geotransform=(gt[0], 40.0, 0.0, gt[3], 0.0,
                                                                                         -40.0), epsg=32631)
    out = {}
    for name, kw in (("plain", {}), ("refsr", {"aux_path": str(samples / "s2_bouconne_20180708_bgrn.tif")})):
        bundle = ROOT_MODELS / ("sr-bgrn" if name == "plain" else "refsr-bgrn")
        restore(RestoreRequest(str(lr_tif), str(bundle), str(tmp_path / f"{name}.tif"), scale_factor=4.0, **kw))
        out[name] = gdal.Open(str(tmp_path / f"{name}.tif")).ReadAsArray().astype(np.float32)
    gain = psnr(truth * 1e-4, out["refsr"] * 1e-4, 1.0) - psnr(truth * 1e-4, out["plain"] * 1e-4, 1.0)
    print(f"PSF {psf_sigma_lr_px} LR px: RefSR - plain SR {gain:+.3f} dB")
    assert gain > GAIN_OVER_PLAIN_PINS[psf_sigma_lr_px], gain


def test_shipped_bgrn_model_leaves_a_clean_raster_essentially_unchanged(qgis_app, tmp_path):
    """The November 2018 Bouconne sample at scale 1 with the July 2018 acquisition as reference: nothing to restore,
    so the output must stay the input (the no-harm case)."""
    from rscore.metrics.fidelity import psnr
    from rscore.runtime import RestoreRequest, restore

    samples = Path(__file__).resolve().parents[1] / "data" / "samples"
    clean = samples / "s2_bouconne_20181115_bgrn.tif"
    out = tmp_path / "out.tif"
    restore(RestoreRequest(str(clean), str(ROOT_MODELS / "refsr-bgrn"), str(out), scale_factor=1.0,
                           aux_path=str(samples / "s2_bouconne_20180708_bgrn.tif")))
    truth = gdal.Open(str(clean)).ReadAsArray().astype(np.float32) * 1e-4
    result = gdal.Open(str(out)).ReadAsArray().astype(np.float32) * 1e-4
    assert result.shape == truth.shape
    assert psnr(truth, result, 1.0) > CLEAN_PSNR_PIN_DB
