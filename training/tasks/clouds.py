"""Cloud removal after Diffusion Enhancement (METHODS.md section 3): reference model E, conditional noise
predictor (CNP) and weight-allocation network (WA), trained coarse to fine within one wall-clock budget.

Phases (fraction of the budget, ``model.phases``, default 0.35 / 0.65):
1. E (L1, full size) and the CNP alone on images down-scaled 4x (DDPM loss ||eps - eps_hat||^2);
2. WA alone at full size with the CNP frozen: ``|x0 - x0_t|`` with the gradient stopped through x0_eps;
3. jointly: ``lambda * L_DDPM + L_WA`` (lambda = ``loss.ddpm``, default 1), E still on its L1 loss.
x0_E is detached for the CNP and WA in every phase (E is the fidelity reference, trained only by L1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rscore.bundle.manifest import AutoMaskSpec, FusionSpec
from rscore.degradations.clouds import add_clouds
from rscore.degradations.fields import gaussian_blur
from rscore.degradations.resample import area_resample
from rscore.diffusion.fusion import fuse_x0, x0_from_eps
from rscore.diffusion.plan import SamplerConfig, make_plan
from rscore.diffusion.terms import TermContext
from rscore.models.de import DEDenoiser, NoisePredictor, WeightNet
from rscore.models.dsrdmpd import CloudReferenceNet, UNetConfig
from rscore.torch_ops.diffusion import ForwardTables, sample_torch, seeded_noise
from training.config import TrainConfig
from training.tasks.common import VALIDATION_STEPS, ImageTask, clean_floor_score
from training.tasks.imagery import augment_config, augmented_patches, quantize

CLOUD_TYPES = ("thin", "thick")
COARSE_FACTOR = 4


def alternate_clouds(clean: np.ndarray, rng: np.random.Generator, cloud_type: str, domain: str,
                     shape: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A second, deliberately different cloud generator: a mask from a few random anisotropic Gaussian
    blobs (not a fractal field), spectrally flat opacity, a grey-to-white cloud colour with a small random
    tint, no shadows. Thin: peak opacity 0.25-0.8; thick: saturated cores with blurred edges.

    ``shape`` (rows, cols) in [0, 1] replaces the blobs (e.g. a crop of a real cloud-opacity map).
    Returns the cloudy image and the opacity map."""
    bands, rows, cols = clean.shape
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float64)
    field = np.zeros((rows, cols)) if shape is None else shape.astype(np.float64)
    for _ in range(0 if shape is not None else int(rng.integers(2, 9))):
        cy, cx = rng.uniform(-0.2, 1.2) * rows, rng.uniform(-0.2, 1.2) * cols
        sy, sx = rng.uniform(0.05, 0.45) * rows, rng.uniform(0.05, 0.45) * cols
        th = rng.uniform(0, np.pi)
        dy, dx = yy - cy, xx - cx
        u, v = dy * np.cos(th) + dx * np.sin(th), -dy * np.sin(th) + dx * np.cos(th)
        field += rng.uniform(0.5, 1.0) * np.exp(-0.5 * ((u / sy) ** 2 + (v / sx) ** 2))
    field /= max(float(field.max()), 1e-9)
    if cloud_type == "thick":
        m = np.clip((field - rng.uniform(0.2, 0.6)) * rng.uniform(3.0, 12.0), 0.0, 1.0)
        m = gaussian_blur(m, float(rng.uniform(0.5, 3.0)))
    else:
        m = rng.uniform(0.25, 0.8) * field ** rng.uniform(0.5, 2.0)
    top = 1.0 if domain == "rgb8" else 0.9
    colour = rng.uniform(0.6, 1.0) * top * (1 + rng.uniform(-0.05, 0.05, size=bands))
    return (clean * (1 - m[None]) + colour[:, None, None] * m[None]).astype(np.float32), m.astype(np.float32)


