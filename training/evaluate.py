"""Evaluate the shipped bundles through the plugin's runtime path and write ``docs/quality.md``.

    python -m training.evaluate --out docs            # every suite -> docs/quality.md, docs/images/*.png
    python -m training.evaluate --out /tmp/q --quick  # fewer crops (a smoke test, not the published numbers)

Every model row is produced by ``rscore.runtime.restore(RestoreRequest(...))`` on a GeoTIFF, exactly as the
QGIS algorithms run it (onnxruntime, tiling, blending, value scaling); classical baselines run beside it on
the same degraded crops. Held-out data only: crops of the geographic *test* split (docs/data.md), so run
``python training/fetch_data.py`` first. Every number in the report comes from the run.

Suites are an explicit dict (:data:`SUITES`), one per task; a new task adds its own suite function and entry
without touching the others.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import functools
import math
import os
import platform
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from osgeo import gdal, osr

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rscore.baselines.dark_channel import DarkChannelParams, dehaze_dcp, visible_band_indices  # noqa: E402
from rscore.bundle.store import load_bundle  # noqa: E402
from rscore.data.landsat import l1_dn_to_reflectance_x1e4  # noqa: E402
from rscore.degradations.haze import add_haze  # noqa: E402
from rscore.metrics.fidelity import psnr, sam_deg, ssim  # noqa: E402
from rscore.runtime import RestoreRequest, restore  # noqa: E402
from tools.demo import stretch  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.tasks.dehaze import LEVELS, alternate_haze  # noqa: E402
from training.tasks.imagery import DEFAULT_CACHE, load_pool  # noqa: E402

CONFIGS = ROOT / "training" / "configs"
SAMPLES = ROOT / "data" / "samples"
METRIC_COLUMNS = ("PSNR (dB) ↑", "SSIM ↑", "SAM (°) ↓", "LPIPS ↓", "s / Mpx")
#: Stage-1-vs-diffusion criterion from the project brief: diffusion must lower LPIPS at <= this PSNR loss.
MAX_PSNR_LOSS_DB = 0.5
#: Real-scene strips are decimated to at most this many pixels per panel side.
REAL_STRIP_MAX_PX = 384


# ---- settings and reports shared by every suite ----------------------------------------------------------
@dataclass(frozen=True)
class EvalSettings:
    """Where a run reads and writes.

    Attributes:
        out_dir: report directory (``quality.md`` and ``images/``).
        models_dir: root holding one folder per bundle.
        data_cache: imagery cache written by ``training/fetch_data.py``.
        quick: fewer crops per condition (smoke test).
        device: onnxruntime device for every restore() call.
    """

    out_dir: Path
    models_dir: Path = ROOT / "models"
    data_cache: Path = DEFAULT_CACHE
    quick: bool = False
    device: Literal["cpu", "cuda", "auto"] = "cpu"

    @property
    def images_dir(self) -> Path:
        return self.out_dir / "images"


@dataclass(frozen=True)
class SuiteReport:
    """A suite's markdown section and the image files it wrote."""

    markdown: str
    images: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Suite:
    """One task's evaluation: ``run(settings)`` returns its section of quality.md."""

    title: str
    run: Callable[[EvalSettings], SuiteReport]


# ---- small raster helpers -------------------------------------------------------------------------------
_GDAL_TYPES = {"Byte": gdal.GDT_Byte, "UInt16": gdal.GDT_UInt16}


@dataclass(frozen=True)
class RasterType:
    """How a physical-unit array is stored: GDAL type name and raster value = round(physical x scale)."""

    gdal_name: Literal["Byte", "UInt16"]
    per_unit: float  # 255 for 8-bit display values, 1e4 for reflectance

    @property
    def max_value(self) -> int:
        return 255 if self.gdal_name == "Byte" else 65535

    def quantise(self, phys: np.ndarray) -> np.ndarray:
        """Physical units -> raster integers (rounded, clipped to the type's range)."""
        return np.clip(np.round(phys.astype(np.float64) * self.per_unit), 0, self.max_value)

    def physical(self, raster: np.ndarray) -> np.ndarray:
        return (raster.astype(np.float64) / self.per_unit).astype(np.float32)


RASTER_TYPES: dict[str, RasterType] = {"reflectance": RasterType("UInt16", 1e4), "rgb8": RasterType("Byte", 255.0)}


