"""Pipelines: how a bundle's stage networks are chained on one tile, one file per pipeline, declared by a
:class:`PipelineSpec` (explicit registry, no folder scanning).

A new pipeline is one module here (its spec, options and hooks) and one entry in :data:`PIPELINE_CLASSES`;
the manifest, the runtime and the exporter read the spec.
"""

from __future__ import annotations

from rscore.pipelines.base import (
    PHASES,
    DiffusionOptions,
    Pipeline,
    PipelineOptions,
    PipelineSpec,
    StageRole,
    TileContext,
)
from rscore.pipelines.ddim import DdimPipeline
from rscore.pipelines.de import DeOptions, DePipeline
from rscore.pipelines.direct import DirectPipeline
from rscore.pipelines.latent_prior import LatentPriorPipeline
from rscore.pipelines.ldcsr import LdcsrPipeline
from rscore.pipelines.rddm import RddmPipeline

#: every pipeline this rsrestore runs, by manifest name
PIPELINE_CLASSES: dict[str, type[Pipeline]] = {
    cls.SPEC.name: cls for cls in (DirectPipeline, RddmPipeline, DdimPipeline, DePipeline, LdcsrPipeline,
                                   LatentPriorPipeline)
}
PIPELINE_SPECS: dict[str, PipelineSpec] = {name: cls.SPEC for name, cls in PIPELINE_CLASSES.items()}

__all__ = ["PHASES", "PIPELINE_CLASSES", "PIPELINE_SPECS", "DdimPipeline", "DeOptions", "DePipeline",
           "DiffusionOptions", "DirectPipeline", "LatentPriorPipeline", "LdcsrPipeline", "Pipeline",
           "PipelineOptions", "PipelineSpec", "RddmPipeline", "StageRole", "TileContext"]
