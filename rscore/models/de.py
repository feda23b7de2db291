"""Diffusion Enhancement networks (METHODS.md section 3) for cloud removal.

- reference model ``E``: an end-to-end MCESS-UNet, y -> x0_E (trained with L1);
- conditional noise predictor (CNP): eps_hat(x_t, y, t), DDPM noise prediction;
- weight-allocation network (WA): W(x_t, y, x0_E, t) in (0, 1) per pixel and band.

The fusion ``x0_t = (1 - W) x0_eps + W x0_E`` and the clamp of W to [eta, 1] are sampler arithmetic and live
in the runtime (:class:`rscore.pipelines.de.DePipeline`), not in the networks. For export the CNP and
the WA are one ONNX stage (:class:`DEDenoiser`): both are needed at every reverse step.
"""

from __future__ import annotations

import torch
from torch import nn

from rscore.models.dsrdmpd import TimeUNet, UNetConfig


class NoisePredictor(TimeUNet):
    """CNP: eps_hat(x_t, y, t) over the concatenation (x_t, cloudy input y)."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__(cfg, 2)

    def forward(self, x_t: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.run(torch.cat([x_t, y], dim=1), t)


class WeightNet(TimeUNet):
    """WA: per-pixel, per-band weight of the reference estimate, sigmoid of a U-Net over (x_t, y, x0_E).

    Starts at W = 0.5 everywhere (zero-initialised output layer).
    """

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__(cfg, 3)

    def forward(self, x_t: torch.Tensor, y: torch.Tensor, x0_ref: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.run(torch.cat([x_t, y, x0_ref], dim=1), t))


class DEDenoiser(nn.Module):
    """The per-step ONNX stage: (x_t, y, coarse = x0_E, t) -> (eps, weight)."""

    def __init__(self, cnp: NoisePredictor, wa: WeightNet) -> None:
        super().__init__()
        self.cnp = cnp
        self.wa = wa

    def forward(self, x_t: torch.Tensor, y: torch.Tensor, coarse: torch.Tensor, t: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cnp(x_t, y, t), self.wa(x_t, y, coarse, t)
