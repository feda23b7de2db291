"""Dehazing and cloud-removal suites of ``python -m training.evaluate`` on the corpus's held-out scenes.

Every shipped bundle is evaluated on the *test* scenes of its training config: whole scenes held out from
training (``SceneSpec.holdout == "test"``, docs/data.md), so a figure means "a place, and usually a sensor, the
model never saw". Each crop is restored clean (the no-harm row: the output should equal the input) and under
synthetic degradations, including a generator no training task uses. Every model row runs
``rscore.runtime.restore`` on a GeoTIFF, exactly as the QGIS algorithms do; classical baselines run beside them.
Real hazy and cloudy scenes of the corpus (evaluation-only sources) are shown as pictures, and for real cloudy
scenes with a reference cloud mask the automatic mask of ``remove_clouds`` is scored against it.
"""

from __future__ import annotations

import math
import tempfile
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from osgeo import gdal

from rscore.baselines.dark_channel import DarkChannelParams, dehaze_dcp, visible_band_indices
from rscore.bundle.store import load_bundle
from rscore.data import load_source
from rscore.data.sources import SOURCES
from rscore.degradations.clouds import add_clouds
from rscore.degradations.haze import add_haze
from rscore.runtime import RestoreRequest, restore
from rscore.runtime.automask import threshold_mask
from training.config import TrainConfig
from training.eval_common import (
    CONFIGS,
    METRIC_COLUMNS,
    PSNR_CAP_DB,
    RASTER_TYPES,
    REAL_STRIP_MAX_PX,
    ROOT,
    SAMPLES,
    EvalSettings,
    RasterType,
    SuiteReport,
    evaluate_available,
    fidelity_row,
    fmt,
    mean_of,
    merge_summary,
    read_raster,
    rel,
    unseen_clouds,
    unseen_haze,
    write_geotiff,
    write_strip,
)
from training.tasks.imagery import Pool, load_pool

Task = Literal["dehaze", "clouds"]
#: Conditions per task; "clean" is the no-harm row (the output should equal the input).
CONDITIONS: dict[str, tuple[str, ...]] = {
    "dehaze": ("clean", "thin", "moderate", "thick", "unseen"),
    "clouds": ("clean", "thin", "thick", "unseen"),
}
CONDITION_LABELS = {"clean": "clean input (no harm)", "unseen": "unseen generator (evaluation only)"}
#: A clean input must come back at least this close to itself (PSNR, dB, data range 1).
NO_HARM_DB = 35.0
#: Mean PSNR gain over the degraded conditions that a bundle must reach (dB).
TARGET_GAIN_DB: dict[str, float] = {"dehaze": 4.0, "clouds": 3.0}
#: Oracle inpainting baseline: pixels whose true cloud opacity is at least this are filled from around.
ORACLE_OPACITY = 0.3
_GT = (500000.0, 10.0, 0.0, 4000000.0, 0.0, -10.0)  # placeholder grid for crops (the runtime needs a CRS)


@dataclass(frozen=True)
class Method:
    """One row: a baseline or a ``restore()`` configuration.

    Attributes:
        name: row label.
        kind: ``input`` (the degraded raster itself), ``dcp`` (dark-channel prior), ``inpaint`` (GDAL
            FillNodata under the true cloud mask: an oracle-mask interpolation) or ``model``.
        steps: model rows: sampling steps, None = the one-pass stage alone.
        auto_mask: model rows: the automatic mask of ``remove_clouds`` (the algorithm's default).
    """

    name: str
    kind: Literal["input", "dcp", "inpaint", "model"]
    steps: int | None = None
    auto_mask: bool = False


def _steps_label(k: int) -> str:
    return f"{k} step{'s' if k > 1 else ''}"


def methods_for(task: Task, steps: Sequence[int], default_steps: int, auto_mask: bool = True) -> tuple[Method, ...]:
    """Rows of a bundle's table, baselines first. ``default_steps`` 0 means the bundle's default is its one-pass
    stage; cloud bundles without a cloud map get no automatic-mask rows."""
    if task == "dehaze":
        return (Method("input (hazy)", "input"), Method("dark-channel prior", "dcp"),
                Method("stage 1 alone", "model"),
                *(Method(f"stage 1 + diffusion, {_steps_label(k)}", "model", k) for k in steps))
    rows = [Method("input (cloudy)", "input"), Method("dark-channel prior", "dcp"),
            Method(f"interpolation under the true mask (oracle, opacity ≥ {ORACLE_OPACITY})", "inpaint"),
            Method("reference model alone, no mask", "model")]
    if auto_mask:
        rows.append(Method("reference model alone, automatic mask", "model", None, auto_mask=True))
        rows += [Method(f"DE, {_steps_label(k)}, automatic mask", "model", k, auto_mask=True) for k in steps]
        if default_steps:
            rows.append(Method(f"DE, {_steps_label(default_steps)}, no mask", "model", default_steps))
    else:
        rows += [Method(f"DE, {_steps_label(k)}, no mask", "model", k) for k in steps]
    return tuple(rows)


