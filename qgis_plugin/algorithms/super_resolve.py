"""``rsrestore:super_resolve`` - continuous-scale super-resolution after LDCSR (any real scale factor 1-8)."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsRasterLayer,
)

from rscore.runtime import RestoreRequest

from .base import ShippedModelAlgorithm, _help

#: band count of the input (or of the BANDS selection) -> shipped bundle
DEFAULT_BUNDLES = {4: "sr-bgrn", 3: "sr-rgb"}
#: scale factors the shipped models were trained for
MIN_SCALE, MAX_SCALE = 1.0, 8.0


def scale_for_resolution(layer: QgsRasterLayer, target_resolution: float) -> float:
    """The scale factor that turns the layer's pixel width into ``target_resolution`` (layer units)."""
    return float(layer.rasterUnitsPerPixelX()) / float(target_resolution)


class SuperResolveAlgorithm(ShippedModelAlgorithm):
    """LDCSR-style super-resolution: latent diffusion of the detail bicubic misses, scale-aware decoder."""

    SCALE = "SCALE"
    TARGET_RESOLUTION = "TARGET_RESOLUTION"

    default_bundles = DEFAULT_BUNDLES
    task = "super_resolve"

    def name(self) -> str:
        return "super_resolve"

    def displayName(self) -> str:  # noqa: N802 - QGIS API
        return self.tr("Super-resolve (any scale)")

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API
        return self.tr(
            "Increases the resolution of optical imagery by any real factor from 1 to 8 (e.g. 2, 2.5 or 4) with a "
            "model after LDCSR: an encoder reads the bicubic up-sampling of the input, a small latent diffusion "
            f"model adds the detail bicubic misses in a few steps ({self.default_steps_text()}), and a scale-aware "
            "decoder renders the image at the exact output size.\n\n"
            "Inputs: a 4-band reflectance raster with bands blue, green, red, NIR (uint16 reflectance x 10000, or "
            "float reflectance 0-1), or an 8-bit RGB raster (red, green, blue). Select the bands in that order with "
            "BANDS when the raster has more bands or another order.\n"
            "SCALE: output pixels per input pixel along each axis. TARGET_RESOLUTION (optional, in the layer's "
            "map units, e.g. metres): the output pixel size; it overrides SCALE (scale = input pixel width / "
            "target resolution).\n"
            "The output grid is exact: same origin and CRS, pixel size = input pixel size / scale, size = "
            "round(input size x scale). It keeps the input's bands, order, data type, value scale and nodata "
            "(nodata areas follow the output grid). The same seed gives the same result whatever the tile size; "
            "STEPS empty = the model's default. TILE_SIZE and OVERLAP count output pixels."
        )

    def add_task_parameters(self) -> None:
        self.addParameter(_help(
            QgsProcessingParameterNumber(self.SCALE, self.tr("Scale factor (output pixels per input pixel)"),
                                         QgsProcessingParameterNumber.Double, 4.0, minValue=MIN_SCALE,
                                         maxValue=MAX_SCALE),
            self.tr("Any real factor from 1 to 8; e.g. 2.5 turns 10 m pixels into 4 m pixels.")))
        self.addParameter(_help(
            QgsProcessingParameterNumber(self.TARGET_RESOLUTION,
                                         self.tr("Target resolution in map units (empty = use the scale factor)"),
                                         QgsProcessingParameterNumber.Double, None, optional=True, minValue=1e-9),
            self.tr("Output pixel size in the layer's units (metres for a projected CRS). When set, it overrides "
                    "SCALE: scale = input pixel width / target resolution, which must lie between 1 and 8.")))

    def add_output_parameters(self) -> None:
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Super-resolved raster")))

    def scale_factor(self, parameters: dict[str, Any], context: QgsProcessingContext) -> float:
        """SCALE, or the factor TARGET_RESOLUTION asks for; refused outside the trained range 1-8."""
        target = self.optional_double(parameters, self.TARGET_RESOLUTION, context)
        if target is None:
            return self.parameterAsDouble(parameters, self.SCALE, context)
        layer, _ = self.input_path(parameters, context)
        pixel = float(layer.rasterUnitsPerPixelX())
        scale = scale_for_resolution(layer, target)
        if not (MIN_SCALE - 1e-9 <= scale <= MAX_SCALE + 1e-9):
            raise QgsProcessingException(self.tr(
                f"TARGET_RESOLUTION {target:g} with input pixels of {pixel:g} map units needs a scale factor of "
                f"{scale:.4g}, outside 1-8: choose a target resolution between {pixel / MAX_SCALE:g} and {pixel:g} "
                "(or leave it empty and use SCALE)"))
        return scale

    def extra_request_fields(self, parameters: dict[str, Any], context: QgsProcessingContext) -> dict[str, Any]:
        return {"scale_factor": self.scale_factor(parameters, context)}

    def checkParameterValues(self, parameters: dict[str, Any], context: QgsProcessingContext):  # noqa: N802
        ok, msg = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, msg
        try:
            self.scale_factor(parameters, context)
        except QgsProcessingException as exc:
            return False, str(exc)
        return True, ""

    def output_label(self, request: RestoreRequest) -> str:
        return f"super-resolved x{request.scale_factor:g}"
