"""Lossy codec round trips through GDAL in memory (``/vsimem/``): JPEG, WebP (8-bit), JPEG 2000 (8/16-bit).

8-bit codecs take images in [0, 1] and quantise them to uint8; JPEG 2000 at 16 bits takes reflectance and
stores it as uint16 digital numbers ``round(reflectance * 10000)`` with 15 significant bits (the Sentinel-2
convention; reflectance above 3.2767 is clipped), at 8 bits an image in [0, 1] as uint8, lossy at a target
compression ratio. Three-band images are encoded together by default (so JPEG/WebP apply their colour transform
and chroma subsampling, as they would on an RGB photo); any other band count is encoded band by band unless
:func:`roundtrip` is asked for one file.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from rscore.degradations.fields import check_image
from rscore.raster.lossy import jp2_options

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
        bits: sample size, 8 or 16; JPEG 2000 only (jpeg/webp are always 8-bit).
    """

    codec: Codec
    quality: int = 75
    compression_ratio: float = 10.0
    bits: int = 16

    def __post_init__(self) -> None:
        if self.codec not in _DRIVERS:
            raise ValueError(f"codec must be one of {sorted(_DRIVERS)}, got {self.codec!r}")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"quality must be in [1, 100], got {self.quality}")
        if not 1.0 < self.compression_ratio <= 1000.0:
            raise ValueError(f"compression_ratio must be in (1, 1000], got {self.compression_ratio}")
        if self.bits not in (8, 16):
            raise ValueError(f"bits must be 8 or 16, got {self.bits}")

    @property
    def eight_bit(self) -> bool:
        """True when the codec stores 8-bit samples (image in [0, 1]); else 16-bit reflectance."""
        return self.codec != "jp2" or self.bits == 8


@dataclass(frozen=True)
class RoundTrip:
    """A decoded image and the size of its encoded file.

    Attributes:
        image: float32 (bands, rows, cols) in the input's units.
        encoded_bytes: bytes of the encoded file(s), headers included.
    """

    image: np.ndarray
    encoded_bytes: int

    @property
    def bits_per_pixel(self) -> float:
        """Encoded bits per pixel (all bands together)."""
        return 8.0 * self.encoded_bytes / float(self.image.shape[1] * self.image.shape[2])


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


def _roundtrip_array(dn: np.ndarray, codec: Codec, options: list[str]) -> tuple[np.ndarray, int]:
    """Encode (bands, rows, cols) integer DNs with one GDAL driver and decode them; also the encoded size."""
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
        size = int(gdal.VSIStatL(path).size)
        decoded = gdal.Open(path).ReadAsArray()
    finally:
        gdal.Unlink(path)
        aux = path + ".aux.xml"
        if gdal.VSIStatL(aux) is not None:
            gdal.Unlink(aux)
    return np.asarray(decoded).reshape(dn.shape), size


def _by_band(dn: np.ndarray, codec: Codec, options: list[str], grey_rgb: bool = False) -> tuple[np.ndarray, int]:
    """Each band encoded as its own file (as a grey RGB image with ``grey_rgb``)."""
    outs, total = [], 0
    for b in dn:
        arr = np.repeat(b[None], 3, 0) if grey_rgb else b[None]
        out, size = _roundtrip_array(arr, codec, options)
        outs.append(out[0])
        total += size
    return np.stack(outs), total


def roundtrip(image: np.ndarray, params: CodecParams, per_band: bool | None = None) -> RoundTrip:
    """Round-trip an image through a lossy codec and measure the encoded size.

    Args:
        image: float32 (bands, rows, cols); [0, 1] for 8-bit codecs, reflectance 0–6.5 for 16-bit JPEG 2000.
        params: Codec parameters.
        per_band: encode every band as its own file (as Sentinel-2 delivers JPEG 2000, one file per band), or
            all bands as one file (as ``rsrestore:compress_raster`` writes them); None: one file for 3 bands (the
            codec's colour transform applies), one per band otherwise. JPEG and WebP take 3 bands in one file
            only (other counts go band by band; WebP encodes a band as a grey RGB image).

    Returns:
        The decoded float32 image (same shape and units, quantised to the codec's DN grid) and the file size.

    Raises:
        RuntimeError: The GDAL driver is missing (message names it) or encoding failed.
    """
    check_image(image)
    # DN grid: 8-bit samples of an image in [0, 1], or 16-bit reflectance x 10000 with 15 significant bits
    scale, top, dtype = (255.0, 255, np.uint8) if params.eight_bit else (REFLECTANCE_SCALE, 32767, np.uint16)
    dn = np.clip(np.round(image * scale), 0, top).astype(dtype)
    if params.codec == "jp2":
        options = jp2_options(params.compression_ratio, nbits15=not params.eight_bit)
        joint = image.shape[0] == 3 if per_band is None else not per_band
        out, size = _roundtrip_array(dn, "jp2", options) if joint else _by_band(dn, "jp2", options)
    elif image.shape[0] == 3:
        out, size = _roundtrip_array(dn, params.codec, [f"QUALITY={int(params.quality)}"])
    else:
        out, size = _by_band(dn, params.codec, [f"QUALITY={int(params.quality)}"], grey_rgb=params.codec == "webp")
    return RoundTrip((out / scale).astype(np.float32), size)


def compress(image: np.ndarray, params: CodecParams) -> np.ndarray:
    """The decoded image of :func:`roundtrip` (same arguments)."""
    return roundtrip(image, params).image


def sample_codec(rng: np.random.Generator, choices: Sequence[Sequence[object]], bits: int) -> CodecParams:
    """Draw a codec and its strength from ``choices``: (codec, low, high) rows, one drawn uniformly; JPEG/WebP
    quality uniform in [low, high] (integers), JPEG 2000 compression ratio log-uniform in [low, high] at
    ``bits`` bits."""
    codec, lo, hi = choices[int(rng.integers(len(choices)))]
    if codec == "jp2":
        ratio = float(np.exp(rng.uniform(np.log(float(lo)), np.log(float(hi)))))  # type: ignore[arg-type]
        return CodecParams(codec="jp2", compression_ratio=ratio, bits=bits)
    return CodecParams(codec=str(codec), quality=int(rng.integers(int(lo), int(hi) + 1)))  # type: ignore[arg-type]


def sample_codec_params(rng: np.random.Generator, eight_bit: bool) -> CodecParams:
    """Draw a codec and its strength: JPEG/WebP quality 10–95 for 8-bit, JP2 ratio 4–80 (log-uniform) else."""
    if eight_bit:
        codec: Codec = "jpeg" if rng.random() < 0.6 else "webp"
        return CodecParams(codec=codec, quality=int(rng.integers(10, 96)))
    return CodecParams(codec="jp2", compression_ratio=float(np.exp(rng.uniform(np.log(4.0), np.log(80.0)))))
