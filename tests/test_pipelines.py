"""The pipeline contract (rscore/pipelines): specs that hold together, options checked against the spec, and
the three generic phases (tile stages once per tile, the loop, sample stages once per sample)."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from rscore.diffusion.plan import SamplerConfig, make_plan
from rscore.diffusion.terms import RULES
from rscore.pipelines import (
    PIPELINE_CLASSES,
    PIPELINE_SPECS,
    DeOptions,
    DiffusionOptions,
    Pipeline,
    PipelineOptions,
    PipelineSpec,
    StageRole,
    TileContext,
)


@pytest.mark.parametrize("name", sorted(PIPELINE_SPECS))
def test_every_registered_spec_holds_together(name):
    spec = PIPELINE_SPECS[name]
    assert PIPELINE_CLASSES[name].SPEC is spec and spec.name == name
    assert spec.family in (None, "rddm", "ddim")
    assert (spec.terms in RULES) == (spec.family is not None)
    assert issubclass(spec.options, PipelineOptions) and dataclasses.is_dataclass(spec.options)
    assert spec.options.__dataclass_params__.frozen
    if spec.one_pass_stage is not None:
        assert spec.role(spec.one_pass_stage).phase == "tile"
        assert issubclass(spec.options, DiffusionOptions)
    steps = [r for r in spec.stages if r.phase == "step"]
    assert len(steps) == (1 if spec.family else 0)


def test_options_from_objects_and_mappings_are_checked():
    de, rddm = PIPELINE_SPECS["de"], PIPELINE_SPECS["rddm"]
    assert de.make_options(None) == DeOptions()
    assert de.make_options({"weight_floor": 0.5, "one_pass": True}) == DeOptions(one_pass=True, weight_floor=0.5)
    assert rddm.make_options({"one_pass": True}) == DiffusionOptions(one_pass=True)
    with pytest.raises(ValueError, match=r"pipeline 'rddm' has no option\(s\) \['fixed_weight'\]; it takes one_pass"):
        rddm.make_options({"fixed_weight": 0.0})
    with pytest.raises(ValueError, match="DeOptions does not apply to pipeline 'rddm'"):
        rddm.make_options(DeOptions())
    with pytest.raises(ValueError, match="no option.*takes no options"):
        PIPELINE_SPECS["direct"].make_options({"one_pass": True})
    with pytest.raises(ValueError, match="fixed fusion weight must be between 0 and 1"):
        DeOptions(fixed_weight=2.0)


def test_stage_checks_name_the_problem():
    spec = PIPELINE_SPECS["de"]
    ok = {"coarse": (("y",), ("x", "cloud")), "denoiser": (("x_t", "y", "coarse", "t"), ("eps", "weight"))}
    assert spec.check_stages(ok) is None
    assert "needs stage(s) ['coarse']" in spec.check_stages({"denoiser": ok["denoiser"]})
    assert "also has ['extra']" in spec.check_stages({**ok, "extra": (("y",), ("x",))})
    assert "cannot read x_t" in spec.check_stages({**ok, "coarse": (("y", "t"), ("x",))})
    assert "reads ['z']" in spec.check_stages({**ok, "coarse": (("y", "z"), ("x",))})
    assert "only a 'sample' stage reads its result x0" in spec.check_stages(
        {**ok, "denoiser": (("x_t", "x0", "t"), ("eps", "weight"))})


class _Counting:
    """A numpy "network" that counts its calls."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, feeds):
        self.calls += 1
        return self.fn(feeds)


class _ThreePhase(Pipeline):
    """A latent-style pipeline: an encoder per tile, a denoiser per step, a decoder per sample."""

    SPEC = PipelineSpec(
        name="three-phase", family="ddim", options=DiffusionOptions, terms="ddim",
        stages=(StageRole("coarse", "tile", (("x",),)), StageRole("denoiser", "step", (("x0",),)),
                StageRole("decoder", "sample", (("x",),))),
    )

    def start(self, ctx, tile):
        return np.zeros_like(ctx.y)


def test_phases_run_tile_stages_once_and_sample_stages_per_sample():
    stages = {
        "coarse": _Counting(lambda f: {"x": f["y"] * 2.0}),
        "denoiser": _Counting(lambda f: {"x0": f["x_t"] * 0.0 + f["coarse"] * 0.0}),
        "decoder": _Counting(lambda f: {"x": f["x0"] + f["coarse"]}),
    }
    manifest = SimpleNamespace(name="fake", extra_outputs=(), tensor=lambda stage, name: SimpleNamespace(grid="output"),
                               stages={
        "coarse": SimpleNamespace(inputs=("y",)), "denoiser": SimpleNamespace(inputs=("x_t", "coarse", "t")),
        "decoder": SimpleNamespace(inputs=("x0", "coarse"))})
    plan = make_plan(SamplerConfig("ddim", num_timesteps=100, default_steps=3, eta=0.0), 3)
    pipe = _ThreePhase(manifest, stages, plan)
    assert pipe.evals_per_tile(2) == 1 + 2 * (3 + 1)
    y = np.ones((2, 8, 8), np.float32)
    evals = []
    for k in range(2):
        out = pipe.run(TileContext(y=y, aux=None, row_off=0, col_off=0, seed=0, sample_index=k,
                                   on_eval=lambda: evals.append(1)))
        # the denoiser's x0 = 0 makes the loop's result 0 (eta 0), so the image is the decoder's "+ coarse" = 2 y
        np.testing.assert_allclose(out["image"], 2.0 * y)
    assert (stages["coarse"].calls, stages["denoiser"].calls, stages["decoder"].calls) == (1, 6, 2)
    assert len(evals) == pipe.evals_per_tile(2)
    with pytest.raises(ValueError, match="no one-pass stage"):
        _ThreePhase(manifest, stages, None)
