"""Diffusion Enhancement in the runtime (pipeline "de") and the restoration MASK (clear pixels kept)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from osgeo import gdal

from rscore.bundle import BundleError, load_bundle
from rscore.diffusion.fusion import fuse_x0, x0_from_eps
from rscore.diffusion.noise import gaussian_field
from rscore.diffusion.plan import make_plan
from rscore.pipelines import DeOptions
from rscore.raster.io import RasterError
from rscore.runtime import RequestError, RestoreRequest, restore
from tests.fixtures import rasters


def read(path: Path) -> np.ndarray:
    ds = gdal.Open(str(path))
    return ds.ReadAsArray()


def run(inp: Path, bundle: Path, out: Path, **kw):
    return restore(RestoreRequest(str(inp), str(bundle), str(out), **kw))


# ---- fusion arithmetic ------------------------------------------------------------------------------
def test_fusion_clamps_learned_weight_but_not_fixed_weight():
    x0e = np.array([0.0, 0.0, 0.0], np.float32)
    ref = np.array([1.0, 1.0, 1.0], np.float32)
    w = np.array([0.1, 0.5, 1.2], np.float32)
    np.testing.assert_allclose(fuse_x0(x0e, ref, w, 0.3), [0.3, 0.5, 1.0])
    np.testing.assert_allclose(fuse_x0(x0e, ref, 0.1, 0.3), [0.1, 0.1, 0.1])  # a fixed weight is used as given
    assert fuse_x0(x0e, ref, w, 0.3).dtype == np.float32
    with pytest.raises(ValueError, match="weight floor"):
        fuse_x0(x0e, ref, w, 1.5)


def test_fusion_numpy_and_torch_agree():
    rng = np.random.default_rng(0)
    x, eps, ref, w = (rng.standard_normal((2, 5, 6)).astype(np.float32) for _ in range(4))
    lo, hi = np.float32(-1.0), np.float32(1.5)
    a = fuse_x0(x0_from_eps(x, eps, 3.0, -2.0, lo, hi), ref, w, 0.3)
    t = fuse_x0(x0_from_eps(*(torch.from_numpy(v) for v in (x, eps)), 3.0, -2.0, -1.0, 1.5),
                torch.from_numpy(ref), torch.from_numpy(w), 0.3)
    np.testing.assert_allclose(a, t.numpy(), rtol=1e-6, atol=1e-6)


# ---- pipeline "de" ------------------------------------------------------------------------------------
def _toy_reference(y_model: np.ndarray, steps: int, seed: int, floor: float, fixed: float | None,
                   row_off: int = 0, col_off: int = 0) -> np.ndarray:
    """Independent numpy DE loop for the toy bundle (HalfNet reference, PointwiseDEToy step)."""
    from rscore.diffusion.plan import SamplerConfig

    plan = make_plan(SamplerConfig("ddim", num_timesteps=1000, default_steps=4, eta=0.0), steps)
    bands, rows, cols = y_model.shape
    ref = y_model * 0.5
    lo, hi = (0.0 - 0.1) / 0.1, (1.0 - 0.1) / 0.1
    x = gaussian_field(seed, -1, bands, row_off, col_off, rows, cols).astype(np.float64)  # stream -1 = x_T
    for st in plan.steps:
        eps = 0.4 * x - 0.2 * y_model
        w = 1.0 / (1.0 + np.exp(-3.0 * (ref - y_model)))
        x0e = np.clip(x * st.x0_from_x + eps * st.x0_from_eps, lo, hi)
        wv = np.clip(w, floor, 1.0) if fixed is None else fixed
        x0 = (1 - wv) * x0e + wv * ref
        x = st.coef_x * x + st.coef_x0 * x0
    return x


@pytest.mark.parametrize("floor, fixed", [(None, None), (0.8, None), (0.3, 0.0)])
def test_de_pipeline_matches_hand_written_loop(tmp_path, bundles, floor, fixed):
    data = rasters.scene(4, 40, 56, seed=3)
    src = rasters.write(tmp_path / "in.tif", data.astype(np.float32), "Float32")
    out = tmp_path / "out.tif"
    run(src, bundles["toy-de"], out, seed=5, options=DeOptions(weight_floor=floor, fixed_weight=fixed), tile_size_px=64)
    y_model = (data.astype(np.float64) - 0.1) / 0.1
    expect = _toy_reference(y_model, 4, 5, 0.3 if floor is None else floor, fixed) * 0.1 + 0.1
    np.testing.assert_allclose(read(out), expect, atol=2e-5)


def test_ddim_start_is_pure_noise(bundles):
    """The hand-written loop above assumes x_T = stream -1 of the runtime's noise, unscaled; pin that."""
    plan = make_plan(load_bundle(bundles["toy-de"]).manifest.sampler, 2)
    assert plan.init_noise == 1.0 and plan.init_y == 0.0


