"""Augmentations of *clean* imagery that break the shortcuts a restoration model learns from few scenes.

A model trained on one temperate scene learns "bright = haze" and "white = cloud". These functions change
the clean image itself (so the degraded input and the target both carry the change) to put bright dry
ground, snow, bright man-made surfaces and other albedos and spectral shapes into every task's data. All
work on float32 (bands, rows, cols) in physical units (reflectance 0-1, or 8-bit display values / 255) and
draw every random number from the injected ``rng``.

Spectra are per generic band name (``blue``, ``green``, ``red``, ``nir``) in reflectance; in the 8-bit
display domain the same shapes are used as display values (a bright surface is bright in both).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rscore.degradations.fields import fractal_field, gaussian_blur

#: (low, high) reflectance per band of surfaces a model must not mistake for haze or cloud.
#: Dry sand and bright soil (reflectance rises from blue to NIR), salt flats / playas (bright, flat),
#: fresh and old snow (very bright in the visible, lower in the NIR).
SURFACES: dict[str, dict[str, tuple[float, float]]] = {
    "sand": {"blue": (0.16, 0.30), "green": (0.24, 0.38), "red": (0.32, 0.50), "nir": (0.38, 0.58)},
    "soil": {"blue": (0.10, 0.18), "green": (0.14, 0.24), "red": (0.20, 0.32), "nir": (0.26, 0.40)},
    "playa": {"blue": (0.45, 0.65), "green": (0.48, 0.68), "red": (0.50, 0.70), "nir": (0.50, 0.72)},
    # grey gravel, dry river beds, concrete and bare urban ground: flat, bright, NIR no higher than red
    "gravel": {"blue": (0.16, 0.32), "green": (0.16, 0.32), "red": (0.16, 0.32), "nir": (0.14, 0.32)},
    "snow": {"blue": (0.75, 0.95), "green": (0.74, 0.94), "red": (0.70, 0.92), "nir": (0.50, 0.82)},
}
#: Bright man-made materials (roofs, concrete, greenhouses, solar farms' frames), nearly flat spectra.
ROOF_LEVEL = (0.30, 0.92)


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of the clean-image augmentations.

    Attributes:
        p_radiometry: chance of a global albedo gain, per-band gain and additive offset.
        gain_range: log-uniform range of the global albedo gain.
        band_gain_std: standard deviation of the per-band relative gain.
        offset_range: uniform range of an additive offset (a different atmosphere or processing level).
        p_surface: chance of painting a bright natural surface (sand, soil, playa, gravel or snow) over part or
            all of the image, keeping the image's own texture.
        surfaces: the :data:`SURFACES` drawn from (a config pins the list a bundle was trained with).
        p_roofs: chance of adding bright man-made rectangles.
        max_roofs: most rectangles per image.
        p_flatten: chance of flattening the spectrum towards grey (mixing every band with the band mean by
            0.3-0.9): uncalibrated 8-bit products and bright bare ground look like that, and so does a veil of
            haze or cloud, which the models must not see in every grey scene.
    """

    p_radiometry: float = 0.7
    gain_range: tuple[float, float] = (0.6, 2.2)
    band_gain_std: float = 0.1
    offset_range: tuple[float, float] = (-0.02, 0.04)
    p_surface: float = 0.4
    surfaces: tuple[str, ...] = tuple(SURFACES)
    p_roofs: float = 0.35
    max_roofs: int = 60
    p_flatten: float = 0.25

    def __post_init__(self) -> None:
        unknown = sorted(set(self.surfaces) - set(SURFACES))
        if unknown or not self.surfaces:
            raise ValueError(f"augment.surfaces {list(self.surfaces)}: use a non-empty list of {list(SURFACES)}")


def _texture(img: np.ndarray) -> np.ndarray:
    """Zero-mean, unit-spread luminance of the image (its spatial structure, without its colour)."""
    lum = img.mean(axis=0)
    return (lum - lum.mean()) / max(float(lum.std()), 1e-3)


