"""Pixel-fidelity metrics for multiband rasters: PSNR, SSIM, SAM and ERGAS.

numpy only (no scipy, no torch) so that the QGIS runtime can use them. Every function takes a
reference and an estimate of identical shape ``(bands, rows, cols)`` (any real dtype; computed in
float64) and an optional ``valid_mask`` (bool, shape ``(rows, cols)``, ``True`` = pixel is valid)
that removes nodata pixels from the statistics. Inputs are never clipped or rescaled: values outside
``[0, data_range]`` are used as they are.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = ["SSIM_K1", "SSIM_K2", "SSIM_SIGMA", "SSIM_WIN_SIZE", "ergas", "gaussian_kernel_1d", "psnr", "sam_deg", "ssim"]

SSIM_SIGMA = 1.5
"""Standard deviation of the SSIM Gaussian window, pixels (Wang et al. 2004)."""
SSIM_WIN_SIZE = 11
"""SSIM window side, pixels: ``2 * int(3.5 * sigma + 0.5) + 1`` as in scikit-image (truncate=3.5)."""
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _as_pair(ref: npt.ArrayLike, est: npt.ArrayLike, name: str) -> tuple[np.ndarray, np.ndarray]:
    ref_a = np.asarray(ref, dtype=np.float64)
    est_a = np.asarray(est, dtype=np.float64)
    if ref_a.ndim != 3:
        raise ValueError(f"{name}: expected arrays of shape (bands, rows, cols), got ref.shape={ref_a.shape}")
    if ref_a.shape != est_a.shape:
        raise ValueError(f"{name}: ref.shape={ref_a.shape} and est.shape={est_a.shape} differ; resample first")
    if not (np.isfinite(ref_a).all() and np.isfinite(est_a).all()):
        raise ValueError(f"{name}: inputs contain NaN/inf; pass a valid_mask and fill nodata with a finite value")
    return ref_a, est_a


def _check_mask(valid_mask: npt.ArrayLike | None, shape: tuple[int, ...], name: str) -> np.ndarray:
    """Return a bool (rows, cols) mask, all True when ``valid_mask`` is None."""
    rows_cols = tuple(shape[1:])
    if valid_mask is None:
        return np.ones(rows_cols, dtype=bool)
    mask = np.asarray(valid_mask)
    if mask.dtype != np.bool_:
        raise ValueError(f"{name}: valid_mask must be a bool array, got dtype {mask.dtype}")
    if mask.shape != rows_cols:
        raise ValueError(f"{name}: valid_mask.shape={mask.shape} must equal (rows, cols)={rows_cols}")
    if not mask.any():
        raise ValueError(f"{name}: valid_mask has no valid pixel")
    return mask


def _check_range(data_range: float, name: str) -> float:
    value = float(data_range)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name}: data_range must be a positive finite number (e.g. 1.0 for reflectance), got {data_range}")
    return value


def psnr(
    ref: npt.ArrayLike, est: npt.ArrayLike, data_range: float, valid_mask: npt.ArrayLike | None = None
) -> float:
    """Peak signal-to-noise ratio over all bands and valid pixels.

    ``PSNR = 10 * log10(data_range**2 / MSE)`` with the MSE pooled over every band and valid pixel.

    Args:
        ref: Reference, shape (bands, rows, cols), values nominally in ``[0, data_range]``.
        est: Estimate, same shape and units as ``ref``.
        data_range: Peak-to-peak range of the data (e.g. 1.0 for reflectance 0–1, 10000 for
            Sentinel-2 L2A digital numbers, 255 for 8-bit).
        valid_mask: Optional bool (rows, cols); ``False`` pixels are ignored.

    Returns:
        PSNR in dB; ``inf`` when the images are identical on the valid pixels.

    Raises:
        ValueError: On shape mismatch, non-finite input, bad mask or non-positive ``data_range``.
    """
    ref_a, est_a = _as_pair(ref, est, "psnr")
    peak = _check_range(data_range, "psnr")
    mask = _check_mask(valid_mask, ref_a.shape, "psnr")
    mse = float(np.mean((ref_a[:, mask] - est_a[:, mask]) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(peak * peak / mse)


def gaussian_kernel_1d(sigma: float = SSIM_SIGMA, size: int = SSIM_WIN_SIZE) -> np.ndarray:
    """Normalised 1-D Gaussian taps ``exp(-x**2 / (2 sigma**2))``, x = -(size//2) .. size//2.

    Args:
        sigma: Standard deviation, pixels.
        size: Odd number of taps.

    Returns:
        float64 array of shape (size,), summing to 1.
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f"gaussian_kernel_1d: size must be odd and positive, got {size}")
    x = np.arange(size, dtype=np.float64) - size // 2
    taps = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return taps / taps.sum()