def test_full_reference_weight_gives_the_reference_output(tmp_path, bundles, bgrn_tif):
    a, b = tmp_path / "w1.tif", tmp_path / "ref.tif"
    run(bgrn_tif, bundles["toy-de"], a, options={"fixed_weight": 1.0})
    run(bgrn_tif, bundles["toy-de"], b, options={"one_pass": True})
    assert np.abs(read(a).astype(int) - read(b).astype(int)).max() <= 1


def test_de_tiling_independent_for_a_seed(tmp_path, bundles, bgrn_tif):
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    run(bgrn_tif, bundles["toy-de"], a, seed=9, tile_size_px=64, overlap_px=16)
    run(bgrn_tif, bundles["toy-de"], b, seed=9, tile_size_px=40, overlap_px=6)
    np.testing.assert_array_equal(read(a), read(b))


def test_eta_is_refused_for_other_pipelines_and_checked(tmp_path, bundles, bgrn_tif):
    with pytest.raises(RequestError, match=r"pipeline 'ddim' has no option\(s\) \['weight_floor'\]; it takes one_pass"):
        run(bgrn_tif, bundles["toy-ddim"], tmp_path / "o.tif", options={"weight_floor": 0.3})
    with pytest.raises(RequestError, match="ETA .* must be between 0 and 1"):
        run(bgrn_tif, bundles["toy-de"], tmp_path / "o.tif", options={"weight_floor": 1.5})
    with pytest.raises(RequestError, match="DeOptions does not apply to pipeline 'ddim'"):
        run(bgrn_tif, bundles["toy-ddim"], tmp_path / "o.tif", options=DeOptions())
    assert not (tmp_path / "o.tif").exists()


def test_de_manifest_needs_fusion_and_reference(bundles):
    import dataclasses

    m = load_bundle(bundles["toy-de"]).manifest
    with pytest.raises(BundleError, match="fusion"):
        dataclasses.replace(m, fusion=None)
    with pytest.raises(BundleError, match="coarse"):
        dataclasses.replace(m, stages={"denoiser": m.stages["denoiser"]})


# ---- MASK ----------------------------------------------------------------------------------------------
def _mask(path: Path, rows: int, cols: int, boxes, **kw) -> Path:
    m = np.zeros((1, rows, cols), np.uint8)
    for r0, r1, c0, c1 in boxes:
        m[0, r0:r1, c0:c1] = 1
    return rasters.write(path, m, "Byte", **kw)


def test_mask_keeps_clear_pixels_bit_identical_and_skips_clear_tiles(tmp_path, bundles, bgrn_tif):
    data = read(bgrn_tif)
    mask = _mask(tmp_path / "m.tif", 150, 170, [(10, 40, 20, 60)])
    out, full = tmp_path / "out.tif", tmp_path / "full.tif"
    rep = run(bgrn_tif, bundles["toy-de"], out, mask_path=str(mask), tile_size_px=64, overlap_px=16, seed=2)
    ref = run(bgrn_tif, bundles["toy-de"], full, tile_size_px=64, overlap_px=16, seed=2)
    got, whole = read(out), read(full)
    m = read(mask).astype(bool)
    np.testing.assert_array_equal(got[:, ~m], data[:, ~m])
    np.testing.assert_array_equal(got[:, m], whole[:, m])  # masked pixels as in an unmasked run
    assert (got[:, m] != data[:, m]).mean() > 0.9
    assert rep.tiles_clear > 0 and rep.network_evals < ref.network_evals
    ds = gdal.Open(str(out))
    assert ds.GetGeoTransform() == gdal.Open(str(bgrn_tif)).GetGeoTransform()