def write_geotiff(path: Path, values: np.ndarray, gdal_name: str, epsg: int, geotransform: Sequence[float],
                  nodata: float | None = None) -> Path:
    """Write ``values`` (bands, rows, cols) as a GeoTIFF with a CRS (the runtime refuses rasters without)."""
    bands, rows, cols = values.shape
    ds = gdal.GetDriverByName("GTiff").Create(str(path), cols, rows, bands, _GDAL_TYPES[gdal_name])
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    ds.SetProjection(srs.ExportToWkt())
    ds.SetGeoTransform(tuple(geotransform))
    for b in range(bands):
        band = ds.GetRasterBand(b + 1)
        band.WriteArray(values[b])
        if nodata is not None:
            band.SetNoDataValue(nodata)
    ds = None
    return path


def read_raster(path: Path) -> np.ndarray:
    ds = gdal.Open(str(path))
    return np.stack([ds.GetRasterBand(b + 1).ReadAsArray() for b in range(ds.RasterCount)])


def _mem(values: np.ndarray) -> gdal.Dataset:
    """Float MEM dataset for ``tools.demo.stretch``."""
    bands, rows, cols = values.shape
    ds = gdal.GetDriverByName("MEM").Create("", cols, rows, bands, gdal.GDT_Float32)
    for b in range(bands):
        ds.GetRasterBand(b + 1).WriteArray(values[b].astype(np.float32))
    return ds


def write_strip(panels: Sequence[np.ndarray], rgb: Sequence[int], png: Path,
                lo_hi: list[tuple[float, float]] | None = None, gap_px: int = 6) -> Path:
    """PNG row of panels (each (bands, rows, cols), physical units) with one stretch for the row.

    ``lo_hi`` per RGB band; None = 2-98 % of the *last* panel (the reference, when there is one).
    """
    bands = tuple(int(i) + 1 for i in rgb)
    if lo_hi is None:
        _, lo_hi = stretch(_mem(panels[-1]), bands, None)
    rows = panels[0].shape[1]
    gap = np.full((3, rows, gap_px), 255, np.uint8)
    parts: list[np.ndarray] = []
    for i, p in enumerate(panels):
        parts += ([gap] if i else []) + [stretch(_mem(np.nan_to_num(p)), bands, lo_hi)[0]]
    img = np.concatenate(parts, axis=2)
    mem = gdal.GetDriverByName("MEM").Create("", img.shape[2], img.shape[1], 3, gdal.GDT_Byte)
    for i in range(3):
        mem.GetRasterBand(i + 1).WriteArray(img[i])
    png.parent.mkdir(parents=True, exist_ok=True)
    gdal.GetDriverByName("PNG").CreateCopy(str(png), mem)
    Path(str(png) + ".aux.xml").unlink(missing_ok=True)
    return png


@functools.lru_cache(maxsize=1)
def lpips_model():  # noqa: ANN201 - torch type imported lazily
    """One LPIPS(alex) instance for the whole run (weights from the offline cache, see docs/metrics.md)."""
    from rscore.metrics.lpips import LPIPS

    return LPIPS("alex")


def fidelity_row(ref: np.ndarray, est: np.ndarray, rgb: Sequence[int]) -> dict[str, float]:
    """PSNR, SSIM, SAM and LPIPS of ``est`` against ``ref`` (physical units, data range 1.0)."""
    from rscore.metrics.lpips import lpips_rgb

    return {
        "psnr": psnr(ref, est, 1.0),
        "ssim": ssim(ref, est, 1.0),
        "sam": sam_deg(ref, est),
        "lpips": lpips_rgb(ref, est, tuple(rgb), 1.0, model=lpips_model(), clip=True),
    }


def machine_note() -> str:
    import onnxruntime

    load = os.getloadavg()
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} logical CPU(s), Python "
            f"{platform.python_version()}, onnxruntime {onnxruntime.__version__} (CPU execution provider); "
            f"1-min load average at start {load[0]:.2f} (timings grow with background load)")


def _fmt(v: float, digits: int) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


# ---- dehaze suite ---------------------------------------------------------------------------------------
Condition = Literal["thin", "moderate", "thick", "alternate", "unseen"]
CONDITIONS: tuple[Condition, ...] = (*LEVELS, "alternate", "unseen")


