"""``rsrestore:reference_super_resolve`` - reference-based super-resolution after TTRD3: a high-resolution
reference of the same place (another date or sensor) lends its texture where it matches."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingParameterBand,
    QgsProcessingParameterRasterLayer,
)

from rscore.runtime import RestoreRequest

from .base import _help
from .super_resolve import SuperResolveAlgorithm


class ReferenceSuperResolveAlgorithm(SuperResolveAlgorithm):
    """Super-resolution guided by a co-registered high-resolution reference; plain SR where it has no data."""

    REFERENCE = "REFERENCE"
    REFERENCE_BANDS = "REFERENCE_BANDS"

    #: the 8-bit RGB bundle is not trained yet (docs/models/refsr-bgrn.md): 3-band inputs need a MODEL_FOLDER
    default_bundles = {4: "refsr-bgrn"}
    task = "reference_super_resolve"

    def name(self) -> str:
        return "reference_super_resolve"

    def displayName(self) -> str:  # noqa: N802 - QGIS API
        return self.tr("Super-resolve with a reference image")

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API
        return self.tr(
            "Increases the resolution of optical imagery by any real factor from 1 to 8 with the help of a "
            "high-resolution REFERENCE of the same place from another date or sensor (an aerial orthophoto, a "
            "very-high-resolution satellite scene). A model after TTRD3 matches the input against the reference "
            "within a small search window, transfers the reference's texture only where it matches (the few best "
            "matches, weighted by their confidence); residual diffusion can refine the result with STEPS "
            f"({self.default_steps_text()}). Content that changed between the dates matches badly and is not "
            "copied.\n\n"
            "REFERENCE: any CRS, resolution and extent; it is warped onto the output grid. Its own data type and "
            "value scale are used (uint16 reflectance x 10000 or float reflectance) and its nodata is honoured. "
            "It must cover at least half of the output extent, otherwise the run is refused; outside its "
            "footprint (and where it is nodata) the result is plain super-resolution, with no invented texture. "
            "The log says how much of the output it covers. REFERENCE_BANDS: its bands in the "
            "model's order (blue, green, red, NIR, or red, green, blue), when it has more bands or another order.\n"
            "Inputs: 4-band reflectance rasters (blue, green, red, NIR) for the shipped model; an 8-bit RGB model "
            "is not shipped yet (give one with MODEL_FOLDER). SCALE, TARGET_RESOLUTION and the output grid are as "
            "in 'Super-resolve (any scale)'."
        )

    def add_task_parameters(self) -> None:
        self.addParameter(_help(
            QgsProcessingParameterRasterLayer(self.REFERENCE, self.tr("Reference raster (high resolution, same "
                                                                      "place)")),
            self.tr("A high-resolution raster of the same place (another date or sensor), in any CRS; it must "
                    "cover at least half of the output extent.")))
        self.addParameter(_help(
            QgsProcessingParameterBand(self.REFERENCE_BANDS, self.tr("Reference bands (in the model's band order)"),
                                       None, self.REFERENCE, optional=True, allowMultiple=True),
            self.tr("Reference bands in the model's order; empty when it has exactly those bands in that order.")))
        super().add_task_parameters()

    def reference_path(self, parameters: dict[str, Any], context: QgsProcessingContext) -> str:
        return self.file_raster(parameters, self.REFERENCE, context, "Reference raster")[1]

    def extra_request_fields(self, parameters: dict[str, Any], context: QgsProcessingContext) -> dict[str, Any]:
        return {**super().extra_request_fields(parameters, context),
                "aux_path": self.reference_path(parameters, context),
                "aux_bands": self.parameterAsInts(parameters, self.REFERENCE_BANDS, context) or None}

    def checkParameterValues(self, parameters: dict[str, Any], context: QgsProcessingContext):  # noqa: N802
        ok, msg = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, msg
        try:
            self.reference_path(parameters, context)
        except QgsProcessingException as exc:
            return False, str(exc)
        return True, ""

    def output_label(self, request: RestoreRequest) -> str:
        return f"super-resolved x{request.scale_factor:g} with reference"
