"""Continuous-scale super-resolution after LDCSR (METHODS.md section 4), trained in two phases within one budget.

Pairs: a clean HR patch of ``patch_px`` (a multiple of 32) and a real scale drawn log-uniformly in 1-8; the LR
size is ``l = round(patch_px / s0)`` and the exact scale ``s = patch_px / l``, so the LR cells tile the HR patch
and the output grid of the engine at scale ``s`` is exactly the HR grid. LR = sensor-like down-sampling (Gaussian
PSF, area resampling, noise; :func:`rscore.degradations.resample.downsample`), quantised like a raster; the
networks see ``bic``, the LR upsampled by the engine's own bicubic resampler (:func:`resample_window`), so
training and the plugin feed identical inputs.

1. Autoencoder (until ``ae_fraction`` of the budget): HR encoder + decoder, L1 + VGG feature loss + KL (1e-6).
2. Latent diffusion: the latent ``z0 = mean / z_std`` (``z_std`` measured once when the phase starts and folded
   into the exported decoder); the condition encoder and the latent denoiser are trained DiffIR-style: start from
   ``q(x_T | z0)``, unroll every step of the sampling plan (the runtime's own loop and terms rule) with
   gradients, loss ``MSE(chain output, z0) + MSE(c, z0)``. The autoencoder is frozen. Optional image-space
   terms (``loss.chain_l1``, ``loss.chain_perceptual``) decode the chain output and compare it with HR, so that
   the chain is pushed towards latents that decode to sharp, textured images rather than the mean latent.

``data.identity_fraction`` of the pairs are identity pairs (scale 1, the clean patch as its own LR).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rscore.bundle.manifest import LatentSpec, ScaleRange, TensorSpec
from rscore.degradations.resample import downsample, sample_downsample_params
from rscore.diffusion.loop import apply_step
from rscore.diffusion.plan import SamplerConfig, make_plan
from rscore.diffusion.schedules import ddpm_alpha_bar
from rscore.diffusion.terms import TermContext, outputs_to_terms
from rscore.models.ldcsr import (
    LATENT_FACTOR,
    SIZE_MULTIPLE,
    CondEncoder,
    HrEncoder,
    LatentDenoiser,
    LdcsrConfig,
    SrDecoder,
    kl_to_standard_normal,
)
from rscore.tiling.grid import Window
from rscore.tiling.resample import resample_window
from rscore.torch_ops.diffusion import sample_torch, seeded_noise
from training.config import TrainConfig
from training.tasks.common import ImageTask
from training.tasks.imagery import augment_config, augmented_patches, quantize

#: scales of the validation pairs
VAL_SCALES = (2.0, 2.5, 4.0, 8.0)


class LatentScale(nn.Module):
    """The latent's standard deviation (a buffer, so that checkpoints and the EMA carry it); 0 = not measured."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("std", torch.zeros(1))


