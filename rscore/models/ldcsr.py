"""LDCSR networks (METHODS.md section 4): our own lean design for CPU inference, in the spirit of the seed.

Everything runs on the output grid (the engine's bicubic upsampling of the input, ``bic``) or on the latent grid
(output / 8). Four networks:

- :class:`HrEncoder` (training only): (HR, bic) -> KL latent (mean, log-variance), 4 channels at HR/8: what
  bicubic misses.
- :class:`SrDecoder`: (latent z, bic, scale) -> HR = bic + a residual. A small U-Net over ``bic`` whose
  bottleneck (at /8) receives z; the scale ratio modulates every level (FiLM). Because the latent sits on a grid
  tied to the output pixels by an exact factor 8, the decoder renders any real scale factor the engine asks for,
  and a tile gives the same pixels as the whole raster (windows aligned to the factor; margins for the borders).
- :class:`CondEncoder`: (bic, scale) -> the condition c at /8 (trained to match the latent: the regression path).
- :class:`LatentDenoiser`: (x_t, c, t, scale) -> eps on the latent grid: a small U-Net with FiLM from t and
  the scale.

Design choices for this CPU: ReLU/SiLU instead of erf-GELU, no normalisation layers (small batches,
tile-independent statistics), 3x3 convolutions only, and widths set by ``tools/bench_sr.py`` against the
0.2 Mpx-of-output-per-second target (docs/performance.md): 8 channels at full resolution (16 was 1.8x slower),
a latent denoiser of width 32 (64 cost 40 % more per run).

Not used: an embedding of the output size. Tiled inference sees many window sizes for one raster, so a
size embedding would make the result depend on the tiling; the scale ratio carries the information that
matters (how much detail bicubic lacks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from rscore.models.blocks import TimeEmbedding, conv

#: output pixels per latent pixel
LATENT_FACTOR = 8
#: the networks' input size multiple on the output grid: the latent factor times the denoiser's two levels
SIZE_MULTIPLE = 32
#: initial log-variance of the HR encoder's latent
LOGVAR_INIT = -8.0
#: the scale ratios the embedding is built for
SCALE_RANGE = (1.0, 8.0)


@dataclass(frozen=True)
class LdcsrConfig:
    """Widths of the four networks.

    Attributes:
        bands: image bands in and out.
        latent_channels: channels of the latent (4 in the paper).
        width: base width of the encoders and the decoder at full resolution (x2 per level, up to x4).
        denoiser_width: base width of the latent denoiser.
    """

    bands: int
    latent_channels: int = 4
    width: int = 8
    denoiser_width: int = 32


class ScaleEmbedding(nn.Module):
    """(1,) scale ratio -> (1, dim): features 1/s and log(s)/log(8) (both well spread over 1-8), then an MLP."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(2, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, scale: torch.Tensor) -> torch.Tensor:
        s = scale.reshape(-1, 1).float().clamp(min=1.0)
        return self.mlp(torch.cat([1.0 / s, torch.log(s) / math.log(SCALE_RANGE[1])], dim=1))


class ResBlock(nn.Module):
    """conv-ReLU-conv with a residual connection; optional FiLM (scale, shift) from an embedding."""

    def __init__(self, c: int, emb_dim: int = 0) -> None:
        super().__init__()
        self.c1, self.c2 = conv(c, c), conv(c, c)
        self.film = nn.Linear(emb_dim, 2 * c) if emb_dim else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        h = F.relu(self.c1(x))
        if self.film is not None and emb is not None:
            scale, shift = self.film(emb).unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)
            h = h * (1 + scale) + shift
        return x + self.c2(h)


def _widths(w: int) -> tuple[int, int, int, int]:
    """Channels at full resolution, /2, /4 and /8."""
    return w, 2 * w, 4 * w, 4 * w


class _Pyramid(nn.Module):
    """Full-resolution stem and three stride-2 levels (to /8), each with a FiLM ResBlock; returns every level."""

    def __init__(self, cin: int, w: int, emb_dim: int) -> None:
        super().__init__()
        ws = _widths(w)
        self.stem = conv(cin, ws[0])
        self.downs = nn.ModuleList([conv(ws[i], ws[i + 1], 3, stride=2) for i in range(3)])
        self.blocks = nn.ModuleList([ResBlock(c, emb_dim) for c in ws])

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None) -> list[torch.Tensor]:
        h = self.blocks[0](F.relu(self.stem(x)), emb)
        levels = [h]
        for down, block in zip(self.downs, self.blocks[1:]):
            h = block(F.relu(down(h)), emb)
            levels.append(h)
        return levels


