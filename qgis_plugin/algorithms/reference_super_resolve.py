"""``rsrestore:reference_super_resolve`` - reference-based super-resolution after TTRD3: a high-resolution
reference of the same place (another date or sensor) lends its texture where it matches."""

from __future__ import annotations

from rscore.runtime.algorithms import SPECS

from .base import ShippedModelAlgorithm
from .super_resolve import SCALE_TEXTS


class ReferenceSuperResolveAlgorithm(ShippedModelAlgorithm):
    """Super-resolution guided by a co-registered high-resolution reference; plain SR where it has no data."""

    spec = SPECS["reference_super_resolve"]
    texts = {
        **SCALE_TEXTS,
        "REFERENCE": ("Reference raster (high resolution, same place)",
                      "A high-resolution raster of the same place (another date or sensor), in any CRS; it must "
                      "cover at least half of the output extent."),
        "REFERENCE_BANDS": ("Reference bands (in the model's band order)",
                            "Reference bands in the model's order; empty when it has exactly those bands in that "
                            "order."),
    }

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
