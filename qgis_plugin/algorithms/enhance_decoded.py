"""``rsrestore:enhance_decoded`` - remove lossy-compression artefacts after LDM-RSIC (JPEG, WebP, JPEG 2000)."""

from __future__ import annotations

import dataclasses
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterEnum,
    QgsProcessingParameterRasterDestination,
    QgsRasterLayer,
)

from rscore.bundle.manifest import BundleError
from rscore.bundle.store import load_bundle
from rscore.raster.extent import AreaWindow
from rscore.raster.io import RasterError
from rscore.raster.lossy import LOSSY_CODECS, codec_problem, detect_codec
from rscore.runtime import RestoreRequest
from rscore.tiling.grid import Window

from .base import AUTO, ShippedModelAlgorithm, _help

#: band count of the input (or of the BANDS selection) -> shipped bundle
DEFAULT_BUNDLES = {4: "decoded-bgrn", 3: "decoded-rgb"}
CODEC_CHOICES = (AUTO, *LOSSY_CODECS)
#: the block grid of JPEG (8 px, 16 px with chroma subsampling) and WebP (16 px macroblocks)
BLOCK_GRID_PX = 16


class EnhanceDecodedAlgorithm(ShippedModelAlgorithm):
    """Codec-decoded enhancement: a latent diffusion generates a prior map that steers an enhancement network."""

    CODEC = "CODEC"

    default_bundles = DEFAULT_BUNDLES
    task = "enhance_decoded"

    def name(self) -> str:
        return "enhance_decoded"

    def displayName(self) -> str:  # noqa: N802 - QGIS API
        return self.tr("Enhance a decoded (lossy-compressed) raster")

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API
        return self.tr(
            "Removes the artefacts of lossy compression (blocking, ringing, blur, colour bleeding) from a raster "
            "that was stored as JPEG, WebP or JPEG 2000 and decoded, with a model after LDM-RSIC: a small latent "
            "diffusion model generates, from the decoded raster alone, a compact prior map of what the codec "
            f"removed ({self.default_steps_text()}), and a multi-scale network enhances the raster steered by it. "
            "It helps most on strongly compressed rasters (JPEG or WebP quality below about 50, JPEG 2000 at 1:30 and "
            "beyond); the shipped models can lose a little on lightly compressed ones (see docs/quality.md).\n\n"
            "Inputs: the decoded raster, or the compressed file itself (a .jpg, .webp or .jp2, or a GeoTIFF with "
            "JPEG or WebP compression: GDAL decodes it). 8-bit RGB (red, green, blue) for JPEG, WebP and 8-bit "
            "JPEG 2000; 4-band reflectance (blue, green, red, NIR as uint16 x 10000, as Sentinel-2's JPEG 2000 "
            "bands) for 16-bit JPEG 2000.\n"
            "CODEC: auto reads what GDAL reports about the file (its driver or its internal compression); when it "
            "reports no lossy codec (e.g. a GeoTIFF written after decoding), choose the codec the raster was "
            "compressed with. The model must have been trained for that codec.\n"
            "The output keeps the input's bands, order, data type, value scale, nodata, CRS and geotransform, and "
            "is written as GeoTIFF. With EXTENT, the window grows to the file's 16-pixel block grid, so that the "
            "model sees the codec's blocks where they are. The same seed gives the same result whatever the tile "
            "size. To measure what "
            "the enhancement saves, compress a clean raster at several qualities with 'Compress a raster with a "
            "lossy codec' and compare."
        )

    def add_task_parameters(self) -> None:
        self.addParameter(_help(
            QgsProcessingParameterEnum(self.CODEC, self.tr("Codec the raster was compressed with"),
                                       options=list(CODEC_CHOICES), defaultValue=AUTO, usesStaticStrings=True),
            self.tr("auto: read from the file (JPEG or WebP drivers or GeoTIFF compression, JPEG 2000 drivers). "
                    "Choose jpeg, webp or jpeg2000 when the raster was decoded and saved without it.")))

    def add_output_parameters(self) -> None:
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Enhanced raster")))

    def resolve_codec(self, parameters: dict[str, Any], context: QgsProcessingContext) -> tuple[str, str]:
        """(codec, how it was found); refused when auto finds none, or the model was not trained for it."""
        chosen = self.parameterAsEnumString(parameters, self.CODEC, context) or AUTO
        layer, src = self.input_path(parameters, context)
        if chosen == AUTO:
            try:
                info = detect_codec(src)
            except RasterError as exc:
                raise QgsProcessingException(str(exc)) from None
            if info.codec is None:
                raise QgsProcessingException(self.tr(
                    f"cannot tell which lossy codec compressed {layer.name()!r} ({info.describe()}): set CODEC to "
                    "the codec it was compressed with (jpeg, webp or jpeg2000); a raster that was never "
                    "compressed with loss needs no enhancement"))
            codec, how = info.codec, f"from the file ({info.describe()})"
        else:
            codec, how = chosen, "as chosen"
        try:
            manifest = load_bundle(self.bundle_path(parameters, context, layer)).manifest
        except BundleError as exc:
            raise QgsProcessingException(str(exc)) from None
        problem = codec_problem(codec, manifest.training.get("codecs"), manifest.name)
        if problem:
            raise QgsProcessingException(self.tr(problem))
        return codec, how

    def area_window(self, parameters: dict[str, Any], context: QgsProcessingContext, layer: QgsRasterLayer,
                    src: str) -> AreaWindow | None:
        """EXTENT's window grown to the codecs' 16-pixel block grid: the networks then see the blocks where the
        file has them (a window is read through a VRT whose origin is its first pixel)."""
        aw = super().area_window(parameters, context, layer, src)
        if aw is None:
            return None
        w, b = aw.window, BLOCK_GRID_PX
        r0, c0 = w.row_off // b * b, w.col_off // b * b
        r1, c1 = min(-(-w.row_end // b) * b, layer.height()), min(-(-w.col_end // b) * b, layer.width())
        return dataclasses.replace(aw, window=Window(r0, c0, r1 - r0, c1 - c0))

    def make_request(self, parameters: dict[str, Any], context: QgsProcessingContext) -> RestoreRequest:
        request = super().make_request(parameters, context)
        codec, _ = self.resolve_codec(parameters, context)
        return dataclasses.replace(request, provenance={**(request.provenance or {}), "CODEC": codec})

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        codec, how = self.resolve_codec(parameters, context)
        feedback.pushInfo(self.tr(f"codec: {codec}, {how}"))
        return super().processAlgorithm(parameters, context, feedback)

    def checkParameterValues(self, parameters: dict[str, Any], context: QgsProcessingContext):  # noqa: N802
        ok, msg = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, msg
        try:
            self.resolve_codec(parameters, context)
        except QgsProcessingException as exc:
            return False, str(exc)
        return True, ""

    def output_label(self, request: RestoreRequest) -> str:
        return "enhanced"
