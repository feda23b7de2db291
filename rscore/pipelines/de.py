"""``de``: Diffusion Enhancement (METHODS.md section 3): DDIM from pure noise whose clean estimate at every
step is ``(1 - W) x0_eps + W x0_E``; x0_E from the one-pass ``coarse`` stage (the reference model), eps and W
from the ``denoiser`` stage (CNP + WA)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rscore.diffusion.plan import SamplingPlan
from rscore.diffusion.terms import TermContext
from rscore.pipelines.base import DiffusionOptions, Pipeline, PipelineSpec, Stage, StageRole, TileContext

if TYPE_CHECKING:
    from rscore.bundle.manifest import Manifest


@dataclass(frozen=True)
class DeOptions(DiffusionOptions):
    """Options of Diffusion Enhancement bundles.

    Attributes:
        weight_floor: eta: the reference weight W is clamped to [eta, 1] (None: the bundle's default).
        fixed_weight: a constant W instead of the weight network (evaluation ablations: 0 = pure diffusion,
            0.5 = fixed fusion), used as given.
    """

    weight_floor: float | None = None
    fixed_weight: float | None = None

    def __post_init__(self) -> None:
        if self.weight_floor is not None and not 0.0 <= self.weight_floor <= 1.0:
            raise ValueError(f"ETA (weight floor) must be between 0 and 1, got {self.weight_floor}")
        if self.fixed_weight is not None and not 0.0 <= self.fixed_weight <= 1.0:
            raise ValueError(f"fixed fusion weight must be between 0 and 1, got {self.fixed_weight}")


class DePipeline(Pipeline):
    """The reference model runs once per tile; CNP + WA once per step."""

    SPEC = PipelineSpec(
        name="de", family="ddim", options=DeOptions, terms="de", one_pass_stage="coarse", manifest_sections=("fusion",),
        stages=(StageRole("coarse", "tile", (("x",),)),
                StageRole("denoiser", "step", (("eps", "weight"),))),
        summary="Diffusion Enhancement: DDIM fused at every step with a one-pass reference model",
    )

    def __init__(self, manifest: Manifest, stages: Mapping[str, Stage], plan: SamplingPlan | None,
                 options: DeOptions | None = None) -> None:
        super().__init__(manifest, stages, plan, options)
        fusion = manifest.fusion
        if fusion is None:
            raise ValueError(f"model {manifest.name!r} is not a Diffusion Enhancement bundle (no fusion settings)")
        opts = self.options
        assert isinstance(opts, DeOptions)
        self.weight_floor = fusion.weight_floor if opts.weight_floor is None else float(opts.weight_floor)
        self.fixed_weight = opts.fixed_weight
        mean = np.asarray(manifest.output.mean, np.float32)[:, None, None]
        std = np.asarray(manifest.output.std, np.float32)[:, None, None]
        self._lo = ((fusion.x0_min - mean) / std).astype(np.float32)
        self._hi = ((fusion.x0_max - mean) / std).astype(np.float32)

    def start(self, ctx: TileContext, tile: Mapping[str, Mapping[str, np.ndarray]]) -> np.ndarray:
        return np.zeros_like(tile["coarse"]["x"])

    def term_context(self, ctx: TileContext, tile: Mapping[str, Mapping[str, np.ndarray]],
                     start: np.ndarray) -> TermContext[np.ndarray]:
        return TermContext(ref=tile["coarse"]["x"], lo=self._lo, hi=self._hi, weight_floor=self.weight_floor,
                           fixed_weight=self.fixed_weight)
