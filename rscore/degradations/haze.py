"""Haze by the atmospheric scattering model with a wavelength-dependent, spatially varying depth.

Model (Koschmieder / dark-channel literature, per band b and pixel x)::

    I_b(x) = J_b(x) t_b(x) + A_b (1 - t_b(x))
    t_b(x) = exp(-tau_b d(x)),   tau_b = tau_550 (lambda_b / 550 nm)^(-alpha)      (Angstrom law)
    A_b    = airlight_550 (lambda_b / 550 nm)^(-airlight_tilt)                      (bright, bluish)

``d(x) >= 0`` is a smooth relative optical-depth field with mean ~1 (fractal noise plus a linear
gradient), so ``tau_550`` is the scene-mean optical depth at 550 nm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from rscore.degradations.fields import check_image, fractal_field

HazeLevel = Literal["thin", "moderate", "thick"]

#: Scene-mean optical depth at 550 nm (``tau_550``) per haze level, [low, high).
HAZE_LEVEL_TAU_550: dict[HazeLevel, tuple[float, float]] = {
    "thin": (0.05, 0.3),
    "moderate": (0.3, 0.8),
    "thick": (0.8, 2.0),
}


def haze_level_of(tau_550: float) -> HazeLevel:
    """Level whose ``HAZE_LEVEL_TAU_550`` range holds ``tau_550`` (values >= 2.0 count as thick)."""
    for level, (low, high) in HAZE_LEVEL_TAU_550.items():
        if low <= tau_550 < high:
            return level
    if tau_550 >= HAZE_LEVEL_TAU_550["thick"][1]:
        return "thick"
    raise ValueError(f"tau_550={tau_550} is below the thin range {HAZE_LEVEL_TAU_550['thin']}")


@dataclass(frozen=True)
class HazeParams:
    """Parameters of one haze realisation.

    Attributes:
        tau_550: Scene-mean optical depth at 550 nm, unitless, 0.05–2.0 (see ``HAZE_LEVEL_TAU_550``).
        angstrom_alpha: Ångström exponent, unitless, 0.0–2.5 (0 = grey fog, ~1.3 continental
            aerosol, 2+ fine smoke).
        airlight_550: Airlight reflectance at 550 nm, reflectance units, 0.25–0.9.
        airlight_tilt: Exponent of the airlight's wavelength dependence, 0–0.6 (> 0 = bluish).
        depth_contrast: Standard deviation of the relative depth field around 1, 0–0.6.
        depth_scale_px: Size of the largest haze structures, pixels (> 0).
        gradient: Peak-to-peak amplitude of a linear depth ramp across the image, 0–1.
        gradient_angle_rad: Direction of the ramp, radians, 0–2π.
    """

    tau_550: float
    angstrom_alpha: float = 1.3
    airlight_550: float = 0.6
    airlight_tilt: float = 0.3
    depth_contrast: float = 0.3
    depth_scale_px: float = 256.0
    gradient: float = 0.0
    gradient_angle_rad: float = 0.0

    @property
    def level(self) -> HazeLevel:
        """Haze level of ``tau_550``."""
        return haze_level_of(self.tau_550)


@dataclass(frozen=True, eq=False)
class HazeResult:
    """Output of ``apply_haze``.

    Attributes:
        image: float32 (bands, rows, cols), hazy image.
        transmission: float32 (bands, rows, cols), t in (0, 1].
        depth: float32 (rows, cols), relative optical depth d(x).
        airlight: float32 (bands,), airlight reflectance per band.
    """

    image: np.ndarray
    transmission: np.ndarray
    depth: np.ndarray
    airlight: np.ndarray


def sample_haze_params(rng: np.random.Generator, level: HazeLevel | None = None) -> HazeParams:
    """Draw haze parameters; ``level=None`` draws the level uniformly first."""
    if level is None:
        level = ("thin", "moderate", "thick")[int(rng.integers(3))]
    low, high = HAZE_LEVEL_TAU_550[level]
    return HazeParams(
        tau_550=float(rng.uniform(low, high)),
        angstrom_alpha=float(rng.uniform(0.0, 2.5)),
        airlight_550=float(rng.uniform(0.25, 0.9)),
        airlight_tilt=float(rng.uniform(0.0, 0.6)),
        depth_contrast=float(rng.uniform(0.0, 0.6)),
        depth_scale_px=float(np.exp(rng.uniform(np.log(32.0), np.log(1024.0)))),
        gradient=float(rng.uniform(0.0, 1.0)) if rng.random() < 0.5 else 0.0,
        gradient_angle_rad=float(rng.uniform(0.0, 2 * np.pi)),
    )


def depth_field(shape: tuple[int, int], params: HazeParams, rng: np.random.Generator) -> np.ndarray:
    """Relative optical depth d(x) >= 0 with mean close to 1: fractal noise plus a linear ramp."""
    rows, cols = shape
    d = 1.0 + params.depth_contrast * fractal_field(shape, rng, params.depth_scale_px)
    if params.gradient > 0:
        y, x = np.mgrid[0:rows, 0:cols]
        u = np.cos(params.gradient_angle_rad) * x / max(cols - 1, 1) + np.sin(params.gradient_angle_rad) * y / max(
            rows - 1, 1
        )
        u = (u - u.min()) / max(float(np.ptp(u)), 1e-12) - 0.5
        d = d + params.gradient * u
    # Clipping at a small positive floor keeps t <= 1 without changing the mean noticeably.
    return np.clip(d, 0.05, None)


def airlight_per_band(params: HazeParams, wavelengths_nm: Sequence[float]) -> np.ndarray:
    """Airlight reflectance per band, capped at 1."""
    lam = np.asarray(wavelengths_nm, dtype=np.float64)
    return np.minimum(params.airlight_550 * (lam / 550.0) ** (-params.airlight_tilt), 1.0)


def apply_haze(
    image: np.ndarray,
    params: HazeParams,
    wavelengths_nm: Sequence[float],
    depth: np.ndarray,
) -> HazeResult:
    """Apply the scattering model with a given depth field (deterministic).

    Args:
        image: float32 (bands, rows, cols), reflectance 0–1 or display [0, 1].
        params: Haze parameters.
        wavelengths_nm: Band centres, nm, one per band.
        depth: Relative optical depth (rows, cols), >= 0.

    Returns:
        The hazy image, transmission, depth and airlight.
    """
    check_image(image, wavelengths_nm)
    if depth.shape != image.shape[1:]:
        raise ValueError(f"depth shape {depth.shape} != image rows/cols {image.shape[1:]}")
    lam = np.asarray(wavelengths_nm, dtype=np.float64)
    tau = params.tau_550 * (lam / 550.0) ** (-params.angstrom_alpha)
    t = np.exp(-tau[:, None, None] * depth[None].astype(np.float64))
    a = airlight_per_band(params, wavelengths_nm)
    hazy = image.astype(np.float64) * t + a[:, None, None] * (1.0 - t)
    return HazeResult(
        image=hazy.astype(np.float32),
        transmission=t.astype(np.float32),
        depth=depth.astype(np.float32),
        airlight=a.astype(np.float32),
    )


def add_haze(
    image: np.ndarray,
    wavelengths_nm: Sequence[float],
    rng: np.random.Generator,
    params: HazeParams | None = None,
    level: HazeLevel | None = None,
) -> tuple[HazeResult, HazeParams]:
    """Sample (unless given) parameters and a depth field, then apply haze.

    Args:
        image: float32 (bands, rows, cols).
        wavelengths_nm: Band centres, nm.
        rng: Source of all randomness.
        params: Fixed parameters; ``None`` samples them with ``sample_haze_params(rng, level)``.
        level: Haze level used when sampling.

    Returns:
        The result and the parameters used.
    """
    if params is None:
        params = sample_haze_params(rng, level)
    depth = depth_field(image.shape[1:], params, rng)
    return apply_haze(image, params, wavelengths_nm, depth), params

