"""Building blocks of the DS-RDMPD networks (METHODS.md section 2), designed for tiled inference on CPU.

No block uses global pooling: attention statistics come from small local windows, so a network's output
depends on a bounded neighbourhood and tiles agree with each other (the engine adds that margin).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class LocalMean(nn.Module):
    """Mean over a k x k neighbourhood (zero padding at the borders) as a fixed depthwise convolution: on
    CPU its backward pass is several times faster than avg_pool2d's, and it exports to ONNX as a Conv.
    The kernel is a non-persistent buffer (not in state_dict: nothing to learn or to checkpoint)."""

    def __init__(self, c: int, k: int = 5) -> None:
        super().__init__()
        self.register_buffer("kernel", torch.full((c, 1, k, k), 1.0 / (k * k)), persistent=False)
        self.pad = k // 2
        self.c = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.kernel.to(x.dtype), padding=self.pad, groups=self.c)


def conv(cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=dilation * (k // 2), dilation=dilation, groups=groups)


class ChannelNorm(nn.Module):
    """Layer norm over channels at each pixel (no spatial statistics, so tiles stay independent)."""

    def __init__(self, c: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1, c, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(dim=1, keepdim=True)
        var = (x - mu).pow(2).mean(dim=1, keepdim=True)
        return (x - mu) * torch.rsqrt(var + self.eps) * self.weight + self.bias


class LocalChannelAttention(nn.Module):
    """Channel attention from a 5x5 local mean (squeeze) and a two-layer 1x1 MLP (excite)."""

    def __init__(self, c: int, reduction: int = 4, act: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        hidden = max(4, c // reduction)
        self.mlp = nn.Sequential(nn.Conv2d(c, hidden, 1), act(), nn.Conv2d(hidden, c, 1))
        self.mean = LocalMean(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.mlp(self.mean(x)))


class MCBlock(nn.Module):
    """Multi-scale channel attention block: depthwise branches with dilations 1, 2, 3 (receptive fields
    3, 5, 7), fused by a 1x1 conv, re-weighted by local channel attention, with a residual connection."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.norm = ChannelNorm(c)
        self.branches = nn.ModuleList([conv(c, c, 3, dilation=d, groups=c) for d in (1, 2, 3)])
        self.fuse = nn.Conv2d(3 * c, c, 1)
        self.attn = LocalChannelAttention(c)
        self.ffn = nn.Sequential(nn.Conv2d(c, 2 * c, 1), nn.GELU(), nn.Conv2d(2 * c, c, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        h = self.fuse(torch.cat([b(h) for b in self.branches], dim=1))
        x = x + self.attn(F.gelu(h))
        return x + self.ffn(x)


class ESSBlock(nn.Module):
    """Efficient selective synthesis: two branches (3x3 and dilated 3x3) combined with per-pixel,
    input-dependent selection weights (softmax over branches, selective-kernel style, from a local mean)."""

    def __init__(self, c: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(4, c // reduction)
        self.norm = ChannelNorm(c)
        self.b1 = nn.Sequential(conv(c, c, 3, groups=c), nn.Conv2d(c, c, 1))
        self.b2 = nn.Sequential(conv(c, c, 3, dilation=2, groups=c), nn.Conv2d(c, c, 1))
        self.squeeze = nn.Sequential(nn.Conv2d(c, hidden, 1), nn.GELU())
        self.select = nn.Conv2d(hidden, 2 * c, 1)
        self.out = nn.Conv2d(c, c, 1)
        self.mean = LocalMean(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        u1, u2 = F.gelu(self.b1(h)), F.gelu(self.b2(h))
        a = self.select(self.squeeze(self.mean(u1 + u2)))
        a1, a2 = a.chunk(2, dim=1)
        # softmax over the two branches, written as a sigmoid of the logit difference: the same function,
        # but onnxruntime runs a Softmax over a non-last axis of a 5-D tensor about 20x slower
        w1 = torch.sigmoid(a1 - a2)
        return x + self.out(u2 + w1 * (u1 - u2))


class Act(nn.Module):
    """The lean blocks' activation: ReLU. While a network converted from GELU adapts (a warm start,
    ``model.relu_ramp`` in training), ``relu_weight`` < 1 blends it with GELU; at 1 (always, once trained,
    and in every export) it is a plain ReLU, which onnxruntime and OpenVINO fuse into the preceding Conv."""

    def __init__(self) -> None:
        super().__init__()
        self.relu_weight = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.relu_weight >= 1.0:
            return F.relu(x)
        return self.relu_weight * F.relu(x) + (1.0 - self.relu_weight) * F.gelu(x)


class LeanMCBlock(nn.Module):
    """:class:`MCBlock` for memory-bound CPUs (docs/performance.md, "Lean networks"): no channel norm, ReLU
    instead of erf-GELU (a Conv+ReLU pair is one fused kernel in onnxruntime and OpenVINO), and the 1x1 fusion
    of the three branches written as a sum of three 1x1 convolutions instead of a Concat (the same function:
    ``W [a; b; c] = W_a a + W_b b + W_c c``), so no layout reorder or copy is needed around it."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList([conv(c, c, 3, dilation=d, groups=c) for d in (1, 2, 3)])
        self.fuse = nn.ModuleList([nn.Conv2d(c, c, 1, bias=i == 0) for i in range(3)])
        self.attn = LocalChannelAttention(c, act=Act)
        self.ffn = nn.Sequential(nn.Conv2d(c, 2 * c, 1), Act(), nn.Conv2d(2 * c, c, 1))
        self.act = Act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f0, f1, f2 = self.fuse
        b0, b1, b2 = self.branches
        h = f0(b0(x)) + f1(b1(x)) + f2(b2(x))
        x = x + self.attn(self.act(h))
        return x + self.ffn(x)


class LeanESSBlock(nn.Module):
    """:class:`ESSBlock` without the channel norm, with ReLU, and with the selection written as one
    convolution giving the logit difference ``a1 - a2`` directly (the same function as a ``2c`` convolution
    followed by a chunk and a subtraction: its weights are the difference of the two halves)."""

    def __init__(self, c: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(4, c // reduction)
        self.b1 = nn.Sequential(conv(c, c, 3, groups=c), nn.Conv2d(c, c, 1))
        self.b2 = nn.Sequential(conv(c, c, 3, dilation=2, groups=c), nn.Conv2d(c, c, 1))
        self.squeeze = nn.Sequential(nn.Conv2d(c, hidden, 1), Act())
        self.select = nn.Conv2d(hidden, c, 1)
        self.out = nn.Conv2d(c, c, 1)
        self.mean = LocalMean(c)
        self.act = Act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u1, u2 = self.act(self.b1(x)), self.act(self.b2(x))
        w1 = torch.sigmoid(self.select(self.squeeze(self.mean(u1 + u2))))
        return x + self.out(u2 + w1 * (u1 - u2))


class SplitConv(nn.Module):
    """One convolution whose output channels are used in parts, held as one convolution per part.

    The same function as a convolution of ``sum(sizes)`` outputs followed by a split: written that way, an ONNX
    runtime copies every part out of the blocked-layout result (a Split and a layout reorder per use). With
    ``depthwise`` each part is a depthwise convolution of its own input (a list, one tensor per part). A state
    dict of the single-convolution form (``weight``, ``bias``) loads too: its rows are cut into the parts.
    """

    def __init__(self, cin: int, sizes: Sequence[int], k: int = 1, depthwise: bool = False) -> None:
        super().__init__()
        self.sizes, self.depthwise = tuple(int(n) for n in sizes), depthwise
        self.parts = nn.ModuleList(conv(n if depthwise else cin, n, k, groups=n if depthwise else 1)
                                   for n in self.sizes)

    def forward(self, x: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if self.depthwise:
            if isinstance(x, torch.Tensor) or len(x) != len(self.parts):
                raise ValueError(f"a depthwise SplitConv takes one input per part ({len(self.parts)})")
            return [part(t) for part, t in zip(self.parts, x)]
        return [part(x) for part in self.parts]

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        weight, bias = state_dict.pop(prefix + "weight", None), state_dict.pop(prefix + "bias", None)
        if weight is not None:
            if weight.shape[0] != sum(self.sizes):
                raise ValueError(f"{prefix}weight has {weight.shape[0]} output channels, the parts {self.sizes} "
                                 f"need {sum(self.sizes)}")
            start = 0
            for i, n in enumerate(self.sizes):
                state_dict[f"{prefix}parts.{i}.weight"] = weight[start:start + n]
                if bias is not None:
                    state_dict[f"{prefix}parts.{i}.bias"] = bias[start:start + n]
                start += n
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class TimeEmbedding(nn.Module):
    """Sinusoidal embedding of t in (0, 1] followed by an MLP; returns (N, dim)."""

    def __init__(self, dim: int, freqs: int = 16) -> None:
        super().__init__()
        self.freqs = freqs
        self.mlp = nn.Sequential(nn.Linear(2 * freqs, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        k = torch.arange(self.freqs, device=t.device, dtype=torch.float32)
        ang = t.reshape(-1, 1).float() * torch.exp(k * (math.log(1000.0) / self.freqs)).reshape(1, -1)
        return self.mlp(torch.cat([torch.sin(ang), torch.cos(ang)], dim=1))


class Down(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = conv(cin, cout, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Up(nn.Module):
    """Nearest upsampling x2 + 3x3 conv, then merge with the skip connection by a 1x1 conv."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = conv(cin, cout, 3)
        self.merge = nn.Conv2d(2 * cout, cout, 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return self.merge(torch.cat([x, skip], dim=1))


class LeanUp(nn.Module):
    """:class:`Up` with the merge written as two 1x1 convolutions and an Add instead of a Concat (the same
    function), so the upsampled and the skip features are not copied into one tensor first."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = conv(cin, cout, 3)
        self.merge = nn.Conv2d(cout, cout, 1)
        self.merge_skip = nn.Conv2d(cout, cout, 1, bias=False)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return self.merge(x) + self.merge_skip(skip)