def _filter_valid(img: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation of the last two axes with ``taps`` (no padding)."""
    k = taps.size
    rows, cols = img.shape[-2:]
    out_r, out_c = rows - k + 1, cols - k + 1
    tmp = np.zeros(img.shape[:-2] + (out_r, cols), dtype=np.float64)
    for i, w in enumerate(taps):
        tmp += w * img[..., i : i + out_r, :]
    out = np.zeros(img.shape[:-2] + (out_r, out_c), dtype=np.float64)
    for j, w in enumerate(taps):
        out += w * tmp[..., :, j : j + out_c]
    return out


def ssim(
    ref: npt.ArrayLike, est: npt.ArrayLike, data_range: float, valid_mask: npt.ArrayLike | None = None
) -> float:
    """Mean structural similarity with an 11×11 Gaussian window (sigma 1.5), averaged over bands.

    Wang et al. (2004) with ``K1 = 0.01``, ``K2 = 0.03``, ``C1 = (K1 L)^2``, ``C2 = (K2 L)^2``,
    population (not sample) covariances. Only windows lying entirely inside the image are used
    (equivalent to scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False)``, which crops the 5-pixel border). With ``valid_mask`` a window
    counts only if all its pixels are valid, so nodata fill values never leak into the statistics.

    Args:
        ref: Reference, shape (bands, rows, cols), rows and cols >= 11.
        est: Estimate, same shape and units as ``ref``.
        data_range: Peak-to-peak range of the data (``L`` above), same units as the images.
        valid_mask: Optional bool (rows, cols); ``False`` pixels are ignored.

    Returns:
        SSIM, dimensionless, at most 1 (1 = identical).

    Raises:
        ValueError: If the image is smaller than the window, or no window is fully valid.
    """
    ref_a, est_a = _as_pair(ref, est, "ssim")
    peak = _check_range(data_range, "ssim")
    mask = _check_mask(valid_mask, ref_a.shape, "ssim")
    if min(ref_a.shape[1:]) < SSIM_WIN_SIZE:
        raise ValueError(f"ssim: rows and cols must be >= {SSIM_WIN_SIZE} px, got shape {ref_a.shape}")
    taps = gaussian_kernel_1d(SSIM_SIGMA, SSIM_WIN_SIZE)
    c1 = (SSIM_K1 * peak) ** 2
    c2 = (SSIM_K2 * peak) ** 2
    mu_x = _filter_valid(ref_a, taps)
    mu_y = _filter_valid(est_a, taps)
    var_x = _filter_valid(ref_a * ref_a, taps) - mu_x * mu_x
    var_y = _filter_valid(est_a * est_a, taps) - mu_y * mu_y
    cov = _filter_valid(ref_a * est_a, taps) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    # A window is usable when every pixel under it is valid: box-sum of invalid pixels must be 0.
    box = np.ones(SSIM_WIN_SIZE, dtype=np.float64)
    window_ok = _filter_valid((~mask).astype(np.float64)[None], box)[0] < 0.5
    if not window_ok.any():
        raise ValueError(f"ssim: no {SSIM_WIN_SIZE}x{SSIM_WIN_SIZE} window is fully valid; enlarge the valid area")
    return float(np.mean(ssim_map[:, window_ok]))


def sam_deg(ref: npt.ArrayLike, est: npt.ArrayLike, valid_mask: npt.ArrayLike | None = None) -> float:
    """Spectral angle mapper: mean angle between per-pixel spectra, degrees.

    The angle uses the numerically stable form ``2 * atan2(|u - v|, |u + v|)`` with ``u, v`` the unit
    spectra, so identical spectra give exactly 0. Pixels where either spectrum is the zero vector
    have no defined angle and are excluded from the mean (in addition to ``valid_mask``).

    Args:
        ref: Reference, shape (bands, rows, cols), bands >= 2.
        est: Estimate, same shape as ``ref``.
        valid_mask: Optional bool (rows, cols); ``False`` pixels are ignored.

    Returns:
        Mean spectral angle in degrees, in ``[0, 180]``.

    Raises:
        ValueError: If fewer than 2 bands, or no valid pixel with non-zero spectra remains.
    """
    ref_a, est_a = _as_pair(ref, est, "sam_deg")
    mask = _check_mask(valid_mask, ref_a.shape, "sam_deg")
    if ref_a.shape[0] < 2:
        raise ValueError(f"sam_deg: needs at least 2 bands, got {ref_a.shape[0]}")
    x = ref_a[:, mask]
    y = est_a[:, mask]
    nx = np.sqrt(np.sum(x * x, axis=0))
    ny = np.sqrt(np.sum(y * y, axis=0))
    keep = (nx > 0) & (ny > 0)
    if not keep.any():
        raise ValueError("sam_deg: every valid pixel has a zero spectrum in ref or est; the angle is undefined")
    u = x[:, keep] / nx[keep]
    v = y[:, keep] / ny[keep]
    angle = 2.0 * np.arctan2(np.sqrt(np.sum((u - v) ** 2, axis=0)), np.sqrt(np.sum((u + v) ** 2, axis=0)))
    return float(np.degrees(np.mean(angle)))


def ergas(
    ref: npt.ArrayLike, est: npt.ArrayLike, scale_factor: float, valid_mask: npt.ArrayLike | None = None
) -> float:
    """ERGAS (relative dimensionless global error in synthesis, Wald 2002).

    ``ERGAS = 100 / scale_factor * sqrt(mean_b (RMSE_b / mu_b)**2)``, where ``RMSE_b`` is the
    band's root-mean-square error and ``mu_b`` the band mean of the reference, both over valid
    pixels. ``100 / scale_factor`` is Wald's ``100 h / l``.

    Args:
        ref: Reference, shape (bands, rows, cols), band means must be non-zero.
        est: Estimate, same shape and units as ``ref``.
        scale_factor: Ratio of low- to high-resolution pixel size, ``l / h`` (e.g. 4 for
            4× super-resolution, 1 for same-resolution restoration such as cloud removal).
        valid_mask: Optional bool (rows, cols); ``False`` pixels are ignored.

    Returns:
        ERGAS, dimensionless (percent-like), 0 for identical images; lower is better.

    Raises:
        ValueError: If ``scale_factor`` is not positive or a reference band mean is 0.
    """
    ref_a, est_a = _as_pair(ref, est, "ergas")
    mask = _check_mask(valid_mask, ref_a.shape, "ergas")
    ratio = float(scale_factor)
    if not (math.isfinite(ratio) and ratio > 0):
        raise ValueError(f"ergas: scale_factor must be a positive finite number (l/h, e.g. 4), got {scale_factor}")
    x = ref_a[:, mask]
    y = est_a[:, mask]
    mean_ref = x.mean(axis=1)
    if np.any(mean_ref == 0):
        bad = np.flatnonzero(mean_ref == 0).tolist()
        raise ValueError(f"ergas: reference band(s) {bad} have mean 0 on the valid pixels; ERGAS is undefined")
    mse = np.mean((x - y) ** 2, axis=1)
    return float(100.0 / ratio * math.sqrt(float(np.mean(mse / mean_ref**2))))