class HrEncoder(nn.Module):
    """(HR, bic) -> (mean, logvar) of the latent at /8 (training only: the runtime never sees HR)."""

    def __init__(self, cfg: LdcsrConfig) -> None:
        super().__init__()
        self.pyramid = _Pyramid(2 * cfg.bands, cfg.width, 0)
        self.out = conv(_widths(cfg.width)[3], 2 * cfg.latent_channels)
        # the log-variance starts at -8 (sampling noise std 0.02): with the usual start at 0 the latent is mostly
        # noise, the decoder learns to ignore it and the latent carries nothing (posterior collapse: the
        # autoencoder then scores exactly as the regression path)
        with torch.no_grad():
            self.out.weight[cfg.latent_channels:].zero_()
            self.out.bias[cfg.latent_channels:].fill_(LOGVAR_INIT)

    def forward(self, hr: torch.Tensor, bic: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self.out(self.pyramid(torch.cat([hr, bic], dim=1), None)[-1]).chunk(2, dim=1)
        return mean, logvar.clamp(-20.0, 10.0)


class CondEncoder(nn.Module):
    """(bic, scale) -> c, the condition on the latent grid (and the regression estimate of the latent)."""

    def __init__(self, cfg: LdcsrConfig) -> None:
        super().__init__()
        emb = 4 * cfg.width
        self.scale_emb = ScaleEmbedding(emb)
        self.pyramid = _Pyramid(cfg.bands, cfg.width, emb)
        self.out = conv(_widths(cfg.width)[3], cfg.latent_channels)

    def forward(self, y: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return self.out(self.pyramid(y, self.scale_emb(scale))[-1])


class SrDecoder(nn.Module):
    """(z, bic, scale) -> HR: bic plus a residual from a U-Net over bic whose /8 bottleneck receives z, and
    whose every decoder level receives z again (nearest-upsampled, 1x1 projection).

    The direct injections matter: with z only at the bottleneck, the decoder learnt to work from the bicubic
    skips alone and ignored the latent (the autoencoder scored exactly as the regression path). The output
    layer starts at zero, so a fresh decoder returns bicubic exactly.
    """

    def __init__(self, cfg: LdcsrConfig) -> None:
        super().__init__()
        ws = _widths(cfg.width)
        emb = 4 * cfg.width
        self.scale_emb = ScaleEmbedding(emb)
        self.pyramid = _Pyramid(cfg.bands, cfg.width, emb)
        self.z_in = conv(cfg.latent_channels, ws[3])
        self.mid = ResBlock(ws[3], emb)
        self.ups = nn.ModuleList([conv(ws[i + 1], ws[i]) for i in range(3)])
        self.merges = nn.ModuleList([nn.Conv2d(2 * ws[i], ws[i], 1) for i in range(3)])
        self.blocks = nn.ModuleList([ResBlock(ws[i], emb) for i in range(3)])
        self.z_skips = nn.ModuleList([nn.Conv2d(cfg.latent_channels, ws[i], 1) for i in range(3)])
        self.out = conv(ws[0], cfg.bands)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, z: torch.Tensor, y: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        emb = self.scale_emb(scale)
        levels = self.pyramid(y, emb)
        h = self.mid(levels[3] + self.z_in(z), emb)
        for i in (2, 1, 0):
            up = F.relu(self.ups[i](F.interpolate(h, scale_factor=2.0, mode="nearest")))
            zi = self.z_skips[i](F.interpolate(z, scale_factor=float(2 ** (3 - i)), mode="nearest"))
            h = self.blocks[i](self.merges[i](torch.cat([up, levels[i]], dim=1)) + zi, emb)
        return y + self.out(h)


class LatentDenoiser(nn.Module):
    """(x_t, c, t, scale) -> eps on the latent grid: a three-level U-Net (latent, /2, /4) with FiLM from the
    time and scale embeddings. The output layer starts at zero."""

    def __init__(self, cfg: LdcsrConfig) -> None:
        super().__init__()
        w = cfg.denoiser_width
        emb = 2 * w
        self.t_emb = TimeEmbedding(emb)
        self.scale_emb = ScaleEmbedding(emb)
        self.head = conv(2 * cfg.latent_channels, w)
        self.enc = nn.ModuleList([ResBlock(w, emb), ResBlock(2 * w, emb), ResBlock(2 * w, emb)])
        self.downs = nn.ModuleList([conv(w, 2 * w, 3, stride=2), conv(2 * w, 2 * w, 3, stride=2)])
        self.ups = nn.ModuleList([conv(2 * w, 2 * w), conv(2 * w, w)])
        self.merges = nn.ModuleList([nn.Conv2d(4 * w, 2 * w, 1), nn.Conv2d(2 * w, w, 1)])
        self.dec = nn.ModuleList([ResBlock(2 * w, emb), ResBlock(w, emb)])
        self.out = conv(w, cfg.latent_channels)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x_t: torch.Tensor, c: torch.Tensor, t: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        emb = self.t_emb(t) + self.scale_emb(scale)
        h0 = self.enc[0](F.relu(self.head(torch.cat([x_t, c], dim=1))), emb)
        h1 = self.enc[1](F.relu(self.downs[0](h0)), emb)
        h = self.enc[2](F.relu(self.downs[1](h1)), emb)
        for i, skip in enumerate((h1, h0)):
            up = F.relu(self.ups[i](F.interpolate(h, scale_factor=2.0, mode="nearest")))
            h = self.dec[i](self.merges[i](torch.cat([up, skip], dim=1)), emb)
        return self.out(h)


def kl_to_standard_normal(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Mean KL divergence of N(mean, exp(logvar)) from N(0, 1), per latent element."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()
