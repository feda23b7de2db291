"""``ddim``: DDPM noise prediction with the DDIM/DDPM reverse process (METHODS.md section 3), from pure noise."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from rscore.pipelines.base import DiffusionOptions, Pipeline, PipelineSpec, StageRole, TileContext


class DdimPipeline(Pipeline):
    """Sampling from pure noise; the denoiser returns ``eps`` or ``x0`` (an optional coarse stage is fed to it)."""

    SPEC = PipelineSpec(
        name="ddim", family="ddim", options=DiffusionOptions, terms="ddim", one_pass_stage="coarse",
        stages=(StageRole("coarse", "tile", (("x",),), required=False),
                StageRole("denoiser", "step", (("eps",), ("x0",)))),
        summary="denoising diffusion (DDIM) from pure noise, conditioned on the input",
    )

    def start(self, ctx: TileContext, tile: Mapping[str, Mapping[str, np.ndarray]]) -> np.ndarray:
        return np.zeros((self.manifest.output.count,) + ctx.y.shape[1:], dtype=np.float32)
