"""What the image-to-image restoration tasks share: band order, value domain, the imagery pool, per-band
normalisation statistics, validation PSNR and the common part of the bundle manifest."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn

from rscore.bundle.manifest import BandSpec, Manifest, StageSpec, TensorSpec, TilingDefaults
from rscore.models.blocks import Act
from rscore.models.dsrdmpd import SIZE_MULTIPLE, count_params
from training.config import TrainConfig
from training.tasks.imagery import Pool, load_pool

#: sampling steps of the validation's diffusion rows when a bundle's default is its one-pass stage
VALIDATION_STEPS = 5
#: degrade(clean (bands, rows, cols), rng) -> degraded image, physical units
Degrade = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def clean_floor_score(mean_db: float, worst_clean_db: float, floor_db: float, penalty: float) -> float:
    """A ``select_best`` score: ``mean_db`` (degraded val patches) less ``penalty`` dB per dB that the worst clean
    patch falls below ``floor_db``. The worst clean patch, not the mean: a pass that damages one clean scene
    badly must lose to one that spreads a smaller gain evenly."""
    return mean_db - penalty * max(0.0, floor_db - worst_clean_db)


class ImageTask:
    """Base of the restoration tasks.

    Normalisation statistics are computed over 128 clean training patches of 64 px *and* their degraded
    versions (the network input spans both), with a fixed seed.
    """

    #: clean validation patches should come back at least this close to themselves (dB), for select_best
    CLEAN_FLOOR_DB = 40.0
    #: dB of mean degraded PSNR that one dB of the worst clean patch below the floor costs in the selection score
    CLEAN_PENALTY = 0.1

    def __init__(self, cfg: TrainConfig, degrade: Degrade) -> None:
        self.cfg = cfg
        self.bands = tuple(cfg.data["bands"])
        self.domain = cfg.data.get("domain", "reflectance")
        self.pool: Pool = load_pool(cfg.data, self.bands)
        stats_rng = np.random.default_rng(1234)
        clean_s = self.pool.patches("train", 64, 128, stats_rng)
        sample = np.concatenate([clean_s, np.stack([degrade(c, stats_rng) for c in clean_s])])
        self.mean = sample.mean(axis=(0, 2, 3)).astype(np.float64)
        self.std = np.maximum(sample.std(axis=(0, 2, 3)), 1e-3).astype(np.float64)
        self._mean_t = torch.tensor(self.mean, dtype=torch.float32).view(1, -1, 1, 1)
        self._std_t = torch.tensor(self.std, dtype=torch.float32).view(1, -1, 1, 1)

    def norm(self, phys: torch.Tensor) -> torch.Tensor:
        return (phys - self._mean_t) / self._std_t

    def denorm(self, model: torch.Tensor) -> torch.Tensor:
        return model * self._std_t + self._mean_t

    def warm_inputs(self, stage: str) -> torch.Tensor:
        """Typical inputs of a stage, needed by a warm start only to convert a stage to its lean form
        (:mod:`training.warm_start`); tasks with lean networks override it."""
        raise KeyError(f"{type(self).__name__} has no warm-start inputs for stage {stage!r}: its networks have no "
                       "lean form to convert to")

    def ramp_activations(self, fraction: float) -> None:
        """Lean networks warm-started from GELU weights move to ReLU over the first ``model.relu_ramp`` of the
        budget (:class:`rscore.models.blocks.Act`; the exported networks are always plain ReLU)."""
        ramp = float(self.cfg.model.get("relu_ramp", 0.0))
        weight = 1.0 if ramp <= 0 else min(1.0, fraction / ramp)
        for m in self.networks.modules():
            if isinstance(m, Act):
                m.relu_weight = weight

    def init_perceptual(self) -> None:
        """``self.vgg``: the VGG16 feature loss when ``loss.perceptual`` > 0, else None. Tasks call it at a fixed
        point of their construction (its layers draw from torch's RNG before loading their weights, so moving it
        would change a seeded run)."""
        self.rgb_idx = [self.bands.index(b) for b in ("red", "green", "blue")]
        self.vgg: nn.Module | None = None
        if float(self.cfg.loss.get("perceptual", 0.0)) > 0:
            from rscore.metrics.lpips import VGGFeatureLoss

            self.vgg = VGGFeatureLoss(n_layers=int(self.cfg.loss.get("vgg_layers", 2)))

    def _rgb_pm1(self, model: torch.Tensor) -> torch.Tensor:
        """Model units -> red, green, blue in [-1, 1] for the VGG loss (reflectance 0-0.5 or 8-bit 0-1 spans it)."""
        top = 1.0 if self.domain == "rgb8" else 0.5
        return self.denorm(model)[:, self.rgb_idx] * (2.0 / top) - 1.0

    def psnrs(self, clean: np.ndarray, est: np.ndarray) -> list[float]:
        """PSNR per patch, data range 1 (8-bit) or 0.5 (reflectance)."""
        from rscore.metrics.fidelity import psnr

        rng_ = 1.0 if self.domain == "rgb8" else 0.5
        return [float(psnr(c, e, rng_)) for c, e in zip(clean, est)]

    def mean_psnr(self, clean: np.ndarray, est: np.ndarray) -> float:
        """Mean PSNR over a batch (see :meth:`psnrs`)."""
        return float(np.mean(self.psnrs(clean, est)))

    def mean_and_worst_psnr(self, clean: np.ndarray, est: np.ndarray) -> tuple[float, float]:
        """(mean, lowest) PSNR over a batch, from one pass of :meth:`psnrs` (the no-harm figures of validation)."""
        per_patch = self.psnrs(clean, est)
        return float(np.mean(per_patch)), min(per_patch)

    def _scene_roles(self) -> dict[str, list[str]]:
        """Scene names by role: trained on (blocks), held out for validation, held out for test."""
        roles = self.pool.holdouts or ("blocks",) * len(self.pool.names)
        return {f"{key}_scenes": [n for n, h in zip(self.pool.names, roles) if h == role]
                for key, role in (("train", "blocks"), ("val", "val"), ("test", "test"))}

    def manifest(self, task: str, pipeline: str, stages: Mapping[str, Any], nets: nn.ModuleDict,
                 info: dict[str, Any], default_tile_px: int, size_multiple: int = SIZE_MULTIPLE,
                 tensors: Mapping[str, dict[str, TensorSpec]] | None = None, **fields: Any) -> Manifest:
        """The manifest fields every task fills the same way (``stages``: name -> StageExport; ``tensors``:
        stage -> the grids of tensors that are not where :meth:`Manifest.tensor` puts them by default)."""
        e = self.cfg.export
        spec = BandSpec(self.bands, tuple(map(float, self.mean)), tuple(map(float, self.std)))
        return Manifest(
            name=self.cfg.name, task=task, title=str(e.get("title", self.cfg.name)), pipeline=pipeline,  # type: ignore[arg-type]
            input=spec, output=spec, value_scale={k: float(v) for k, v in e["value_scale"].items()},
            stages={k: StageSpec(v.file, "", v.inputs, v.outputs, dict((tensors or {}).get(k, {})))
                    for k, v in stages.items()},
            tiling=TilingDefaults(tile_size_px=int(e.get("tile_size_px", default_tile_px)),
                                  overlap_px=int(e.get("overlap_px", 32)), margin_px=int(e.get("margin_px", 48)),
                                  size_multiple=size_multiple),
            native_resolution_m=e.get("native_resolution_m"), description=str(e.get("description", "")),
            training={**info, "trained": True, "params": {k: count_params(v) for k, v in nets.items()},
                      "data_sources": list(self.cfg.data["sources"]), "scenes": list(self.pool.names),
                      **self._scene_roles()},
            **fields,
        )
