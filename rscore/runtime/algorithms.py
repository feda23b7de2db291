"""The restoration algorithms without QGIS: their parameters and the rules that turn parameter values into a
:class:`RestoreRequest`, in one place for the Processing provider (``qgis_plugin``) and the command line
(:mod:`rscore.cli`), so that the two cannot drift.

Each algorithm is an :class:`AlgorithmSpec`: an id (``dehaze`` is ``rsrestore:dehaze`` in QGIS), its
parameters (:class:`Param`: name, kind, default, range, choices) and its task hooks. The plugin builds its
QGIS parameter objects from the specs and adds labels and help; the CLI builds its argument parser from them.
Both call :func:`build_request` with plain values (paths, numbers, strings).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from osgeo import gdal

from rscore.bundle.catalog import find_bundles
from rscore.bundle.manifest import BundleError
from rscore.bundle.store import load_bundle
from rscore.pipelines import PIPELINE_SPECS
from rscore.raster.extent import AreaWindow, window_for_area, window_vrt
from rscore.raster.io import RasterError
from rscore.raster.lossy import LOSSY_CODECS, codec_problem, detect_codec
from rscore.runtime.api import RequestError, RestoreRequest
from rscore.runtime.predictor import DEVICES
from rscore.tiling.grid import Window

#: the MODEL choice that picks the shipped bundle by band count (and the CODEC choice that reads the file)
AUTO = "auto"
#: QGIS stores integer parameters as 32-bit ints: a larger SEED would silently become another number
MAX_SEED = 2**31 - 1
#: environment variable naming the user's models folder (default: ``<QGIS profile>/rsrestore/models``)
USER_MODELS_ENV = "RSRESTORE_MODELS_DIR"
#: the provider's id prefix
PROVIDER_ID = "rsrestore"
#: scale factors the shipped super-resolution models were trained for
MIN_SCALE, MAX_SCALE = 1.0, 8.0
#: the block grid of JPEG (8 px, 16 px with chroma subsampling) and WebP (16 px macroblocks)
BLOCK_GRID_PX = 16

#: parameter kinds: what a value is (the plugin maps each to a QGIS parameter class)
KINDS = ("raster", "bands", "model", "folder", "int", "float", "bool", "enum", "extent", "output")


@dataclass(frozen=True)
class Param:
    """One algorithm parameter.

    Attributes:
        name: the Processing name (``STEPS``); the CLI takes it as ``--param STEPS=5`` (case-insensitive).
        kind: one of :data:`KINDS`.
        default: the value when it is not given (None: unset; for ``model`` always :data:`AUTO`).
        optional: whether it may stay unset.
        minimum, maximum: the range of a number.
        choices: the values of an ``enum``.
        static_strings: an ``enum`` that QGIS stores by its string (else by its index).
        parent: the raster parameter a ``bands`` parameter picks bands of.
        multiple: a ``bands`` parameter that takes a list.
        advanced: shown under *Advanced parameters* in the QGIS dialog.
    """

    name: str
    kind: str
    default: Any = None
    optional: bool = False
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    static_strings: bool = True
    parent: str = ""
    multiple: bool = True
    advanced: bool = False

    def check(self, value: Any) -> Any:
        """``value`` (None: the default) checked against the kind, range and choices; raises RequestError."""
        if value is None:
            if self.default is None and not self.optional and self.kind not in ("bands", "model"):
                raise RequestError(f"{self.name} is required: give it (rsrestore: --param {self.name}=...)")
            return self.default
        if self.kind in ("int", "float"):
            num = int(value) if self.kind == "int" else float(value)
            if not math.isfinite(num):
                raise RequestError(f"{self.name} must be a finite number, got {value!r}")
            if (self.minimum is not None and num < self.minimum) or (self.maximum is not None and num > self.maximum):
                raise RequestError(f"{self.name} must be between {self.minimum:g} and {self.maximum:g}, got {num:g}"
                                   if self.maximum is not None else
                                   f"{self.name} must be at least {self.minimum:g}, got {num:g}")
            return num
        if self.kind == "enum" and value not in self.choices:
            raise RequestError(f"{self.name} must be one of {', '.join(self.choices)}; got {value!r}")
        if self.kind == "bands":
            if not self.multiple:
                if isinstance(value, (list, tuple)):
                    if len(value) != 1:
                        raise RequestError(f"{self.name} takes one band number, got {list(value)}")
                    value = value[0]
                return int(value)
            return [int(b) for b in value] or None
        return value

    def parse(self, text: str) -> Any:
        """The value of a command-line string (``BANDS=3,2,1``, ``COG=yes``); raises RequestError."""
        text = text.strip()
        if text == "":
            return None
        try:
            if self.kind == "int":
                return self.check(int(text))
            if self.kind == "float":
                return self.check(float(text))
            if self.kind == "bands":
                return self.check([int(b) for b in text.replace(" ", "").split(",") if b])
        except ValueError as exc:
            if isinstance(exc, RequestError):
                raise
            what = {"bands": "list of band numbers", "int": "whole number"}.get(self.kind, "number")
            raise RequestError(f"{self.name}={text!r} is not a {what}") from None
        if self.kind == "bool":
            low = text.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise RequestError(f"{self.name}={text!r} is not true or false (use yes/no, true/false or 1/0)")
        return self.check(text)


def _p(name: str, kind: str, **kw: Any) -> Param:
    return Param(name, kind, **kw)


# ---- the parameters every restoration algorithm has, in dialog order -------------------------------------------
INPUT = _p("INPUT", "raster")
BANDS = _p("BANDS", "bands", optional=True, parent="INPUT")
MODEL_CHOICE = _p("MODEL", "model", default=AUTO)
MODEL_FOLDER_REQUIRED = _p("MODEL", "folder")
MODEL_FOLDER = _p("MODEL_FOLDER", "folder", optional=True, advanced=True)
EXTENT = _p("EXTENT", "extent", optional=True)
STEPS = _p("STEPS", "int", optional=True, minimum=1, maximum=1000)
TILE_SIZE = _p("TILE_SIZE", "int", optional=True, minimum=16, maximum=8192, advanced=True)
OVERLAP = _p("OVERLAP", "int", optional=True, minimum=0, maximum=4096, advanced=True)
SEED = _p("SEED", "int", default=0, minimum=0, maximum=MAX_SEED, advanced=True)
DEVICE = _p("DEVICE", "enum", default=DEVICES[0], choices=tuple(DEVICES), static_strings=False, advanced=True)
COG = _p("COG", "bool", default=False, advanced=True)
OUTPUT = _p("OUTPUT", "output")

# ---- task parameters ---------------------------------------------------------------------------------------
ETA = _p("ETA", "float", optional=True, minimum=0.0, maximum=1.0)
MASK = _p("MASK", "raster", optional=True)
MASK_BAND = _p("MASK_BAND", "bands", default=1, optional=True, parent="MASK", multiple=False, advanced=True)
AUTO_MASK = _p("AUTO_MASK", "bool", default=True)
MASK_THRESHOLD = _p("MASK_THRESHOLD", "float", optional=True, minimum=0.01, maximum=0.99, advanced=True)
SAMPLES = _p("SAMPLES", "int", default=1, minimum=1, maximum=64)
UNCERTAINTY_OUTPUT = _p("UNCERTAINTY_OUTPUT", "output", optional=True)
SCALE = _p("SCALE", "float", default=4.0, minimum=MIN_SCALE, maximum=MAX_SCALE)
TARGET_RESOLUTION = _p("TARGET_RESOLUTION", "float", optional=True, minimum=1e-9)
REFERENCE = _p("REFERENCE", "raster")
REFERENCE_BANDS = _p("REFERENCE_BANDS", "bands", optional=True, parent="REFERENCE")
CODEC = _p("CODEC", "enum", default=AUTO, choices=(AUTO, *LOSSY_CODECS))


@dataclass(frozen=True)
class Resolved:
    """A request made from parameter values, with what the user should be told about how it was made."""

    request: RestoreRequest
    notices: tuple[str, ...] = ()
    infos: tuple[str, ...] = ()


Values = Mapping[str, Any]
#: task hook: (spec, checked values, request so far) -> request fields to replace, notices, infos
TaskHook = Callable[["AlgorithmSpec", dict[str, Any], RestoreRequest], tuple[dict[str, Any], list[str], list[str]]]
#: window hook: (input path, window) -> the window the algorithm restores
WindowHook = Callable[[str, Window], Window]


@dataclass(frozen=True)
class AlgorithmSpec:
    """One restoration algorithm.

    Attributes:
        name: the id without the provider (``dehaze``).
        title: the display name (``Remove haze``).
        task: the manifests' task of its bundles ("" for the generic ``restore``, which takes a bundle folder).
        default_bundles: band count of the input (or of the BANDS selection) -> shipped bundle for MODEL auto.
        task_params: its own parameters, between the model and EXTENT.
        outputs: its output parameters, name -> the engine's output key.
        output_label: what the output layer is called after the input's name, from the request.
        hook: extra request fields from the task parameters.
        window: how an EXTENT window is adjusted (e.g. to a codec's block grid).
    """

    name: str
    title: str
    task: str
    default_bundles: Mapping[int, str] = field(default_factory=dict)
    task_params: tuple[Param, ...] = ()
    outputs: tuple[tuple[Param, str], ...] = ((OUTPUT, "image"),)
    output_label: Callable[[RestoreRequest], str] = lambda r: "restored"
    hook: TaskHook | None = None
    window: WindowHook | None = None

    @property
    def id(self) -> str:
        return f"{PROVIDER_ID}:{self.name}"

    @property
    def params(self) -> tuple[Param, ...]:
        """Every parameter in dialog order."""
        model = (MODEL_CHOICE, MODEL_FOLDER) if self.task else (MODEL_FOLDER_REQUIRED,)
        return (INPUT, BANDS, *model, *self.task_params, EXTENT, STEPS, TILE_SIZE, OVERLAP, SEED, DEVICE, COG,
                *(p for p, _ in self.outputs))

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def checked(self, values: Values) -> dict[str, Any]:
        """Every parameter's value (defaults filled in), checked; unknown names are refused."""
        known = {p.name for p in self.params}
        unknown = sorted(set(values) - known)
        if unknown:
            raise RequestError(f"{self.id} has no parameter(s) {', '.join(unknown)}; its parameters are "
                               f"{', '.join(p.name for p in self.params)}")
        return {p.name: p.check(values.get(p.name)) for p in self.params}


# ---- models ------------------------------------------------------------------------------------------------------
def shipped_models_dirs() -> list[Path]:
    """Where the shipped bundles are: ``<plugin>/models`` beside this ``rscore`` (the installed plugin) or the
    source checkout's ``models/``."""
    root = Path(__file__).resolve().parents[2]
    return [d for d in (root / "models",) if d.is_dir()]


def default_user_models_dir() -> Path:
    """The user's models folder outside QGIS: ``RSRESTORE_MODELS_DIR``, else the default QGIS profile's
    ``rsrestore/models`` (where ``rsrestore:install_model`` puts bundles)."""
    env = os.environ.get(USER_MODELS_ENV, "").strip()
    if env:
        return Path(env)
    return Path.home() / ".local" / "share" / "QGIS" / "QGIS3" / "profiles" / "default" / "rsrestore" / "models"


def model_roots(user_dir: Path | None = None) -> list[tuple[str, Path]]:
    """Every models root in search order, with its origin label."""
    return [("shipped", d) for d in shipped_models_dirs()] + [("user", user_dir or default_user_models_dir())]


def installed_bundles(task: str, roots: list[tuple[str, Path]]) -> dict[str, Path]:
    """Installed bundles of ``task`` (shipped first, then the user's), name -> folder."""
    return {e.name: e.path for e in find_bundles(roots, task)}


def shipped_bundle(name: str, roots: list[tuple[str, Path]] | None = None) -> Path:
    """A bundle shipped with the plugin, else a bundle of that name under ``roots`` (a runtime installed without
    the plugin's models/ finds them in ``RSRESTORE_MODELS_DIR``); a missing one is a RequestError naming the
    fix."""
    folders = [root for _, root in roots] if roots else shipped_models_dirs()  # roots begin with the shipped
    for models in folders:
        if (models / name / "manifest.json").is_file():
            return models / name
    where = ", ".join(str(f) for f in folders) or str(Path(__file__).resolve().parents[2] / "models")
    raise RequestError(f"the shipped model {name!r} is missing from {where}; reinstall the plugin, put the bundle "
                       f"folder in {USER_MODELS_ENV}, or choose a model bundle folder with MODEL_FOLDER")


def _band_count(path: str) -> int:
    try:
        ds = gdal.OpenEx(path, gdal.OF_RASTER)
    except RuntimeError:
        ds = None
    if ds is None:
        raise RasterError(f"{path} is not a raster GDAL can read (GDAL: {gdal.GetLastErrorMsg() or 'cannot open'}); "
                          "check that it is an image file, not damaged or incomplete")
    return int(ds.RasterCount)


def bundle_path(spec: AlgorithmSpec, v: Mapping[str, Any], roots: list[tuple[str, Path]]) -> str:
    """The bundle folder a run uses: MODEL_FOLDER, else the named MODEL, else (auto) the shipped bundle for the
    band count."""
    if not spec.task:
        return str(v["MODEL"])
    if v.get("MODEL_FOLDER"):
        return str(v["MODEL_FOLDER"])
    chosen = v.get("MODEL") or AUTO
    if chosen != AUTO:
        installed = installed_bundles(spec.task, roots)
        if chosen not in installed:
            raise RequestError(
                f"the model {chosen!r} is not installed (installed for this task: {', '.join(installed) or 'none'}); "
                "choose another Model, or a bundle folder with MODEL_FOLDER")
        return str(installed[chosen])
    bands = v.get("BANDS")
    count = len(bands) if bands else _band_count(str(v["INPUT"]))
    name = spec.default_bundles.get(count)
    if name is None:
        kinds = {4: "4 bands (blue, green, red, NIR reflectance)", 3: "3 bands (8-bit red, green, blue)"}
        shipped = " or ".join(kinds[k] for k in sorted(spec.default_bundles, reverse=True))
        raise RequestError(
            f"{spec.title} needs {shipped}, but {'the selected bands are' if bands else 'the raster has'} "
            f"{count} band(s). Choose {' or '.join(str(k) for k in sorted(spec.default_bundles, reverse=True))} "
            "bands in that order with BANDS, or a Model (or MODEL_FOLDER) made for your bands.")
    return str(shipped_bundle(name, roots))


def _manifest(path: str):  # noqa: ANN202 - Manifest
    """The bundle's manifest, for the task hooks. Its files' checksums are not computed here: the run verifies
    every file before it computes anything (and again as it builds each session), so hashing here too only
    read every network once more."""
    try:
        return load_bundle(path, verify=False).manifest
    except BundleError as exc:
        raise RequestError(str(exc)) from None


# ---- task hooks --------------------------------------------------------------------------------------------------
def _clouds(spec: AlgorithmSpec, v: dict[str, Any], r: RestoreRequest
            ) -> tuple[dict[str, Any], list[str], list[str]]:
    fields: dict[str, Any] = {"samples": int(v["SAMPLES"])}
    if v["ETA"] is not None:
        fields["options"] = {"weight_floor": float(v["ETA"])}
    if v["MASK"]:
        fields["mask_path"] = str(v["MASK"])
        band = v["MASK_BAND"]
        fields["mask_band"] = band if band and band > 0 else 1
    if v["UNCERTAINTY_OUTPUT"]:
        if fields["samples"] < 2:
            raise RequestError("UNCERTAINTY_OUTPUT is the standard deviation over several samples: set SAMPLES to 2 "
                               "or more (e.g. 4), or leave UNCERTAINTY_OUTPUT empty.")
        fields["uncertainty_path"] = str(v["UNCERTAINTY_OUTPUT"])
    manifest = _manifest(r.bundle_path)
    try:  # the pipeline's own options check (ETA is in range here, so a refusal means: no such option)
        PIPELINE_SPECS[manifest.pipeline].make_options(fields.get("options"))
    except ValueError:
        raise RequestError(f"ETA applies to Diffusion Enhancement cloud-removal models; model {manifest.name!r} "
                           f"({manifest.pipeline}) has no reference fusion: leave ETA empty") from None
    if fields.get("mask_path") or not v["AUTO_MASK"]:
        return fields, [], []
    if manifest.auto_mask is None:
        return fields, ["this model cannot find clouds by itself (no automatic mask): every pixel is restored; give "
                        "a MASK to limit the change to cloudy pixels"], []
    return {**fields, "auto_mask": True, "mask_threshold": v["MASK_THRESHOLD"]}, [], []


def pixel_size(path: str) -> float:
    """The input's pixel width in map units (what QGIS calls raster units per pixel)."""
    ds = gdal.Open(path)
    if ds is None:
        raise RasterError(f"cannot open {path}: {gdal.GetLastErrorMsg()}")
    gt = ds.GetGeoTransform()
    return abs(float(gt[1]))


def scale_factor(v: Mapping[str, Any]) -> float:
    """SCALE, or the factor TARGET_RESOLUTION asks for; refused outside the trained range 1-8."""
    target = v.get("TARGET_RESOLUTION")
    if target is None:
        return float(v["SCALE"])
    pixel = pixel_size(str(v["INPUT"]))
    scale = pixel / float(target)
    if not (MIN_SCALE - 1e-9 <= scale <= MAX_SCALE + 1e-9):
        raise RequestError(
            f"TARGET_RESOLUTION {target:g} with input pixels of {pixel:g} map units needs a scale factor of "
            f"{scale:.4g}, outside 1-8: choose a target resolution between {pixel / MAX_SCALE:g} and {pixel:g} "
            "(or leave it empty and use SCALE)")
    return scale


def _super_resolve(spec: AlgorithmSpec, v: dict[str, Any], r: RestoreRequest
                   ) -> tuple[dict[str, Any], list[str], list[str]]:
    return {"scale_factor": scale_factor(v)}, [], []


def _reference(spec: AlgorithmSpec, v: dict[str, Any], r: RestoreRequest
               ) -> tuple[dict[str, Any], list[str], list[str]]:
    fields, notes, infos = _super_resolve(spec, v, r)
    return {**fields, "aux_path": str(v["REFERENCE"]), "aux_bands": v["REFERENCE_BANDS"]}, notes, infos


def resolve_codec(chosen: str, src: str, bundle: str) -> tuple[str, str]:
    """(codec, how it was found); refused when auto finds none, or the model was not trained for it."""
    if chosen == AUTO:
        info = detect_codec(src)
        if info.codec is None:
            raise RequestError(
                f"cannot tell which lossy codec compressed {Path(src).stem!r} ({info.describe()}): set CODEC to "
                "the codec it was compressed with (jpeg, webp or jpeg2000); a raster that was never "
                "compressed with loss needs no enhancement")
        codec, how = info.codec, f"from the file ({info.describe()})"
    else:
        codec, how = chosen, "as chosen"
    manifest = _manifest(bundle)
    problem = codec_problem(codec, manifest.training.get("codecs"), manifest.name)
    if problem:
        raise RequestError(problem)
    return codec, how


def _decoded(spec: AlgorithmSpec, v: dict[str, Any], r: RestoreRequest
             ) -> tuple[dict[str, Any], list[str], list[str]]:
    codec, how = resolve_codec(v["CODEC"], str(v["INPUT"]), r.bundle_path)
    return {"provenance": {**(r.provenance or {}), "CODEC": codec}}, [], [f"codec: {codec}, {how}"]


def block_grid_window(src: str, w: Window) -> Window:
    """A window grown to the codecs' 16-pixel block grid: the networks then see the blocks where the file has
    them (a window is read through a VRT whose origin is its first pixel)."""
    ds = gdal.Open(src)
    rows, cols = ds.RasterYSize, ds.RasterXSize
    b = BLOCK_GRID_PX
    r0, c0 = w.row_off // b * b, w.col_off // b * b
    r1, c1 = min(-(-w.row_end // b) * b, rows), min(-(-w.col_end // b) * b, cols)
    return Window(r0, c0, r1 - r0, c1 - c0)


# ---- the algorithms ----------------------------------------------------------------------------------------------
SPECS: dict[str, AlgorithmSpec] = {s.name: s for s in (
    AlgorithmSpec("restore", "Restore raster with a model bundle", ""),
    AlgorithmSpec("dehaze", "Remove haze", "dehaze", {4: "dehaze-bgrn", 3: "dehaze-rgb"},
                  output_label=lambda r: "dehazed"),
    AlgorithmSpec("remove_clouds", "Remove clouds", "remove_clouds", {4: "clouds-bgrn", 3: "clouds-rgb"},
                  (ETA, MASK, MASK_BAND, AUTO_MASK, MASK_THRESHOLD, SAMPLES),
                  ((OUTPUT, "image"), (UNCERTAINTY_OUTPUT, "uncertainty")),
                  output_label=lambda r: "clouds removed", hook=_clouds),
    AlgorithmSpec("super_resolve", "Super-resolve (any scale)", "super_resolve", {4: "sr-bgrn", 3: "sr-rgb"},
                  (SCALE, TARGET_RESOLUTION), output_label=lambda r: f"super-resolved x{r.scale_factor:g}",
                  hook=_super_resolve),
    # the 8-bit RGB bundle is not trained yet (docs/models/refsr-bgrn.md): 3-band inputs need a MODEL_FOLDER
    AlgorithmSpec("reference_super_resolve", "Super-resolve with a reference image", "reference_super_resolve",
                  {4: "refsr-bgrn"}, (REFERENCE, REFERENCE_BANDS, SCALE, TARGET_RESOLUTION),
                  output_label=lambda r: f"super-resolved x{r.scale_factor:g} with reference", hook=_reference),
    AlgorithmSpec("enhance_decoded", "Enhance a decoded (lossy-compressed) raster", "enhance_decoded",
                  {4: "decoded-bgrn", 3: "decoded-rgb"}, (CODEC,), output_label=lambda r: "enhanced",
                  hook=_decoded, window=block_grid_window),
)}


def spec_of(algorithm: str) -> AlgorithmSpec:
    """The spec of ``dehaze`` or ``rsrestore:dehaze``; an unknown name is a RequestError listing the others."""
    name = algorithm.split(":", 1)[1] if algorithm.startswith(PROVIDER_ID + ":") else algorithm
    if name not in SPECS:
        raise RequestError(f"unknown algorithm {algorithm!r}; choose one of {', '.join(SPECS)}")
    return SPECS[name]


def build_request(spec: AlgorithmSpec, values: Values, roots: list[tuple[str, Path]] | None = None) -> Resolved:
    """The request that ``values`` (parameter name -> plain value; unset names take their default) ask for.

    EXTENT is not applied here (see :func:`on_window`): the plugin reprojects the area with QGIS, the CLI with
    :func:`window_of_extent`.

    Raises:
        RequestError, RasterError: a value that does not fit; the message names the fix.
    """
    v = spec.checked(values)
    roots = model_roots() if roots is None else roots
    outputs = {key: v[p.name] for p, key in spec.outputs}
    request = RestoreRequest(
        input_path=str(v["INPUT"]),
        bundle_path=bundle_path(spec, v, roots),
        output_path=str(outputs["image"]),
        bands=v["BANDS"],
        steps=v["STEPS"],
        tile_size_px=v["TILE_SIZE"],
        overlap_px=v["OVERLAP"],
        seed=int(v["SEED"]),
        device=v["DEVICE"],
        cog=bool(v["COG"]),
        provenance={"ALGORITHM": spec.id},
    )
    if spec.hook is None:
        return Resolved(request)
    fields, notices, infos = spec.hook(spec, v, request)
    return Resolved(dataclasses.replace(request, **fields), tuple(notices), tuple(infos))


def on_window(request: RestoreRequest, spec: AlgorithmSpec, area: AreaWindow, input_size: tuple[int, int],
              tmp_dir: str) -> tuple[RestoreRequest, str]:
    """The request on a VRT (in ``tmp_dir``) of the window covering an area, and a line saying which part of the
    raster that is; ``input_size`` is (rows, cols) of the input."""
    src = request.input_path
    w = spec.window(src, area.window) if spec.window else area.window
    vrt = window_vrt(str(Path(src).resolve()), w, Path(tmp_dir) / f"{Path(src).stem}-window.vrt")
    part = 100.0 * w.rows * w.cols / max(1, input_size[0] * input_size[1])
    message = (f"EXTENT: restoring input columns {w.col_off}-{w.col_end - 1}, rows {w.row_off}-{w.row_end - 1} "
               f"({w.cols} x {w.rows} px, {part:.1f} % of the raster); {100.0 * area.covered_fraction:.0f} % of the "
               "area lies on the raster")
    prov = {**(request.provenance or {}), "INPUT": Path(src).name,
            "WINDOW": f"col {w.col_off}, row {w.row_off}, {w.cols} x {w.rows} px"}
    return dataclasses.replace(request, input_path=str(vrt), provenance=prov), message


def window_of_extent(extent: str, src: str) -> AreaWindow:
    """The input window of an extent written as QGIS writes it, ``xmin,xmax,ymin,ymax [EPSG:code]`` (without a
    CRS: the raster's), reprojected into the raster's CRS with its edges densified."""
    from osgeo import ogr, osr

    text = extent.strip()
    crs_text = ""
    if "[" in text:
        text, crs_text = text.split("[", 1)
        crs_text = crs_text.rstrip("] ").strip()
    try:
        xmin, xmax, ymin, ymax = (float(p) for p in text.split(","))
    except ValueError:
        raise RequestError(f"EXTENT {extent!r} is not 'xmin,xmax,ymin,ymax' or 'xmin,xmax,ymin,ymax [EPSG:code]'"
                           ) from None
    ds = gdal.Open(src)
    if ds is None:
        raise RasterError(f"cannot open {src}: {gdal.GetLastErrorMsg()}")
    ring = ogr.Geometry(ogr.wkbLinearRing)
    for x, y in ((xmin, ymin), (xmax, ymin), (xmax, ymax), (xmin, ymax), (xmin, ymin)):
        ring.AddPoint_2D(x, y)
    poly = ogr.Geometry(ogr.wkbPolygon)
    poly.AddGeometry(ring)
    if crs_text:
        source = osr.SpatialReference()
        if source.SetFromUserInput(crs_text) != 0:
            raise RequestError(f"EXTENT's CRS {crs_text!r} is unknown; write it as EPSG:code")
        target = osr.SpatialReference(wkt=ds.GetProjection())
        for s in (source, target):
            s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        poly.Segmentize(max(xmax - xmin, ymax - ymin) / 32.0)
        if poly.Transform(osr.CoordinateTransformation(source, target)) != 0:
            raise RequestError(f"EXTENT cannot be reprojected from {crs_text} into the raster's CRS")
    return window_for_area(poly.ExportToWkt(), ds.GetGeoTransform(), ds.RasterYSize, ds.RasterXSize)


__all__ = ["AUTO", "KINDS", "SPECS", "AlgorithmSpec", "Param", "Resolved", "bundle_path", "build_request",
           "model_roots", "on_window", "spec_of", "window_of_extent"]
