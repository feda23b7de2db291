"""The bundle manifest: typed, frozen, validated, JSON round-trippable.

Value conventions (one place): a raster value ``v`` of GDAL type ``dt`` becomes *physical units*
``p = v * value_scale[dt]`` (reflectance 0-1 for multispectral, 0-1 for 8-bit RGB), then *model units*
``m = (p - mean) / std`` per band. Outputs invert the same chain with the output band statistics.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import PurePath, PureWindowsPath
from typing import Any, Literal

from rscore.diffusion.plan import SamplerConfig
from rscore.pipelines import PIPELINE_SPECS

#: the schema this rsrestore writes; it reads every version in SUPPORTED_SCHEMAS (version 1 had no tensor grids:
#: they are derived, see :meth:`Manifest.tensor`)
SCHEMA_VERSION = 2
SUPPORTED_SCHEMAS: tuple[int, ...] = (1, 2)

#: how the engine brings the input onto the output grid before the networks see it; "none": it does not (the
#: networks read the input on its own grid, ``y`` declared on the "input" grid, and produce the output grid)
ResampleMethod = Literal["nearest", "bilinear", "bicubic", "none"]
RESAMPLE_METHODS: tuple[str, ...] = ("nearest", "bilinear", "bicubic", "none")

#: the pixel grids a stage tensor can sit on: the input raster's, the output raster's (input / scale factor), or
#: the latent grid (output / LatentSpec.factor); "scalar" for per-call numbers such as ``t`` and ``scale``
GRIDS: tuple[str, ...] = ("input", "output", "latent", "scalar")
#: stage inputs that are per-call numbers, shape (1,)
SCALAR_INPUTS: tuple[str, ...] = ("t", "scale")


#: bounds of manifest numbers: a value outside them is a corrupt or hostile manifest, not a model
MAX_ABS_STAT = 1e6
MAX_SCALE = 64.0
MAX_TILE_PX = 16384
MAX_MARGIN_PX = 2048


def _finite(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class BundleError(Exception):
    """A model bundle is missing, corrupt, or does not fit the request. The message says how to fix it."""


@dataclass(frozen=True)
class BandSpec:
    """Bands a network reads or writes, in network order, with per-band normalisation.

    Attributes:
        names: band names in network order, e.g. ("blue", "green", "red", "nir").
        mean: per-band mean in physical units.
        std: per-band standard deviation in physical units (> 0).
    """

    names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        n = len(self.names)
        if n == 0 or len(self.mean) != n or len(self.std) != n:
            raise BundleError(f"band spec needs equal, non-empty names/mean/std, got {n}/{len(self.mean)}/{len(self.std)}")
        if not all(_finite(v) and abs(v) <= MAX_ABS_STAT for v in self.mean):
            raise BundleError(f"band mean must be finite numbers within +-{MAX_ABS_STAT:g}, got {self.mean}")
        if not all(_finite(v) and 0 < v <= MAX_ABS_STAT for v in self.std):
            raise BundleError(f"band std must be finite numbers in (0, {MAX_ABS_STAT:g}], got {self.std}")

    @property
    def count(self) -> int:
        return len(self.names)


@dataclass(frozen=True)
class ScaleRange:
    """Output/input pixel-size ratio the bundle supports (1, 1, 1 for restoration)."""

    min: float = 1.0
    max: float = 1.0
    default: float = 1.0

    def __post_init__(self) -> None:
        if not (all(_finite(v) for v in (self.min, self.default, self.max))
                and 0 < self.min <= self.default <= self.max <= MAX_SCALE):
            raise BundleError(f"scale range needs 0 < min <= default <= max <= {MAX_SCALE:g}, got {self}")


@dataclass(frozen=True)
class TilingDefaults:
    """Tiling defaults in output-grid pixels.

    Attributes:
        tile_size_px: core tile size.
        overlap_px: overlap between core tiles (blended).
        margin_px: receptive-field margin added around each core tile and discarded.
        size_multiple: network input sizes must be multiples of this (padding by reflection).
    """

    tile_size_px: int = 256
    overlap_px: int = 32
    margin_px: int = 16
    size_multiple: int = 1

    def __post_init__(self) -> None:
        ints = (self.tile_size_px, self.overlap_px, self.margin_px, self.size_multiple)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in ints):
            raise BundleError(f"tiling defaults must be integers, got {self}")
        if not 8 <= self.tile_size_px <= MAX_TILE_PX or not 0 <= self.overlap_px < self.tile_size_px:
            raise BundleError(f"invalid tiling defaults {self}: tile_size_px must be 8-{MAX_TILE_PX} and overlap_px "
                              "smaller than it")
        if not 0 <= self.margin_px <= MAX_MARGIN_PX or not 1 <= self.size_multiple <= 256:
            raise BundleError(f"invalid tiling defaults {self}: margin_px must be 0-{MAX_MARGIN_PX} and "
                              "size_multiple 1-256")


@dataclass(frozen=True)
class TensorSpec:
    """Where a stage tensor sits and how many channels it has.

    Attributes:
        grid: one of :data:`GRIDS`.
        channels: channel count (1 for scalars).
    """

    grid: str
    channels: int

    def __post_init__(self) -> None:
        if self.grid not in GRIDS:
            raise BundleError(f"tensor grid {self.grid!r} is not one of {GRIDS}")
        if not (isinstance(self.channels, int) and not isinstance(self.channels, bool) and 1 <= self.channels <= 4096):
            raise BundleError(f"tensor channels must be an integer 1-4096, got {self.channels!r}")


@dataclass(frozen=True)
class LatentSpec:
    """The latent grid of a latent-diffusion bundle.

    Attributes:
        channels: latent channels.
        factor: output pixels per latent pixel along each axis (the latent grid is the output grid / factor).
    """

    channels: int
    factor: int

    def __post_init__(self) -> None:
        if not (isinstance(self.channels, int) and 1 <= self.channels <= 4096):
            raise BundleError(f"latent channels must be an integer 1-4096, got {self.channels!r}")
        if not (isinstance(self.factor, int) and 1 <= self.factor <= 64):
            raise BundleError(f"latent factor must be an integer 1-64, got {self.factor!r}")


@dataclass(frozen=True)
class StageSpec:
    """One ONNX network.

    Attributes:
        file: file name inside the bundle directory.
        sha256: hex digest of the file.
        inputs: ONNX input names (see :data:`rscore.pipelines.base.STAGE_INPUTS`).
        outputs: ONNX output names, from {"x", "res", "eps", "x0", "weight"} plus extra output names.
        tensors: grid and channels of inputs and outputs (schema 2); a name not listed gets the default of
            :meth:`Manifest.tensor` (every schema-1 bundle relies on those).
    """

    file: str
    sha256: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    tensors: dict[str, TensorSpec] = field(default_factory=dict)


@dataclass(frozen=True)
class FusionSpec:
    """Diffusion Enhancement fusion settings (pipeline "de", METHODS.md section 3).

    Attributes:
        weight_floor: default eta: the reference weight W is clamped to [weight_floor, 1] (0-1).
        x0_min, x0_max: valid range of the clean estimate from predicted noise, physical units.
    """

    weight_floor: float = 0.3
    x0_min: float = 0.0
    x0_max: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight_floor <= 1.0:
            raise BundleError(f"fusion weight_floor must be in [0, 1], got {self.weight_floor}")
        if not (_finite(self.x0_min) and _finite(self.x0_max) and self.x0_min < self.x0_max):
            raise BundleError(f"fusion x0_min must be finite and < x0_max, got {self.x0_min} / {self.x0_max}")


@dataclass(frozen=True)
class AutoMaskSpec:
    """How a bundle finds the pixels to restore by itself (``rsrestore:remove_clouds`` without a MASK).

    A first pass runs the one-pass ``coarse`` stage over the raster and reads its per-pixel degradation map
    ``output`` (0 = clear, 1 = fully degraded); pixels at or above ``threshold``, grown by ``dilate_px``, are
    restored, every other pixel is copied from the input unchanged.

    Attributes:
        output: name of the map among the ``coarse`` stage's outputs (also listed in ``extra_outputs``).
        threshold: degradation at or above which a pixel is restored, 0-1.
        dilate_px: pixels the mask grows by on every side (cloud edges), 0-64.
    """

    output: str = "cloud"
    threshold: float = 0.1
    dilate_px: int = 2

    def __post_init__(self) -> None:
        if not (math.isfinite(self.threshold) and 0.0 < self.threshold < 1.0):
            raise BundleError(f"auto_mask threshold must be between 0 and 1, got {self.threshold}")
        if not 0 <= int(self.dilate_px) <= 64:
            raise BundleError(f"auto_mask dilate_px must be 0-64, got {self.dilate_px}")


@dataclass(frozen=True)
class Manifest:
    """Everything the runtime needs to run a bundle (saved as ``manifest.json``)."""

    name: str
    task: str
    title: str
    pipeline: str
    input: BandSpec
    output: BandSpec
    value_scale: dict[str, float]
    stages: dict[str, StageSpec]
    tiling: TilingDefaults = TilingDefaults()
    sampler: SamplerConfig | None = None
    scale: ScaleRange = ScaleRange()
    native_resolution_m: float | None = None
    resample: ResampleMethod = "bicubic"
    extra_outputs: tuple[str, ...] = ()
    aux: BandSpec | None = None
    fusion: FusionSpec | None = None
    auto_mask: AutoMaskSpec | None = None
    latent: LatentSpec | None = None
    description: str = ""
    training: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.schema_version not in SUPPORTED_SCHEMAS:
            raise BundleError(
                f"bundle schema version {self.schema_version} is not supported by this rsrestore "
                f"(supports {SUPPORTED_SCHEMAS}); update the plugin or use a bundle made for this version"
            )
        spec = PIPELINE_SPECS.get(self.pipeline)
        if spec is None:
            raise BundleError(f"unknown pipeline {self.pipeline!r}; this rsrestore runs {tuple(PIPELINE_SPECS)} "
                              "(update the plugin, or use a bundle made for this version)")
        if spec.family is not None and self.sampler is None:
            raise BundleError(f"pipeline {self.pipeline!r} needs a sampler config in the manifest")
        for section in spec.manifest_sections:
            if getattr(self, section) is None:
                raise BundleError(f"pipeline {self.pipeline!r} needs {section} settings in the manifest")
        if self.sampler is not None and self.sampler.family != spec.family:
            raise BundleError(f"sampler family {self.sampler.family!r} does not match pipeline {self.pipeline!r}")
        if not self.value_scale:
            raise BundleError("manifest value_scale is empty: it must map GDAL data types to physical units")
        bad = {k: v for k, v in self.value_scale.items() if not (math.isfinite(v) and 0 < v <= MAX_ABS_STAT)}
        if bad:
            raise BundleError(f"manifest value_scale entries must be finite and > 0, got {bad}")
        if self.native_resolution_m is not None and not (_finite(self.native_resolution_m)
                                                         and self.native_resolution_m > 0):
            raise BundleError(f"native_resolution_m must be a positive number, got {self.native_resolution_m}")
        if self.resample not in RESAMPLE_METHODS:
            raise BundleError(f"manifest resample {self.resample!r} is not one of {RESAMPLE_METHODS}")
        for name, st in self.stages.items():
            f = PurePath(st.file)
            if f.name != st.file or PureWindowsPath(st.file).drive or st.file in ("", ".", ".."):
                raise BundleError(f"stage {name!r} file {st.file!r} must be a plain file name inside the bundle")
        problem = spec.check_stages({k: (v.inputs, v.outputs) for k, v in self.stages.items()})
        if problem:
            raise BundleError(problem)
        if (self.sampler is not None and self.sampler.default_steps == 0
                and (spec.one_pass_stage is None or spec.one_pass_stage not in self.stages)):
            raise BundleError("sampler default_steps 0 means 'one pass by default', which needs a 'coarse' stage")
        if self.auto_mask is not None:
            am = self.auto_mask
            if "coarse" not in self.stages or am.output not in self.stages["coarse"].outputs:
                raise BundleError(f"auto_mask reads output {am.output!r} of the 'coarse' stage, which the manifest "
                                  "does not have; re-export the bundle")
            if am.output not in self.extra_outputs:
                raise BundleError(f"auto_mask output {am.output!r} must be listed in extra_outputs")
            if "aux" in self.stages["coarse"].inputs:
                raise BundleError("auto_mask needs a 'coarse' stage that reads the input alone (not 'aux')")

        self._check_tensors()

    def tensor(self, stage: str, name: str) -> TensorSpec:
        """Grid and channels of input or output ``name`` of ``stage``: as declared, else the schema-1 default
        (``t``/``scale`` scalars; ``y`` on the input grid with resample "none", else on the output grid; ``aux``
        on the output grid with the aux bands, ``aux_valid`` there with one channel; an extra output one channel;
        anything else the output bands on the output grid)."""
        declared = self.stages[stage].tensors.get(name)
        if declared is not None:
            return declared
        if name in SCALAR_INPUTS:
            return TensorSpec("scalar", 1)
        if name == "y":
            return TensorSpec("input" if self.resample == "none" else "output", self.input.count)
        if name == "aux":
            return TensorSpec("output", (self.aux or self.input).count)
        if name == "aux_valid":
            return TensorSpec("output", 1)
        if name in self.extra_outputs:
            return TensorSpec("output", 1)
        return TensorSpec("output", self.output.count)

    def _check_tensors(self) -> None:
        for stage, st in self.stages.items():
            unknown = sorted(set(st.tensors) - set(st.inputs) - set(st.outputs))
            if unknown:
                raise BundleError(f"stage {stage!r} declares tensors {unknown} that are not among its inputs or "
                                  "outputs")
            for name in (*st.inputs, *st.outputs):
                t = self.tensor(stage, name)
                where = f"stage {stage!r} tensor {name!r}"
                if (name in SCALAR_INPUTS) != (t.grid == "scalar"):
                    raise BundleError(f"{where}: only {SCALAR_INPUTS} are scalars, got grid {t.grid!r}")
                if name == "y" and t.grid != ("input" if self.resample == "none" else "output"):
                    raise BundleError(f"{where}: with resample {self.resample!r} the engine gives y on the "
                                      f"{'input' if self.resample == 'none' else 'output'} grid, not {t.grid!r}")
                if t.grid == "latent":
                    if self.latent is None:
                        raise BundleError(f"{where} is on the latent grid, but the manifest has no latent spec")
                    if t.channels != self.latent.channels:
                        raise BundleError(f"{where} has {t.channels} channels; the latent has {self.latent.channels}")
                if name in ("y", "aux") and t.channels != (self.input if name == "y" else self.aux or self.input).count:
                    raise BundleError(f"{where} has {t.channels} channels, not the {name} band count")
        if self.resample == "none" and self.scale.max == self.scale.min == 1.0:
            raise BundleError("resample 'none' is for bundles that change the grid (scale range other than 1)")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists); written as the current schema."""
        d = dataclasses.asdict(self)
        d["stages"] = {k: dataclasses.asdict(v) for k, v in self.stages.items()}
        d["schema_version"] = SCHEMA_VERSION
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Manifest:
        """Parse and validate a manifest dict.

        Raises:
            BundleError: for a missing or malformed field, naming it.
        """
        try:
            version = d.get("schema_version")
            if version not in SUPPORTED_SCHEMAS:
                raise BundleError(
                    f"bundle schema version {version!r} is not supported by this rsrestore (supports "
                    f"{SUPPORTED_SCHEMAS}); update the plugin or use a bundle made for this version"
                )

            def bands(x: dict[str, Any]) -> BandSpec:
                return BandSpec(tuple(x["names"]), tuple(map(float, x["mean"])), tuple(map(float, x["std"])))

            return cls(
                name=str(d["name"]),
                task=str(d["task"]),
                title=str(d["title"]),
                pipeline=d["pipeline"],
                input=bands(d["input"]),
                output=bands(d["output"]),
                value_scale={str(k): float(v) for k, v in d["value_scale"].items()},
                stages={
                    k: StageSpec(v["file"], v["sha256"], tuple(v["inputs"]), tuple(v["outputs"]),
                                 {n: TensorSpec(str(t["grid"]), t["channels"])
                                  for n, t in (v.get("tensors") or {}).items()} if version >= 2 else {})
                    for k, v in d["stages"].items()
                },
                tiling=TilingDefaults(**d.get("tiling", {})),
                sampler=SamplerConfig.from_dict(d["sampler"]) if d.get("sampler") else None,
                scale=ScaleRange(**d.get("scale", {})),
                native_resolution_m=d.get("native_resolution_m"),
                resample=d.get("resample", "bicubic"),
                extra_outputs=tuple(d.get("extra_outputs", ())),
                aux=bands(d["aux"]) if d.get("aux") else None,
                fusion=FusionSpec(**d["fusion"]) if d.get("fusion") else None,
                auto_mask=AutoMaskSpec(**d["auto_mask"]) if d.get("auto_mask") else None,
                latent=LatentSpec(**d["latent"]) if version >= 2 and d.get("latent") else None,
                description=str(d.get("description", "")),
                training=dict(d.get("training", {})),
                schema_version=version,
            )
        except BundleError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BundleError(f"malformed bundle manifest ({type(exc).__name__}: {exc}); re-export the bundle") from exc
