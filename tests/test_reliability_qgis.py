"""Bad input through QGIS (issue 10; docs/reliability.md): parameter bounds, unreadable inputs, help texts,
and qgis_process under another Python's environment."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_qgis_process
from tests.fixtures import rasters

pytest.importorskip("qgis.core", reason="python3-qgis is not installed (run `make install`)")
pytestmark = pytest.mark.qgis

ROOT = Path(__file__).resolve().parents[1]


def _alg(name: str):
    from qgis.core import QgsApplication

    return QgsApplication.processingRegistry().algorithmById(f"rsrestore:{name}")


def test_seed_beyond_32_bits_is_refused(qgis_app, tmp_path):
    """7. QGIS stores integer parameters in 32 bits: a larger SEED must not silently become another number."""
    from qgis.core import QgsProcessingContext

    src = rasters.write(tmp_path / "in.tif", np.round(rasters.scene(4, 40, 40) * 1e4))
    seed = _alg("dehaze").parameterDefinition("SEED")
    assert seed.maximum() == 2**31 - 1
    ctx = QgsProcessingContext()
    assert not seed.checkValueIsAcceptable(2**31, ctx) and seed.checkValueIsAcceptable(2**31 - 1, ctx)
    ok, _ = _alg("dehaze").checkParameterValues({"INPUT": str(src), "SEED": 3_000_000_000,
                                                 "OUTPUT": str(tmp_path / "o.tif")}, ctx)
    assert not ok


def test_text_file_named_tif_is_not_a_raster(qgis_app, tmp_path):
    """14. A file GDAL cannot open gets "not a raster GDAL can read", not QGIS's "not found"."""
    from qgis.core import QgsProcessingContext

    fake = tmp_path / "notes.tif"
    fake.write_text("just text")
    ok, msg = _alg("dehaze").checkParameterValues({"INPUT": str(fake), "OUTPUT": str(tmp_path / "o.tif")},
                                                  QgsProcessingContext())
    assert not ok and "is not a raster GDAL can read" in msg and "notes.tif" in msg


def test_help_takes_default_steps_from_the_shipped_manifests(qgis_app):
    """19. The help's default step counts are read from the shipped bundles."""
    for alg, bundles in (("dehaze", ("dehaze-bgrn", "dehaze-rgb")), ("remove_clouds", ("clouds-bgrn", "clouds-rgb")),
                         ("super_resolve", ("sr-bgrn", "sr-rgb"))):
        text = _alg(alg).shortHelpString()
        for b in bundles:
            steps = json.loads((ROOT / "models" / b / "manifest.json").read_text())["sampler"]["default_steps"]
            assert f"{b}: " + ("one pass, no diffusion" if steps == 0 else f"{steps} step(s)") in text, (alg, b)
        assert "(10)" not in text


def test_gpu_advice_only_when_a_gpu_could_be_used():
    """12. onnxruntime failures mention GPU memory only when CUDA could have been used."""
    from qgis_plugin.algorithms.base import _gpu_in_use

    assert _gpu_in_use("cpu") is False
    import onnxruntime

    assert _gpu_in_use("auto") == ("CUDAExecutionProvider" in onnxruntime.get_available_providers())


def test_qgis_process_survives_another_pythons_environment(qgis_env, tmp_path):
    """10. PYTHONHOME/PYTHONPATH of another interpreter (pyenv, conda, venv) used to crash qgis_process (SIP)."""
    import sys

    env = dict(qgis_env)
    env.update(PYTHONHOME=sys.base_prefix if sys.base_prefix != "/usr" else "/nonexistent/python",
               PYTHONPATH="/nonexistent/site-packages", PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}")
    r = run_qgis_process(env, "plugins", "enable", "rsrestore")
    assert r.returncode == 0, r.stdout + r.stderr
    r = run_qgis_process(env, "list")
    assert r.returncode == 0 and "rsrestore:dehaze" in r.stdout, r.stderr
