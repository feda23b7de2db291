"""Networks of codec-decoded enhancement after LDM-RSIC (our own lean design for tiled CPU inference).

The decoded image ``y`` (model units, output grid) is enhanced by a multi-scale network that reads a compact
*prior* ``z``: a spatial map on the latent grid (1/8 of the output pixels, ``prior_channels`` channels), so that
the whole method runs tiled on rasters of any size (the engine aligns windows to the latent factor and to the
networks' size multiple, in global coordinates). Four networks:

- :class:`PriorEncoder` (Stage I, training only): the high-quality *and* the decoded image, each
  pixel-unshuffled by 4 and concatenated -> z. It sees what the codec removed.
- :class:`EnhancementNet` (MEN): a three-level U-Net of prior blocks over ``y``; returns ``y`` plus a residual.
  Each :class:`PriorBlock` mixes space (window transposed attention at the two coarse levels, a depthwise 3x3
  at full resolution) and then runs a gated feed-forward; the prior enters every block (DFAM): a per-pixel
  channel attention on the mixing branch, a gated injection of prior content, and FiLM of the feed-forward's
  hidden units. The output layer starts at zero, so a fresh network returns its input.
- :class:`PriorCondEncoder`: the decoded image alone -> c on the latent grid (a regression estimate of z and the
  denoiser's condition).
- :class:`PriorDenoiser` (Stage II): (x_t, c, t) -> the x0 estimate of z: ``c`` plus a correction from residual
  blocks with FiLM from t, on the latent grid.

Window attention is "transposed" as in Restormer (channel x channel, per head) but computed inside windows of
8 x 8 pixels of its level (16 and 32 output pixels at 1/2 and 1/4) instead of over the whole image: a global
statistic would make a tile's result depend on the tiling. Windows sit on multiples of :data:`SIZE_MULTIPLE`
in global coordinates, so tiles cut the same windows as the whole raster.

CPU choices: no normalisation layers (per-pixel LayerNorm exports as a chain of reductions), ReLU, 1x1 and
depthwise convolutions, widths 16/32/64; convolutions whose outputs are used in parts (the prior projection,
queries/keys/values, the gated feed-forward) are one convolution per part (:class:`SplitConv`), and the prior
is resized to each level before its projection, not after (onnxruntime: 1.5-2x faster decoder, see
docs/performance.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from rscore.models.blocks import SplitConv, TimeEmbedding, conv
from rscore.models.ldcsr import ResBlock

#: output pixels per latent (prior) pixel
LATENT_FACTOR = 8
#: side of an attention window, in pixels of its level
WINDOW = 8
#: the networks' size multiple on the output grid: windows of 8 at 1/4 resolution
SIZE_MULTIPLE = 32
#: pixel-unshuffle factor of the prior and condition encoders
UNSHUFFLE = 4


@dataclass(frozen=True)
class RsicConfig:
    """Widths of the networks.

    Attributes:
        bands: image bands in and out.
        prior_channels: channels of the prior map z.
        width: MEN channels at full resolution (x2 per level).
        mid_blocks: prior blocks at 1/4 resolution.
        heads: attention heads (window attention).
        encoder_width: channels of the prior and condition encoders (at 1/4 and 1/8).
        denoiser_width: channels of the latent denoiser.
        denoiser_blocks: residual blocks of the latent denoiser.
    """

    bands: int
    prior_channels: int = 8
    width: int = 16
    mid_blocks: int = 2
    heads: int = 2
    encoder_width: int = 64
    denoiser_width: int = 48
    denoiser_blocks: int = 4


class WindowChannelAttention(nn.Module):
    """Transposed attention (channel x channel per head, L2-normalised queries and keys, learnt temperature)
    inside non-overlapping ``window`` x ``window`` windows."""

    def __init__(self, c: int, heads: int, window: int = WINDOW) -> None:
        super().__init__()
        if c % heads:
            raise ValueError(f"{c} channels do not split into {heads} heads")
        self.heads, self.window = heads, window
        self.qkv = SplitConv(c, (c, c, c))
        self.dw = SplitConv(c, (c, c, c), 3, depthwise=True)
        self.proj = nn.Conv2d(c, c, 1)
        self.temperature = nn.Parameter(torch.ones(1, heads, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        k, hd = self.window, self.heads
        ch, nh, nw = c // hd, h // k, w // k

        def windows(t: torch.Tensor) -> torch.Tensor:  # (n, heads, windows, ch, k*k)
            return t.reshape(n, hd, ch, nh, k, nw, k).permute(0, 1, 3, 5, 2, 4, 6).reshape(n, hd, nh * nw, ch, k * k)

        q, kk, v = (windows(t) for t in self.dw(self.qkv(x)))
        q, kk = F.normalize(q, dim=-1), F.normalize(kk, dim=-1)
        attn = torch.softmax(q @ kk.transpose(-2, -1) * self.temperature, dim=-1)
        out = (attn @ v).reshape(n, hd, nh, nw, ch, k, k).permute(0, 1, 4, 2, 5, 3, 6).reshape(n, c, h, w)
        return self.proj(out)


def at_level(z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The prior map ``z`` on the grid of the feature map ``x`` (bilinear; unchanged when already there)."""
    if z.shape[-2:] == x.shape[-2:]:
        return z
    return F.interpolate(z, size=x.shape[-2:], mode="bilinear", align_corners=False)


