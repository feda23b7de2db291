"""Codec-decoded enhancement suite: rate-distortion curves of the shipped ``enhance_decoded`` bundles on held-out
crops, against the decoded image alone, with the prior ablations.

Each crop (a held-out test scene of the bundle's config, or a Sentinel-2 10 m test block) is round-tripped
through a codec at several qualities with GDAL in memory (:func:`rscore.degradations.codecs.roundtrip`, which
also gives the encoded size: the whole crop is one file, so headers count as they would in a real file),
written as a GeoTIFF and enhanced through :func:`rscore.runtime.restore`, the plugin's path. Rows per setting:

- ``decoded``: the decoded image alone (the codec's own curve);
- ``enhanced``: the bundle at its default (the diffusion-generated prior);
- ``one_pass``: the condition encoder's regression estimate as the prior (no sampling);
- ``no_prior``: the enhancement network with a zero prior (what the prior buys);
- ``true_prior``: the prior of Stage I's encoder from the true image (the upper bound; the bundle's
  evaluation-only ``prior_encoder.onnx``).

The two ablations call the networks directly on the whole crop (one tile, no edge padding); the others run the
tiled engine. The Bjøntegaard delta rate compares the enhanced curve with the decoded one at equal PSNR.
"""

from __future__ import annotations

import math
import tempfile
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rscore.baselines import deblock_guided
from rscore.bundle.store import load_bundle
from rscore.degradations.codecs import CodecParams, roundtrip
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
    met,
    rel,
    write_geotiff,
    write_strip,
)
from training.eval_corpus import TestScene
from training.eval_sr import eval_scenes, restore_crop
from training.tasks.codec import PRIOR_ENCODER_FILE
from training.tasks.imagery import load_pool

CROP_PX = 256
METHODS = ("decoded", "guided_filter", "enhanced", "one_pass", "no_prior", "true_prior")
LABELS = {"decoded": "decoded alone", "guided_filter": "guided filter (classical baseline)",
          "enhanced": "enhanced (diffusion prior)", "one_pass": "one pass (regression "
          "prior)", "no_prior": "no prior (ablation)", "true_prior": "true prior (upper bound)"}
CODEC_LABELS = {"jpeg": "JPEG", "webp": "WebP", "jp2": "JPEG 2000",
                "jp2-bands": "JPEG 2000, one file per band (as Sentinel-2)",
                "jp2-joint": "JPEG 2000, one 4-band file (as rsrestore:compress_raster)"}
#: targets of the issue: gain over the decoded image at the reference settings, Bjøntegaard rate saving, and
#: the PSNR of a never-compressed image against itself
GAIN_DB, RATE_SAVING_GOAL_PCT, CLEAN_MIN_DB = 1.0, 30.0, 40.0
_GT = (500000.0, 10.0, 0.0, 4000000.0, 0.0, -10.0)


@dataclass(frozen=True)
class CodecCurve:
    """One codec's settings: JPEG/WebP qualities or JPEG 2000 compression ratios; ``targets``: the settings
    the +1 dB target is judged at; ``key``: the curve's name in the rows (default: the codec); ``per_band``: see
    :func:`roundtrip`."""

    codec: str
    settings: tuple[float, ...]
    targets: tuple[float, ...]
    key: str = ""
    per_band: bool | None = None

    @property
    def name(self) -> str:
        return self.key or self.codec

    def params(self, value: float, bits: int) -> CodecParams:
        if self.codec == "jp2":
            return CodecParams("jp2", compression_ratio=float(value), bits=bits)
        return CodecParams(self.codec, quality=int(value))  # type: ignore[arg-type]

    def label(self, value: float) -> str:
        return f"1:{value:g}" if self.codec == "jp2" else f"q{value:g}"


@dataclass(frozen=True)
class CodecBundle:
    name: str
    config: Path
    curves: tuple[CodecCurve, ...]