def test_mask_with_uncertainty_and_nodata(tmp_path, bundles):
    data = rasters.scene(4, 70, 90, seed=1)
    raw = np.round(data * 1e4).astype(np.uint16)
    raw[:, 0:5, 0:5] = 0
    raw[:, 30:33, 40:44] = 0
    src = rasters.write(tmp_path / "in.tif", raw, "UInt16", nodata=0)
    mask = _mask(tmp_path / "m.tif", 70, 90, [(20, 50, 30, 70)])
    out, unc = tmp_path / "o.tif", tmp_path / "u.tif"
    run(src, bundles["toy-de"], out, mask_path=str(mask), samples=3, uncertainty_path=str(unc), tile_size_px=32)
    got, u = read(out), read(unc)
    m = read(mask).astype(bool)
    nod = raw[0] == 0
    np.testing.assert_array_equal(got[:, ~m], raw[:, ~m])
    assert (got[:, nod] == 0).all()
    assert (u[:, ~m & ~nod] == 0).all() and (u[:, nod] == -9999).all()
    assert (u[:, m & ~nod] > 0).mean() > 0.5  # samples differ where pixels are restored (clipped x0 may agree)


def test_mask_on_another_grid_is_warped_nearest(tmp_path, bundles, bgrn_tif):
    gt = gdal.Open(str(bgrn_tif)).GetGeoTransform()
    # a mask at half resolution (2x pixel size) covering the same area
    m2 = np.zeros((1, 75, 85), np.uint8)
    m2[0, 10:20, 10:30] = 1
    mask = rasters.write(tmp_path / "m2.tif", m2, "Byte", geotransform=(gt[0], 2 * gt[1], 0, gt[3], 0, 2 * gt[5]))
    out = tmp_path / "o.tif"
    run(bgrn_tif, bundles["toy-de"], out, mask_path=str(mask), tile_size_px=64)
    data, got = read(bgrn_tif), read(out)
    full = np.kron(m2[0], np.ones((2, 2), np.uint8)).astype(bool)
    np.testing.assert_array_equal(got[:, ~full], data[:, ~full])
    assert (got[:, full] != data[:, full]).mean() > 0.9


def test_mask_without_georeferencing_of_another_size_is_refused(tmp_path, bundles, bgrn_tif):
    mask = _mask(tmp_path / "m.tif", 20, 20, [(0, 5, 0, 5)], geotransform=(0.0, 1.0, 0.0, 0.0, 0.0, 1.0), epsg=None)
    with pytest.raises(RasterError, match="no georeferencing"):
        run(bgrn_tif, bundles["toy-de"], tmp_path / "o.tif", mask_path=str(mask))
    assert not (tmp_path / "o.tif").exists()


def test_empty_mask_copies_the_input(tmp_path, bundles, bgrn_tif):
    mask = _mask(tmp_path / "m.tif", 150, 170, [])
    out = tmp_path / "o.tif"
    rep = run(bgrn_tif, bundles["toy-de"], out, mask_path=str(mask))
    np.testing.assert_array_equal(read(out), read(bgrn_tif))
    assert rep.network_evals == 0 and rep.tiles_clear == rep.tiles_total


