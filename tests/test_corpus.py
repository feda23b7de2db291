"""The imagery corpus: registry, coverage, fetch kinds, scene reading, held-out splits, augmentations."""

from __future__ import annotations

import hashlib
import importlib
import io
import tarfile
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from rscore.data import sources
from rscore.data.splits import SplitConfig, scene_windows
from training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
CORPUS_CONFIGS = ("dehaze_bgrn", "dehaze_rgb", "clouds_bgrn", "clouds_rgb", "sr_bgrn", "sr_rgb")


# ---- registry and coverage -------------------------------------------------------------------------------
def test_corpus_covers_sensors_biomes_and_is_documented():
    from training.corpus_table import ORIGINAL_SOURCES, main, sensor_family

    new = [(k, sc) for k, s in sources.SOURCES.items() if k not in ORIGINAL_SOURCES for sc in s.scenes]
    assert len(new) >= 15
    families = {sensor_family(sources.SOURCES[k].sensor) for k, _ in new}
    assert len(families) >= 6, families
    biomes = Counter(b for s in sources.SOURCES.values() for sc in s.scenes for b in sc.biomes)
    assert set(sources.BIOMES) <= set(biomes), biomes
    for spec in sources.SOURCES.values():
        for sc in spec.scenes:
            assert set(sc.biomes) <= set(sources.BIOMES), sc.name
            assert sc.holdout in ("blocks", "val", "test")
            if spec.radiometry == "dn_gain":
                assert sc.gain is not None and len(sc.gain) == len(sc.bands) and all(0 < g < 1 for g in sc.gain)
            if spec.use == "evaluation_only":
                assert sc.holdout == "test", sc.name  # never part of a training split
    assert main(["--check"]) == 0  # docs/data.md holds the generated corpus table


@pytest.mark.parametrize("config", CORPUS_CONFIGS)
def test_training_configs_use_only_trainable_sources_and_hold_out_scenes(config):
    from training.corpus_table import sensor_family

    data = TrainConfig.load(ROOT / "training" / "configs" / f"{config}.yaml").data
    srcs = [sources.SOURCES[s] for s in data["sources"]]
    assert all(s.use == "split" for s in srcs)
    test_families = {sensor_family(s.sensor) for s in srcs for sc in s.scenes if sc.holdout == "test"}
    train_families = {sensor_family(s.sensor) for s in srcs for sc in s.scenes if sc.holdout == "blocks"}
    assert len(test_families) >= 4, test_families
    assert any(sc.holdout == "val" for s in srcs for sc in s.scenes)
    assert len(train_families) >= 4


def test_evaluation_only_sources_are_refused_for_training():
    from training.tasks.imagery import load_pool

    with pytest.raises(ValueError, match="evaluation-only"):
        load_pool({"sources": ["l8_cloudy"]}, ("blue", "green", "red", "nir"))


