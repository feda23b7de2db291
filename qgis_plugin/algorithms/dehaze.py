"""``rsrestore:dehaze`` - remove haze with the shipped DS-RDMPD-style bundles (or a chosen one)."""

from __future__ import annotations

from typing import Any

from qgis.core import QgsProcessingContext, QgsProcessingException, QgsRasterLayer

from .base import RestoreAlgorithmBase, shipped_bundle

#: band count of the input (or of the BANDS selection) -> shipped bundle
DEFAULT_BUNDLES = {4: "dehaze-bgrn", 3: "dehaze-rgb"}


class DehazeAlgorithm(RestoreAlgorithmBase):
    """Dehazing: MCESS-UNet one-pass estimate refined by a few residual-diffusion steps."""

    model_optional = True

    def name(self) -> str:
        return "dehaze"

    def displayName(self) -> str:  # noqa: N802 - QGIS API
        return self.tr("Remove haze")

    def model_help(self) -> str:
        return self.tr("Optional model bundle folder. Empty: the shipped model for the input's band count - "
                       "4 bands (blue, green, red, NIR reflectance, e.g. Sentinel-2 B2/B3/B4/B8 as uint16 x 1e-4) "
                       "or 3 bands (8-bit red, green, blue).")

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API
        return self.tr(
            "Removes haze from optical imagery with a two-stage model after DS-RDMPD: a multi-scale attention "
            "UNet gives a one-pass estimate, then residual diffusion refines it in a few steps (default 5).\n\n"
            "Inputs: a 4-band reflectance raster with bands blue, green, red, NIR (uint16 reflectance x 10000, "
            "as Sentinel-2 L2A/L1C or Landsat surface reflectance rescaled, or float reflectance 0-1), or an "
            "8-bit RGB raster (red, green, blue). Select the bands in that order with BANDS when the raster "
            "has more bands or another order.\n"
            "The output keeps the input's bands, order, data type, value scale, nodata, CRS and geotransform. "
            "Steps: 0 = the model's default; 1 step is faster and a little less sharp. The same seed gives "
            "the same result whatever the tile size."
        )

    def bundle_path(self, parameters: dict[str, Any], context: QgsProcessingContext, layer: QgsRasterLayer) -> str:
        chosen = self.parameterAsFile(parameters, self.MODEL, context)
        if chosen:
            return chosen
        bands = self.parameterAsInts(parameters, self.BANDS, context)
        count = len(bands) if bands else layer.bandCount()
        name = DEFAULT_BUNDLES.get(count)
        if name is None:
            raise QgsProcessingException(self.tr(
                f"Remove haze needs 4 bands (blue, green, red, NIR reflectance) or 3 bands (8-bit red, green, "
                f"blue), but {'the selected bands are' if bands else 'the raster has'} {count} band(s). "
                f"Choose 4 or 3 bands in that order with BANDS, or give a MODEL made for your bands."))
        return str(shipped_bundle(name))