class PriorBlock(nn.Module):
    """Spatial mixing and a gated feed-forward, both steered by the prior map (DFAM).

    With ``p = prior_proj(z)``, ``z`` brought to this level's resolution (bilinear) and split into a channel-attention
    logit ``a``, a gate logit ``g``, prior content ``v`` and FiLM scale/shift ``(s, b)``:

        x = x + mix(x) * sigmoid(a) + sigmoid(g) * v
        x = x + out((u1 * relu(u2)) * (1 + s) + b),   (u1, u2) = dw(in(x))
    """

    def __init__(self, c: int, prior_channels: int, heads: int, attention: bool) -> None:
        super().__init__()
        hidden = 2 * c
        self.c, self.hidden = c, hidden
        self.mix: nn.Module = (WindowChannelAttention(c, heads) if attention
                               else nn.Sequential(conv(c, c, 3, groups=c), nn.ReLU(), nn.Conv2d(c, c, 1)))
        self.prior_proj = SplitConv(prior_channels, (c, c, c, hidden, hidden))
        self.ffn_in = SplitConv(c, (hidden, hidden))
        self.ffn_dw = SplitConv(hidden, (hidden, hidden), 3, depthwise=True)
        self.ffn_out = nn.Conv2d(hidden, c, 1)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        # the prior is brought to this level before its 1x1 projection: the two commute (bilinear weights sum to
        # one), and resizing its few channels costs a fraction of resizing the 3c + 2 hidden projected ones
        a, g, v, s, b = self.prior_proj(at_level(z, x))
        x = x + self.mix(x) * torch.sigmoid(a) + torch.sigmoid(g) * v
        u1, u2 = self.ffn_dw(self.ffn_in(x))
        return x + self.ffn_out((u1 * F.relu(u2)) * (1.0 + s) + b)