# ---- fetch kinds --------------------------------------------------------------------------------------
def _tar_bytes(files: dict[str, bytes], mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, payload in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def _deb(files: dict[str, bytes]) -> bytes:
    """A minimal Debian binary package: ar archive of debian-binary, control.tar.xz, data.tar.xz."""
    def member(name: str, body: bytes) -> bytes:
        head = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(body):<10}`\n".encode()
        return head + body + (b"\n" if len(body) % 2 else b"")

    data = _tar_bytes({f"./{k}": v for k, v in files.items()}, "w:xz")
    return b"!<arch>\n" + member("debian-binary", b"2.0\n") + member("control.tar.xz", _tar_bytes({}, "w:xz")) + \
        member("data.tar.xz", data)


def _register(monkeypatch, key: str, kind: str, filename: str, payload: bytes, members: tuple[str, ...],
              cache: Path) -> None:
    (cache / "archives").mkdir(parents=True, exist_ok=True)
    (cache / "archives" / filename).write_bytes(payload)
    arch = sources.PackageArchive(key, "1.0", kind, filename, hashlib.sha256(payload).hexdigest(), "MIT")
    monkeypatch.setitem(sources.ARCHIVES, key, arch)
    scene = sources.SceneSpec("s", tuple(sources.BandFile("red", m, 1, 665.0) for m in members), 1.0)
    monkeypatch.setitem(sources.SOURCES, key + "_src",
                        sources.SourceSpec(key + "_src", key, tuple({m.split("!")[0] for m in members}), (scene,),
                                           "test", "rgb8", None))


def test_fetch_nested_members_and_debian_packages(tmp_path, monkeypatch):
    fetch = importlib.import_module("rscore.data.fetch")
    cache = tmp_path / "cache"
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as zf:
        zf.writestr("SAFE/IMG/B02.jp2", b"blue")
        zf.writestr("SAFE/IMG/B09.jp2", b"not wanted")
    inner_tar = _tar_bytes({"Example/p/p_B04.tif": b"red"}, "w:bz2")
    sdist = _tar_bytes({"pkg-1.0/data/product.zip": zbuf.getvalue(), "pkg-1.0/data/ex.tar.bz2": inner_tar,
                        "pkg-1.0/setup.py": b"code"})
    _register(monkeypatch, "nested", "sdist", "pkg-1.0.tar.gz", sdist,
              ("pkg-1.0/data/product.zip!SAFE/IMG/B02.jp2", "pkg-1.0/data/ex.tar.bz2!Example/p/p_B04.tif"), cache)
    _register(monkeypatch, "debpkg", "deb", "pkg_1.0_all.deb", _deb({"usr/share/pkg/L7.tif": b"etm"}),
              ("usr/share/pkg/L7.tif",), cache)
    monkeypatch.setattr(fetch, "_download", lambda *a: pytest.fail("cached archives must not be downloaded"))
    out = fetch.fetch_archives(["nested", "debpkg"], cache)
    assert fetch.member_path("nested", "pkg-1.0/data/product.zip!SAFE/IMG/B02.jp2", cache).read_bytes() == b"blue"
    assert fetch.member_path("nested", "pkg-1.0/data/ex.tar.bz2!Example/p/p_B04.tif", cache).read_bytes() == b"red"
    assert not (out["nested"] / "pkg-1.0/data/product.zip.content/SAFE/IMG/B09.jp2").exists()
    assert (out["debpkg"] / "usr/share/pkg/L7.tif").read_bytes() == b"etm"


def test_fetch_commands_pin_versions_and_use_a_private_apt_configuration(tmp_path, monkeypatch):
    fetch = importlib.import_module("rscore.data.fetch")
    calls: list[tuple[list[str], Path | None]] = []
    monkeypatch.setattr(fetch, "_run", lambda cmd, what, cwd=None: calls.append((cmd, cwd)))
    src = sources.PackageArchive("otb", "8.1.1+dfsg-1", "deb-source", "otb.orig.tar.xz", "0" * 64, "Apache-2.0")
    fetch._download(src, tmp_path, Path("rel-cache"))
    update, get = calls[0][0], calls[1][0]
    assert "update" in update and get[-3:] == ["source", "--download-only", "otb=8.1.1+dfsg-1"]
    opts = " ".join(get)
    assert "Dir::Etc::SourceParts=/dev/null" in opts and "/etc/apt" not in opts
    assert f"Dir::Etc::SourceList={(Path('rel-cache') / 'apt').resolve()}" in opts  # absolute: apt runs in cwd
    lines = (Path("rel-cache") / "apt" / "etc" / "sources.list").read_text().splitlines()
    assert lines == [f"deb {fetch.DEBIAN_MIRROR} bookworm main", f"deb-src {fetch.DEBIAN_MIRROR} bookworm main"]
    assert calls[1][1] == tmp_path

    got: list[str] = []

    class _Resp(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    def urlopen(url, timeout):
        got.append(url)
        return _Resp(b"tgz")

    monkeypatch.setattr(fetch.urllib.request, "urlopen", urlopen)
    npm = sources.PackageArchive("three-globe", "2.45.2", "npm", "three-globe-2.45.2.tgz", "0" * 64, "MIT")
    fetch._download(npm, tmp_path, tmp_path)
    assert got == ["https://registry.npmjs.org/three-globe/-/three-globe-2.45.2.tgz"]
    assert (tmp_path / "three-globe-2.45.2.tgz").read_bytes() == b"tgz"


@pytest.fixture()
def _cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


test_fetch_commands_pin_versions_and_use_a_private_apt_configuration = pytest.mark.usefixtures("_cwd")(
    test_fetch_commands_pin_versions_and_use_a_private_apt_configuration)


# ---- scene reading ------------------------------------------------------------------------------------
def test_scene_reader_npz_gain_window_and_nodata(tmp_path, monkeypatch):
    from rscore.data.scenes import dn_to_value, load_source

    cache = tmp_path / "cache"
    arr = np.arange(2 * 6 * 5 * 3, dtype=np.float32).reshape(2, 6, 5, 3)[:1]
    buf = io.BytesIO()
    np.savez(buf, im=arr)
    _register(monkeypatch, "npzpkg", "sdist", "n-1.0.tar.gz", _tar_bytes({"n-1.0/a.npz": buf.getvalue()}),
              ("n-1.0/a.npz",), cache)
    bands = (sources.BandFile("red", "n-1.0/a.npz", 3, 665.0, "im"), sources.BandFile("nir", "n-1.0/a.npz", 1,
                                                                                       842.0, "im"))
    scene = sources.SceneSpec("s", bands, None, "test", ("urban",), gain=(0.5, 2.0), window=(1, 4, 0, 5))
    monkeypatch.setitem(sources.SOURCES, "npzpkg_src",
                        sources.SourceSpec("npzpkg_src", "npzpkg", ("n-1.0/a.npz",), (scene,), "toy", "dn_gain",
                                           18))
    importlib.import_module("rscore.data.fetch").fetch_archives(["npzpkg"], cache)
    sc = load_source("npzpkg_src", cache)[0]
    assert sc.pixels.shape == (2, 3, 5) and sc.holdout == "test" and sc.biomes == ("urban",)
    assert np.array_equal(sc.pixels[0], arr[0, 1:4, :, 2] * 0.5) and np.array_equal(sc.pixels[1], arr[0, 1:4, :, 0] * 2)
    assert not sc.valid_mask[0, 1]  # DN 18 = nodata: file row 1 (window row 0), col 1, in the "nir" band
    assert sc.valid_mask.sum() == 14
    assert dn_to_value(np.array([1000]), "reflectance_1e3")[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="one gain per band"):
        dn_to_value(np.ones((2, 2, 2)), "dn_gain", (1.0,))


def test_scene_reader_netcdf_cube_dates_and_grid_from_xy_variables(tmp_path, monkeypatch):
    """A date of a netCDF cube (time, y, x) whose x/y variables lack CF attributes: the band is the date's plane and
    the geotransform comes from the x/y pixel centres (the nrt cube's layout)."""
    from osgeo import gdal, osr

    from rscore.data.scenes import load_source

    gdal.UseExceptions()
    nc = tmp_path / "c.nc"
    ds = gdal.GetDriverByName("netCDF").CreateMultiDimensional(str(nc))
    root = ds.GetRootGroup()
    dims = [root.CreateDimension(n, None, None, k) for n, k in (("time", 3), ("y", 4), ("x", 5))]
    # every variable is defined before any is written (netCDF's define mode)
    xa, ya = (root.CreateMDArray(n, [d], gdal.ExtendedDataType.Create(gdal.GDT_Float64))
              for n, d in (("x", dims[2]), ("y", dims[1])))
    var = root.CreateMDArray("B2", dims, gdal.ExtendedDataType.Create(gdal.GDT_UInt16))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(3035)
    var.SetSpatialRef(srs)
    xa.Write(500005.0 + 10.0 * np.arange(5))
    ya.Write(4000035.0 - 10.0 * np.arange(4))  # north first, as the nrt cube
    cube = np.arange(3 * 4 * 5, dtype=np.uint16).reshape(3, 4, 5) + 1
    var.Write(cube)
    del xa, ya, var, dims, root, ds  # closes the file
    cache = tmp_path / "cache"
    _register(monkeypatch, "ncpkg", "sdist", "c-1.0.tar.gz", _tar_bytes({"c-1.0/c.nc": nc.read_bytes()}),
              ("c-1.0/c.nc",), cache)
    scene = sources.SceneSpec("d2", (sources.BandFile("blue", "c-1.0/c.nc", 2, 490.0, "B2"),), 10.0)
    monkeypatch.setitem(sources.SOURCES, "ncpkg_src",
                        sources.SourceSpec("ncpkg_src", "ncpkg", ("c-1.0/c.nc",), (scene,), "toy", "reflectance_1e4",
                                           0))
    importlib.import_module("rscore.data.fetch").fetch_archives(["ncpkg"], cache)
    sc = load_source("ncpkg_src", cache)[0]
    assert np.allclose(sc.pixels[0], cube[1] * 1e-4)
    assert sc.geotransform == pytest.approx((500000.0, 10.0, 0.0, 4000040.0, 0.0, -10.0))
    assert "3035" in sc.crs_wkt or "LAEA" in sc.crs_wkt


def test_nrt_cube_dates_are_distinct_cloud_free_acquisitions_of_one_grid():
    """The registry's nrt dates: ten distinct time indices and dates, one place, Sentinel-2 bands B2/B3/B4/B8."""
    spec = sources.SOURCES["nrt_romania"]
    indices = {b.band_index for sc in spec.scenes for b in sc.bands}
    assert len(spec.scenes) == len(indices) == len({sc.date for sc in spec.scenes}) == 10
    assert {sc.place for sc in spec.scenes} == {"forest, Romania (nrt test cube)"}
    assert all(tuple(b.array for b in sc.bands) == ("B2", "B3", "B4", "B8") for sc in spec.scenes)


# ---- splits and pools -----------------------------------------------------------------------------------
def test_held_out_scenes_are_whole_windows_of_their_split_only():
    shape = (300, 400)
    assert scene_windows(shape, "test", SplitConfig(), "test")[0].shape == shape
    assert scene_windows(shape, "train", SplitConfig(), "test") == []
    assert scene_windows(shape, "val", SplitConfig(), "test") == []
    # a scene smaller than one block is one train window, with no guard at its border
    (w,) = scene_windows((120, 120), "train", SplitConfig(), "blocks")
    assert w.shape == (120, 120)
    with pytest.raises(ValueError, match="holdout"):
        scene_windows(shape, "test", SplitConfig(), "all")  # type: ignore[arg-type]


def test_pool_trains_only_on_blocks_scenes_and_renders_8bit_per_patch():
    from training.tasks.imagery import Pool

    arrays = tuple(np.full((3, 200, 200), v, np.float32) for v in (0.1, 0.2, 0.3))
    valid = tuple(np.ones((200, 200), bool) for _ in arrays)
    pool = Pool(arrays, valid, ("a", "b", "c"), np.full(3, 1 / 3), ("red", "green", "blue"), (665.0, 560.0, 490.0),
                SplitConfig(), ("blocks", "val", "test"), (False, False, True))
    rng = np.random.default_rng(0)
    assert np.allclose(pool.patches("train", 64, 20, rng), np.float32(0.1))
    assert np.allclose(pool.patches("val", 64, 20, rng), np.float32(0.2))
    test = pool.patches("test", 64, 20, rng)  # the reflectance scene 0.3 shown as 8-bit: white point 0.2-0.5
    assert test.min() >= 0.3 / 0.5 - 1e-6 and test.max() <= 1.0 and len(np.unique(test[:, 0, 0, 0])) > 1
    assert pool.scenes_for("test", 64) == [2] and pool.scenes_for("test", 256) == []


# ---- augmentations ------------------------------------------------------------------------------------
def test_augmentations_make_bright_ground_and_stay_in_range():
    from training.tasks.augment import (
        SURFACES,
        AugmentConfig,
        add_roofs,
        augment_clean,
        flatten_spectrum,
        paint_surface,
    )

    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:64, 0:64]
    img = np.stack([0.03 + 0.02 * np.sin(xx / 5), 0.06 + 0.02 * np.sin(yy / 7), 0.04 + 0 * xx, 0.3 + 0 * xx])
    img = img.astype(np.float32)
    bands = ("blue", "green", "red", "nir")
    sand = paint_surface(img, bands, np.random.default_rng(1), "sand")
    assert sand.shape == img.shape and sand.mean() > img[:3].mean() + 0.05
    snowy = paint_surface(img, bands, np.random.default_rng(2), "snow")
    assert snowy[0].max() >= SURFACES["snow"]["blue"][0] * 0.7
    roofs = add_roofs(img, np.random.default_rng(3), AugmentConfig())
    assert (roofs.max(axis=0) >= 0.3).mean() > 0.001 and roofs.min() >= 0
    outs = [augment_clean(img, bands, rng, top=1.0) for _ in range(30)]
    assert all(o.dtype == np.float32 and o.min() >= 0 and o.max() <= 1 for o in outs)
    assert len({round(float(o.mean()), 4) for o in outs}) > 20  # varied albedo
    again = [augment_clean(img, bands, np.random.default_rng(9)) for _ in range(2)]
    assert np.array_equal(again[0], again[1])  # deterministic for a seed
    flat = flatten_spectrum(img, np.random.default_rng(4))
    assert np.allclose(flat.mean(axis=0), img.mean(axis=0), atol=1e-6)
    assert flat.std(axis=0).mean() < img.std(axis=0).mean()


def test_augment_surfaces_are_pinned_and_validated():
    """A config can pin the surfaces a bundle was trained with; unknown names fail loudly."""
    import pytest

    from training.tasks.augment import AugmentConfig, paint_surface

    img = np.full((4, 32, 32), 0.05, np.float32)
    bands = ("blue", "green", "red", "nir")
    only_snow = [paint_surface(img, bands, np.random.default_rng(s), choices=("snow",)) for s in range(5)]
    assert all(o[0].max() > 0.5 for o in only_snow)  # every draw is snow (blue >= 0.75 where painted)
    with pytest.raises(ValueError, match="augment.surfaces"):
        AugmentConfig(surfaces=("lava",))
    with pytest.raises(ValueError, match="augment.surfaces"):
        AugmentConfig(surfaces=())


def test_cloud_shapes_from_a_palette_alpha(tmp_path, monkeypatch):
    from osgeo import gdal

    from rscore.data.shapes import load_cloud_opacity
    from training.tasks.clouds import CloudShapes

    cache = tmp_path / "cache"
    (cache / "three-globe" / "package/example/clouds").mkdir(parents=True)
    (cache / "three-globe" / ".complete").write_text("x\n")
    path = cache / "three-globe" / "package/example/clouds/clouds.png"
    mem = gdal.GetDriverByName("MEM").Create("", 60, 30, 1, gdal.GDT_Byte)
    table = gdal.ColorTable()
    for i in range(256):
        table.SetColorEntry(i, (255, 255, 255, 255 - i))
    mem.GetRasterBand(1).SetColorTable(table)
    mem.GetRasterBand(1).WriteArray(np.tile(np.arange(60, dtype=np.uint8) * 4, (30, 1)))
    gdal.GetDriverByName("PNG").CreateCopy(str(path), mem)
    op = load_cloud_opacity("three_globe", cache)
    assert op.shape == (20, 60)  # rows beyond 60 degrees of latitude dropped
    assert op[0, 0] == pytest.approx(1.0) and op[0, 10] == pytest.approx((255 - 40) / 255)
    field = CloudShapes(op).draw((16, 16), np.random.default_rng(0))
    assert field.shape == (16, 16) and field.max() == pytest.approx(1.0) and field.min() >= 0
