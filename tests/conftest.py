"""Shared fixtures: bundles built by the project's own export code, synthetic rasters."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fixtures import rasters  # noqa: E402


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every fixture bundle of :mod:`export.build_bundles`, built once per session."""
    from export.build_bundles import BUILDERS

    out = tmp_path_factory.mktemp("bundles")
    return {name: build(out).root for name, build in BUILDERS.items()}


@pytest.fixture(scope="session")
def bgrn_tif(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4-band uint16 reflectance x 1e4, 150 x 170 px, UTM 33N."""
    return rasters.reflectance_uint16(tmp_path_factory.mktemp("rasters") / "bgrn.tif")


@pytest.fixture()
def qgis_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a qgis_process subprocess with an isolated profile and the built plugin."""
    from tools.build_plugin import build_folder

    plugins = tmp_path / "plugins"
    plugins.mkdir()
    build_folder(plugins)
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ)
    env.update(HOME=str(home), QGIS_PLUGINPATH=str(plugins), QT_QPA_PLATFORM="offscreen",
               XDG_RUNTIME_DIR=str(tmp_path / "xdg"))
    return env


@pytest.fixture(scope="session")
def qgis_app():
    """A headless QgsApplication with the rsrestore provider registered from the source tree."""
    pytest.importorskip("qgis.core", reason="python3-qgis is not installed (run `make install`)")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from qgis.core import QgsApplication

    app = QgsApplication.instance() or QgsApplication([], False)
    app.initQgis()
    from qgis_plugin.plugin import RsRestorePlugin

    plugin = RsRestorePlugin()
    plugin.initProcessing()
    yield app
    plugin.unload()


def run_qgis_process(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """``tools/qgis_process ARGS`` as a subprocess (what a user scripts)."""
    return subprocess.run([str(ROOT / "tools" / "qgis_process"), *args], env=env, capture_output=True, text=True,
                          timeout=600)
