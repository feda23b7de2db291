"""Cloud-removal suite of ``python -m training.evaluate`` (docs/quality.md, section "Cloud removal").

The project's version of the DE paper's ablation (its Table IX), thin and thick clouds separately, plus an
evaluation-only cloud generator: the cloudy input, the reference model alone, pure diffusion (W = 0), the
reference prior with a fixed 0.5 fusion, and full DE with the learned weights at 5/10/20/50 DDIM steps. Every
model row runs ``rscore.runtime.restore`` on a GeoTIFF (the plugin's path). A real cloudy Landsat-8 scene is
restored with and without its BQA cloud mask, with the uncertainty over several samples.
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

from rscore.degradations.clouds import add_clouds
from rscore.runtime import RestoreRequest, restore
from training.evaluate import (
    CONFIGS,
    L8_CLOUDY,
    METRIC_COLUMNS,
    REAL_STRIP_MAX_PX,
    ROOT,
    SAMPLES,
    EvalSettings,
    SuiteReport,
    _fmt,
    _prepare_real,
    _rel,
    bundle_under_test,
    fidelity_row,
    mean_of,
    read_raster,
    write_geotiff,
    write_strip,
)

CloudCondition = Literal["thin", "thick", "unseen"]
CONDITIONS: tuple[CloudCondition, ...] = ("thin", "thick", "unseen")


def unseen_clouds(clean: np.ndarray, rng: np.random.Generator, domain: str) -> tuple[np.ndarray, np.ndarray]:
    """An evaluation-only cloud model no training generator uses: cirrus-like streaks (a sum of sinusoids
    along one random direction, modulated across it) over a patchy opaque cumulus layer made from a coarse
    random grid upsampled with nearest neighbour and box-smoothed, with a bluish-white colour."""
    bands, rows, cols = clean.shape
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float64)
    ang = rng.uniform(0, np.pi)
    u = np.cos(ang) * xx + np.sin(ang) * yy
    v = -np.sin(ang) * xx + np.cos(ang) * yy
    streak = sum(np.sin(u / rng.uniform(3.0, 12.0) + rng.uniform(0, 6.3)) for _ in range(3)) / 3.0
    streak = np.clip(0.5 + 0.5 * streak, 0, 1) * (0.5 + 0.5 * np.sin(v / rng.uniform(20.0, 60.0)))
    cirrus = rng.uniform(0.2, 0.5) * streak
    cell = int(rng.integers(16, 48))
    grid = rng.random((rows // cell + 2, cols // cell + 2)) < rng.uniform(0.15, 0.4)
    core = grid[(yy // cell).astype(int), (xx // cell).astype(int)].astype(np.float64)
    k = max(3, cell // 3)
    pad = np.pad(core, k, mode="edge")
    cs = np.cumsum(np.cumsum(pad, 0), 1)
    cs = np.pad(cs, ((1, 0), (1, 0)))
    box = (cs[2 * k + 1:, 2 * k + 1:] - cs[:-2 * k - 1, 2 * k + 1:] - cs[2 * k + 1:, :-2 * k - 1]
           + cs[:-2 * k - 1, :-2 * k - 1])[:rows, :cols] / (2 * k + 1) ** 2
    m = np.clip(1 - (1 - cirrus) * (1 - np.clip(box * 1.5, 0, 1)), 0, 1)
    top = 1.0 if domain == "rgb8" else 0.85
    tint = np.linspace(1.05, 0.95, bands) if bands else 1.0
    colour = rng.uniform(0.7, 1.0) * top * tint
    return (clean * (1 - m[None]) + colour[:, None, None] * m[None]).astype(np.float32), m.astype(np.float32)


@dataclass(frozen=True)
class CloudBundle:
    """A bundle of the suite and the training config whose ``data`` section defines its data."""

    name: str
    config: Path
    real_scene: bool = False


@dataclass(frozen=True)
class CloudSuiteConfig:
    """What the cloud suite evaluates.

    Attributes:
        bundles: bundles in report order (missing ones are skipped with a note).
        crop_px: crop side, pixels.
        crops: clean test crops per bundle (each is clouded at every condition).
        quick_crops: crops in ``--quick`` mode.
        steps: DE step counts (full DE with the learned weights).
        strips: crops per bundle shown as PNG strips.
        real_samples: samples for the uncertainty rasters (real scene and uncertainty crops).
        uncertainty_crops: crops per bundle also run with several samples for the uncertainty table.
        seed: base seed; each bundle's crops and clouds come from (seed, crc32(bundle name)).
    """

    bundles: tuple[CloudBundle, ...]
    crop_px: int = 256
    crops: int = 4
    quick_crops: int = 1
    steps: tuple[int, ...] = (5, 10, 20, 50)
    strips: int = 2
    real_samples: int = 4
    uncertainty_crops: int = 2
    seed: int = 20261122


CLOUDS = CloudSuiteConfig(bundles=(
    CloudBundle("clouds-bgrn", CONFIGS / "clouds_bgrn.yaml", real_scene=True),
    CloudBundle("clouds-rgb", CONFIGS / "clouds_rgb.yaml"),
))


@dataclass(frozen=True)
class Method:
    """One row of the ablation: name and the RestoreRequest fields that define it."""

    name: str
    steps: int | None = None
    coarse_only: bool = False
    fixed_weight: float | None = None


def methods(default_steps: int, steps: Sequence[int]) -> tuple[Method, ...]:
    return (
        Method("input (cloudy)"),
        Method("reference model alone", coarse_only=True),
        Method(f"pure diffusion (W = 0), {default_steps} steps", default_steps, fixed_weight=0.0),
        Method(f"diffusion + reference, fixed W = 0.5, {default_steps} steps", default_steps, fixed_weight=0.5),
        *(Method(f"full DE (learned W, eta 0.3), {k} steps", k) for k in steps),
    )


@dataclass
class CloudBundleResult:
    name: str
    bands: tuple[str, ...]
    default_steps: int
    methods: tuple[Method, ...]
    n_crops: int
    crop_px: int
    sources: tuple[str, ...]
    scenes: tuple[str, ...]
    rows: list[dict[str, object]] = field(default_factory=list)
    strips: list[Path] = field(default_factory=list)
    real: list[str] = field(default_factory=list)
    uncertainty: list[dict[str, object]] = field(default_factory=list)

    def mean(self, condition: str, method: str, key: str) -> float:
        return mean_of(self.rows, condition, method, key)


def _cloud(clean: np.ndarray, cond: CloudCondition, wavelengths: tuple[float, ...], domain: str,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(cloudy image, cloud opacity at 550 nm in [0, 1])."""
    if cond == "unseen":
        return unseen_clouds(clean, rng, domain)
    res = add_clouds(clean, wavelengths, rng, cloud_type=cond)[0]
    return res.image, res.mask


