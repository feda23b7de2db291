"""Diffusion Enhancement fusion (METHODS.md section 3), written once for numpy arrays and torch tensors.

Notation (code -> paper): ``eps`` = eps_hat(x_t, t, y) of the CNP; ``x0_eps`` = (x_t - sqrt(1 - abar_t)
eps) / sqrt(abar_t); ``ref`` = x0_E; ``weight`` = W of the WA network; ``weight_floor`` = eta.
The fused clean estimate ``x0_t = (1 - W) x0_eps + W x0_E`` replaces x0 in the DDIM update
(:func:`rscore.diffusion.plan._ddim_plan` re-derives the noise direction from it).
"""

from __future__ import annotations

from typing import Any, TypeVar

A = TypeVar("A")  # numpy.ndarray or torch.Tensor, all arguments of one call alike


def x0_from_eps(x_t: A, eps: A, x0_from_x: float, x0_from_eps_coef: float, lo: Any, hi: Any) -> A:
    """Clean estimate from predicted noise, clipped to the valid range [lo, hi] (model units, broadcast per
    band). Without the clip, x0 at large t is the noise amplified by 1 / sqrt(abar_t) (~150 at t = T)."""
    return (x_t * x0_from_x + eps * x0_from_eps_coef).clip(lo, hi)  # type: ignore[attr-defined]


def fuse_x0(x0_eps: A, ref: A, weight: A | float, weight_floor: float) -> A:
    """``(1 - W) x0_eps + W ref`` with W clamped to [weight_floor, 1].

    ``weight`` may be a number (fixed fusion: 0 = pure diffusion, 0.5 = the paper's fixed-weight ablation);
    a number is used as given, not clamped.
    """
    if not 0.0 <= weight_floor <= 1.0:
        raise ValueError(f"weight floor (eta) must be in [0, 1], got {weight_floor}")
    if isinstance(weight, (int, float)):
        w: Any = float(weight)
    else:
        w = weight.clip(weight_floor, 1.0)  # type: ignore[union-attr]
    return x0_eps + (ref - x0_eps) * w