def vary_radiometry(img: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Another albedo, spectral shape and offset: ``img * g * (1 + d_b) + o``."""
    lo, hi = np.log(cfg.gain_range[0]), np.log(cfg.gain_range[1])
    g = float(np.exp(rng.uniform(lo, hi)))
    d = 1.0 + cfg.band_gain_std * rng.standard_normal(img.shape[0])
    o = float(rng.uniform(*cfg.offset_range))
    return img * (g * d)[:, None, None] + o


def paint_surface(img: np.ndarray, band_names: Sequence[str], rng: np.random.Generator,
                  kind: str | None = None, choices: Sequence[str] = tuple(SURFACES)) -> np.ndarray:
    """Paint a bright natural surface over a smooth random region (or everything), keeping the texture.

    The new value is ``s_b * (1 + c * texture)`` with ``s_b`` drawn from :data:`SURFACES` and ``c`` 0.05-0.3;
    it is blended in with a soft mask, so the scene may become partly or wholly desert, playa or snow.
    """
    kind = kind or str(rng.choice(list(choices)))
    spec = SURFACES[kind]
    u = rng.uniform(0.0, 1.0)
    s = np.array([spec[b][0] + u * (spec[b][1] - spec[b][0]) if b in spec else float(np.mean(
        [v[0] + u * (v[1] - v[0]) for v in spec.values()])) for b in band_names], np.float32)
    s *= 1.0 + 0.04 * rng.standard_normal(len(band_names)).astype(np.float32)
    c = rng.uniform(0.05, 0.3)
    painted = s[:, None, None] * (1.0 + c * _texture(img))[None]
    if rng.random() < 0.4:
        w = np.ones(img.shape[1:], np.float32)
    else:
        f = fractal_field(img.shape[1:], rng, float(rng.uniform(16, 256)))
        w = np.clip((f - np.quantile(f, rng.uniform(0.2, 0.8))) * rng.uniform(1.0, 6.0), 0.0, 1.0)
    return (img * (1 - w[None]) + painted * w[None]).astype(np.float32)


def add_roofs(img: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Bright, sharp-edged rectangles (roofs, concrete, greenhouses) of 2-40 px, nearly flat spectra, some
    with a darker rim; a few to many per image, sometimes clustered like a town block."""
    out = img.copy()
    bands, rows, cols = img.shape
    n = int(rng.integers(3, cfg.max_roofs + 1))
    cy, cx = rng.uniform(0, rows), rng.uniform(0, cols)
    spread = rng.uniform(0.1, 0.6) * max(rows, cols)
    for _ in range(n):
        h, w = (int(v) for v in rng.integers(2, 41, size=2))
        r0 = int(np.clip(rng.normal(cy, spread), 0, rows - 1))
        c0 = int(np.clip(rng.normal(cx, spread), 0, cols - 1))
        level = rng.uniform(*ROOF_LEVEL)
        colour = level * (1.0 + 0.05 * rng.standard_normal(bands))
        out[:, r0 : r0 + h, c0 : c0 + w] = colour[:, None, None]
        if rng.random() < 0.3 and h > 4 and w > 4:
            out[:, r0 + 1 : r0 + h - 1, c0 + 1 : c0 + w - 1] = (colour * rng.uniform(0.8, 0.95))[:, None, None]
    if rng.random() < 0.5:  # slight sensor blur, so edges are not all perfectly sharp
        out = gaussian_blur(out, float(rng.uniform(0.3, 1.0))).astype(np.float32)
    return out


def flatten_spectrum(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mix every band with the per-pixel band mean by a factor 0.3-0.9 (a greyer scene, same brightness)."""
    a = float(rng.uniform(0.3, 0.9))
    return ((1 - a) * img + a * img.mean(axis=0, keepdims=True)).astype(np.float32)


def augment_clean(img: np.ndarray, band_names: Sequence[str], rng: np.random.Generator,
                  cfg: AugmentConfig = AugmentConfig(), top: float = 1.0) -> np.ndarray:
    """All clean-image augmentations, each with its own probability, clipped to [0, ``top``]."""
    x = img.astype(np.float32)
    if rng.random() < cfg.p_surface:
        x = paint_surface(x, band_names, rng, choices=cfg.surfaces)
    if rng.random() < cfg.p_flatten:
        x = flatten_spectrum(x, rng)
    if rng.random() < cfg.p_radiometry:
        x = vary_radiometry(x, rng, cfg)
    if rng.random() < cfg.p_roofs:
        x = add_roofs(x, rng, cfg)
    return np.clip(x, 0.0, top).astype(np.float32)
