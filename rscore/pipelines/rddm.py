"""``rddm``: residual diffusion (METHODS.md section 1), optionally after a one-pass coarse stage (DS-RDMPD)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from rscore.pipelines.base import DiffusionOptions, Pipeline, PipelineSpec, StageRole, TileContext


class RddmPipeline(Pipeline):
    """The loop starts from the coarse output when there is a coarse stage, else from the input. The denoiser
    returns ``res`` and/or ``eps``; with ``res`` alone, eps follows from x_t, the start and r_hat."""

    SPEC = PipelineSpec(
        name="rddm", family="rddm", options=DiffusionOptions, terms="rddm", one_pass_stage="coarse",
        stages=(StageRole("coarse", "tile", (("x",),), required=False),
                StageRole("denoiser", "step", (("res",),))),
        summary="residual diffusion from the degraded (or coarsely restored) image",
    )

    def start(self, ctx: TileContext, tile: Mapping[str, Mapping[str, np.ndarray]]) -> np.ndarray:
        return tile["coarse"]["x"] if "coarse" in tile else ctx.y
