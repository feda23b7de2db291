"""``rsrestore:enhance_decoded`` - remove lossy-compression artefacts after LDM-RSIC (JPEG, WebP, JPEG 2000)."""

from __future__ import annotations

from rscore.runtime.algorithms import SPECS

from .base import ShippedModelAlgorithm


class EnhanceDecodedAlgorithm(ShippedModelAlgorithm):
    """Codec-decoded enhancement: a latent diffusion generates a prior map that steers an enhancement network."""

    spec = SPECS["enhance_decoded"]
    texts = {
        "CODEC": ("Codec the raster was compressed with",
                  "auto: read from the file (JPEG or WebP drivers or GeoTIFF compression, JPEG 2000 drivers). "
                  "Choose jpeg, webp or jpeg2000 when the raster was decoded and saved without it."),
        "OUTPUT": ("Enhanced raster", ""),
    }

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
