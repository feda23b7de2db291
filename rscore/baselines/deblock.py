"""Classical artefact removal for decoded rasters: a self-guided filter per band (He, Sun and Tang, TPAMI 35(6),
2013), the edge-preserving smoothing often used against blocking and ringing. numpy only.

Each band is its own guide: where its local variance is well above ``eps`` (edges, texture) the band is kept,
where it is below (flat areas with block steps and ringing) it is replaced by the local mean. ``eps`` is set
relative to the band's robust range (2nd to 98th percentile), so one setting fits 8-bit and reflectance rasters.
The default (radius 2, 8 % of the range) was chosen on the committed Sentinel-2 sample (not on test scenes):
larger values gain more at strong compression and lose at light compression.
"""

from __future__ import annotations

import numpy as np

from rscore.baselines.dark_channel import guided_filter


def deblock_guided(image: np.ndarray, radius_px: int = 2, eps_rel: float = 0.08) -> np.ndarray:
    """Self-guided filtering of every band.

    Args:
        image: float (bands, rows, cols), any units.
        radius_px: box radius of the filter, pixels.
        eps_rel: the filter's regularisation as a fraction of the band's 2-98 % range (eps = (eps_rel x range)^2).

    Returns:
        float32 (bands, rows, cols), same units.
    """
    out = np.empty(image.shape, np.float32)
    for b, band in enumerate(np.asarray(image, np.float64)):
        lo, hi = np.percentile(band, (2, 98))
        eps = max((eps_rel * float(hi - lo)) ** 2, 1e-12)
        out[b] = guided_filter(band, band, radius_px, eps)
    return out
