"""The pipeline contract: what a pipeline declares (:class:`PipelineSpec`) and how it runs on one tile
(:class:`Pipeline`, three generic phases).

A pipeline turns the degraded tile ``y`` (model units, (bands, rows, cols), float32) into the restored tile.
Its stages (ONNX networks, batch of one) run in phases:

1. ``"tile"`` stages, once per tile (a one-pass estimate, a condition encoder); further samples of the same
   tile reuse their outputs;
2. the sampling loop, whose ``"step"`` stage (the denoiser) runs once per step;
3. ``"sample"`` stages, once per sample, on the loop's result (a decoder): each reads it as ``x0`` and its
   ``x`` becomes the next one's ``x0`` and, after the last, the image.

What a stage may read: ``y``, ``aux``, the loop's ``x_t`` and ``t``, the loop's result ``x0`` (sample stages),
and the outputs of the tile stages, where a tile stage's main output ``x`` is fed under the stage's own name
(``coarse``) and its other outputs under their names. Progress accounting (``evals_per_tile``) and caching
follow from the phases.

This package imports numpy and :mod:`rscore.diffusion` only: the manifest validates itself against the specs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Literal, Protocol

import numpy as np

from rscore.diffusion.loop import Cancelled, sample
from rscore.diffusion.noise import gaussian_field
from rscore.diffusion.plan import SamplingPlan, StepCoefficients
from rscore.diffusion.terms import TermContext, outputs_to_terms

if TYPE_CHECKING:
    from rscore.bundle.manifest import Manifest

Phase = Literal["tile", "step", "sample"]
PHASES: tuple[str, ...] = ("tile", "step", "sample")

#: streams reserved per sample, so that the noise of sample k never repeats another's
_STREAMS_PER_SAMPLE = 1 << 20

#: every name a stage may read (``x0``: the loop's result, for ``"sample"`` stages; ``scale``: the output / input
#: pixel-size ratio, shape (1,); ``c``: a condition computed by a tile stage; ``aux_valid``: 1 where the
#: auxiliary raster has data, 0 outside its footprint and at its nodata, shape (1, rows, cols))
STAGE_INPUTS: frozenset[str] = frozenset({"y", "aux", "aux_valid", "x_t", "t", "coarse", "c", "x0", "scale"})


class Stage(Protocol):
    """A callable network: feeds (batch of one) -> outputs (batch of one)."""

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


@dataclass(frozen=True)
class StageRole:
    """One stage a pipeline runs.

    Attributes:
        name: key in the manifest's ``stages``.
        phase: when it runs (see module doc).
        outputs: acceptable sets of outputs; the network must have every name of at least one set.
        required: False when the pipeline also runs without it (e.g. RDDM without a coarse stage).
    """

    name: str
    phase: Phase
    outputs: tuple[tuple[str, ...], ...]
    required: bool = True

    def __post_init__(self) -> None:
        if self.phase not in PHASES:
            raise ValueError(f"stage {self.name!r}: unknown phase {self.phase!r}; use one of {PHASES}")

    def describe_outputs(self) -> str:
        return " or ".join("+".join(s) for s in self.outputs)


@dataclass(frozen=True)
class PipelineOptions:
    """Options every pipeline takes (none yet); a pipeline's options class derives from it."""

    def describe(self) -> str:
        return ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self))


@dataclass(frozen=True)
class DiffusionOptions(PipelineOptions):
    """Options of the diffusion pipelines.

    Attributes:
        one_pass: run only the bundle's one-pass ``coarse`` stage, no sampling (previews, evaluation; also
            what a bundle whose ``sampler.default_steps`` is 0 runs when no steps are asked for).
    """

    one_pass: bool = False


