"""Reference-based super-resolution after TTRD3 (METHODS.md section 5, our own design for tiled CPU inference).

Every tensor is on the output grid: ``y`` is the low-resolution input upsampled by the engine (bicubic, any real
scale), ``aux`` the reference warped onto the same grid, ``aux_valid`` where the reference has data (1/0).

1. :class:`TextureNet` (once per tile) builds multi-scale features (:class:`MFAB`) of ``y``, of the reference
   low-passed to the input's resolution (:class:`ScaleLowPass`, the "down-up" reference) and of the reference
   itself; matches ``y`` against the low-passed reference within a search window at 1/4 resolution (the rasters
   are co-registered, so a window is enough and memory grows with the tile area, not its square), keeps the top-k
   matches (a fixed k: deterministic), and transfers the reference's features and pixels from the matched
   positions, weighted by a confidence (similarity and validity). Its outputs are ``c`` (transferred texture
   times confidence, plus the confidence) and ``x``, a one-pass estimate: the input plus a residual plus a
   learnt, per-pixel share of the transferred detail (the reference pixels minus their low-pass at the scale).
2. :class:`RefDenoiser` (once per step): residual diffusion (RDDM, residual and noise prediction) from the
   one-pass estimate, conditioned on ``y`` and ``c``.

Falling back to plain SR: ``c`` enters every network through bias-free convolutions, and is exactly 0 where the
reference is invalid (outside its footprint, nodata). There both networks compute what they compute with no
reference at all, i.e. plain super-resolution, and invent no texture.

With a base (:class:`SrBase`: a ``super_resolve`` bundle's regression path, frozen, inside the texture stage) the
one-pass estimate is built on plain SR instead of bicubic: ``base + valid * (residual + gate * (reference detail -
base detail))``. The gate swaps plain SR's own fine detail for the reference's where the match is trusted;
outside the reference's footprint the estimate is exactly the base, i.e. plain super-resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from rscore.models.blocks import LocalMean, TimeEmbedding, conv
from rscore.models.ldcsr import CondEncoder, LdcsrConfig, ResBlock, ScaleEmbedding, SrDecoder

#: the networks' deepest stride (the U-Nets' 1/4 level, the coarsest matching grid): tile windows are aligned to
#: it (the manifest's size multiple)
MATCH_FACTOR = 4


@dataclass(frozen=True)
class Ttrd3Config:
    """Widths of the reference-based SR networks.

    Attributes:
        bands: image bands (input, reference and output).
        match_channels: channels of the matching features at 1/4 resolution.
        texture_channels: channels of the transferred reference features (full resolution).
        width: U-Net width of the one-pass head and of the denoiser (full resolution; 2x at 1/2 and 1/4).
        search_radius: matching window radius in matching cells (3 cells of 4 px: +-12 output pixels).
        top_k: matches kept per position.
        match_factor: output pixels per matching cell (1, 2 or 4): the precision of the transfer. With 4 a
            reference misregistered by 1-3 px cannot be aligned (its detail lands off by that much).
    """

    bands: int
    match_channels: int = 16
    texture_channels: int = 8
    width: int = 16
    search_radius: int = 3
    top_k: int = 4
    match_factor: int = 4

    def __post_init__(self) -> None:
        if self.match_factor not in (1, 2, 4):
            raise ValueError(f"match_factor must be 1, 2 or 4, got {self.match_factor}")

    @property
    def cond_channels(self) -> int:
        """Channels of ``c``: transferred features, transferred pixels, confidence."""
        return self.texture_channels + self.bands + 1


class MFAB(nn.Module):
    """Multi-scale feature aggregation block: parallel depthwise 3x3, 5x5 and 7x7 convolutions fused by a 1x1,
    then channel attention (from a 7x7 local mean instead of a global pool, so that tiles agree) and spatial
    attention (7x7 over the channel mean and max), with a residual connection."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList([conv(c, c, k, groups=c) for k in (3, 5, 7)])
        self.fuse = nn.Conv2d(3 * c, c, 1)
        self.mean = LocalMean(c, 7)
        hidden = max(4, c // 4)
        self.channel = nn.Sequential(nn.Conv2d(c, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, c, 1))
        self.spatial = conv(2, 1, 7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.fuse(torch.cat([b(x) for b in self.branches], dim=1)))
        h = h * torch.sigmoid(self.channel(self.mean(h)))
        stats = torch.cat([h.mean(dim=1, keepdim=True), h.amax(dim=1, keepdim=True)], dim=1)
        return x + h * torch.sigmoid(self.spatial(stats))


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    r = int(math.ceil(3 * sigma))
    x = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


class ScaleLowPass(nn.Module):
    """The reference as the input sensor would see it at the output scale s: Gaussian blurs of std s/2 output
    pixels for s = 1, 2, 4, 8 (s = 1: no blur), mixed by linear interpolation in log2(s). Fixed, separable."""

    SIGMAS = (1.0, 2.0, 4.0)  # s = 2, 4, 8

    def __init__(self, bands: int) -> None:
        super().__init__()
        self.bands = bands
        for i, s in enumerate(self.SIGMAS):
            k = _gaussian_kernel(s)
            self.register_buffer(f"k{i}", k.view(1, 1, 1, -1).repeat(bands, 1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        versions = [x]
        for i in range(len(self.SIGMAS)):
            k = getattr(self, f"k{i}")
            r = k.shape[-1] // 2
            h = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k, groups=self.bands)
            versions.append(F.conv2d(F.pad(h, (0, 0, r, r), mode="replicate"), k.transpose(2, 3), groups=self.bands))
        pos = torch.log2(scale.reshape(-1, 1, 1, 1).float().clamp(1.0, 8.0))
        out = torch.zeros_like(x)
        for j, v in enumerate(versions):
            out = out + F.relu(1.0 - (pos - j).abs()) * v
        return out


class MatchEncoder(nn.Module):
    """Image -> unit-norm matching features at 1/``factor`` resolution (two 3x3 convolutions, strided while the
    factor asks for it, then an MFAB)."""

    def __init__(self, bands: int, c: int, factor: int = 4) -> None:
        super().__init__()
        self.stem = conv(bands, c // 2)
        self.down1 = conv(c // 2, c, 3, stride=2 if factor >= 2 else 1)
        self.down2 = conv(c, c, 3, stride=2 if factor >= 4 else 1)
        self.block = MFAB(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.down2(F.relu(self.down1(F.relu(self.stem(x))))))
        h = self.block(h)
        return h * torch.rsqrt(h.pow(2).sum(dim=1, keepdim=True) + 1e-6)


def _shift(x: torch.Tensor, pad: int, dy: int, dx: int) -> torch.Tensor:
    """``x`` padded by ``pad`` (already), read at offset (dy, dx): out[i, j] = x[i + dy, j + dx]."""
    rows, cols = x.shape[-2] - 2 * pad, x.shape[-1] - 2 * pad
    return x[..., pad + dy : pad + dy + rows, pad + dx : pad + dx + cols]


class SrBase(nn.Module):
    """Plain super-resolution under the texture transfer: the regression path of a ``super_resolve`` bundle (its
    decoder over its condition encoder's estimate of the normalised latent times ``z_std``,
    :mod:`rscore.models.ldcsr`), frozen, in this bundle's model units. ``y`` (this bundle's units) becomes the SR
    networks' units by a fixed per-band affine map (``gain_in``, ``offset_in``) and their output comes back by
    another (``gain_out``, ``offset_out``): the two bundles normalise with their own band statistics. Always
    float32 (outside autocast): the base is a fixed input of the trained networks, not something they learn."""

    def __init__(self, cond: CondEncoder, decoder: SrDecoder, z_std: float, gain_in: torch.Tensor,
                 offset_in: torch.Tensor, gain_out: torch.Tensor, offset_out: torch.Tensor) -> None:
        super().__init__()
        self.cond, self.decoder, self.z_std = cond, decoder, float(z_std)
        for name, v in (("gain_in", gain_in), ("offset_in", offset_in), ("gain_out", gain_out),
                        ("offset_out", offset_out)):
            self.register_buffer(name, v.detach().float().reshape(1, -1, 1, 1).clone())
        for p in self.parameters():
            p.requires_grad_(False)

    @staticmethod
    def config_of(cond_weights: dict[str, torch.Tensor]) -> LdcsrConfig:
        """The SR networks' widths, read from the condition encoder's weights."""
        stem, out = cond_weights["pyramid.stem.weight"], cond_weights["out.weight"]
        return LdcsrConfig(int(stem.shape[1]), latent_channels=int(out.shape[0]), width=int(stem.shape[0]))

    @classmethod
    def from_weights(cls, cond_weights: dict[str, torch.Tensor], decoder_weights: dict[str, torch.Tensor],
                     z_std: float, gain_in: torch.Tensor, offset_in: torch.Tensor, gain_out: torch.Tensor,
                     offset_out: torch.Tensor) -> SrBase:
        cfg = cls.config_of(cond_weights)
        cond, decoder = CondEncoder(cfg), SrDecoder(cfg)
        cond.load_state_dict(cond_weights, strict=True)
        decoder.load_state_dict(decoder_weights, strict=True)
        return cls(cond, decoder, z_std, gain_in, offset_in, gain_out, offset_out)

    def forward(self, y: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=y.device.type, enabled=False):
            ys = y.float() * self.gain_in + self.offset_in
            return self.decoder(self.cond(ys, scale) * self.z_std, ys, scale) * self.gain_out + self.offset_out


class TextureNet(nn.Module):
    """(y, aux, aux_valid, scale) -> (x: one-pass estimate, c: transferred texture and confidence); on plain SR
    when given a ``base`` (see the module's docstring)."""

    def __init__(self, cfg: Ttrd3Config, base: SrBase | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.base = base
        self.lowpass = ScaleLowPass(cfg.bands)
        self.match = MatchEncoder(cfg.bands, cfg.match_channels, cfg.match_factor)
        self.tex_stem = conv(cfg.bands, cfg.texture_channels)
        self.tex_block = MFAB(cfg.texture_channels)
        self.pool = nn.AvgPool2d(cfg.match_factor)
        #: similarity temperature and confidence calibration (learnt)
        self.log_tau = nn.Parameter(torch.tensor(math.log(0.05)))
        self.conf_a = nn.Parameter(torch.tensor(8.0))
        self.conf_b = nn.Parameter(torch.tensor(-4.0))
        # a residual and a per-pixel, per-band gate on the reference's transferred detail
        self.head = RefUNet(cfg, in_extra=0, emb_kind="scale", out_channels=2 * cfg.bands)

    def offsets(self) -> list[tuple[int, int]]:
        r = self.cfg.search_radius
        return [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)]

    def similarities(self, q: torch.Tensor, k: torch.Tensor, valid4: torch.Tensor) -> torch.Tensor:
        """(N, offsets, h, w): the similarity of the query features ``q`` with the reference features ``k`` (padded
        by the search radius) at every offset of the window, one product and channel sum per offset (a form with
        fewer layers was not faster: docs/performance.md, tools/bench_refsr_matching.py). An invalid reference
        cell never wins (-2 is below any cosine), and a tiny preference for small offsets, distinct per offset,
        breaks ties (flat areas, where the features are alike) the same way in torch and onnxruntime, towards no
        shift."""
        r = self.cfg.search_radius
        offs = self.offsets()
        return torch.cat([(q * _shift(k, r, dy, dx)).sum(dim=1, keepdim=True) - 2.0 * (1.0 - _shift(valid4, r, dy, dx))
                          - 1e-4 * (dy * dy + dx * dx + i / len(offs)) for i, (dy, dx) in enumerate(offs)], dim=1)

    def transfer(self, y: torch.Tensor, aux: torch.Tensor, aux_valid: torch.Tensor, scale: torch.Tensor
                 ) -> torch.Tensor:
        """``c`` = (transferred reference features and pixels) x confidence, and the confidence (N, C, H, W).

        The top-k matches are gathered, not summed over the whole window: the reference's values are cut into
        4 x 4 cells (pixel-unshuffle) and the k chosen cells of each position are read with one index_select
        (an ONNX Gather), so memory stays a few times the tile's size whatever the window."""
        r, f, kk = self.cfg.search_radius, self.cfg.match_factor, self.cfg.top_k
        side = 2 * r + 1
        aux = aux * aux_valid
        q = self.match(y)
        k = F.pad(self.match(self.lowpass(aux, scale)), (r, r, r, r))
        # (the size-1 forms of pooling, unshuffling and upsampling are skipped: they export wrongly to ONNX)
        valid4 = F.pad(((self.pool(aux_valid) if f > 1 else aux_valid) > 0.999).float(), (r, r, r, r))
        sims = self.similarities(q, k, valid4)
        top, idx = torch.topk(sims, kk, dim=1)  # (N, k, h, w), best first
        best = top[:, :1]
        e = torch.exp((top - best) / torch.exp(self.log_tau))
        wts = e / e.sum(dim=1, keepdim=True)
        conf4 = torch.sigmoid(self.conf_a * best + self.conf_b) * (best > -0.5).float()
        values = torch.cat([self.tex_block(F.relu(self.tex_stem(aux))), aux], dim=1)
        n, _, h, w = q.shape
        hp, wp = h + 2 * r, w + 2 * r
        # flat index of each chosen cell in the padded grids of the whole batch
        rows = torch.arange(h, device=q.device).view(1, 1, h, 1)
        cols = torch.arange(w, device=q.device).view(1, 1, 1, w)
        batch = torch.arange(n, device=q.device).view(n, 1, 1, 1) * (hp * wp)
        flat = (batch + (rows + torch.div(idx, side, rounding_mode="floor")) * wp + cols + idx % side).reshape(-1)
        cells = F.pad(F.pixel_unshuffle(values, f) if f > 1 else values, (r, r, r, r))  # (N, C * f * f, hp, wp)
        cu = cells.shape[1]
        picked = cells.transpose(0, 1).reshape(cu, n * hp * wp).index_select(1, flat).reshape(cu, n, kk, h, w)
        out = (picked.permute(1, 2, 0, 3, 4) * wts.unsqueeze(2)).sum(dim=1)
        if f > 1:
            out = F.pixel_shuffle(out, f)
            conf4 = F.interpolate(conf4, scale_factor=float(f), mode="nearest")
        conf = conf4 * aux_valid
        return torch.cat([out * conf, conf], dim=1)

    def forward(self, y: torch.Tensor, aux: torch.Tensor, aux_valid: torch.Tensor, scale: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """One-pass estimate ``y + residual + gate * detail``, where ``detail`` is the transferred reference
        pixels minus their low-pass at the scale (what the input cannot show), and the texture ``c``. With a base:
        ``base + aux_valid * (residual + gate * (detail - the base's own detail))``."""
        c = self.transfer(y, aux, aux_valid, scale)
        n, t = self.cfg.bands, self.cfg.texture_channels
        pixels = c[:, t : t + n]
        detail = pixels - self.lowpass(pixels, scale)
        if self.base is None:
            res, gate = self.head(y, c, self.head.embed(scale=scale)).chunk(2, dim=1)
            return y + res + torch.sigmoid(gate) * detail, c
        b = self.base(y, scale)
        res, gate = self.head(b, c, self.head.embed(scale=scale)).chunk(2, dim=1)
        own = b - self.lowpass(b, scale)
        return b + aux_valid * (res + torch.sigmoid(gate) * (detail - own)), c

    @property
    def frozen_prefixes(self) -> tuple[str, ...]:
        """State-dict prefixes of weights that do not train (the base): a warm start from a bundle without them
        keeps the network's own (:func:`training.warm_start.warm_start`)."""
        return ("base.",) if self.base is not None else ()


class RefUNet(nn.Module):
    """A three-level U-Net (full, 1/2, 1/4) over [y, extra inputs], with ``c`` injected at every level through
    bias-free 1x1 convolutions (zero ``c`` adds exactly nothing) and FiLM from scale (and time) embeddings. The
    output layer starts at zero."""

    def __init__(self, cfg: Ttrd3Config, in_extra: int, emb_kind: str, out_channels: int) -> None:
        super().__init__()
        w = cfg.width
        emb = 2 * w
        self.scale_emb = ScaleEmbedding(emb)
        self.t_emb = TimeEmbedding(emb) if emb_kind == "time" else None
        ws = (w, 2 * w, 2 * w)
        self.head = conv(cfg.bands + in_extra, w)
        self.inject = nn.ModuleList([nn.Conv2d(cfg.cond_channels, c, 1, bias=False) for c in ws])
        self.enc = nn.ModuleList([ResBlock(c, emb) for c in ws])
        self.downs = nn.ModuleList([conv(ws[0], ws[1], 3, stride=2), conv(ws[1], ws[2], 3, stride=2)])
        self.ups = nn.ModuleList([conv(ws[2], ws[1]), conv(ws[1], ws[0])])
        self.merges = nn.ModuleList([nn.Conv2d(2 * ws[1], ws[1], 1), nn.Conv2d(2 * ws[0], ws[0], 1)])
        self.dec = nn.ModuleList([ResBlock(ws[1], emb), ResBlock(ws[0], emb)])
        self.pools = nn.ModuleList([nn.Identity(), nn.AvgPool2d(2), nn.AvgPool2d(4)])
        self.out = conv(w, out_channels)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def embed(self, scale: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        e = self.scale_emb(scale)
        return e + self.t_emb(t) if self.t_emb is not None and t is not None else e

    def forward(self, x: torch.Tensor, c: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        inj = [self.inject[i](self.pools[i](c)) for i in range(3)]
        h0 = self.enc[0](F.relu(self.head(x)) + inj[0], emb)
        h1 = self.enc[1](F.relu(self.downs[0](h0)) + inj[1], emb)
        h = self.enc[2](F.relu(self.downs[1](h1)) + inj[2], emb)
        h = F.relu(self.ups[0](F.interpolate(h, scale_factor=2.0, mode="nearest")))
        h = self.dec[0](self.merges[0](torch.cat([h, h1], dim=1)) + inj[1], emb)
        h = F.relu(self.ups[1](F.interpolate(h, scale_factor=2.0, mode="nearest")))
        h = self.dec[1](self.merges[1](torch.cat([h, h0], dim=1)) + inj[0], emb)
        return self.out(h)


class RefDenoiser(nn.Module):
    """(x_t, y, coarse, c, t, scale) -> (res, eps): residual and noise prediction of RDDM on the output grid."""

    def __init__(self, cfg: Ttrd3Config) -> None:
        super().__init__()
        self.bands = cfg.bands
        self.net = RefUNet(cfg, in_extra=2 * cfg.bands, emb_kind="time", out_channels=2 * cfg.bands)

    def forward(self, x_t: torch.Tensor, y: torch.Tensor, coarse: torch.Tensor, c: torch.Tensor, t: torch.Tensor,
                scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(torch.cat([x_t, y, coarse], dim=1), c, self.net.embed(scale, t))
        return out[:, : self.bands], out[:, self.bands :]