class EnhancementNet(nn.Module):
    """MEN: (y, z) -> enhanced image = y + residual; levels full (no attention), 1/2 and 1/4 (window attention)."""

    def __init__(self, cfg: RsicConfig) -> None:
        super().__init__()
        w, zc, hd = cfg.width, cfg.prior_channels, cfg.heads
        self.stem = conv(cfg.bands, w)
        self.enc0 = PriorBlock(w, zc, hd, attention=False)
        self.down1 = conv(w, 2 * w, 3, stride=2)
        self.enc1 = PriorBlock(2 * w, zc, hd, attention=True)
        self.down2 = conv(2 * w, 4 * w, 3, stride=2)
        self.mid = nn.ModuleList([PriorBlock(4 * w, zc, hd, attention=True) for _ in range(cfg.mid_blocks)])
        self.up1, self.merge1 = conv(4 * w, 2 * w), nn.Conv2d(4 * w, 2 * w, 1)
        self.dec1 = PriorBlock(2 * w, zc, hd, attention=True)
        self.up0, self.merge0 = conv(2 * w, w), nn.Conv2d(2 * w, w, 1)
        self.dec0 = PriorBlock(w, zc, hd, attention=False)
        self.out = conv(w, cfg.bands)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        x0 = F.relu(self.stem(y))
        z0 = at_level(z, x0)  # the prior resized once per level, shared by the level's blocks
        h0 = self.enc0(x0, z0)
        x1 = F.relu(self.down1(h0))
        z1 = at_level(z, x1)
        h1 = self.enc1(x1, z1)
        h = F.relu(self.down2(h1))
        z2 = at_level(z, h)
        for block in self.mid:
            h = block(h, z2)
        h = self.dec1(self.merge1(torch.cat([F.relu(self.up1(F.interpolate(h, scale_factor=2.0))), h1], 1)), z1)
        h = self.dec0(self.merge0(torch.cat([F.relu(self.up0(F.interpolate(h, scale_factor=2.0))), h0], 1)), z0)
        return y + self.out(h)


class _TokenEncoder(nn.Module):
    """Images (concatenated bands) -> a map on the latent grid: pixel-unshuffle by 4, 1x1 projection, two
    residual blocks at 1/4, a stride-2 convolution to 1/8, two residual blocks, a 1x1 output."""

    def __init__(self, cin: int, width: int, cout: int) -> None:
        super().__init__()
        self.head = nn.Conv2d(cin * UNSHUFFLE * UNSHUFFLE, width, 1)
        self.quarter = nn.ModuleList([ResBlock(width), ResBlock(width)])
        self.down = conv(width, width, 3, stride=2)
        self.eighth = nn.ModuleList([ResBlock(width), ResBlock(width)])
        self.out = nn.Conv2d(width, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.head(F.pixel_unshuffle(x, UNSHUFFLE)))
        for block in self.quarter:
            h = block(h)
        h = F.relu(self.down(h))
        for block in self.eighth:
            h = block(h)
        return self.out(h)


class PriorEncoder(nn.Module):
    """Stage I: (high-quality, decoded) -> z on the latent grid (training only: the runtime has no HQ image)."""

    def __init__(self, cfg: RsicConfig) -> None:
        super().__init__()
        self.net = _TokenEncoder(2 * cfg.bands, cfg.encoder_width, cfg.prior_channels)

    def forward(self, hq: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([hq, y], dim=1))


class PriorCondEncoder(nn.Module):
    """Stage II: decoded -> c on the latent grid (regression estimate of z; the denoiser's condition)."""

    def __init__(self, cfg: RsicConfig) -> None:
        super().__init__()
        self.net = _TokenEncoder(cfg.bands, cfg.encoder_width, cfg.prior_channels)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.net(y)


class PriorDenoiser(nn.Module):
    """Stage II: (x_t, c, t) -> x0 estimate of z = c + a correction (zero at initialisation)."""

    def __init__(self, cfg: RsicConfig) -> None:
        super().__init__()
        w = cfg.denoiser_width
        self.t_emb = TimeEmbedding(2 * w)
        self.head = conv(2 * cfg.prior_channels, w)
        self.blocks = nn.ModuleList([ResBlock(w, 2 * w) for _ in range(cfg.denoiser_blocks)])
        self.out = conv(w, cfg.prior_channels)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x_t: torch.Tensor, c: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.t_emb(t)
        h = F.relu(self.head(torch.cat([x_t, c], dim=1)))
        for block in self.blocks:
            h = block(h, emb)
        return c + self.out(h)


class PriorDecoder(nn.Module):
    """The runtime's ``decoder`` stage: (x0, y) -> MEN(y, x0 * z_std), where x0 is the prior normalised by its
    spread ``z_std`` (the diffusion works on the normalised prior)."""

    def __init__(self, men: EnhancementNet, z_std: float) -> None:
        super().__init__()
        self.men, self.z_std = men, float(z_std)

    def forward(self, x0: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.men(y, x0 * self.z_std)
