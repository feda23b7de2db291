"""Clean training/validation imagery for a task: scenes from the fetched sources (or a synthetic scene
for tests), converted to the bundle's bands and value domain, sampled by split: whole held-out scenes and
geographic blocks of the others."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rscore.data import Scene, SplitConfig, load_source, sample_patches, scene_windows
from rscore.data.sources import SOURCES
from rscore.degradations.wavelengths import GENERIC_NM
from training.tasks.augment import AugmentConfig, augment_clean

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CACHE = ROOT / ".cache" / "rsrestore-data"


@dataclass(frozen=True)
class Pool:
    """Scenes in the task's band order and value domain.

    Attributes:
        arrays: float32 (bands, rows, cols) per scene, physical units (reflectance, or display 0-1).
        valid: bool (rows, cols) per scene.
        names: scene names.
        weights: sampling probability per scene.
        band_names: the task's band order.
        wavelengths_nm: band centres for physical degradations.
        split_config: geographic split of every scene.
        holdouts: per scene, ``"blocks"`` or the split it is held out for (``rscore.data.splits.Holdout``).
        render: per scene, True when a reflectance scene is shown as an 8-bit product (domain ``rgb8``): each
            patch gets its own display stretch (:func:`render_rgb8`).
        acquisitions: per scene, (place, date, geotransform) as its source declares them ("" / None unknown).
    """

    arrays: tuple[np.ndarray, ...]
    valid: tuple[np.ndarray, ...]
    names: tuple[str, ...]
    weights: np.ndarray
    band_names: tuple[str, ...]
    wavelengths_nm: tuple[float, ...]
    split_config: SplitConfig
    holdouts: tuple[str, ...] = ()
    render: tuple[bool, ...] = ()
    acquisitions: tuple[tuple[str, str, tuple[float, ...] | None], ...] = ()

    def _holdout(self, k: int) -> Any:
        return self.holdouts[k] if self.holdouts else "blocks"

    def scenes_for(self, split: str, patch_px: int) -> list[int]:
        """Indices of the scenes with a window of ``split`` that holds a ``patch_px`` patch."""
        return [k for k, a in enumerate(self.arrays)
                if any(min(w.shape) >= patch_px
                       for w in scene_windows(a.shape[1:], split, self.split_config, self._holdout(k)))]

    def patches(self, split: str, patch_px: int, n: int, rng: np.random.Generator,
                scenes: Sequence[int] | None = None) -> np.ndarray:
        """n clean patches (n, bands, patch_px, patch_px) drawn from windows of ``split`` (of ``scenes`` only,
        when given): the training split is the train blocks of the non-held-out scenes; val and test are the
        held-out scenes (whole) plus the val/test blocks of the others."""
        out = np.empty((n, len(self.band_names), patch_px, patch_px), np.float32)
        ok = np.zeros(len(self.arrays), bool)
        ok[[k for k in self.scenes_for(split, patch_px) if scenes is None or k in scenes]] = True
        if not ok.any():
            raise ValueError(f"no scene has a {split} window of {patch_px} px")
        p = np.where(ok, self.weights, 0.0)
        for i in range(n):
            for _ in range(20):  # a scene with much fill may hold no large patch: draw another scene
                k = int(rng.choice(len(self.arrays), p=p / p.sum()))
                try:
                    patch = sample_patches(self.arrays[k], split, patch_px, 1, rng, self.split_config,
                                           self.valid[k], holdout=self._holdout(k))[0]
                    break
                except ValueError:
                    continue
            else:
                raise ValueError(f"20 scenes in a row had no {split} patch of {patch_px} px free of fill pixels")
            out[i] = render_rgb8(patch.pixels, rng) if self.render and self.render[k] else patch.pixels
        return out


    def other_dates(self) -> dict[int, list[int]]:
        """Scene index -> the other acquisitions of the same scene: same declared place, another declared date,
        the same grid (geotransform and size). Real pairs of dates for reference-based training."""
        out: dict[int, list[int]] = {}
        acq = self.acquisitions
        for k in range(len(acq)):
            place, date, gt = acq[k]
            sib = [j for j in range(len(acq)) if j != k and place and date and gt is not None
                   and acq[j][0] == place and acq[j][1] and acq[j][1] != date and acq[j][2] == gt
                   and self.arrays[j].shape == self.arrays[k].shape]
            if sib:
                out[k] = sib
        return out

    def date_pair(self, split: str, patch_px: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:
        """(patch, the same window on another date of the same place), or None when the pool has no such
        scenes (or 20 draws found no window valid on both dates)."""
        pairs = {k: v for k, v in self.other_dates().items() if k in self.scenes_for(split, patch_px)}
        if not pairs:
            return None
        for _ in range(20):
            k = int(rng.choice(sorted(pairs)))
            j = int(rng.choice(pairs[k]))
            try:
                patch = sample_patches(self.arrays[k], split, patch_px, 1, rng, self.split_config, self.valid[k],
                                       holdout=self._holdout(k))[0]
            except ValueError:
                continue
            win = (slice(None), slice(patch.row0, patch.row0 + patch_px), slice(patch.col0, patch.col0 + patch_px))
            if self.valid[j][win[1:]].all():
                ref = self.arrays[j][win].astype(np.float32)
                if self.render and self.render[k]:
                    return render_rgb8(patch.pixels, rng), render_rgb8(ref, rng)
                return patch.pixels, ref
        return None


def render_rgb8(reflectance: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A reflectance patch as an 8-bit product would show it: a linear stretch whose white point is drawn
    between 0.2 and 0.5 reflectance (products differ), an optional gamma, clipped to [0, 1]."""
    top = rng.uniform(0.2, 0.5)
    x = np.clip(reflectance / top, 0.0, 1.0)
    if rng.random() < 0.5:
        x = x ** rng.uniform(0.7, 1.2)
    return x.astype(np.float32)