def default_method(task: Task, methods: Sequence[Method], default_steps: int) -> Method:
    """The row a user gets with the algorithm's defaults (remove_clouds: the automatic mask when the bundle
    has one; ``default_steps`` 0: the one-pass stage)."""
    target = default_steps or None
    rows = [m for m in methods if m.kind == "model" and m.steps == target]
    return next((m for m in rows if m.auto_mask), rows[0]) if task == "clouds" else rows[0]


@dataclass(frozen=True)
class RealScene:
    """A real degraded scene of the corpus (no clean target), shown as a picture.

    Attributes:
        source: ``SOURCES`` key (an evaluation-only source).
        window: ``(row0, row1, col0, col1)`` of the scene to use (None = all).
        reference_mask: ``bqa`` (the committed Landsat-8 BQA cloud mask) or ``npz:<array>`` (an array in the
            scene's own ``.npz``); None = no reference.
        note: what the scene shows.
    """

    source: str
    window: tuple[int, int, int, int] | None = None
    reference_mask: str | None = None
    note: str = ""


@dataclass(frozen=True)
class CorpusBundle:
    """A bundle of a suite, the config that defines its data, and its real scenes."""

    name: str
    config: Path
    real: tuple[RealScene, ...] = ()


@dataclass(frozen=True)
class CorpusSuiteConfig:
    """What a suite evaluates.

    Attributes:
        task: ``dehaze`` or ``clouds``.
        bundles: bundles in report order (missing ones are skipped with a note).
        crop_px: crop side, pixels (test scenes smaller than this are skipped).
        crops_per_scene: crops per test scene.
        quick_crops_per_scene: crops per scene in ``--quick`` mode.
        steps: sampling steps evaluated (the bundle's default is added).
        strips: picture strips per bundle.
        seed: base seed; crops and degradations come from (seed, crc32(bundle), scene, crop, condition).
        dcp: dark-channel prior parameters.
        rgb_stretch: reflectance shown as 1.0 when a real reflectance scene is rendered for an 8-bit bundle.
    """

    task: Task
    bundles: tuple[CorpusBundle, ...]
    crop_px: int = 128
    crops_per_scene: int = 3
    quick_crops_per_scene: int = 1
    steps: tuple[int, ...] = (1, 3, 5)
    strips: int = 3
    seed: int = 20261129
    dcp: DarkChannelParams = field(default_factory=lambda: DarkChannelParams(patch_px=7, guided_radius_px=16))
    rgb_stretch: float = 0.35


REAL_HAZY_BGRN = (
    RealScene("otb_cloudy", None, None, "QuickBird over south Toulouse (inferred) under semi-transparent cloud"),
    RealScene("t55hfa_cloudy", (128, 768, 0, 640), None, "Sentinel-2 L1C at 50 m, a thin veil north-west of "
              "Canberra"),
)
REAL_CLOUDY = (
    RealScene("l8_cloudy", None, "bqa", "Landsat-8, popcorn cumulus over the Gulf coast; reference: BQA cloud "
              "confidence >= maybe or cirrus"),
    RealScene("s2cloudless_cloudy", None, "npz:cl_mask", "Sentinel-2 L1C, cumulus over an estuary; reference: the "
              "package's s2cloudless mask"),
    RealScene("t55hfa_cloudy", (860, 1500, 700, 1340), None, "Sentinel-2 L1C at 50 m, popcorn cumulus and an "
              "ice-cloud band over burnt ranges"),
    RealScene("eodal_zurich_cloudy", None, None, "Sentinel-2 L2A, fair-weather cumulus with shadows, Zurich"),
    RealScene("otb_l5_cloudy", None, None, "Landsat-5 TM, cumulus field"),
    RealScene("otb_cloudy", None, None, "QuickBird (inferred), thin cloud over a city"),
)

DEHAZE = CorpusSuiteConfig("dehaze", (
    CorpusBundle("dehaze-bgrn", CONFIGS / "dehaze_bgrn.yaml", REAL_HAZY_BGRN),
    CorpusBundle("dehaze-rgb", CONFIGS / "dehaze_rgb.yaml",
                 (RealScene("otb_spot67_hazy", None, None, "SPOT-6/7 8-bit product, a hazier acquisition"),
                  *REAL_HAZY_BGRN)),
))
CLOUDS = CorpusSuiteConfig("clouds", (
    CorpusBundle("clouds-bgrn", CONFIGS / "clouds_bgrn.yaml", REAL_CLOUDY),
    CorpusBundle("clouds-rgb", CONFIGS / "clouds_rgb.yaml", REAL_CLOUDY),
))


