"""Clean training/validation imagery for a task: scenes from the fetched sources (or a synthetic scene
for tests), converted to the bundle's bands and value domain, sampled by geographic split."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rscore.data import Scene, SplitConfig, load_source, sample_patches, windows_for
from rscore.degradations.wavelengths import GENERIC_NM
from training.tasks.augment import AugmentConfig, augment_clean

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CACHE = ROOT / ".cache" / "rsrestore-data"


@dataclass(frozen=True)
class Pool:
    """Scenes in the task's band order and value domain.

    Attributes:
        arrays: float32 (bands, rows, cols) per scene.
        valid: bool (rows, cols) per scene.
        names: scene names.
        weights: sampling probability per scene.
        band_names: the task's band order.
        wavelengths_nm: band centres for physical degradations.
        split_config: geographic split of every scene.
    """

    arrays: tuple[np.ndarray, ...]
    valid: tuple[np.ndarray, ...]
    names: tuple[str, ...]
    weights: np.ndarray
    band_names: tuple[str, ...]
    wavelengths_nm: tuple[float, ...]
    split_config: SplitConfig

    def patches(self, split: str, patch_px: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """n clean patches (n, bands, patch_px, patch_px) drawn from windows of ``split``."""
        out = np.empty((n, len(self.band_names), patch_px, patch_px), np.float32)
        # only scenes with a window of this split large enough for the patch (a small scene may have none)
        ok = np.array([any(min(w.shape) >= patch_px for w in windows_for(a.shape[1:], split, self.split_config))
                       for a in self.arrays])
        if not ok.any():
            raise ValueError(f"no scene has a {split} window of {patch_px} px")
        p = np.where(ok, self.weights, 0.0)
        picks = rng.choice(len(self.arrays), size=n, p=p / p.sum())
        for i, k in enumerate(picks):
            patch = sample_patches(self.arrays[k], split, patch_px, 1, rng, self.split_config, self.valid[k])[0]
            out[i] = patch.pixels
        return out


def _to_domain(scene: Scene, bands: Sequence[str], domain: str, stretch: float) -> np.ndarray:
    idx = [scene.band_names.index(b) for b in bands]
    x = scene.pixels[idx].astype(np.float32)
    if domain == "rgb8" and scene.radiometry != "rgb8":
        # a multispectral scene shown as an 8-bit product: linear stretch of reflectance, clipped
        x = np.clip(x / stretch, 0.0, 1.0)
    return x


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
    ("reflectance" or "rgb8"), ``stretch`` (reflectance shown as 1.0 in rgb8, default 0.35), ``block_px``
    (split block size, default 640).
    """
    domain = data.get("domain", "reflectance")
    stretch = float(data.get("stretch", 0.35))
    cfg = SplitConfig(block_px=int(data.get("block_px", 640)))
    arrays: list[np.ndarray] = []
    valid: list[np.ndarray] = []
    names: list[str] = []
    for src in data["sources"]:
        if src == "synthetic":
            a = synthetic_scene(len(bands), 3 * cfg.block_px, 3 * cfg.block_px, seed=len(arrays))
            arrays.append(a)
            valid.append(np.ones(a.shape[1:], bool))
            names.append("synthetic")
            continue
        for sc in load_source(src, cache_dir):
            if not set(bands) <= set(sc.band_names):
                continue
            if min(sc.pixels.shape[1:]) < cfg.block_px:
                continue  # smaller than one split block: cannot be split geographically
            arrays.append(_to_domain(sc, bands, domain, stretch))
            valid.append(sc.valid_mask)
            names.append(sc.name)
    if not arrays:
        raise ValueError(f"no scene of {data['sources']} has bands {list(bands)}; run training/fetch_data.py")
    sizes = np.array([a.shape[1] * a.shape[2] for a in arrays], np.float64)
    weights = np.sqrt(sizes) / np.sqrt(sizes).sum()  # big scenes count more, small ones still appear
    wl = tuple(GENERIC_NM[b] for b in bands)
    return Pool(tuple(arrays), tuple(valid), tuple(names), weights, tuple(bands), wl, cfg)


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
