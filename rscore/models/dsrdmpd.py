"""DS-RDMPD networks (METHODS.md section 2): the MCESS-UNet (stage 1) and the residual denoiser (stage 2).

Both work in model units (per-band normalised), on (N, bands, rows, cols) with rows and cols multiples of
4 (two stride-2 levels). Our own design in the spirit of the seed; choices are in docs/models/.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from rscore.models.blocks import (
    Act,
    ChannelNorm,
    Down,
    ESSBlock,
    LeanESSBlock,
    LeanMCBlock,
    LeanUp,
    MCBlock,
    TimeEmbedding,
    Up,
    conv,
)

SIZE_MULTIPLE = 4


@dataclass(frozen=True)
class UNetConfig:
    """Widths and depths.

    Attributes:
        bands: image bands in and out.
        width: channels at full resolution (x2 per level).
        enc_blocks: MC blocks per encoder level (full, 1/2).
        mid_blocks: ESS blocks at 1/4 resolution.
        dec_blocks: ESS blocks per decoder level (1/2, full).
        context_px: window of the dark-channel context (0: none).
        lean: the lean blocks (:class:`LeanMCBlock`, :class:`LeanESSBlock`, :class:`LeanUp`: no channel norm,
            ReLU, no Concat), 1.3-2x faster on CPU (docs/performance.md, "Lean networks");
            :func:`lean_state_dict` converts trained weights.
    """

    bands: int
    width: int = 24
    enc_blocks: int = 1
    mid_blocks: int = 2
    dec_blocks: int = 1
    context_px: int = 0
    lean: bool = False


class HazeContext(nn.Module):
    """Dark-channel-style context at 1/4 resolution: per band, the minimum and the mean over a window of about
    ``context_px`` pixels. Haze and thin cloud lift the local minimum (airlight) and shrink the gap between
    mean and minimum (contrast); a clean bright or grey scene keeps dark shadows and sharp contrast nearby.
    Without a near-infrared band that is the evidence that separates the two, and a small trunk does not
    reliably find it by itself. Per band, so it commutes with the per-band normalisation of model units
    (min and mean of an affine map with positive scale). Output: (N, 2 * bands, H/4, W/4).
    """

    def __init__(self, context_px: int) -> None:
        super().__init__()
        k = max(1, context_px // 4)
        self.k = k + 1 - k % 2  # odd window at 1/4 resolution

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        lo = -F.max_pool2d(-y, 4, 4)
        mean = F.avg_pool2d(y, 4, 4)
        p = self.k // 2
        lo = -F.max_pool2d(-lo, self.k, 1, padding=p)
        mean = F.avg_pool2d(mean, self.k, 1, padding=p, count_include_pad=False)
        return torch.cat([lo, mean - lo], dim=1)


class MCESSUNet(nn.Module):
    """Stage 1: one-pass dehazing. Input y (hazy), output y + delta (global residual)."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        mc, ess, up = (LeanMCBlock, LeanESSBlock, LeanUp) if cfg.lean else (MCBlock, ESSBlock, Up)
        self.head = conv(cfg.bands, w)
        self.enc1 = nn.Sequential(*[mc(w) for _ in range(cfg.enc_blocks)])
        self.down1 = Down(w, 2 * w)
        self.enc2 = nn.Sequential(*[mc(2 * w) for _ in range(cfg.enc_blocks)])
        self.down2 = Down(2 * w, 4 * w)
        self.mid = nn.Sequential(*[ess(4 * w) for _ in range(cfg.mid_blocks)])
        self.up2 = up(4 * w, 2 * w)
        self.dec2 = nn.Sequential(*[ess(2 * w) for _ in range(cfg.dec_blocks)])
        self.up1 = up(2 * w, w)
        self.dec1 = nn.Sequential(*[ess(w) for _ in range(cfg.dec_blocks)])
        self.tail = conv(w, cfg.bands)
        self.context: nn.Module | None = None
        if cfg.context_px > 0:  # optional: bundles trained without it keep their exact state dict
            self.context = HazeContext(cfg.context_px)
            self.context_proj = nn.Conv2d(2 * cfg.bands, 4 * w, 1)
            nn.init.zeros_(self.context_proj.weight)  # a fresh network ignores the context
            nn.init.zeros_(self.context_proj.bias)

    def features(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(full-resolution decoder features (N, w, H, W), 1/4-resolution features (N, 4w, H/4, W/4))."""
        h1 = self.enc1(self.head(y))
        h2 = self.enc2(self.down1(h1))
        h4 = self.down2(h2)
        if self.context is not None:
            h4 = h4 + self.context_proj(self.context(y))
        low = self.mid(h4)
        h = self.dec2(self.up2(low, h2))
        return self.dec1(self.up1(h, h1)), low

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y + self.tail(self.features(y)[0])


class AffineHead(nn.Module):
    """A smooth per-pixel, per-band affine correction ``x = y * exp(g) + o`` predicted at 1/4 resolution
    and upsampled bilinearly (x4).

    Haze (``I = J t + A (1 - t)``), thin cloud (``I = J (1 - m) + C m``) and cloud shadow (``I = J S``) are all
    affine in the clean value ``J`` per pixel and band, with coefficients that vary smoothly in space: the
    inverse is ``J = I / t - A (1 - t) / t``. The same holds in model units (the per-band normalisation is
    affine). Predicting only the two smooth coefficient maps means the correction cannot invent texture,
    and with a zero-initialised output layer a fresh network is the identity (``g = o = 0``): a clean input
    is left unchanged unless the network has learned a reason to act. ``g`` is bounded to (-2.5, 2.5)
    (gain 0.08-12, i.e. transmission down to ~0.08).
    """

    GAIN_BOUND = 2.5

    def __init__(self, cin: int, bands: int, act: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Conv2d(cin, cin, 1), act(), nn.Conv2d(cin, 2 * bands, 1))
        nn.init.zeros_(self.proj[2].weight)
        nn.init.zeros_(self.proj[2].bias)
        self.bands = bands

    def forward(self, low: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        coef = F.interpolate(self.proj(low), scale_factor=4.0, mode="bilinear", align_corners=False)
        g, o = coef[:, : self.bands], coef[:, self.bands :]
        g = self.GAIN_BOUND * torch.tanh(g / self.GAIN_BOUND)
        return y * torch.exp(g) + o


class AffineDehazeNet(MCESSUNet):
    """Stage 1 of the corpus-trained dehazing bundles: the MCESS-UNet trunk predicting a smooth affine
    inversion of the haze (transmission and airlight, :class:`AffineHead`), then a zero-initialised
    full-resolution residual gated per pixel, for what the smooth model cannot express (sharp haze edges).

    Output ``x = affine(y) + s * r`` with ``s = sigmoid(.)`` starting at ~0.02 and ``r`` at 0.
    """

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__(cfg)
        w = cfg.width
        self.affine = AffineHead(4 * w, cfg.bands, Act if cfg.lean else nn.GELU)
        self.gate = conv(w, 1)
        nn.init.zeros_(self.gate.weight)
        nn.init.constant_(self.gate.bias, -4.0)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        full, low = self.features(y)
        return self.affine(low, y) + torch.sigmoid(self.gate(full)) * self.tail(full)


class CloudReferenceNet(MCESSUNet):
    """Reference model E of the corpus-trained cloud-removal bundles.

    Outputs ``(x, cloud)``:

    - ``x = (1 - s) * affine(y) + s * fill``: semi-transparent cloud and shadow are inverted by the smooth
      affine head; where the ground is hidden (opaque cloud), the gate ``s`` hands over to ``fill``, content
      synthesised from the surroundings. ``s`` starts at ~0.02 and ``fill`` at the input, so a fresh network
      is (almost) the identity.
    - ``cloud`` in (0, 1): how strongly each pixel is degraded (cloud opacity, or shadow darkening), trained
      against the generator's own maps. It is the automatic cloud mask of ``rsrestore:remove_clouds``.
    """

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__(cfg)
        w = cfg.width
        self.affine = AffineHead(4 * w, cfg.bands, Act if cfg.lean else nn.GELU)
        self.maps = conv(w, 2)  # (gate logit, cloud logit)
        nn.init.zeros_(self.maps.weight)
        nn.init.constant_(self.maps.bias, -4.0)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        full, low = self.features(y)
        maps = self.maps(full)
        s, cloud = torch.sigmoid(maps[:, :1]), torch.sigmoid(maps[:, 1:])
        fill = y + self.tail(full)
        return (1 - s) * self.affine(low, y) + s * fill, cloud


class _TimeBlock(nn.Module):
    """A block whose input is shifted and scaled per channel by the time embedding."""

    def __init__(self, block: nn.Module, c: int, tdim: int) -> None:
        super().__init__()
        self.block = block
        self.film = nn.Linear(tdim, 2 * c)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(temb).unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)
        return self.block(x * (1 + scale) + shift)


class TimeUNet(nn.Module):
    """Two-level U-Net over ``n_images`` concatenated images, every block conditioned on t (FiLM).

    The output layer starts at zero, so a freshly initialised network predicts 0 (no residual / no noise).
    """

    def __init__(self, cfg: UNetConfig, n_images: int) -> None:
        super().__init__()
        w, tdim = cfg.width, 4 * cfg.width
        self.temb = TimeEmbedding(tdim)
        self.head = conv(n_images * cfg.bands, w)
        self.enc1 = _TimeBlock(MCBlock(w), w, tdim)
        self.down1 = Down(w, 2 * w)
        self.enc2 = _TimeBlock(MCBlock(2 * w), 2 * w, tdim)
        self.down2 = Down(2 * w, 4 * w)
        self.mid = nn.ModuleList([_TimeBlock(ESSBlock(4 * w), 4 * w, tdim) for _ in range(cfg.mid_blocks)])
        self.up2 = Up(4 * w, 2 * w)
        self.dec2 = _TimeBlock(ESSBlock(2 * w), 2 * w, tdim)
        self.up1 = Up(2 * w, w)
        self.dec1 = _TimeBlock(ESSBlock(w), w, tdim)
        self.tail = conv(w, cfg.bands)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def run(self, stacked: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``stacked``: the input images concatenated on the channel axis; ``t``: (N,) as t / T."""
        e = self.temb(t)
        h1 = self.enc1(self.head(stacked), e)
        h2 = self.enc2(self.down1(h1), e)
        h = self.down2(h2)
        for blk in self.mid:
            h = blk(h, e)
        h = self.dec2(self.up2(h, h2), e)
        h = self.dec1(self.up1(h, h1), e)
        return self.tail(h)


class ResidualDenoiser(TimeUNet):
    """Stage 2: RDDM residual predictor r_hat(x_t, y, coarse, t) with r = coarse - clean.

    Inputs are concatenated (x_t, hazy input y, stage-1 output coarse); t conditions every block. Its
    decoder is trained with a perceptual objective on x0_hat = coarse - r_hat ("perceptual decoding").
    """

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__(cfg, 3)

    def forward(self, x_t: torch.Tensor, y: torch.Tensor, coarse: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.run(torch.cat([x_t, y, coarse], dim=1), t)


@torch.no_grad()
def norm_fits(trained: MCESSUNet, inputs: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{ChannelNorm module name: (a, b)}: per channel, the least-squares affine fit ``a x + b`` of the norm's
    output over the activations that ``inputs`` produce."""
    fits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    hooks = []
    for name, mod in trained.named_modules():
        if isinstance(mod, ChannelNorm):
            def fit(m: nn.Module, args: tuple[torch.Tensor], out: torch.Tensor, name: str = name) -> None:
                x = args[0].transpose(0, 1).reshape(out.shape[1], -1).double()
                h = out.transpose(0, 1).reshape(out.shape[1], -1).double()
                xm, hm = x.mean(1, keepdim=True), h.mean(1, keepdim=True)
                a = ((x - xm) * (h - hm)).mean(1) / ((x - xm) ** 2).mean(1).clamp_min(1e-12)
                fits[name] = a.float(), (hm[:, 0] - a * xm[:, 0]).float()
            hooks.append(mod.register_forward_hook(fit))
    trained.eval()(inputs)
    for hk in hooks:
        hk.remove()
    return fits


@torch.no_grad()
def lean_state_dict(trained: MCESSUNet, fits: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Weights for the lean twin of a trained stage-1 network (``UNetConfig.lean``), as a warm start.

    The Concat, chunk and merge rewrites are exact (weights split, or the two selection halves subtracted).
    The channel norms are dropped: each is replaced by its affine fit (:func:`norm_fits`), folded into the
    depthwise convolutions that read it (exact away from the zero-padded border). With the lean blocks'
    activation at GELU (``Act.relu_weight`` 0) the twin computes what the trained network computes with its
    norms replaced by their fits; training moves it to ReLU (``model.relu_ramp``) and makes up the rest.
    """
    if trained.cfg.lean:
        raise ValueError("lean_state_dict converts a network with channel norms; this one is lean already")
    sd = {k: v.clone() for k, v in trained.state_dict().items() if not k.endswith((".norm.weight", ".norm.bias"))}

    def fold(dw: str, a: torch.Tensor, b: torch.Tensor) -> None:  # dw conv reading a x + b instead of x
        w = sd[f"{dw}.weight"]
        sd[f"{dw}.bias"] = sd[f"{dw}.bias"] + b * w.sum(dim=(1, 2, 3))
        sd[f"{dw}.weight"] = w * a.view(-1, 1, 1, 1)

    for name, mod in trained.named_modules():
        if isinstance(mod, MCBlock):
            a, b = fits[f"{name}.norm"]
            for i in range(3):
                fold(f"{name}.branches.{i}", a, b)
            w, bias = sd.pop(f"{name}.fuse.weight"), sd.pop(f"{name}.fuse.bias")
            c = w.shape[0]
            for i in range(3):
                sd[f"{name}.fuse.{i}.weight"] = w[:, i * c : (i + 1) * c].clone()
            sd[f"{name}.fuse.0.bias"] = bias
        elif isinstance(mod, ESSBlock):
            a, b = fits[f"{name}.norm"]
            fold(f"{name}.b1.0", a, b)
            fold(f"{name}.b2.0", a, b)
            w, bias = sd[f"{name}.select.weight"], sd[f"{name}.select.bias"]
            c = w.shape[0] // 2
            sd[f"{name}.select.weight"], sd[f"{name}.select.bias"] = w[:c] - w[c:], bias[:c] - bias[c:]
        elif isinstance(mod, Up):
            w = sd.pop(f"{name}.merge.weight")
            c = w.shape[0]
            sd[f"{name}.merge.weight"], sd[f"{name}.merge_skip.weight"] = w[:, :c].clone(), w[:, c:].clone()
    return sd


def count_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())