def unseen_haze(clean: np.ndarray, wavelengths: tuple[float, ...], domain: str,
                rng: np.random.Generator) -> np.ndarray:
    """An evaluation-only haze model that no training generator uses: attenuation and path radiance drawn
    independently (``I = J * t_b + L_b * g(x)``), Rayleigh-like ``t_b`` (lambda^-4 optical depth), path
    radiance ``L_b`` falling as lambda^-2, and a smooth multiplicative gradient g in [0.6, 1.4]."""
    bands, rows, cols = clean.shape
    lam = np.asarray(wavelengths, np.float64) / 550.0
    t = np.exp(-rng.uniform(0.1, 0.5) * lam ** -4.0)
    top = 0.9 if domain == "rgb8" else 0.35
    path = rng.uniform(0.3, 1.0) * top * lam ** -2.0
    yy, xx = np.mgrid[0:rows, 0:cols]
    ang = rng.uniform(0, 2 * np.pi)
    g = 1.0 + 0.4 * (np.cos(ang) * (2 * xx / cols - 1) + np.sin(ang) * (2 * yy / rows - 1)) / np.sqrt(2)
    return (clean * t[:, None, None] + path[:, None, None] * g[None]).astype(np.float32)


@dataclass(frozen=True)
class RealScene:
    """A real raster without ground truth, prepared into a temp GeoTIFF the bundle accepts.

    Attributes:
        name: short name used in file names.
        path: the committed sample.
        prepare: "l8_dn" (Landsat-8 L1 DN -> uint16 reflectance x 1e4, DN 0 = fill -> nodata 0) or
            "assign_crs" (raster without georeferencing: a placeholder CRS and geotransform are assigned).
        note: what was done to it, for the report.
    """

    name: str
    path: Path
    prepare: Literal["l8_dn", "assign_crs"]
    note: str


@dataclass(frozen=True)
class DehazeBundle:
    """A bundle of the dehaze suite and the training config whose ``data`` section defines its data."""

    name: str
    config: Path
    real_scenes: tuple[RealScene, ...] = ()


@dataclass(frozen=True)
class DehazeSuiteConfig:
    """What the dehaze suite evaluates.

    Attributes:
        bundles: bundles in report order (missing ones are skipped with a note).
        crop_px: crop side, pixels.
        crops: clean test crops per bundle (each is degraded at every condition).
        quick_crops: crops in ``--quick`` mode.
        steps: diffusion step counts to evaluate (the bundle's default is added).
        strips: crops per bundle shown as PNG strips (crop i at level ``LEVELS[i % 3]``).
        seed: base seed; each bundle's crops and haze come from (seed, crc32(bundle name)).
        dcp: dark-channel prior parameters.
    """

    bundles: tuple[DehazeBundle, ...]
    crop_px: int = 256
    crops: int = 6
    quick_crops: int = 2
    steps: tuple[int, ...] = (1, 3, 5, 10)
    strips: int = 3
    seed: int = 20260101
    dcp: DarkChannelParams = field(default_factory=DarkChannelParams)


L8_CLOUDY = RealScene(
    "l8-cloudy", SAMPLES / "l8_cloudy_bgrn.tif", "l8_dn",
    "Landsat-8 L1 DN converted to uint16 reflectance x 1e4 with reflectance = DN x 2e-5 - 0.1 "
    "(docs/data.md, no sun-elevation correction); DN 0 (fill) becomes nodata 0")
AERIAL_RGB = RealScene(
    "aerial-rgb", SAMPLES / "aerial_rgb_512.tif", "assign_crs",
    "the sample has no CRS (the runtime refuses such rasters): the temporary copy gets a placeholder "
    "EPSG:32612 grid at 0.1 m (the NEON tile's corner, not the crop's true position); pixels unchanged")

DEHAZE = DehazeSuiteConfig(bundles=(
    DehazeBundle("dehaze-bgrn", CONFIGS / "dehaze_bgrn.yaml", (L8_CLOUDY,)),
    DehazeBundle("dehaze-rgb", CONFIGS / "dehaze_rgb.yaml", (AERIAL_RGB,)),
))


@dataclass
class DehazeBundleResult:
    """Per-crop metrics of one bundle: rows of dicts (condition, method, crop, metrics, seconds_per_mpx)."""

    name: str
    bands: tuple[str, ...]
    default_steps: int
    steps: tuple[int, ...]
    n_crops: int
    crop_px: int
    sources: tuple[str, ...]
    scenes: tuple[str, ...]
    alternate_fraction: float
    rows: list[dict[str, object]] = field(default_factory=list)
    strips: list[Path] = field(default_factory=list)
    real: list[tuple[RealScene, Path, float]] = field(default_factory=list)

    def mean(self, condition: str, method: str, key: str) -> float:
        return mean_of(self.rows, condition, method, key)


def method_names(steps: Sequence[int]) -> tuple[str, ...]:
    return ("input (hazy)", "dark-channel prior", "stage 1 alone",
            *(f"stage 1 + diffusion, {k} step{'s' if k > 1 else ''}" for k in steps))


