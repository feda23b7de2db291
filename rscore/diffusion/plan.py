"""Sampling plans: a schedule reduced to per-step Python floats.

A plan is computed once, in float64 numpy, from a :class:`SamplerConfig` (which a bundle stores in its
manifest). Each reverse step from timestep ``t`` to ``s < t`` becomes

    x_s = coef_x * x_t + coef_res * r_hat + coef_eps * eps_hat + coef_x0 * x0_hat + coef_noise * z

with unused terms at 0. The coefficients are plain ``float`` so that numpy float32 arrays stay float32
(``np.float64(c) * float32_array`` would promote) and the same loop runs on torch tensors.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from rscore.diffusion.schedules import DdpmSchedule, RddmShape, ddpm_alpha_bar, rddm_coefficients

SamplerFamily = Literal["rddm", "ddim"]
#: largest number of training timesteps a manifest may declare (schedules are built in memory from it)
MAX_TIMESTEPS = 100_000


@dataclass(frozen=True)
class SamplerConfig:
    """Schedule and sampler settings, saved with every bundle.

    Attributes:
        family: "rddm" (residual diffusion, METHODS.md section 1) or "ddim" (DDPM noise prediction with a
            DDIM/DDPM reverse process, section 3).
        num_timesteps: T, number of training timesteps.
        default_steps: reverse steps used when the user does not choose (K <= T); 0 = by default the bundle
            runs only its one-pass ``coarse`` stage (chosen when the diffusion stage does not earn its cost;
            sampling still runs when steps are asked for).
        eta: stochasticity, 0 = deterministic (DDIM-like), 1 = DDPM-like posterior variance.
        alpha_shape: RDDM residual coefficient shape (rddm only).
        beta2_shape: RDDM noise variance shape (rddm only).
        beta_bar_T_sq: RDDM total noise variance bbar_T^2 (rddm only).
        ddpm_schedule: beta schedule name (ddim only).
        posterior_noise: False drops the noise term of every step (deterministic posterior-mean steps: with
            eta 1, each step moves to the mean of q(x_s | x_t, x0_hat)); only the start x_T is random.
    """

    family: SamplerFamily
    num_timesteps: int = 1000
    default_steps: int = 5
    eta: float = 0.0
    alpha_shape: RddmShape = "decreased"
    beta2_shape: RddmShape = "increased"
    beta_bar_T_sq: float = 0.01
    ddpm_schedule: DdpmSchedule = "linear"
    posterior_noise: bool = True

    def __post_init__(self) -> None:
        if self.family not in ("rddm", "ddim"):
            raise ValueError(f"unknown sampler family {self.family!r}; use rddm or ddim")
        if not (isinstance(self.num_timesteps, int) and 1 <= self.num_timesteps <= MAX_TIMESTEPS):
            raise ValueError(f"num_timesteps must be an integer in [1, {MAX_TIMESTEPS}], got {self.num_timesteps!r}")
        if not isinstance(self.default_steps, int) or not 0 <= self.default_steps <= self.num_timesteps:
            raise ValueError(f"default_steps must be in [0, {self.num_timesteps}] (0 = one pass), got "
                             f"{self.default_steps}")
        if not 0.0 <= self.eta <= 1.0:
            raise ValueError(f"eta must be in [0, 1], got {self.eta}")
        if not (math.isfinite(self.beta_bar_T_sq) and 0.0 < self.beta_bar_T_sq <= 100.0):
            raise ValueError(f"beta_bar_T_sq must be finite and in (0, 100], got {self.beta_bar_T_sq}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict. ``posterior_noise`` is written only when it is off, so that manifests of samplers
        without it stay readable by plugins older than the setting."""
        d = dataclasses.asdict(self)
        if d["posterior_noise"]:
            del d["posterior_noise"]
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SamplerConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error (a newer bundle schema)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown sampler settings {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)


@dataclass(frozen=True)
class StepCoefficients:
    """Scalars of one reverse step t -> s (all plain Python floats).

    Attributes:
        index: position of the step in the plan (0 = first, from t = T).
        t: current timestep (int, 1..T).
        s: next timestep (int, 0..t-1).
        t_model: the time value fed to the network, t / T in (0, 1].
        coef_x, coef_res, coef_eps, coef_x0, coef_noise: update coefficients (see module docstring).
        x0_from_x, x0_from_res, x0_from_eps: clean estimate x0_hat = a*x_t + b*r_hat + c*eps_hat.
        eps_from_x, eps_from_y, eps_from_res: RDDM noise from a residual-only prediction,
            eps = a*x_t + b*y + c*r_hat (0 for ddim).
    """

    index: int
    t: int
    s: int
    t_model: float
    coef_x: float
    coef_res: float
    coef_eps: float
    coef_x0: float
    coef_noise: float
    x0_from_x: float
    x0_from_res: float
    x0_from_eps: float
    eps_from_x: float = 0.0
    eps_from_y: float = 0.0
    eps_from_res: float = 0.0

    @property
    def stochastic(self) -> bool:
        """True if this step draws fresh noise."""
        return self.coef_noise != 0.0


@dataclass(frozen=True)
class SamplingPlan:
    """Everything the sampling loop needs, as Python floats.

    Attributes:
        config: the sampler settings this plan was made from.
        steps: reverse steps, from t = T down to 0.
        init_y: x_T = init_y * y + init_noise * z  (rddm: 1 and bbar_T; ddim: 0 and 1).
        init_noise: see ``init_y``.
    """

    config: SamplerConfig
    steps: tuple[StepCoefficients, ...]
    init_y: float
    init_noise: float
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def num_steps(self) -> int:
        """Number of network evaluations per sample."""
        return len(self.steps)


