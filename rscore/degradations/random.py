"""One entry point that samples a degradation of a given kind with wide parameter ranges."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Union

import numpy as np

from rscore.degradations.clouds import CloudParams, add_clouds
from rscore.degradations.codecs import CodecParams, compress, sample_codec_params
from rscore.degradations.haze import HazeParams, add_haze
from rscore.degradations.reference import ReferenceParams, make_reference, sample_reference_params
from rscore.degradations.resample import DownsampleParams, downsample, sample_downsample_params

DegradationKind = Literal["haze", "clouds", "downsample", "codec", "reference"]
ValueScale = Literal["reflectance", "rgb8"]
AnyParams = Union[HazeParams, CloudParams, DownsampleParams, CodecParams, ReferenceParams]

KINDS: tuple[DegradationKind, ...] = ("haze", "clouds", "downsample", "codec", "reference")


@dataclass(frozen=True, eq=False)
class Degradation:
    """A degraded image with everything needed to train on or evaluate it.

    Attributes:
        kind: Degradation kind.
        image: float32 (bands, rows', cols'); for ``downsample`` the LR shape, else the input shape.
        params: The parameter dataclass that produced it (save it with evaluation results).
        aux: Extra arrays by name: haze ``transmission``; clouds ``mask``, ``shadow_mask``;
            reference ``vegetation_weight``.
    """

    kind: DegradationKind
    image: np.ndarray
    params: AnyParams
    aux: dict[str, np.ndarray] = field(default_factory=dict)


def random_degradation(
    kind: DegradationKind,
    image: np.ndarray,
    rng: np.random.Generator,
    wavelengths_nm: Sequence[float],
    value_scale: ValueScale = "reflectance",
) -> Degradation:
    """Apply a randomly parameterised degradation of ``kind``.

    Args:
        kind: ``haze``, ``clouds``, ``downsample`` (factor log-uniform 1–8), ``codec`` (JPEG/WebP for
            ``rgb8``, JPEG 2000 for ``reflectance``) or ``reference`` (other-date reference).
        image: float32 (bands, rows, cols).
        rng: Source of all randomness.
        wavelengths_nm: Band centres, nm.
        value_scale: ``"reflectance"`` (multispectral) or ``"rgb8"`` (8-bit display values in [0, 1]).

    Returns:
        The degradation.
    """
    if kind == "haze":
        haze, hp = add_haze(image, wavelengths_nm, rng)
        return Degradation(kind, haze.image, hp, {"transmission": haze.transmission})
    if kind == "clouds":
        cloud, cp = add_clouds(image, wavelengths_nm, rng)
        return Degradation(kind, cloud.image, cp, {"mask": cloud.mask, "shadow_mask": cloud.shadow_mask})
    if kind == "downsample":
        dp = sample_downsample_params(rng)
        return Degradation(kind, downsample(image, dp, rng), dp)
    if kind == "codec":
        kp = sample_codec_params(rng, eight_bit=value_scale == "rgb8")
        return Degradation(kind, compress(image, kp), kp)
    if kind == "reference":
        rp = sample_reference_params(rng, image.shape[0])
        ref = make_reference(image, rp, wavelengths_nm, rng)
        return Degradation(kind, ref.image, rp, {"vegetation_weight": ref.vegetation_weight})
    raise ValueError(f"unknown degradation kind {kind!r}; expected one of {KINDS}")
