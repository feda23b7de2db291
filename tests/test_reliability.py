"""Bad input, faults and signals (issue 10; the matrix is docs/reliability.md): no silent data loss, no
corruption, no traceback. Each test names the case it covers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from rscore.bundle import BundleError, load_bundle
from rscore.raster.io import RasterError
from rscore.runtime import RequestError, RestoreRequest, restore
from tests.fixtures import rasters
from tests.fixtures.feedback import Log

ROOT = Path(__file__).resolve().parents[1]


def run(inp: Path, bundle: Path, out: Path, feedback=None, **kw):
    return restore(RestoreRequest(str(inp), str(bundle), str(out), **kw), feedback)


def _copy_bundle(src: Path, dst: Path, edit=None) -> Path:
    shutil.copytree(src, dst)
    if edit is not None:
        path = dst / "manifest.json"
        data = json.loads(path.read_text())
        edit(data)
        path.write_text(json.dumps(data))
    return dst


# ---- 1. OUTPUT is an existing directory --------------------------------------------------------------------
def test_output_directory_is_refused_and_left_alone(tmp_path, bundles, bgrn_tif):
    out = tmp_path / "out.tif"
    out.mkdir()
    (out / "user.txt").write_text("keep me")
    with pytest.raises(RasterError, match="is a folder; rsrestore only replaces files"):
        run(bgrn_tif, bundles["identity"], out)
    assert (out / "user.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tif"]  # no hidden backup or partial


# ---- 2. a VRT input whose source file is the OUTPUT ---------------------------------------------------------
def test_output_that_an_input_vrt_reads_is_refused(tmp_path, bundles, bgrn_tif):
    source = tmp_path / "src.tif"
    shutil.copy(bgrn_tif, source)
    vrt = tmp_path / "in.vrt"
    gdal.Translate(str(vrt), str(source), format="VRT")
    before = source.read_bytes()
    with pytest.raises(RequestError, match="is read by the input"):
        run(vrt, bundles["identity"], source)
    mask = tmp_path / "mask.vrt"
    gdal.Translate(str(mask), str(source), format="VRT", bandList=[1])
    with pytest.raises(RequestError, match="is read by the input"):
        run(bgrn_tif, bundles["toy-de"], source, mask_path=str(mask))
    assert source.read_bytes() == before


# ---- 3. ONNX external data is never loaded ------------------------------------------------------------------
def test_external_weights_are_refused(tmp_path, bgrn_tif):
    import onnx
    import torch

    from export.build_bundles import _manifest
    from export.onnx_export import StageExport, export_stage
    from rscore.bundle.manifest import TilingDefaults
    from rscore.bundle.store import write_bundle

    class Scale(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.full((1, 4, 1, 1), 0.5))

        def forward(self, y: torch.Tensor) -> torch.Tensor:
            return y * self.w

    root = tmp_path / "ext"
    root.mkdir()
    st = StageExport(Scale(), ("y",), ("x",), "net.onnx")
    export_stage(st, {"y": torch.randn(1, 4, 16, 16)}, root / "net.onnx")
    model = onnx.load(str(root / "net.onnx"))
    onnx.save_model(model, str(root / "net.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    assert (root / "weights.bin").is_file()
    m = _manifest("ext", "external data", "direct", {"net": st}, ("blue", "green", "red", "nir"),
                  tiling=TilingDefaults(tile_size_px=64, overlap_px=16, margin_px=0))
    write_bundle(root, m)
    with pytest.raises(BundleError, match="stage 'net'.*external data.*single .onnx"):
        run(bgrn_tif, root, tmp_path / "o.tif")
    (root / "weights.bin").write_bytes(b"\0" * (root / "weights.bin").stat().st_size)  # edited weights
    with pytest.raises(BundleError, match="external data"):
        run(bgrn_tif, root, tmp_path / "o.tif")
    assert not (tmp_path / "o.tif").exists()


def test_session_is_built_from_the_verified_bytes(tmp_path):
    from rscore.runtime.predictor import ModelFileError, read_verified

    f = tmp_path / "a.onnx"
    f.write_bytes(b"abc")
    with pytest.raises(ModelFileError, match="fails its checksum"):
        read_verified(f, "0" * 64)


# ---- 4. a rotated input with a MASK on another grid ---------------------------------------------------------
def test_rotated_grid_with_mask_on_another_grid_is_refused(tmp_path, bundles):
    rot = (500000.0, 10.0, 2.0, 4600000.0, 2.0, -10.0)
    src = rasters.write(tmp_path / "rot.tif", np.round(rasters.scene(4, 60, 70) * 1e4), "UInt16", geotransform=rot)
    mask = rasters.write(tmp_path / "m.tif", np.ones((1, 30, 35), np.uint8), "Byte",
                         geotransform=(500000.0, 20.0, 0.0, 4600000.0, 0.0, -20.0))
    with pytest.raises(RasterError, match="grid is rotated"):
        run(src, bundles["toy-de"], tmp_path / "o.tif", mask_path=str(mask))
    # on the input's own grid the mask needs no warp and is used
    same = rasters.write(tmp_path / "same.tif", np.ones((1, 60, 70), np.uint8), "Byte", geotransform=rot)
    run(src, bundles["toy-de"], tmp_path / "o.tif", mask_path=str(same))
    assert gdal.Open(str(tmp_path / "o.tif")).GetGeoTransform() == rot


# ---- 5. signed 8-bit rasters --------------------------------------------------------------------------------
def test_signed_byte_is_refused_naming_int8(tmp_path, bundles):
    path = tmp_path / "s8.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(path), 40, 30, 4, gdal.GDT_Byte, ["PIXELTYPE=SIGNEDBYTE"])
    ds.SetGeoTransform(rasters.GEOTRANSFORM)
    ds.SetProjection(gdal.Open(str(rasters.write(tmp_path / "ref.tif", np.ones((1, 2, 2)), "Byte"))).GetProjection())
    ds = None
    with pytest.raises(RasterError, match=r"signed 8-bit raster \(Int8.*gdal_translate -ot Int16"):
        run(path, bundles["identity"], tmp_path / "o.tif")


# ---- 6. manifests with non-finite or absurd numbers -----------------------------------------------------------
@pytest.mark.parametrize(("edit", "match"), [
    (lambda d: d["input"].__setitem__("std", [float("nan")] * 4), "band std"),
    (lambda d: d["output"].__setitem__("mean", [1e309] * 4), "band mean"),
    (lambda d: d["tiling"].__setitem__("margin_px", 10**9), "margin_px"),
    (lambda d: d["tiling"].__setitem__("tile_size_px", 10**7), "tile_size_px"),
    (lambda d: d["sampler"].__setitem__("num_timesteps", 10**12), "num_timesteps"),
    (lambda d: d["value_scale"].__setitem__("UInt16", float("inf")), "value_scale"),
])
def test_manifest_numbers_are_bounded(tmp_path, bundles, edit, match):
    bad = _copy_bundle(bundles["toy-de"], tmp_path / "bad", edit)
    with pytest.raises(BundleError, match=match):
        load_bundle(bad)


# ---- 8. SIGTERM cancels like the user would --------------------------------------------------------------------
def test_sigterm_cancels_and_leaves_nothing(tmp_path, bundles):
    src = rasters.write(tmp_path / "big.tif", np.round(rasters.scene(4, 400, 400) * 1e4), "UInt16")
    out = tmp_path / "o.tif"
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from rscore.runtime import RestoreRequest, restore\n"
            "from rscore.diffusion.loop import Cancelled\n"
            "try:\n"
            "    restore(RestoreRequest(%r, %r, %r, steps=200, tile_size_px=64, overlap_px=16, device='cpu'))\n"
            "except Cancelled as exc:\n"
            "    print('CANCELLED', exc); sys.exit(3)\n") % (str(ROOT), str(src), str(bundles["toy-de"]), str(out))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not list(tmp_path.glob(".o.partial-*")):
        time.sleep(0.05)
    assert list(tmp_path.glob(".o.partial-*")), "the run never started writing"
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 3, stdout + stderr
    assert "terminated (SIGTERM)" in stdout
    assert not out.exists() and not list(tmp_path.glob(".o.partial-*"))


# ---- 9. partial files of killed runs are swept ---------------------------------------------------------------
def _dead_pid() -> int:
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid += 1


def test_stale_partials_of_dead_processes_are_removed(tmp_path, bundles, bgrn_tif):
    dead = tmp_path / f".o.partial-{_dead_pid()}-0123abcd.tif"
    live = tmp_path / f".o.partial-{os.getppid()}-4567abcd.tif"  # a running process: kept
    other = tmp_path / f".other.partial-{_dead_pid()}-89abcdef.tif"  # another output's: kept
    for f in (dead, live, other):
        f.write_bytes(b"x")
        os.utime(f, (time.time() - 3600, time.time() - 3600))
    log = Log()
    run(bgrn_tif, bundles["identity"], tmp_path / "o.tif", log)
    assert not dead.exists() and live.exists() and other.exists()
    assert any("removed 1 temporary file(s)" in line and dead.name in line for line in log.lines)


# ---- 11. networks that do not match their manifest ---------------------------------------------------------------
def test_network_outputs_checked_against_the_manifest(tmp_path, bundles, bgrn_tif):
    bad = _copy_bundle(bundles["identity"], tmp_path / "bad",
                       lambda d: d["stages"]["net"].__setitem__("outputs", ["x", "image"]))
    with pytest.raises(BundleError, match="network of stage 'net'.*does not match its manifest"):
        run(bgrn_tif, bad, tmp_path / "o.tif")
    # an output the pipeline cannot use is refused by the manifest itself, before any network is loaded
    wrong = _copy_bundle(bundles["identity"], tmp_path / "wrong",
                         lambda d: d["stages"]["net"].__setitem__("outputs", ["image"]))
    with pytest.raises(BundleError, match=r"pipeline 'direct' needs stage 'net' to output x, got \['image'\]"):
        run(bgrn_tif, wrong, tmp_path / "o.tif")


# ---- 12. a corrupt network with a valid checksum ---------------------------------------------------------------------
def test_corrupt_network_is_a_bundle_error(tmp_path, bundles, bgrn_tif):
    from rscore.bundle.store import sha256_file

    bad = _copy_bundle(bundles["identity"], tmp_path / "bad")
    (bad / "net.onnx").write_bytes(b"not a network")
    data = json.loads((bad / "manifest.json").read_text())
    data["stages"]["net"]["sha256"] = sha256_file(bad / "net.onnx")  # a consistent but broken bundle
    (bad / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match="stage 'net': onnxruntime cannot load net.onnx"):
        run(bgrn_tif, bad, tmp_path / "o.tif")


# ---- 13. damaged or truncated rasters -----------------------------------------------------------------------------
def test_truncated_geotiff_names_the_file_and_window(tmp_path, bundles):
    path = tmp_path / "cut.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(path), 256, 256, 4, gdal.GDT_UInt16)
    ds.SetGeoTransform(rasters.GEOTRANSFORM)
    ds.SetProjection(gdal.Open(str(rasters.write(tmp_path / "ref.tif", np.ones((1, 2, 2)), "Byte"))).GetProjection())
    for b in range(4):
        ds.GetRasterBand(b + 1).WriteArray(np.full((256, 256), 1000 + b, np.uint16))
    ds = None
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)
    with pytest.raises(RasterError, match=r"cut.tif is damaged or incomplete: reading rows \d+-\d+, columns"):
        run(path, bundles["identity"], tmp_path / "o.tif")
    assert not (tmp_path / "o.tif").exists()


# ---- 15. size limit and time estimate --------------------------------------------------------------------------------
def test_size_limit_and_time_estimate(tmp_path, bundles, bgrn_tif, monkeypatch):
    with pytest.raises(RequestError, match="0.03 megapixels|above the limit of 0"):
        run(bgrn_tif, bundles["identity"], tmp_path / "o.tif", max_megapixels=0.01)
    monkeypatch.setenv("RSRESTORE_MAX_MEGAPIXELS", "0.01")
    with pytest.raises(RequestError, match="RSRESTORE_MAX_MEGAPIXELS"):
        run(bgrn_tif, bundles["identity"], tmp_path / "o.tif")
    monkeypatch.delenv("RSRESTORE_MAX_MEGAPIXELS")
    log = Log()
    rep = run(bgrn_tif, bundles["identity"], tmp_path / "o.tif", log, tile_size_px=32, overlap_px=8)
    assert any(line.startswith("first tile took") and "more tile(s)" in line for line in log.lines)
    assert f"{rep.tiles_total} tile(s)" in rep.summary


# ---- 16. clipped values are reported ---------------------------------------------------------------------------------
def test_values_outside_the_output_type_are_counted(tmp_path, bundles, bgrn_tif):
    shifted = _copy_bundle(bundles["identity"], tmp_path / "shift",
                           lambda d: d["output"].__setitem__("mean", [10.0] * 4))  # +10 reflectance: > 65535 DN
    log = Log()
    rep = run(bgrn_tif, shifted, tmp_path / "o.tif", log)
    assert rep.clipped_pixels == 150 * 170
    assert any("25,500 output pixel(s) fell outside the range of UInt16" in line for line in log.lines)
    assert (gdal.Open(str(tmp_path / "o.tif")).ReadAsArray() == 65535).all()


# ---- 17, 18. API requests -------------------------------------------------------------------------------------------
def test_uncertainty_with_one_sample_and_output_folder_that_is_a_file(tmp_path, bundles, bgrn_tif):
    with pytest.raises(RequestError, match="samples to 2 or more"):
        run(bgrn_tif, bundles["toy-de"], tmp_path / "o.tif", uncertainty_path=str(tmp_path / "u.tif"))
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(RasterError, match="is a file, not a folder"):
        run(bgrn_tif, bundles["identity"], afile / "o.tif")
    assert not (tmp_path / "o.tif").exists() and not (tmp_path / "u.tif").exists()