# ---- data -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TestScene:
    """A held-out scene of a bundle's pool."""

    index: int
    name: str
    sensor: str
    shape: tuple[int, int]


def test_scenes(pool: Pool, crop_px: int) -> tuple[list[TestScene], bool]:
    """The pool's held-out test scenes big enough for a crop; (scenes, held_out). Without any (the tiny test
    configs' synthetic scene) the scenes with test *blocks* are used and ``held_out`` is False."""
    held = [k for k in pool.scenes_for("test", crop_px) if pool.holdouts and pool.holdouts[k] == "test"]
    ks, held_out = (held, True) if held else (pool.scenes_for("test", crop_px), False)

    def sensor(name: str) -> str:
        src = SOURCES.get(name.split("/")[0])
        return src.sensor if src is not None else "synthetic"

    return [TestScene(k, pool.names[k], sensor(pool.names[k]), pool.arrays[k].shape[1:]) for k in ks], held_out


def degrade(clean: np.ndarray, task: Task, cond: str, wavelengths: tuple[float, ...], domain: str,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    """(degraded image, cloud opacity or None) for a condition of :data:`CONDITIONS`."""
    if cond == "clean":
        return clean, np.zeros(clean.shape[1:], np.float32) if task == "clouds" else None
    if task == "dehaze":
        if cond == "unseen":
            return unseen_haze(clean, wavelengths, domain, rng), None
        return add_haze(clean, wavelengths, rng, level=cond)[0].image, None
    if cond == "unseen":
        return unseen_clouds(clean, rng, domain, wavelengths)
    res = add_clouds(clean, wavelengths, rng, cloud_type=cond)[0]
    return res.image, res.mask


def inpaint_under_mask(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Classical gap filling: every band's masked pixels interpolated from the unmasked ones around them
    (GDAL FillNodata, inverse-distance weighting, no smoothing)."""
    out = image.astype(np.float32).copy()
    if not mask.any() or mask.all():
        return out
    rows, cols = mask.shape
    drv = gdal.GetDriverByName("MEM")
    valid = drv.Create("", cols, rows, 1, gdal.GDT_Byte)
    valid.GetRasterBand(1).WriteArray((~mask).astype(np.uint8))
    for b in range(out.shape[0]):
        ds = drv.Create("", cols, rows, 1, gdal.GDT_Float32)
        ds.GetRasterBand(1).WriteArray(out[b])
        gdal.FillNodata(ds.GetRasterBand(1), valid.GetRasterBand(1), maxSearchDist=max(rows, cols),
                        smoothingIterations=0)
        out[b] = ds.GetRasterBand(1).ReadAsArray()
    return out


def _run_model(src: Path, bundle: Path, out: Path, method: Method, device: str, **kw: object
               ) -> tuple[np.ndarray, float]:
    rep = restore(RestoreRequest(str(src), str(bundle), str(out), steps=method.steps, seed=0, device=device,
                                 options={"one_pass": method.steps is None}, auto_mask=method.auto_mask, **kw))
    return read_raster(out), rep.seconds


# ---- one bundle -------------------------------------------------------------------------------------------
@dataclass
class BundleResult:
    """Per-crop metrics of one bundle: rows of dicts (scene, condition, method, crop, metrics, seconds)."""

    name: str
    task: Task
    bands: tuple[str, ...]
    default_steps: int
    methods: tuple[Method, ...]
    scenes: list[TestScene]
    held_out: bool
    crops_per_scene: int
    crop_px: int
    rows: list[dict[str, object]] = field(default_factory=list)
    strips: list[Path] = field(default_factory=list)
    real_md: list[str] = field(default_factory=list)
    mask_rows: list[dict[str, object]] = field(default_factory=list)

    @property
    def default(self) -> Method:
        return default_method(self.task, self.methods, self.default_steps)

    def mean(self, condition: str, method: str, key: str, scene: str | None = None) -> float:
        rows = self.rows if scene is None else [r for r in self.rows if r["scene"] == scene]
        return mean_of(rows, condition, method, key)

    def worst(self, condition: str, method: str, key: str, scene: str | None = None) -> float:
        vals = [float(r[key]) for r in self.rows  # type: ignore[arg-type]
                if r["condition"] == condition and r["method"] == method and (scene is None or r["scene"] == scene)]
        return min(vals) if vals else math.nan

    def degraded_mean(self, method: str, key: str = "psnr", scene: str | None = None) -> float:
        vals = [self.mean(c, method, key, scene) for c in CONDITIONS[self.task] if c != "clean"]
        return float(np.nanmean(vals)) if vals else math.nan


def evaluate_bundle(spec: CorpusBundle, cfg: CorpusSuiteConfig, settings: EvalSettings) -> BundleResult:
    """Degrade held-out crops, run every method, collect per-crop metrics, write strips and real scenes."""
    bundle_dir = settings.models_dir / spec.name
    manifest = load_bundle(bundle_dir).manifest
    data = TrainConfig.load(spec.config).data
    bands = tuple(data["bands"])
    if tuple(manifest.input.names) != bands:
        raise ValueError(f"bundle {spec.name} expects bands {manifest.input.names}, {spec.config} gives {bands}")
    domain = str(data.get("domain", "reflectance"))
    rtype = RASTER_TYPES[domain]
    if not math.isclose(manifest.value_scale.get(rtype.gdal_name, math.nan), 1.0 / rtype.per_unit, rel_tol=1e-6):
        raise ValueError(f"bundle {spec.name}: value_scale {manifest.value_scale} has no {rtype.gdal_name} entry "
                         f"of {1.0 / rtype.per_unit}; the suite writes {rtype.gdal_name} rasters")
    pool = load_pool(data, bands, settings.data_cache)
    scenes, held_out = test_scenes(pool, cfg.crop_px)
    default_steps = int(manifest.sampler.default_steps) if manifest.sampler else 1
    steps = tuple(sorted({*cfg.steps, default_steps} - {0}))
    meths = methods_for(cfg.task, steps, default_steps, manifest.auto_mask is not None)
    n = cfg.quick_crops_per_scene if settings.quick else cfg.crops_per_scene
    res = BundleResult(spec.name, cfg.task, bands, default_steps, meths, scenes, held_out, n, cfg.crop_px)
    rgb = [bands.index(b) for b in ("red", "green", "blue")]
    vis = visible_band_indices(bands)
    key = zlib.crc32(spec.name.encode())
    conds = CONDITIONS[cfg.task]
    strip_conds = [c for c in conds if c != "clean"]
    with tempfile.TemporaryDirectory(prefix="rsrestore-eval-") as tmp_s:
        tmp = Path(tmp_s)
        for si, sc in enumerate(scenes):
            crops = pool.patches("test", cfg.crop_px, n, np.random.default_rng([cfg.seed, key, si]),
                                 scenes=[sc.index])
            for i, crop in enumerate(crops):
                clean = rtype.physical(rtype.quantise(crop))
                mpx = clean.shape[1] * clean.shape[2] / 1e6
                for c, cond in enumerate(conds):
                    rng = np.random.default_rng([cfg.seed, key, si, i, c])
                    degraded_f, opacity = degrade(clean, cfg.task, cond, pool.wavelengths_nm, domain, rng)
                    q = rtype.quantise(degraded_f)
                    degraded = rtype.physical(q)
                    src = write_geotiff(tmp / f"s{si}_c{i}_{cond}.tif", q, rtype.gdal_name, 32633, _GT)
                    outs: dict[str, np.ndarray] = {}
                    for j, m in enumerate(meths):
                        t0 = time.perf_counter()
                        if m.kind == "input":
                            est, secs = degraded, math.nan
                        elif m.kind == "dcp":
                            est = dehaze_dcp(degraded, vis, cfg.dcp).image
                            secs = time.perf_counter() - t0
                        elif m.kind == "inpaint":
                            assert opacity is not None
                            est = inpaint_under_mask(degraded, opacity >= ORACLE_OPACITY)
                            secs = time.perf_counter() - t0
                        else:
                            raster, secs = _run_model(src, bundle_dir, tmp / f"o{si}_{i}_{c}_{j}.tif", m,
                                                      settings.device)
                            est = rtype.physical(raster)
                        outs[m.name] = est
                        res.rows.append({"scene": sc.name, "condition": cond, "method": m.name, "crop": i,
                                         "seconds_per_mpx": secs / mpx, **fidelity_row(clean, est, rgb)})
                    if i == 0 and len(res.strips) < cfg.strips and cond == strip_conds[si % len(strip_conds)]:
                        base = meths[2] if cfg.task == "clouds" else meths[1]
                        panels = [outs[meths[0].name], outs[base.name], outs[res.default.name], clean]
                        png = settings.images_dir / f"{cfg.task}-{spec.name}-{si}-{cond}.png"
                        res.strips.append(write_strip(panels, rgb, png))
            print(f"  {spec.name}: {sc.name} done ({si + 1}/{len(scenes)})", flush=True)
        for k, real in enumerate(spec.real):
            _real_scene(real, k, spec.name, bundle_dir, cfg, settings, res, rtype, bands, rgb, vis, domain, tmp)
    return res


# ---- real scenes ------------------------------------------------------------------------------------------
def _real_pixels(real: RealScene, cfg: CorpusSuiteConfig, settings: EvalSettings, bands: Sequence[str],
                 domain: str) -> tuple[np.ndarray, np.ndarray, str, tuple[float, ...] | None, np.ndarray | None]:
    """(physical pixels in the bundle's bands and domain, valid mask, CRS WKT, geotransform, reference mask)."""
    scene = load_source(real.source, settings.data_cache)[0]
    x = scene.pixels[[scene.band_names.index(b) for b in bands]]
    if domain == "rgb8" and scene.radiometry != "rgb8":
        x = np.clip(x / cfg.rgb_stretch, 0.0, 1.0)
    valid = scene.valid_mask
    ref = None
    if real.reference_mask == "bqa":
        ref = read_raster(SAMPLES / "l8_cloud_mask.tif")[0] > 0
    elif real.reference_mask and real.reference_mask.startswith("npz:"):
        member = scene.source.split(":", 1)[1]
        from rscore.data.fetch import member_path

        with np.load(member_path(SOURCES[real.source].archive, member, settings.data_cache)) as npz:
            arr = npz[real.reference_mask[4:]]
        ref = arr.reshape(arr.shape[-2:]) > 0
    gt = scene.geotransform
    if real.window is not None:
        r0, r1, c0, c1 = real.window
        x, valid = x[:, r0:r1, c0:c1], valid[r0:r1, c0:c1]
        ref = ref[r0:r1, c0:c1] if ref is not None else None
        if gt is not None:
            gt = (gt[0] + c0 * gt[1], gt[1], gt[2], gt[3] + r0 * gt[5], gt[4], gt[5])
    return x, valid, scene.crs_wkt, gt, ref


def _write_real(path: Path, q: np.ndarray, rtype: RasterType, crs_wkt: str, gt: tuple[float, ...] | None,
                valid: np.ndarray) -> Path:
    """GeoTIFF of a real scene: its own CRS and grid when it has them (placeholder EPSG:32633 grid otherwise);
    invalid pixels become nodata 0."""
    q = np.where(valid[None], np.maximum(q, 1), 0)
    write_geotiff(path, q, rtype.gdal_name, 32633, gt or _GT, nodata=0)
    if crs_wkt and gt is not None:
        ds = gdal.Open(str(path), gdal.GA_Update)
        ds.SetProjection(crs_wkt)
        ds = None
    return path


def _real_scene(real: RealScene, k: int, bundle_name: str, bundle_dir: Path, cfg: CorpusSuiteConfig,
                settings: EvalSettings, res: BundleResult, rtype: RasterType, bands: Sequence[str],
                rgb: Sequence[int], vis: Sequence[int], domain: str, tmp: Path) -> None:
    phys, valid, crs, gt, ref = _real_pixels(real, cfg, settings, bands, domain)
    q = rtype.quantise(phys)
    src = _write_real(tmp / f"real{k}.tif", q, rtype, crs, gt, valid)
    phys = rtype.physical(q)
    mpx = phys.shape[1] * phys.shape[2] / 1e6
    default = res.default
    out_default, t_default = _run_model(src, bundle_dir, tmp / f"real{k}_d.tif", default, settings.device)
    step = max(1, math.ceil(max(phys.shape[1:]) / REAL_STRIP_MAX_PX))
    lo_hi = [tuple(np.percentile(phys[b][valid], (2, 98))) for b in rgb]
    label = f"`{real.source}`" + (f" rows {real.window[0]}–{real.window[1]}, cols {real.window[2]}–{real.window[3]}"
                                   if real.window else "")
    png = settings.images_dir / f"{cfg.task}-{bundle_name}-real-{real.source}.png"
    if cfg.task == "dehaze":
        dcp = dehaze_dcp(phys, vis, cfg.dcp).image
        panels = [phys, dcp, rtype.physical(out_default)]
        res.strips.append(write_strip([np.where(valid, p, 0.0)[:, ::step, ::step] for p in panels], rgb, png, lo_hi))
        res.real_md += [f"{label} — {real.note}. Input | dark-channel prior | {default.name} "
                        f"({t_default / mpx:.2f} s / Mpx); 2–98 % stretch of the input:", "",
                        f"![{png.stem}]({rel(png, settings.out_dir)})", ""]
        return
    # clouds: the automatic mask itself (the first pass, as the runtime thresholds it), and a no-mask run
    manifest = load_bundle(bundle_dir).manifest
    am = manifest.auto_mask
    no_mask = next(m for m in res.methods if m.kind == "model" and not m.auto_mask
                   and m.steps == (res.default_steps or None))
    out_free, _ = _run_model(src, bundle_dir, tmp / f"real{k}_free.tif", no_mask, settings.device)
    auto = np.zeros(phys.shape[1:], bool)
    if am is not None:
        restore(RestoreRequest(str(src), str(bundle_dir), str(tmp / f"real{k}_map_x.tif"),
                               options={"one_pass": True},
                               device=settings.device, extra_outputs={am.output: str(tmp / f"real{k}_map.tif")}))
        threshold_mask(str(tmp / f"real{k}_map.tif"), str(tmp / f"real{k}_auto.tif"), am.threshold, am.dilate_px)
        auto = read_raster(tmp / f"real{k}_auto.tif")[0] > 0
    raw = read_raster(src)
    changed = np.any(out_default != raw, axis=0) & valid
    row: dict[str, object] = {"scene": label, "auto": float(auto[valid].mean()), "changed": float(changed[valid].mean())}
    if ref is not None:
        r, a = ref & valid, auto & valid
        row.update(reference=float(r.sum() / valid.sum()),
                   precision=float((r & a).sum() / max(a.sum(), 1)), recall=float((r & a).sum() / max(r.sum(), 1)),
                   iou=float((r & a).sum() / max((r | a).sum(), 1)),
                   clear_kept=float((~changed & valid & ~r).sum() / max((valid & ~r).sum(), 1)))
    res.mask_rows.append(row)
    white = np.ones_like(phys) * auto[None]
    panels = [phys, rtype.physical(out_default), rtype.physical(out_free), white * (lo_hi[0][1] if lo_hi else 1.0)]
    masks_lohi = lo_hi
    res.strips.append(write_strip([np.where(valid, p, 0.0)[:, ::step, ::step] for p in panels], rgb, png, masks_lohi))
    res.real_md += [f"{label} — {real.note}. Input | {default.name} ({t_default / mpx:.2f} s / Mpx) | "
                    f"{no_mask.name} | the automatic mask (white = restored); 2–98 % stretch of the input:", "",
                    f"![{png.stem}]({rel(png, settings.out_dir)})", ""]


# ---- markdown ---------------------------------------------------------------------------------------------
def _label(cond: str) -> str:
    return CONDITION_LABELS.get(cond, cond)


def condition_table(res: BundleResult) -> str:
    head = "| condition | method | " + " | ".join(METRIC_COLUMNS) + " |"
    lines = [head, "|" + "---|" * (2 + len(METRIC_COLUMNS))]
    for cond in CONDITIONS[res.task]:
        for j, m in enumerate(res.methods):
            vals = [fmt(res.mean(cond, m.name, "psnr"), 2), fmt(res.mean(cond, m.name, "ssim"), 4),
                    fmt(res.mean(cond, m.name, "sam"), 2), fmt(res.mean(cond, m.name, "lpips"), 4),
                    fmt(res.mean(cond, m.name, "seconds_per_mpx"), 2)]
            mark = " **(default)**" if m == res.default else ""
            lines.append(f"| {f'**{_label(cond)}**' if j == 0 else ''} | {m.name}{mark} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def scene_table(res: BundleResult) -> str:
    """Per held-out scene: no-harm (worst crop) and the mean over degraded conditions, input vs default."""
    d, inp = res.default.name, res.methods[0].name
    lines = ["| test scene | sensor / product | size | clean in: PSNR out vs in, worst crop (dB) | degraded: input "
             "PSNR (dB) | degraded: default PSNR (dB) | gain (dB) |", "|---|---|---|---|---|---|---|"]
    for sc in res.scenes:
        a, b = res.degraded_mean(inp, scene=sc.name), res.degraded_mean(d, scene=sc.name)
        lines.append(f"| `{sc.name}` | {sc.sensor} | {sc.shape[1]} × {sc.shape[0]} | "
                     f"{fmt(res.worst('clean', d, 'psnr', sc.name), 2)} | {fmt(a, 2)} | {fmt(b, 2)} | {b - a:+.2f} |")
    return "\n".join(lines)


def step_table(res: BundleResult) -> tuple[str, str]:
    """Quality against time per model row, and the recommended default."""
    lines = ["| method | degraded: mean PSNR (dB) | degraded: mean LPIPS | clean in: worst PSNR (dB) | s / Mpx |",
             "|---|---|---|---|---|"]
    stats = []
    for m in res.methods:
        if m.kind != "model":
            continue
        p, lp = res.degraded_mean(m.name), res.degraded_mean(m.name, "lpips")
        worst = res.worst("clean", m.name, "psnr")
        t = float(np.nanmean([res.mean(c, m.name, "seconds_per_mpx") for c in CONDITIONS[res.task]]))
        stats.append((m, p, worst, t))
        lines.append(f"| {m.name} | {fmt(p, 2)} | {fmt(lp, 4)} | {fmt(worst, 2)} | {fmt(t, 2)} |")
    harmless = [s for s in stats if s[2] >= NO_HARM_DB]
    eligible = harmless or stats
    best = max(s[1] for s in eligible)
    pick = min((s for s in eligible if s[1] >= best - 0.2), key=lambda s: s[3])
    among = (f", among rows that keep every clean crop at ≥ {NO_HARM_DB:g} dB" if harmless else
             f" (no row keeps every clean crop at ≥ {NO_HARM_DB:g} dB)")
    return "\n".join(lines), (
        f"Fastest row within 0.2 dB of the best mean PSNR on degraded inputs{among}: **{pick[0].name}** "
        f"({pick[1]:.2f} dB, {pick[3]:.2f} s / Mpx). The bundle's default is {res.default.name}.")


def verdict(res: BundleResult) -> str:
    d, inp = res.default.name, res.methods[0].name
    gain = res.degraded_mean(d) - res.degraded_mean(inp)
    worst = res.worst("clean", d, "psnr")
    mean_clean = res.mean("clean", d, "psnr")
    target = TARGET_GAIN_DB[res.task]
    per = [sc for sc in res.scenes if res.worst("clean", d, "psnr", sc.name) < NO_HARM_DB]
    return (f"**Verdict ({res.default.name}).** Mean PSNR gain over the degraded conditions on held-out scenes: "
            f"**{gain:+.2f} dB** (target ≥ +{target:g} dB: {'met' if gain >= target else 'NOT met'}). Clean inputs: "
            f"mean {mean_clean:.2f} dB, worst crop **{worst:.2f} dB** (target ≥ {NO_HARM_DB:g} dB on every scene: "
            f"{'met' if not per else 'NOT met on ' + ', '.join(f'`{s.name}`' for s in per)}).")


def mask_table(res: BundleResult) -> str:
    if not res.mask_rows:
        return ""
    lines = ["| real scene | automatic mask (% of pixels) | pixels changed (%) | reference cloud (%) | precision | "
             "recall | IoU | reference-clear pixels left unchanged (%) |", "|---|---|---|---|---|---|---|---|"]
    for r in res.mask_rows:
        def pct(k: str) -> str:
            return fmt(100 * float(r[k]), 1) if k in r else "—"

        def num(k: str) -> str:
            return fmt(float(r[k]), 3) if k in r else "—"
        lines.append(f"| {r['scene']} | {pct('auto')} | {pct('changed')} | {pct('reference')} | {num('precision')} | "
                     f"{num('recall')} | {num('iou')} | {pct('clear_kept')} |")
    return "\n".join(lines)


SUITE_TITLES = {"dehaze": "Dehazing", "clouds": "Cloud removal"}
MASK_NOTE = ("; rows marked *automatic mask* are `remove_clouds`' default: the bundle finds the cloudy pixels "
             "itself and copies the others unchanged")


def suite_markdown(results: Sequence[BundleResult], skipped: Sequence[str], cfg: CorpusSuiteConfig,
                   settings: EvalSettings) -> str:
    out = [f"## {SUITE_TITLES[cfg.task]}", ""]
    gen = ("haze: `rscore.degradations.haze.add_haze` at levels thin / moderate / thick (scene-mean optical depth "
           "at 550 nm 0.05–0.3 / 0.3–0.8 / 0.8–2.0); *unseen generator*: `training.eval_common.unseen_haze` "
           "(Rayleigh-like attenuation and λ⁻² path radiance with a gradient), which no training task uses"
           if cfg.task == "dehaze" else
           "clouds: `rscore.degradations.clouds.add_clouds` thin (semi-transparent) and thick (opaque cores, "
           "shadows); *unseen generator*: `training.eval_common.unseen_clouds` (cirrus streaks over a patchy "
           "cumulus layer), which no training task uses")
    out += [
        f"**Data.** Held-out **test scenes** of each bundle's training config (docs/data.md: whole scenes never "
        f"trained on or used for validation — other places, and for most of them other sensors or dates than the "
        f"training scenes): "
        f"{cfg.quick_crops_per_scene if settings.quick else cfg.crops_per_scene} crop(s) of {cfg.crop_px} × "
        f"{cfg.crop_px} px per scene, each restored clean (*clean input (no harm)*: the reference is the input "
        f"itself) and degraded by {gen}. 8-bit bundles see reflectance scenes rendered with a random display "
        f"stretch (white point 0.2–0.5). Crops are quantised to the raster type (uint16 = round(reflectance × "
        f"1e4), Byte = round(x × 255)), written as GeoTIFFs and restored with `rscore.runtime.restore` on the CPU, "
        f"seed 0 — the plugin's path{MASK_NOTE if cfg.task == 'clouds' else ''}.",
        "",
        f"**Metrics.** Mean over crops; data range 1.0 (reflectance, or 8-bit / 255); PSNR capped at "
        f"{PSNR_CAP_DB:.0f} dB (an output identical to its reference counts as {PSNR_CAP_DB:.0f} dB); SAM over "
        "all bands; LPIPS (AlexNet) on red, green, blue clipped to [0, 1]; *s / Mpx*: wall-clock seconds per "
        "megapixel of one `restore()` call on a small crop (file IO and tile padding included) or of the numpy "
        "baseline. "
        f"*Dark-channel prior*: He et al., patch {cfg.dcp.patch_px} px, guided filter r {cfg.dcp.guided_radius_px} px "
        "(`rscore/baselines/dark_channel.py`).",
        "",
    ]
    for name in skipped:
        out += [f"*Bundle `{name}` is not in `{settings.models_dir}`: skipped.*", ""]
    for res in results:
        steps_md, pick = step_table(res)
        out += [f"### `{res.name}` ({', '.join(res.bands)})", ""]
        if not res.held_out:
            out += ["*No held-out test scene in this config: the crops come from test blocks.*", ""]
        out += [verdict(res), "", condition_table(res), "", "Per held-out scene (default settings):", "",
                scene_table(res), "", "Quality against time (steps):", "", steps_md, "", pick, "",
                "Strips (degraded | classical baseline | default | clean; 2–98 % stretch of the clean crop):", ""]
        out += [f"![{p.stem}]({rel(p, settings.out_dir)})" for p in res.strips if "-real-" not in p.stem]
        out += ["", "**Real scenes** (no ground truth):", ""] + res.real_md
        if res.mask_rows:
            out += ["Automatic mask on real cloudy scenes: the mask `remove_clouds` computes by itself (the "
                    "bundle's cloud map, thresholded and grown as in the runtime), the share of pixels the default "
                    "run changes, and, where the package ships a reference cloud mask, how the two agree "
                    "(reference masks mark clouds, not their shadows, which the automatic mask also restores):", "",
                    mask_table(res), ""]
    return "\n".join(out)


def run_suite(settings: EvalSettings, cfg: CorpusSuiteConfig) -> SuiteReport:
    """Every available bundle of ``cfg`` on its held-out scenes, plus real scenes."""
    for old in settings.images_dir.glob(f"{cfg.task}-*.png"):
        old.unlink()
    results, skipped = evaluate_available(settings, cfg.bundles, cfg.task,
                                          lambda spec: evaluate_bundle(spec, cfg, settings))
    images = tuple(p for r in results for p in r.strips)
    if not settings.quick:  # model cards read the summary: a smoke test must not replace the published figures
        write_summary(results, settings)
    return SuiteReport(suite_markdown(results, skipped, cfg, settings), images)


def write_summary(results: Sequence[BundleResult], settings: EvalSettings) -> Path:
    """Merge each bundle's headline figures into ``quality_summary.json`` (read by the model cards)."""
    entries: dict[str, dict[str, object]] = {}
    for res in results:
        d, inp = res.default.name, res.methods[0].name
        entries[res.name] = {
            "scenes": len(res.scenes), "default": d, "input_db": round(res.degraded_mean(inp), 2),
            "gain_db": round(res.degraded_mean(d) - res.degraded_mean(inp), 2),
            "clean_mean_db": round(res.mean("clean", d, "psnr"), 2),
            "clean_worst_db": round(res.worst("clean", d, "psnr"), 2),
            "step_choice": step_table(res)[1]}
    return merge_summary(settings, entries)


def run_dehaze(settings: EvalSettings, cfg: CorpusSuiteConfig = DEHAZE) -> SuiteReport:
    return run_suite(settings, cfg)


def run_clouds(settings: EvalSettings, cfg: CorpusSuiteConfig = CLOUDS) -> SuiteReport:
    return run_suite(settings, cfg)


__all__ = ["CLOUDS", "CONDITIONS", "DEHAZE", "CorpusBundle", "CorpusSuiteConfig", "RealScene", "run_clouds",
           "run_dehaze", "run_suite", "ROOT"]