@dataclass(frozen=True)
class CodecSuiteConfig:
    bundles: tuple[CodecBundle, ...] = (
        CodecBundle("decoded-bgrn", CONFIGS / "decoded_bgrn.yaml",
                    (CodecCurve("jp2", (16.0, 32.0, 64.0, 128.0, 200.0), (64.0,), "jp2-bands", per_band=True),
                     CodecCurve("jp2", (16.0, 64.0, 200.0), (64.0,), "jp2-joint", per_band=False))),
        CodecBundle("decoded-rgb", CONFIGS / "decoded_rgb.yaml",
                    (CodecCurve("jpeg", (10.0, 20.0, 30.0, 50.0), (20.0, 30.0)),
                     CodecCurve("webp", (10.0, 20.0, 30.0, 50.0), (20.0, 30.0)),
                     CodecCurve("jp2", (12.0, 24.0, 48.0), (24.0,)))),
    )
    crop_px: int = CROP_PX
    crops_per_scene: int = 2
    quick_crops_per_scene: int = 1
    strips: int = 3
    seed: int = 20261130


@dataclass
class CodecResult:
    name: str
    bands: tuple[str, ...]
    curves: tuple[CodecCurve, ...]
    scenes: list[tuple[TestScene, str]]
    default_steps: int
    rows: list[dict[str, object]] = field(default_factory=list)
    clean_psnr: list[float] = field(default_factory=list)
    strips: list[Path] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)

    def mean(self, key: str, **where: object) -> float:
        return mean_where(self.rows, key, **where)


def bd_rate(rate_a: Sequence[float], psnr_a: Sequence[float], rate_b: Sequence[float], psnr_b: Sequence[float]
            ) -> float:
    """Bjøntegaard delta rate of curve b against curve a, in %: the mean difference of log-rate over the PSNR
    range both cover, each curve a cubic fit of log(rate) against PSNR (negative: b needs fewer bits for the
    same PSNR). NaN when the curves share no PSNR range."""
    pa, pb = np.asarray(psnr_a, np.float64), np.asarray(psnr_b, np.float64)
    fa = np.polyint(np.polyfit(pa, np.log(np.asarray(rate_a, np.float64)), min(3, len(pa) - 1)))
    fb = np.polyint(np.polyfit(pb, np.log(np.asarray(rate_b, np.float64)), min(3, len(pb) - 1)))
    lo, hi = max(pa.min(), pb.min()), min(pa.max(), pb.max())
    if not hi > lo:
        return math.nan
    diff = ((np.polyval(fb, hi) - np.polyval(fb, lo)) - (np.polyval(fa, hi) - np.polyval(fa, lo))) / (hi - lo)
    return float((math.exp(diff) - 1.0) * 100.0)