class ScaledDecoder(nn.Module):
    """Export wrapper: the decoder reads the normalised latent x0 and multiplies it back by ``z_std``."""

    def __init__(self, dec: SrDecoder, z_std: float) -> None:
        super().__init__()
        self.dec, self.z_std = dec, float(z_std)

    def forward(self, x0: torch.Tensor, y: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return self.dec(x0 * self.z_std, y, scale)


def lr_degradation(data: dict[str, Any]) -> dict[str, Any]:
    """The keywords of :func:`sample_downsample_params` that a config's ``data`` section sets: ``lr_noise``
    (noise_max, shot_fraction, min_photons_per_unit) and ``lr_psf_lr_px`` (the PSF's range, LR pixels; the default
    0.3-0.7 is a blurred sensor, 0 a plain area average)."""
    out: dict[str, Any] = {k: float(v) for k, v in (data.get("lr_noise") or {}).items()}
    if data.get("lr_psf_lr_px") is not None:
        lo, hi = (float(v) for v in data["lr_psf_lr_px"])
        out["psf_range_lr_px"] = (lo, hi)
    return out


def lr_pair(hr: np.ndarray, s0: float, domain: str, rng: np.random.Generator, **noise: Any
            ) -> tuple[np.ndarray, float]:
    """(bicubic upsampling of the degraded LR, exact scale) for an HR patch (bands, P, P) and a target scale;
    ``noise``: keywords of :func:`sample_downsample_params` (:func:`lr_degradation` of the config). A scale of
    exactly 1 is the identity pair (the clean patch itself, no blur, no noise): a clean raster at scale 1 must
    come back unchanged."""
    p = hr.shape[1]
    if s0 == 1.0:
        return hr.copy(), 1.0
    lr_px = max(2, int(round(p / s0)))
    s = p / lr_px
    params = sample_downsample_params(rng, factor=min(max(s, 1.0), 8.0), **noise)
    lr = quantize(downsample(hr, params, rng), domain)
    bic = resample_window(lr, Window(0, 0, lr_px, lr_px), lr_px, lr_px, s, Window(0, 0, p, p), "bicubic")
    return bic, s


class SuperResolutionTask(ImageTask):
    """Data, the two training phases, validation and export of the LDCSR bundle."""

    def __init__(self, cfg: TrainConfig) -> None:
        if cfg.patch_px % SIZE_MULTIPLE:
            raise ValueError(f"patch_px must be a multiple of {SIZE_MULTIPLE} for super-resolution, got {cfg.patch_px}")
        super().__init__(cfg, lambda c, rng: c)
        m = cfg.model
        n = len(self.bands)
        self.lcfg = LdcsrConfig(n, latent_channels=int(m.get("latent_channels", 4)), width=int(m.get("width", 8)),
                                denoiser_width=int(m.get("denoiser_width", 32)))
        self.sampler = SamplerConfig("ddim", num_timesteps=int(m.get("num_timesteps", 4)),
                                     default_steps=int(m.get("default_steps", 4)), eta=1.0,
                                     ddpm_schedule=m.get("ddpm_schedule", "sqrt_linear"))
        self.chain = make_plan(self.sampler, self.sampler.num_timesteps)
        self.ae_fraction = float(m.get("ae_fraction", 0.5))
        self.scale_range = tuple(float(v) for v in m.get("scale_range", (1.0, 8.0)))
        self.networks = nn.ModuleDict({
            "enc": HrEncoder(self.lcfg), "dec": SrDecoder(self.lcfg), "cond": CondEncoder(self.lcfg),
            "denoiser": LatentDenoiser(self.lcfg), "z_scale": LatentScale(),
        })
        self.augment = augment_config(cfg.data)
        #: noise and PSF of the training down-sampling (``data.lr_noise``, ``data.lr_psf_lr_px``)
        self.lr_noise = lr_degradation(cfg.data)
        #: fraction of training pairs that are identity pairs (scale 1, LR = the clean HR patch)
        self.identity_fraction = float(cfg.data.get("identity_fraction", 0.0))
        self.progress = 0.0
        self.init_perceptual()
        vrng = np.random.default_rng(777)
        nval = int(cfg.data.get("val_patches", 8))
        hr = self.pool.patches("val", cfg.patch_px, nval, vrng)
        pairs = [lr_pair(h, VAL_SCALES[i % len(VAL_SCALES)], self.domain, vrng, **self.lr_noise)
                 for i, h in enumerate(hr)]
        self.val_hr = hr
        self.val_bic = np.stack([b for b, _ in pairs])
        self.val_scale = np.array([s for _, s in pairs], np.float32)

    # ---- phases and data ------------------------------------------------------------------------
    def set_progress(self, fraction: float) -> None:
        self.progress = float(fraction)

    @property
    def phase(self) -> str:
        return "autoencoder" if self.progress < self.ae_fraction else "diffusion"

    def batch(self, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        hr = augmented_patches(self.pool, "train", self.cfg.patch_px, self.cfg.batch_size, self.domain, rng,
                               self.augment)
        lo, hi = np.log(self.scale_range[0]), np.log(self.scale_range[1])
        # the identity draw is skipped when the fraction is 0, so older configs keep their exact pairs
        scales = [1.0 if self.identity_fraction > 0 and rng.random() < self.identity_fraction
                  else float(np.exp(rng.uniform(lo, hi))) for _ in hr]
        pairs = [lr_pair(h, s, self.domain, rng, **self.lr_noise) for h, s in zip(hr, scales, strict=True)]
        bic = np.stack([b for b, _ in pairs])
        return {"hr": self.norm(torch.from_numpy(hr)), "bic": self.norm(torch.from_numpy(bic)),
                "scale": torch.tensor([s for _, s in pairs], dtype=torch.float32)}

    # ---- losses ---------------------------------------------------------------------------------
    def unroll(self, nets: nn.ModuleDict, z0: torch.Tensor, c: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """The sampling chain from q(x_T | z0) to x_0 with gradients, through the runtime's loop arithmetic."""
        ab_t = float(ddpm_alpha_bar(self.sampler.num_timesteps, self.sampler.ddpm_schedule)[self.chain.steps[0].t])
        x = z0 * math.sqrt(ab_t) + torch.randn_like(z0) * math.sqrt(1.0 - ab_t)
        ctx: TermContext[torch.Tensor] = TermContext()
        for step in self.chain.steps:
            t = torch.full((z0.shape[0],), step.t_model)
            terms = outputs_to_terms("ddim", x, step, {"eps": nets["denoiser"](x, c, t, scale)}, ctx)
            x = apply_step(step, x, terms, lambda _k: torch.randn_like(z0))
        return x

    def losses(self, nets: nn.ModuleDict, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        hr, bic, scale = batch["hr"], batch["bic"], batch["scale"]
        if self.phase == "autoencoder":
            mean, logvar = nets["enc"](hr, bic)
            z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
            out = nets["dec"](z, bic, scale).float()
            res = {"ae_l1": (out - hr).abs().mean(),
                   "ae_kl": float(self.cfg.loss.get("kl", 1e-6)) * kl_to_standard_normal(mean.float(), logvar.float())}
            w = float(self.cfg.loss.get("perceptual", 0.0))
            if self.vgg is not None and w > 0:
                res["perceptual"] = w * self.vgg(self._rgb_pm1(out), self._rgb_pm1(hr))
            w = float(self.cfg.loss.get("latent_anchor", 0.0))
            if w > 0:
                # fitting a new HR encoder to a trained, frozen decoder and condition encoder: among the latents
                # the decoder decodes equally well, prefer the one the condition encoder predicts, the latent
                # space the condition encoder and the denoiser were trained in
                std = float(nets["z_scale"].std)
                if std == 0.0:
                    raise RuntimeError("loss.latent_anchor needs the latent scale of a trained bundle "
                                       "(model.init_from a super-resolution bundle)")
                with torch.no_grad():
                    c = nets["cond"](bic, scale).float()
                res["latent_anchor"] = w * (mean.float() / std - c).pow(2).mean()
            return res
        with torch.no_grad():
            mean = nets["enc"](hr, bic)[0].float()
            zs = nets["z_scale"]
            if float(zs.std) == 0.0:  # first diffusion step: measure the latent's spread once
                zs.std.fill_(max(float(mean.std()), 1e-3))
        z0 = mean / zs.std
        c = nets["cond"](bic, scale).float()
        x0 = self.unroll(nets, z0, c, scale).float()
        res = {"chain_mse": (x0 - z0).pow(2).mean(), "cond_mse": (c - z0).pow(2).mean()}
        # image-space terms on the decoded chain output (the autoencoder frozen, gradients pass through the
        # decoder to the chain): without them the chain converges to the mean latent, i.e. the regression path
        w_l1, w_p = float(self.cfg.loss.get("chain_l1", 0.0)), float(self.cfg.loss.get("chain_perceptual", 0.0))
        if w_l1 > 0 or w_p > 0:
            nets["enc"].requires_grad_(False)
            nets["dec"].requires_grad_(False)
            out = nets["dec"](x0 * zs.std, bic, scale).float()
            if w_l1 > 0:
                res["chain_l1"] = w_l1 * (out - hr).abs().mean()
            if w_p > 0 and self.vgg is not None:
                res["chain_perceptual"] = w_p * self.vgg(self._rgb_pm1(out), self._rgb_pm1(hr))
        return res

    # ---- validation -----------------------------------------------------------------------------
    def restore_torch(self, nets: nn.ModuleDict, bic_phys: np.ndarray, scale: np.ndarray, seed: int = 0
                      ) -> dict[str, np.ndarray]:
        """{"regression": decoder on the condition, "diffusion": the sampled chain} in physical units."""
        y = self.norm(torch.from_numpy(np.ascontiguousarray(bic_phys, dtype=np.float32)))
        s = torch.from_numpy(np.ascontiguousarray(scale, dtype=np.float32))
        std = float(nets["z_scale"].std) or 1.0
        plan = make_plan(self.sampler, self.sampler.default_steps)
        with torch.no_grad():
            c = nets["cond"](y, s)
            reg = nets["dec"](c * std, y, s)

            def den(x, t):  # noqa: ANN001, ANN202 - t: (1,), shared by the batch
                return {"eps": nets["denoiser"](x, c, t.expand(c.shape[0]), s)}

            z = sample_torch(plan, torch.zeros_like(c), den, seeded_noise(plan, tuple(c.shape), seed), "ddim")
            dif = nets["dec"](z * std, y, s)
        return {"regression": self.denorm(reg).numpy(), "diffusion": self.denorm(dif).numpy()}

    def validate(self, nets: nn.ModuleDict) -> dict[str, float]:
        nets.eval()
        out = self.restore_torch(nets, self.val_bic, self.val_scale)
        with torch.no_grad():
            y = self.norm(torch.from_numpy(self.val_bic))
            ae = nets["dec"](nets["enc"](self.norm(torch.from_numpy(self.val_hr)), y)[0], y,
                             torch.from_numpy(self.val_scale))
        hr = self.val_hr
        return {"psnr_bicubic": self.mean_psnr(hr, self.val_bic), "psnr_autoencoder": self.mean_psnr(
                hr, self.denorm(ae).numpy()), "psnr_regression": self.mean_psnr(hr, out["regression"]),
                "psnr_diffusion": self.mean_psnr(hr, out["diffusion"])}

    # ---- export ---------------------------------------------------------------------------------
    def export(self, nets: nn.ModuleDict, out_dir: Path, info: dict[str, Any]) -> Path:
        from export.bundle_writer import build_bundle
        from export.onnx_export import StageExport

        nets = nets.float().eval()
        std = float(nets["z_scale"].std)
        if std == 0.0:
            raise RuntimeError("the latent diffusion phase never ran (ae_fraction too large for the budget): "
                               "train longer or lower model.ae_fraction")
        stages = {
            "cond": StageExport(nets["cond"], ("y", "scale"), ("c",), "cond.onnx"),
            "denoiser": StageExport(nets["denoiser"], ("x_t", "c", "t", "scale"), ("eps",), "denoiser.onnx"),
            "decoder": StageExport(ScaledDecoder(nets["dec"], std), ("x0", "y", "scale"), ("x",), "decoder.onnx"),
        }
        k = self.lcfg.latent_channels
        lat = TensorSpec("latent", k)
        tensors = {"cond": {"c": lat}, "denoiser": {"x_t": lat, "c": lat, "eps": lat}, "decoder": {"x0": lat}}
        lo, hi = self.scale_range
        manifest = self.manifest(
            "super_resolve", "ldcsr", stages, nets, {**info, "z_std": std}, default_tile_px=512,
            sampler=self.sampler, latent=LatentSpec(k, LATENT_FACTOR), scale=ScaleRange(lo, hi, min(max(4.0, lo), hi)),
            resample="bicubic", size_multiple=SIZE_MULTIPLE, tensors=tensors)
        bundle, _ = build_bundle(out_dir / self.cfg.name, manifest, stages, parity_rows=64, parity_cols=96)
        return bundle.root
