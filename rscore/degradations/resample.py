"""Sensor-like down-sampling by any real factor: Gaussian PSF, area resampling, noise.

The low-resolution (LR) grid has the high-resolution (HR) grid's origin and pixel size × factor, with
``round(rows / factor)`` × ``round(cols / factor)`` pixels. LR pixel ``i`` covers HR coordinates
``[i f, (i + 1) f)``; its value is the area-weighted mean of the (PSF-blurred) HR pixels it
overlaps, renormalised where it extends past the HR image edge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rscore.degradations.fields import check_image, gaussian_blur

MIN_FACTOR = 1.0
MAX_FACTOR = 8.0


@dataclass(frozen=True)
class DownsampleParams:
    """Parameters of one down-sampling.

    Attributes:
        factor: HR pixels per LR pixel along each axis, real, 1–8.
        psf_sigma_lr_px: Gaussian PSF standard deviation in LR pixels, 0.3–0.7 (sensor MTF at Nyquist
            roughly 0.1–0.4); applied on the HR grid as ``psf_sigma_lr_px * factor`` HR pixels.
        noise_sigma: Standard deviation of additive Gaussian noise, image units (reflectance), 0–0.02.
        photons_per_unit: Shot-noise scale: signal x gives Poisson(x * photons_per_unit) /
            photons_per_unit, 200–20000; ``None`` disables shot noise.
    """

    factor: float
    psf_sigma_lr_px: float = 0.5
    noise_sigma: float = 0.0
    photons_per_unit: float | None = None

    def __post_init__(self) -> None:
        if not MIN_FACTOR <= self.factor <= MAX_FACTOR:
            raise ValueError(f"factor must be in [{MIN_FACTOR}, {MAX_FACTOR}], got {self.factor}")
        if self.psf_sigma_lr_px < 0 or self.noise_sigma < 0:
            raise ValueError("psf_sigma_lr_px and noise_sigma must be >= 0")
        if self.photons_per_unit is not None and self.photons_per_unit <= 0:
            raise ValueError(f"photons_per_unit must be > 0 or None, got {self.photons_per_unit}")


def lr_shape(rows: int, cols: int, factor: float) -> tuple[int, int]:
    """LR (rows, cols) = (round(rows / factor), round(cols / factor)), at least 1 each."""
    return max(1, int(round(rows / factor))), max(1, int(round(cols / factor)))


def downsampled_geotransform(
    geotransform: Sequence[float], rows: int, cols: int, factor: float
) -> tuple[tuple[float, float, float, float, float, float], tuple[int, int]]:
    """Geotransform and shape of the LR grid: same origin, pixel size (and rotation terms) × factor.

    Args:
        geotransform: HR GDAL geotransform (6 values).
        rows: HR rows.
        cols: HR columns.
        factor: Down-sampling factor, 1–8.

    Returns:
        (LR geotransform, (LR rows, LR cols)).
    """
    if len(geotransform) != 6:
        raise ValueError(f"a GDAL geotransform has 6 values, got {len(geotransform)}")
    x0, a, b, y0, d, e = (float(v) for v in geotransform)
    f = float(factor)
    return (x0, a * f, b * f, y0, d * f, e * f), lr_shape(rows, cols, factor)


def area_weights(n_hr: int, n_lr: int, factor: float) -> np.ndarray:
    """(n_lr, n_hr) matrix of overlap lengths between LR cells ``[i f, (i+1) f)`` and HR pixels, rows summing to 1."""
    lo = np.arange(n_lr, dtype=np.float64)[:, None] * factor
    hi = lo + factor
    px = np.arange(n_hr, dtype=np.float64)[None, :]
    w = np.clip(np.minimum(hi, px + 1) - np.maximum(lo, px), 0.0, None)
    sums = w.sum(axis=1, keepdims=True)
    if np.any(sums <= 0):
        raise ValueError(f"LR grid of {n_lr} cells at factor {factor} does not overlap {n_hr} HR pixels")
    return w / sums


def area_resample(image: np.ndarray, factor: float) -> np.ndarray:
    """Area-average (bands, rows, cols) onto the LR grid of ``factor`` (no blur, no noise)."""
    check_image(image)
    rows, cols = image.shape[1:]
    lr_rows, lr_cols = lr_shape(rows, cols, factor)
    wr = area_weights(rows, lr_rows, factor)
    wc = area_weights(cols, lr_cols, factor)
    return np.einsum("ir,brc,jc->bij", wr, image.astype(np.float64), wc, optimize=True)


def downsample(image: np.ndarray, params: DownsampleParams, rng: np.random.Generator) -> np.ndarray:
    """Blur with the PSF, area-resample, then add noise.

    Args:
        image: float32 (bands, rows, cols) HR image.
        params: Down-sampling parameters.
        rng: Source of the noise.

    Returns:
        float32 (bands, round(rows / factor), round(cols / factor)) LR image (not clipped).
    """
    check_image(image)
    blurred = gaussian_blur(image, params.psf_sigma_lr_px * params.factor)
    lr = area_resample(blurred, params.factor)
    if params.photons_per_unit is not None:
        lam = np.clip(lr, 0.0, None) * params.photons_per_unit
        lr = lr + (rng.poisson(lam) - lam) / params.photons_per_unit
    if params.noise_sigma > 0:
        lr = lr + rng.normal(0.0, params.noise_sigma, size=lr.shape)
    return lr.astype(np.float32)


#: realistic sensor noise for :func:`sample_downsample_params`: Gaussian up to 0.003 of full scale (Sentinel-2's
#: noise is about 0.001-0.003 reflectance at typical radiance) and shot noise on 30 % of the draws with at least
#: 2000 photons per unit. The defaults of the function (0.02) are a stress far above real sensors.
SENSOR_NOISE: dict[str, float] = {"noise_max": 0.003, "shot_fraction": 0.3, "min_photons_per_unit": 2000.0}


#: PSF standard deviation range of the down-sampling, LR pixels: a blurred sensor (MTF at Nyquist about 0.1-0.4)
SENSOR_PSF_LR_PX: tuple[float, float] = (0.3, 0.7)


def sample_downsample_params(
    rng: np.random.Generator, factor: float | None = None, factor_range: tuple[float, float] = (1.0, 8.0),
    noise_max: float = 0.02, shot_fraction: float = 0.5, min_photons_per_unit: float = 200.0,
    psf_range_lr_px: tuple[float, float] = SENSOR_PSF_LR_PX,
) -> DownsampleParams:
    """Draw a factor (log-uniform in ``factor_range`` unless given), PSF width (uniform in ``psf_range_lr_px``, LR
    pixels; 0 is a plain area average) and noise levels: Gaussian noise uniform in [0, ``noise_max``], and shot
    noise for ``shot_fraction`` of the draws with a photon scale log-uniform in [``min_photons_per_unit``, 20000].
    The defaults are strong noise (the shipped SR bundles learnt to denoise from them); the draws are the same
    whatever the values, so a seed gives the same pairs."""
    lo, hi = (float(v) for v in psf_range_lr_px)
    if not 0.0 <= lo <= hi:
        raise ValueError(f"psf_range_lr_px must be (low, high) with 0 <= low <= high, got {psf_range_lr_px}")
    if factor is None:
        factor = float(np.exp(rng.uniform(np.log(factor_range[0]), np.log(factor_range[1]))))
    return DownsampleParams(
        factor=float(factor),
        psf_sigma_lr_px=float(rng.uniform(lo, hi)),
        noise_sigma=float(rng.uniform(0.0, noise_max)),
        photons_per_unit=(float(np.exp(rng.uniform(np.log(min_photons_per_unit), np.log(20000.0))))
                          if rng.random() < shot_fraction else None),
    )
