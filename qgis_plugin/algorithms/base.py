"""Shared base for every rsrestore algorithm: common parameters, feedback adapter, error mapping.

Algorithms are thin: they turn parameters into an :class:`rscore.runtime.RestoreRequest` and call
:func:`rscore.runtime.restore`, which can also be used without QGIS.
"""

from __future__ import annotations

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

from rscore.bundle.manifest import BundleError
from rscore.bundle.store import load_bundle
from rscore.diffusion.loop import Cancelled
from rscore.raster.extent import AreaWindow, window_for_area
from rscore.raster.io import RasterError
from rscore.runtime import RequestError, RestoreRequest, RuntimeMissing, restore
from rscore.runtime import algorithms as specs
from rscore.runtime.algorithms import AUTO, AlgorithmSpec, Param
from rscore.runtime.api import resolve_bands

from .layers import style_on_load

_PLUGIN_DIR = Path(__file__).resolve().parents[1]
shipped_models_dirs = specs.shipped_models_dirs


def user_models_dir() -> Path:
    """The folder that ``rsrestore:install_model`` installs into (``RSRESTORE_MODELS_DIR`` overrides it)."""
    env = os.environ.get(specs.USER_MODELS_ENV, "").strip()
    if env:
        return Path(env)
    from qgis.core import QgsApplication

    return Path(QgsApplication.qgisSettingsDirPath()) / "rsrestore" / "models"


def model_roots() -> list[tuple[str, Path]]:
    """Every models root in search order, with its origin label."""
    return specs.model_roots(user_models_dir())


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


def _output_unset(value: Any) -> bool:
    """Whether an output parameter's value asks for no output (empty, or a definition whose sink is empty)."""
    if value is None or value == NULL or (isinstance(value, str) and not value.strip()):
        return True
    sink = getattr(value, "sink", None)
    if sink is not None:
        static = sink.staticValue()
        return static is None or static == NULL or (isinstance(static, str) and not static.strip())
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


#: label and help of the parameters every restoration algorithm has (task algorithms add their own in ``texts``)
COMMON_TEXTS: dict[str, tuple[str, str]] = {
    "INPUT": ("Input raster", "The degraded raster to restore (any GDAL format)."),
    "BANDS": ("Bands (in the model's band order)",
              "Input bands in the order the model expects (shown in the model description). Leave empty when the "
              "raster has exactly the model's bands, in that order."),
    "MODEL": ("Model bundle folder", "Folder of an rsrestore model bundle (contains manifest.json and .onnx files)."),
    "MODEL_FOLDER": ("Model bundle folder (overrides Model)",
                     "Optional: any rsrestore model bundle folder (manifest.json and .onnx files), used instead of "
                     "Model."),
    "EXTENT": ("Area to restore (empty = the whole raster)",
               "Optional area of interest, in any CRS: only the input pixels that cover it are restored, and the "
               "output covers that area snapped to the input's pixel grid."),
    "STEPS": ("Sampling steps (empty = the model's default)",
              "Diffusion sampling steps: more steps cost time proportionally. Empty uses the model's default (see "
              "the algorithm's help)."),
    "TILE_SIZE": ("Tile size in output pixels (empty = the model's default)",
                  "The raster is processed in square tiles of at most this size (output pixels); larger tiles use "
                  "more memory. The tiles a raster needs at this size are spread evenly and made as small as that "
                  "allows, so that less work is repeated where they overlap. Empty uses the model's default (512 px "
                  "for the shipped models)."),
    "OVERLAP": ("Tile overlap in output pixels (empty = the model's default)",
                "Neighbouring tiles overlap by this many pixels and are blended smoothly there. Empty uses the "
                "model's default."),
    "SEED": ("Random seed", "Seed of the sampling noise. The same seed gives the same result whatever the tile size."),
    "DEVICE": ("Device", "auto: NVIDIA GPU through onnxruntime-gpu when available; else OpenVINO in bf16 on CPUs "
                         "with AMX or AVX512-BF16; else onnxruntime on the CPU. cpu: onnxruntime, fp32. cuda: the GPU "
                         "(falls back to CPU with a message when no GPU runtime is installed). openvino: OpenVINO on "
                         "the CPU, bf16 where the CPU has it, else fp32 (often faster than cpu; see the project's "
                         "docs/performance.md)."),
    "COG": ("Cloud-optimised GeoTIFF (COG layout)",
            "Write the output as a cloud-optimised GeoTIFF (512 px tiles, overviews before the image), for web "
            "servers and object stores; costs one more copy of the file at the end. The provenance is then in the "
            "default metadata domain as RSRESTORE_* items."),
    "OUTPUT": ("Restored raster", ""),
}
#: how messages name the raster parameters
RASTER_WHAT = {"INPUT": "Input raster", "REFERENCE": "Reference raster", "MASK": "Cloud mask"}
MODEL_CHOICE_TEXT = (
    "Model",
    "auto: the shipped model for the input's band count - 4 bands (blue, green, red, NIR reflectance, e.g. "
    "Sentinel-2 B2/B3/B4/B8 as uint16 x 1e-4) or 3 bands (8-bit red, green, blue). Otherwise one of the installed "
    "models of this task (shipped ones and those installed with 'Install a model bundle'; 'List installed models' "
    "describes them).")