class CloudRemovalTask(ImageTask):
    """Data, phased losses, validation and export of the DE cloud-removal bundle."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.shapes = cloud_shapes(cfg.data)
        super().__init__(cfg, lambda c, rng: self.cloud(c, rng)[0])
        m = cfg.model
        self.sampler = SamplerConfig("ddim", num_timesteps=int(m.get("num_timesteps", 1000)),
                                     default_steps=int(m.get("default_steps", 10)), eta=0.0,
                                     ddpm_schedule=m.get("ddpm_schedule", "linear"))
        self.fusion = FusionSpec(weight_floor=float(m.get("weight_floor", 0.3)))
        self.auto_mask = AutoMaskSpec(threshold=float(m.get("mask_threshold", 0.1)),
                                      dilate_px=int(m.get("mask_dilate_px", 2)))
        self.tables = ForwardTables.from_config(self.sampler)
        n = len(self.bands)
        self.networks = nn.ModuleDict({
            "coarse": CloudReferenceNet(UNetConfig(n, width=int(m.get("reference_width", 16)),
                                                    context_px=int(m.get("context_px", 0)),
                                                    lean=bool(m.get("lean", False)))),
            "cnp": NoisePredictor(UNetConfig(n, width=int(m.get("cnp_width", 16)))),
            "wa": WeightNet(UNetConfig(n, width=int(m.get("wa_width", 8)), mid_blocks=1)),
        })
        self.augment = augment_config(cfg.data)
        self.phases = tuple(float(p) for p in m.get("phases", (0.35, 0.65)))
        self.progress = 0.0
        lo_phys, hi_phys = self.fusion.x0_min, self.fusion.x0_max
        self._lo = ((lo_phys - self._mean_t) / self._std_t)[0]
        self._hi = ((hi_phys - self._mean_t) / self._std_t)[0]
        vrng = np.random.default_rng(777)
        nval = int(cfg.data.get("val_patches", 12))
        clean = self.pool.patches("val", int(cfg.data.get("val_patch_px", 128)), nval, vrng)
        cloudy = np.stack([self.cloud(c, vrng, CLOUD_TYPES[i % 2], alternate=False)[0] for i, c in enumerate(clean)])
        self.val_clean, self.val_cloudy = clean, cloudy

    # ---- phases ---------------------------------------------------------------------------------
    def set_progress(self, fraction: float) -> None:
        """Called by the harness before every step with the fraction of the budget spent."""
        self.progress = float(fraction)
        self.ramp_activations(fraction)

    def warm_inputs(self, stage: str) -> torch.Tensor:
        """Typical inputs of a stage (cloudy and clear training patches), for warm starts of a lean reference."""
        if stage != "coarse":
            raise KeyError(f"no warm-start inputs for stage {stage!r}")
        rng = np.random.default_rng(4321)
        return torch.cat([self.norm(torch.from_numpy(self._pairs(rng, self.cfg.patch_px)[1])) for _ in range(4)])

    @property
    def phase(self) -> int:
        return 1 if self.progress < self.phases[0] else (2 if self.progress < self.phases[1] else 3)

    # ---- data -----------------------------------------------------------------------------------
    def cloud(self, clean: np.ndarray, rng: np.random.Generator, cloud_type: str | None = None,
              alternate: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """A cloudy version of a clean patch (thin or thick; the project generator, or the alternate one with
        blob or real cloud shapes), quantised, and its degradation map (rows, cols) in [0, 1]: the cloud
        opacity at 550 nm, or the shadow's darkening where that is larger."""
        if cloud_type is None:
            cloud_type = CLOUD_TYPES[int(rng.integers(2))]
        if alternate is None:
            alternate = rng.random() < float(self.cfg.data.get("alternate_clouds", 0.3))
        if alternate:
            shape = None
            if self.shapes is not None and rng.random() < float(self.cfg.data.get("real_shapes", 0.5)):
                shape = self.shapes.draw(clean.shape[1:], rng)
            cloudy, deg = alternate_clouds(clean, rng, cloud_type, self.domain, shape)
        else:
            res, params = add_clouds(clean, self.pool.wavelengths_nm, rng, cloud_type=cloud_type)
            cloudy, deg = res.image, np.maximum(res.mask, params.shadow_strength * res.shadow_mask)
        return quantize(cloudy, self.domain), deg.astype(np.float32)

    def _pairs(self, rng: np.random.Generator, patch_px: int) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                          np.ndarray]:
        """(clean, cloudy, degradation map (n, 1, rows, cols), clear flags (n,))."""
        clean = augmented_patches(self.pool, "train", patch_px, self.cfg.batch_size, self.domain, rng, self.augment)
        clear_frac = float(self.cfg.data.get("clear_fraction", 0.05))
        is_clear = rng.random(len(clean)) < clear_frac
        clean = np.stack([quantize(c, self.domain) if k else c for c, k in zip(clean, is_clear)])
        pairs = [(c, np.zeros(c.shape[1:], np.float32)) if k else self.cloud(c, rng) for c, k in zip(clean, is_clear)]
        cloudy = np.stack([p[0] for p in pairs])
        deg = np.stack([p[1] for p in pairs])[:, None]
        return clean, cloudy, deg, is_clear

    def batch(self, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        p = self.cfg.patch_px
        if self.phase == 1:
            # one draw at 4x size serves both: E on a full-resolution crop, the CNP on the 4x reduction
            big_px = max(COARSE_FACTOR * int(self.cfg.model.get("coarse_patch_px", p // 2)), p)
            clean, cloudy, deg, is_clear = self._pairs(rng, big_px)
            lo_c = np.stack([area_resample(c, COARSE_FACTOR) for c in clean]).astype(np.float32)
            lo_y = np.stack([area_resample(c, COARSE_FACTOR) for c in cloudy]).astype(np.float32)
            r0, c0 = (int(v) for v in rng.integers(0, clean.shape[-1] - p + 1, size=2))
            crop = (Ellipsis, slice(r0, r0 + p), slice(c0, c0 + p))
            clean, cloudy, deg = clean[crop], cloudy[crop], deg[crop]
            extra = {"clean_lo": self.norm(torch.from_numpy(lo_c)), "cloudy_lo": self.norm(torch.from_numpy(lo_y))}
        else:
            clean, cloudy, deg, is_clear = self._pairs(rng, p)
            extra = {}
        return {"clean": self.norm(torch.from_numpy(np.ascontiguousarray(clean))),
                "cloudy": self.norm(torch.from_numpy(np.ascontiguousarray(cloudy))),
                "deg": torch.from_numpy(np.ascontiguousarray(deg)),
                "clear": torch.from_numpy(is_clear.astype(np.float32)), **extra}

    # ---- losses ---------------------------------------------------------------------------------
    def _noised(self, clean: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        t = torch.randint(1, self.sampler.num_timesteps + 1, (clean.shape[0],))
        eps = torch.randn_like(clean)
        return self.tables.q_sample(clean, clean, t, eps), eps, t

    def losses(self, nets: nn.ModuleDict, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        clean, cloudy = batch["clean"], batch["cloudy"]
        wgt = 1.0 + float(self.cfg.loss.get("clear_weight", 0.0)) * batch["clear"]
        wgt = (wgt / wgt.mean()).view(-1, 1, 1, 1)
        ref, cloud_p = nets["coarse"](cloudy)
        out = {"ref_l1": ((ref.float() - clean).abs() * wgt).mean()}
        # the degradation map is the automatic cloud mask: binary cross-entropy against the generator's map
        out["mask_bce"] = float(self.cfg.loss.get("mask", 0.1)) * F.binary_cross_entropy(
            cloud_p.float().clamp(1e-4, 1 - 1e-4), batch["deg"])
        lam = float(self.cfg.loss.get("ddpm", 1.0))
        phase = self.phase
        if phase == 1:
            x_t, eps, t = self._noised(batch["clean_lo"])
            eps_hat = nets["cnp"](x_t, batch["cloudy_lo"], self.tables.t_model(t)).float()
            out["ddpm"] = lam * F.mse_loss(eps_hat, eps)
            return out
        x_t, eps, t = self._noised(clean)
        tm = self.tables.t_model(t)
        if phase == 2:
            with torch.no_grad():
                eps_hat = nets["cnp"](x_t, cloudy, tm).float()
        else:
            eps_hat = nets["cnp"](x_t, cloudy, tm).float()
            out["ddpm"] = lam * F.mse_loss(eps_hat, eps)
        a = self.tables.a[t].view(-1, 1, 1, 1)
        b = self.tables.b[t].view(-1, 1, 1, 1)
        x0_eps = x0_from_eps(x_t, eps_hat.detach(), 1.0 / a, -b / a, self._lo, self._hi)
        x0_ref = ref.detach().float()
        w = nets["wa"](x_t, cloudy, x0_ref, tm).float()
        out["wa_l1"] = ((fuse_x0(x0_eps, x0_ref, w, 0.0) - clean).abs() * wgt).mean()
        return out

    # ---- validation and evaluation ---------------------------------------------------------------
    def restore_torch(self, nets: nn.ModuleDict, cloudy_phys: np.ndarray, steps: int | None = None,
                      fixed_weight: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(reference output, DE output) in physical units for a batch of cloudy patches.

        ``fixed_weight`` replaces the WA (0 = pure diffusion, 0.5 = fixed fusion)."""
        # a bundle whose default is one pass (default_steps 0) is validated with VALIDATION_STEPS of sampling
        plan = make_plan(self.sampler, steps or self.sampler.default_steps or VALIDATION_STEPS)
        floor = self.fusion.weight_floor
        y = self.norm(torch.from_numpy(np.ascontiguousarray(cloudy_phys, dtype=np.float32)))
        with torch.no_grad():
            ref = nets["coarse"](y)[0]
            outs = []
            for i in range(y.shape[0]):
                yi, ri = y[i : i + 1], ref[i : i + 1]

                def den(x, tm, yi=yi, ri=ri):  # noqa: ANN001
                    got = {"eps": nets["cnp"](x, yi, tm)}
                    if fixed_weight is None:
                        got["weight"] = nets["wa"](x, yi, ri, tm)
                    return got

                ctx = TermContext(ref=ri, lo=self._lo, hi=self._hi, weight_floor=floor, fixed_weight=fixed_weight)
                outs.append(sample_torch(plan, torch.zeros_like(ri), den, seeded_noise(plan, tuple(ri.shape), i),
                                         "de", ctx))
            full = torch.cat(outs)
        return self.denorm(ref).numpy(), self.denorm(full).numpy()

    def validate(self, nets: nn.ModuleDict) -> dict[str, float]:
        nets.eval()
        ref, full = self.restore_torch(nets, self.val_cloudy)
        _, pure = self.restore_torch(nets, self.val_cloudy, fixed_weight=0.0)
        c = self.val_clean
        with torch.no_grad():
            same, _ = nets["coarse"](self.norm(torch.from_numpy(np.ascontiguousarray(c))))
        clear_ref, clear_ref_worst = self.mean_and_worst_psnr(c, self.denorm(same).numpy())
        return {"psnr_input": self.mean_psnr(c, self.val_cloudy), "psnr_ref": self.mean_psnr(c, ref),
                "psnr_pure": self.mean_psnr(c, pure), "psnr_de": self.mean_psnr(c, full),
                "psnr_clear_ref": clear_ref, "psnr_clear_ref_worst": clear_ref_worst}

    def selection_score(self, val: dict[str, float]) -> float:
        """For ``select_best``: mean PSNR of the default path (the reference alone, or DE sampling) on cloudy val
        patches, less :attr:`CLEAN_PENALTY` per dB that the worst clean patch falls below :attr:`CLEAN_FLOOR_DB`
        through the reference (:func:`training.tasks.common.clean_floor_score`)."""
        path = "ref" if self.sampler.default_steps == 0 else "de"
        return clean_floor_score(val[f"psnr_{path}"], val["psnr_clear_ref_worst"], self.CLEAN_FLOOR_DB,
                                 self.CLEAN_PENALTY)

    # ---- export ---------------------------------------------------------------------------------
    def export(self, nets: nn.ModuleDict, out_dir: Path, info: dict[str, Any]) -> Path:
        from export.bundle_writer import build_bundle
        from export.onnx_export import StageExport

        nets = nets.float().eval()
        stages = {
            "coarse": StageExport(nets["coarse"], ("y",), ("x", "cloud"), "reference.onnx"),
            "denoiser": StageExport(DEDenoiser(nets["cnp"], nets["wa"]), ("x_t", "y", "coarse", "t"),
                                    ("eps", "weight"), "denoiser.onnx"),
        }
        manifest = self.manifest("remove_clouds", "de", stages, nets, info, default_tile_px=512,
                                 sampler=self.sampler, fusion=self.fusion, extra_outputs=("cloud",),
                                 auto_mask=self.auto_mask)
        bundle, _ = build_bundle(out_dir / self.cfg.name, manifest, stages, parity_rows=64, parity_cols=96)
        return bundle.root


class CloudShapes:
    """Real cloud shapes: random crops of a global cloud-opacity image (values 0-1), resized to the patch.

    Args:
        opacity: float32 (rows, cols) in [0, 1].
    """

    def __init__(self, opacity: np.ndarray) -> None:
        self.opacity = opacity.astype(np.float32)

    def draw(self, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray | None:
        """A (rows, cols) field in [0, 1] from a random window of 24-256 source pixels (stretched so its
        brightest pixel is 1); None when 20 windows in a row hold no cloud (opacity <= 0.2)."""
        rows, cols = shape
        src_rows, src_cols = self.opacity.shape
        top = min(256, src_rows, src_cols)
        for _ in range(20):
            side = int(rng.integers(min(24, top - 1), top)) if top > 2 else top
            r0 = int(rng.integers(0, src_rows - side + 1))
            c0 = int(rng.integers(0, src_cols - side + 1))
            win = self.opacity[r0 : r0 + side, c0 : c0 + side]
            if float(win.max()) > 0.2:
                break
        else:
            return None
        yy = np.linspace(0, side - 1, rows)
        xx = np.linspace(0, side - 1, cols)
        y0 = np.floor(yy).astype(int).clip(0, max(side - 2, 0))
        x0 = np.floor(xx).astype(int).clip(0, max(side - 2, 0))
        fy, fx = (yy - y0)[:, None], (xx - x0)[None, :]
        w = win.astype(np.float64)
        up = (w[y0][:, x0] * (1 - fy) * (1 - fx) + w[y0 + 1][:, x0] * fy * (1 - fx)
              + w[y0][:, x0 + 1] * (1 - fy) * fx + w[y0 + 1][:, x0 + 1] * fy * fx)
        return (up / max(float(up.max()), 1e-6)).astype(np.float32)


def cloud_shapes(data: dict[str, Any]) -> CloudShapes | None:
    """The real cloud-shape source named by ``data.cloud_shapes`` (None when not configured)."""
    name = data.get("cloud_shapes")
    if not name:
        return None
    from rscore.data.shapes import load_cloud_opacity
    from training.tasks.imagery import DEFAULT_CACHE

    return CloudShapes(load_cloud_opacity(str(name), DEFAULT_CACHE))
