"""Shared base for every rsrestore algorithm: common parameters, feedback adapter, error mapping.

Algorithms are thin: they turn parameters into an :class:`rscore.runtime.RestoreRequest` and call
:func:`rscore.runtime.restore`, which can also be used without QGIS.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from osgeo import gdal
from qgis.core import (
    NULL,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterBand,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsRasterLayer,
)
from qgis.PyQt.QtCore import QCoreApplication

from rscore.bundle.catalog import find_bundles
from rscore.bundle.manifest import BundleError
from rscore.bundle.store import load_bundle
from rscore.diffusion.loop import Cancelled
from rscore.raster.extent import AreaWindow, window_for_area, window_vrt
from rscore.raster.io import RasterError
from rscore.runtime import DEVICES, RequestError, RestoreRequest, RuntimeMissing, restore
from rscore.runtime.api import resolve_bands

from .layers import style_on_load

_PLUGIN_DIR = Path(__file__).resolve().parents[1]
#: QGIS stores integer parameters as 32-bit ints: a larger SEED would silently become another number
MAX_SEED = 2**31 - 1
#: environment variable naming the user's models folder (default: ``<QGIS profile>/rsrestore/models``)
USER_MODELS_ENV = "RSRESTORE_MODELS_DIR"
#: the MODEL choice that picks the shipped bundle by band count
AUTO = "auto"


def shipped_models_dirs() -> list[Path]:
    """Where the shipped bundles are: ``<plugin>/models`` (installed plugin) or ``models/`` (source checkout)."""
    return [d for d in (_PLUGIN_DIR / "models", _PLUGIN_DIR.parent / "models") if d.is_dir()]


def user_models_dir() -> Path:
    """The folder that ``rsrestore:install_model`` installs into (``RSRESTORE_MODELS_DIR`` overrides it)."""
    env = os.environ.get(USER_MODELS_ENV, "").strip()
    if env:
        return Path(env)
    from qgis.core import QgsApplication

    return Path(QgsApplication.qgisSettingsDirPath()) / "rsrestore" / "models"


def model_roots() -> list[tuple[str, Path]]:
    """Every models root in search order, with its origin label."""
    return [("shipped", d) for d in shipped_models_dirs()] + [("user", user_models_dir())]


def shipped_bundle(name: str) -> Path:
    """A bundle shipped with the plugin (``<plugin>/models/<name>``; in a source checkout ``models/<name>``)."""
    for models in shipped_models_dirs():
        if (models / name / "manifest.json").is_file():
            return models / name
    raise QgsProcessingException(
        f"the shipped model {name!r} is missing from {_PLUGIN_DIR / 'models'}; reinstall the plugin or choose a "
        "model bundle folder with MODEL_FOLDER"
    )


def _unreadable_input(value: Any) -> str:
    """A message when INPUT names an existing file that GDAL cannot open (QGIS would only say "not found")."""
    if not isinstance(value, str) or not value:
        return ""
    path = value.split("|")[0]
    if not os.path.isfile(path):
        return ""
    from osgeo import gdal

    try:
        ds = gdal.OpenEx(path, gdal.OF_RASTER)
    except RuntimeError:
        ds = None
    if ds is not None:
        return ""
    return (f"{path} is not a raster GDAL can read (GDAL: {gdal.GetLastErrorMsg() or 'unrecognised format'}); "
            "check that it is an image file, not damaged or incomplete")


def _gpu_in_use(device: str) -> bool:
    """Whether a run with this DEVICE could have used CUDA (GPU advice applies only then)."""
    if device == "cpu":
        return False
    try:
        import onnxruntime

        return "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    except ImportError:
        return False


class QgisFeedback:
    """Adapts ``QgsProcessingFeedback`` to the engine's Feedback protocol."""

    def __init__(self, feedback: QgsProcessingFeedback | None) -> None:
        self.fb = feedback

    def set_progress(self, fraction: float) -> None:
        if self.fb is not None:
            self.fb.setProgress(100.0 * fraction)

    def is_canceled(self) -> bool:
        return self.fb is not None and self.fb.isCanceled()

    def info(self, message: str) -> None:
        if self.fb is not None:
            self.fb.pushInfo(message)


def is_unset(parameters: dict[str, Any], name: str) -> bool:
    """Whether an optional parameter was left empty (absent, None, NULL or an empty string)."""
    v = parameters.get(name)
    return v is None or v == NULL or (isinstance(v, str) and not v.strip())


