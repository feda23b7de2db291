"""Screenshots for docs/user-guide.md: the real QGIS Processing dialogs of the rsrestore algorithms, and map
renderings of an input and its output as QGIS shows them when loaded.

    /usr/bin/python3 tools/screenshots.py --out docs/images      (QGIS's Python; no display needed)

Runs QGIS headless (Qt's offscreen platform: widgets are drawn into images, no X server or Xvfb) with the
plugin from this source tree and the shipped models; every picture is regenerated from scratch.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, "/usr/share/qgis/python/plugins")  # QGIS's own "processing" plugin (Debian's location)

from qgis.core import (  # noqa: E402
    QgsApplication,
    QgsMapRendererSequentialJob,
    QgsMapSettings,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProject,
    QgsRasterLayer,
)
from qgis.PyQt.QtCore import QSize  # noqa: E402
from qgis.PyQt.QtGui import QColor  # noqa: E402

SAMPLES = ROOT / "data" / "samples"
#: algorithm id -> (picture name, parameters preset in the dialog)
DIALOGS = {
    "rsrestore:dehaze": ("guide-dialog-dehaze", {"INPUT": str(SAMPLES / "s2_hazy_bgrn_512.tif")}),
    "rsrestore:remove_clouds": ("guide-dialog-remove-clouds", {"INPUT": str(SAMPLES / "l8_cloudy_refl_bgrn.tif")}),
    "rsrestore:super_resolve": ("guide-dialog-super-resolve", {"INPUT": str(SAMPLES / "s2_l1c_bgrn_512.tif"),
                                                               "SCALE": 2.5}),
    "rsrestore:reference_super_resolve": (
        "guide-dialog-reference-super-resolve",
        {"INPUT": str(SAMPLES / "s2_bouconne_20181115_bgrn.tif"),
         "REFERENCE": str(SAMPLES / "s2_bouconne_20180708_bgrn.tif"), "SCALE": 2.0}),
    "rsrestore:enhance_decoded": ("guide-dialog-enhance-decoded", {"INPUT": str(SAMPLES / "aerial_rgb_512.tif"),
                                                                   "CODEC": "jpeg"}),
    "rsrestore:compress_raster": ("guide-dialog-compress-raster", {"INPUT": str(SAMPLES / "aerial_rgb_512.tif")}),
    "rsrestore:models": ("guide-dialog-models", {}),
}


def start_qgis() -> QgsApplication:
    app = QgsApplication([], True)
    app.initQgis()
    from processing.core.Processing import Processing

    Processing.initialize()
    from qgis_plugin.plugin import RsRestorePlugin

    plugin = RsRestorePlugin()
    plugin.initProcessing()
    app._rsrestore_plugin = plugin  # keep the provider alive
    return app


def dialog_shot(app: QgsApplication, alg_id: str, preset: dict, png: Path) -> Path:
    from processing.gui.AlgorithmDialog import AlgorithmDialog

    alg = QgsApplication.processingRegistry().algorithmById(alg_id).create()
    dlg = AlgorithmDialog(alg, False, None)
    layers = []
    for name, value in preset.items():
        if name == "INPUT":
            layer = QgsRasterLayer(value, Path(value).stem)
            QgsProject.instance().addMapLayer(layer)
            layers.append(layer)
            value = layer
        wrapper = dlg.mainWidget().wrappers.get(name)
        if wrapper is not None:
            wrapper.setParameterValue(value, QgsProcessingContext())
    dlg.resize(920, 720)
    dlg.show()
    app.processEvents()
    dlg.grab().save(str(png))
    dlg.close()
    for layer in layers:
        QgsProject.instance().removeMapLayer(layer.id())
    return png


def map_shot(layer: QgsRasterLayer, png: Path, size_px: int = 420) -> Path:
    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(layer.crs())
    settings.setExtent(layer.extent())
    settings.setOutputSize(QSize(size_px, size_px))
    settings.setBackgroundColor(QColor(255, 255, 255))
    job = QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    job.renderedImage().save(str(png))
    return png


def result_shots(out_dir: Path) -> list[Path]:
    """The hazy sample as QGIS shows a raster without colour interpretation, and the dehazed output as it is
    loaded after the algorithm (named, true colour)."""
    src = SAMPLES / "s2_hazy_bgrn_512.tif"
    alg = QgsApplication.processingRegistry().algorithmById("rsrestore:dehaze")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "dehazed.tif"
        context, feedback = QgsProcessingContext(), QgsProcessingFeedback()
        context.setProject(QgsProject.instance())
        context.addLayerToLoadOnCompletion(str(out), QgsProcessingContext.LayerDetails("x", QgsProject.instance(),
                                                                                       "OUTPUT"))
        inp = QgsRasterLayer(str(src), "s2_hazy_bgrn_512")
        QgsProject.instance().addMapLayer(inp)
        _, ok = alg.run({"INPUT": inp.id(), "SEED": 0, "OUTPUT": str(out)}, context, feedback, {}, False)
        if not ok:
            raise SystemExit("dehaze failed")
        loaded = QgsRasterLayer(str(out), "loaded")
        details = context.layerToLoadOnCompletionDetails(str(out))
        details.postProcessor().postProcessLayer(loaded, context, feedback)
        shots = [map_shot(inp, out_dir / "guide-map-input-default.png"),
                 map_shot(loaded, out_dir / "guide-map-dehazed.png")]
        print(f"loaded output layer name: {loaded.name()!r}")
        QgsProject.instance().removeMapLayer(inp.id())
    return shots


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    app = start_qgis()
    for alg_id, (name, preset) in DIALOGS.items():
        print(dialog_shot(app, alg_id, preset, args.out / f"{name}.png"))
    for p in result_shots(args.out):
        print(p)
    app.exitQgis()


if __name__ == "__main__":
    main()
