"""``rsrestore:remove_clouds`` - cloud removal after Diffusion Enhancement (reference model + diffusion,
fused per pixel by a learned weight), with a cloud MASK (given, or found by the model itself) and per-pixel
uncertainty."""

from __future__ import annotations

from rscore.runtime.algorithms import SPECS

from .base import ShippedModelAlgorithm


class RemoveCloudsAlgorithm(ShippedModelAlgorithm):
    """Diffusion Enhancement cloud removal."""

    spec = SPECS["remove_clouds"]
    texts = {
        "ETA": ("Minimum reference weight, eta (empty = the model's default)",
                "The reference model's weight W is clamped to [ETA, 1] at every step; empty uses the model's "
                "default (0.3 for the shipped models, as in the paper)."),
        "MASK": ("Cloud mask (non-zero = restore)",
                 "Optional. Only pixels where this raster is non-zero are restored; all others are copied from the "
                 "input unchanged."),
        "MASK_BAND": ("Mask band", "Band of the mask raster to use (default 1)."),
        "AUTO_MASK": ("Without a mask, restore only the pixels the model finds cloudy (automatic mask)",
                      "Used when MASK is empty: a first pass computes the model's own cloud map; pixels above the "
                      "threshold (grown by a few pixels) are restored, all others are copied unchanged. Off: every "
                      "pixel is restored."),
        "MASK_THRESHOLD": ("Automatic mask threshold (empty = the model's default)",
                           "Cloud-map value (0 = clear, 1 = opaque cloud) from which a pixel is restored; lower "
                           "restores more pixels (thin cloud edges), higher fewer. Empty uses the model's default."),
        "SAMPLES": ("Samples (mean of several seeds)",
                    "Number of samples averaged; > 1 makes the uncertainty output meaningful and costs "
                    "proportionally more time."),
        "UNCERTAINTY_OUTPUT": ("Uncertainty (per-pixel standard deviation over samples)", ""),
    }

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