def _haze(clean: np.ndarray, condition: Condition, wavelengths: tuple[float, ...], domain: str,
          rng: np.random.Generator) -> np.ndarray:
    if condition == "alternate":
        return alternate_haze(clean, wavelengths, rng, domain)
    if condition == "unseen":
        return unseen_haze(clean, wavelengths, domain, rng)
    return add_haze(clean, wavelengths, rng, level=condition)[0].image


def _restore(src: Path, bundle: Path, out: Path, device: str, steps: int | None) -> tuple[np.ndarray, float]:
    """Run the plugin's path; returns (raster values, seconds)."""
    req = RestoreRequest(str(src), str(bundle), str(out), steps=steps, seed=0, device=device,
                         coarse_only=steps is None)
    report = restore(req)
    return read_raster(out), report.seconds


def _run_methods(src: Path, hazy: np.ndarray, bundle_dir: Path, rtype: RasterType, vis: Sequence[int],
                 cfg: DehazeSuiteConfig, steps: Sequence[int], tmp: Path, device: str
                 ) -> dict[str, tuple[np.ndarray, float]]:
    """method name -> (physical-unit output, seconds) for every method on one hazy raster."""
    names = method_names(steps)
    mpx = hazy.shape[1] * hazy.shape[2] / 1e6
    t0 = time.perf_counter()
    dcp = dehaze_dcp(hazy, vis, cfg.dcp).image
    out: dict[str, tuple[np.ndarray, float]] = {names[0]: (hazy, math.nan),
                                                 names[1]: (dcp, (time.perf_counter() - t0) / mpx)}
    for name, k in zip(names[2:], (None, *steps)):
        raster, seconds = _restore(src, bundle_dir, tmp / f"{src.stem}_{k or 'coarse'}.tif", device, k)
        out[name] = (rtype.physical(raster), seconds / mpx)
    return out


