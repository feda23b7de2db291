"""Reference-based super-resolution after TTRD3 (METHODS.md section 5; networks in :mod:`rscore.models.ttrd3`).

Pairs: a clean HR patch, its LR (the super-resolution task's sensor-like down-sampling at a real scale, then the
engine's own bicubic upsampling: :func:`training.tasks.sr.lr_pair`) and a reference on the HR grid, one of:

- ``date``: the same window on another date of the same place (real pairs of the pool, when it has any);
- ``synthetic``: the HR patch "on another date" (:func:`rscore.degradations.reference.make_reference`: seasonal
  and radiometric change, misregistration up to 3 px, noise), with changed blobs pasted from another place on
  part of them (:func:`change_patches`), so that the model learns when not to copy;
- ``unrelated``: another place altogether (the reference must then be ignored);
- ``missing``: no valid reference, or only part of one (outside its footprint the model is plain SR).

Losses: the one-pass estimate (texture net) L1 + VGG feature loss; RDDM (residual and noise prediction) from the
one-pass estimate: L1 on the residual and on the noise, VGG feature loss on the one-step estimate.

``model.base_sr`` (a ``super_resolve`` bundle: a folder, or REV:folder) builds the one-pass estimate on that bundle's
plain super-resolution instead of bicubic (:class:`rscore.models.ttrd3.SrBase`, frozen, exported inside the texture
stage): the networks then learn only what the reference adds.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rscore.bundle.manifest import ScaleRange, TensorSpec
from rscore.degradations.reference import change_patches, make_reference, sample_reference_params
from rscore.diffusion.plan import SamplerConfig, make_plan
from rscore.models.ldcsr import LATENT_FACTOR
from rscore.models.ttrd3 import MATCH_FACTOR, RefDenoiser, SrBase, TextureNet, Ttrd3Config
from rscore.torch_ops.diffusion import ForwardTables, sample_torch, seeded_noise
from training.config import TrainConfig
from training.tasks.common import VALIDATION_STEPS, ImageTask, clean_floor_score
from training.tasks.imagery import augment_config, augmented_patches, quantize
from training.tasks.sr import lr_degradation, lr_pair
from training.warm_start import read_bundle_file

#: reference kinds and their default shares of the training pairs (config ``data.reference_mix``)
REFERENCE_MIX = {"date": 0.15, "synthetic": 0.55, "unrelated": 0.15, "missing": 0.15}
#: scales of the validation pairs
VAL_SCALES = (2.0, 3.0, 4.0, 6.0)


class ResidualOnly(nn.Module):
    """Export wrapper: the denoiser's residual head alone (the sampler derives the noise term from it)."""

    def __init__(self, denoiser: RefDenoiser) -> None:
        super().__init__()
        self.denoiser = denoiser

    def forward(self, x_t: torch.Tensor, y: torch.Tensor, coarse: torch.Tensor, c: torch.Tensor, t: torch.Tensor,
                scale: torch.Tensor) -> torch.Tensor:
        return self.denoiser(x_t, y, coarse, c, t, scale)[0]


def load_sr_base(spec: str, bands: tuple[str, ...], mean: np.ndarray, std: np.ndarray) -> SrBase:
    """The regression path of the ``super_resolve`` bundle ``spec`` ("folder" or "REV:folder"), frozen, mapped to
    the model units of a bundle normalised by ``mean`` and ``std`` (physical units, per band)."""
    from rscore.models.ldcsr import SrDecoder
    from training.warm_start import bundle_weights, unwrap

    manifest = json.loads(read_bundle_file(spec, "manifest.json"))
    if manifest.get("task") != "super_resolve" or not {"cond", "decoder"} <= set(manifest.get("stages", {})):
        raise ValueError(f"model.base_sr: {spec} is not a super_resolve bundle with cond and decoder stages "
                         f"(task {manifest.get('task')!r}); name one, e.g. models/sr-bgrn")
    if tuple(manifest["input"]["names"]) != tuple(bands):
        raise ValueError(f"model.base_sr: {spec} reads bands {manifest['input']['names']}, this config "
                         f"{list(bands)}; name the super_resolve bundle of the same bands")
    weights = bundle_weights(spec)
    z_std = float(manifest.get("training", {}).get("z_std") or 0.0)
    if not z_std > 0:
        raise ValueError(f"model.base_sr: {spec} records no latent scale (training.z_std); re-export it")
    # the decoder stage is exported through ScaledDecoder (every weight named "dec.<name>")
    cfg = SrBase.config_of(weights["cond"])
    decoder = unwrap(weights["decoder"], SrDecoder(cfg).state_dict().keys())

    def stats(side: str) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.tensor(manifest[side]["mean"], dtype=torch.float64),
                torch.tensor(manifest[side]["std"], dtype=torch.float64))

    m, s = torch.from_numpy(np.asarray(mean, np.float64)), torch.from_numpy(np.asarray(std, np.float64))
    (im, isd), (om, osd) = stats("input"), stats("output")
    # ours -> physical -> the SR bundle's units, and back: x_sr = (x * s + m - im) / isd; x = (out * osd + om - m) / s
    return SrBase.from_weights(weights["cond"], decoder, z_std, s / isd, (m - im) / isd, osd / s, (om - m) / s)


