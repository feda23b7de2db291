"""``rsrestore:restore`` - restore a raster with any model bundle."""

from __future__ import annotations

from rscore.runtime.algorithms import SPECS

from .base import RestoreAlgorithmBase


class RestoreAlgorithm(RestoreAlgorithmBase):
    """Generic algorithm: the MODEL parameter names the bundle to run."""

    spec = SPECS["restore"]

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API
        return self.tr(
            "Runs an rsrestore model bundle (ONNX networks + manifest) over a raster, tile by tile, with the "
            "bundle's diffusion sampler. The output keeps the input's CRS, geotransform (scaled for "
            "super-resolution), band order, data type and value scale; nodata pixels stay nodata. The output is "
            "written to a temporary file and moved into place only when the run succeeds, so a cancelled or "
            "failed run leaves nothing behind.\n\n"
            "Bands: leave empty when the raster has exactly the model's bands in the model's order; otherwise "
            "list them in that order.\n"
            "Steps: more diffusion steps cost proportionally more time.\n"
            "Seed: fixes the sampling noise; results do not depend on the tile size."
        )
