"""The tiled engine end to end through the public ``restore`` API (onnxruntime, GDAL, no QGIS)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from rscore.bundle import BundleError, load_bundle
from rscore.diffusion.loop import Cancelled
from rscore.raster import RasterError
from rscore.runtime import RequestError, RestoreRequest, restore
from rscore.tiling import OutputGrid, Window, resample_window
from tests.fixtures import rasters


def read(path: Path) -> np.ndarray:
    return gdal.Open(str(path)).ReadAsArray()


def run(inp: Path, bundle: Path, out: Path, **kw) -> object:
    return restore(RestoreRequest(str(inp), str(bundle), str(out), **kw))


# ---- identity, dtypes, georeferencing ------------------------------------------------------------------
@pytest.mark.parametrize(
    "data_type, values",
    [
        ("UInt16", lambda s: np.round(s * 1e4)),
        ("Byte", lambda s: np.round(s * 500)),
        ("Int16", lambda s: np.round((s - 0.2) * 1e4)),  # negative values too
        ("Float32", lambda s: s.astype(np.float32)),
    ],
)
@pytest.mark.parametrize("tile, overlap", [(64, 16), (50, 7), (256, 32)])
def test_identity_reproduces_input_exactly(tmp_path, bundles, data_type, values, tile, overlap):
    data = values(rasters.scene(4, 131, 157, seed=2))
    inp = rasters.write(tmp_path / "in.tif", data, data_type)
    out = tmp_path / "out.tif"
    run(inp, bundles["identity"], out, tile_size_px=tile, overlap_px=overlap)
    src, dst = gdal.Open(str(inp)), gdal.Open(str(out))
    np.testing.assert_array_equal(dst.ReadAsArray(), src.ReadAsArray())
    assert dst.GetRasterBand(1).DataType == src.GetRasterBand(1).DataType
    assert dst.GetGeoTransform() == src.GetGeoTransform()
    assert dst.GetProjection() == src.GetProjection() and dst.RasterCount == 4
    assert [dst.GetRasterBand(i).GetDescription() for i in (1, 4)] == ["blue", "nir"]


def test_band_selection_reorders(tmp_path, bundles):
    data = np.round(rasters.scene(6, 40, 50) * 1e4)
    inp = rasters.write(tmp_path / "six.tif", data)
    run(inp, bundles["identity"], tmp_path / "o.tif", bands=[6, 2, 3, 1])
    np.testing.assert_array_equal(read(tmp_path / "o.tif"), data[[5, 1, 2, 0]])


# ---- stochastic samplers: tile-size invariance, seeds ---------------------------------------------------
@pytest.mark.parametrize("name", ["toy-rddm", "toy-ddim"])
def test_stochastic_result_independent_of_tiling(tmp_path, bundles, bgrn_tif, name):
    outs = []
    for i, (tile, overlap) in enumerate([(64, 16), (37, 5), (100, 0), (512, 32)]):
        out = tmp_path / f"o{i}.tif"
        run(bgrn_tif, bundles[name], out, tile_size_px=tile, overlap_px=overlap, seed=5)
        outs.append(read(out))
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])
    other = tmp_path / "seed6.tif"
    run(bgrn_tif, bundles[name], other, tile_size_px=64, overlap_px=16, seed=6)
    assert np.abs(read(other).astype(int) - outs[0]).mean() > 10  # the seed matters


def test_spatial_network_tiling_invariance_within_margin(tmp_path, bundles, bgrn_tif):
    """A network whose receptive field fits the margin gives identical results for every tiling."""
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    run(bgrn_tif, bundles["blur-rddm"], a, tile_size_px=48, overlap_px=8)
    run(bgrn_tif, bundles["blur-rddm"], b, tile_size_px=300, overlap_px=8)
    np.testing.assert_array_equal(read(a), read(b))
    assert np.abs(read(a).astype(int) - read(bgrn_tif)).mean() > 5  # and it did smooth


def test_strided_network_aligned_to_global_grid(tmp_path, bundles, bgrn_tif):
    """Tiles are snapped to the network's size multiple in global coordinates, so a network with a pooling
    grid gives the same raster for tilings whose tiles start at arbitrary offsets."""
    outs = []
    for i, (tile, overlap) in enumerate([(37, 5), (64, 16), (101, 11), (400, 0)]):
        out = tmp_path / f"s{i}.tif"
        run(bgrn_tif, bundles["strided"], out, tile_size_px=tile, overlap_px=overlap)
        outs.append(read(out))
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])


def test_progress_counts_tiles_times_steps(tmp_path, bundles, bgrn_tif):
    seen: list[float] = []

    class Fb:
        def set_progress(self, f):
            seen.append(f)

        def is_canceled(self):
            return False

        def info(self, m):
            seen.append(-1.0)

    rep = restore(RestoreRequest(str(bgrn_tif), str(bundles["toy-rddm"]), str(tmp_path / "o.tif"),
                                 tile_size_px=64, overlap_px=16, steps=3), Fb())
    prog = [s for s in seen if s >= 0]
    assert rep.tiles_total == 12 and rep.network_evals == 12 * 3 and rep.steps == 3
    assert prog == sorted(prog) and prog[-1] == pytest.approx(1.0) and len(prog) == 36
    assert seen[0] == -1.0  # the one-line summary comes first


# ---- nodata ---------------------------------------------------------------------------------------------
def _with_holes(tmp_path: Path, nodata: float, name: str) -> tuple[Path, np.ndarray]:
    data = np.round(rasters.scene(4, 150, 170, seed=4) * 1e4)
    hole = np.zeros((150, 170), bool)
    hole[:, 100:] = True  # whole tiles of nodata on the right
    hole[20:30, 10:40] = True
    hole[70, 50] = True
    data[:, hole] = nodata
    return rasters.write(tmp_path / name, data, "UInt16", nodata), hole


def test_nodata_stays_nodata_and_never_leaks(tmp_path, bundles):
    a_in, hole = _with_holes(tmp_path, 0, "a.tif")
    b_in, _ = _with_holes(tmp_path, 65535, "b.tif")
    a_out, b_out = tmp_path / "a_out.tif", tmp_path / "b_out.tif"
    rep = run(a_in, bundles["blur-rddm"], a_out, tile_size_px=48, overlap_px=8)
    run(b_in, bundles["blur-rddm"], b_out, tile_size_px=48, overlap_px=8)
    a, b = read(a_out), read(b_out)
    assert (a[:, hole] == 0).all() and (b[:, hole] == 65535).all()
    assert (a[:, ~hole] != 0).all()
    # the raw nodata value (0 vs 65535) has no influence on any valid pixel
    np.testing.assert_array_equal(a[:, ~hole], b[:, ~hole])
    a_ds = gdal.Open(str(a_out))
    assert a_ds.GetRasterBand(1).GetNoDataValue() == 0
    assert rep.tiles_skipped > 0 and rep.network_evals == (rep.tiles_total - rep.tiles_skipped) * 5


def test_nan_pixels_without_nodata_value_stay_nan(tmp_path, bundles):
    data = rasters.scene(4, 60, 60).astype(np.float32)
    data[:, 5:9, 5:9] = np.nan
    inp = rasters.write(tmp_path / "f.tif", data, "Float32")
    run(inp, bundles["identity"], tmp_path / "o.tif")
    out = read(tmp_path / "o.tif")
    assert np.isnan(out[:, 5:9, 5:9]).all()
    np.testing.assert_array_equal(out[:, 20:, 20:], data[:, 20:, 20:])


def test_valid_pixel_never_written_as_nodata(tmp_path, bundles):
    data = np.full((4, 20, 20), 5000.0)
    data[:, :, :3] = 0  # nodata
    inp = rasters.write(tmp_path / "i.tif", data, "UInt16", nodata=0)
    # a model that maps valid pixels to 0 exactly: output reflectance 0 would read back as nodata
    out = tmp_path / "o.tif"
    bundle = tmp_path / "zero"
    shutil.copytree(bundles["identity"], bundle)
    m = json.loads((bundle / "manifest.json").read_text())
    m["output"]["mean"] = [-0.5] * 4  # x_out = y * 1 + (-0.5): reflectance 0.5 - 0.5 = 0
    (bundle / "manifest.json").write_text(json.dumps(m))
    run(inp, bundle, out)
    o = read(out)
    assert (o[:, :, :3] == 0).all() and (o[:, :, 3:] == 1).all()


def test_all_nodata_input_is_refused_without_output(tmp_path, bundles):
    inp = rasters.write(tmp_path / "empty.tif", np.zeros((4, 30, 30)), "UInt16", nodata=0)
    out = tmp_path / "o.tif"
    with pytest.raises(RasterError, match="every pixel .* is nodata"):
        run(inp, bundles["identity"], out)
    assert list(tmp_path.iterdir()) == [inp]


# ---- scale factors ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [2.0, 2.5, 3.7])
def test_super_resolution_grid_georef_and_values(tmp_path, bundles, bgrn_tif, scale):
    out = tmp_path / "sr.tif"
    run(bgrn_tif, bundles["identity-sr"], out, scale_factor=scale, tile_size_px=64, overlap_px=16)
    ds = gdal.Open(str(out))
    g = OutputGrid(150, 170, scale)
    assert (ds.RasterYSize, ds.RasterXSize) == (g.rows, g.cols)
    np.testing.assert_allclose(ds.GetGeoTransform(), g.geotransform(rasters.GEOTRANSFORM))
    src = read(bgrn_tif).astype(np.float32) * 1e-4
    ref = resample_window(src, Window(0, 0, 150, 170), 150, 170, scale, Window(0, 0, g.rows, g.cols), "bicubic")
    ref = np.clip(np.rint(ref / 1e-4), 0, 65535)
    assert np.abs(ds.ReadAsArray().astype(np.int64) - ref).max() <= 1
    other = tmp_path / "sr2.tif"
    run(bgrn_tif, bundles["identity-sr"], other, scale_factor=scale, tile_size_px=200, overlap_px=3)
    np.testing.assert_array_equal(read(other), ds.ReadAsArray())


def test_scale_outside_model_range_refused(tmp_path, bundles, bgrn_tif):
    with pytest.raises(RequestError, match="supports scale factors 1.0..8.0"):
        run(bgrn_tif, bundles["identity-sr"], tmp_path / "o.tif", scale_factor=9.0)
    with pytest.raises(RequestError, match="supports scale factors 1.0..1.0"):
        run(bgrn_tif, bundles["identity"], tmp_path / "o.tif", scale_factor=2.0)


# ---- auxiliary co-registered input -----------------------------------------------------------------------
def test_auxiliary_input_is_warped_onto_the_grid(tmp_path, bundles, bgrn_tif):
    # a reference at 20 m covering a shifted area, in the same CRS
    ref = np.round(rasters.scene(4, 90, 100, seed=9) * 1e4)
    gt = (rasters.GEOTRANSFORM[0] - 200.0, 20.0, 0.0, rasters.GEOTRANSFORM[3] + 100.0, 0.0, -20.0)
    aux = rasters.write(tmp_path / "ref.tif", ref, "UInt16", geotransform=gt)
    out = tmp_path / "o.tif"
    run(bgrn_tif, bundles["aux-copy"], out, aux_path=str(aux), tile_size_px=64, overlap_px=16)
    warped = gdal.Warp("/vsimem/w.tif", str(aux), outputBounds=(500000, 4598500, 501700, 4600000), width=170,
                       height=150, resampleAlg="bilinear")
    np.testing.assert_allclose(read(out).astype(int), warped.ReadAsArray().astype(int), atol=1)
    with pytest.raises(RequestError, match="needs an auxiliary"):
        run(bgrn_tif, bundles["aux-copy"], tmp_path / "x.tif")


# ---- extra outputs and uncertainty ------------------------------------------------------------------------
def test_samples_give_mean_and_uncertainty(tmp_path, bundles, bgrn_tif):
    out, unc = tmp_path / "mean.tif", tmp_path / "std.tif"
    rep = run(bgrn_tif, bundles["toy-rddm"], out, samples=3, uncertainty_path=str(unc), tile_size_px=64,
              overlap_px=16, seed=1)
    assert set(rep.outputs) == {"image", "uncertainty"}
    u = gdal.Open(str(unc))
    assert u.GetRasterBand(1).DataType == gdal.GDT_Float32 and u.RasterCount == 4
    assert u.GetGeoTransform() == gdal.Open(str(bgrn_tif)).GetGeoTransform()
    std = u.ReadAsArray()
    assert std.min() >= 0 and std.mean() > 1e-3
    # mean of 3 samples is smoother than a single sample: closer to the 3-sample mean of other seeds
    single = tmp_path / "one.tif"
    run(bgrn_tif, bundles["toy-rddm"], single, seed=1, tile_size_px=64, overlap_px=16)
    assert not np.array_equal(read(single), read(out))


def test_extra_output_band(tmp_path, bundles, bgrn_tif):
    out, sp = tmp_path / "o.tif", tmp_path / "spread.tif"
    run(bgrn_tif, bundles["spread"], out, extra_outputs={"spread": str(sp)})
    src = read(bgrn_tif).astype(np.float64) * 1e-4
    np.testing.assert_allclose(read(sp), src.std(axis=0), atol=1e-5)
    with pytest.raises(ValueError, match="no extra output 'nope'"):
        run(bgrn_tif, bundles["spread"], tmp_path / "p.tif", extra_outputs={"nope": str(tmp_path / "n.tif")})


# ---- cancel and atomic output ----------------------------------------------------------------------------
class CancelAfter:
    def __init__(self, n: int) -> None:
        self.n = n
        self.calls = 0

    def set_progress(self, f: float) -> None:
        self.calls += 1

    def is_canceled(self) -> bool:
        return self.calls >= self.n

    def info(self, m: str) -> None:
        pass


def test_cancel_leaves_no_output_and_keeps_old_file(tmp_path, bundles, bgrn_tif):
    out = tmp_path / "o.tif"
    out.write_bytes(b"previous result")
    with pytest.raises(Cancelled):
        restore(RestoreRequest(str(bgrn_tif), str(bundles["toy-rddm"]), str(out), tile_size_px=64,
                               overlap_px=16, samples=2, uncertainty_path=str(tmp_path / "u.tif")), CancelAfter(7))
    assert out.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.tif"]


def test_cancel_fresh_output_leaves_nothing(tmp_path, bundles, bgrn_tif):
    with pytest.raises(Cancelled):
        restore(RestoreRequest(str(bgrn_tif), str(bundles["toy-rddm"]), str(tmp_path / "o.tif")), CancelAfter(1))
    assert list(tmp_path.iterdir()) == []


# ---- bad bundles -----------------------------------------------------------------------------------------
def _copy(bundles, tmp_path, name="identity") -> Path:
    dst = tmp_path / "bundle"
    shutil.copytree(bundles[name], dst)
    return dst


def test_corrupt_onnx_fails_checksum(tmp_path, bundles, bgrn_tif):
    b = _copy(bundles, tmp_path)
    with open(b / "net.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(BundleError, match="fails its checksum"):
        run(bgrn_tif, b, tmp_path / "o.tif")
    assert not (tmp_path / "o.tif").exists()


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda b: (b / "manifest.json").unlink(), "has no manifest.json"),
        (lambda b: (b / "net.onnx").unlink(), "file 'net.onnx' is missing"),
        (lambda b: (b / "manifest.json").write_text("{not json"), "cannot read"),
        (lambda b: _edit(b, schema_version=99), "schema version 99 is not supported"),
        (lambda b: _edit(b, pipeline="magic"), "unknown pipeline 'magic'"),
        (lambda b: _edit(b, input=None), "malformed bundle manifest"),
    ],
)
def test_bad_bundles_refused(tmp_path, bundles, mutate, message):
    b = _copy(bundles, tmp_path)
    mutate(b)
    with pytest.raises(BundleError, match=message):
        load_bundle(b)


def _edit(b: Path, **changes) -> None:
    m = json.loads((b / "manifest.json").read_text())
    m.update(changes)
    (b / "manifest.json").write_text(json.dumps(m))


def test_missing_bundle_dir(tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        load_bundle(tmp_path / "nope")


# ---- bad inputs ------------------------------------------------------------------------------------------
def test_wrong_band_count_names_the_problem(tmp_path, bundles):
    two = rasters.write(tmp_path / "two.tif", np.round(rasters.scene(2, 30, 30) * 1e4))
    with pytest.raises(RequestError, match=r"needs 4 band\(s\) in the order blue, green, red, nir, but the raster has 2"):
        run(two, bundles["identity"], tmp_path / "o.tif")
    with pytest.raises(RequestError, match=r"do not exist: the raster has bands 1..2"):
        run(two, bundles["identity"], tmp_path / "o.tif", bands=[1, 2, 3, 4])
    assert not (tmp_path / "o.tif").exists()


def test_missing_crs_refused(tmp_path, bundles):
    inp = rasters.write(tmp_path / "nocrs.tif", np.round(rasters.scene(4, 30, 30) * 1e4), epsg=None)
    with pytest.raises(RasterError, match="no coordinate reference system.*Assign Projection"):
        run(inp, bundles["identity"], tmp_path / "o.tif")


def test_unsupported_type_and_output_format(tmp_path, bundles, bgrn_tif):
    with pytest.raises(RasterError, match="must be a GeoTIFF"):
        run(bgrn_tif, bundles["identity"], tmp_path / "o.img")
    with pytest.raises(RasterError, match="does not exist"):
        run(tmp_path / "missing.tif", bundles["identity"], tmp_path / "o.tif")
    with pytest.raises(RasterError, match="folder .* does not exist"):
        run(bgrn_tif, bundles["identity"], tmp_path / "nodir" / "o.tif")


def test_bad_tiling_parameters(tmp_path, bundles, bgrn_tif):
    with pytest.raises(RequestError, match="overlap must be between 0 and"):
        run(bgrn_tif, bundles["identity"], tmp_path / "o.tif", tile_size_px=32, overlap_px=32)
    with pytest.raises(RequestError, match="steps must be between 1 and 1000"):
        run(bgrn_tif, bundles["toy-rddm"], tmp_path / "o.tif", steps=5000)


# ---- review fixes: paths, radiometric metadata, float nodata, failed writes ------------------------------
def test_output_equal_to_input_refused(tmp_path, bundles):
    inp = rasters.reflectance_uint16(tmp_path / "same.tif", rows=30, cols=30)
    before = inp.read_bytes()
    with pytest.raises(RequestError, match="is also an input"):
        run(inp, bundles["identity"], inp)
    with pytest.raises(RequestError, match="same file"):
        run(inp, bundles["toy-rddm"], tmp_path / "o.tif", uncertainty_path=str(tmp_path / "o.tif"))
    assert inp.read_bytes() == before


def test_band_scale_offset_metadata_used_and_kept(tmp_path, bundles):
    """A raster that declares its scaling (Landsat C2 SR: DN x 2.75e-5 - 0.2) reaches the model in physical
    units through it, and the output carries the same scaling."""
    refl = rasters.scene(4, 40, 50, seed=3)
    dn = np.round((refl + 0.2) / 2.75e-5)
    inp = rasters.write(tmp_path / "c2.tif", dn, "UInt16")
    ds = gdal.Open(str(inp), gdal.GA_Update)
    for b in range(1, 5):
        ds.GetRasterBand(b).SetScale(2.75e-5)
        ds.GetRasterBand(b).SetOffset(-0.2)
    ds = None
    out = tmp_path / "o.tif"
    run(inp, bundles["spread"], out, extra_outputs={"spread": str(tmp_path / "s.tif")})
    np.testing.assert_array_equal(read(out), dn)  # identity through DN -> reflectance -> DN
    # the spread band is computed in physical units (reflectance), not in DN x 1e-4
    np.testing.assert_allclose(read(tmp_path / "s.tif"), (dn * 2.75e-5 - 0.2).std(axis=0), atol=1e-4)
    ds = gdal.Open(str(out))  # keep the dataset alive while its band is used
    o = ds.GetRasterBand(1)
    assert (o.GetScale(), o.GetOffset()) == (2.75e-5, -0.2)


def test_float_output_never_equals_nodata(tmp_path, bundles):
    data = np.full((4, 10, 10), 0.5, np.float32)
    data[:, 0, 0] = -1.0
    inp = rasters.write(tmp_path / "f.tif", data, "Float32", nodata=-1.0)
    bundle = tmp_path / "shift"
    shutil.copytree(bundles["identity"], bundle)
    m = json.loads((bundle / "manifest.json").read_text())
    m["output"]["mean"] = [-1.5] * 4  # valid 0.5 -> -1.0 == nodata
    (bundle / "manifest.json").write_text(json.dumps(m))
    run(inp, bundle, tmp_path / "o.tif")
    ds = gdal.Open(str(tmp_path / "o.tif"))
    o = ds.ReadAsArray()
    assert (o[:, 0, 0] == -1.0).all() and (o[:, 1:, :] != -1.0).all() and np.allclose(o[:, 1:, :], -1.0)


PROBE_DISK_FULL = """
import resource, signal, sys
sys.path.insert(0, {root!r})
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (150_000, 150_000))
from rscore.runtime import RestoreRequest, restore
from rscore.raster import RasterError
try:
    restore(RestoreRequest({inp!r}, {bundle!r}, {out!r}, tile_size_px=256))
