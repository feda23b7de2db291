"""Thin (semi-transparent) and thick (opaque-core) clouds with optional cloud shadows.

Per band b and pixel x, with the soft cloud mask m(x) in [0, 1] (opacity at 550 nm)::

    m_b(x) = 1 - (1 - m(x))^((lambda_b / 550 nm)^(-beta))     # opacity per band
    S(x)   = 1 - shadow_strength * s(x)                          # shadow darkening
    I_b(x) = J_b(x) S(x) (1 - m_b(x)) + C_b m_b(x)

``m = 1 - exp(-tau_cloud)`` so ``(1 - m)^k`` scales the cloud optical depth by ``k``: with
``beta > 0`` a thin cloud is optically thinner at NIR than in the visible (NIR less attenuated),
while opaque cores (m = 1) cover every band. ``C_b`` is bright and nearly spectrally flat.
The shadow mask ``s`` is the cloud mask shifted by the sun-geometry offset, removed under the cloud.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from rscore.degradations.fields import check_image, fractal_field, gaussian_blur, shift_image

CloudType = Literal["thin", "thick"]


@dataclass(frozen=True)
class CloudParams:
    """Parameters of one cloud realisation.

    Attributes:
        cloud_type: ``"thin"`` (semi-transparent everywhere) or ``"thick"`` (opaque cores, soft edges).
        coverage: Fraction of pixels with any cloud, 0.05–0.9.
        max_opacity: Peak opacity at 550 nm, 0–1 (thin: 0.2–0.8; thick: 1.0).
        edge_softness: Width of the thick-cloud transition from clear to opaque, in units of the
            field's standard deviation, 0.1–2.0.
        feature_scale_px: Size of the largest cloud structures, pixels (> 0).
        roughness_beta: Spectral exponent of the cloud field, 2.0–3.5 (lower = more ragged).
        cloud_reflectance: Cloud reflectance at 550 nm, reflectance units, 0.5–0.95.
        spectral_slope: Relative change of cloud reflectance per 1000 nm, -0.1–0.05 (nearly flat).
        nir_beta: Exponent of the opacity's wavelength dependence, 0–1 (> 0 = NIR less attenuated).
        shadow_strength: Fraction of light removed in full shadow, 0–0.8 (0 = no shadow).
        shadow_offset_px: (rows, cols) offset of the shadow from the cloud, pixels.
    """

    cloud_type: CloudType
    coverage: float = 0.3
    max_opacity: float = 0.6
    edge_softness: float = 0.5
    feature_scale_px: float = 128.0
    roughness_beta: float = 2.8
    cloud_reflectance: float = 0.8
    spectral_slope: float = 0.0
    nir_beta: float = 0.5
    shadow_strength: float = 0.0
    shadow_offset_px: tuple[float, float] = (0.0, 0.0)


@dataclass(frozen=True, eq=False)
class CloudResult:
    """Output of ``apply_clouds``.

    Attributes:
        image: float32 (bands, rows, cols), cloudy image.
        mask: float32 (rows, cols), cloud opacity at 550 nm, 0–1.
        band_opacity: float32 (bands, rows, cols), opacity per band.
        shadow_mask: float32 (rows, cols), shadow weight 0–1 (zeros when no shadow).
        cloud_radiance: float32 (bands,), cloud reflectance per band.
    """

    image: np.ndarray
    mask: np.ndarray
    band_opacity: np.ndarray
    shadow_mask: np.ndarray
    cloud_radiance: np.ndarray


def sample_cloud_params(rng: np.random.Generator, cloud_type: CloudType | None = None) -> CloudParams:
    """Draw cloud parameters; ``cloud_type=None`` picks thin or thick with equal odds."""
    if cloud_type is None:
        cloud_type = "thin" if rng.random() < 0.5 else "thick"
    thick = cloud_type == "thick"
    with_shadow = thick and rng.random() < 0.7
    angle = rng.uniform(0, 2 * np.pi)
    distance = rng.uniform(5.0, 60.0)
    return CloudParams(
        cloud_type=cloud_type,
        coverage=float(rng.uniform(0.05, 0.9)),
        max_opacity=1.0 if thick else float(rng.uniform(0.2, 0.8)),
        edge_softness=float(rng.uniform(0.1, 2.0)),
        feature_scale_px=float(np.exp(rng.uniform(np.log(24.0), np.log(512.0)))),
        roughness_beta=float(rng.uniform(2.0, 3.5)),
        cloud_reflectance=float(rng.uniform(0.5, 0.95)),
        spectral_slope=float(rng.uniform(-0.1, 0.05)),
        nir_beta=float(rng.uniform(0.2, 1.0)) if not thick else float(rng.uniform(0.0, 0.5)),
        shadow_strength=float(rng.uniform(0.3, 0.8)) if with_shadow else 0.0,
        shadow_offset_px=(float(distance * np.sin(angle)), float(distance * np.cos(angle))),
    )


def cloud_mask(shape: tuple[int, int], params: CloudParams, rng: np.random.Generator) -> np.ndarray:
    """Soft cloud mask (rows, cols) in [0, 1] with about ``coverage`` of pixels non-zero."""
    f = fractal_field(shape, rng, params.feature_scale_px, beta=params.roughness_beta)
    threshold = float(np.quantile(f, 1.0 - params.coverage))
    excess = np.clip(f - threshold, 0.0, None)
    if params.cloud_type == "thick":
        m = np.clip(excess / params.edge_softness, 0.0, 1.0)
    else:
        peak = max(float(excess.max()), 1e-12)
        m = params.max_opacity * (excess / peak) ** 0.6
    return m.astype(np.float64)


def apply_clouds(
    image: np.ndarray,
    params: CloudParams,
    wavelengths_nm: Sequence[float],
    mask: np.ndarray,
) -> CloudResult:
    """Composite clouds (and their shadow) over an image given a cloud mask (deterministic).

    Args:
        image: float32 (bands, rows, cols).
        params: Cloud parameters.
        wavelengths_nm: Band centres, nm.
        mask: Cloud opacity at 550 nm (rows, cols), 0–1.

    Returns:
        Cloudy image, masks and the cloud radiance per band.
    """
    check_image(image, wavelengths_nm)
    if mask.shape != image.shape[1:]:
        raise ValueError(f"mask shape {mask.shape} != image rows/cols {image.shape[1:]}")
    lam = np.asarray(wavelengths_nm, dtype=np.float64)
    m = np.clip(mask.astype(np.float64), 0.0, 1.0)
    k = (lam / 550.0) ** (-params.nir_beta)
    band_opacity = 1.0 - (1.0 - m[None]) ** k[:, None, None]
    radiance = np.clip(params.cloud_reflectance * (1.0 + params.spectral_slope * (lam - 550.0) / 1000.0), 0, 1)
    shadow = np.zeros_like(m)
    if params.shadow_strength > 0:
        dy, dx = params.shadow_offset_px
        # Shadows are blurred copies of the cloud (penumbra), hidden where the cloud itself is.
        shadow = np.clip(gaussian_blur(shift_image(m, dy, dx), 2.0), 0, 1) * (1.0 - m)
    ground = image.astype(np.float64) * (1.0 - params.shadow_strength * shadow)[None]
    out = ground * (1.0 - band_opacity) + radiance[:, None, None] * band_opacity
    return CloudResult(
        image=out.astype(np.float32),
        mask=m.astype(np.float32),
        band_opacity=band_opacity.astype(np.float32),
        shadow_mask=shadow.astype(np.float32),
        cloud_radiance=radiance.astype(np.float32),
    )


def add_clouds(
    image: np.ndarray,
    wavelengths_nm: Sequence[float],
    rng: np.random.Generator,
    params: CloudParams | None = None,
    cloud_type: CloudType | None = None,
) -> tuple[CloudResult, CloudParams]:
    """Sample (unless given) parameters and a mask, then composite clouds.

    Args:
        image: float32 (bands, rows, cols).
        wavelengths_nm: Band centres, nm.
        rng: Source of all randomness.
        params: Fixed parameters; ``None`` samples them.
        cloud_type: Cloud type used when sampling.

    Returns:
        The result and the parameters used.
    """
    if params is None:
        params = sample_cloud_params(rng, cloud_type)
    mask = cloud_mask(image.shape[1:], params, rng)
    return apply_clouds(image, params, wavelengths_nm, mask), params
