"""How a bundle's stage networks are chained on one tile (explicit registry, no folder scanning).

A pipeline turns the degraded tile ``y`` (model units, (bands, rows, cols), float32) into the restored
tile, calling the sampling loop of :mod:`rscore.diffusion.loop` for diffusion bundles. Networks take and
return a batch of one: (1, bands, rows, cols); the time input ``t`` is a float32 array of shape (1,).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from rscore.bundle.manifest import Manifest
from rscore.diffusion.fusion import fuse_x0, x0_from_eps
from rscore.diffusion.loop import Cancelled, sample
from rscore.diffusion.noise import gaussian_field
from rscore.diffusion.plan import SamplingPlan, StepCoefficients
from rscore.runtime.predictor import OnnxStage

#: streams reserved per sample, so that the noise of sample k never repeats another's
_STREAMS_PER_SAMPLE = 1 << 20


@dataclass
class TileContext:
    """One tile as a pipeline sees it.

    Attributes:
        y: degraded input in model units, float32 (bands, rows, cols), padded.
        aux: co-registered auxiliary input in model units (same grid as ``y``) or None.
        row_off, col_off: global output-grid position of ``y[:, 0, 0]`` (negative inside edge padding).
        seed: user seed.
        sample_index: which of several samples this is (0-based).
        should_stop: cancellation check, called before every network evaluation.
        on_eval: progress callback, called after every network evaluation of the sampling loop.
    """

    y: np.ndarray
    aux: np.ndarray | None
    row_off: int
    col_off: int
    seed: int
    sample_index: int = 0
    should_stop: Callable[[], bool] | None = None
    on_eval: Callable[[], None] | None = None

    def noise(self, bands: int) -> Callable[[int], np.ndarray]:
        """Per-global-pixel standard normal noise by stream (see :func:`gaussian_field`)."""
        _, rows, cols = self.y.shape
        base = self.sample_index * _STREAMS_PER_SAMPLE

        def draw(stream: int) -> np.ndarray:
            return gaussian_field(self.seed, base + stream, bands, self.row_off, self.col_off, rows, cols)

        return draw


def _batch(a: np.ndarray) -> np.ndarray:
    return a[None]


class Pipeline:
    """Base class: ``evals_per_sample`` network calls reported to progress, ``run`` per tile."""

    def __init__(self, manifest: Manifest, stages: Mapping[str, OnnxStage], plan: SamplingPlan | None) -> None:
        self.manifest = manifest
        self.stages = stages
        self.plan = plan

    @property
    def evals_per_sample(self) -> int:
        raise NotImplementedError

    def evals_per_tile(self, samples: int) -> int:
        """Network evaluations for one tile and ``samples`` samples (progress accounting)."""
        return self.evals_per_sample * samples

    def run(self, ctx: TileContext) -> dict[str, np.ndarray]:
        """Returns {"image": (out_bands, rows, cols) model units, <extra output>: (n, rows, cols)}."""
        raise NotImplementedError

    def _feeds(self, stage: str, ctx: TileContext, **arrays: np.ndarray) -> dict[str, np.ndarray]:
        spec = self.manifest.stages[stage]
        avail = {"y": ctx.y, **({"aux": ctx.aux} if ctx.aux is not None else {}), **arrays}
        missing = [n for n in spec.inputs if n not in avail]
        if missing:
            raise ValueError(f"stage {stage!r} needs input(s) {missing} that this request does not provide")
        return {n: avail[n] if n == "t" else _batch(avail[n]) for n in spec.inputs}

    def _extras(self, outs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: outs[k][0] for k in self.manifest.extra_outputs if k in outs}


class DirectPipeline(Pipeline):
    """One network, y -> x (end-to-end restoration; also identity bundles used by tests)."""

    @property
    def evals_per_sample(self) -> int:
        return 1

    def run(self, ctx: TileContext) -> dict[str, np.ndarray]:
        if ctx.should_stop is not None and ctx.should_stop():
            raise Cancelled("cancelled")
        outs = self.stages["net"](self._feeds("net", ctx))
        if ctx.on_eval is not None:
            ctx.on_eval()
        return {"image": outs["x"][0], **self._extras(outs)}


class _DiffusionPipeline(Pipeline):
    """Shared by the diffusion pipelines: the optional one-pass ``coarse`` stage and the sampling loop.

    The coarse stage is deterministic: it runs once per tile, and further samples of the same tile reuse it.
    """

    #: (tile input array, its outputs): samples of one tile share the input array object, so the coarse stage
    #: runs once per tile; a new tile (a new array) always recomputes
    _last_coarse: tuple[np.ndarray, dict[str, np.ndarray]] | None = None

    @property
    def evals_per_sample(self) -> int:
        assert self.plan is not None
        return self.plan.num_steps + (1 if "coarse" in self.stages else 0)

    def evals_per_tile(self, samples: int) -> int:
        coarse = 1 if "coarse" in self.stages else 0
        return coarse + (self.evals_per_sample - coarse) * samples

    def _coarse_outputs(self, ctx: TileContext) -> dict[str, np.ndarray] | None:
        """Every output of the ``coarse`` stage for this tile (batch axis removed), or None without one."""
        if "coarse" not in self.stages:
            return None
        if self._last_coarse is not None and self._last_coarse[0] is ctx.y:
            return self._last_coarse[1]
        if ctx.should_stop is not None and ctx.should_stop():
            raise Cancelled("cancelled")
        outs = {k: v[0] for k, v in self.stages["coarse"](self._feeds("coarse", ctx)).items()}
        if ctx.on_eval is not None:
            ctx.on_eval()
        self._last_coarse = (ctx.y, outs)
        return outs

    def _coarse(self, ctx: TileContext) -> np.ndarray | None:
        outs = self._coarse_outputs(ctx)
        return None if outs is None else outs["x"]

    def _coarse_extras(self, ctx: TileContext) -> dict[str, np.ndarray]:
        """The manifest's extra outputs that the (cached) coarse stage computed for this tile."""
        outs = self._coarse_outputs(ctx) or {}
        return {k: outs[k] for k in self.manifest.extra_outputs if k in outs}

    def _loop(self, ctx: TileContext, start: np.ndarray, coarse: np.ndarray | None,
              predict_terms: Callable[[np.ndarray, StepCoefficients, dict[str, np.ndarray]], dict[str, np.ndarray]]
              ) -> np.ndarray:
        assert self.plan is not None
        extra = {"coarse": coarse} if coarse is not None else {}

        def predict(x: np.ndarray, step: StepCoefficients) -> dict[str, np.ndarray]:
            t = np.array([step.t_model], dtype=np.float32)
            outs = self.stages["denoiser"](self._feeds("denoiser", ctx, x_t=x, t=t, **extra))
            return predict_terms(x, step, {k: v[0] for k, v in outs.items()})

        def tick(step: StepCoefficients) -> None:
            if ctx.on_eval is not None:
                ctx.on_eval()

        return sample(self.plan, start, predict, ctx.noise(start.shape[0]), ctx.should_stop, tick)


