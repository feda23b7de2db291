"""Lossy codecs of raster files (no torch): which codec compressed a raster, and writing a raster with one.

- :func:`detect_codec` reads what GDAL reports about a file: its driver (JPEG, WEBP, a JPEG 2000 driver) or
  the internal compression of a GeoTIFF (``COMPRESSION`` of the ``IMAGE_STRUCTURE`` domain); a VRT is judged by
  its first source. A file that GDAL reports as reversible (``COMPRESSION_REVERSIBILITY=LOSSLESS``: lossless
  JPEG 2000 or WebP) has no lossy codec.
- :func:`compress_raster` writes a raster with a codec at a target quality, so that users can build their own
  rate-distortion curves: JPEG or WebP inside a tiled GeoTIFF (georeferenced, the usual form of JPEG
  orthophotos; 8-bit only), or a JPEG 2000 file (``.jp2``, 8- or 16-bit, georeferencing embedded). It writes a
  hidden partial file and moves it into place, so a failure never leaves a half-written output.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from osgeo import gdal

from rscore.raster.io import RasterError, _failed, _last_error, _open, check_output_path, partial_path

#: the codecs :mod:`rscore` knows, by the names the plugin shows
LOSSY_CODECS: tuple[str, ...] = ("jpeg", "webp", "jpeg2000")
#: the codec names of the training configs (``data.codecs``) -> the names above
CODEC_NAMES: dict[str, str] = {"jp2": "jpeg2000", "jpeg": "jpeg", "webp": "webp"}
#: GDAL types a JPEG 2000 file stores (JPEG and WebP: Byte only)
_JP2_TYPES = frozenset({"Byte", "Int16", "UInt16", "Int32", "UInt32"})
_JP2_DRIVERS = frozenset({"JP2OpenJPEG", "JP2ECW", "JP2KAK", "JP2MrSID", "JPEG2000"})
#: output file extensions per codec
EXTENSIONS: dict[str, tuple[str, ...]] = {"jpeg": (".tif", ".tiff"), "webp": (".tif", ".tiff"),
                                          "jpeg2000": (".jp2",)}


@dataclass(frozen=True)
class CodecInfo:
    """What GDAL reports about a raster's compression.

    Attributes:
        codec: one of :data:`LOSSY_CODECS`, or None when the file is not stored with one of them.
        driver: GDAL driver short name.
        compression: the ``COMPRESSION`` item of the ``IMAGE_STRUCTURE`` domain ("" when none).
    """

    codec: str | None
    driver: str
    compression: str

    def describe(self) -> str:
        return f"GDAL driver {self.driver}, compression {self.compression or 'none reported'}"


def jp2_options(compression_ratio: float, nbits15: bool) -> list[str]:
    """JP2OpenJPEG creation options of a lossy file at ``compression_ratio`` (uncompressed / compressed size);
    ``nbits15``: store 16-bit samples with 15 significant bits, as Sentinel-2 does (with the default 16, OpenJPEG
    spends its first quality layers on the empty top bit plane and decodes high ratios to the DC offset)."""
    opts = ["REVERSIBLE=NO", f"QUALITY={100.0 / compression_ratio:.4f}", "CODEC=JP2"]
    return opts + (["NBITS=15"] if nbits15 else [])


def _open_or_fail(path: str | Path) -> gdal.Dataset:
    ds, err = _open(str(path))
    if ds is None:
        raise RasterError(f"cannot open {path}: {err}")
    return ds


def detect_codec(path: str | Path) -> CodecInfo:
    """The lossy codec a raster file is stored with, from its driver or its internal compression."""
    ds = _open_or_fail(path)
    driver = ds.GetDriver().ShortName
    compression = (ds.GetMetadataItem("COMPRESSION", "IMAGE_STRUCTURE") or "").strip()
    if (ds.GetMetadataItem("COMPRESSION_REVERSIBILITY", "IMAGE_STRUCTURE") or "").upper() == "LOSSLESS":
        return CodecInfo(None, driver, f"{compression or driver}, lossless")
    if driver == "VRT":
        files = [f for f in (ds.GetFileList() or [])[1:] if Path(f).suffix.lower() != ".vrt"]
        if files:
            inner = detect_codec(files[0])
            return CodecInfo(inner.codec, f"VRT of {inner.driver}", inner.compression)
    codec: str | None = None
    upper = compression.upper()
    if driver == "JPEG" or ("JPEG" in upper and "2000" not in upper):
        codec = "jpeg"
    elif driver == "WEBP" or "WEBP" in upper:
        codec = "webp"
    elif driver in _JP2_DRIVERS or "JPEG2000" in upper or "J2K" in upper:
        codec = "jpeg2000"
    return CodecInfo(codec, driver, compression)


@dataclass(frozen=True)
class CompressReport:
    """The written file and its rate.

    Attributes:
        path: the output file.
        encoded_bytes: its size.
        bits_per_pixel: 8 * size / (rows * cols): encoded bits per pixel, all bands together.
        options: the GDAL creation options used.
    """

    path: Path
    encoded_bytes: int
    bits_per_pixel: float
    options: tuple[str, ...]


def _max_value(ds: gdal.Dataset) -> float:
    """Largest value over every band (exact), or 0 for an all-nodata raster."""
    top = 0.0
    for i in range(ds.RasterCount):
        gdal.ErrorReset()
        try:
            mm = ds.GetRasterBand(i + 1).ComputeRasterMinMax(False)
        except RuntimeError:  # all nodata (with gdal.UseExceptions() on)
            continue
        if mm is not None and not _failed():
            top = max(top, float(mm[1]))
    return top


def _options(codec: str, quality: int, ratio: float, ds: gdal.Dataset, dtype: str) -> tuple[str, list[str]]:
    """(driver, creation options) for one codec."""
    bands = ds.RasterCount
    if codec == "jpeg2000":
        if dtype not in _JP2_TYPES:
            raise RasterError(f"JPEG 2000 stores integer samples, but this raster is {dtype}: scale it to an integer "
                              "type first (e.g. reflectance x 10000 as UInt16 with gdal_translate -ot UInt16 -scale)")
        return "JP2OpenJPEG", jp2_options(ratio, dtype == "UInt16" and _max_value(ds) < 32768)
    if dtype != "Byte":
        raise RasterError(f"{codec.upper()} stores 8-bit samples only, but this raster is {dtype}: use jpeg2000 for "
                          "16-bit rasters, or convert the raster to 8 bits (Byte) first")
    opts = ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256"]
    if codec == "jpeg":
        if bands not in (1, 3):
            raise RasterError(f"JPEG in GeoTIFF takes 1 or 3 bands, this raster has {bands}: choose the bands first "
                              "(e.g. with gdal_translate -b) or use jpeg2000")
        opts += ["COMPRESS=JPEG", f"JPEG_QUALITY={quality}"] + (["PHOTOMETRIC=YCBCR"] if bands == 3 else [])
    else:
        if bands not in (3, 4):
            raise RasterError(f"WebP takes 3 or 4 bands, this raster has {bands}: choose the bands first or use jpeg")
        opts += ["COMPRESS=WEBP", f"WEBP_LEVEL={quality}"]
    return "GTiff", opts


def compress_raster(src: str | Path, dst: str | Path, codec: str, quality: int = 75,
                    compression_ratio: float = 20.0) -> CompressReport:
    """Write ``src`` with a lossy codec.

    Args:
        src: any GDAL raster.
        dst: output path: ``.tif`` for jpeg and webp (GeoTIFF with internal compression), ``.jp2`` for jpeg2000.
        codec: one of :data:`LOSSY_CODECS`.
        quality: JPEG/WebP quality 1-100.
        compression_ratio: JPEG 2000 ratio of the uncompressed size to the compressed size, > 1.

    Raises:
        RasterError: unknown codec, wrong extension, data type or band count the codec cannot store, or a
            write failure; the message names the fix and nothing is left under ``dst``.
    """
    if codec not in LOSSY_CODECS:
        raise RasterError(f"unknown codec {codec!r}; use one of {', '.join(LOSSY_CODECS)}")
    if not 1 <= int(quality) <= 100:
        raise RasterError(f"quality must be 1-100, got {quality}")
    if not 1.0 < float(compression_ratio) <= 1000.0:
        raise RasterError(f"compression ratio must be above 1 and at most 1000, got {compression_ratio}")
    dst = Path(dst)
    if dst.suffix.lower() not in EXTENSIONS[codec]:
        raise RasterError(f"{codec} output must end in {' or '.join(EXTENSIONS[codec])}, got {dst.name!r}: "
                          "change the output file name")
    check_output_path(dst)
    ds = _open_or_fail(src)
    dtype = gdal.GetDataTypeName(ds.GetRasterBand(1).DataType)
    driver, opts = _options(codec, int(quality), float(compression_ratio), ds, dtype)
    tmp = partial_path(dst)
    tmp_aux, dst_aux = Path(str(tmp) + ".aux.xml"), Path(str(dst) + ".aux.xml")
    try:
        gdal.ErrorReset()
        try:
            out = gdal.Translate(str(tmp), ds, format=driver, creationOptions=opts)
        except RuntimeError as exc:  # gdal.UseExceptions() is on
            raise RasterError(f"GDAL could not write {dst.name} with {driver}: {exc}") from None
        if out is None or _failed():
            raise RasterError(f"GDAL could not write {dst.name} with {driver}: {_last_error('unknown error')}")
        out = None
        os.replace(tmp, dst)
        # the new file's sidecar (georeferencing or statistics GDAL could not embed), never an older file's
        if tmp_aux.exists():
            os.replace(tmp_aux, dst_aux)
        elif dst_aux.exists():
            dst_aux.unlink()
    finally:
        for leftover in (tmp, tmp_aux):
            if leftover.exists():
                leftover.unlink()
    size = dst.stat().st_size
    return CompressReport(dst, size, 8.0 * size / float(ds.RasterXSize * ds.RasterYSize), tuple(opts))



def codec_problem(codec: str, trained: list[str] | None, model: str) -> str | None:
    """Why a model trained on the codecs ``trained`` (a manifest's ``training.codecs``; None: not recorded)
    should not enhance a raster decoded from ``codec``, or None when it may."""
    if trained is None:
        return None
    names = sorted({CODEC_NAMES.get(t, t) for t in trained})
    if codec in names:
        return None
    return (f"the model {model!r} was trained on {', '.join(names)} artefacts, not {codec}: choose a model made for "
            f"{codec} (the 8-bit RGB model covers jpeg, webp and jpeg2000), or set CODEC if {codec} is wrong")
