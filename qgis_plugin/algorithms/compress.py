"""``rsrestore:compress_raster`` - write a raster with a lossy codec at a chosen quality (the companion of
``rsrestore:enhance_decoded``: users build their own rate-distortion curves with it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputLayerDefinition,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
)

from rscore.raster.io import RasterError
from rscore.raster.lossy import EXTENSIONS, LOSSY_CODECS, compress_raster

from .base import RestorationGroup, _help
from .layers import style_on_load


class CompressRasterAlgorithm(RestorationGroup):
    """JPEG or WebP inside a GeoTIFF, or a JPEG 2000 file, at a quality or compression ratio; reports the rate."""

    INPUT = "INPUT"
    CODEC = "CODEC"
    QUALITY = "QUALITY"
    RATIO = "COMPRESSION_RATIO"
    OUTPUT = "OUTPUT"
    BITS_PER_PIXEL = "BITS_PER_PIXEL"

    def name(self) -> str:
        return "compress_raster"

    def displayName(self) -> str:  # noqa: N802 - QGIS API
        return self.tr("Compress a raster with a lossy codec")

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API
        return self.tr(
            "Writes a raster with a lossy codec, to save space or to measure what 'Enhance a decoded raster' "
            "gains: compress a clean raster at several qualities, enhance each result, and compare both with the "
            "clean raster (e.g. with the Raster calculator) against the bits per pixel this algorithm reports.\n\n"
            "CODEC jpeg or webp: a tiled GeoTIFF with internal JPEG (YCbCr for 3 bands) or WebP compression at "
            "QUALITY (1-100); 8-bit rasters only (JPEG: 1 or 3 bands, WebP: 3 or 4). The output must end in .tif.\n"
            "CODEC jpeg2000: a .jp2 file (8- or 16-bit, georeferencing embedded) at COMPRESSION_RATIO, the ratio of "
            "the uncompressed size to the compressed size (e.g. 64 gives 1 bit per pixel for 4 bands of 16 bits). "
            "16-bit data below 32768 is stored with 15 significant bits, as Sentinel-2 does.\n"
            "BITS_PER_PIXEL: 8 x file size / (rows x columns), all bands together."
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802 - QGIS API
        self.addParameter(_help(QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Input raster")),
                                self.tr("The raster to compress (any GDAL format).")))
        self.addParameter(_help(
            QgsProcessingParameterEnum(self.CODEC, self.tr("Codec"), options=list(LOSSY_CODECS), defaultValue="jpeg",
                                       usesStaticStrings=True),
            self.tr("jpeg or webp (GeoTIFF, 8-bit) or jpeg2000 (.jp2, 8- or 16-bit).")))
        self.addParameter(_help(
            QgsProcessingParameterNumber(self.QUALITY, self.tr("Quality (jpeg, webp)"),
                                         QgsProcessingParameterNumber.Integer, 25, minValue=1, maxValue=100),
            self.tr("1 (smallest file, strongest artefacts) to 100.")))
        self.addParameter(_help(
            QgsProcessingParameterNumber(self.RATIO, self.tr("Compression ratio (jpeg2000)"),
                                         QgsProcessingParameterNumber.Double, 20.0, minValue=1.01, maxValue=1000.0),
            self.tr("Uncompressed size / compressed size.")))
        # a file destination, not a raster one: QGIS offers only drivers that can create rasters band by band as
        # raster destinations, and JPEG 2000 writes whole files (CreateCopy) only
        self.addParameter(_help(
            QgsProcessingParameterFileDestination(self.OUTPUT, self.tr("Compressed raster"),
                                                  fileFilter="GeoTIFF (*.tif *.tiff);;JPEG 2000 (*.jp2)"),
            self.tr(".tif for jpeg and webp, .jp2 for jpeg2000.")))
        self.addOutput(QgsProcessingOutputNumber(self.BITS_PER_PIXEL, self.tr("Bits per pixel")))

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        layer, src = self.file_raster(parameters, self.INPUT, context, "Input raster")
        codec = self.parameterAsEnumString(parameters, self.CODEC, context)
        out = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        if self._temporary(parameters) and Path(out).suffix.lower() not in EXTENSIONS[codec]:
            out = str(Path(out).with_suffix(EXTENSIONS[codec][0]))
        try:
            report = compress_raster(src, out, codec,
                                     quality=self.parameterAsInt(parameters, self.QUALITY, context),
                                     compression_ratio=self.parameterAsDouble(parameters, self.RATIO, context))
        except RasterError as exc:
            raise QgsProcessingException(str(exc)) from None
        feedback.pushInfo(self.tr(f"{codec}: {report.encoded_bytes} bytes, {report.bits_per_pixel:.3f} bits per "
                                  f"pixel ({' '.join(report.options)})"))
        name = f"{layer.name()} - {codec}"
        context.addLayerToLoadOnCompletion(str(report.path), QgsProcessingContext.LayerDetails(
            name, context.project(), self.OUTPUT))
        style_on_load(context, str(report.path), name)
        return {self.OUTPUT: str(report.path), self.BITS_PER_PIXEL: report.bits_per_pixel}

    def _temporary(self, parameters: dict[str, Any]) -> bool:
        """True when OUTPUT is a temporary file (QGIS then picks the name, with the filter's first extension)."""
        value = parameters.get(self.OUTPUT)
        if isinstance(value, QgsProcessingOutputLayerDefinition):
            value = value.sink.staticValue()
        return value in (None, "", QgsProcessing.TEMPORARY_OUTPUT)