except RasterError as exc:
    print("RasterError:", exc)
"""


def test_disk_full_leaves_previous_output(tmp_path, bundles):
    """A write error at flush time (file size limit as a stand-in for a full disk) must not replace the
    previous output with a truncated file."""
    import subprocess
    import sys

    rng = np.random.default_rng(0)
    inp = rasters.write(tmp_path / "noise.tif", rng.integers(0, 60000, (4, 300, 300)), "UInt16")
    out = tmp_path / "o.tif"
    out.write_bytes(b"previous")
    code = PROBE_DISK_FULL.format(root=str(Path(__file__).resolve().parents[1]), inp=str(inp),
                                  bundle=str(bundles["identity"]), out=str(out))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "RasterError:" in r.stdout and "disk full" in r.stdout, r.stdout + r.stderr
    assert out.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["noise.tif", "o.tif"]


def test_writes_run_on_the_writer_thread_and_its_errors_stop_the_run(tmp_path, bundles, monkeypatch):
    """With more than one thread the outputs are converted and written on one background thread, in order
    (the same pixels as inline writes); a write that fails there stops the run with its own error and leaves
    nothing behind, and the writer thread is gone afterwards."""
    import threading

    from rscore.raster import io

    inp = rasters.reflectance_uint16(tmp_path / "in.tif", rows=700, cols=300, seed=3)
    real = io.OutputRaster.write
    seen: list[tuple[str, int]] = []

    def spy(self, win, values):  # noqa: ANN001, ANN202
        seen.append((threading.current_thread().name, win.row_off))
        return real(self, win, values)

    monkeypatch.setattr(io.OutputRaster, "write", spy)
    outs = {}
    for threads in (1, 2):
        seen.clear()
        out = tmp_path / f"t{threads}.tif"
        restore(RestoreRequest(str(inp), str(bundles["identity"]), str(out), tile_size_px=128, threads=threads))
        outs[threads] = gdal.Open(str(out)).ReadAsArray()
        names = {n for n, _ in seen}
        assert names == ({threading.main_thread().name} if threads == 1 else {"rsrestore-writer_0"}), names
        rows = [r for _, r in seen]
        assert rows == sorted(rows) and rows[0] == 0 and len(rows) > 4  # in order, from the top
    assert np.array_equal(outs[1], outs[2])

    calls = []

    def fails(self, win, values):  # noqa: ANN001, ANN202
        calls.append(win.row_off)
        if len(calls) == 3:
            raise RasterError(f"writing {self.final.name} failed at {win}: disk full? (simulated)")
        return real(self, win, values)

    monkeypatch.setattr(io.OutputRaster, "write", fails)
    out = tmp_path / "failed.tif"
    with pytest.raises(RasterError, match="simulated"):
        restore(RestoreRequest(str(inp), str(bundles["identity"]), str(out), tile_size_px=128, threads=2))
    assert len(calls) == 3  # no write after the failed one
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["in.tif", "t1.tif", "t2.tif"]
    assert not any(t.name.startswith("rsrestore-writer") for t in threading.enumerate())