#: opacity classes of the uncertainty table: (label, lower bound, upper bound)
OPACITY_CLASSES = (("clear (< 0.02)", -1.0, 0.02), ("semi-transparent (0.02-0.9)", 0.02, 0.9),
                   ("opaque (>= 0.9)", 0.9, 2.0))


def _run(src: Path, bundle: Path, out: Path, method: Method, device: str, **kw: object) -> tuple[np.ndarray, float]:
    rep = restore(RestoreRequest(str(src), str(bundle), str(out), steps=method.steps, seed=0, device=device,
                                 coarse_only=method.coarse_only, fixed_weight=method.fixed_weight, **kw))
    return read_raster(out), rep.seconds


def evaluate_cloud_bundle(spec: CloudBundle, cfg: CloudSuiteConfig, settings: EvalSettings) -> CloudBundleResult:
    n = cfg.quick_crops if settings.quick else cfg.crops
    but = bundle_under_test(spec.name, spec.config, settings, cfg.crop_px, n, cfg.seed)
    bundle_dir, data, bands, domain, rtype, rgb, pool = (but.dir, but.data, but.bands, but.domain, but.rtype,
                                                         but.rgb, but.pool)
    default_steps = but.default_steps
    meths = methods(default_steps, tuple(sorted({*cfg.steps, default_steps})))
    key = zlib.crc32(spec.name.encode())
    clean_all = but.clean
    res = CloudBundleResult(spec.name, bands, default_steps, meths, n, cfg.crop_px, tuple(data["sources"]),
                            tuple(sorted(set(pool.names))))
    gt = (500000.0, 10.0, 0.0, 4000000.0, 0.0, -10.0)
    full_default = next(m for m in meths if m.fixed_weight is None and m.steps == default_steps)
    with tempfile.TemporaryDirectory(prefix="rsrestore-eval-clouds-") as tmp_s:
        tmp = Path(tmp_s)
        warm = write_geotiff(tmp / "warmup.tif", rtype.quantise(clean_all[0]), rtype.gdal_name, 32633, gt)
        _run(warm, bundle_dir, tmp / "warm.tif", Method("warm", 1), settings.device)  # sessions out of timings
        for i, clean_f in enumerate(clean_all):
            clean = rtype.physical(rtype.quantise(clean_f))
            mpx = clean.shape[1] * clean.shape[2] / 1e6
            for c, cond in enumerate(CONDITIONS):
                rng = np.random.default_rng([cfg.seed, key, i, c])
                cloudy_f, opacity = _cloud(clean, cond, pool.wavelengths_nm, domain, rng)
                cloudy_q = rtype.quantise(cloudy_f)
                src = write_geotiff(tmp / f"crop{i}_{cond}.tif", cloudy_q, rtype.gdal_name, 32633, gt)
                outs: dict[str, np.ndarray] = {meths[0].name: rtype.physical(cloudy_q)}
                res.rows.append({"condition": cond, "method": meths[0].name, "crop": i, "seconds_per_mpx": math.nan,
                                 **fidelity_row(clean, outs[meths[0].name], rgb)})
                for j, m in enumerate(meths[1:]):
                    raster, secs = _run(src, bundle_dir, tmp / f"o{i}_{c}_{j}.tif", m, settings.device)
                    outs[m.name] = rtype.physical(raster)
                    res.rows.append({"condition": cond, "method": m.name, "crop": i, "seconds_per_mpx": secs / mpx,
                                     **fidelity_row(clean, outs[m.name], rgb)})
                if i < cfg.uncertainty_crops:
                    _run(src, bundle_dir, tmp / f"u{i}_{c}.tif", full_default, settings.device,
                         samples=cfg.real_samples, uncertainty_path=str(tmp / f"std{i}_{c}.tif"))
                    std = read_raster(tmp / f"std{i}_{c}.tif").astype(np.float64).mean(axis=0)
                    for label, lo, hi in OPACITY_CLASSES:
                        sel = (opacity >= lo) & (opacity < hi)
                        if sel.any():
                            res.uncertainty.append({"condition": cond, "class": label, "std": float(std[sel].mean()),
                                                    "pixels": int(sel.sum())})
                if i < cfg.strips:
                    panels = [outs[meths[0].name], outs[meths[1].name], outs[meths[2].name],
                              outs[full_default.name], clean]
                    png = settings.images_dir / f"clouds-{spec.name}-crop{i}-{cond}.png"
                    res.strips.append(write_strip(panels, rgb, png))
            print(f"  {spec.name}: crop {i + 1}/{n} done", flush=True)
        if spec.real_scene:
            res.real = _real_scene(spec.name, bundle_dir, rgb, default_steps, cfg, settings, tmp, res)
    return res