def _help(param: QgsProcessingParameterDefinition, text: str, advanced: bool = False
          ) -> QgsProcessingParameterDefinition:
    param.setHelp(text)
    if advanced:
        param.setFlags(param.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
    return param


class AlgorithmBase(QgsProcessingAlgorithm):
    """What every rsrestore algorithm shares: translation and instance creation."""

    def tr(self, text: str) -> str:
        return QCoreApplication.translate(type(self).__name__, text)

    def createInstance(self) -> QgsProcessingAlgorithm:  # noqa: N802 - QGIS API
        return type(self)()

    def file_raster(self, parameters: dict[str, Any], name: str, context: QgsProcessingContext, what: str
                    ) -> tuple[QgsRasterLayer, str]:
        """(layer, file path) of a raster parameter; refused unless it is a file-based (GDAL) raster."""
        layer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is None:
            raise QgsProcessingException(self.tr(f"{what} ({name}) is missing or could not be loaded."))
        if layer.providerType() != "gdal":
            raise QgsProcessingException(self.tr(
                f"{what} ({name}) must be a file-based raster (GDAL provider); export the layer to GeoTIFF first."))
        return layer, layer.source().split("|")[0]


class RestorationGroup(AlgorithmBase):
    """Algorithms listed under *Restoration* in the Processing Toolbox."""

    def group(self) -> str:
        return self.tr("Restoration")

    def groupId(self) -> str:  # noqa: N802 - QGIS API
        return "restoration"


class RestoreAlgorithmBase(RestorationGroup):
    """Common parameters: INPUT, BANDS, MODEL, STEPS, TILE_SIZE, OVERLAP, SEED, DEVICE, OUTPUT."""

    INPUT = "INPUT"
    MODEL = "MODEL"
    BANDS = "BANDS"
    STEPS = "STEPS"
    TILE_SIZE = "TILE_SIZE"
    OVERLAP = "OVERLAP"
    SEED = "SEED"
    DEVICE = "DEVICE"
    COG = "COG"
    OUTPUT = "OUTPUT"
    EXTENT = "EXTENT"

    # ---- parameters -------------------------------------------------------------------------------
    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802 - QGIS API
        self.addParameter(_help(QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Input raster")),
                                self.tr("The degraded raster to restore (any GDAL format).")))
        self.addParameter(_help(
            QgsProcessingParameterBand(self.BANDS, self.tr("Bands (in the model's band order)"), None, self.INPUT,
                                       optional=True, allowMultiple=True),
            self.tr("Input bands in the order the model expects (shown in the model description). Leave empty "
                    "when the raster has exactly the model's bands, in that order.")))
        self.add_model_parameters()
        self.add_task_parameters()
        self.addParameter(_help(
            QgsProcessingParameterExtent(self.EXTENT, self.tr("Area to restore (empty = the whole raster)"),
                                         optional=True),
            self.tr("Optional area of interest, in any CRS: only the input pixels that cover it are restored, "
                    "and the output covers that area snapped to the input's pixel grid.")))
        self.addParameter(_help(
            QgsProcessingParameterNumber(self.STEPS, self.tr("Sampling steps (empty = the model's default)"),
                                         QgsProcessingParameterNumber.Integer, None, optional=True, minValue=1,
                                         maxValue=1000),
            self.tr("Diffusion sampling steps: more steps cost time proportionally. Empty uses the model's "
                    "default (see the algorithm's help).")))
        self.addParameter(_help(
            QgsProcessingParameterNumber(self.TILE_SIZE, self.tr("Tile size in output pixels (empty = the model's "
                                                                 "default)"),
                                         QgsProcessingParameterNumber.Integer, None, optional=True, minValue=16,
                                         maxValue=8192),
            self.tr("The raster is processed in square tiles of this size (output pixels); larger tiles use more "
                    "memory. Empty uses the model's default (512 px for the shipped models)."), advanced=True))
        self.addParameter(_help(
            QgsProcessingParameterNumber(self.OVERLAP, self.tr("Tile overlap in output pixels (empty = the model's "
                                                               "default)"),
                                         QgsProcessingParameterNumber.Integer, None, optional=True, minValue=0,
                                         maxValue=4096),
            self.tr("Neighbouring tiles overlap by this many pixels and are blended smoothly there. Empty uses the "
                    "model's default."), advanced=True))
        self.addParameter(_help(
            QgsProcessingParameterNumber(self.SEED, self.tr("Random seed"), QgsProcessingParameterNumber.Integer,
                                         0, minValue=0, maxValue=MAX_SEED),
            self.tr("Seed of the sampling noise. The same seed gives the same result whatever the tile size."),
            advanced=True))
        self.addParameter(_help(
            QgsProcessingParameterEnum(self.DEVICE, self.tr("Device"), options=list(DEVICES), defaultValue=0),
            self.tr("auto: NVIDIA GPU through onnxruntime-gpu when available, else CPU; cpu; cuda (falls back to "
                    "CPU with a message when no GPU runtime is installed)."), advanced=True))
        self.addParameter(_help(
            QgsProcessingParameterBoolean(self.COG, self.tr("Cloud-optimised GeoTIFF (COG layout)"), False),
            self.tr("Write the output as a cloud-optimised GeoTIFF (512 px tiles, overviews before the image), "
                    "for web servers and object stores; costs one more copy of the file at the end. The "
                    "provenance is then in the default metadata domain as RSRESTORE_* items."), advanced=True))
        self.add_output_parameters()

    def add_model_parameters(self) -> None:
        """MODEL: a bundle folder (the task algorithms offer a choice of installed bundles instead)."""
        self.addParameter(_help(QgsProcessingParameterFile(self.MODEL, self.tr("Model bundle folder"),
                                                           behavior=QgsProcessingParameterFile.Folder),
                                self.tr("Folder of an rsrestore model bundle (contains manifest.json and .onnx "
                                        "files).")))

    def add_task_parameters(self) -> None:
        """Hook for algorithm-specific inputs (between MODEL and STEPS)."""

    def add_output_parameters(self) -> None:
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Restored raster")))

    # ---- helpers ----------------------------------------------------------------------------------
    def input_path(self, parameters: dict[str, Any], context: QgsProcessingContext) -> tuple[QgsRasterLayer, str]:
        return self.file_raster(parameters, self.INPUT, context, "Input raster")

    def bundle_path(self, parameters: dict[str, Any], context: QgsProcessingContext, layer: QgsRasterLayer) -> str:
        path = self.parameterAsFile(parameters, self.MODEL, context)
        if not path:
            raise QgsProcessingException(self.tr("Choose a model bundle folder (MODEL)."))
        return path

    def optional_int(self, parameters: dict[str, Any], name: str, context: QgsProcessingContext) -> int | None:
        """The value of an optional integer parameter, or None when it is not set (the model's default)."""
        return None if is_unset(parameters, name) else self.parameterAsInt(parameters, name, context)

    def optional_double(self, parameters: dict[str, Any], name: str, context: QgsProcessingContext
                        ) -> float | None:
        """The value of an optional number parameter, or None when it is not set (the model's default)."""
        return None if is_unset(parameters, name) else self.parameterAsDouble(parameters, name, context)

    def extra_request_fields(self, parameters: dict[str, Any], context: QgsProcessingContext) -> dict[str, Any]:
        """Hook: algorithm-specific fields of the RestoreRequest."""
        return {}

    def make_request(self, parameters: dict[str, Any], context: QgsProcessingContext) -> RestoreRequest:
        layer, src = self.input_path(parameters, context)
        bands = self.parameterAsInts(parameters, self.BANDS, context) or None
        return RestoreRequest(
            input_path=src,
            bundle_path=self.bundle_path(parameters, context, layer),
            output_path=self.parameterAsOutputLayer(parameters, self.OUTPUT, context),
            bands=bands,
            steps=self.optional_int(parameters, self.STEPS, context),
            tile_size_px=self.optional_int(parameters, self.TILE_SIZE, context),
            overlap_px=self.optional_int(parameters, self.OVERLAP, context),
            seed=self.parameterAsInt(parameters, self.SEED, context),
            device=DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)],
            cog=self.parameterAsBoolean(parameters, self.COG, context),
            provenance={"ALGORITHM": self.id() or f"rsrestore:{self.name()}"},
            **self.extra_request_fields(parameters, context),
        )

    # ---- validation and run -----------------------------------------------------------------------
    def checkParameterValues(self, parameters: dict[str, Any], context: QgsProcessingContext):  # noqa: N802
        unreadable = _unreadable_input(parameters.get(self.INPUT))
        if unreadable:
            return False, unreadable
        ok, msg = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, msg
        try:
            layer, src = self.input_path(parameters, context)
            bundle = load_bundle(self.bundle_path(parameters, context, layer))
            resolve_bands(bundle.manifest, layer.bandCount(), self.parameterAsInts(parameters, self.BANDS, context))
            self.area_window(parameters, context, layer, src)
        except (QgsProcessingException, BundleError, RequestError, RasterError) as exc:
            return False, str(exc)
        return True, ""

    def area_window(self, parameters: dict[str, Any], context: QgsProcessingContext, layer: QgsRasterLayer,
                    src: str) -> AreaWindow | None:
        """The input window EXTENT asks for (None: no EXTENT); the area is reprojected into the layer's CRS."""
        if is_unset(parameters, self.EXTENT):
            return None
        geom = self.parameterAsExtentGeometry(parameters, self.EXTENT, context, layer.crs())
        if geom is None or geom.isEmpty():
            return None
        ds = gdal.Open(src)
        return window_for_area(geom.asWkt(), ds.GetGeoTransform(), ds.RasterYSize, ds.RasterXSize)

    def with_extent(self, request: RestoreRequest, parameters: dict[str, Any], context: QgsProcessingContext,
                    feedback: QgsProcessingFeedback, layer: QgsRasterLayer, src: str, tmp_dir: str) -> RestoreRequest:
        """The request on a VRT of the EXTENT's window (unchanged without EXTENT)."""
        try:
            aw = self.area_window(parameters, context, layer, src)
        except RasterError as exc:
            raise QgsProcessingException(str(exc)) from None
        if aw is None:
            return request
        w = aw.window
        vrt = window_vrt(str(Path(src).resolve()), w, Path(tmp_dir) / f"{Path(src).stem}-window.vrt")
        part = 100.0 * w.rows * w.cols / max(1, layer.width() * layer.height())
        feedback.pushInfo(self.tr(f"EXTENT: restoring input columns {w.col_off}-{w.col_end - 1}, rows {w.row_off}-"
                                  f"{w.row_end - 1} ({w.cols} x {w.rows} px, {part:.1f} % of the raster); "
                                  f"{100.0 * aw.covered_fraction:.0f} % of the area lies on the raster"))
        prov = {**(request.provenance or {}), "INPUT": Path(src).name,
                "WINDOW": f"col {w.col_off}, row {w.row_off}, {w.cols} x {w.rows} px"}
        return dataclasses.replace(request, input_path=str(vrt), provenance=prov)

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        layer, src = self.input_path(parameters, context)
        with tempfile.TemporaryDirectory(prefix="rsrestore-extent-") as tmp_dir:
            request = self.with_extent(self.make_request(parameters, context), parameters, context, feedback,
                                       layer, src, tmp_dir)
            return self.run_request(request, layer.name(), context, feedback)

    def run_request(self, request: RestoreRequest, input_name: str, context: QgsProcessingContext,
                    feedback: QgsProcessingFeedback) -> dict[str, Any]:
        notice = self.report_notice()
        if notice:
            feedback.pushWarning(notice)
        try:
            report = restore(request, QgisFeedback(feedback))
        except Cancelled:
            raise QgsProcessingException(self.tr("Cancelled: no output was written.")) from None
        except (BundleError, RasterError, RequestError, RuntimeMissing, ValueError) as exc:
            raise QgsProcessingException(str(exc)) from None
        except MemoryError:
            raise QgsProcessingException(self.tr(
                "Out of memory: reduce TILE_SIZE (advanced parameters) and run again; no output was written."
            )) from None
        except OSError as exc:
            raise QgsProcessingException(self.tr(
                f"Cannot write the output ({exc}). If the file is open in QGIS or another program, close it, or "
                "choose another output file or folder; no output was written."
            )) from None
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            if not type(exc).__module__.startswith("onnxruntime"):
                raise
            hint = ("On a GPU this is usually a lack of GPU memory: reduce TILE_SIZE or use DEVICE=cpu."
                    if _gpu_in_use(request.device) else
                    "Reduce TILE_SIZE if memory is short; otherwise the model bundle may not suit this onnxruntime "
                    "version: reinstall it.")
            raise QgsProcessingException(self.tr(
                f"The model failed to run ({str(exc).splitlines()[0][:300]}). {hint} No output was written."
            )) from None
        style_on_load(context, request.output_path, f"{input_name} - {self.output_label(request)}")
        clear = f", {report.tiles_clear} tile(s) clear in the mask (copied)" if report.tiles_clear else ""
        feedback.pushInfo(self.tr(f"done in {report.seconds:.1f} s: {report.network_evals} network evaluations, "
                                  f"{report.tiles_skipped} all-nodata tile(s) skipped{clear}"))
        return self.results(report.outputs)

    def output_label(self, request: RestoreRequest) -> str:
        """What the output layer is called after the input's name ("<input> - dehazed")."""
        return "restored"

    def report_notice(self) -> str:
        """Hook: a warning about how the request was resolved, shown before the run ("" = none)."""
        return ""

    def results(self, outputs: dict[str, str]) -> dict[str, Any]:
        return {self.OUTPUT: outputs["image"]}


