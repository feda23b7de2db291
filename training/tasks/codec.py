"""Enhancement of codec-decoded rasters after LDM-RSIC, trained in three phases within one budget.

Pairs: clean patches and their round trip through a lossy codec in memory (GDAL; :func:`roundtrip`), one codec
setting per batch drawn from ``data.codecs`` rows ``[codec, low, high]`` (JPEG/WebP quality, JPEG 2000 compression
ratio, log-uniform) at the domain's bit depth (8-bit RGB, 16-bit reflectance). The batch is encoded as one mosaic
(:func:`mosaic_roundtrip`): a 96-pixel patch alone is too small for JPEG 2000 at high ratios, whose headers then
take the whole budget and the decoded patch is garbage. ``data.identity_fraction`` of the pairs are the clean
patch itself: an image that was never compressed must come back unchanged. ``data.block_offset_px`` (0 = off):
encode patches that many pixels larger and cut the training patch at a random offset, so that the codec's block
grid (8/16 px for JPEG and WebP) does not always fall on the networks' grid (a raster cropped after decoding
shifts it). ``data.joint_file_fraction`` (0 = off): JPEG 2000 of 4-band patches is encoded one file per band, as
Sentinel-2 delivers it, except on that fraction of the batches, where all bands go in one file, as
``rsrestore:compress_raster`` writes them.

1. Stage I (until ``model.prior_fraction`` of the budget): the prior encoder (HQ and decoded) and the
   enhancement network (MEN), L1 (+ VGG features); on ``model.prior_dropout`` of the samples the prior is zero,
   so that the same MEN also runs without one (the no-prior ablation).
2. Stage II, frozen (until ``model.joint_fraction``): the condition encoder and the prior denoiser. The target is
   ``z0 = E(HQ, decoded) / z_std`` (``z_std`` measured once when the phase starts and folded into the exported
   decoder); the 4-step chain is unrolled DiffIR-style from ``q(x_4 | z0)`` (at T = 4, sqrt(abar_4) = 0.05, so
   the start is 5 % target and 99.9 % noise; the runtime starts from pure noise) with gradients through the
   runtime's own plan, loop and terms rule; loss ``MSE(chain, z0) + MSE(c, z0) + L1(MEN(decoded, chain), HQ)``.
3. Stage II, joint: the same losses plus Stage I's (with prior dropout), and the MEN and the prior encoder train
   too.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rscore.bundle.manifest import LatentSpec, TensorSpec
from rscore.degradations.codecs import CodecParams, roundtrip, sample_codec
from rscore.diffusion.loop import apply_step
from rscore.diffusion.plan import SamplerConfig, make_plan
from rscore.diffusion.schedules import ddpm_alpha_bar
from rscore.diffusion.terms import TermContext, outputs_to_terms
from rscore.models.ldm_rsic import (
    LATENT_FACTOR,
    SIZE_MULTIPLE,
    EnhancementNet,
    PriorCondEncoder,
    PriorDecoder,
    PriorDenoiser,
    PriorEncoder,
    RsicConfig,
)
from rscore.raster.lossy import CODEC_NAMES
from rscore.torch_ops.diffusion import sample_torch, seeded_noise
from training.config import TrainConfig
from training.tasks.common import ImageTask
from training.tasks.imagery import augment_config, augmented_patches
from training.tasks.sr import LatentScale

#: the validation pairs' codec rows, cycled over the patches: (codec, quality or ratio)
VAL_QUALITIES_8BIT = (("jpeg", 20), ("webp", 25), ("jpeg", 50), ("jp2", 24.0))
VAL_QUALITIES_16BIT = (("jp2", 64.0), ("jp2", 24.0), ("jp2", 120.0))
#: Stage I's encoder in a bundle folder: read by the evaluation (upper bound), not by the runtime
PRIOR_ENCODER_FILE = "prior_encoder.onnx"


def mosaic_roundtrip(patches: np.ndarray, params: CodecParams, per_band: bool | None = None
                     ) -> tuple[np.ndarray, float]:
    """Round-trip (n, bands, p, p) patches as one mosaic of two rows (one for n = 1); returns the decoded patches
    and the encoded bits per pixel. ``per_band`` as :func:`rscore.degradations.codecs.roundtrip`."""
    n, b, p, _ = patches.shape
    rows = 2 if n > 1 else 1
    cols = -(-n // rows)
    mosaic = np.zeros((b, rows * p, cols * p), np.float32)
    for i, patch in enumerate(patches):
        mosaic[:, (i // cols) * p:(i // cols + 1) * p, (i % cols) * p:(i % cols + 1) * p] = patch
    trip = roundtrip(mosaic, params, per_band)
    out = np.stack([trip.image[:, (i // cols) * p:(i // cols + 1) * p, (i % cols) * p:(i % cols + 1) * p]
                    for i in range(n)])
    return out, trip.bits_per_pixel


class EnhanceDecodedTask(ImageTask):
    """Data, the three training phases, validation and export of the codec-enhancement bundle."""

    def __init__(self, cfg: TrainConfig) -> None:
        if cfg.patch_px % SIZE_MULTIPLE:
            raise ValueError(f"patch_px must be a multiple of {SIZE_MULTIPLE} for codec enhancement, "
                             f"got {cfg.patch_px}")
        self.bits = 8 if cfg.data.get("domain", "reflectance") == "rgb8" else 16
        self.codecs = [tuple(row) for row in cfg.data["codecs"]]
        # normalisation statistics from clean patches only: a decoded image has the same band means and nearly the
        # same spread, and single small patches cannot be round-tripped faithfully (see module doc)
        super().__init__(cfg, lambda clean, rng: clean)
        m = cfg.model
        self.rcfg = RsicConfig(len(self.bands), prior_channels=int(m.get("prior_channels", 8)),
                               width=int(m.get("width", 16)), mid_blocks=int(m.get("mid_blocks", 2)),
                               heads=int(m.get("heads", 2)), encoder_width=int(m.get("encoder_width", 64)),
                               denoiser_width=int(m.get("denoiser_width", 48)),
                               denoiser_blocks=int(m.get("denoiser_blocks", 4)))
        self.sampler = SamplerConfig("ddim", num_timesteps=int(m.get("num_timesteps", 4)),
                                     default_steps=int(m.get("default_steps", 4)), eta=1.0,
                                     ddpm_schedule=m.get("ddpm_schedule", "sqrt_linear"), posterior_noise=False)
        self.chain = make_plan(self.sampler, self.sampler.num_timesteps)
        self.prior_fraction = float(m.get("prior_fraction", 0.45))
        self.joint_fraction = float(m.get("joint_fraction", 0.8))
        self.prior_dropout = float(m.get("prior_dropout", 0.1))
        self.networks = nn.ModuleDict({
            "enc": PriorEncoder(self.rcfg), "men": EnhancementNet(self.rcfg), "cond": PriorCondEncoder(self.rcfg),
            "denoiser": PriorDenoiser(self.rcfg), "z_scale": LatentScale(),
        })
        self.augment = augment_config(cfg.data)
        self.identity_fraction = float(cfg.data.get("identity_fraction", 0.0))
        self.block_offset_px = int(cfg.data.get("block_offset_px", 0))
        self.joint_file_fraction = float(cfg.data.get("joint_file_fraction", 0.0))
        self.progress = 0.0
        self.init_perceptual()
        vrng = np.random.default_rng(778)
        nval = int(cfg.data.get("val_patches", 8))
        self.val_hq = self.pool.patches("val", cfg.patch_px, nval, vrng)
        rows = VAL_QUALITIES_8BIT if self.bits == 8 else VAL_QUALITIES_16BIT
        self.val_dec = np.empty_like(self.val_hq)
        for k, (codec, strength) in enumerate(rows[:nval]):
            params = sample_codec(vrng, [(codec, strength, strength)], self.bits)
            self.val_dec[k::len(rows)] = mosaic_roundtrip(self.val_hq[k::len(rows)], params)[0]

    # ---- data -----------------------------------------------------------------------------------
    def set_progress(self, fraction: float) -> None:
        self.progress = float(fraction)

    @property
    def phase(self) -> str:
        if self.progress < self.prior_fraction:
            return "prior"
        return "diffusion" if self.progress < self.joint_fraction else "joint"

    def batch(self, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        p, o = self.cfg.patch_px, self.block_offset_px
        hq = augmented_patches(self.pool, "train", p + o, self.cfg.batch_size, self.domain, rng, self.augment)
        params = sample_codec(rng, self.codecs, self.bits)
        # JPEG 2000 of more than 3 bands: one file per band (as Sentinel-2), or on this fraction of the batches
        # all bands in one file (as rsrestore:compress_raster writes them); drawn only when asked for
        joint = self.joint_file_fraction > 0 and len(self.bands) > 3 and rng.random() < self.joint_file_fraction
        dec = mosaic_roundtrip(hq, params, False if joint else None)[0]
        if o:
            cuts = rng.integers(0, o + 1, size=(len(hq), 2))
            hq = np.stack([h[:, r:r + p, c:c + p] for h, (r, c) in zip(hq, cuts)])
            dec = np.stack([d[:, r:r + p, c:c + p] for d, (r, c) in zip(dec, cuts)])
        identity = rng.random(len(hq)) < self.identity_fraction
        dec[identity] = hq[identity]
        keep = (rng.random(len(hq)) >= self.prior_dropout).astype(np.float32)
        return {"hq": self.norm(torch.from_numpy(hq)), "dec": self.norm(torch.from_numpy(dec)),
                "keep": torch.from_numpy(keep).view(-1, 1, 1, 1)}

    # ---- losses ---------------------------------------------------------------------------------
    def unroll(self, nets: nn.ModuleDict, z0: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """The sampling chain from noise to x0 with gradients, through the runtime's plan, loop and terms rule."""
        x = torch.randn_like(z0)
        ab_t = float(ddpm_alpha_bar(self.sampler.num_timesteps, self.sampler.ddpm_schedule)[self.chain.steps[0].t])
        x = z0.detach() * math.sqrt(ab_t) + x * math.sqrt(1.0 - ab_t)
        ctx: TermContext[torch.Tensor] = TermContext()
        for step in self.chain.steps:
            t = torch.full((z0.shape[0],), step.t_model)
            terms = outputs_to_terms("ddim", x, step, {"x0": nets["denoiser"](x, c, t)}, ctx)
            x = apply_step(step, x, terms, lambda _k: torch.zeros_like(z0))
        return x

    def _stage_one(self, nets: nn.ModuleDict, hq: torch.Tensor, dec: torch.Tensor, keep: torch.Tensor
                   ) -> dict[str, torch.Tensor]:
        z = nets["enc"](hq, dec)
        out = nets["men"](dec, z * keep).float()
        res = {"l1": (out - hq).abs().mean()}
        w = float(self.cfg.loss.get("perceptual", 0.0))
        if self.vgg is not None and w > 0:
            res["perceptual"] = w * self.vgg(self._rgb_pm1(out), self._rgb_pm1(hq))
        return res

    def losses(self, nets: nn.ModuleDict, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        hq, dec, keep = batch["hq"], batch["dec"], batch["keep"]
        phase = self.phase
        if phase == "prior":
            return self._stage_one(nets, hq, dec, keep)
        zs = nets["z_scale"]
        joint = phase == "joint"
        nets["enc"].requires_grad_(joint)
        nets["men"].requires_grad_(joint)
        with torch.no_grad():
            if float(zs.std) == 0.0:  # first Stage II step: measure the prior's spread once
                zs.std.fill_(max(float(nets["enc"](hq, dec).float().std()), 1e-3))
            z0 = nets["enc"](hq, dec).float() / zs.std
        c = nets["cond"](dec).float()
        x0 = self.unroll(nets, z0, c).float()
        out = nets["men"](dec, x0 * zs.std).float()
        res = {"chain_mse": (x0 - z0).pow(2).mean(), "cond_mse": (c - z0).pow(2).mean(),
               "chain_l1": float(self.cfg.loss.get("chain_l1", 1.0)) * (out - hq).abs().mean()}
        if joint:
            res.update({f"prior_{k}": v for k, v in self._stage_one(nets, hq, dec, keep).items()})
        return res

    # ---- evaluation and validation --------------------------------------------------------------
    def enhance_torch(self, nets: nn.ModuleDict, dec_phys: np.ndarray, hq_phys: np.ndarray | None = None,
                      seed: int = 0, steps: int | None = None) -> dict[str, np.ndarray]:
        """Enhanced images in physical units: ``no_prior`` (MEN with z = 0), ``regression`` (the condition as
        prior: the one-pass path), ``diffusion`` (the sampled prior) and, with ``hq_phys``, ``true_prior``
        (Stage I's prior from the true image: the upper bound)."""
        y = self.norm(torch.from_numpy(np.ascontiguousarray(dec_phys, dtype=np.float32)))
        std = float(nets["z_scale"].std) or 1.0
        plan = make_plan(self.sampler, steps or self.sampler.default_steps)
        out: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            c = nets["cond"](y)
            out["no_prior"] = nets["men"](y, torch.zeros_like(c))
            out["regression"] = nets["men"](y, c * std)

            def den(x, t):  # noqa: ANN001, ANN202 - t: (1,), shared by the batch
                return {"x0": nets["denoiser"](x, c, t.expand(c.shape[0]))}

            z = sample_torch(plan, torch.zeros_like(c), den, seeded_noise(plan, tuple(c.shape), seed), "ddim")
            out["diffusion"] = nets["men"](y, z * std)
            if hq_phys is not None:
                hq = self.norm(torch.from_numpy(np.ascontiguousarray(hq_phys, dtype=np.float32)))
                out["true_prior"] = nets["men"](y, nets["enc"](hq, y))
        return {k: self.denorm(v).numpy() for k, v in out.items()}

    def validate(self, nets: nn.ModuleDict) -> dict[str, float]:
        nets.eval()
        hq = self.val_hq
        res = {"psnr_decoded": self.mean_psnr(hq, self.val_dec)}
        if float(nets["z_scale"].std) == 0.0:  # Stage II has not started: the chain is untrained
            with torch.no_grad():
                y = self.norm(torch.from_numpy(self.val_dec))
                true = nets["men"](y, nets["enc"](self.norm(torch.from_numpy(hq)), y))
            return {**res, "psnr_true_prior": self.mean_psnr(hq, self.denorm(true).numpy())}
        out = self.enhance_torch(nets, self.val_dec, hq)
        return {**res, **{f"psnr_{k}": self.mean_psnr(hq, v) for k, v in out.items()}}

    # ---- export ---------------------------------------------------------------------------------
    def export(self, nets: nn.ModuleDict, out_dir: Path, info: dict[str, Any]) -> Path:
        from export.bundle_writer import build_bundle
        from export.onnx_export import StageExport, export_stage

        nets = nets.float().eval()
        std = float(nets["z_scale"].std)
        if std == 0.0:
            raise RuntimeError("Stage II never ran (model.prior_fraction too large for the budget): train longer "
                               "or lower model.prior_fraction")
        stages = {
            "cond": StageExport(nets["cond"], ("y",), ("c",), "cond.onnx"),
            "denoiser": StageExport(nets["denoiser"], ("x_t", "c", "t"), ("x0",), "denoiser.onnx"),
            "decoder": StageExport(PriorDecoder(nets["men"], std), ("x0", "y"), ("x",), "decoder.onnx"),
        }
        k = self.rcfg.prior_channels
        lat = TensorSpec("latent", k)
        tensors = {"cond": {"c": lat}, "denoiser": {"x_t": lat, "c": lat, "x0": lat}, "decoder": {"x0": lat}}
        codecs = sorted({CODEC_NAMES[str(row[0])] for row in self.codecs})
        manifest = self.manifest(
            "enhance_decoded", "latent_prior", stages, nets,
            {**info, "z_std": std, "codecs": codecs, "bits": self.bits}, default_tile_px=512,
            sampler=self.sampler, latent=LatentSpec(k, LATENT_FACTOR), size_multiple=SIZE_MULTIPLE, tensors=tensors)
        bundle, _ = build_bundle(out_dir / self.cfg.name, manifest, stages, parity_rows=64, parity_cols=96)
        # Stage I's encoder, for the evaluation's upper bound only (the runtime never reads it: it needs the
        # high-quality image): (hq, y) model units -> z, unnormalised
        enc = StageExport(nets["enc"], ("hq", "y"), ("z",), PRIOR_ENCODER_FILE)
        example = {n: torch.randn(1, len(self.bands), 64, 96, generator=torch.Generator().manual_seed(2))
                   for n in ("hq", "y")}
        export_stage(enc, example, bundle.root / PRIOR_ENCODER_FILE, {"hq": "output", "y": "output", "z": "latent"})
        return bundle.root
