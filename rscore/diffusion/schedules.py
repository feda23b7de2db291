"""Noise schedules in float64 numpy.

Never change a committed schedule: add a new named one. Trained bundles store the schedule *name* and its
parameters in their manifest; the runtime recomputes the same float64 arrays from them.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

RddmShape = Literal["average", "increased", "decreased"]
DdpmSchedule = Literal["linear", "cosine", "sqrt_linear"]


def _shape_weights(num_timesteps: int, shape: RddmShape) -> np.ndarray:
    """Per-step weights summing to 1 with the requested RDDM coefficient shape.

    Args:
        num_timesteps: T, number of training timesteps (>= 1).
        shape: "average" (constant), "increased" (grows linearly with t) or "decreased".

    Returns:
        float64 array of shape (T,), entry i is the weight of step t = i + 1.
    """
    if num_timesteps < 1:
        raise ValueError(f"num_timesteps must be >= 1, got {num_timesteps}")
    t = np.arange(1, num_timesteps + 1, dtype=np.float64)
    if shape == "average":
        w = np.ones_like(t)
    elif shape == "increased":
        w = t
    elif shape == "decreased":
        w = num_timesteps + 1 - t
    else:
        raise ValueError(f"unknown RDDM coefficient shape {shape!r}; use average, increased or decreased")
    return w / w.sum()


def rddm_coefficients(
    num_timesteps: int,
    alpha_shape: RddmShape,
    beta2_shape: RddmShape,
    beta_bar_T_sq: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative RDDM coefficients (METHODS.md section 1).

    Args:
        num_timesteps: T.
        alpha_shape: shape of the residual coefficients alpha_t.
        beta2_shape: shape of the noise variances beta_t^2.
        beta_bar_T_sq: total noise variance bbar_T^2 at t = T (restoration: about 0.01-1).

    Returns:
        (alpha_bar, beta_bar), float64 arrays of shape (T + 1,), index t, with alpha_bar[0] = beta_bar[0] = 0,
        alpha_bar[T] = 1 and beta_bar[T] = sqrt(beta_bar_T_sq).
    """
    if not beta_bar_T_sq > 0:
        raise ValueError(f"beta_bar_T_sq must be > 0, got {beta_bar_T_sq}")
    alpha = _shape_weights(num_timesteps, alpha_shape)
    beta2 = _shape_weights(num_timesteps, beta2_shape) * float(beta_bar_T_sq)
    alpha_bar = np.concatenate([[0.0], np.cumsum(alpha)])
    beta_bar = np.sqrt(np.concatenate([[0.0], np.cumsum(beta2)]))
    alpha_bar[-1] = 1.0  # exact by definition, remove cumsum rounding
    return alpha_bar, beta_bar


def ddpm_alpha_bar(num_timesteps: int, schedule: DdpmSchedule) -> np.ndarray:
    """Cumulative product abar_t of (1 - beta_t) for DDPM/DDIM (METHODS.md section 3).

    Args:
        num_timesteps: T.
        schedule: "linear" (beta 1e-4 -> 0.02, Ho et al. scaled to T=1000), "cosine" (Nichol & Dhariwal,
            offset s = 0.008, betas clipped at 0.999) or "sqrt_linear" (sqrt(beta) linear from sqrt(0.1) to
            sqrt(0.99): the short chains of latent super-resolution, T = 4 gives betas 0.100, 0.294, 0.591, 0.990).

    Returns:
        float64 array of shape (T + 1,), index t, alpha_bar[0] = 1.
    """
    if num_timesteps < 1:
        raise ValueError(f"num_timesteps must be >= 1, got {num_timesteps}")
    if schedule == "linear":
        scale = 1000.0 / num_timesteps
        betas = np.linspace(scale * 1e-4, scale * 0.02, num_timesteps, dtype=np.float64)
    elif schedule == "cosine":
        s = 0.008
        steps = np.arange(num_timesteps + 1, dtype=np.float64) / num_timesteps
        f = np.cos((steps + s) / (1 + s) * np.pi / 2) ** 2
        betas = np.clip(1.0 - f[1:] / f[:-1], 0.0, 0.999)
    elif schedule == "sqrt_linear":
        betas = np.linspace(math.sqrt(0.1), math.sqrt(0.99), num_timesteps, dtype=np.float64) ** 2
    else:
        raise ValueError(f"unknown DDPM schedule {schedule!r}; use linear, cosine or sqrt_linear")
    return np.concatenate([[1.0], np.cumprod(1.0 - betas)])
