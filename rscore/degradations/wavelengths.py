"""Band centre wavelengths (nm) for the bands and sensors the project uses.

Physics-based degradations (haze, thin cloud, seasonal change) need each band's centre wavelength.
Values are the published band centres (Sentinel-2A MSI spectral response summary; Landsat-8 OLI
band specification). ``GENERIC_NM`` is used for cameras without a published response (aerial RGB).
"""

from __future__ import annotations

from collections.abc import Sequence

#: Sentinel-2A MSI band centres, nm.
SENTINEL2_NM: dict[str, float] = {
    "B01": 442.7,
    "B02": 492.4,
    "B03": 559.8,
    "B04": 664.6,
    "B05": 704.1,
    "B06": 740.5,
    "B07": 782.8,
    "B08": 832.8,
    "B8A": 864.7,
    "B09": 945.1,
    "B10": 1373.5,
    "B11": 1613.7,
    "B12": 2202.4,
}

#: Landsat-8 OLI band centres, nm (B8 is panchromatic).
LANDSAT8_NM: dict[str, float] = {
    "B1": 443.0,
    "B2": 482.0,
    "B3": 561.4,
    "B4": 654.6,
    "B5": 864.7,
    "B6": 1608.9,
    "B7": 2200.7,
    "B8": 589.5,
    "B9": 1373.4,
}

#: Generic band centres by common name (Sentinel-2-like), nm.
GENERIC_NM: dict[str, float] = {
    "coastal": 443.0,
    "blue": 490.0,
    "green": 560.0,
    "red": 665.0,
    "rededge": 705.0,
    "nir": 842.0,
    "swir1": 1610.0,
    "swir2": 2200.0,
}

#: Wavelength tuple for the project's standard 4-band order (blue, green, red, nir), nm.
BGRN_NM: tuple[float, float, float, float] = (
    GENERIC_NM["blue"],
    GENERIC_NM["green"],
    GENERIC_NM["red"],
    GENERIC_NM["nir"],
)

#: Wavelength tuple for 3-band RGB imagery in (red, green, blue) order, nm.
RGB_NM: tuple[float, float, float] = (GENERIC_NM["red"], GENERIC_NM["green"], GENERIC_NM["blue"])

_TABLES: dict[str, dict[str, float]] = {
    "generic": GENERIC_NM,
    "sentinel2": SENTINEL2_NM,
    "landsat8": LANDSAT8_NM,
}


def wavelengths_for(band_names: Sequence[str], sensor: str = "generic") -> tuple[float, ...]:
    """Look up band centre wavelengths.

    Args:
        band_names: Band names, e.g. ``("blue", "green", "red", "nir")`` for ``sensor="generic"``
            or ``("B02", "B03", "B04", "B08")`` for ``sensor="sentinel2"``.
        sensor: One of ``"generic"``, ``"sentinel2"``, ``"landsat8"``.

    Returns:
        Centre wavelengths in nm, one per band, in the given order.

    Raises:
        KeyError: Unknown sensor or band name (the message lists the valid names).
    """
    if sensor not in _TABLES:
        raise KeyError(f"unknown sensor {sensor!r}; expected one of {sorted(_TABLES)}")
    table = _TABLES[sensor]
    missing = [b for b in band_names if b not in table]
    if missing:
        raise KeyError(f"bands {missing} not in the {sensor} table; known bands: {sorted(table)}")
    return tuple(table[b] for b in band_names)