class ShippedModelAlgorithm(RestoreAlgorithmBase):
    """A task algorithm: MODEL is a choice of the installed bundles of its task ("auto" picks the shipped bundle
    for the band count); MODEL_FOLDER takes any bundle folder instead."""

    MODEL_FOLDER = "MODEL_FOLDER"
    #: band count of the input (or of the BANDS selection) -> shipped bundle name
    default_bundles: dict[int, str] = {}
    #: the manifests' task of the bundles this algorithm runs
    task = ""

    def installed(self) -> dict[str, Path]:
        """Installed bundles of this algorithm's task (shipped first, then the user's), name -> folder."""
        return {e.name: e.path for e in find_bundles(model_roots(), self.task)}

    def add_model_parameters(self) -> None:
        choices = [AUTO, *self.installed()]
        self.addParameter(_help(
            QgsProcessingParameterEnum(self.MODEL, self.tr("Model"), options=choices, defaultValue=AUTO,
                                       usesStaticStrings=True),
            self.tr("auto: the shipped model for the input's band count - 4 bands (blue, green, red, NIR "
                    "reflectance, e.g. Sentinel-2 B2/B3/B4/B8 as uint16 x 1e-4) or 3 bands (8-bit red, green, "
                    "blue). Otherwise one of the installed models of this task (shipped ones and those installed "
                    "with 'Install a model bundle'; 'List installed models' describes them).")))
        self.addParameter(_help(
            QgsProcessingParameterFile(self.MODEL_FOLDER, self.tr("Model bundle folder (overrides Model)"),
                                       behavior=QgsProcessingParameterFile.Folder, optional=True),
            self.tr("Optional: any rsrestore model bundle folder (manifest.json and .onnx files), used instead of "
                    "Model."), advanced=True))

    def default_steps_text(self) -> str:
        """The shipped models' default steps, read from their manifests (so help texts cannot drift)."""
        parts = []
        for name in sorted(set(self.default_bundles.values())):
            try:
                path = shipped_bundle(name) / "manifest.json"
                sampler = json.loads(path.read_text(encoding="utf-8")).get("sampler") or {}
                k = sampler.get("default_steps", "?")
                parts.append(f"{name}: " + ("one pass, no diffusion" if k == 0 else f"{k} step(s)"))
            except (QgsProcessingException, OSError, ValueError):
                parts.append(f"{name}: not installed")
        return "shipped models: " + ", ".join(parts)

    def bundle_path(self, parameters: dict[str, Any], context: QgsProcessingContext, layer: QgsRasterLayer) -> str:
        folder = self.parameterAsFile(parameters, self.MODEL_FOLDER, context)
        if folder:
            return folder
        chosen = self.parameterAsEnumString(parameters, self.MODEL, context) or AUTO
        if chosen != AUTO:
            installed = self.installed()
            if chosen not in installed:
                raise QgsProcessingException(self.tr(
                    f"the model {chosen!r} is not installed (installed for this task: {', '.join(installed) or 'none'})"
                    "; choose another Model, or a bundle folder with MODEL_FOLDER"))
            return str(installed[chosen])
        bands = self.parameterAsInts(parameters, self.BANDS, context)
        count = len(bands) if bands else layer.bandCount()
        name = self.default_bundles.get(count)
        if name is None:
            kinds = {4: "4 bands (blue, green, red, NIR reflectance)", 3: "3 bands (8-bit red, green, blue)"}
            shipped = " or ".join(kinds[k] for k in sorted(self.default_bundles, reverse=True))
            raise QgsProcessingException(self.tr(
                f"{self.displayName()} needs {shipped}, but {'the selected bands are' if bands else 'the raster has'} "
                f"{count} band(s). Choose {' or '.join(str(k) for k in sorted(self.default_bundles, reverse=True))} "
                "bands in that order with BANDS, or a Model (or MODEL_FOLDER) made for your bands."))
        return str(shipped_bundle(name))