def _to_domain(scene: Scene, bands: Sequence[str]) -> np.ndarray:
    idx = [scene.band_names.index(b) for b in bands]
    return scene.pixels[idx].astype(np.float32)


def synthetic_scene(bands: int, rows: int, cols: int, seed: int) -> np.ndarray:
    """Smooth fields + edges + texture in [0.02, 0.6]: a stand-in scene for tests (no download)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols] / max(rows, cols)
    out = np.empty((bands, rows, cols), np.float32)
    blocks = (np.floor(xx * 7) + np.floor(yy * 5)) % 3
    for b in range(bands):
        out[b] = 0.15 + 0.1 * np.sin(2 * np.pi * (xx * (1 + b) + yy * 2)) + 0.08 * blocks
        out[b] += 0.03 * rng.standard_normal((rows, cols))
    return np.clip(out, 0.02, 0.6)


def load_pool(data: dict[str, Any], bands: Sequence[str], cache_dir: Path = DEFAULT_CACHE) -> Pool:
    """Build a pool from a task config's ``data`` section.

    ``data`` keys: ``sources`` (list of rscore.data source names, or ["synthetic"]), ``domain``
    ("reflectance" or "rgb8"; reflectance scenes are then rendered per patch, see :func:`render_rgb8`),
    ``block_px`` (split block size, default 640), ``min_scene_px`` (smallest scene side used, default 96).
    Evaluation-only sources (real clouds without a clean target) are refused: they must never be trained on.
    """
    domain = data.get("domain", "reflectance")
    cfg = SplitConfig(block_px=int(data.get("block_px", 640)))
    min_px = int(data.get("min_scene_px", 96))
    arrays: list[np.ndarray] = []
    valid: list[np.ndarray] = []
    names: list[str] = []
    holdouts: list[str] = []
    render: list[bool] = []
    acquisitions: list[tuple[str, str, tuple[float, ...] | None]] = []
    for src in data["sources"]:
        if src == "synthetic":
            a = synthetic_scene(len(bands), 3 * cfg.block_px, 3 * cfg.block_px, seed=len(arrays))
            arrays.append(a)
            valid.append(np.ones(a.shape[1:], bool))
            names.append("synthetic")
            holdouts.append("blocks")
            render.append(False)
            acquisitions.append(("", "", None))
            continue
        if SOURCES[src].use == "evaluation_only":
            raise ValueError(f"source {src!r} is evaluation-only (real degradations, no clean target); "
                             "remove it from the training sources")
        for sc in load_source(src, cache_dir):
            if not set(bands) <= set(sc.band_names) or min(sc.pixels.shape[1:]) < min_px:
                continue
            arrays.append(_to_domain(sc, bands))
            valid.append(sc.valid_mask)
            names.append(sc.name)
            holdouts.append(sc.holdout)
            render.append(domain == "rgb8" and sc.radiometry != "rgb8")
            acquisitions.append((sc.place, sc.date, tuple(sc.geotransform) if sc.geotransform else None))
    if not arrays:
        raise ValueError(f"no scene of {data['sources']} has bands {list(bands)}; run training/fetch_data.py")
    sizes = np.array([float(v.sum()) for v in valid], np.float64)
    weights = np.sqrt(sizes) / np.sqrt(sizes).sum()  # big scenes count more, small ones still appear
    wl = tuple(GENERIC_NM[b] for b in bands)
    return Pool(tuple(arrays), tuple(valid), tuple(names), weights, tuple(bands), wl, cfg, tuple(holdouts),
                tuple(render), tuple(acquisitions))


def augment_config(data: dict[str, Any]) -> AugmentConfig | None:
    """The ``data.augment`` section of a task config as an :class:`AugmentConfig` (None: no clean-image
    augmentation, as in the tiny test configs)."""
    section = data.get("augment")
    if section is None:
        return None
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(section).items()}
    return AugmentConfig(**fields)


def augmented_patches(pool: Pool, split: str, patch_px: int, n: int, domain: str,
                      rng: np.random.Generator, augment: AugmentConfig | None = None) -> np.ndarray:
    """n clean patches with augmentation: random 1-2.5x down-scaling (40 %), rotation, flip, a radiometric
    jitter (gamma for 8-bit RGB; gain and per-band gain for reflectance), then, with ``augment``, the
    shortcut-breaking changes of :func:`training.tasks.augment.augment_clean` (albedo, spectral shape, bright
    natural surfaces, bright man-made surfaces); clipped to [0, 1]."""
    from rscore.degradations.resample import area_resample

    out = np.empty((n, len(pool.band_names), patch_px, patch_px), np.float32)
    for i in range(n):
        f = float(rng.uniform(1.0, 2.5)) if rng.random() < 0.4 else 1.0
        big = pool.patches(split, int(np.ceil(patch_px * f)), 1, rng)[0]
        img = area_resample(big, f)[:, :patch_px, :patch_px] if f > 1.0 else big
        img = np.rot90(img, int(rng.integers(4)), axes=(1, 2))
        if rng.random() < 0.5:
            img = img[:, :, ::-1]
        if domain == "rgb8":
            img = np.clip(img, 0, 1) ** rng.uniform(0.8, 1.25)
        else:
            img = img * rng.uniform(0.75, 1.3) * (1 + 0.08 * rng.standard_normal(len(pool.band_names)))[:, None, None]
        if augment is not None:
            img = augment_clean(np.ascontiguousarray(img), pool.band_names, rng, augment)
        out[i] = np.clip(img, 0.0, 1.0)
    return out


def quantize(image: np.ndarray, domain: str) -> np.ndarray:
    """Round a degraded image to what its raster would store: 8-bit steps for RGB, 1e-4 reflectance."""
    if domain == "rgb8":
        return (np.round(np.clip(image, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)
    return (np.round(np.clip(image, 0.0, 1.5) * 1e4) / 1e4).astype(np.float32)