def _prepare_real(scene: RealScene, tmp: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """Temp GeoTIFF for the runtime, its physical-unit pixels and the valid mask."""
    ds = gdal.Open(str(scene.path))
    values = read_raster(scene.path)
    out = tmp / f"{scene.name}.tif"
    if scene.prepare == "l8_dn":
        dn, valid = l1_dn_to_reflectance_x1e4(values)
        epsg = int(osr.SpatialReference(wkt=ds.GetProjection()).GetAuthorityCode(None))
        write_geotiff(out, dn, "UInt16", epsg, ds.GetGeoTransform(), nodata=0)
        return out, (dn / 1e4).astype(np.float32), valid
    if ds.GetProjection():
        raise ValueError(f"{scene.path} already has a CRS; use it instead of a placeholder")
    write_geotiff(out, values, "Byte", 32612, (528000.0, 0.1, 0.0, 4979000.0, 0.0, -0.1))
    return out, (values / 255.0).astype(np.float32), np.ones(values.shape[1:], bool)


@dataclass(frozen=True)
class BundleUnderTest:
    """A bundle checked against its training config, with its held-out test crops (physical units)."""

    dir: Path
    manifest: object
    data: dict
    bands: tuple[str, ...]
    domain: str
    rtype: RasterType
    rgb: list[int]
    pool: object
    clean: np.ndarray

    @property
    def default_steps(self) -> int:
        return int(self.manifest.sampler.default_steps)  # type: ignore[attr-defined]


def bundle_under_test(name: str, config: Path, settings: EvalSettings, crop_px: int, crops: int,
                      seed: int) -> BundleUnderTest:
    """Load a bundle, check its bands and value scale against the config, draw ``crops`` test crops with
    (seed, crc32(name))."""
    bundle_dir = settings.models_dir / name
    manifest = load_bundle(bundle_dir).manifest
    data = TrainConfig.load(config).data
    bands = tuple(data["bands"])
    if tuple(manifest.input.names) != bands:
        raise ValueError(f"bundle {name} expects bands {manifest.input.names}, config {config} gives {bands}")
    domain = str(data.get("domain", "reflectance"))
    rtype = RASTER_TYPES[domain]
    if not math.isclose(manifest.value_scale.get(rtype.gdal_name, math.nan), 1.0 / rtype.per_unit, rel_tol=1e-6):
        raise ValueError(f"bundle {name}: value_scale {manifest.value_scale} has no {rtype.gdal_name} "
                         f"entry of {1.0 / rtype.per_unit}; the suite writes {rtype.gdal_name} rasters")
    pool = load_pool(data, bands, settings.data_cache)
    clean = pool.patches("test", crop_px, crops, np.random.default_rng([seed, zlib.crc32(name.encode())]))
    return BundleUnderTest(bundle_dir, manifest, data, bands, domain, rtype,
                           [bands.index(b) for b in ("red", "green", "blue")], pool, clean)


def mean_of(rows: Sequence[dict[str, object]], condition: str, method: str, key: str) -> float:
    """Mean of a metric over the finite per-crop values of one condition and method (NaN if none)."""
    vals = [float(r[key]) for r in rows if r["condition"] == condition and r["method"] == method]  # type: ignore[arg-type]
    vals = [v for v in vals if math.isfinite(v)]
    return float(np.mean(vals)) if vals else math.nan


def evaluate_dehaze_bundle(spec: DehazeBundle, cfg: DehazeSuiteConfig, settings: EvalSettings
                           ) -> DehazeBundleResult:
    """Degrade test crops, run every method, collect per-crop metrics, write strips."""
    n = cfg.quick_crops if settings.quick else cfg.crops
    but = bundle_under_test(spec.name, spec.config, settings, cfg.crop_px, n, cfg.seed)
    bundle_dir, data, bands, domain, rtype, rgb, pool = (but.dir, but.data, but.bands, but.domain, but.rtype,
                                                         but.rgb, but.pool)
    default_steps = but.default_steps
    steps = tuple(sorted({*cfg.steps, default_steps}))
    vis = visible_band_indices(bands)
    key = zlib.crc32(spec.name.encode())
    clean_all = but.clean
    res = DehazeBundleResult(spec.name, bands, default_steps, steps, n, cfg.crop_px, tuple(data["sources"]),
                             tuple(sorted(set(pool.names))), float(data.get("alternate_haze", 0.0)))
    names = method_names(steps)
    gt = (500000.0, 10.0, 0.0, 4000000.0, 0.0, -10.0)
    with tempfile.TemporaryDirectory(prefix="rsrestore-eval-") as tmp_s:
        tmp = Path(tmp_s)
        # warm-up: the first restore() builds the onnxruntime sessions; keep that out of the timings
        warm = write_geotiff(tmp / "warmup.tif", rtype.quantise(clean_all[0]), rtype.gdal_name, 32633, gt)
        for k in (None, steps[0]):
            _restore(warm, bundle_dir, tmp / f"warmup_{k}.tif", settings.device, k)
        for i, clean_f in enumerate(clean_all):
            clean = rtype.physical(rtype.quantise(clean_f))
            for c, cond in enumerate(CONDITIONS):
                rng = np.random.default_rng([cfg.seed, key, i, c])
                hazy_q = rtype.quantise(_haze(clean, cond, pool.wavelengths_nm, domain, rng))
                src = write_geotiff(tmp / f"crop{i}_{cond}.tif", hazy_q, rtype.gdal_name, 32633, gt)
                outs = _run_methods(src, rtype.physical(hazy_q), bundle_dir, rtype, vis, cfg, steps, tmp,
                                    settings.device)
                for name, (est, s_mpx) in outs.items():
                    res.rows.append({"condition": cond, "method": name, "crop": i, "seconds_per_mpx": s_mpx,
                                     **fidelity_row(clean, est, rgb)})
                if i < cfg.strips and cond == LEVELS[i % len(LEVELS)]:
                    panels = [outs[names[0]][0], outs[names[1]][0], outs[names[2]][0],
                              outs[_steps_name(default_steps)][0], clean]
                    png = settings.images_dir / f"dehaze-{spec.name}-crop{i}-{cond}.png"
                    res.strips.append(write_strip(panels, rgb, png))
            print(f"  {spec.name}: crop {i + 1}/{n} done", flush=True)
        for scene in spec.real_scenes:
            res.real.append(_real_scene_strip(scene, spec.name, bundle_dir, rtype, vis, rgb, default_steps, cfg,
                                              settings, tmp))
    return res


def _real_scene_strip(scene: RealScene, bundle_name: str, bundle_dir: Path, rtype: RasterType,
                      vis: Sequence[int], rgb: Sequence[int], default_steps: int, cfg: DehazeSuiteConfig,
                      settings: EvalSettings, tmp: Path) -> tuple[RealScene, Path, float]:
    """Input | DCP | stage 1 | default steps on a real scene (no ground truth): (scene, PNG, s / Mpx)."""
    src, phys, valid = _prepare_real(scene, tmp)
    outs = _run_methods(src, phys, bundle_dir, rtype, vis, cfg, (default_steps,), tmp, settings.device)
    lo_hi = [tuple(np.percentile(phys[b][valid], (2, 98))) for b in rgb]
    order = (*method_names(())[:3], _steps_name(default_steps))
    step = max(1, math.ceil(max(phys.shape[1:]) / REAL_STRIP_MAX_PX))  # keep docs/images small
    panels = [np.where(valid, outs[m][0], 0.0)[:, ::step, ::step] for m in order]
    png = write_strip(panels, rgb, settings.images_dir / f"dehaze-{bundle_name}-real-{scene.name}.png", lo_hi)
    return scene, png, outs[order[-1]][1]


def _steps_name(k: int) -> str:
    return method_names((k,))[-1]


def _rel(path: Path, out_dir: Path) -> str:
    return os.path.relpath(path, out_dir)


def dehaze_table(res: DehazeBundleResult) -> str:
    """Markdown table: rows grouped by haze condition, baselines beside the model rows."""
    head = "| haze | method | " + " | ".join(METRIC_COLUMNS) + " |"
    lines = [head, "|" + "---|" * (2 + len(METRIC_COLUMNS))]
    for cond in CONDITIONS:
        for j, m in enumerate(method_names(res.steps)):
            vals = [_fmt(res.mean(cond, m, "psnr"), 2), _fmt(res.mean(cond, m, "ssim"), 4),
                    _fmt(res.mean(cond, m, "sam"), 2), _fmt(res.mean(cond, m, "lpips"), 4),
                    _fmt(res.mean(cond, m, "seconds_per_mpx"), 2)]
            label = (f"**{_condition_label(cond)}**" if j == 0 else "")
            lines.append(f"| {label} | {m} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def _alternate_note(fraction: float) -> str:
    if fraction > 0:
        return (f"The alternate generator also makes {fraction * 100:g} % of the training haze, so its row shows "
                "robustness to a second haze model the network has seen, not to an unseen one.")
    return "The alternate generator is not used in this bundle's training: its row is an unseen haze model."


UNSEEN_NOTE = ("The *unseen generator* rows use a haze model that no training generator uses (independent "
               "Rayleigh-like attenuation and lambda^-2 path radiance with a smooth gradient, "
               "`training/evaluate.py: unseen_haze`): they measure generalisation to haze made differently.")


def _condition_label(cond: str) -> str:
    return {"alternate": "alternate generator", "unseen": "unseen generator (evaluation only)"}.get(cond, cond)


def dehaze_reading(res: DehazeBundleResult) -> str:
    """A paragraph computed from the means: does diffusion earn its cost over stage 1 alone?"""
    k = res.default_steps
    full, s1, dcp, inp = _steps_name(k), "stage 1 alone", "dark-channel prior", "input (hazy)"
    d_lp = {c: res.mean(c, full, "lpips") - res.mean(c, s1, "lpips") for c in CONDITIONS}
    d_ps = {c: res.mean(c, full, "psnr") - res.mean(c, s1, "psnr") for c in CONDITIONS}
    passed = [c for c in CONDITIONS if d_lp[c] < 0 and d_ps[c] >= -MAX_PSNR_LOSS_DB]
    synth = LEVELS
    m_lp = float(np.mean([d_lp[c] for c in synth]))
    m_ps = float(np.mean([d_ps[c] for c in synth]))
    verdict = m_lp < 0 and m_ps >= -MAX_PSNR_LOSS_DB
    cost = (float(np.nanmean([res.mean(c, full, "seconds_per_mpx") for c in CONDITIONS]))
            / float(np.nanmean([res.mean(c, s1, "seconds_per_mpx") for c in CONDITIONS])))
    per = "; ".join(f"{_condition_label(c)} {d_lp[c]:+.4f} LPIPS, {d_ps[c]:+.2f} dB" for c in CONDITIONS)
    s1_beats_dcp = [c for c in CONDITIONS if res.mean(c, s1, "psnr") > res.mean(c, dcp, "psnr")]
    s1_beats_in = [c for c in CONDITIONS if res.mean(c, s1, "psnr") > res.mean(c, inp, "psnr")]
    best = {c: max(method_names(res.steps), key=lambda m, c=c: res.mean(c, m, "psnr")) for c in CONDITIONS}
    return (
        f"**Reading.** Diffusion at the bundle's default {k} step(s) versus stage 1 alone (change in mean "
        f"LPIPS, change in mean PSNR): {per}. The criterion — better LPIPS than stage 1 alone at ≤ "
        f"{MAX_PSNR_LOSS_DB} dB PSNR loss — holds in {len(passed)} of {len(CONDITIONS)} conditions"
        f"{' (' + ', '.join(map(_condition_label, passed)) + ')' if passed else ''}; averaged over the three "
        f"synthetic levels it is {m_lp:+.4f} LPIPS at {m_ps:+.2f} dB, so on this data the diffusion stage "
        f"**{'earns' if verdict else 'does not earn'} its cost** ({cost:.1f}× the time of stage 1 alone per "
        f"megapixel). Stage 1 alone has a higher PSNR than the hazy input in {len(s1_beats_in)} and than the "
        f"dark-channel prior in {len(s1_beats_dcp)} of {len(CONDITIONS)} conditions. Highest mean PSNR per "
        f"condition: " + "; ".join(f"{_condition_label(c)}: {best[c]}" for c in CONDITIONS) + "."
    )


def dehaze_markdown(results: Sequence[DehazeBundleResult], skipped: Sequence[str], cfg: DehazeSuiteConfig,
                    settings: EvalSettings) -> str:
    out = ["## Dehazing", ""]
    p = cfg.dcp
    out += [
        "**Data.** Clean crops of the geographic **test** split (docs/data.md: blocks never used for training "
        "or validation) of each bundle's training sources, drawn with fixed seeds: "
        f"{cfg.quick_crops if settings.quick else cfg.crops} crops of {cfg.crop_px} × {cfg.crop_px} px per bundle, "
        f"each degraded at every condition ({', '.join(map(_condition_label, CONDITIONS))}). "
        "Levels *thin*, *moderate*, *thick*: `rscore.degradations.haze.add_haze` with "
        "`level=` (scene-mean optical depth at 550 nm per `HAZE_LEVEL_TAU_550`). *alternate generator*: "
        "`training.tasks.dehaze.alternate_haze`, a different haze model (coarse random depth grid, per-image "
        "wavelength dependence, colour-cast airlight). Degraded crops are quantised to the raster type "
        "(uint16 = round(reflectance × 1e4), Byte = round(x × 255)), written as GeoTIFFs and restored with "
        "`rscore.runtime.restore(RestoreRequest(..., seed=0, device=\"cpu\"))` — the plugin's onnxruntime path; "
        "*stage 1 alone* is `coarse_only=True`. References are the clean crops quantised the same way; "
        "Sentinel-2 L1C is top-of-atmosphere reflectance, so a scene's own thin atmosphere is part of the "
        "reference and a method that also removes it is counted as an error.",
        "",
        f"**Metrics.** Mean over crops; data range 1.0 (reflectance, or 8-bit / 255); SAM over all bands; "
        f"LPIPS (AlexNet, v0.1) on the red, green, blue bands clipped to [0, 1]. *s / Mpx*: wall-clock seconds "
        f"per megapixel of one `restore()` call (bundle check, GeoTIFF IO and tile padding included) or of the "
        f"numpy dark-channel prior. *Dark-channel prior*: He et al., patch {p.patch_px} px, ω {p.omega}, "
        f"t0 {p.t0}, airlight from the brightest {p.top_fraction * 100:g} % of the dark channel, guided filter "
        f"r {p.guided_radius_px} px, ε {p.guided_eps:g}; dark channel over the visible bands only "
        f"(`rscore/baselines/dark_channel.py`).",
        "",
    ]
    models = settings.models_dir
    shown = _rel(models, ROOT) if models.resolve().is_relative_to(ROOT) else str(models)
    for name in skipped:
        out += [f"*Bundle `{name}` is not in `{shown}`: skipped.*", ""]
    for res in results:
        out += [
            f"### `{res.name}` ({', '.join(res.bands)})",
            "",
            f"{res.n_crops} crops of {res.crop_px} × {res.crop_px} px × {len(CONDITIONS)} conditions, sources "
            f"{', '.join(res.sources)} (test windows of: {', '.join(res.scenes)}). Bundle default: "
            f"{res.default_steps} step(s). {_alternate_note(res.alternate_fraction)} {UNSEEN_NOTE}",
            "",
            dehaze_table(res),
            "",
            dehaze_reading(res),
            "",
            "Strips (hazy | dark-channel prior | stage 1 alone | "
            f"{_steps_name(res.default_steps)} | clean; 2–98 % stretch of the clean crop):",
            "",
        ]
        out += [f"![{png.stem}]({_rel(png, settings.out_dir)})" for png in res.strips]
        out.append("")
        for scene, png, s_mpx in res.real:
            out += [
                f"Real scene without ground truth, `{_rel(scene.path, ROOT)}`: {scene.note}. Input | dark-channel "
                f"prior | stage 1 alone | {_steps_name(res.default_steps)} ({s_mpx:.2f} s / Mpx); 2–98 % "
                "stretch of the input's valid pixels:",
                "",
                f"![{png.stem}]({_rel(png, settings.out_dir)})",
                "",
            ]
    return "\n".join(out)


def run_dehaze(settings: EvalSettings, cfg: DehazeSuiteConfig = DEHAZE) -> SuiteReport:
    """The dehaze suite: every available bundle of ``cfg`` on synthetic haze over test crops + real scenes."""
    for old in settings.images_dir.glob("dehaze-*.png"):
        old.unlink()
    results, skipped = [], []
    for spec in cfg.bundles:
        if not (settings.models_dir / spec.name / "manifest.json").is_file():
            print(f"dehaze: bundle {spec.name} not found under {settings.models_dir}; skipped", flush=True)
            skipped.append(spec.name)
            continue
        print(f"dehaze: evaluating {spec.name}", flush=True)
        results.append(evaluate_dehaze_bundle(spec, cfg, settings))
    images = tuple(p for r in results for p in [*r.strips, *(png for _, png, _ in r.real)])
    return SuiteReport(dehaze_markdown(results, skipped, cfg, settings), images)


def run_clouds(settings: EvalSettings) -> SuiteReport:
    from training.eval_clouds import run_clouds as run  # its own module (it builds on the helpers above)

    return run(settings)


#: One suite per task, in report order. Super-resolution and codec enhancement add theirs here.
SUITES: dict[str, Suite] = {
    "dehaze": Suite("Dehazing", run_dehaze),
    "clouds": Suite("Cloud removal", run_clouds),
}


def merge_sections(existing: str, new: dict[str, str]) -> list[str]:
    """Sections in SUITES order: the ones just run from ``new`` (title -> markdown), the others kept from the
    existing report (so ``--suite clouds`` does not drop the dehazing numbers)."""
    kept: dict[str, str] = {}
    current: str | None = None
    for line in existing.splitlines(keepends=True):
        if line.startswith("## "):
            current = line[3:].strip()
            kept[current] = ""
        if current is not None:
            kept[current] += line
    out = []
    for suite in SUITES.values():
        text = new.get(suite.title, kept.get(suite.title))
        if text:
            out.append(text.rstrip() + "\n")
    return out


def write_report(sections: Sequence[str], settings: EvalSettings, command: str, seconds: float) -> Path:
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = [
        "# Restoration quality",
        "",
        f"Generated by `{command}` (`make eval`) on {now} in {seconds / 60:.1f} min; do not edit by hand — "
        "every number below comes from that run.",
        "",
        f"Machine: {machine_note()}.",
        "",
    ]
    if settings.quick:
        head += ["**Quick mode** (`--quick`): few crops per condition — a smoke test, not the published numbers.", ""]
    path = settings.out_dir / "quality.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(head + list(sections)).rstrip() + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("docs"), help="report directory (quality.md, images/)")
    ap.add_argument("--quick", action="store_true", help="fewer crops (smoke test)")
    ap.add_argument("--models", type=Path, default=ROOT / "models", help="bundles root")
    ap.add_argument("--data-cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--suite", action="append", choices=sorted(SUITES), help="run only these (default: all)")
    args = ap.parse_args(argv)
    out = args.out if args.out.is_absolute() else ROOT / args.out
    settings = EvalSettings(out, args.models, args.data_cache, args.quick)
    t0 = time.perf_counter()
    new: dict[str, str] = {}
    for name in args.suite or SUITES:
        print(f"suite {name}: {SUITES[name].title}", flush=True)
        t1 = time.perf_counter()
        md = SUITES[name].run(settings).markdown
        lines = md.split("\n", 1)
        stamp = (f"*Section generated by `python -m training.evaluate --suite {name}` on "
                 f"{_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} in "
                 f"{(time.perf_counter() - t1) / 60:.1f} min.*\n")
        new[SUITES[name].title] = lines[0] + "\n\n" + stamp + (lines[1] if len(lines) > 1 else "")
    existing = settings.out_dir / "quality.md"
    sections = merge_sections(existing.read_text(encoding="utf-8") if existing.is_file() and args.suite else "",
                              new)
    cmd = "python -m training.evaluate --out " + str(args.out) + (" --quick" if args.quick else "")
    path = write_report(sections, settings, cmd, time.perf_counter() - t0)
    print(f"wrote {path} ({(time.perf_counter() - t0) / 60:.1f} min)", flush=True)
    return path


if __name__ == "__main__":
    main()