@dataclass(frozen=True)
class PipelineSpec:
    """What a pipeline is, declared once; the manifest, the runtime and the exporter read it.

    Attributes:
        name: the manifest's ``pipeline`` value.
        family: sampler family of its loop, or None for a one-pass pipeline.
        stages: its stages.
        options: its options dataclass (a :class:`PipelineOptions`).
        terms: rule turning the step stage's outputs into loop terms (:mod:`rscore.diffusion.terms`).
        one_pass_stage: the tile stage whose presence allows a run without sampling (``DiffusionOptions.one_pass``):
            its ``x`` is then the image, or, with sample stages, they run on :meth:`Pipeline.one_pass_x0`.
        manifest_sections: optional manifest fields this pipeline requires (e.g. ``fusion``).
        summary: one line for messages and docs.
    """

    name: str
    family: str | None
    stages: tuple[StageRole, ...]
    options: type[PipelineOptions]
    terms: str | None = None
    one_pass_stage: str | None = None
    manifest_sections: tuple[str, ...] = ()
    summary: str = ""

    def role(self, stage: str) -> StageRole | None:
        return next((r for r in self.stages if r.name == stage), None)

    def required_stages(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.stages if r.required)

    def check_stages(self, stages: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]) -> str | None:
        """Problem with a manifest's stages ({name: (inputs, outputs)}) for this pipeline, or None."""
        missing = [s for s in self.required_stages() if s not in stages]
        if missing:
            return f"pipeline {self.name!r} needs stage(s) {missing}; manifest has {sorted(stages)}"
        unknown = sorted(set(stages) - {r.name for r in self.stages})
        if unknown:
            return (f"pipeline {self.name!r} runs stages {[r.name for r in self.stages]}; the manifest also has "
                    f"{unknown}")
        for name, (inputs, outputs) in stages.items():
            role = self.role(name)
            assert role is not None
            if not any(set(s) <= set(outputs) for s in role.outputs):
                return (f"pipeline {self.name!r} needs stage {name!r} to output {role.describe_outputs()}, got "
                        f"{list(outputs)}; re-export the bundle")
            bad = sorted(set(inputs) - STAGE_INPUTS)
            if bad:
                return f"stage {name!r} reads {bad}, which no pipeline provides (known inputs {sorted(STAGE_INPUTS)})"
            if role.phase == "tile" and {"x_t", "t", "x0"} & set(inputs):
                return f"stage {name!r} runs once per tile, before sampling: it cannot read x_t, t or x0"
            if role.phase != "sample" and "x0" in inputs:
                return f"stage {name!r} runs before the loop ends: only a 'sample' stage reads its result x0"
        return None

    def make_options(self, given: PipelineOptions | Mapping[str, Any] | None) -> PipelineOptions:
        """This pipeline's options from an options object or a plain mapping; a field it does not take is an
        error naming the fields it does take (ValueError)."""
        if given is None:
            return self.options()
        if isinstance(given, PipelineOptions):
            if type(given) is not self.options:
                raise ValueError(f"{type(given).__name__} does not apply to pipeline {self.name!r}, which takes "
                                 f"{self.options.__name__} ({self._fields_text()})")
            return given
        known = {f.name for f in dataclasses.fields(self.options)}
        unknown = sorted(set(given) - known)
        if unknown:
            raise ValueError(f"pipeline {self.name!r} has no option(s) {unknown}; it takes {self._fields_text()}")
        return self.options(**dict(given))

    def _fields_text(self) -> str:
        names = [f.name for f in dataclasses.fields(self.options)]
        return ", ".join(names) if names else "no options"


