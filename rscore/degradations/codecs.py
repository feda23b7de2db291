"""Lossy codec round trips through GDAL in memory (``/vsimem/``): JPEG, WebP (8-bit), JPEG 2000 (16-bit).

8-bit codecs take images in [0, 1] and quantise them to uint8; JPEG 2000 takes reflectance and stores
it as uint16 digital numbers ``round(reflectance * 10000)`` (the Sentinel-2 convention), lossy at a
target compression ratio. Three-band images are encoded together (so JPEG/WebP apply their
colour transform and chroma subsampling, as they would on an RGB photo); any other band count is
encoded band by band.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

import numpy as np

from rscore.degradations.fields import check_image

Codec = Literal["jpeg", "webp", "jp2"]

_DRIVERS: dict[Codec, str] = {"jpeg": "JPEG", "webp": "WEBP", "jp2": "JP2OpenJPEG"}
_EXT: dict[Codec, str] = {"jpeg": "jpg", "webp": "webp", "jp2": "jp2"}

#: DN per reflectance unit for 16-bit storage (Sentinel-2 L1C/L2A convention).
REFLECTANCE_SCALE = 10000.0


@dataclass(frozen=True)
class CodecParams:
    """Parameters of one codec round trip.

    Attributes:
        codec: ``"jpeg"`` or ``"webp"`` (8-bit, image in [0, 1]) or ``"jp2"`` (16-bit, reflectance).
        quality: JPEG/WebP quality, 1–100 (ignored for jp2).
        compression_ratio: JPEG 2000 target ratio of uncompressed to compressed size, 2–100
            (ignored for jpeg/webp).
    """

    codec: Codec
    quality: int = 75
    compression_ratio: float = 10.0

    def __post_init__(self) -> None:
        if self.codec not in _DRIVERS:
            raise ValueError(f"codec must be one of {sorted(_DRIVERS)}, got {self.codec!r}")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"quality must be in [1, 100], got {self.quality}")
        if not 1.0 < self.compression_ratio <= 1000.0:
            raise ValueError(f"compression_ratio must be in (1, 1000], got {self.compression_ratio}")


def _driver(codec: Codec):  # noqa: ANN202 - osgeo types are not annotated
    from osgeo import gdal

    gdal.UseExceptions()
    name = _DRIVERS[codec]
    driver = gdal.GetDriverByName(name)
    if driver is None:
        raise RuntimeError(
            f"GDAL driver {name} is not available in this GDAL build ({gdal.__version__}); "
            f"it is needed for the {codec!r} codec. Install a GDAL built with {name}."
        )
    return driver


def _roundtrip_array(dn: np.ndarray, codec: Codec, options: list[str]) -> np.ndarray:
    """Encode (bands, rows, cols) integer DNs with one GDAL driver and decode them."""
    from osgeo import gdal

    driver = _driver(codec)
    gdal_type = gdal.GDT_Byte if dn.dtype == np.uint8 else gdal.GDT_UInt16
    bands, rows, cols = dn.shape
    mem = gdal.GetDriverByName("MEM").Create("", cols, rows, bands, gdal_type)
    for i in range(bands):
        mem.GetRasterBand(i + 1).WriteArray(dn[i])
    path = f"/vsimem/rsrestore_codec_{uuid.uuid4().hex}.{_EXT[codec]}"
    try:
        out = driver.CreateCopy(path, mem, strict=0, options=options)
        if out is None:
            raise RuntimeError(f"GDAL {_DRIVERS[codec]} failed to encode a {dn.shape} {dn.dtype} array")
        out = None
        decoded = gdal.Open(path).ReadAsArray()
    finally:
        gdal.Unlink(path)
        aux = path + ".aux.xml"
        if gdal.VSIStatL(aux) is not None:
            gdal.Unlink(aux)
    return np.asarray(decoded).reshape(dn.shape)


def compress(image: np.ndarray, params: CodecParams) -> np.ndarray:
    """Round-trip an image through a lossy codec.

    Args:
        image: float32 (bands, rows, cols); [0, 1] for jpeg/webp, reflectance 0–6.5 for jp2.
        params: Codec parameters.

    Returns:
        float32 image of the same shape, in the same units, quantised to the codec's DN grid.

    Raises:
        RuntimeError: The GDAL driver is missing (message names it) or encoding failed.
    """
    check_image(image)
    if params.codec == "jp2":
        dn = np.clip(np.round(image * REFLECTANCE_SCALE), 0, 65535).astype(np.uint16)
        options = ["REVERSIBLE=NO", f"QUALITY={100.0 / params.compression_ratio:.4f}", "CODEC=JP2"]
        return (_roundtrip_array(dn, "jp2", options) / REFLECTANCE_SCALE).astype(np.float32)
    dn8 = np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)
    options = [f"QUALITY={int(params.quality)}"]
    if image.shape[0] == 3:
        out = _roundtrip_array(dn8, params.codec, options)
    elif params.codec == "webp":
        # WebP stores 3 or 4 channels only: encode each band as a grey RGB image.
        out = np.stack([_roundtrip_array(np.repeat(b[None], 3, 0), "webp", options)[0] for b in dn8])
    else:
        out = np.stack([_roundtrip_array(b[None], params.codec, options)[0] for b in dn8])
    return (out / 255.0).astype(np.float32)


def sample_codec_params(rng: np.random.Generator, eight_bit: bool) -> CodecParams:
    """Draw a codec and its strength: JPEG/WebP quality 10–95 for 8-bit, JP2 ratio 4–80 (log-uniform) else."""
    if eight_bit:
        codec: Codec = "jpeg" if rng.random() < 0.6 else "webp"
        return CodecParams(codec=codec, quality=int(rng.integers(10, 96)))
    return CodecParams(codec="jp2", compression_ratio=float(np.exp(rng.uniform(np.log(4.0), np.log(80.0)))))
