"""The public restore API: what the QGIS algorithms call, usable without QGIS.

    from rscore.runtime import RestoreRequest, restore
    report = restore(RestoreRequest(input_path="hazy.tif", bundle_path="bundles/dehaze-bgrn",
                                    output_path="clear.tif", steps=5, seed=0))
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import signal
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from osgeo import gdal

from rscore import __version__
from rscore.bundle.manifest import AutoMaskSpec, BundleError, Manifest
from rscore.bundle.store import Bundle, load_bundle, sha256_file
from rscore.diffusion.loop import Cancelled
from rscore.diffusion.plan import make_plan
from rscore.pipelines import PIPELINE_CLASSES, Pipeline, PipelineOptions
from rscore.raster.extent import coverage_of
from rscore.raster.io import InputRaster, check_output_path
from rscore.raster.onto_grid import TargetGrid, open_onto_grid
from rscore.runtime import openvino_backend
from rscore.runtime.automask import threshold_mask
from rscore.runtime.engine import EngineReport, EngineSettings, Feedback, NullFeedback, TiledRunner
from rscore.runtime.predictor import (
    Backend,
    Device,
    ModelFileError,
    OnnxStage,
    choose_backend,
    default_threads,
    get_session,
    import_onnxruntime,
    session_message,
)
from rscore.tiling.grid import OutputGrid


class RequestError(ValueError):
    """The request does not fit the model or the raster; the message names the problem and the fix."""


@dataclass(frozen=True)
class RestoreRequest:
    """One restoration run.

    Attributes:
        input_path: GDAL-readable input raster.
        bundle_path: model bundle directory.
        output_path: GeoTIFF to write (replaced only on success).
        bands: 1-based input bands in the bundle's band order; None = the first N bands in file order
            when the raster has exactly the bundle's band count.
        steps: sampling steps (None: the bundle's default).
        tile_size_px: core tile size in output pixels (None: bundle default).
        overlap_px: tile overlap in output pixels (None: bundle default).
        seed: noise seed; the result for a seed does not depend on the tiling.
        device: "auto", "cpu" or "cuda".
        scale_factor: output/input resolution ratio (None: bundle default, 1 for restoration).
        samples: number of samples averaged (> 1 gives a meaningful ``uncertainty_path``).
        uncertainty_path: optional Float32 raster of the per-pixel standard deviation over samples.
        aux_path: optional co-registered auxiliary raster (e.g. a reference date), warped onto the output grid.
        aux_bands: 1-based bands of ``aux_path`` (None: all).
        threads: onnxruntime intra-op threads (None: all cores).
        extra_outputs: the bundle's extra outputs to write, name -> path (Float32).
        options: options of the bundle's pipeline: its options object (:mod:`rscore.pipelines`, e.g.
            ``DeOptions(weight_floor=0.5)``) or a mapping of its fields (``{"one_pass": True}``); None: defaults.
            Diffusion pipelines take ``one_pass`` (only the one-pass ``coarse`` stage, no sampling); Diffusion
            Enhancement bundles also ``weight_floor`` (eta: the reference weight W is clamped to [eta, 1]) and
            ``fixed_weight`` (a constant W instead of the weight network, for ablations).
        mask_path: optional raster marking the pixels to restore (non-zero); every other pixel is copied
            from the input bit for bit, and tiles with nothing to restore are skipped. Warped onto the input
            grid when its grid or CRS differs (maximum over each input pixel: a finer mask loses no cloud).
        mask_band: 1-based band of ``mask_path``.
        auto_mask: without ``mask_path``, let the bundle find the pixels to restore (bundles whose manifest has
            ``auto_mask``): a first pass computes its degradation map, pixels above the bundle's threshold
            (grown by its dilation) are restored and every other pixel is copied from the input bit for bit.
        mask_threshold: degradation threshold of the automatic mask, 0-1 (None: the bundle's default).
        max_megapixels: refuse outputs larger than this (None: the ``RSRESTORE_MAX_MEGAPIXELS`` environment
            variable, or no limit).
        overviews: build internal overviews in every output (x2, x4, ... down to about 256 px; QGIS then pans
            large outputs quickly). Costs roughly half the time of writing the output once more.
        cog: write the outputs as cloud-optimised GeoTIFFs (512 px tiles, overviews first): one more copy of
            each file when it is finished, still published atomically. The provenance keys then sit in the
            default metadata domain as ``RSRESTORE_<key>`` (GDAL's copy drops other domains).
        provenance: extra keys for the outputs' provenance (the plugin adds ``ALGORITHM``); the runtime records
            the bundle, its checksum, steps, seed, options and the rest itself (:func:`provenance_of`).
    """

    input_path: str
    bundle_path: str
    output_path: str
    bands: Sequence[int] | None = None
    steps: int | None = None
    tile_size_px: int | None = None
    overlap_px: int | None = None
    seed: int = 0
    device: Device = "auto"
    scale_factor: float | None = None
    samples: int = 1
    uncertainty_path: str | None = None
    aux_path: str | None = None
    aux_bands: Sequence[int] | None = None
    threads: int | None = None
    extra_outputs: dict[str, str] = field(default_factory=dict)
    options: PipelineOptions | Mapping[str, Any] | None = None
    mask_path: str | None = None
    mask_band: int = 1
    auto_mask: bool = False
    mask_threshold: float | None = None
    max_megapixels: float | None = None
    provenance: Mapping[str, str] | None = None
    overviews: bool = True
    cog: bool = False


#: environment variable with a default size limit for every run (output megapixels), e.g. on a shared server
MAX_MPX_ENV = "RSRESTORE_MAX_MEGAPIXELS"
#: least share of the output extent an auxiliary (reference) raster must cover
AUX_MIN_COVERAGE = 0.5


def _max_megapixels(request: RestoreRequest) -> float | None:
    if request.max_megapixels is not None:
        return float(request.max_megapixels)
    env = os.environ.get(MAX_MPX_ENV, "").strip()
    if not env:
        return None
    try:
        return float(env)
    except ValueError:
        raise RequestError(f"{MAX_MPX_ENV}={env!r} is not a number of megapixels") from None


@dataclass
class RestoreReport:
    """Summary of a finished run."""

    output_path: str
    outputs: dict[str, str]
    provider_message: str
    tiles_total: int
    tiles_skipped: int
    tiles_clear: int
    network_evals: int
    steps: int
    seconds: float
    summary: str
    masked_fraction: float | None = None
    clipped_pixels: int = 0


def build_pipeline(bundle: Bundle, steps: int | None, device: Device, threads: int | None,
                   options: PipelineOptions | None = None) -> tuple[Pipeline, str]:
    """Sessions for every stage and the pipeline object (``steps`` None: one pass, no sampling); returns
    (pipeline, provider message)."""
    pipeline, backend = build_pipeline_on(bundle, steps, device, threads, options)
    return pipeline, backend.message


def build_pipeline_on(bundle: Bundle, steps: int | None, device: Device, threads: int | None,
                      options: PipelineOptions | None = None) -> tuple[Pipeline, Backend]:
    """:func:`build_pipeline`, returning the backend that runs it (its precision goes into the provenance)."""
    backend = backend_for(device)
    n_threads = threads or default_threads()
    m = bundle.manifest
    try:
        stages = {name: _load_stage(bundle, name, backend, n_threads) for name in m.stages}
    except BundleError as exc:
        if backend.kind != "openvino" or device != "auto":
            raise
        # the user did not ask for OpenVINO: run as before, and say why
        backend = Backend("onnxruntime", ("CPUExecutionProvider",), "float32",
                          f"{exc}; running onnxruntime on CPU instead")
        stages = {name: _load_stage(bundle, name, backend, n_threads) for name in m.stages}
    for name, st in stages.items():
        check_stage_io(m, name, st)
    if backend.kind == "onnxruntime":
        message = session_message([st.session for st in stages.values()], list(backend.providers))
        if message:
            backend = dataclasses.replace(backend, message=message)
    plan = make_plan(m.sampler, steps) if m.sampler is not None and steps is not None else None
    return PIPELINE_CLASSES[m.pipeline](m, stages, plan, options), backend


def backend_for(device: Device) -> Backend:
    """The backend a run with this DEVICE uses on this machine (no network is loaded; OpenVINO is not probed
    when onnxruntime has a GPU for ``auto``)."""
    available = list(import_onnxruntime().get_available_providers())
    probe = device == "openvino" or (device == "auto" and "CUDAExecutionProvider" not in available)
    return choose_backend(device, available, openvino_backend.cpu_has_bf16() if probe else None)


def _load_stage(bundle: Bundle, name: str, backend: Backend, threads: int) -> Any:
    """The stage's network on the backend (an :class:`OnnxStage` or an OpenVINO stage); a file that fails its
    checksum, or that the backend cannot load as a self-contained network, is a bundle error naming the stage."""
    spec = bundle.manifest.stages[name]
    where = f"model {bundle.manifest.name!r}, stage {name!r}"
    try:
        if backend.kind == "openvino":
            return openvino_backend.get_stage(str(bundle.stage_path(name)), spec.sha256, threads, backend.precision)
        return OnnxStage(get_session(bundle.stage_path(name), spec.sha256, list(backend.providers), threads), name)
    except ModelFileError as exc:
        raise BundleError(f"{where}: {exc}") from None
    except OSError as exc:
        raise BundleError(f"{where}: cannot read {spec.file} ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types; OpenVINO's derive from RuntimeError
        if backend.kind == "openvino" and isinstance(exc, RuntimeError):
            raise BundleError(f"{where}: OpenVINO cannot load {spec.file} ({openvino_backend.error_text(exc)}); "
                              "run it with DEVICE cpu, or re-export the bundle") from None
        if not type(exc).__module__.startswith("onnxruntime"):
            raise
        raise BundleError(f"{where}: onnxruntime cannot load {spec.file} ({str(exc).splitlines()[0][:300]}); the file "
                          "is not a valid network for this onnxruntime, reinstall or re-export the bundle") from None


def check_stage_io(manifest: Manifest, name: str, stage: OnnxStage) -> None:
    """The network file must have the inputs and outputs the manifest declares for its stage (the exporter may
    drop an input the network ignores, e.g. ``t`` of a time-independent network; it never adds one)."""
    spec = manifest.stages[name]
    extra_in = [i for i in stage.input_names if i not in spec.inputs]
    missing_out = [o for o in spec.outputs if o not in stage.output_names]
    if extra_in or missing_out:
        raise BundleError(
            f"model {manifest.name!r}: the network of stage {name!r} ({spec.file}) does not match its manifest "
            f"(manifest inputs {list(spec.inputs)}, outputs {list(spec.outputs)}; the file has inputs "
            f"{list(stage.input_names)}, outputs {list(stage.output_names)}); re-export the bundle")


def resolve_bands(manifest: Manifest, raster_band_count: int, bands: Sequence[int] | None) -> tuple[int, ...]:
    """Check the band selection against the model; the error names the band problem and the fix."""
    need = manifest.input.count
    order = ", ".join(manifest.input.names)
    if bands is None or len(bands) == 0:
        if raster_band_count != need:
            raise RequestError(
                f"model {manifest.name!r} needs {need} band(s) in the order {order}, but the raster has "
                f"{raster_band_count}; choose {need} bands with the BANDS parameter (in that order) or use a "
                f"model made for {raster_band_count}-band rasters"
            )
        return tuple(range(1, need + 1))
    if len(bands) != need:
        raise RequestError(
            f"model {manifest.name!r} needs exactly {need} band(s) in the order {order}; {len(bands)} were "
            f"selected ({list(bands)})"
        )
    bad = [b for b in bands if not 1 <= int(b) <= raster_band_count]
    if bad:
        raise RequestError(f"band(s) {bad} do not exist: the raster has bands 1..{raster_band_count}")
    return tuple(int(b) for b in bands)


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()


def _files_of(path: str) -> list[str]:
    """Every file a raster reads: the file itself, and for a VRT or multi-file format its sources
    (``GetFileList``); a path GDAL cannot open is returned alone (it is reported later)."""
    files = [path]
    try:
        ds = gdal.OpenEx(path, gdal.OF_RASTER)
    except RuntimeError:  # gdal.UseExceptions() may be on
        ds = None
    if ds is not None:
        files += [f for f in (ds.GetFileList() or []) if not f.startswith("/vsi")]
    return files


def _check_paths(request: RestoreRequest) -> None:
    """Outputs must differ from each other and from every file the inputs read (an output replaces its file):
    a VRT whose source is the output would otherwise be overwritten while it is read."""
    outs = [p for p in (request.output_path, request.uncertainty_path, *request.extra_outputs.values()) if p]
    for o in outs:
        check_output_path(Path(o))
    sources = [(src, f) for src in (request.input_path, request.aux_path, request.mask_path) if src
               for f in _files_of(src)]
    for i, a in enumerate(outs):
        for b in outs[i + 1:]:
            if _same_file(a, b):
                raise RequestError(f"two outputs point to the same file {a!r}; choose different output files")
        for src, f in sources:
            if _same_file(a, f):
                what = "is also an input" if f == src else f"is read by the input {src!r} (one of its source files)"
                raise RequestError(f"the output {a!r} {what}; choose another output file")


class _SigtermAsCancel:
    """While a run lasts, SIGTERM (``timeout``, systemd, container stops) cancels it like the user would: the
    engine stops at the next network evaluation, deletes its temporary files and raises ``Cancelled``. Only the
    main thread can install a signal handler; elsewhere (QGIS desktop workers) the feedback is used as it is."""

    def __init__(self, inner: Feedback) -> None:
        self.inner = inner
        self.terminated = False
        self._old: object = None

    def set_progress(self, fraction: float) -> None:
        self.inner.set_progress(fraction)

    def is_canceled(self) -> bool:
        return self.terminated or self.inner.is_canceled()

    def info(self, message: str) -> None:
        self.inner.info(message)

    def _handle(self, signum: int, frame: object) -> None:
        self.terminated = True

    def __enter__(self) -> _SigtermAsCancel:
        self._installed = False
        if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGTERM"):
            old = signal.getsignal(signal.SIGTERM)
            if old is not None:  # None: a handler set outside Python (an embedding host), which we leave alone
                try:
                    signal.signal(signal.SIGTERM, self._handle)
                    self._old, self._installed = old, True
                except (ValueError, OSError):
                    pass
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGTERM, self._old)  # type: ignore[arg-type]
        if not self.terminated:
            return
        if exc[0] is Cancelled:
            raise Cancelled("terminated (SIGTERM): no output was written") from None
        # the signal came after the last cancellation point (while publishing): the run is complete, and the
        # termination request is honoured now, by the handler that was there before
        signal.raise_signal(signal.SIGTERM)


#: share of the progress bar given to the first pass of an automatic mask (one network evaluation per tile)
AUTO_MASK_PROGRESS = 0.1


class _ScaledFeedback:
    """Maps a pass's progress 0-1 onto [lo, hi] of the caller's progress bar."""

    def __init__(self, inner: Feedback, lo: float, hi: float) -> None:
        self.inner, self.lo, self.hi = inner, lo, hi

    def set_progress(self, fraction: float) -> None:
        self.inner.set_progress(self.lo + (self.hi - self.lo) * fraction)

    def is_canceled(self) -> bool:
        return self.inner.is_canceled()

    def info(self, message: str) -> None:
        self.inner.info(message)


def _auto_mask_spec(m: Manifest, request: RestoreRequest) -> AutoMaskSpec:
    assert m.auto_mask is not None
    if request.mask_threshold is None:
        return m.auto_mask
    thr = float(request.mask_threshold)
    if not (0.0 < thr < 1.0):
        raise RequestError(f"the mask threshold must be between 0 and 1 (exclusive), got {request.mask_threshold}")
    return dataclasses.replace(m.auto_mask, threshold=thr)


def _automatic_mask(src: InputRaster, m: Manifest, pipeline: Pipeline, settings: EngineSettings, am: AutoMaskSpec,
                    tmp_dir: str, fb: Feedback) -> tuple[InputRaster, float]:
    """First pass of an automatic mask: the bundle's degradation map over the whole raster (its one-pass stage,
    one network evaluation per tile, no sampling), thresholded and dilated into a Byte mask in ``tmp_dir``."""
    map_path = os.path.join(tmp_dir, "degradation.tif")
    mask_path = os.path.join(tmp_dir, "mask.tif")
    one_pass = type(pipeline)(m, pipeline.stages, None, dataclasses.replace(pipeline.options, one_pass=True))
    runner = TiledRunner(src, m, one_pass, dataclasses.replace(settings, samples=1))
    fb.info(f"automatic mask: computing model {m.name}'s degradation map ({runner.tiles.num_tiles} tile(s))")
    runner.run(None, None, {am.output: map_path}, _ScaledFeedback(fb, 0.0, AUTO_MASK_PROGRESS))
    fraction, _ = threshold_mask(map_path, mask_path, am.threshold, am.dilate_px)
    return InputRaster(mask_path, [1], require_crs=False), fraction


@dataclass(frozen=True)
class ResolvedRun:
    """A request checked against its bundle and input raster, before any pixel is read.

    Attributes:
        bundle: the loaded bundle.
        bands: 1-based input bands in the bundle's band order.
        steps: sampling steps, or None for one pass (the bundle's one-pass stage, or a one-pass pipeline).
        options: the pipeline's options.
        settings: tiling, scale, seed and samples for the engine.
        auto_mask: the automatic mask's settings, when the bundle finds the pixels to restore itself.
        input_grid: the input raster's grid; output_grid: the output grid (input / scale factor).
        aux_coverage: share of the output grid that the auxiliary (reference) raster covers (None without one).
    """

    bundle: Bundle
    bands: tuple[int, ...]
    steps: int | None
    options: PipelineOptions
    settings: EngineSettings
    auto_mask: AutoMaskSpec | None
    input_grid: TargetGrid
    output_grid: TargetGrid
    aux_coverage: float | None = None

    @property
    def manifest(self) -> Manifest:
        return self.bundle.manifest


def _resolve_steps(m: Manifest, request: RestoreRequest, options: PipelineOptions) -> int | None:
    """Sampling steps, or None for one pass: asked for (``one_pass``), or the bundle's default (default_steps 0)
    when no steps are asked for."""
    if m.sampler is None:
        if request.steps:
            raise RequestError(f"model {m.name!r} runs in one pass ({m.pipeline}); it takes no sampling steps")
        return None
    spec = PIPELINE_CLASSES[m.pipeline].SPEC
    one_pass = bool(getattr(options, "one_pass", False))
    if one_pass and request.steps:
        raise RequestError("one_pass runs no sampling steps: leave steps empty, or drop one_pass")
    if one_pass or (not request.steps and m.sampler.default_steps == 0):
        if spec.one_pass_stage is None or spec.one_pass_stage not in m.stages:
            raise RequestError(f"model {m.name!r} has no one-pass {spec.one_pass_stage or 'coarse'} stage; one_pass "
                               "needs one")
        return None
    steps = int(request.steps or m.sampler.default_steps)
    if not 1 <= steps <= m.sampler.num_timesteps:
        raise RequestError(f"steps must be between 1 and {m.sampler.num_timesteps}, got {steps}")
    return steps


def resolve_run(request: RestoreRequest) -> ResolvedRun:
    """Check a request against its bundle and input raster, in one place; every message names the fix.

    Raises:
        BundleError, RasterError, RequestError.
    """
    bundle = load_bundle(request.bundle_path)
    m = bundle.manifest
    if request.samples < 1:
        raise RequestError(f"samples must be >= 1, got {request.samples}")
    _check_paths(request)
    if request.uncertainty_path and request.samples < 2:
        raise RequestError("uncertainty_path is the standard deviation over several samples: set samples to 2 or more "
                           "(e.g. 4), or leave uncertainty_path empty")
    try:
        options = PIPELINE_CLASSES[m.pipeline].SPEC.make_options(request.options)
    except (TypeError, ValueError) as exc:
        raise RequestError(f"model {m.name!r}: {exc}") from None
    scale = float(request.scale_factor if request.scale_factor is not None else m.scale.default)
    if not (m.scale.min - 1e-9 <= scale <= m.scale.max + 1e-9):
        raise RequestError(f"model {m.name!r} supports scale factors {m.scale.min}..{m.scale.max}, got {scale}")
    tiling = m.tiling
    tile = int(request.tile_size_px or tiling.tile_size_px)
    overlap = int(tiling.overlap_px if request.overlap_px is None else request.overlap_px)
    min_tile = max(16, 2 * tiling.size_multiple)
    if tile < min_tile:
        raise RequestError(f"tile size must be at least {min_tile} px for this model, got {tile}")
    if not 0 <= overlap < tile:
        raise RequestError(f"overlap must be between 0 and tile size - 1 ({tile - 1}) px, got {overlap}")
    steps = _resolve_steps(m, request, options)
    if any("aux" in s.inputs for s in m.stages.values()) and not request.aux_path:
        raise RequestError(f"model {m.name!r} needs an auxiliary (reference) raster")
    probe = InputRaster(request.input_path, None)
    info = probe.info
    probe.close()
    out = OutputGrid(info.rows, info.cols, scale)
    mpx = out.rows * out.cols / 1e6
    limit = _max_megapixels(request)
    if limit is not None and mpx > limit:
        raise RequestError(f"the output would have {mpx:,.0f} megapixels, above the limit of {limit:,.0f} "
                           f"({'max_megapixels' if request.max_megapixels is not None else MAX_MPX_ENV}); raise "
                           "the limit or restore a smaller extent")
    bands = resolve_bands(m, info.band_count, request.bands)
    if request.auto_mask and request.mask_path:
        raise RequestError("give either a MASK raster or the automatic mask, not both")
    if request.mask_threshold is not None and not request.auto_mask:
        raise RequestError("mask_threshold applies to the automatic mask only: set auto_mask or leave it empty")
    if request.auto_mask and m.auto_mask is None:
        raise RequestError(f"model {m.name!r} cannot find the pixels to restore by itself (its manifest has no "
                           "auto_mask); give a MASK raster or run without a mask")
    masked = bool(request.mask_path) or request.auto_mask
    if masked and abs(scale - 1.0) > 1e-12:
        raise RequestError("a MASK keeps unmasked pixels unchanged, so it only works at scale factor 1")
    if masked and m.output.names != m.input.names:
        raise RequestError(f"a MASK copies unmasked pixels from the input, but model {m.name!r} writes other bands "
                           f"({', '.join(m.output.names)}) than it reads ({', '.join(m.input.names)}); run it "
                           "without a mask")
    settings = EngineSettings(tile_size_px=tile, overlap_px=overlap, margin_px=tiling.margin_px,
                              size_multiple=tiling.size_multiple, scale_factor=scale, seed=int(request.seed),
                              samples=int(request.samples))
    gt = tuple(info.geotransform)
    out_gt = out.geotransform(gt)
    aux_coverage = None
    if request.aux_path:
        aux_coverage = coverage_of(request.aux_path, out_gt, out.rows, out.cols, info.crs_wkt)
        if aux_coverage < AUX_MIN_COVERAGE:
            raise RequestError(
                f"the reference raster overlaps only {100 * aux_coverage:.0f} % of the output extent (at least "
                f"{100 * AUX_MIN_COVERAGE:.0f} % is needed); choose a reference over the same place (check its CRS), "
                "or restrict the input to the part the reference covers (EXTENT)")
    return ResolvedRun(
        bundle=bundle, bands=bands, steps=steps, options=options, settings=settings,
        auto_mask=_auto_mask_spec(m, request) if request.auto_mask else None,
        input_grid=TargetGrid(info.rows, info.cols, gt, info.crs_wkt),
        output_grid=TargetGrid(out.rows, out.cols, out_gt, info.crs_wkt), aux_coverage=aux_coverage,
    )


def provenance_of(request: RestoreRequest, run: ResolvedRun, provider_msg: str, precision: str = "float32"
                  ) -> dict[str, str]:
    """What made an output, for its ``RSRESTORE`` metadata domain (``gdalinfo -mdd RSRESTORE out.tif``): every
    setting that changes the result, the bundle's identity (SHA-256 of its manifest, which holds the SHA-256 of
    each network file), the runtime's version and the input's file name."""
    m = run.manifest
    s = run.settings
    mask = ("automatic" if run.auto_mask is not None else Path(request.mask_path).name if request.mask_path
            else "none")
    out = {
        "ALGORITHM": "rscore.runtime.restore",
        "RSRESTORE_VERSION": __version__,
        "CREATED_UTC": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "INPUT": Path(request.input_path).name,
        "INPUT_BANDS": ",".join(str(b) for b in run.bands),
        "BUNDLE": m.name,
        "BUNDLE_SHA256": sha256_file(run.bundle.root / "manifest.json"),
        "TASK": m.task,
        "PIPELINE": m.pipeline,
        "STEPS": str(run.steps) if run.steps else "one pass",
        "SEED": str(s.seed),
        "SAMPLES": str(s.samples),
        "SCALE_FACTOR": f"{s.scale_factor:g}",
        "OPTIONS": json.dumps(dataclasses.asdict(run.options), sort_keys=True),
        "TILE_SIZE_PX": str(s.tile_size_px),
        "OVERLAP_PX": str(s.overlap_px),
        "MASK": mask,
        "COG": "yes" if request.cog else "no",
        "DEVICE": request.device,
        "EXECUTION": provider_msg,
        "PRECISION": precision,
    }
    if request.mask_threshold is not None:
        out["MASK_THRESHOLD"] = f"{request.mask_threshold:g}"
    if request.aux_path:
        out["REFERENCE"] = Path(request.aux_path).name
    out.update({str(k).upper(): str(v) for k, v in (request.provenance or {}).items()})
    return out


class _Inputs:
    """Every raster a run reads, opened on the grid it is read on (input; mask on the input grid; reference on
    the output grid), and closed (with their warp files) together."""

    def __init__(self) -> None:
        self.src: InputRaster | None = None
        self.mask: InputRaster | None = None
        self.aux: InputRaster | None = None

    def open(self, request: RestoreRequest, run: ResolvedRun) -> _Inputs:
        m = run.manifest
        self.src = InputRaster(request.input_path, run.bands)
        if request.mask_path:
            # "max": an input pixel is masked when any mask pixel inside it is (a finer mask loses no cloud)
            self.mask = open_onto_grid(request.mask_path, [request.mask_band], run.input_grid, "max", "mask raster",
                                       "MASK (or none)")
        if request.aux_path:
            self.aux = open_onto_grid(request.aux_path, request.aux_bands, run.output_grid, "bilinear",
                                      "reference raster", "reference raster", footprint=True)
            aux_spec = m.aux or m.input
            if len(self.aux.bands) != aux_spec.count:
                raise RequestError(f"model {m.name!r} needs a reference raster with {aux_spec.count} band(s) "
                                   f"({', '.join(aux_spec.names)}); the one given has {len(self.aux.bands)}")
        return self

    def close(self) -> None:
        for r in (self.src, self.mask, self.aux):
            if r is not None:
                r.close()


def restore(request: RestoreRequest, feedback: Feedback | None = None) -> RestoreReport:
    """Restore a raster with a model bundle (tiled, blended, atomic output).

    Raises:
        BundleError: bad or corrupt bundle.
        RasterError, RequestError: input/output problems (messages name the fix).
        RuntimeMissing: onnxruntime is not installed.
        Cancelled: the feedback asked to stop, or the process received SIGTERM; no output is left behind.
    """
    with _SigtermAsCancel(feedback or NullFeedback()) as fb:
        return _restore(request, fb)


def _restore(request: RestoreRequest, fb: Feedback) -> RestoreReport:
    t0 = time.perf_counter()
    run = resolve_run(request)
    m = run.manifest
    threads = request.threads or default_threads()
    pipeline, backend = build_pipeline_on(run.bundle, run.steps, request.device, threads, run.options)
    provider_msg = backend.message
    inputs = _Inputs()
    tmp_dir: tempfile.TemporaryDirectory[str] | None = None
    masked_fraction = None
    am = run.auto_mask
    try:
        inputs.open(request, run)
        assert inputs.src is not None
        mask = inputs.mask
        if am is not None:
            # beside the output (its filesystem holds the output anyway; the system temp may be a small tmpfs),
            # hidden and named after this process so that an interrupted run's folder is swept later
            out = Path(request.output_path)
            tmp_dir = tempfile.TemporaryDirectory(prefix=f".{out.stem}.automask-{os.getpid()}-", dir=out.parent)
            inputs.mask, masked_fraction = _automatic_mask(inputs.src, m, pipeline, run.settings, am, tmp_dir.name,
                                                           fb)
            mask = inputs.mask
        runner = TiledRunner(inputs.src, m, pipeline, run.settings, aux=inputs.aux, aux_bands=m.aux or m.input,
                             mask=mask)
        summary = (
            f"model {m.name} ({m.pipeline}), {runner.tiles.num_tiles} tile(s) of {runner.tiles.tile_px} px, "
            f"{f'{run.steps} step(s)' if run.steps else 'one pass'} x {request.samples} sample(s), "
            f"output {runner.grid.cols} x {runner.grid.rows} px, {provider_msg}"
        )
        if inputs.src.info.scale_offset is not None:
            summary += "; using the raster's own band scale/offset to reach physical units"
        if run.aux_coverage is not None:
            summary += (f"; reference covers {100 * run.aux_coverage:.0f} % of the output"
                        + (" (outside it the model runs without one)" if run.aux_coverage < 0.999 else ""))
        if masked_fraction is not None:
            assert am is not None
            summary += (f"; automatic mask: {masked_fraction * 100:.1f} % of the valid pixels restored (degradation "
                        f">= {am.threshold:g}, grown by {am.dilate_px} px), the others copied unchanged")
        elif mask is not None:
            summary += "; only pixels the mask marks are restored"
        fb.info(summary)
        main_fb = fb if am is None else _ScaledFeedback(fb, AUTO_MASK_PROGRESS, 1.0)
        report: EngineReport = runner.run(request.output_path, request.uncertainty_path, request.extra_outputs,
                                          main_fb, provenance_of(request, run, provider_msg, backend.precision),
                                          request.overviews, request.cog, threads)
        if report.clipped_pixels:
            fb.info(f"{report.clipped_pixels:,} output pixel(s) fell outside the range of "
                    f"{inputs.src.info.data_type} and were clipped (saturated or negative values)")
    finally:
        inputs.close()
        if tmp_dir is not None:
            tmp_dir.cleanup()
    return RestoreReport(
        output_path=report.outputs["image"],
        outputs=report.outputs,
        provider_message=provider_msg,
        tiles_total=report.tiles_total,
        tiles_skipped=report.tiles_skipped,
        tiles_clear=report.tiles_clear,
        network_evals=report.network_evals,
        steps=run.steps or 0,
        seconds=time.perf_counter() - t0,
        summary=summary,
        masked_fraction=masked_fraction,
        clipped_pixels=report.clipped_pixels,
    )


__all__ = ["BundleError", "RequestError", "ResolvedRun", "RestoreReport", "RestoreRequest", "build_pipeline",
           "resolve_bands", "resolve_run", "restore"]
