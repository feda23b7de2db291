"""Dehazing after DS-RDMPD (METHODS.md section 2): a one-pass stage 1 + residual diffusion with perceptual
decoding (stage 2), trained jointly.

Stage 1 is :class:`rscore.models.dsrdmpd.AffineDehazeNet`: the MCESS-UNet trunk predicting a smooth affine
inversion of the haze (transmission and airlight), identity at initialisation.

Per step: clean patches (geographic train split of the training scenes, augmented by
:mod:`training.tasks.augment`) are hazed on the fly, except a ``clear_fraction`` of them that stay clean
(target = input, weighted by ``1 + loss.clear_weight``); stage 1 maps the hazy patch to a coarse estimate
(L1 + frequency loss); stage 2 learns the RDDM residual r = coarse - clean from
x_t = clean + abar_t r + bbar_t eps, conditioned on the hazy patch and the coarse estimate, with an L1 loss
on r and a VGG16 feature loss on x0_hat = coarse - r_hat. Stage 1's output is detached for stage 2.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rscore.degradations.haze import add_haze, sample_haze_params
from rscore.diffusion.plan import SamplerConfig, make_plan
from rscore.models.dsrdmpd import AffineDehazeNet, ResidualDenoiser, UNetConfig
from rscore.torch_ops.diffusion import ForwardTables, sample_torch, seeded_noise
from training.config import TrainConfig
from training.tasks.common import VALIDATION_STEPS, ImageTask, clean_floor_score
from training.tasks.imagery import augment_config, augmented_patches, quantize

LEVELS = ("thin", "moderate", "thick")


def alternate_haze(clean: np.ndarray, wavelengths_nm: tuple[float, ...], rng: np.random.Generator,
                   domain: str) -> np.ndarray:
    """A second, deliberately different haze generator (so the model does not learn one generator):
    transmission from a bilinearly upsampled coarse random grid plus a ramp, wavelength dependence
    drawn per image (from grey to strongly blue), airlight with a random colour cast."""
    bands, rows, cols = clean.shape
    g = rng.uniform(0.0, 1.0, size=(int(rng.integers(2, 6)), int(rng.integers(2, 6))))
    yy = np.linspace(0, g.shape[0] - 1, rows)
    xx = np.linspace(0, g.shape[1] - 1, cols)
    gy = np.array([np.interp(xx, np.arange(g.shape[1]), row) for row in g])  # (g_rows, cols)
    field = np.array([np.interp(yy, np.arange(g.shape[0]), gy[:, c]) for c in range(cols)]).T
    ang = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(ang) * np.mgrid[0:rows, 0:cols][1] / cols + np.sin(ang) * np.mgrid[0:rows, 0:cols][0] / rows)
    depth = 0.4 + field + rng.uniform(0, 0.8) * ramp
    depth = np.clip(depth, 0.05, None)
    beta = rng.uniform(0.1, 1.6)
    alpha = rng.uniform(-0.3, 2.0)
    lam = np.asarray(wavelengths_nm) / 550.0
    t = np.exp(-beta * lam[:, None, None] ** (-alpha) * depth[None])
    top = 1.0 if domain == "rgb8" else 0.6
    a = rng.uniform(0.5, 1.0) * top * (1 + rng.uniform(-0.15, 0.15, size=bands))
    return (clean * t + a[:, None, None] * (1 - t)).astype(np.float32)


class DehazeTask(ImageTask):
    """Data, losses, validation and export of the two-stage dehazing model."""

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__(cfg, lambda c, rng: self._haze(c, rng))
        m = cfg.model
        self.sampler = SamplerConfig("rddm", num_timesteps=int(m.get("num_timesteps", 1000)),
                                     default_steps=int(m.get("default_steps", 5)), eta=0.0,
                                     beta_bar_T_sq=float(m.get("beta_bar_T_sq", 0.01)))
        self.tables = ForwardTables.from_config(self.sampler)
        n = len(self.bands)
        self.networks = nn.ModuleDict({
            "coarse": AffineDehazeNet(UNetConfig(n, width=int(m.get("coarse_width", 16)),
                                                 context_px=int(m.get("context_px", 0)),
                                                 lean=bool(m.get("lean", False)))),
            "denoiser": ResidualDenoiser(UNetConfig(n, width=int(m.get("denoiser_width", 16)))),
        })
        self.augment = augment_config(cfg.data)
        self.init_perceptual()
        vrng = np.random.default_rng(777)
        nval = int(cfg.data.get("val_patches", 12))
        clean = self.pool.patches("val", int(cfg.data.get("val_patch_px", 128)), nval, vrng)
        hazy = np.stack([self._haze(c, vrng, LEVELS[i % 3], alternate=False) for i, c in enumerate(clean)])
        self.val_clean, self.val_hazy = clean, hazy

    # ---- data -----------------------------------------------------------------------------------
    def _haze(self, clean: np.ndarray, rng: np.random.Generator, level: str | None = None,
              alternate: bool | None = None) -> np.ndarray:
        if alternate is None:
            alternate = rng.random() < float(self.cfg.data.get("alternate_haze", 0.3))
        if alternate:
            hazy = alternate_haze(clean, self.pool.wavelengths_nm, rng, self.domain)
        elif level is None and rng.random() < float(self.cfg.data.get("trace_haze", 0.0)):
            # barely visible haze (optical depth 0.01-0.05): where "act" and "leave alone" meet
            params = replace(sample_haze_params(rng, "thin"), tau_550=float(rng.uniform(0.01, 0.05)))
            hazy = add_haze(clean, self.pool.wavelengths_nm, rng, params=params)[0].image
        else:
            hazy = add_haze(clean, self.pool.wavelengths_nm, rng, level=level)[0].image
        return quantize(hazy, self.domain)

    def batch(self, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        clean = augmented_patches(self.pool, "train", self.cfg.patch_px, self.cfg.batch_size, self.domain, rng,
                                  self.augment)
        clear_frac = float(self.cfg.data.get("clear_fraction", 0.1))
        is_clear = rng.random(len(clean)) < clear_frac
        # a clean pair is stored like any input (quantised): the target is exactly what the model reads
        clean = np.stack([quantize(c, self.domain) if k else c for c, k in zip(clean, is_clear)])
        hazy = np.stack([c if k else self._haze(c, rng) for c, k in zip(clean, is_clear)])
        return {"clean": self.norm(torch.from_numpy(clean)), "hazy": self.norm(torch.from_numpy(hazy)),
                "clear": torch.from_numpy(is_clear.astype(np.float32))}

    def set_progress(self, fraction: float) -> None:
        """Called by the harness before every step with the fraction of the budget spent."""
        self.ramp_activations(fraction)

    def warm_inputs(self, stage: str) -> torch.Tensor:
        """Typical inputs of a stage (32 training patches, hazy or clean as in training), for warm starts."""
        if stage != "coarse":
            raise KeyError(f"no warm-start inputs for stage {stage!r}")
        rng = np.random.default_rng(4321)
        return torch.cat([self.batch(rng)["hazy"] for _ in range(4)])

    # ---- losses ---------------------------------------------------------------------------------
    def losses(self, nets: nn.ModuleDict, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        clean, hazy = batch["clean"], batch["hazy"]
        # clean pairs weigh (1 + clear_weight): a model that damages a clean scene is worse than no model
        wgt = (1.0 + float(self.cfg.loss.get("clear_weight", 0.0)) * batch.get("clear", torch.zeros(len(clean))))
        wgt = (wgt / wgt.mean()).view(-1, 1, 1, 1)
        coarse = nets["coarse"](hazy)
        l1 = ((coarse.float() - clean).abs() * wgt).mean()
        freq = (torch.fft.rfft2(coarse.float()) - torch.fft.rfft2(clean)).abs().mean() / coarse.shape[-1]
        out = {"coarse_l1": l1, "coarse_freq": float(self.cfg.loss.get("frequency", 0.05)) * freq}
        y0 = coarse.detach().float()
        r = y0 - clean
        b = clean.shape[0]
        t = torch.randint(1, self.sampler.num_timesteps + 1, (b,))
        eps = torch.randn_like(clean)
        x_t = self.tables.q_sample(clean, y0, t, eps)
        r_hat = nets["denoiser"](x_t, hazy, y0, self.tables.t_model(t)).float()
        out["res_l1"] = ((r_hat - r).abs() * wgt).mean()
        w = float(self.cfg.loss.get("perceptual", 0.0))
        if self.vgg is not None and w > 0:
            x0_hat = y0 - r_hat
            out["perceptual"] = w * self.vgg(self._rgb_pm1(x0_hat), self._rgb_pm1(clean))
        return out

    # ---- validation -----------------------------------------------------------------------------
    def restore_torch(self, nets: nn.ModuleDict, hazy_phys: np.ndarray, steps: int | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
        """(stage 1 output, full two-stage output) in physical units for a batch of hazy patches."""
        # a bundle whose default is one pass (default_steps 0) is validated with VALIDATION_STEPS of sampling
        plan = make_plan(self.sampler, steps or self.sampler.default_steps or VALIDATION_STEPS)
        y = self.norm(torch.from_numpy(np.ascontiguousarray(hazy_phys, dtype=np.float32)))
        with torch.no_grad():
            coarse = nets["coarse"](y)
            outs = []
            for i in range(y.shape[0]):
                yi, ci = y[i : i + 1], coarse[i : i + 1]

                def den(x, t, yi=yi, ci=ci):  # noqa: ANN001
                    return {"res": nets["denoiser"](x, yi, ci, t)}

                outs.append(sample_torch(plan, ci, den, seeded_noise(plan, tuple(ci.shape), i), "rddm"))
            full = torch.cat(outs)
        return self.denorm(coarse).numpy(), self.denorm(full).numpy()

    def validate(self, nets: nn.ModuleDict) -> dict[str, float]:
        nets.eval()
        coarse, full = self.restore_torch(nets, self.val_hazy)
        c = self.val_clean
        # no harm: a clean input must come back unchanged
        same_coarse, same_full = self.restore_torch(nets, quantize(c, self.domain))
        clear_coarse, clear_coarse_worst = self.mean_and_worst_psnr(c, same_coarse)
        clear_full, clear_full_worst = self.mean_and_worst_psnr(c, same_full)
        return {"psnr_input": self.mean_psnr(c, self.val_hazy), "psnr_coarse": self.mean_psnr(c, coarse),
                "psnr_full": self.mean_psnr(c, full), "psnr_clear_coarse": clear_coarse,
                "psnr_clear_full": clear_full, "psnr_clear_coarse_worst": clear_coarse_worst,
                "psnr_clear_full_worst": clear_full_worst}

    def selection_score(self, val: dict[str, float]) -> float:
        """For ``select_best``: mean PSNR of the default path (stage 1 alone, or with diffusion) on hazy val
        patches, less :attr:`CLEAN_PENALTY` per dB that the worst clean patch falls below :attr:`CLEAN_FLOOR_DB`.
        The worst clean patch, not the mean: a pass that damages one clean scene badly must lose to one that
        spreads a smaller gain evenly (some clean RGB patches look like haze; docs/models/dehaze-rgb.md)."""
        path = "coarse" if self.sampler.default_steps == 0 else "full"
        return clean_floor_score(val[f"psnr_{path}"], val[f"psnr_clear_{path}_worst"], self.CLEAN_FLOOR_DB,
                                 self.CLEAN_PENALTY)

    # ---- export ---------------------------------------------------------------------------------
    def export(self, nets: nn.ModuleDict, out_dir: Path, info: dict[str, Any]) -> Path:
        from export.bundle_writer import build_bundle
        from export.onnx_export import StageExport

        nets = nets.float().eval()
        stages = {
            "coarse": StageExport(nets["coarse"], ("y",), ("x",), "coarse.onnx"),
            "denoiser": StageExport(nets["denoiser"], ("x_t", "y", "coarse", "t"), ("res",), "denoiser.onnx"),
        }
        manifest = self.manifest("dehaze", "rddm", stages, nets, info, default_tile_px=1024, sampler=self.sampler)
        bundle, _ = build_bundle(out_dir / self.cfg.name, manifest, stages, parity_rows=64, parity_cols=96)
        return bundle.root
