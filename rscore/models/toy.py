"""Small networks whose output can be worked out by hand: engine fixtures, the demo and benchmarks.

Input/output names follow the bundle contract (:class:`rscore.bundle.manifest.StageSpec`): tensors are
(1, bands, rows, cols) float32; ``t`` is (1,) float32 in (0, 1].
"""

from __future__ import annotations

import torch
from torch import nn


class IdentityNet(nn.Module):
    """x = y (direct pipeline). Through tiling and blending the output must equal the input exactly."""

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y * 1.0


class PointwiseRddmToy(nn.Module):
    """Per-pixel RDDM denoiser: r_hat = a * (y - b), eps_hat = c * (x_t - y) + d * t (no spatial context).

    With no receptive field, a stochastic sampler with this network must give bit-identical results for
    every tiling (the tile-size invariance property of the engine).
    """

    def __init__(self, a: float = 0.3, b: float = 0.1, c: float = 0.5, d: float = 0.2) -> None:
        super().__init__()
        self.a, self.b, self.c, self.d = a, b, c, d

    def forward(self, x_t: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        res = (y - self.b) * self.a
        eps = (x_t - y) * self.c + t.reshape(1, 1, 1, 1) * self.d
        return res, eps


class BlurResidualRddm(nn.Module):
    """Hand-set (untrained) RDDM denoiser predicting the residual y - blur(y): the sampler converges to a
    mildly smoothed image. Used by the demo until trained models ship; receptive margin = ``passes`` px."""

    def __init__(self, bands: int, passes: int = 2) -> None:
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        k2 = (k[:, None] * k[None, :]) / 16.0
        self.blur = nn.Conv2d(bands, bands, 3, padding=1, groups=bands, bias=False, padding_mode="replicate")
        with torch.no_grad():
            self.blur.weight.copy_(k2.expand(bands, 1, 3, 3))
        self.blur.requires_grad_(False)
        self.passes = passes

    def forward(self, x_t: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        b = y
        for _ in range(self.passes):
            b = self.blur(b)
        return y - b


class TinyConvDenoiser(nn.Module):
    """A small random-weight convolutional denoiser (x_t, y, t) -> (res, eps) for engine benchmarks."""

    def __init__(self, bands: int, width: int = 32, depth: int = 4, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        layers: list[nn.Module] = [nn.Conv2d(2 * bands + 1, width, 3, padding=1), nn.SiLU()]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.SiLU()]
        layers.append(nn.Conv2d(width, 2 * bands, 3, padding=1))
        self.body = nn.Sequential(*layers)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
        self.bands = bands

    def forward(self, x_t: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tt = t.reshape(1, 1, 1, 1).expand(x_t.shape[0], 1, x_t.shape[2], x_t.shape[3])
        out = self.body(torch.cat([x_t, y, tt], dim=1))
        return out[:, : self.bands], out[:, self.bands :]


class PointwiseEpsToy(nn.Module):
    """Per-pixel DDIM noise predictor eps_hat = c * x_t + e * y (no spatial context)."""

    def __init__(self, c: float = 0.4, e: float = -0.2) -> None:
        super().__init__()
        self.c, self.e = c, e

    def forward(self, x_t: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return x_t * self.c + y * self.e + t.reshape(1, 1, 1, 1) * 0.0


class AuxCopyNet(nn.Module):
    """x = aux (direct pipeline with an auxiliary input): shows what the engine fed as the reference."""

    def forward(self, y: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
        return aux + 0.0 * y


class SpreadNet(nn.Module):
    """x = y plus an extra output band ``spread`` = per-pixel standard deviation across bands."""

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return y * 1.0, y.std(dim=1, keepdim=True, unbiased=False)


class StridedToy(nn.Module):
    """x = y + (upsample(avgpool_4(y)) - y) / 2: not shift-equivariant (a 4 px pooling grid), so results
    are tiling-independent only if the engine aligns tiles to the network's size multiple (4)."""

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        low = torch.nn.functional.avg_pool2d(y, 4)
        up = torch.nn.functional.interpolate(low, scale_factor=4.0, mode="nearest")
        return y + (up - y) * 0.5


class HalfNet(nn.Module):
    """x = y / 2: a one-pass reference stage whose output differs from its input."""

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y * 0.5


class BrightCloudToy(nn.Module):
    """A reference stage with a cloud map: x = y / 2, cloud = sigmoid(4 (mean over bands of y - 4)), i.e. ~1
    where the pixel is very bright in model units (a toy cloud detector for the automatic mask)."""

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return y * 0.5, torch.sigmoid((y.mean(dim=1, keepdim=True) - 4.0) * 4.0)


class PointwiseDEToy(nn.Module):
    """Per-pixel Diffusion Enhancement step: eps_hat = c * x_t + e * y, W = sigmoid(g * (coarse - y))."""

    def __init__(self, c: float = 0.4, e: float = -0.2, g: float = 3.0) -> None:
        super().__init__()
        self.c, self.e, self.g = c, e, g

    def forward(self, x_t: torch.Tensor, y: torch.Tensor, coarse: torch.Tensor, t: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        eps = x_t * self.c + y * self.e + t.reshape(1, 1, 1, 1) * 0.0
        return eps, torch.sigmoid((coarse - y) * self.g)


class BlockMeanCond(nn.Module):
    """Toy LDCSR condition encoder: c = the mean of each aligned 8 x 8 block of the (upsampled) input."""

    def forward(self, y: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.avg_pool2d(y, 8) + scale.reshape(1, 1, 1, 1) * 0.0


class PointwiseLatentEps(nn.Module):
    """Toy latent noise predictor, per latent pixel: eps = 0.4 x_t - 0.2 c."""

    def forward(self, x_t: torch.Tensor, c: torch.Tensor, t: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return x_t * 0.4 - c * 0.2 + (t.reshape(1, 1, 1, 1) + scale.reshape(1, 1, 1, 1)) * 0.0


class BlockDecoder(nn.Module):
    """Toy LDCSR decoder: y plus half the difference between the latent and y's block mean, upsampled x8 by
    nearest neighbour (so each output pixel depends on its own latent pixel only)."""

    def forward(self, x0: torch.Tensor, y: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        d = x0 - torch.nn.functional.avg_pool2d(y, 8)
        up = torch.nn.functional.interpolate(d, scale_factor=8.0, mode="nearest")
        return y + up * 0.5 + scale.reshape(1, 1, 1, 1) * 0.0