def test_mask_copies_clear_pixels_even_when_partly_nodata_or_nan(tmp_path, bundles):
    data = rasters.scene(4, 48, 64, seed=4)
    raw = np.round(data * 1e4).astype(np.uint16)
    raw[1, 5, 5] = 0  # one band nodata in a clear pixel: the other bands must survive
    src = rasters.write(tmp_path / "u16.tif", raw, "UInt16", nodata=0)
    mask = _mask(tmp_path / "m.tif", 48, 64, [(20, 30, 20, 40)])
    out = tmp_path / "o.tif"
    run(src, bundles["toy-de"], out, mask_path=str(mask))
    np.testing.assert_array_equal(read(out)[:, 5, 5], raw[:, 5, 5])
    f = data.astype(np.float32)
    f[2, 7, 9] = np.nan
    srcf = rasters.write(tmp_path / "f32.tif", f, "Float32", nodata=-9999.0)
    outf = tmp_path / "of.tif"
    run(srcf, bundles["toy-de"], outf, mask_path=str(mask))
    got = read(outf)
    m = read(mask).astype(bool)
    np.testing.assert_array_equal(got[:, ~m], f[:, ~m])  # NaN compares equal in assert_array_equal


def test_finer_mask_loses_no_cloud(tmp_path, bundles, bgrn_tif):
    gt = gdal.Open(str(bgrn_tif)).GetGeoTransform()
    fine = np.zeros((1, 300, 340), np.uint8)
    fine[0, 101, 51] = 1  # one fine pixel = a quarter of input pixel (50, 25)
    mask = rasters.write(tmp_path / "fine.tif", fine, "Byte", geotransform=(gt[0], gt[1] / 2, 0, gt[3], 0, gt[5] / 2))
    out = tmp_path / "o.tif"
    run(bgrn_tif, bundles["toy-de"], out, mask_path=str(mask))
    diff = (read(out) != read(bgrn_tif)).any(axis=0)
    assert diff[50, 25] and diff.sum() == 1


def test_missing_mask_named(tmp_path, bundles, bgrn_tif):
    with pytest.raises(RasterError, match="mask raster .* does not exist"):
        run(bgrn_tif, bundles["toy-de"], tmp_path / "o.tif", mask_path=str(tmp_path / "nope.tif"))


def test_de_denoiser_must_output_eps_and_weight(bundles):
    import dataclasses

    m = load_bundle(bundles["toy-de"]).manifest
    bad = dataclasses.replace(m.stages["denoiser"], outputs=("eps",))
    with pytest.raises(BundleError, match=r"stage 'denoiser' to output eps\+weight, got \['eps'\]"):
        dataclasses.replace(m, stages={**m.stages, "denoiser": bad})


def test_reference_runs_once_per_tile_for_several_samples(tmp_path, bundles, bgrn_tif):
    rep = run(bgrn_tif, bundles["toy-de"], tmp_path / "o.tif", samples=3, steps=4,
              uncertainty_path=str(tmp_path / "u.tif"))
    assert rep.network_evals == rep.tiles_total * (1 + 3 * 4)


# ---- automatic mask (the bundle's own cloud map) ---------------------------------------------------------------
def _bright_square_raster(path: Path) -> Path:
    """96 x 96 uint16 reflectance x 1e4: background 0.10 +- noise, an opaque 'cloud' 0.90 at rows 30-53, cols
    40-63."""
    rng = np.random.default_rng(3)
    values = np.full((4, 96, 96), 1000.0) + rng.integers(-50, 50, (4, 96, 96))
    values[:, 30:54, 40:64] = 9000
    return rasters.write(path, values.astype(np.uint16), "UInt16")


def test_automatic_mask_changes_only_cloud_pixels(tmp_path, bundles):
    src = _bright_square_raster(tmp_path / "in.tif")
    rep = run(src, bundles["toy-de-mask"], tmp_path / "out.tif", auto_mask=True, seed=1, tile_size_px=32,
              overlap_px=8)
    a, b = read(src), read(tmp_path / "out.tif")
    changed = np.any(a != b, axis=0)
    cloud = np.zeros((96, 96), bool)
    cloud[30:54, 40:64] = True
    grown = np.zeros((96, 96), bool)
    grown[28:56, 38:66] = True  # dilated by the bundle's 2 px
    assert changed[cloud].all() and not changed[~grown].any()
    assert rep.masked_fraction == pytest.approx(grown.sum() / grown.size)
    assert "automatic mask: 8.5 % of the valid pixels restored" in rep.summary
    assert rep.tiles_clear > 0  # cloud-free tiles are not run
    # a lower threshold from the request restores more (the noise-free background stays below it)
    rep2 = run(src, bundles["toy-de-mask"], tmp_path / "out2.tif", auto_mask=True, mask_threshold=0.01)
    assert rep2.masked_fraction == pytest.approx(rep.masked_fraction)


