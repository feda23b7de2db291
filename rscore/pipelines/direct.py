"""``direct``: one network, y -> x (end-to-end restoration; also the identity bundles of the tests)."""

from __future__ import annotations

from rscore.pipelines.base import Pipeline, PipelineOptions, PipelineSpec, StageRole


class DirectPipeline(Pipeline):
    """One tile stage ``net`` whose ``x`` is the result; no sampling."""

    SPEC = PipelineSpec(
        name="direct", family=None, options=PipelineOptions,
        stages=(StageRole("net", "tile", (("x",),)),),
        summary="one network, input to output in one pass",
    )