def _real_scene(bundle_name: str, bundle_dir: Path, rgb: Sequence[int], default_steps: int, cfg: CloudSuiteConfig,
                settings: EvalSettings, tmp: Path, res: CloudBundleResult) -> list[str]:
    """Landsat-8 cloudy sample: input | DE without mask | DE with the BQA mask | uncertainty over samples."""
    src, phys, valid = _prepare_real(L8_CLOUDY, tmp)
    mask_path = SAMPLES / "l8_cloud_mask.tif"  # tests/fixtures/make_cloud_sample.py: BQA rule, fill excluded
    cloud = read_raster(mask_path)[0] > 0
    mpx = phys.shape[1] * phys.shape[2] / 1e6
    full = Method("full", default_steps)
    unmasked, t_un = _run(src, bundle_dir, tmp / "l8_de.tif", full, settings.device)
    masked, t_m = _run(src, bundle_dir, tmp / "l8_de_masked.tif", full, settings.device, mask_path=str(mask_path),
                       samples=cfg.real_samples, uncertainty_path=str(tmp / "l8_std.tif"))
    std = read_raster(tmp / "l8_std.tif").astype(np.float64)
    raw = read_raster(src)
    same_clear = bool(np.array_equal(masked[:, ~cloud], raw[:, ~cloud]))
    step = max(1, math.ceil(max(phys.shape[1:]) / REAL_STRIP_MAX_PX))
    lo_hi = [tuple(np.percentile(phys[b][valid], (2, 98))) for b in rgb]
    std_rgb = np.where(std < 0, 0.0, std)
    panels = [np.where(valid, p, 0.0)[:, ::step, ::step] for p in
              (phys, unmasked / 1e4, masked / 1e4, cloud[None].repeat(phys.shape[0], 0) * 1.0)]
    png = write_strip(panels, rgb, settings.images_dir / f"clouds-{bundle_name}-real-l8-cloudy.png", lo_hi)
    s_std = float(np.mean(std_rgb[:, cloud & valid])) if (cloud & valid).any() else math.nan
    c_std = float(np.mean(std_rgb[:, ~cloud & valid]))
    std_png = write_strip([std_rgb[:, ::step, ::step]], rgb,
                          settings.images_dir / f"clouds-{bundle_name}-real-l8-uncertainty.png",
                          [(0.0, float(np.percentile(std_rgb[b][valid], 99)) or 1e-4) for b in rgb])
    res.strips += [png, std_png]
    return [
        f"Real scene without ground truth, `{_rel(L8_CLOUDY.path, ROOT)}` ({L8_CLOUDY.note}). Cloud mask: BQA "
        f"cloud confidence ≥ 'maybe' or cirrus 'yes' ({cloud.mean() * 100:.1f} % of the pixels). Panels: input | "
        f"full DE, {default_steps} steps, no mask ({t_un / mpx:.2f} s / Mpx) | full DE with the mask and "
        f"{cfg.real_samples} samples ({t_m / mpx:.2f} s / Mpx; clear pixels identical to the input: "
        f"{'yes' if same_clear else 'NO'}) | the mask (white = cloud); 2–98 % stretch of the input:",
        "",
        f"![{png.stem}]({_rel(png, settings.out_dir)})",
        "",
        f"Per-pixel standard deviation over the {cfg.real_samples} samples (red, green, blue; 0 to the 99th "
        f"percentile): mean {s_std * 1e4:.0f} × 1e-4 reflectance under the mask, {c_std * 1e4:.0f} outside "
        "(outside the mask the input is copied, so it is 0):",
        "",
        f"![{std_png.stem}]({_rel(std_png, settings.out_dir)})",
        "",
    ]


