"""Synthetic degradations of remote-sensing images (numpy + GDAL only, randomness injected).

Images are float32 arrays (bands, rows, cols): reflectance 0–1 for multispectral data, [0, 1] for
8-bit RGB. Physics-based functions take band centre wavelengths in nm (see ``wavelengths``).
Each kind has a frozen parameter dataclass, a ``sample_*_params(rng, ...)`` drawing it, and a
deterministic ``apply_*`` given the random fields, so tests and evaluation can fix every input.
"""

from rscore.degradations.clouds import CloudParams, CloudResult, add_clouds, apply_clouds, cloud_mask
from rscore.degradations.codecs import CodecParams, compress
from rscore.degradations.haze import (
    HAZE_LEVEL_TAU_550,
    HazeParams,
    HazeResult,
    add_haze,
    apply_haze,
    depth_field,
    haze_level_of,
)
from rscore.degradations.random import KINDS, Degradation, random_degradation
from rscore.degradations.reference import ReferenceParams, ReferenceResult, make_reference
from rscore.degradations.resample import DownsampleParams, downsample, downsampled_geotransform, lr_shape
from rscore.degradations.wavelengths import BGRN_NM, GENERIC_NM, LANDSAT8_NM, RGB_NM, SENTINEL2_NM, wavelengths_for

__all__ = [
    "BGRN_NM",
    "GENERIC_NM",
    "HAZE_LEVEL_TAU_550",
    "KINDS",
    "LANDSAT8_NM",
    "RGB_NM",
    "SENTINEL2_NM",
    "CloudParams",
    "CloudResult",
    "CodecParams",
    "Degradation",
    "DownsampleParams",
    "HazeParams",
    "HazeResult",
    "ReferenceParams",
    "ReferenceResult",
    "add_clouds",
    "add_haze",
    "apply_clouds",
    "apply_haze",
    "cloud_mask",
    "compress",
    "depth_field",
    "downsample",
    "downsampled_geotransform",
    "haze_level_of",
    "lr_shape",
    "make_reference",
    "random_degradation",
    "wavelengths_for",
]
