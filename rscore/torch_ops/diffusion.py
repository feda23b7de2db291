"""The numpy sampling plan and loop, driven with torch tensors; forward-process tables for training.

Training and evaluation use exactly the plan and loop the plugin uses (:func:`rscore.diffusion.loop.sample`):
only the arrays differ. Schedules stay float64 numpy and become float32 tensors here, never buffers of a
network's ``state_dict``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from rscore.diffusion.loop import sample
from rscore.diffusion.noise import gaussian_field
from rscore.diffusion.plan import SamplerConfig, SamplingPlan, StepCoefficients
from rscore.diffusion.schedules import ddpm_alpha_bar, rddm_coefficients
from rscore.diffusion.terms import TermContext, outputs_to_terms


@dataclass(frozen=True)
class ForwardTables:
    """Per-timestep scalars of the forward process as float32 tensors indexed by t in 0..T.

    rddm: x_t = x0 + a[t] * r + b[t] * eps.   ddim: x_t = a[t] * x0 + b[t] * eps.
    """

    a: torch.Tensor
    b: torch.Tensor
    family: str
    num_timesteps: int

    @classmethod
    def from_config(cls, cfg: SamplerConfig) -> ForwardTables:
        if cfg.family == "rddm":
            ab, bb = rddm_coefficients(cfg.num_timesteps, cfg.alpha_shape, cfg.beta2_shape, cfg.beta_bar_T_sq)
            a, b = ab, bb
        else:
            abar = ddpm_alpha_bar(cfg.num_timesteps, cfg.ddpm_schedule)
            a, b = np.sqrt(abar), np.sqrt(1.0 - abar)
        return cls(torch.from_numpy(a.astype(np.float32)), torch.from_numpy(b.astype(np.float32)), cfg.family,
                   cfg.num_timesteps)

    def q_sample(self, x0: torch.Tensor, y: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Noisy state x_t for a batch: t is an integer tensor (batch,), 1..T."""
        a = self.a.to(x0.device)[t].view(-1, 1, 1, 1)
        b = self.b.to(x0.device)[t].view(-1, 1, 1, 1)
        if self.family == "rddm":
            return x0 + a * (y - x0) + b * eps
        return a * x0 + b * eps

    def t_model(self, t: torch.Tensor) -> torch.Tensor:
        """The network's time input for integer timesteps (t / T, float32), as in the sampling plan."""
        return t.to(torch.float32) / self.num_timesteps


def global_noise(seed: int, bands: int, rows: int, cols: int, row_off: int = 0, col_off: int = 0,
                 sample_index: int = 0) -> Callable[[int], torch.Tensor]:
    """Torch view of the runtime's per-global-pixel noise, for exact train/plugin agreement."""
    base = sample_index * (1 << 20)

    def draw(stream: int) -> torch.Tensor:
        return torch.from_numpy(gaussian_field(seed, base + stream, bands, row_off, col_off, rows, cols))

    return draw


def seeded_noise(plan: SamplingPlan, shape: tuple[int, ...], seed: int) -> Callable[[int], torch.Tensor]:
    """Noise for every stream a plan draws (-1 = start, then one per step), from one seeded torch
    generator in stream order: validation samples that repeat exactly across runs."""
    g = torch.Generator().manual_seed(seed)
    fixed = {k: torch.randn(shape, generator=g) for k in range(-1, plan.num_steps)}
    return fixed.__getitem__


def sample_torch(plan: SamplingPlan, start: torch.Tensor,
                 outputs: Callable[[torch.Tensor, torch.Tensor], Mapping[str, torch.Tensor]],
                 noise: Callable[[int], torch.Tensor], rule: str,
                 ctx: TermContext[torch.Tensor] | None = None) -> torch.Tensor:
    """Run the shared sampling loop with torch tensors, turning network outputs into loop terms with the shared
    rule (:func:`rscore.diffusion.terms.outputs_to_terms`), as the plugin's pipelines do.

    Args:
        plan: the sampling plan.
        start: the loop's start image y (RDDM: the degraded or coarse image; DDIM/DE: zeros), (bands, rows, cols)
            or batched (n, bands, rows, cols), model units.
        outputs: (x_t, t_model (1,)) -> the denoiser's outputs (``res``/``eps``/``x0``/``weight``).
        noise: stream -> standard normal tensor shaped like ``start``.
        rule: the pipeline's terms rule ("rddm", "ddim", "de").
        ctx: what the rule needs besides the outputs (default: the start image, for "rddm").
    """
    tctx = ctx if ctx is not None else TermContext(start=start)

    def predict(x: torch.Tensor, step: StepCoefficients) -> dict[str, torch.Tensor]:
        t = torch.tensor([step.t_model], dtype=torch.float32)
        return outputs_to_terms(rule, x, step, outputs(x, t), tctx)

    with torch.no_grad():
        return sample(plan, start, predict, noise)
