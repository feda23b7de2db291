"""Smooth random fields, separable Gaussian blur and sub-pixel shifts (numpy only)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def check_image(image: np.ndarray, wavelengths_nm: Sequence[float] | None = None) -> None:
    """Fail unless ``image`` is (bands, rows, cols) and has one wavelength per band."""
    if image.ndim != 3:
        raise ValueError(f"image must be (bands, rows, cols), got shape {image.shape}")
    if wavelengths_nm is not None and len(wavelengths_nm) != image.shape[0]:
        raise ValueError(f"{len(wavelengths_nm)} wavelengths given for {image.shape[0]} bands")


def gaussian_kernel(sigma_px: float) -> np.ndarray:
    """Normalised 1-D Gaussian kernel with radius ceil(3 sigma); sigma <= 0 gives the identity."""
    if sigma_px <= 0:
        return np.ones(1)
    radius = int(np.ceil(3.0 * sigma_px))
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma_px) ** 2)
    return k / k.sum()


def gaussian_blur(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """Separable Gaussian blur over the last two axes, edges replicated.

    Args:
        image: Array (..., rows, cols).
        sigma_px: Standard deviation, pixels (>= 0).

    Returns:
        float64 array of the same shape.
    """
    k = gaussian_kernel(sigma_px)
    r = len(k) // 2
    out = np.asarray(image, dtype=np.float64)
    if r == 0:
        return out.copy()
    for axis in (-2, -1):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (r, r)
        padded = np.pad(out, pad, mode="edge")
        n = out.shape[axis]
        acc = np.zeros_like(out)
        for i, w in enumerate(k):
            acc += w * np.take(padded, np.arange(i, i + n), axis=axis)
        out = acc
    return out


def fractal_field(
    shape: tuple[int, int],
    rng: np.random.Generator,
    scale_px: float,
    beta: float = 3.0,
) -> np.ndarray:
    """Smooth fractal (power-law spectrum) noise, normalised to zero mean and unit standard deviation.

    Spectral synthesis: white Gaussian noise filtered by ``(f^2 + f0^2)^(-beta/2)`` with
    ``f0 = 1 / scale_px``. Computed on a grid padded by half its size and cropped, so the FFT's
    periodic wrap does not show at the image edges.

    Args:
        shape: (rows, cols).
        rng: Source of randomness.
        scale_px: Size of the largest structures, pixels (> 0).
        beta: Spectral exponent, 1.5–4 (higher = smoother; ~3 looks like haze/cloud fields).

    Returns:
        float64 array (rows, cols).
    """
    if scale_px <= 0:
        raise ValueError(f"scale_px must be > 0, got {scale_px}")
    rows, cols = shape
    pr, pc = rows + rows // 2 + 1, cols + cols // 2 + 1
    fy = np.fft.fftfreq(pr)[:, None]
    fx = np.fft.rfftfreq(pc)[None, :]
    f0 = 1.0 / scale_px
    amplitude = (fy**2 + fx**2 + f0**2) ** (-beta / 2.0)
    amplitude[0, 0] = 0.0
    noise = rng.standard_normal((pr, pc))
    field = np.fft.irfft2(np.fft.rfft2(noise) * amplitude, s=(pr, pc))[:rows, :cols]
    std = field.std()
    return (field - field.mean()) / (std if std > 0 else 1.0)


def shift_image(image: np.ndarray, dy_px: float, dx_px: float) -> np.ndarray:
    """Translate by (dy, dx) pixels with bilinear interpolation; edges are replicated.

    ``out[r, c] = image[r - dy, c - dx]`` — content moves down/right for positive shifts.

    Args:
        image: Array (..., rows, cols).
        dy_px: Shift along rows, pixels (any real value).
        dx_px: Shift along columns, pixels.

    Returns:
        float64 array of the same shape.
    """
    img = np.asarray(image, dtype=np.float64)
    rows, cols = img.shape[-2:]
    y = np.clip(np.arange(rows) - dy_px, 0, rows - 1)
    x = np.clip(np.arange(cols) - dx_px, 0, cols - 1)
    y0 = np.floor(y).astype(int)
    x0 = np.floor(x).astype(int)
    y1 = np.minimum(y0 + 1, rows - 1)
    x1 = np.minimum(x0 + 1, cols - 1)
    fy = (y - y0)[:, None]
    fx = (x - x0)[None, :]
    a = img[..., y0, :]
    b = img[..., y1, :]
    top = a[..., x0] * (1 - fx) + a[..., x1] * fx
    bottom = b[..., x0] * (1 - fx) + b[..., x1] * fx
    return top * (1 - fy) + bottom * fy
