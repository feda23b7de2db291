"""Diffusion schedules, sampling plans and the sampling loop (numpy only, no torch).

Schedule math lives here once, in float64 numpy, and is reduced to per-step Python floats (a
:class:`~rscore.diffusion.plan.SamplingPlan`). The loop in :mod:`rscore.diffusion.loop` is plain
arithmetic on those floats, so it runs unchanged on numpy arrays (plugin) and torch tensors (training).
"""

from rscore.diffusion.loop import sample
from rscore.diffusion.noise import gaussian_field
from rscore.diffusion.plan import SamplerConfig, SamplingPlan, StepCoefficients, make_plan
from rscore.diffusion.schedules import ddpm_alpha_bar, rddm_coefficients

__all__ = [
    "SamplerConfig",
    "SamplingPlan",
    "StepCoefficients",
    "ddpm_alpha_bar",
    "gaussian_field",
    "make_plan",
    "rddm_coefficients",
    "sample",
]