def cloud_table(res: CloudBundleResult) -> str:
    head = "| clouds | method | " + " | ".join(METRIC_COLUMNS) + " |"
    lines = [head, "|" + "---|" * (2 + len(METRIC_COLUMNS))]
    for cond in CONDITIONS:
        for j, m in enumerate(res.methods):
            vals = [_fmt(res.mean(cond, m.name, "psnr"), 2), _fmt(res.mean(cond, m.name, "ssim"), 4),
                    _fmt(res.mean(cond, m.name, "sam"), 2), _fmt(res.mean(cond, m.name, "lpips"), 4),
                    _fmt(res.mean(cond, m.name, "seconds_per_mpx"), 2)]
            label = f"**{_label(cond)}**" if j == 0 else ""
            lines.append(f"| {label} | {m.name} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def _label(cond: str) -> str:
    return "unseen generator (evaluation only)" if cond == "unseen" else cond


def uncertainty_table(res: CloudBundleResult, samples: int, crops: int) -> str:
    """Mean per-pixel standard deviation over samples by cloud opacity (does it flag hidden ground?)."""
    if not res.uncertainty:
        return ""
    lines = [f"Uncertainty (`SAMPLES={samples}`, full DE at {res.default_steps} steps, first "
             f"{min(crops, res.n_crops)} crop(s) per condition): per-pixel standard deviation over the samples "
             "(physical units: reflectance, or 8-bit / 255), mean over bands and pixels, by cloud opacity at "
             "550 nm:",
             "", "| clouds | " + " | ".join(c[0] for c in OPACITY_CLASSES) + " |",
             "|---|" + "---|" * len(OPACITY_CLASSES)]
    for cond in CONDITIONS:
        cells = []
        for label, _, _ in OPACITY_CLASSES:
            rows = [r for r in res.uncertainty if r["condition"] == cond and r["class"] == label]
            px = sum(int(r["pixels"]) for r in rows)
            std = sum(float(r["std"]) * int(r["pixels"]) for r in rows) / px if px else math.nan
            cells.append(_fmt(std, 4))
        lines.append(f"| {_label(cond)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cloud_reading(res: CloudBundleResult) -> str:
    """A paragraph computed from the means: what the weight network and the steps buy."""
    ms = {m.name: m for m in res.methods}
    names = list(ms)
    inp, ref, pure, fixed = names[:4]
    full = next(n for n in names if ms[n].fixed_weight is None and ms[n].steps == res.default_steps)
    parts = []
    for c in CONDITIONS:
        d = {k: res.mean(c, k, "psnr") for k in (inp, ref, pure, fixed, full)}
        lp = {k: res.mean(c, k, "lpips") for k in (ref, full)}
        parts.append(f"{_label(c)}: input {d[inp]:.2f}, reference {d[ref]:.2f}, pure diffusion {d[pure]:.2f}, "
                     f"fixed 0.5 {d[fixed]:.2f}, full DE {d[full]:.2f} dB (LPIPS reference {lp[ref]:.4f} → "
                     f"full DE {lp[full]:.4f})")
    step_rows = [n for n in names if ms[n].fixed_weight is None and ms[n].steps is not None]
    best = {c: max(step_rows, key=lambda n, c=c: res.mean(c, n, "psnr")) for c in CONDITIONS}
    return ("**Reading.** Mean PSNR per method at the default " f"{res.default_steps} steps — " + "; ".join(parts)
            + ". Best full-DE step count by PSNR: " + "; ".join(f"{_label(c)}: {best[c]}" for c in CONDITIONS) + ".")


def clouds_markdown(results: Sequence[CloudBundleResult], skipped: Sequence[str], cfg: CloudSuiteConfig,
                    settings: EvalSettings) -> str:
    out = ["## Cloud removal", ""]
    out += [
        "**Data.** Clean crops of the geographic **test** split of each bundle's training sources, "
        f"{cfg.quick_crops if settings.quick else cfg.crops} crops of {cfg.crop_px} × {cfg.crop_px} px per bundle, "
        "each clouded at every condition: *thin* and *thick* with the project's generator "
        "(`rscore.degradations.clouds.add_clouds(cloud_type=...)`, thick clouds with shadows 70 % of the time) "
        "and an *unseen generator* used by no training run (`training/eval_clouds.py: unseen_clouds`, cirrus "
        "streaks over a blocky smoothed cumulus layer). Under opaque cloud the ground is hidden and every "
        "method can only guess; metrics are over the whole crop, so they also depend on how much of it the "
        "random cloud field covers (coverage 5-90 %).",
        "",
        "**Methods** (the project's version of the DE paper's Table IX), all through "
        "`rscore.runtime.restore` with seed 0 on CPU: the *reference model alone* (`coarse_only=True`); *pure "
        "diffusion* (`fixed_weight=0`: DDIM with x0 from the noise predictor only); *fixed W = 0.5* "
        "(`fixed_weight=0.5`); *full DE* (learned per-pixel W clamped to [eta = 0.3, 1]) at several step "
        "counts. Metrics as in the dehazing section (data range 1.0; LPIPS on RGB).",
        "",
    ]
    for name in skipped:
        out += [f"*Bundle `{name}` is not in the models folder: skipped.*", ""]
    for res in results:
        out += [
            f"### `{res.name}` ({', '.join(res.bands)})",
            "",
            f"{res.n_crops} crops × {len(CONDITIONS)} conditions, sources {', '.join(res.sources)} (test windows "
            f"of: {', '.join(res.scenes)}). Bundle default: {res.default_steps} steps.",
            "",
            cloud_table(res),
            "",
            cloud_reading(res),
            "",
            uncertainty_table(res, cfg.real_samples, cfg.uncertainty_crops),
            "",
            f"Strips (cloudy | reference alone | pure diffusion | full DE {res.default_steps} steps | clean; "
            "2–98 % stretch of the clean crop):",
            "",
        ]
        synth = [p for p in res.strips if "-real-" not in p.name]
        out += [f"![{png.stem}]({_rel(png, settings.out_dir)})" for png in synth]
        out.append("")
        out += res.real
    return "\n".join(out)


def run_clouds(settings: EvalSettings, cfg: CloudSuiteConfig = CLOUDS) -> SuiteReport:
    for old in settings.images_dir.glob("clouds-*.png"):
        old.unlink()
    results, skipped = [], []
    t0 = time.perf_counter()
    for spec in cfg.bundles:
        if not (settings.models_dir / spec.name / "manifest.json").is_file():
            print(f"clouds: bundle {spec.name} not found under {settings.models_dir}; skipped", flush=True)
            skipped.append(spec.name)
            continue
        print(f"clouds: evaluating {spec.name}", flush=True)
        results.append(evaluate_cloud_bundle(spec, cfg, settings))
    print(f"clouds: {(time.perf_counter() - t0) / 60:.1f} min", flush=True)
    return SuiteReport(clouds_markdown(results, skipped, cfg, settings), tuple(p for r in results for p in r.strips))