def test_automatic_mask_requests_are_checked(tmp_path, bundles, bgrn_tif):
    with pytest.raises(RequestError, match="cannot find the pixels to restore by itself"):
        run(bgrn_tif, bundles["toy-de"], tmp_path / "o.tif", auto_mask=True)
    mask = rasters.write(tmp_path / "m.tif", np.ones((1, 150, 170), np.uint8), "Byte")
    with pytest.raises(RequestError, match="either a MASK raster or the automatic mask"):
        run(bgrn_tif, bundles["toy-de-mask"], tmp_path / "o.tif", auto_mask=True, mask_path=str(mask))
    with pytest.raises(RequestError, match="threshold must be between 0 and 1"):
        run(bgrn_tif, bundles["toy-de-mask"], tmp_path / "o.tif", auto_mask=True, mask_threshold=1.5)
    assert not (tmp_path / "o.tif").exists()


def test_dilate_and_threshold_mask(tmp_path):
    from rscore.runtime.automask import dilate, threshold_mask

    m = np.zeros((7, 9), bool)
    m[3, 4] = True
    assert dilate(m, 0).sum() == 1
    assert np.array_equal(np.argwhere(dilate(m, 1)).min(0), [2, 3]) and dilate(m, 1).sum() == 9
    assert dilate(m, 10).all() and not dilate(np.zeros((3, 3), bool), 2).any()
    cloud = np.zeros((1, 40, 50), np.float32)
    cloud[0, 10, 10] = 0.9
    cloud[0, 30, 30] = 0.05  # below the threshold
    cloud[0, 0, 49] = -9999.0  # nodata is never marked
    src = rasters.write(tmp_path / "map.tif", cloud, "Float32", nodata=-9999.0)
    fraction, marked = threshold_mask(str(src), str(tmp_path / "mask.tif"), 0.1, 1)
    got = read(tmp_path / "mask.tif")
    assert marked == 9 and got.dtype == np.uint8 and got[9:12, 9:12].all() and got.sum() == 9
    assert fraction == pytest.approx(9 / (40 * 50 - 1))


def test_one_pass_default_runs_the_coarse_stage_unless_steps_are_asked(tmp_path, bundles, bgrn_tif):
    """sampler.default_steps 0: the bundle's default is its one-pass stage (chosen from the evaluation when
    diffusion does not earn its cost); sampling still runs when steps are given."""
    import json
    import shutil

    one = tmp_path / "one-pass"
    shutil.copytree(bundles["toy-de"], one)
    data = json.loads((one / "manifest.json").read_text())
    data["sampler"]["default_steps"] = 0
    (one / "manifest.json").write_text(json.dumps(data))
    rep = run(bgrn_tif, one, tmp_path / "d.tif")
    run(bgrn_tif, bundles["toy-de"], tmp_path / "c.tif", options={"one_pass": True})
    np.testing.assert_array_equal(read(tmp_path / "d.tif"), read(tmp_path / "c.tif"))
    assert rep.steps == 0 and "one pass" in rep.summary and rep.network_evals == rep.tiles_total
    rep2 = run(bgrn_tif, one, tmp_path / "s.tif", steps=2)
    assert rep2.steps == 2 and rep2.network_evals == rep2.tiles_total * 3
    ident = load_bundle(bundles["toy-ddim"]).manifest.to_dict()
    ident["sampler"]["default_steps"] = 0
    from rscore.bundle.manifest import Manifest

    with pytest.raises(BundleError, match="needs a 'coarse' stage"):
        Manifest.from_dict(ident)
