"""``rsrestore:super_resolve`` - continuous-scale super-resolution after LDCSR (any real scale factor 1-8)."""

from __future__ import annotations

from rscore.runtime.algorithms import SPECS

from .base import ShippedModelAlgorithm

#: label and help of SCALE and TARGET_RESOLUTION (shared with the reference-based algorithm)
SCALE_TEXTS = {
    "SCALE": ("Scale factor (output pixels per input pixel)",
              "Any real factor from 1 to 8; e.g. 2.5 turns 10 m pixels into 4 m pixels."),
    "TARGET_RESOLUTION": ("Target resolution in map units (empty = use the scale factor)",
                          "Output pixel size in the layer's units (metres for a projected CRS). When set, it overrides "
                          "SCALE: scale = input pixel width / target resolution, which must lie between 1 and 8."),
    "OUTPUT": ("Super-resolved raster", ""),
}


class SuperResolveAlgorithm(ShippedModelAlgorithm):
    """LDCSR-style super-resolution: latent diffusion of the detail bicubic misses, scale-aware decoder."""

    spec = SPECS["super_resolve"]
    texts = SCALE_TEXTS

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