def timesteps(num_timesteps: int, num_steps: int) -> list[int]:
    """Evenly spaced timesteps T = tau_K > ... > tau_0 = 0 (K + 1 values).

    Raises:
        ValueError: if num_steps is not in [1, num_timesteps].
    """
    if not 1 <= num_steps <= num_timesteps:
        raise ValueError(f"steps must be between 1 and {num_timesteps}, got {num_steps}")
    taus = np.round(np.linspace(num_timesteps, 0, num_steps + 1)).astype(int).tolist()
    if len(set(taus)) != len(taus):  # cannot happen for K <= T, kept as a guard
        raise AssertionError(f"duplicate timesteps {taus}")
    return taus


def make_plan(config: SamplerConfig, num_steps: int | None = None) -> SamplingPlan:
    """Reduce a schedule to per-step scalars.

    Args:
        config: sampler settings (from a bundle manifest).
        num_steps: reverse steps K; None uses ``config.default_steps``.

    Returns:
        The sampling plan.
    """
    k = config.default_steps if num_steps is None else int(num_steps)
    if k < 1:
        raise ValueError("no sampling steps: this bundle's default is its one-pass stage; ask for a number of steps "
                         "to sample")
    taus = timesteps(config.num_timesteps, k)
    if config.family == "rddm":
        return _rddm_plan(config, taus)
    return _ddim_plan(config, taus)


def _rddm_plan(config: SamplerConfig, taus: list[int]) -> SamplingPlan:
    alpha_bar, beta_bar = rddm_coefficients(
        config.num_timesteps, config.alpha_shape, config.beta2_shape, config.beta_bar_T_sq
    )
    steps = []
    for i, (t, s) in enumerate(zip(taus[:-1], taus[1:])):
        # Notation (code -> paper, METHODS.md section 1): ab_t = abar_t, bb_t = bbar_t,
        # x_s = x_t - (abar_t - abar_s) r_hat - (bbar_t - sqrt(bbar_s^2 - sigma^2)) eps_hat + sigma z.
        ab_t, ab_s, bb_t, bb_s = alpha_bar[t], alpha_bar[s], beta_bar[t], beta_bar[s]
        sigma2 = config.eta * (bb_t**2 - bb_s**2) * bb_s**2 / bb_t**2
        sigma = float(np.sqrt(sigma2))
        steps.append(
            StepCoefficients(
                index=i,
                t=int(t),
                s=int(s),
                t_model=float(t / config.num_timesteps),
                coef_x=1.0,
                coef_res=float(-(ab_t - ab_s)),
                coef_eps=float(-(bb_t - np.sqrt(bb_s**2 - sigma2))),
                coef_x0=0.0,
                coef_noise=sigma if config.posterior_noise else 0.0,
                x0_from_x=1.0,
                x0_from_res=float(-ab_t),
                x0_from_eps=float(-bb_t),
                # x_t - y = (abar_t - 1) r + bbar_t eps  =>  eps = (x_t - y - (abar_t - 1) r) / bbar_t
                eps_from_x=float(1.0 / bb_t),
                eps_from_y=float(-1.0 / bb_t),
                eps_from_res=float(-(ab_t - 1.0) / bb_t),
            )
        )
    return SamplingPlan(config=config, steps=tuple(steps), init_y=1.0, init_noise=float(beta_bar[-1]))


def _ddim_plan(config: SamplerConfig, taus: list[int]) -> SamplingPlan:
    alpha_bar = ddpm_alpha_bar(config.num_timesteps, config.ddpm_schedule)
    steps = []
    for i, (t, s) in enumerate(zip(taus[:-1], taus[1:])):
        # Notation (code -> paper, DDIM eq. 12): a_t = abar_t, x0 = (x_t - sqrt(1-a_t) eps) / sqrt(a_t),
        # x_s = sqrt(a_s) x0 + sqrt(1 - a_s - sigma^2) eps' + sigma z with eps' re-derived from x0, so that a
        # fused x0 (cloud removal) is honoured: eps' = (x_t - sqrt(a_t) x0) / sqrt(1 - a_t).
        a_t, a_s = alpha_bar[t], alpha_bar[s]
        sigma = config.eta * np.sqrt((1 - a_s) / (1 - a_t)) * np.sqrt(1 - a_t / a_s)
        dir_coef = np.sqrt(max(1 - a_s - sigma**2, 0.0)) / np.sqrt(1 - a_t)
        steps.append(
            StepCoefficients(
                index=i,
                t=int(t),
                s=int(s),
                t_model=float(t / config.num_timesteps),
                coef_x=float(dir_coef),
                coef_res=0.0,
                coef_eps=0.0,
                coef_x0=float(np.sqrt(a_s) - dir_coef * np.sqrt(a_t)),
                coef_noise=float(sigma) if config.posterior_noise else 0.0,
                x0_from_x=float(1.0 / np.sqrt(a_t)),
                x0_from_res=0.0,
                x0_from_eps=float(-np.sqrt(1 - a_t) / np.sqrt(a_t)),
            )
        )
    return SamplingPlan(config=config, steps=tuple(steps), init_y=0.0, init_noise=1.0)