class _Networks:
    """The bundle's enhancement network and Stage I encoder on onnxruntime, for the ablations."""

    def __init__(self, bundle_dir: Path) -> None:
        import onnxruntime as ort

        self.manifest = load_bundle(bundle_dir).manifest
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        self.decoder = ort.InferenceSession(str(bundle_dir / self.manifest.stages["decoder"].file), opts,
                                            providers=["CPUExecutionProvider"])
        enc = bundle_dir / PRIOR_ENCODER_FILE
        self.encoder = (ort.InferenceSession(str(enc), opts, providers=["CPUExecutionProvider"])
                        if enc.is_file() else None)
        self.mean = np.asarray(self.manifest.input.mean, np.float32)[:, None, None]
        self.std = np.asarray(self.manifest.input.std, np.float32)[:, None, None]
        self.z_std = float(self.manifest.training.get("z_std", 1.0))
        assert self.manifest.latent is not None
        self.latent = self.manifest.latent

    def _m(self, phys: np.ndarray) -> np.ndarray:
        return ((phys - self.mean) / self.std)[None].astype(np.float32)

    def enhance(self, decoded: np.ndarray, hq: np.ndarray | None) -> np.ndarray:
        """Physical-unit output with a zero prior (``hq`` None) or Stage I's prior from ``hq``."""
        y = self._m(decoded)
        f = self.latent.factor
        if hq is None:
            x0 = np.zeros((1, self.latent.channels, y.shape[2] // f, y.shape[3] // f), np.float32)
        else:
            assert self.encoder is not None
            x0 = self.encoder.run(None, {"hq": self._m(hq), "y": y})[0] / np.float32(self.z_std)
        out = self.decoder.run(None, {"x0": x0, "y": y})[0][0]
        return out * self.std + self.mean


def evaluate_bundle(spec: CodecBundle, cfg: CodecSuiteConfig, settings: EvalSettings) -> CodecResult:
    bundle_dir = settings.models_dir / spec.name
    nets = _Networks(bundle_dir)
    data = TrainConfig.load(spec.config).data
    bands = tuple(data["bands"])
    domain = str(data.get("domain", "reflectance"))
    rtype = RASTER_TYPES[domain]
    bits = 8 if domain == "rgb8" else 16
    pool = load_pool(data, bands, settings.data_cache)
    scenes = eval_scenes(pool, cfg.crop_px)
    sampler = nets.manifest.sampler
    res = CodecResult(spec.name, bands, spec.curves, scenes, int(sampler.default_steps) if sampler else 0)
    rgb = [bands.index(b) for b in ("red", "green", "blue")]
    n = cfg.quick_crops_per_scene if settings.quick else cfg.crops_per_scene
    key = zlib.crc32(spec.name.encode())
    with tempfile.TemporaryDirectory(prefix="rsrestore-eval-codec-") as tmp_s:
        tmp = Path(tmp_s)
        ci = 0
        for si, (sc, group) in enumerate(scenes):
            rng = np.random.default_rng([cfg.seed, key, si])
            for crop in pool.patches("test", cfg.crop_px, n, rng, scenes=[sc.index]):
                hq = rtype.physical(rtype.quantise(crop))
                src = write_geotiff(tmp / f"clean{ci}.tif", rtype.quantise(hq), rtype.gdal_name, 32633, _GT)
                same, _ = restore_crop(src, bundle_dir, tmp / f"clean_out{ci}.tif", 1.0, False, settings.device)
                res.clean_psnr.append(fidelity_row(hq, rtype.physical(same), rgb)["psnr"])
                for curve in spec.curves:
                    for value in curve.settings:
                        trip = roundtrip(hq, curve.params(value, bits), curve.per_band)
                        dec = rtype.physical(rtype.quantise(trip.image))
                        src = write_geotiff(tmp / f"d{ci}.tif", rtype.quantise(dec), rtype.gdal_name, 32633, _GT)
                        base = {"scene": sc.name, "group": group, "crop": ci, "codec": curve.name,
                                "setting": value, "bpp": trip.bits_per_pixel}
                        t0 = time.perf_counter()
                        base_out = rtype.physical(rtype.quantise(deblock_guided(dec)))
                        outs = {"decoded": (dec, math.nan), "guided_filter": (base_out, time.perf_counter() - t0)}
                        for method, one_pass in (("enhanced", False), ("one_pass", True)):
                            out, secs = restore_crop(src, bundle_dir, tmp / f"o{ci}_{method}.tif", 1.0, one_pass,
                                                     settings.device)
                            outs[method] = (rtype.physical(out), secs)
                        outs["no_prior"] = (rtype.physical(rtype.quantise(nets.enhance(dec, None))), math.nan)
                        if nets.encoder is not None:
                            outs["true_prior"] = (rtype.physical(rtype.quantise(nets.enhance(dec, hq))), math.nan)
                        for method, (est, secs) in outs.items():
                            res.rows.append({**base, "method": method, "seconds": secs, **fidelity_row(hq, est, rgb)})
                        if value in curve.targets[:1] and len(res.strips) < cfg.strips * len(spec.curves) and (
                                ci % max(1, len(scenes) * n // cfg.strips) == 0):
                            png = settings.images_dir / f"codec-{spec.name}-{curve.name}-{ci}.png"
                            h = cfg.crop_px // 2
                            zoom = [np.repeat(np.repeat(p[:, :h, :h], 2, 1), 2, 2)
                                    for p in (dec, outs["no_prior"][0], outs["enhanced"][0], hq)]
                            res.strips.append(write_strip(zoom, rgb, png))
                print(f"  {spec.name}: crop {ci + 1} ({sc.name}) done", flush=True)
                ci += 1
    res.plots = [plot_curves(res, curve, settings.images_dir) for curve in spec.curves]
    return res


# ---- report -------------------------------------------------------------------------------------------------
def curve_points(res: CodecResult, codec: str, method: str, metric: str = "psnr") -> tuple[list[float], list[float]]:
    """(mean bits per pixel, mean metric) per setting of one codec, in setting order."""
    curve = next(c for c in res.curves if c.name == codec)
    return ([res.mean("bpp", codec=codec, setting=v, method="decoded") for v in curve.settings],
            [res.mean(metric, codec=codec, setting=v, method=method) for v in curve.settings])


def saving(res: CodecResult, codec: str, method: str = "enhanced") -> float:
    """Rate saving at equal PSNR of ``method`` over the decoded curve, % (minus the BD rate)."""
    ra, pa = curve_points(res, codec, "decoded")
    rb, pb = curve_points(res, codec, method)
    return -bd_rate(ra, pa, rb, pb)


def plot_curves(res: CodecResult, curve: CodecCurve, images_dir: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for method in METHODS:
        if not any(r["method"] == method for r in res.rows):
            continue
        for ax, metric in zip(axes, ("psnr", "lpips")):
            x, y = curve_points(res, curve.name, method, metric)
            ax.plot(x, y, marker="o", ms=3, label=LABELS[method], ls="--" if method in ("no_prior", "true_prior")
                    else "-")
    axes[0].set_ylabel("PSNR (dB) ↑")
    axes[1].set_ylabel("LPIPS ↓")
    for ax in axes:
        ax.set_xlabel("bits per pixel (all bands)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{res.name}: {CODEC_LABELS[curve.name]}, held-out crops")
    fig.tight_layout()
    png = images_dir / f"codec-rd-{res.name}-{curve.name}.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def table(res: CodecResult, curve: CodecCurve) -> str:
    head = " | ".join(f"PSNR {m.replace('_', ' ')}" for m in METHODS)
    lines = [f"| setting | bpp | {head} | enhanced − decoded | LPIPS decoded | LPIPS guided filter | LPIPS enhanced "
             "| s / Mpx |", "|" + "---|" * (len(METHODS) + 7)]
    mpx = (CROP_PX / 1e3) ** 2
    for v in curve.settings:
        w = {"codec": curve.name, "setting": v}
        p = {m: res.mean("psnr", method=m, **w) for m in METHODS}
        lines.append(f"| {curve.label(v)} | {fmt(res.mean('bpp', method='decoded', **w), 3)} | "
                     + " | ".join(fmt(p[m], 2) for m in METHODS)
                     + f" | {p['enhanced'] - p['decoded']:+.2f} | {fmt(res.mean('lpips', method='decoded', **w), 3)} | "
                     f"{fmt(res.mean('lpips', method='guided_filter', **w), 3)} | "
                     f"{fmt(res.mean('lpips', method='enhanced', **w), 3)} | "
                     f"{fmt(res.mean('seconds', method='enhanced', **w) / mpx, 2)} |")
    return "\n".join(lines)


def targets(res: CodecResult) -> list[str]:
    out = []
    for curve in res.curves:
        for v in curve.targets:
            w = {"codec": curve.name, "setting": v}
            gain = res.mean("psnr", method="enhanced", **w) - res.mean("psnr", method="decoded", **w)
            out.append(f"- {CODEC_LABELS[curve.name]} {curve.label(v)} ({res.mean('bpp', method='decoded', **w):.2f} "
                       f"bpp): enhanced − decoded {gain:+.2f} dB (target ≥ +{GAIN_DB}: "
                       f"{met(gain >= GAIN_DB)})")
        s = saving(res, curve.name)
        out.append(f"- {CODEC_LABELS[curve.name]}: Bjøntegaard rate saving at equal PSNR {fmt(s, 1)} % (goal "
                   f"{RATE_SAVING_GOAL_PCT:g} %: {met(s >= RATE_SAVING_GOAL_PCT)}); "
                   + ", ".join(f"{m.replace('_', ' ')} {fmt(saving(res, curve.name, m), 1)} %"
                               for m in ("guided_filter", "one_pass", "no_prior", "true_prior")
                               if any(r["method"] == m for r in res.rows)))
    worst = min(res.clean_psnr) if res.clean_psnr else math.nan
    out.append(f"- never-compressed crops: worst {fmt(worst, 2)} dB against themselves (target ≥ {CLEAN_MIN_DB:g}: "
               f"{met(worst >= CLEAN_MIN_DB)}), mean {fmt(float(np.mean(res.clean_psnr)), 2)}")
    return out


def suite_markdown(results: Sequence[CodecResult], skipped: Sequence[str], cfg: CodecSuiteConfig,
                   settings: EvalSettings) -> str:
    n = cfg.quick_crops_per_scene if settings.quick else cfg.crops_per_scene
    out = ["## Codec-decoded enhancement", "",
           f"**Data.** {n} crop(s) of {cfg.crop_px} × {cfg.crop_px} px per held-out test scene of each bundle's "
           "training config and per Sentinel-2 10 m test block (as in the super-resolution suite), each "
           "round-tripped through GDAL's codecs in memory (JPEG 2000 at 16 bits with 15 significant bits for "
           "reflectance, as Sentinel-2, either one file per band as Sentinel-2 delivers it and as the bundle "
           "trained, or one 4-band file as `rsrestore:compress_raster` writes it; JPEG and WebP at 8 bits, one RGB "
           "file, JPEG with YCbCr 4:2:0), written as a "
           "GeoTIFF and enhanced with `rscore.runtime.restore` (seed 0, CPU). Bits per pixel count every band "
           "and the headers.", "",
           "**Rows.** " + "; ".join(f"*{v}*" for v in LABELS.values()) + ". The classical baseline is a self-guided "
           "filter per band (`rscore/baselines/deblock.py`: radius 2 px, eps 8 % of the band's 2-98 % range). "
           "The ablations run the enhancement "
           "network directly on the whole crop: *no prior* with a zero prior map, *true prior* with the prior that "
           "Stage I's encoder makes from the true image (what a perfect Stage II would reach).", "",
           "**Metrics.** Mean over crops; data range 1.0; LPIPS (AlexNet) on red, green, blue; the Bjøntegaard "
           "rate saving compares each curve with the decoded one at equal PSNR (cubic fits of log-rate).", ""]
    for name in skipped:
        out += [f"*Bundle `{name}` is not in `{settings.models_dir}`: skipped.*", ""]
    for res in results:
        steps = f"{res.default_steps} step(s)" if res.default_steps else "one pass"
        out += [f"### `{res.name}` ({', '.join(res.bands)}; default {steps}; {len(res.scenes)} test scene(s))", "",
                "Targets:", "", *targets(res), ""]
        for curve, plot in zip(res.curves, res.plots):
            out += [f"#### {CODEC_LABELS[curve.name]}", "", f"![{plot.stem}]({rel(plot, settings.out_dir)})", "",
                    table(res, curve), ""]
        out += ["Crops at the reference setting, 128 px shown ×2 (decoded | no prior | enhanced | truth):", ""]
        out += [f"![{p.stem}]({rel(p, settings.out_dir)})" for p in res.strips]
        out.append("")
    return "\n".join(out)


def headline(res: CodecResult) -> str:
    parts = []
    for curve in res.curves:
        v = curve.targets[0]
        w = {"codec": curve.name, "setting": v}
        gain = res.mean("psnr", method="enhanced", **w) - res.mean("psnr", method="decoded", **w)
        parts.append(f"{CODEC_LABELS[curve.name]} {curve.label(v)}: **{gain:+.2f} dB** over the decoded image, "
                     f"rate saving {fmt(saving(res, curve.name), 0)} %")
    return "on held-out crops, " + "; ".join(parts) + "."


def run_codec(settings: EvalSettings, cfg: CodecSuiteConfig = CodecSuiteConfig()) -> SuiteReport:
    for old in settings.images_dir.glob("codec-*.png"):
        old.unlink()
    results, skipped = evaluate_available(settings, cfg.bundles, "codec",
                                          lambda spec: evaluate_bundle(spec, cfg, settings))
    if not settings.quick:
        merge_summary(settings, {r.name: {"scenes": len(r.scenes), "summary": headline(r)} for r in results})
    images = tuple(p for r in results for p in (*r.plots, *r.strips))
    return SuiteReport(suite_markdown(results, skipped, cfg, settings), images)