@dataclass
class TileContext:
    """One tile as a pipeline sees it.

    Attributes:
        y: degraded input in model units, float32 (bands, rows, cols), padded: on the output grid, or on the input
            grid when the bundle's resample is "none" (then ``in_row_off``/``in_col_off`` place it).
        aux: co-registered auxiliary input in model units (on the output grid, ``out_shape``) or None; 0 (the
            band mean) where it has no data.
        aux_valid: float32 (1, rows, cols), 1 where ``aux`` has data, else 0 (None without ``aux``).
        row_off, col_off: global output-grid position of the padded window's first pixel (negative inside edge
            padding).
        seed: user seed.
        sample_index: which of several samples this is (0-based).
        should_stop: cancellation check, called before every network evaluation.
        on_eval: progress callback, called after every network evaluation.
        scale: output / input pixel-size ratio (1 for restoration); fed to stages that read ``scale``.
        out_shape: output-grid size of the padded window (None: the shape of ``y``).
        in_row_off, in_col_off: global input-grid position of ``y[:, 0, 0]`` when ``y`` is on the input grid.
        latent_factor: output pixels per latent pixel (the engine aligns windows to it).
    """

    y: np.ndarray
    aux: np.ndarray | None
    row_off: int
    col_off: int
    seed: int
    sample_index: int = 0
    should_stop: Callable[[], bool] | None = None
    on_eval: Callable[[], None] | None = None
    scale: float = 1.0
    out_shape: tuple[int, int] | None = None
    in_row_off: int | None = None
    in_col_off: int | None = None
    latent_factor: int = 1
    aux_valid: np.ndarray | None = None

    def window(self, grid: str) -> tuple[int, int, int, int]:
        """(row offset, column offset, rows, cols) of this tile on ``grid`` ("input", "output" or "latent")."""
        rows, cols = self.out_shape if self.out_shape is not None else self.y.shape[1:]
        if grid == "output":
            return self.row_off, self.col_off, rows, cols
        if grid == "latent":
            f = self.latent_factor
            if self.row_off % f or self.col_off % f or rows % f or cols % f:
                raise ValueError(f"the tile window ({self.row_off}, {self.col_off}, {rows} x {cols}) is not aligned to "
                                 f"the latent factor {f} (engine bug)")
            return self.row_off // f, self.col_off // f, rows // f, cols // f
        if grid == "input":
            if self.in_row_off is None or self.in_col_off is None:
                return self.row_off, self.col_off, self.y.shape[1], self.y.shape[2]
            return self.in_row_off, self.in_col_off, self.y.shape[1], self.y.shape[2]
        raise ValueError(f"no noise on grid {grid!r}")

    def noise(self, grid: str, channels: int) -> Callable[[int], np.ndarray]:
        """Standard normal noise on ``grid`` by stream, drawn by global position on that grid (see
        :func:`gaussian_field`), so that it does not depend on the tiling."""
        row_off, col_off, rows, cols = self.window(grid)
        base = self.sample_index * _STREAMS_PER_SAMPLE

        def draw(stream: int) -> np.ndarray:
            return gaussian_field(self.seed, base + stream, channels, row_off, col_off, rows, cols)

        return draw

    def check_stop(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise Cancelled("cancelled")


class Pipeline:
    """Runs a pipeline's phases on one tile. A pipeline class sets ``SPEC`` and overrides the hooks
    :meth:`start` and :meth:`term_context` (diffusion), :meth:`one_pass_image` and :meth:`finish`.

    Args:
        manifest: the bundle manifest.
        stages: the bundle's networks by stage name.
        plan: the sampling plan (None: one pass, no loop).
        options: this pipeline's options (an instance of ``SPEC.options``).
    """

    SPEC: ClassVar[PipelineSpec]

    def __init__(self, manifest: Manifest, stages: Mapping[str, Stage], plan: SamplingPlan | None,
                 options: PipelineOptions | None = None) -> None:
        self.manifest = manifest
        self.stages = stages
        self.options = options if options is not None else self.SPEC.options()
        if plan is None and self.SPEC.family is not None:
            if self.SPEC.one_pass_stage is None or self.SPEC.one_pass_stage not in stages:
                raise ValueError(f"model {manifest.name!r} has no one-pass stage to run without sampling")
        if plan is not None and self.SPEC.family is None:
            raise ValueError(f"pipeline {self.SPEC.name!r} has no sampling loop (got a sampling plan)")
        self.plan = plan
        self._roles = [r for r in self.SPEC.stages if r.name in stages]
        if plan is None:  # one pass, no sampling loop: the step stage does not run
            self._roles = [r for r in self._roles if r.phase != "step"]
        #: (tile input array, tile-stage outputs): samples of one tile share the input array object, so tile
        #: stages run once per tile; a new tile (a new array) always recomputes
        self._last_tile: tuple[np.ndarray, dict[str, dict[str, np.ndarray]]] | None = None

    # ---- accounting -----------------------------------------------------------------------------
    def _count(self, phase: str) -> int:
        return sum(1 for r in self._roles if r.phase == phase)

    def evals_per_tile(self, samples: int) -> int:
        """Network evaluations for one tile and ``samples`` samples (progress accounting)."""
        steps = self.plan.num_steps if self.plan is not None else 0
        return self._count("tile") + samples * (steps * self._count("step") + self._count("sample"))

    # ---- phases ---------------------------------------------------------------------------------
    def _feeds(self, stage: str, ctx: TileContext, tile: Mapping[str, Mapping[str, np.ndarray]],
               **arrays: np.ndarray) -> dict[str, np.ndarray]:
        avail: dict[str, np.ndarray] = {"y": ctx.y, "scale": np.array([ctx.scale], dtype=np.float32)}
        if ctx.aux is not None:
            avail["aux"] = ctx.aux
        if ctx.aux_valid is not None:
            avail["aux_valid"] = ctx.aux_valid
        for name, outs in tile.items():
            avail.update({(name if k == "x" else k): v for k, v in outs.items()})
        avail.update(arrays)
        inputs = self.manifest.stages[stage].inputs
        missing = [n for n in inputs if n not in avail]
        if missing:
            raise ValueError(f"stage {stage!r} needs input(s) {missing} that this request does not provide")
        return {n: avail[n] if n in ("t", "scale") else avail[n][None] for n in inputs}

    def _call(self, stage: str, ctx: TileContext, tile: Mapping[str, Mapping[str, np.ndarray]],
              **arrays: np.ndarray) -> dict[str, np.ndarray]:
        ctx.check_stop()
        outs = {k: v[0] for k, v in self.stages[stage](self._feeds(stage, ctx, tile, **arrays)).items()}
        if ctx.on_eval is not None:
            ctx.on_eval()
        return outs

    def tile_outputs(self, ctx: TileContext) -> dict[str, dict[str, np.ndarray]]:
        """Outputs of every tile stage for this tile (batch axis removed), cached across its samples."""
        if self._last_tile is not None and self._last_tile[0] is ctx.y:
            return self._last_tile[1]
        tile: dict[str, dict[str, np.ndarray]] = {}
        for role in self._roles:
            if role.phase == "tile":
                tile[role.name] = self._call(role.name, ctx, tile)
        self._last_tile = (ctx.y, tile)
        return tile

    def _step_stage(self) -> str:
        return next(r.name for r in self._roles if r.phase == "step")

    def run(self, ctx: TileContext) -> dict[str, np.ndarray]:
        """Returns {"image": (out_bands, rows, cols) model units, <extra output>: (rows, cols) or (n, ...)}."""
        tile = self.tile_outputs(ctx)
        if self.plan is None:
            image = self.one_pass_image(ctx, tile)
        else:
            start = self.start(ctx, tile)
            tctx = self.term_context(ctx, tile, start)
            denoiser = self._step_stage()
            rule = self.SPEC.terms
            assert rule is not None

            def predict(x: np.ndarray, step: StepCoefficients) -> dict[str, np.ndarray]:
                t = np.array([step.t_model], dtype=np.float32)
                return outputs_to_terms(rule, x, step, self._call(denoiser, ctx, tile, x_t=x, t=t), tctx)

            # progress and cancellation are handled per network evaluation, in _call
            grid = self.manifest.tensor(denoiser, "x_t").grid
            x0 = sample(self.plan, start, predict, ctx.noise(grid, start.shape[0]))
            image = self.finish(ctx, tile, x0)
        extras = {k: v for outs in tile.values() for k, v in outs.items() if k in self.manifest.extra_outputs}
        return {"image": image, **extras}

    # ---- hooks ----------------------------------------------------------------------------------
    def one_pass_image(self, ctx: TileContext, tile: Mapping[str, Mapping[str, np.ndarray]]) -> np.ndarray:
        """The image without sampling: with sample stages, those stages on :meth:`one_pass_x0`; otherwise the
        ``x`` of the one-pass stage (or of the only tile stage)."""
        if any(r.phase == "sample" for r in self._roles):
            return self.finish(ctx, tile, self.one_pass_x0(ctx, tile))
        name = self.SPEC.one_pass_stage or self._roles[0].name
        return tile[name]["x"]

    def one_pass_x0(self, ctx: TileContext, tile: Mapping[str, Mapping[str, np.ndarray]]) -> np.ndarray:
        """What the sample stages read instead of the loop's result in a one-pass run (pipelines with sample
        stages and a one-pass mode define it)."""
        raise NotImplementedError(f"pipeline {self.SPEC.name!r} has no one-pass mode")

    def start(self, ctx: TileContext, tile: Mapping[str, Mapping[str, np.ndarray]]) -> np.ndarray:
        """The loop's start image y (model units)."""
        raise NotImplementedError

    def term_context(self, ctx: TileContext, tile: Mapping[str, Mapping[str, np.ndarray]],
                     start: np.ndarray) -> TermContext[np.ndarray]:
        """What the terms rule needs besides the network outputs."""
        return TermContext(start=start)

    def finish(self, ctx: TileContext, tile: Mapping[str, Mapping[str, np.ndarray]], x0: np.ndarray
               ) -> np.ndarray:
        """The image from the loop's result: the ``"sample"`` stages in order (the identity without any)."""
        for role in self._roles:
            if role.phase == "sample":
                x0 = self._call(role.name, ctx, tile, x0=x0)["x"]
        return x0
