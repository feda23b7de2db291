"""``latent_prior``: enhancement of codec-decoded rasters by a diffusion-generated prior (LDM-RSIC, our design).

Same phases as :mod:`rscore.pipelines.ldcsr`, on the output grid (scale 1):

1. ``cond`` (once per tile): an encoder of the decoded image -> the condition ``c`` on the latent grid;
2. ``denoiser`` (once per step): the x0 estimate of the prior map z from ``x_t``, ``c`` and ``t`` (a 4-step DDPM
   chain, betas 0.1 -> 0.99, with deterministic posterior-mean steps: ``SamplerConfig.posterior_noise`` False);
3. ``decoder`` (once per sample): the enhancement network, reading the decoded image and the prior ``x0``.

Without sampling (``one_pass``) the decoder reads ``c`` as the prior.
"""

from __future__ import annotations

from rscore.pipelines.base import DiffusionOptions, PipelineSpec, StageRole
from rscore.pipelines.ldcsr import LdcsrPipeline


class LatentPriorPipeline(LdcsrPipeline):
    """Condition encoder per tile, prior denoiser per step, enhancement network per sample."""

    SPEC = PipelineSpec(
        name="latent_prior", family="ddim", options=DiffusionOptions, terms="ddim", one_pass_stage="cond",
        stages=(StageRole("cond", "tile", (("c",),)),
                StageRole("denoiser", "step", (("x0",), ("eps",))),
                StageRole("decoder", "sample", (("x",),))),
        manifest_sections=("latent",),
        summary="enhancement steered by a prior map that a latent diffusion generates from the input alone",
    )