class RestoreAlgorithmBase(RestorationGroup):
    """A restoration algorithm over :mod:`rscore.runtime.algorithms`: its parameters come from the spec (the
    command line reads the same spec), the labels and help from ``COMMON_TEXTS`` and ``texts``."""

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

    spec: AlgorithmSpec = specs.SPECS["restore"]
    #: label and help of the task's own parameters (and overrides of COMMON_TEXTS)
    texts: dict[str, tuple[str, str]] = {}

    def name(self) -> str:
        return self.spec.name

    def displayName(self) -> str:  # noqa: N802 - QGIS API
        return self.tr(self.spec.title)

    # ---- parameters -------------------------------------------------------------------------------
    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802 - QGIS API
        for p in self.spec.params:
            self.addParameter(self.qgis_parameter(p))

    def qgis_parameter(self, p: Param) -> QgsProcessingParameterDefinition:
        """The QGIS parameter of a spec parameter, with its label and help."""
        label, text = (MODEL_CHOICE_TEXT if p.kind == "model" else
                       self.texts.get(p.name) or COMMON_TEXTS.get(p.name) or (p.name, ""))
        label = self.tr(label)
        if p.kind == "raster":
            q = QgsProcessingParameterRasterLayer(p.name, label, optional=p.optional)
        elif p.kind == "bands":
            q = QgsProcessingParameterBand(p.name, label, p.default, p.parent, optional=p.optional,
                                           allowMultiple=p.multiple)
        elif p.kind == "model":
            q = QgsProcessingParameterEnum(p.name, label, options=[AUTO, *self.installed()], defaultValue=AUTO,
                                           usesStaticStrings=True)
        elif p.kind == "folder":
            q = QgsProcessingParameterFile(p.name, label, behavior=QgsProcessingParameterFile.Folder,
                                           optional=p.optional)
        elif p.kind in ("int", "float"):
            kind = QgsProcessingParameterNumber.Integer if p.kind == "int" else QgsProcessingParameterNumber.Double
            bounds = {k: v for k, v in (("minValue", p.minimum), ("maxValue", p.maximum)) if v is not None}
            q = QgsProcessingParameterNumber(p.name, label, kind, p.default, optional=p.optional, **bounds)
        elif p.kind == "bool":
            q = QgsProcessingParameterBoolean(p.name, label, p.default)
        elif p.kind == "enum":
            default = p.default if p.static_strings else p.choices.index(p.default)
            q = QgsProcessingParameterEnum(p.name, label, options=list(p.choices), defaultValue=default,
                                           usesStaticStrings=p.static_strings)
        elif p.kind == "extent":
            q = QgsProcessingParameterExtent(p.name, label, optional=True)
        elif p.kind == "output":
            q = QgsProcessingParameterRasterDestination(p.name, label, optional=p.optional,
                                                        createByDefault=not p.optional)
        else:  # pragma: no cover - the spec's kinds are checked by the tests
            raise ValueError(f"unknown parameter kind {p.kind!r}")
        return _help(q, self.tr(text) if text else "", p.advanced)

    def installed(self) -> dict[str, Path]:
        """Installed bundles of this algorithm's task (shipped first, then the user's), name -> folder."""
        return specs.installed_bundles(self.spec.task, model_roots()) if self.spec.task else {}

    # ---- parameter values -------------------------------------------------------------------------
    def input_path(self, parameters: dict[str, Any], context: QgsProcessingContext) -> tuple[QgsRasterLayer, str]:
        return self.file_raster(parameters, self.INPUT, context, "Input raster")

    def plain_values(self, parameters: dict[str, Any], context: QgsProcessingContext, validating: bool = False,
                     known: dict[str, str] | None = None) -> dict[str, Any]:
        """Every parameter's value as :func:`rscore.runtime.algorithms.build_request` takes it (paths, numbers,
        strings; None when unset). EXTENT is applied later (:meth:`with_extent`). ``validating``: outputs get a
        placeholder path, because resolving a temporary output registers a layer to load with the context.
        ``known``: raster parameters already resolved to file paths by the caller (each layer is loaded once)."""
        values: dict[str, Any] = dict(known or {})
        for p in self.spec.params:
            name = p.name
            if p.kind == "extent" or name in values:
                continue
            if p.kind == "raster":
                if p.optional and self.parameterAsRasterLayer(parameters, name, context) is None:
                    values[name] = None
                else:
                    values[name] = self.file_raster(parameters, name, context, RASTER_WHAT.get(name, name))[1]
            elif p.kind == "bands":
                values[name] = (self.parameterAsInts(parameters, name, context) or None) if p.multiple else (
                    None if is_unset(parameters, name) else self.parameterAsInt(parameters, name, context))
            elif p.kind == "model":
                values[name] = self.parameterAsEnumString(parameters, name, context) or AUTO
            elif p.kind == "folder":
                values[name] = self.parameterAsFile(parameters, name, context) or None
            elif p.kind in ("int", "float"):
                if p.optional and is_unset(parameters, name):
                    values[name] = None
                else:
                    values[name] = (self.parameterAsInt if p.kind == "int" else self.parameterAsDouble)(
                        parameters, name, context)
            elif p.kind == "bool":
                values[name] = self.parameterAsBoolean(parameters, name, context)
            elif p.kind == "enum":
                values[name] = (self.parameterAsEnumString(parameters, name, context) or p.default
                                if p.static_strings else p.choices[self.parameterAsEnum(parameters, name, context)])
            elif p.kind == "output":
                if validating:
                    values[name] = None if _output_unset(parameters.get(name)) else f"{name.lower()}.tif"
                else:
                    values[name] = self.parameterAsOutputLayer(parameters, name, context) or None
        return values

    def resolve(self, parameters: dict[str, Any], context: QgsProcessingContext, validating: bool = False,
                known: dict[str, str] | None = None) -> specs.Resolved:
        """The request the parameters ask for (the same rules as the command line's)."""
        try:
            return specs.build_request(self.spec, self.plain_values(parameters, context, validating, known),
                                       model_roots())
        except (RequestError, RasterError, BundleError) as exc:
            raise QgsProcessingException(str(exc)) from None

    def make_request(self, parameters: dict[str, Any], context: QgsProcessingContext) -> RestoreRequest:
        return self.resolve(parameters, context).request

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
            request = self.resolve(parameters, context, validating=True, known={self.INPUT: src}).request
            bundle = load_bundle(request.bundle_path)
            resolve_bands(bundle.manifest, layer.bandCount(), request.bands)
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
            if aw is None:
                return request
            request, message = specs.on_window(request, self.spec, aw, (layer.height(), layer.width()), tmp_dir)
        except RasterError as exc:
            raise QgsProcessingException(str(exc)) from None
        feedback.pushInfo(self.tr(message))
        return request

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        layer, src = self.input_path(parameters, context)
        resolved = self.resolve(parameters, context, known={self.INPUT: src})
        for line in resolved.infos:
            feedback.pushInfo(self.tr(line))
        for line in resolved.notices:
            feedback.pushWarning(self.tr(line))
        with tempfile.TemporaryDirectory(prefix="rsrestore-extent-") as tmp_dir:
            request = self.with_extent(resolved.request, parameters, context, feedback, layer, src, tmp_dir)
            return self.run_request(request, layer.name(), context, feedback)

    def run_request(self, request: RestoreRequest, input_name: str, context: QgsProcessingContext,
                    feedback: QgsProcessingFeedback) -> dict[str, Any]:
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
        style_on_load(context, request.output_path, f"{input_name} - {self.spec.output_label(request)}")
        clear = f", {report.tiles_clear} tile(s) clear in the mask (copied)" if report.tiles_clear else ""
        feedback.pushInfo(self.tr(f"done in {report.seconds:.1f} s: {report.network_evals} network evaluations, "
                                  f"{report.tiles_skipped} all-nodata tile(s) skipped{clear}"))
        return {p.name: report.outputs[key] for p, key in self.spec.outputs if key in report.outputs}


class ShippedModelAlgorithm(RestoreAlgorithmBase):
    """A task algorithm: MODEL is a choice of the installed bundles of its task ("auto" picks the shipped bundle
    for the band count); MODEL_FOLDER takes any bundle folder instead."""

    MODEL_FOLDER = "MODEL_FOLDER"

    def default_steps_text(self) -> str:
        """The shipped models' default steps, read from their manifests (so help texts cannot drift)."""
        parts = []
        for name in sorted(set(self.spec.default_bundles.values())):
            try:
                path = specs.shipped_bundle(name) / "manifest.json"
                sampler = json.loads(path.read_text(encoding="utf-8")).get("sampler") or {}
                k = sampler.get("default_steps", "?")
                parts.append(f"{name}: " + ("one pass, no diffusion" if k == 0 else f"{k} step(s)"))
            except (RequestError, OSError, ValueError):
                parts.append(f"{name}: not installed")
        return "shipped models: " + ", ".join(parts)
