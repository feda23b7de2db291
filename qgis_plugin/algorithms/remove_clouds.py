"""``rsrestore:remove_clouds`` - cloud removal after Diffusion Enhancement (reference model + diffusion,
fused per pixel by a learned weight), with a cloud MASK (given, or found by the model itself) and per-pixel
uncertainty."""

from __future__ import annotations

import dataclasses
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterBand,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from rscore.bundle.manifest import BundleError
from rscore.bundle.store import load_bundle
from rscore.pipelines import PIPELINE_SPECS
from rscore.runtime import RestoreRequest

from .base import ShippedModelAlgorithm, _help

#: band count of the input (or of the BANDS selection) -> shipped bundle
DEFAULT_BUNDLES = {4: "clouds-bgrn", 3: "clouds-rgb"}


class RemoveCloudsAlgorithm(ShippedModelAlgorithm):
    """Diffusion Enhancement cloud removal."""

    ETA = "ETA"
    MASK = "MASK"
    MASK_BAND = "MASK_BAND"
    AUTO_MASK = "AUTO_MASK"
    MASK_THRESHOLD = "MASK_THRESHOLD"
    SAMPLES = "SAMPLES"
    UNCERTAINTY_OUTPUT = "UNCERTAINTY_OUTPUT"

    default_bundles = DEFAULT_BUNDLES
    task = "remove_clouds"

    def name(self) -> str:
        return "remove_clouds"

    def displayName(self) -> str:  # noqa: N802 - QGIS API
        return self.tr("Remove clouds")

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API
        return self.tr(
            "Removes thin and thick clouds with Diffusion Enhancement: a reference network predicts the ground "
            "in one pass (right structure, smooth), a diffusion model samples detail from noise in a few DDIM "
            "steps, and a weight network blends the two per pixel and band at every step.\n\n"
            "Inputs: a 4-band reflectance raster with bands blue, green, red, NIR (uint16 reflectance x 10000 or "
            "float 0-1), or an 8-bit RGB raster. Select the bands in that order with BANDS when needed.\n"
            "ETA: the smallest weight the reference gets (0-1; empty = the model's default, 0.3 for the shipped "
            "models); higher = smoother "
            "and more faithful to the reference, lower = more diffusion texture.\n"
            "MASK (optional): a raster whose non-zero pixels are cloud (e.g. a cloud mask or a Landsat QA "
            "band reclassified to 0/1). Only those pixels change; every other pixel is copied from the input "
            "exactly, and tiles without cloud are not processed. It is resampled onto the input "
            "grid when its grid differs (a mask pixel marks every input pixel it touches).\n"
            "AUTO_MASK (default on, used when no MASK is given): the model finds the cloudy and shadowed pixels "
            "itself (its own cloud map, thresholded at MASK_THRESHOLD and grown by a few pixels) and changes only "
            "those; clear pixels are copied from the input exactly and cloud-free tiles are skipped. Untick it to "
            "let the model change every pixel.\n"
            "SAMPLES and UNCERTAINTY_OUTPUT (optional): with several samples the output is their mean and the "
            "uncertainty raster holds the per-pixel standard deviation (reflectance or 0-1 units): high where "
            "the ground is truly hidden.\n"
            "The output keeps the input's bands, data type, value scale, nodata, CRS and geotransform. Steps: "
            f"empty = the model's default ({self.default_steps_text()}); the trade-off is in the project's "
            "docs/quality.md."
        )

    def add_task_parameters(self) -> None:
        self.addParameter(_help(
            QgsProcessingParameterNumber(self.ETA, self.tr("Minimum reference weight, eta (empty = the model's "
                                                           "default)"),
                                         QgsProcessingParameterNumber.Double, None, optional=True, minValue=0.0,
                                         maxValue=1.0),
            self.tr("The reference model's weight W is clamped to [ETA, 1] at every step; empty uses the model's "
                    "default (0.3 for the shipped models, as in the paper).")))
        self.addParameter(_help(
            QgsProcessingParameterRasterLayer(self.MASK, self.tr("Cloud mask (non-zero = restore)"), optional=True),
            self.tr("Optional. Only pixels where this raster is non-zero are restored; all others are copied "
                    "from the input unchanged.")))
        self.addParameter(_help(
            QgsProcessingParameterBand(self.MASK_BAND, self.tr("Mask band"), 1, self.MASK, optional=True),
            self.tr("Band of the mask raster to use (default 1)."), advanced=True))
        self.addParameter(_help(
            QgsProcessingParameterBoolean(self.AUTO_MASK, self.tr("Without a mask, restore only the pixels the model "
                                                                  "finds cloudy (automatic mask)"), True),
            self.tr("Used when MASK is empty: a first pass computes the model's own cloud map; pixels above the "
                    "threshold (grown by a few pixels) are restored, all others are copied unchanged. Off: every "
                    "pixel is restored.")))
        self.addParameter(_help(
            QgsProcessingParameterNumber(self.MASK_THRESHOLD, self.tr("Automatic mask threshold (empty = the "
                                                                      "model's default)"),
                                         QgsProcessingParameterNumber.Double, None, optional=True, minValue=0.01,
                                         maxValue=0.99),
            self.tr("Cloud-map value (0 = clear, 1 = opaque cloud) from which a pixel is restored; lower restores "
                    "more pixels (thin cloud edges), higher fewer. Empty uses the model's default."), advanced=True))
        self.addParameter(_help(
            QgsProcessingParameterNumber(self.SAMPLES, self.tr("Samples (mean of several seeds)"),
                                         QgsProcessingParameterNumber.Integer, 1, minValue=1, maxValue=64),
            self.tr("Number of samples averaged; > 1 makes the uncertainty output meaningful and costs "
                    "proportionally more time.")))

    def add_output_parameters(self) -> None:
        super().add_output_parameters()
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.UNCERTAINTY_OUTPUT, self.tr("Uncertainty (per-pixel standard deviation over samples)"),
            optional=True, createByDefault=False))

    def extra_request_fields(self, parameters: dict[str, Any], context: QgsProcessingContext) -> dict[str, Any]:
        eta = self.optional_double(parameters, self.ETA, context)
        fields: dict[str, Any] = {"samples": self.parameterAsInt(parameters, self.SAMPLES, context)}
        if eta is not None:
            fields["options"] = {"weight_floor": eta}
        mask = self.parameterAsRasterLayer(parameters, self.MASK, context)
        if mask is not None:
            if mask.providerType() != "gdal":
                raise QgsProcessingException(self.tr("MASK must be a file-based raster (GDAL provider)."))
            fields["mask_path"] = mask.source().split("|")[0]
            band = self.parameterAsInt(parameters, self.MASK_BAND, context)
            fields["mask_band"] = band if band > 0 else 1
        unc = self.parameterAsOutputLayer(parameters, self.UNCERTAINTY_OUTPUT, context)
        if unc:
            if fields["samples"] < 2:
                raise QgsProcessingException(self.tr(
                    "UNCERTAINTY_OUTPUT is the standard deviation over several samples: set SAMPLES to 2 or more "
                    "(e.g. 4), or leave UNCERTAINTY_OUTPUT empty."))
            fields["uncertainty_path"] = unc
        return fields

    def make_request(self, parameters: dict[str, Any], context: QgsProcessingContext) -> RestoreRequest:
        request = super().make_request(parameters, context)
        try:
            manifest = load_bundle(request.bundle_path).manifest
        except BundleError as exc:
            raise QgsProcessingException(str(exc)) from None
        try:  # the pipeline's own options check (ETA is in range here, so a refusal means: no such option)
            PIPELINE_SPECS[manifest.pipeline].make_options(request.options)
        except ValueError:
            raise QgsProcessingException(self.tr(
                f"ETA applies to Diffusion Enhancement cloud-removal models; model {manifest.name!r} "
                f"({manifest.pipeline}) has no reference fusion: leave ETA empty")) from None
        if request.mask_path or not self.parameterAsBool(parameters, self.AUTO_MASK, context):
            return request
        thr = self.optional_double(parameters, self.MASK_THRESHOLD, context)
        has_map = manifest.auto_mask is not None
        if not has_map:
            self._notice = self.tr("this model cannot find clouds by itself (no automatic mask): every pixel is "
                                   "restored; give a MASK to limit the change to cloudy pixels")
            return request
        return dataclasses.replace(request, auto_mask=True, mask_threshold=thr)

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        self._notice = ""
        return super().processAlgorithm(parameters, context, feedback)

    def report_notice(self) -> str:
        return getattr(self, "_notice", "")

    def results(self, outputs: dict[str, str]) -> dict[str, Any]:
        res = {self.OUTPUT: outputs["image"]}
        if "uncertainty" in outputs:
            res[self.UNCERTAINTY_OUTPUT] = outputs["uncertainty"]
        return res

    def output_label(self, request: RestoreRequest) -> str:
        return "clouds removed"
