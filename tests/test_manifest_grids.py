"""Manifest schema 2: every stage tensor has a grid (input, output, latent, scalar) and a channel count, a latent
spec, resample "none"; schema-1 bundles still load with derived grids; noise drawn per grid position."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from rscore.bundle import SCHEMA_VERSION, BundleError, LatentSpec, Manifest, ScaleRange, TensorSpec, load_bundle
from rscore.diffusion.noise import gaussian_field
from rscore.pipelines import TileContext


def _dict(bundles, name: str) -> dict:
    return json.loads((bundles[name] / "manifest.json").read_text())


def test_schema_1_loads_with_derived_grids_and_is_written_as_2(bundles):
    d = _dict(bundles, "toy-de-mask")
    d["schema_version"] = 1
    for st in d["stages"].values():
        st.pop("tensors", None)
    m = Manifest.from_dict(d)
    assert m.schema_version == 1 and m.to_dict()["schema_version"] == SCHEMA_VERSION == 2
    assert m.tensor("coarse", "y") == TensorSpec("output", 4)
    assert m.tensor("coarse", "cloud") == TensorSpec("output", 1)  # an extra output: one channel
    assert m.tensor("denoiser", "t") == TensorSpec("scalar", 1)
    assert m.tensor("denoiser", "weight") == TensorSpec("output", 4)
    again = Manifest.from_dict(json.loads(json.dumps(m.to_dict())))
    assert again.schema_version == 2 and again.stages == m.stages


def test_declared_grids_and_latent_round_trip_and_are_checked(bundles):
    m = load_bundle(bundles["toy-ddim"]).manifest
    den = m.stages["denoiser"]
    lat = dataclasses.replace(den, tensors={"x_t": TensorSpec("latent", 3), "eps": TensorSpec("latent", 3)})
    ok = dataclasses.replace(m, stages={"denoiser": lat}, latent=LatentSpec(channels=3, factor=4))
    back = Manifest.from_dict(json.loads(json.dumps(ok.to_dict())))
    assert back.latent == LatentSpec(3, 4) and back.tensor("denoiser", "x_t") == TensorSpec("latent", 3)
    with pytest.raises(BundleError, match="'x_t' is on the latent grid, but the manifest has no latent spec"):
        dataclasses.replace(m, stages={"denoiser": lat})
    with pytest.raises(BundleError, match="'x_t' has 3 channels; the latent has 5"):
        dataclasses.replace(m, stages={"denoiser": lat}, latent=LatentSpec(channels=5, factor=4))
    with pytest.raises(BundleError, match="declares tensors \\['z'\\] that are not among its inputs or outputs"):
        dataclasses.replace(m, stages={"denoiser": dataclasses.replace(den, tensors={"z": TensorSpec("latent", 3)})})
    with pytest.raises(BundleError, match="only \\('t', 'scale'\\) are scalars"):
        dataclasses.replace(m, stages={"denoiser": dataclasses.replace(den, tensors={"t": TensorSpec("output", 1)})})
    with pytest.raises(BundleError, match="gives y on the output grid, not 'input'"):
        dataclasses.replace(m, stages={"denoiser": dataclasses.replace(den, tensors={"y": TensorSpec("input", 4)})})
    with pytest.raises(BundleError, match="tensor grid 'sky' is not one of"):
        TensorSpec("sky", 1)
    with pytest.raises(BundleError, match="latent factor must be an integer 1-64"):
        LatentSpec(4, 0)


def test_resample_none_puts_y_on_the_input_grid_and_needs_a_scale_range(bundles):
    m = load_bundle(bundles["identity-sr"]).manifest
    native = dataclasses.replace(m, resample="none")
    assert native.tensor("net", "y") == TensorSpec("input", 4) and native.tensor("net", "x").grid == "output"
    with pytest.raises(BundleError, match="resample 'none' is for bundles that change the grid"):
        dataclasses.replace(m, resample="none", scale=ScaleRange())


def test_noise_is_drawn_by_global_position_on_each_grid():
    y = np.zeros((2, 8, 12), np.float32)
    ctx = TileContext(y=y, aux=None, row_off=-8, col_off=16, seed=3, out_shape=(32, 48), in_row_off=-2,
                      in_col_off=4, latent_factor=4)
    np.testing.assert_array_equal(ctx.noise("latent", 5)(7), gaussian_field(3, 7, 5, -2, 4, 8, 12))
    np.testing.assert_array_equal(ctx.noise("output", 2)(0), gaussian_field(3, 0, 2, -8, 16, 32, 48))
    np.testing.assert_array_equal(ctx.noise("input", 2)(-1), gaussian_field(3, -1, 2, -2, 4, 8, 12))
    # a neighbouring tile that overlaps this one draws the same latent noise where they overlap
    other = TileContext(y=y, aux=None, row_off=0, col_off=24, seed=3, out_shape=(16, 16), latent_factor=4)
    np.testing.assert_array_equal(other.noise("latent", 5)(7), ctx.noise("latent", 5)(7)[:, 2:6, 2:6])
    with pytest.raises(ValueError, match="not aligned to the latent factor 4"):
        TileContext(y=y, aux=None, row_off=2, col_off=0, seed=3, latent_factor=4).noise("latent", 1)
