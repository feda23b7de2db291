"""Load fetched sources as float32 scenes with band names, resolution, georeferencing and licence."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rscore.data.fetch import member_path
from rscore.data.sources import ARCHIVES, SOURCES, BandFile, Radiometry, SceneSpec, SourceSpec
from rscore.data.splits import Holdout


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
        holdout: ``"blocks"``, ``"val"`` or ``"test"`` (see ``rscore.data.splits.Holdout``).
        biomes: land cover the scene shows.
        sensor: sensor / product description of its source.
        use: ``"split"`` (trainable) or ``"evaluation_only"``.
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
    holdout: Holdout = "blocks"
    biomes: tuple[str, ...] = ()
    sensor: str = ""
    use: str = "split"
    date: str = ""
    place: str = ""


def dn_to_value(dn: np.ndarray, radiometry: Radiometry, gain: Sequence[float] | None = None) -> np.ndarray:
    """Convert stored digital numbers to float32 reflectance / display values.

    Args:
        dn: Integer array as stored in the file.
        radiometry: ``"s2_toa_1e4"`` / ``"reflectance_1e4"`` (DN × 1e-4), ``"reflectance_1e3"`` (DN × 1e-3),
            ``"reflectance"`` (as stored), ``"l8_toa_dn"`` (DN × 2e-5 − 0.1, the Landsat-8 OLI reflectance
            rescaling without the sun-elevation division because the MTL file is not shipped), ``"dn_gain"``
            (DN × ``gain`` per band, first axis) or ``"rgb8"`` (DN / 255).
        gain: Per-band factors for ``"dn_gain"``.

    Returns:
        float32 array of the same shape.
    """
    x = dn.astype(np.float64)
    if radiometry in ("s2_toa_1e4", "reflectance_1e4"):
        out = x * 1e-4
    elif radiometry == "reflectance_1e3":
        out = x * 1e-3
    elif radiometry == "reflectance":
        out = x
    elif radiometry == "dn_gain":
        if gain is None or len(gain) != x.shape[0]:
            raise ValueError(f"radiometry 'dn_gain' needs one gain per band, got {gain} for {x.shape[0]} bands")
        out = x * np.asarray(gain, np.float64).reshape((-1,) + (1,) * (x.ndim - 1))
    elif radiometry == "l8_toa_dn":
        out = x * 2e-5 - 0.1
    elif radiometry == "rgb8":
        out = x / 255.0
    else:
        raise ValueError(f"unknown radiometry {radiometry!r}")
    return out.astype(np.float32)


def _read_netcdf_band(path: Path, band: BandFile) -> tuple[np.ndarray, str, tuple[float, ...] | None]:
    """(plane, CRS WKT, geotransform or None) of ``band.array`` in a netCDF file, a (rows, cols) variable or a
    (dates, rows, cols) cube read at ``band.band_index``, through GDAL's multidimensional API: the classic driver
    turns a file upside down when its ``x`` / ``y`` variables lack CF attributes. North comes first; the
    geotransform comes from the regular ``x`` / ``y`` pixel centres (None without them)."""
    from osgeo import gdal

    gdal.UseExceptions()
    ds = gdal.OpenEx(str(path), gdal.OF_MULTIDIM_RASTER)
    root = ds.GetRootGroup()
    var = root.OpenMDArray(band.array)
    sizes = [d.GetSize() for d in var.GetDimensions()]
    if len(sizes) not in (2, 3) or not 1 <= band.band_index <= (sizes[0] if len(sizes) == 3 else 1):
        raise ValueError(f"{path}: variable {band.array} has dimensions {sizes}; band {band.band_index} is not a "
                         f"plane of it")
    start = [band.band_index - 1, 0, 0][3 - len(sizes):]
    count = [1, *sizes[-2:]][3 - len(sizes):]
    plane = np.asarray(var.ReadAsArray(array_start_idx=start, count=count)).reshape(sizes[-2:])
    srs = var.GetSpatialRef()
    crs_wkt = srs.ExportToWkt() if srs is not None else ""
    if not {"x", "y"} <= set(root.GetMDArrayNames() or ()):
        return plane, crs_wkt, None
    x, y = (np.asarray(root.OpenMDArray(k).ReadAsArray(), dtype=np.float64) for k in ("x", "y"))
    dx, dy = np.diff(x), np.diff(y)
    if (len(x), len(y)) != (sizes[-1], sizes[-2]) or min(len(dx), len(dy)) == 0 \
            or np.ptp(dx) > 1e-6 * abs(dx[0]) or np.ptp(dy) > 1e-6 * abs(dy[0]):
        return plane, crs_wkt, None
    if dy[0] > 0:  # south first in the file: flip to north-up
        plane, y, dy = plane[::-1], y[::-1], -dy
    gt = (float(x[0] - dx[0] / 2), float(dx[0]), 0.0, float(y[0] - dy[0] / 2), 0.0, float(dy[0]))
    return np.ascontiguousarray(plane), crs_wkt, gt


def _read_band(path: Path, band: BandFile) -> tuple[np.ndarray, str, tuple[float, ...] | None]:
    """(plane, CRS WKT, geotransform or None) of one band file (GDAL raster, ``.npz`` array or netCDF variable)."""
    if band.array is not None and path.suffix == ".nc":
        return _read_netcdf_band(path, band)
    if band.array is not None:
        with np.load(path) as npz:
            arr = npz[band.array]
        arr = arr.reshape(arr.shape[-3:])  # (..., rows, cols, bands) -> (rows, cols, bands)
        return np.ascontiguousarray(arr[..., band.band_index - 1]), "", None
    from osgeo import gdal

    gdal.UseExceptions()
    ds = gdal.Open(str(path))
    plane = ds.GetRasterBand(band.band_index).ReadAsArray()
    crs_wkt = ds.GetProjection() or ""
    gt = ds.GetGeoTransform(can_return_null=True)
    # PNG/JPEG without georeferencing report no geotransform; keep None rather than (0,1,0,0,0,1).
    return plane, crs_wkt, (tuple(gt) if (gt is not None and crs_wkt) else None)


def _read_scene(spec: SourceSpec, scene: SceneSpec, cache_dir: Path) -> Scene:
    archive = ARCHIVES[spec.archive]
    planes: list[np.ndarray] = []
    crs_wkt = ""
    geotransform: tuple[float, ...] | None = None
    for band in scene.bands:
        path = member_path(spec.archive, band.member, cache_dir)
        plane, wkt, gt = _read_band(path, band)
        if planes and plane.shape != planes[0].shape:
            raise ValueError(f"{path}: band {band.name} shape {plane.shape} differs from {planes[0].shape}")
        planes.append(plane)
        if len(planes) == 1:
            crs_wkt, geotransform = wkt, gt
    dn = np.stack(planes)
    if scene.window is not None:
        r0, r1, c0, c1 = scene.window
        dn = dn[:, r0:r1, c0:c1]
        if geotransform is not None:
            g = geotransform
            geotransform = (g[0] + c0 * g[1] + r0 * g[2], g[1], g[2], g[3] + c0 * g[4] + r0 * g[5], g[4], g[5])
    valid = np.ones(dn.shape[1:], dtype=bool)
    if dn.dtype.kind == "f":
        valid &= np.all(np.isfinite(dn), axis=0)
    if spec.nodata_dn is not None:
        fill = np.all if spec.nodata_rule == "all" else np.any
        valid &= ~fill(dn == spec.nodata_dn, axis=0)
    return Scene(
        name=f"{spec.name}/{scene.name}",
        pixels=dn_to_value(np.where(np.isfinite(dn), dn, 0) if dn.dtype.kind == "f" else dn, spec.radiometry,
                           scene.gain),
        band_names=tuple(b.name for b in scene.bands),
        wavelengths_nm=tuple(b.wavelength_nm for b in scene.bands),
        resolution_m=scene.resolution_m,
        crs_wkt=crs_wkt,
        geotransform=geotransform,
        valid_mask=valid,
        radiometry=spec.radiometry,
        source=f"{archive.package}=={archive.version}:{scene.bands[0].member}",
        licence=archive.licence,
        holdout=scene.holdout,
        biomes=tuple(scene.biomes),
        sensor=spec.sensor,
        use=spec.use,
        date=scene.date,
        place=scene.place,
    )


def load_source(name: str, cache_dir: Path) -> list[Scene]:
    """Load every scene of a fetched source.

    Args:
        name: Key of ``rscore.data.sources.SOURCES`` (``s2_nocloud``, ``otb_quickbird``, ...).
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
