"""The plugin through real QGIS: in-process Processing, qgis_process subprocesses, packaged plugin."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from tests.conftest import run_qgis_process
from tests.fixtures import rasters

qgis_core = pytest.importorskip("qgis.core", reason="python3-qgis is not installed (run `make install`)")
pytestmark = pytest.mark.qgis

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "models" / "demo-smooth-bgrn"
PARAMS = ["INPUT", "BANDS", "MODEL", "EXTENT", "STEPS", "TILE_SIZE", "OVERLAP", "SEED", "DEVICE", "COG", "OUTPUT"]


def _alg(qgis_app):
    from qgis.core import QgsApplication

    alg = QgsApplication.processingRegistry().algorithmById("rsrestore:restore")
    assert alg is not None
    return alg


def test_algorithm_parameters_and_help(qgis_app):
    from qgis.core import QgsProcessingParameterDefinition

    alg = _alg(qgis_app)
    names = [p.name() for p in alg.parameterDefinitions()]
    assert names == PARAMS
    advanced = {p.name() for p in alg.parameterDefinitions()
                if p.flags() & QgsProcessingParameterDefinition.FlagAdvanced}
    assert advanced == {"TILE_SIZE", "OVERLAP", "SEED", "DEVICE", "COG"}
    assert all(p.help() for p in alg.parameterDefinitions() if p.name() != "OUTPUT")
    assert "temporary file" in alg.shortHelpString() and alg.displayName() == "Restore raster with a model bundle"


def test_check_parameter_values_names_band_problem(qgis_app, tmp_path):
    from qgis.core import QgsProcessingContext

    two = rasters.write(tmp_path / "two.tif", np.round(rasters.scene(2, 30, 30) * 1e4))
    ok, msg = _alg(qgis_app).checkParameterValues(
        {"INPUT": str(two), "MODEL": str(DEMO), "OUTPUT": str(tmp_path / "o.tif")}, QgsProcessingContext())
    assert not ok and "needs 4 band(s)" in msg and "BANDS" in msg


def test_run_in_process_matches_core_api(qgis_app, tmp_path, bgrn_tif):
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    from rscore.runtime import RestoreRequest, restore

    out = tmp_path / "qgis.tif"
    params = {"INPUT": str(bgrn_tif), "MODEL": str(DEMO), "STEPS": 3, "SEED": 4, "TILE_SIZE": 64, "OVERLAP": 8,
              "OUTPUT": str(out)}
    res, ok = _alg(qgis_app).run(params, QgsProcessingContext(), QgsProcessingFeedback())
    assert ok and res["OUTPUT"] == str(out)
    ref = tmp_path / "api.tif"
    restore(RestoreRequest(str(bgrn_tif), str(DEMO), str(ref), steps=3, seed=4, tile_size_px=64, overlap_px=8))
    np.testing.assert_array_equal(gdal.Open(str(out)).ReadAsArray(), gdal.Open(str(ref)).ReadAsArray())


def test_cancel_in_process_leaves_no_output(qgis_app, tmp_path, bgrn_tif):
    from qgis.core import QgsProcessingContext, QgsProcessingException, QgsProcessingFeedback

    fb = QgsProcessingFeedback()
    fb.progressChanged.connect(lambda p: fb.cancel() if p > 20 else None)
    out = tmp_path / "o.tif"
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        _alg(qgis_app).run({"INPUT": str(bgrn_tif), "MODEL": str(DEMO), "TILE_SIZE": 64, "OUTPUT": str(out)},
                           QgsProcessingContext(), fb, {}, False)
    assert list(tmp_path.iterdir()) == []


# ---- qgis_process --------------------------------------------------------------------------------------------

@pytest.fixture()
def enabled_env(qgis_env):
    r = run_qgis_process(qgis_env, "plugins", "enable", "rsrestore")
    assert r.returncode == 0, r.stdout + r.stderr
    return qgis_env


def test_qgis_process_lists_and_runs(enabled_env, tmp_path, bgrn_tif):
    listing = run_qgis_process(enabled_env, "list")
    assert "rsrestore:restore" in listing.stdout
    out = tmp_path / "qp.tif"
    r = run_qgis_process(enabled_env, "run", "rsrestore:restore", "--", f"INPUT={bgrn_tif}", f"MODEL={DEMO}", "SEED=2",
            f"OUTPUT={out}")
    assert r.returncode == 0, r.stdout + r.stderr
    src, dst = gdal.Open(str(bgrn_tif)), gdal.Open(str(out))
    assert dst.GetProjection() == src.GetProjection()
    assert dst.GetGeoTransform() == src.GetGeoTransform()
    assert dst.RasterCount == 4 and dst.GetRasterBand(1).DataType == gdal.GDT_UInt16
    a, b = dst.ReadAsArray().astype(int), src.ReadAsArray().astype(int)
    assert 5 < np.abs(a - b).mean() < 300  # smoothed, not replaced


def test_qgis_process_refuses_two_bands(enabled_env, tmp_path):
    two = rasters.write(tmp_path / "two.tif", np.round(rasters.scene(2, 30, 30) * 1e4))
    out = tmp_path / "o.tif"
    r = run_qgis_process(enabled_env, "run", "rsrestore:restore", "--", f"INPUT={two}", f"MODEL={DEMO}",
                         f"OUTPUT={out}")
    assert r.returncode == 1
    assert "needs 4 band(s)" in r.stdout + r.stderr
    assert not out.exists()


# ---- the packaged plugin without torch / without onnxruntime ---------------------------------------------------
def _blocked(tmp_path: Path, block: str, bgrn: Path) -> dict:
    from tools.build_plugin import build_folder

    plugins = tmp_path / "plugins"
    plugins.mkdir(exist_ok=True)
    build_folder(plugins)
    out = tmp_path / f"out_{block.replace(',', '_') or 'none'}.tif"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["QT_QPA_PLATFORM"] = "offscreen"
    r = subprocess.run(["/usr/bin/python3", str(ROOT / "tests" / "fixtures" / "run_plugin_blocked.py"),
                        str(plugins), block, str(bgrn), str(DEMO), str(out)],
                       capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert line, r.stdout + r.stderr
    return json.loads(line[-1])


def test_packaged_plugin_runs_without_torch(tmp_path, bgrn_tif):
    res = _blocked(tmp_path, "torch", bgrn_tif)
    assert res["ok"], res
    assert res["modules"] == []
    assert "/plugins/rsrestore/rscore/" in res["rscore_file"]  # the copy inside the plugin, not the repo


def test_missing_onnxruntime_explained(tmp_path, bgrn_tif):
    res = _blocked(tmp_path, "onnxruntime,torch", bgrn_tif)
    assert res["loaded"] and not res["ok"]
    assert "onnxruntime is not installed" in res["error"] and "pip install" in res["error"]
    assert not list(tmp_path.glob("out_*.tif"))


def test_input_layer_is_resolved_once_per_phase(qgis_app, tmp_path, bgrn_tif):
    """Validation and the run each load the INPUT layer once (it was loaded again to build the request)."""
    from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingFeedback

    alg = QgsApplication.processingRegistry().createAlgorithmById("rsrestore:restore")
    calls = []
    real = alg.file_raster

    def counting(parameters, name, context, what):  # noqa: ANN001, ANN202
        calls.append(name)
        return real(parameters, name, context, what)

    alg.file_raster = counting
    params = {"INPUT": str(bgrn_tif), "MODEL": str(DEMO), "STEPS": 1, "TILE_SIZE": 64,
              "OUTPUT": str(tmp_path / "o.tif")}
    ok, msg = alg.checkParameterValues(params, QgsProcessingContext())
    assert ok, msg
    assert calls == ["INPUT"]
    calls.clear()
    res = alg.processAlgorithm(params, QgsProcessingContext(), QgsProcessingFeedback())
    assert calls == ["INPUT"] and Path(res["OUTPUT"]).is_file()