class ReferenceSrTask(ImageTask):
    """Data, losses, validation and export of the reference-based SR bundle."""

    #: an unrelated reference may cost this much against no reference (dB) before select_best penalises it
    UNRELATED_MARGIN_DB = 0.1
    #: dB of other-date PSNR that one dB of harm beyond the margin costs in the selection score
    UNRELATED_PENALTY = 1.0

    def __init__(self, cfg: TrainConfig) -> None:
        m = cfg.model
        #: input size multiple: the matching grid, and the SR base's latent grid when there is one
        self.size_multiple = math.lcm(MATCH_FACTOR, LATENT_FACTOR) if m.get("base_sr") else MATCH_FACTOR
        if cfg.patch_px % self.size_multiple:
            raise ValueError(f"patch_px must be a multiple of {self.size_multiple}, got {cfg.patch_px}")
        super().__init__(cfg, lambda c, rng: c)
        n = len(self.bands)
        self.tcfg = Ttrd3Config(n, match_channels=int(m.get("match_channels", 16)),
                                texture_channels=int(m.get("texture_channels", 8)), width=int(m.get("width", 16)),
                                search_radius=int(m.get("search_radius", 3)), top_k=int(m.get("top_k", 4)),
                                match_factor=int(m.get("match_factor", 4)))
        self.sampler = SamplerConfig("rddm", num_timesteps=int(m.get("num_timesteps", 1000)),
                                     default_steps=int(m.get("default_steps", 5)), eta=0.0,
                                     beta_bar_T_sq=float(m.get("beta_bar_T_sq", 0.01)))
        self.tables = ForwardTables.from_config(self.sampler)
        self.scale_range = tuple(float(v) for v in m.get("scale_range", (1.0, 8.0)))
        #: noise term of the sampler at inference: "predicted" (the denoiser's eps head) or "derived" (eps from
        #: x_t, the start and the predicted residual, the RDDM identity); the eps head is trained either way
        self.eps_mode = str(m.get("eps_at_inference", "predicted"))
        if self.eps_mode not in ("predicted", "derived"):
            raise ValueError(f"model.eps_at_inference must be 'predicted' or 'derived', got {self.eps_mode!r}")
        base = load_sr_base(str(m["base_sr"]), tuple(self.bands), self.mean, self.std) if m.get("base_sr") else None
        #: the base's training sources (recorded in the manifest: the evaluation's real pairs may be among them)
        self.base_sources = (json.loads(read_bundle_file(str(m["base_sr"]), "manifest.json")).get("training", {})
                             .get("data_sources", []) if base is not None else [])
        self.networks = nn.ModuleDict({"coarse": TextureNet(self.tcfg, base), "denoiser": RefDenoiser(self.tcfg)})
        self.augment = augment_config(cfg.data)
        self.lr_noise = lr_degradation(cfg.data)
        #: largest Gaussian noise of the synthetic references (image units)
        self.ref_noise_max = float(cfg.data.get("reference_noise_max", 0.01))
        #: synthetic references' fine-detail correlation with the target drawn in [this, 1] (1: unchanged detail)
        self.ref_texture_corr_min = float(cfg.data.get("reference_texture_corr_min", 1.0))
        mix = {**REFERENCE_MIX, **(cfg.data.get("reference_mix") or {})}
        unknown = sorted(set(mix) - set(REFERENCE_MIX))
        if unknown:
            raise ValueError(f"data.reference_mix: unknown kind(s) {unknown}; known {sorted(REFERENCE_MIX)}")
        self.mix_kinds = tuple(mix)
        p = np.array([float(mix[k]) for k in self.mix_kinds])
        self.mix_p = p / p.sum()
        self.init_perceptual()
        vrng = np.random.default_rng(777)
        nval = int(cfg.data.get("val_patches", 8))
        self.val = {kind: self._pairs("val", nval, vrng, kind, [VAL_SCALES[i % len(VAL_SCALES)] for i in range(nval)])
                    for kind in ("synthetic", "unrelated")}

    # ---- data -----------------------------------------------------------------------------------
    def _other_date(self, hr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A synthetic other-date reference of ``hr`` (:func:`make_reference`, this config's noise and detail)."""
        params = sample_reference_params(rng, hr.shape[0], self.ref_noise_max, self.ref_texture_corr_min)
        return make_reference(hr, params, self.pool.wavelengths_nm, rng).image

    def _reference(self, hr: np.ndarray, kind: str, split: str, rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(hr, reference, validity (1, P, P)) for one pair of ``kind`` ("date" may replace ``hr``)."""
        p = hr.shape[-1]
        valid = np.ones((1, p, p), np.float32)
        if kind == "date":
            pair = self.pool.date_pair(split, p, rng)
            if pair is not None:
                return pair[0], pair[1], valid
            kind = "synthetic"  # no multi-date scene in this pool
        if kind == "synthetic":
            ref = self._other_date(hr, rng)
            if rng.random() < 0.5:
                donor = self.pool.patches(split, p, 1, rng)[0]
                ref, _ = change_patches(ref, donor, float(rng.uniform(0.05, 0.5)), float(rng.uniform(8, p)), rng)
        elif kind == "unrelated":
            ref = self.pool.patches(split, p, 1, rng)[0]
        else:  # missing: none at all, or only part (a random half-plane of the patch)
            ref = self._other_date(hr, rng)
            if rng.random() < 0.5:
                valid[:] = 0.0
            else:
                yy, xx = np.mgrid[0:p, 0:p] - (p - 1) / 2
                ang = rng.uniform(0, 2 * np.pi)
                valid[0] = (np.cos(ang) * xx + np.sin(ang) * yy > rng.uniform(-p / 4, p / 4)).astype(np.float32)
        ref = quantize(np.clip(ref, 0.0, None), self.domain)
        return hr, ref * valid, valid

    def _pairs(self, split: str, n: int, rng: np.random.Generator, kind: str | None = None,
               scales: list[float] | None = None) -> dict[str, np.ndarray]:
        """n pairs in physical units: hr, bic (the model's y), ref, valid, scale."""
        if split == "train":
            hrs = augmented_patches(self.pool, "train", self.cfg.patch_px, n, self.domain, rng, self.augment)
        else:
            hrs = self.pool.patches(split, self.cfg.patch_px, n, rng)
        lo, hi = np.log(self.scale_range[0]), np.log(self.scale_range[1])
        out: dict[str, list[Any]] = {"hr": [], "bic": [], "ref": [], "valid": [], "scale": []}
        for i, hr in enumerate(hrs):
            k = kind or str(rng.choice(self.mix_kinds, p=self.mix_p))
            hr, ref, valid = self._reference(hr, k, split, rng)
            s0 = scales[i] if scales else float(np.exp(rng.uniform(lo, hi)))
            bic, s = lr_pair(hr, s0, self.domain, rng, **self.lr_noise)
            for key, v in zip(out, (hr, bic, ref, valid, s), strict=True):
                out[key].append(v)
        return {k: np.asarray(v, np.float32) for k, v in out.items()}

    def _model_units(self, pairs: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        valid = torch.from_numpy(pairs["valid"])
        # the engine's convention: invalid reference pixels are 0 in model units (the band mean)
        return {"hr": self.norm(torch.from_numpy(pairs["hr"])), "bic": self.norm(torch.from_numpy(pairs["bic"])),
                "ref": self.norm(torch.from_numpy(pairs["ref"])) * valid, "valid": valid,
                "scale": torch.from_numpy(pairs["scale"])}

    def batch(self, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        return self._model_units(self._pairs("train", self.cfg.batch_size, rng))

    # ---- losses ---------------------------------------------------------------------------------
    def losses(self, nets: nn.ModuleDict, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        hr, bic, ref, valid, scale = (batch[k] for k in ("hr", "bic", "ref", "valid", "scale"))
        coarse, c = nets["coarse"](bic, ref, valid, scale)
        coarse = coarse.float()
        w = float(self.cfg.loss.get("perceptual", 0.0))
        out = {"coarse_l1": (coarse - hr).abs().mean()}
        if self.vgg is not None and w > 0:
            out["coarse_perceptual"] = w * self.vgg(self._rgb_pm1(coarse), self._rgb_pm1(hr))
        y0 = coarse.detach()
        t = torch.randint(1, self.sampler.num_timesteps + 1, (hr.shape[0],))
        eps = torch.randn_like(hr)
        x_t = self.tables.q_sample(hr, y0, t, eps)
        res, eps_hat = nets["denoiser"](x_t, bic, y0, c, self.tables.t_model(t), scale)
        out["res_l1"] = (res.float() - (y0 - hr)).abs().mean()
        out["eps_l1"] = float(self.cfg.loss.get("eps", 0.1)) * (eps_hat.float() - eps).abs().mean()
        if self.vgg is not None and w > 0:
            out["perceptual"] = w * self.vgg(self._rgb_pm1(y0 - res.float()), self._rgb_pm1(hr))
        return out

    # ---- validation -----------------------------------------------------------------------------
    def restore_torch(self, nets: nn.ModuleDict, t: dict[str, torch.Tensor], steps: int | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
        """(one-pass estimate, sampled output) in physical units for a batch in model units."""
        # a bundle whose default is one pass (default_steps 0) is validated with VALIDATION_STEPS of sampling
        plan = make_plan(self.sampler, steps or self.sampler.default_steps or VALIDATION_STEPS)
        with torch.no_grad():
            coarse, c = nets["coarse"](t["bic"], t["ref"], t["valid"], t["scale"])
            outs = []
            for i in range(coarse.shape[0]):
                sl = slice(i, i + 1)

                def den(x, tt, sl=sl):  # noqa: ANN001, ANN202
                    res, eps = nets["denoiser"](x, t["bic"][sl], coarse[sl], c[sl], tt, t["scale"][sl])
                    return {"res": res} if self.eps_mode == "derived" else {"res": res, "eps": eps}

                outs.append(sample_torch(plan, coarse[sl], den, seeded_noise(plan, tuple(coarse[sl].shape), i),
                                         "rddm"))
            full = torch.cat(outs)
        return self.denorm(coarse).numpy(), self.denorm(full).numpy()

    def validate(self, nets: nn.ModuleDict) -> dict[str, float]:
        nets.eval()
        row: dict[str, float] = {}
        for kind, pairs in self.val.items():
            t = self._model_units(pairs)
            hr = pairs["hr"]
            coarse, full = self.restore_torch(nets, t)
            plain_coarse, plain = self.restore_torch(nets, {**t, "ref": torch.zeros_like(t["ref"]),
                                                            "valid": torch.zeros_like(t["valid"])})
            # each kind has its own patches: the unrelated case is compared with no reference on its own
            sfx = "" if kind == "synthetic" else f"_{kind}"
            if kind == "synthetic":
                row["psnr_bicubic"] = self.mean_psnr(hr, pairs["bic"])
            row[f"psnr_no_reference{sfx}"] = self.mean_psnr(hr, plain)
            row[f"psnr_no_reference{sfx}_coarse"] = self.mean_psnr(hr, plain_coarse)
            row[f"psnr_{kind}_coarse"] = self.mean_psnr(hr, coarse)
            row[f"psnr_{kind}"] = self.mean_psnr(hr, full)
        return row

    def selection_score(self, val: dict[str, float]) -> float:
        """For ``select_best``: mean PSNR of the default path (one pass, or with diffusion) with other-date
        references, less :attr:`UNRELATED_PENALTY` per dB by which an unrelated reference falls more than
        :attr:`UNRELATED_MARGIN_DB` below no reference at all on the same patches (the bundle must not copy another
        place)."""
        sfx = "_coarse" if self.sampler.default_steps == 0 else ""
        # the floor of the unrelated case is no reference at all on the same patches, less the margin
        return clean_floor_score(val[f"psnr_synthetic{sfx}"], val[f"psnr_unrelated{sfx}"],
                                 val[f"psnr_no_reference_unrelated{sfx}"] - self.UNRELATED_MARGIN_DB,
                                 self.UNRELATED_PENALTY)

    # ---- export ---------------------------------------------------------------------------------
    def export(self, nets: nn.ModuleDict, out_dir: Path, info: dict[str, Any]) -> Path:
        from export.bundle_writer import build_bundle
        from export.onnx_export import StageExport

        nets = nets.float().eval()
        den_outputs = ("res",) if self.eps_mode == "derived" else ("res", "eps")
        stages = {
            "coarse": StageExport(nets["coarse"], ("y", "aux", "aux_valid", "scale"), ("x", "c"), "coarse.onnx"),
            "denoiser": StageExport(ResidualOnly(nets["denoiser"]) if self.eps_mode == "derived" else nets["denoiser"],
                                    ("x_t", "y", "coarse", "c", "t", "scale"), den_outputs, "denoiser.onnx"),
        }
        cs = TensorSpec("output", self.tcfg.cond_channels)
        lo, hi = self.scale_range
        if self.cfg.model.get("base_sr"):  # the super_resolve bundle under the texture stage, for the record
            info = {**info, "base_sr": str(self.cfg.model["base_sr"]), "base_sr_sources": list(self.base_sources)}
        manifest = self.manifest(
            "reference_super_resolve", "rddm", stages, nets, info, default_tile_px=512,
            size_multiple=self.size_multiple, tensors={"coarse": {"c": cs}, "denoiser": {"c": cs}},
            sampler=self.sampler, scale=ScaleRange(lo, hi, min(max(4.0, lo), hi)), resample="bicubic")
        bundle, _ = build_bundle(out_dir / self.cfg.name, manifest, stages, parity_rows=64, parity_cols=96)
        return bundle.root
