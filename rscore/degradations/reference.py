"""A reference image "from another date" for reference-based super-resolution.

From the target (HR) image, in order:

1. seasonal change: vegetation greening (``greening > 0``) or browning (< 0), weighted per pixel by an
   NDVI-like vegetation weight and modulated by a smooth random field, moving NIR most and
   visible bands in the opposite direction (chlorophyll absorbs red/blue);
2. radiometric change: per-band gain and offset (atmosphere, sun angle, calibration);
3. optional change of fine detail (``texture_corr < 1``): the detail (the image less its Gaussian blur of
   :data:`DETAIL_SIGMA_PX`) becomes ``rho * detail + sqrt(1 - rho^2) * detail displaced by a few pixels``, the same
   kind of texture in another realisation. Two real Sentinel-2 dates of one forest four months apart correlate
   at about 0.45 in that detail, adjacent months at about 0.92; steps 1-2 alone leave it at 0.9-1;
4. misregistration: a global sub-pixel to few-pixel shift (bilinear, edges replicated);
5. optional Gaussian noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from rscore.degradations.fields import check_image, fractal_field, gaussian_blur, shift_image

#: Gaussian blur (pixels) whose residual is the fine detail that ``texture_corr`` changes
DETAIL_SIGMA_PX = 1.5
#: whole-pixel range (each axis, either sign) of the displacement of the detail's other realisation
TEXTURE_OFFSET_PX = (3, 9)

#: Relative response of each spectral region to greening, per unit of (weight × greening).
_GREENING_RESPONSE = ((0.0, 520.0, -0.3), (520.0, 600.0, 0.15), (600.0, 700.0, -0.5), (700.0, 1400.0, 0.6))


@dataclass(frozen=True)
class ReferenceParams:
    """Parameters of one other-date reference.

    Attributes:
        gains: Per-band multiplicative change, unitless, 0.8–1.2 each.
        offsets: Per-band additive change, image units (reflectance), -0.03–0.03 each.
        greening: Seasonal change amplitude, -0.5–0.5 (positive = greener), relative change of a
            fully vegetated pixel's NIR at unit field value.
        season_scale_px: Size of the seasonal-change patches, pixels (> 0).
        shift_px: (rows, cols) misregistration, pixels, each -3–3 (sub-pixel allowed).
        noise_sigma: Additive Gaussian noise, image units, 0–0.01.
        texture_corr: Correlation of the reference's fine detail with the target's, (0, 1]; 1 leaves it.
        texture_offset_px: (rows, cols) whole-pixel displacement of the detail's other realisation (wrapped).
    """

    gains: tuple[float, ...]
    offsets: tuple[float, ...]
    greening: float = 0.0
    season_scale_px: float = 128.0
    shift_px: tuple[float, float] = (0.0, 0.0)
    noise_sigma: float = 0.0
    texture_corr: float = 1.0
    texture_offset_px: tuple[int, int] = (5, 5)

    def __post_init__(self) -> None:
        if not 0.0 < self.texture_corr <= 1.0:
            raise ValueError(f"texture_corr must be in (0, 1], got {self.texture_corr}")


@dataclass(frozen=True, eq=False)
class ReferenceResult:
    """Output of ``make_reference``.

    Attributes:
        image: float32 (bands, rows, cols), the other-date reference.
        vegetation_weight: float32 (rows, cols), 0–1 NDVI-like weight used for the seasonal change.
        season_field: float32 (rows, cols), smooth field multiplying the greening, mean ~1.
    """

    image: np.ndarray
    vegetation_weight: np.ndarray
    season_field: np.ndarray


def vegetation_weight(image: np.ndarray, wavelengths_nm: Sequence[float]) -> np.ndarray:
    """NDVI-like weight in [0, 1].

    With a red (600–700 nm) and a NIR (700–1000 nm) band: ``clip(NDVI, 0, 1)``. Without NIR (RGB):
    ``clip(2 (ExG) / (R + G + B), 0, 1)`` with the excess-green index ``ExG = 2G - R - B``.
    """
    lam = np.asarray(wavelengths_nm, dtype=np.float64)
    img = image.astype(np.float64)

    def band(lo: float, hi: float) -> int | None:
        idx = [i for i, w in enumerate(lam) if lo <= w < hi]
        return idx[0] if idx else None

    red, nir, green, blue = band(600, 700), band(700, 1000), band(520, 600), band(400, 520)
    if red is not None and nir is not None:
        ndvi = (img[nir] - img[red]) / np.maximum(img[nir] + img[red], 1e-6)
        return np.clip(ndvi, 0.0, 1.0)
    if red is not None and green is not None and blue is not None:
        total = np.maximum(img[red] + img[green] + img[blue], 1e-6)
        return np.clip(2.0 * (2 * img[green] - img[red] - img[blue]) / total, 0.0, 1.0)
    raise ValueError(f"need red+nir or red+green+blue bands for a vegetation weight, got {list(lam)} nm")


def _response(lam_nm: float) -> float:
    for lo, hi, r in _GREENING_RESPONSE:
        if lo <= lam_nm < hi:
            return r
    return 0.0


def make_reference(
    image: np.ndarray,
    params: ReferenceParams,
    wavelengths_nm: Sequence[float],
    rng: np.random.Generator,
) -> ReferenceResult:
    """Build the other-date reference.

    Args:
        image: float32 (bands, rows, cols) target image.
        params: Reference parameters (``gains``/``offsets`` one per band).
        wavelengths_nm: Band centres, nm.
        rng: Source of the season field and the noise.

    Returns:
        Reference image and the intermediate weight and field.
    """
    check_image(image, wavelengths_nm)
    n = image.shape[0]
    if len(params.gains) != n or len(params.offsets) != n:
        raise ValueError(f"gains/offsets need {n} values, got {len(params.gains)}/{len(params.offsets)}")
    weight = vegetation_weight(image, wavelengths_nm)
    season = 1.0 + 0.5 * fractal_field(image.shape[1:], rng, params.season_scale_px)
    response = np.array([_response(w) for w in wavelengths_nm])
    change = 1.0 + params.greening * response[:, None, None] * (weight * season)[None]
    out = image.astype(np.float64) * np.clip(change, 0.2, None)
    out = out * np.asarray(params.gains)[:, None, None] + np.asarray(params.offsets)[:, None, None]
    if params.texture_corr < 1.0:
        low = gaussian_blur(out, DETAIL_SIGMA_PX)
        detail = out - low
        other = np.roll(detail, tuple(int(v) for v in params.texture_offset_px), axis=(-2, -1))
        rho = params.texture_corr
        out = low + rho * detail + np.sqrt(1.0 - rho * rho) * other
    out = shift_image(out, params.shift_px[0], params.shift_px[1])
    if params.noise_sigma > 0:
        out = out + rng.normal(0.0, params.noise_sigma, size=out.shape)
    return ReferenceResult(out.astype(np.float32), weight.astype(np.float32), season.astype(np.float32))


def sample_reference_params(rng: np.random.Generator, bands: int, noise_max: float = 0.01,
                            texture_corr_min: float = 1.0) -> ReferenceParams:
    """Draw gains 0.8–1.2, offsets ±0.03, greening ±0.5, shift ±3 px, noise 0–``noise_max`` (image units; the
    default 0.01 reflectance is a noisy reference; a high-resolution reference worth copying from is cleaner) and,
    when ``texture_corr_min`` < 1, a detail correlation uniform in [texture_corr_min, 1] with the other
    realisation 3–9 px away on each axis (drawn after the rest: the other draws are those of the default)."""
    params = ReferenceParams(
        gains=tuple(float(g) for g in rng.uniform(0.8, 1.2, size=bands)),
        offsets=tuple(float(o) for o in rng.uniform(-0.03, 0.03, size=bands)),
        greening=float(rng.uniform(-0.5, 0.5)),
        season_scale_px=float(np.exp(rng.uniform(np.log(32.0), np.log(512.0)))),
        shift_px=(float(rng.uniform(-3, 3)), float(rng.uniform(-3, 3))),
        noise_sigma=float(rng.uniform(0.0, noise_max)),
    )
    if texture_corr_min >= 1.0:
        return params
    if not 0.0 < texture_corr_min:
        raise ValueError(f"texture_corr_min must be in (0, 1], got {texture_corr_min}")
    offset = rng.integers(TEXTURE_OFFSET_PX[0], TEXTURE_OFFSET_PX[1] + 1, size=2) * rng.choice([-1, 1], size=2)
    return replace(params, texture_corr=float(rng.uniform(texture_corr_min, 1.0)),
                   texture_offset_px=(int(offset[0]), int(offset[1])))


def change_patches(reference: np.ndarray, donor: np.ndarray, fraction: float, scale_px: float,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Changes between the dates: blobs covering about ``fraction`` of the reference (a smooth random field
    thresholded at that quantile, blob size ~``scale_px`` pixels) replaced by ``donor`` (another place, same
    shape and units): new buildings, cleared forest, a harvested field.

    Returns:
        (changed reference float32 (bands, rows, cols), changed mask bool (rows, cols)).
    """
    if donor.shape != reference.shape:
        raise ValueError(f"donor shape {donor.shape} differs from the reference's {reference.shape}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    field = fractal_field(reference.shape[1:], rng, scale_px)
    changed = field > np.quantile(field, 1.0 - fraction) if fraction > 0 else np.zeros(field.shape, bool)
    return np.where(changed[None], donor, reference).astype(np.float32), changed
