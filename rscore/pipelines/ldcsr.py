"""``ldcsr``: continuous-scale super-resolution by latent diffusion (METHODS.md section 4, our own design).

The engine brings the input onto the output grid (bicubic, in global coordinates, any real scale factor), so
every network works on the output grid or on the latent grid (output / ``LatentSpec.factor``):

1. ``cond`` (once per tile): an encoder of the upsampled input -> the condition ``c`` on the latent grid;
2. ``denoiser`` (once per step): eps-prediction on the latent ``x_t`` given ``c``, ``t`` and ``scale``
   (a short DDPM chain, e.g. T = 4 with the ``sqrt_linear`` schedule);
3. ``decoder`` (once per sample): the latent result and the upsampled input -> the output, given ``scale``.

Without sampling (``one_pass``) the decoder reads ``c`` itself: the regression baseline.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from rscore.pipelines.base import DiffusionOptions, Pipeline, PipelineSpec, StageRole, TileContext


class LdcsrPipeline(Pipeline):
    """Condition encoder per tile, latent denoiser per step, decoder per sample."""

    SPEC = PipelineSpec(
        name="ldcsr", family="ddim", options=DiffusionOptions, terms="ddim", one_pass_stage="cond",
        stages=(StageRole("cond", "tile", (("c",),)),
                StageRole("denoiser", "step", (("eps",), ("x0",))),
                StageRole("decoder", "sample", (("x",),))),
        manifest_sections=("latent",),
        summary="latent diffusion super-resolution at any scale: condition encoder, latent denoiser, decoder",
    )

    def start(self, ctx: TileContext, tile: Mapping[str, Mapping[str, np.ndarray]]) -> np.ndarray:
        return np.zeros_like(tile["cond"]["c"])

    def one_pass_x0(self, ctx: TileContext, tile: Mapping[str, Mapping[str, np.ndarray]]) -> np.ndarray:
        return tile["cond"]["c"]
