"""``rsrestore:dehaze`` - remove haze with the shipped DS-RDMPD-style bundles (or a chosen one)."""

from __future__ import annotations

from rscore.runtime.algorithms import SPECS

from .base import ShippedModelAlgorithm


class DehazeAlgorithm(ShippedModelAlgorithm):
    """Dehazing: MCESS-UNet one-pass estimate refined by a few residual-diffusion steps."""

    spec = SPECS["dehaze"]

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API
        return self.tr(
            "Removes haze from optical imagery with a two-stage model after DS-RDMPD: a multi-scale attention "
            "UNet inverts the haze in one pass (transmission and airlight), then residual diffusion refines it in "
            f"a few steps ({self.default_steps_text()}). A clean input is left essentially unchanged.\n\n"
            "Inputs: a 4-band reflectance raster with bands blue, green, red, NIR (uint16 reflectance x 10000, "
            "as Sentinel-2 L2A/L1C or Landsat surface reflectance rescaled, or float reflectance 0-1), or an "
            "8-bit RGB raster (red, green, blue). Select the bands in that order with BANDS when the raster "
            "has more bands or another order.\n"
            "The output keeps the input's bands, order, data type, value scale, nodata, CRS and geotransform. "
            f"Steps: empty = the model's default ({self.default_steps_text()}); fewer steps are faster. The same seed "
            "gives the same result whatever the tile size."
        )