class RddmPipeline(_DiffusionPipeline):
    """Residual diffusion (METHODS.md section 1), optionally after a one-pass coarse stage (DS-RDMPD).

    The sampling start ``y`` of RDDM is the coarse output when there is a coarse stage, else the input.
    The denoiser returns ``res`` and/or ``eps``; with ``res`` alone, eps follows from x_t, y and r_hat.
    """

    def run(self, ctx: TileContext) -> dict[str, np.ndarray]:
        coarse = self._coarse(ctx)
        start = coarse if coarse is not None else ctx.y

        def terms(x: np.ndarray, step: StepCoefficients, outs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            res = outs["res"]
            eps = outs.get("eps")
            if eps is None:
                eps = x * step.eps_from_x + start * step.eps_from_y + res * step.eps_from_res
            return {"res": res, "eps": eps}

        return {"image": self._loop(ctx, start, coarse, terms)}


class DdimPipeline(_DiffusionPipeline):
    """DDPM noise prediction with the DDIM/DDPM reverse process (METHODS.md section 3), from pure noise."""

    def run(self, ctx: TileContext) -> dict[str, np.ndarray]:
        coarse = self._coarse(ctx)
        bands = self.manifest.output.count
        start = np.zeros((bands,) + ctx.y.shape[1:], dtype=np.float32)

        def terms(x: np.ndarray, step: StepCoefficients, outs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            if "x0" in outs:
                return {"x0": outs["x0"]}
            return {"x0": x * step.x0_from_x + outs["eps"] * step.x0_from_eps}

        return {"image": self._loop(ctx, start, coarse, terms)}


class DePipeline(_DiffusionPipeline):
    """Diffusion Enhancement (METHODS.md section 3): DDIM from pure noise whose clean estimate at every step
    is ``(1 - W) x0_eps + W x0_E``; x0_E from the one-pass ``coarse`` stage (the reference model), eps and W
    from the ``denoiser`` stage (CNP + WA).

    Args:
        weight_floor: eta, W is clamped to [eta, 1] (None: the bundle's default).
        fixed_weight: replaces the WA's W by a constant (ablations: 0 = pure diffusion, 0.5 = fixed fusion).
    """

    def __init__(self, manifest: Manifest, stages: Mapping[str, OnnxStage], plan: SamplingPlan | None,
                 weight_floor: float | None = None, fixed_weight: float | None = None) -> None:
        super().__init__(manifest, stages, plan)
        fusion = manifest.fusion
        if fusion is None or "coarse" not in stages:
            raise ValueError(f"model {manifest.name!r} is not a Diffusion Enhancement bundle (no fusion/reference)")
        self.weight_floor = fusion.weight_floor if weight_floor is None else float(weight_floor)
        if not 0.0 <= self.weight_floor <= 1.0:
            raise ValueError(f"ETA (weight floor) must be between 0 and 1, got {self.weight_floor}")
        if fixed_weight is not None and not 0.0 <= fixed_weight <= 1.0:
            raise ValueError(f"fixed fusion weight must be between 0 and 1, got {fixed_weight}")
        self.fixed_weight = fixed_weight
        mean = np.asarray(manifest.output.mean, np.float32)[:, None, None]
        std = np.asarray(manifest.output.std, np.float32)[:, None, None]
        self._lo = ((fusion.x0_min - mean) / std).astype(np.float32)
        self._hi = ((fusion.x0_max - mean) / std).astype(np.float32)

    def run(self, ctx: TileContext) -> dict[str, np.ndarray]:
        ref = self._coarse(ctx)
        assert ref is not None
        start = np.zeros_like(ref)

        def terms(x: np.ndarray, step: StepCoefficients, outs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            x0_eps = x0_from_eps(x, outs["eps"], step.x0_from_x, step.x0_from_eps, self._lo, self._hi)
            w = outs["weight"] if self.fixed_weight is None else self.fixed_weight
            return {"x0": fuse_x0(x0_eps, ref, w, self.weight_floor)}

        return {"image": self._loop(ctx, start, ref, terms), **self._coarse_extras(ctx)}


class CoarseOnlyPipeline(_DiffusionPipeline):
    """Only the one-pass ``coarse`` stage of a diffusion bundle (stage-1 output, no sampling)."""

    @property
    def evals_per_sample(self) -> int:
        return 1

    def run(self, ctx: TileContext) -> dict[str, np.ndarray]:
        coarse = self._coarse(ctx)
        assert coarse is not None
        return {"image": coarse, **self._coarse_extras(ctx)}


PIPELINE_CLASSES: dict[str, type[Pipeline]] = {
    "direct": DirectPipeline,
    "rddm": RddmPipeline,
    "ddim": DdimPipeline,
    "de": DePipeline,
}
