"""Tile geometry tables, blending weights and global-coordinate resampling."""

from __future__ import annotations

import numpy as np
import pytest

from rscore.tiling import (
    OutputGrid,
    Window,
    axis_starts,
    balanced_tile_px,
    blend_weights,
    plan_tiles,
    resample_window,
)


@pytest.mark.parametrize(
    "length, tile, overlap, starts",
    [
        (100, 256, 32, [0]),  # raster smaller than one tile
        (256, 256, 32, [0]),  # exactly one tile
        (257, 256, 32, [0, 1]),  # one pixel more: last tile shifted back to the edge
        (500, 256, 32, [0, 224, 244]),
        (1000, 256, 0, [0, 256, 512, 744]),
        (10, 4, 2, [0, 2, 4, 6]),
        (1, 64, 16, [0]),
    ],
)
def test_axis_starts_table(length, tile, overlap, starts):
    assert axis_starts(length, tile, overlap) == starts
    ends = [s + min(tile, length) for s in starts]
    assert ends[-1] == length and min(starts) == 0


def test_axis_starts_rejects_bad_overlap():
    with pytest.raises(ValueError, match="overlap"):
        axis_starts(100, 32, 32)
    with pytest.raises(ValueError, match="tile size"):
        axis_starts(100, 0, 0)


@pytest.mark.parametrize(
    "in_shape, scale, out_shape, gt_out",
    [
        ((100, 80), 1.0, (100, 80), (500000.0, 10.0, 0.0, 4600000.0, 0.0, -10.0)),
        ((100, 80), 2.0, (200, 160), (500000.0, 5.0, 0.0, 4600000.0, 0.0, -5.0)),
        ((100, 80), 2.5, (250, 200), (500000.0, 4.0, 0.0, 4600000.0, 0.0, -4.0)),
        ((33, 17), 3.7, (122, 63), (500000.0, 10 / 3.7, 0.0, 4600000.0, 0.0, -10 / 3.7)),
        ((40, 40), 0.5, (20, 20), (500000.0, 20.0, 0.0, 4600000.0, 0.0, -20.0)),
    ],
)
def test_output_grid_shapes_and_geotransforms(in_shape, scale, out_shape, gt_out):
    g = OutputGrid(*in_shape, scale)
    assert (g.rows, g.cols) == out_shape
    np.testing.assert_allclose(g.geotransform((500000.0, 10.0, 0.0, 4600000.0, 0.0, -10.0)), gt_out)


def test_tile_plan_covers_grid():
    g = OutputGrid(300, 170)
    tp = plan_tiles(g, 128, 32)
    assert tp.row_starts == (0, 96, 172) and tp.col_starts == (0, 42)
    cover = np.zeros((300, 170), int)
    for row in tp.rows_of_tiles():
        for w in row:
            cover[w.slices()] += 1
    assert cover.min() >= 1
    assert tp.core(2, 1) == Window(172, 42, 128, 128)


@pytest.mark.parametrize(
    "rows, cols, tile, overlap, align, balanced",
    [
        (1024, 1024, 512, 32, 4, 364),  # 3 tiles per axis either way; cores of 364 px instead of 512
        (2000, 2000, 512, 32, 4, 428),
        (10980, 10980, 512, 32, 4, 508),  # a Sentinel-2 tile: 23 tiles per axis either way
        (300, 170, 128, 32, 1, 122),  # the rows need 3 tiles of 122 px; 2 such tiles cover the 170 columns
        (257, 257, 256, 32, 4, 148),
        (100, 80, 256, 32, 4, 100),  # one tile: the raster itself
        (512, 512, 512, 32, 4, 512),
    ],
)
def test_balanced_tile_px_table(rows, cols, tile, overlap, align, balanced):
    assert balanced_tile_px(rows, cols, tile, overlap, align) == balanced


@pytest.mark.parametrize("length", [33, 257, 500, 777, 1024, 1500, 2049, 4097])
@pytest.mark.parametrize("tile, overlap, align", [(512, 32, 4), (256, 16, 8), (64, 16, 1)])
def test_balanced_plan_keeps_the_tile_count_and_covers_the_grid(length, tile, overlap, align):
    g = OutputGrid(length, length + 40)
    plain = plan_tiles(g, min(tile, length + 40), min(overlap, min(tile, length + 40) - 1))
    tp = plan_tiles(g, plain.tile_px, plain.overlap_px, balanced=True, align_px=align)
    assert len(tp.row_starts) == len(plain.row_starts) and len(tp.col_starts) == len(plain.col_starts)
    assert tp.tile_px <= plain.tile_px
    assert tp.tile_px % align == 0 or tp.tile_px == plain.tile_px or tp.tile_px == min(length, length + 40)
    cover = np.zeros((g.rows, g.cols), int)
    for row in tp.rows_of_tiles():
        for w in row:
            assert w.row_end <= g.rows and w.col_end <= g.cols
            cover[w.slices()] += 1
    assert cover.min() >= 1
    # the evenly spread tiles never overlap by less than the blending overlap
    for starts in (tp.row_starts, tp.col_starts):
        assert all(b - a <= tp.tile_px - tp.overlap_px for a, b in zip(starts, starts[1:]))


def test_input_window_for_scaled_output():
    g = OutputGrid(100, 100, 2.5)
    w = g.input_window_for(Window(10, 0, 20, 250), support_px=2)
    # rows 10..30 of the output map to input rows 4..12, plus 2 px of support on each side
    assert (w.row_off, w.row_end) == (2, 14)
    assert (w.col_off, w.col_end) == (0, 100)


def test_blend_weights_partition_and_positivity():
    g = OutputGrid(200, 200)
    tp = plan_tiles(g, 64, 16)
    total = np.zeros((200, 200))
    for row in tp.rows_of_tiles():
        for w in row:
            wt = blend_weights(w, 200, 200, tp.row_starts, tp.col_starts, tp.tile_px)
            assert wt.min() > 0 and wt.max() <= 1
            total[w.slices()] += wt
    interior = total[:150, :150]  # regular stride region: sin^2 + cos^2 = 1
    np.testing.assert_allclose(interior, 1.0, atol=1e-12)
    # edges of the raster are not tapered
    corner = blend_weights(tp.core(0, 0), 200, 200, tp.row_starts, tp.col_starts, tp.tile_px)
    assert corner[0, 0] == 1.0


@pytest.mark.parametrize("scale, method", [(2.0, "bicubic"), (2.5, "bilinear"), (3.7, "bicubic"), (1.5, "nearest")])
def test_resample_tile_equals_whole_raster(scale, method):
    rng = np.random.default_rng(1)
    src = rng.standard_normal((2, 30, 26)).astype(np.float32)
    g = OutputGrid(30, 26, scale)
    whole = resample_window(src, Window(0, 0, 30, 26), 30, 26, scale, Window(0, 0, g.rows, g.cols), method)
    out = Window(7, 11, 25, 19)
    need = g.input_window_for(out, 2)
    part = resample_window(src[:, need.slices()[0], need.slices()[1]], need, 30, 26, scale, out, method)
    np.testing.assert_allclose(part, whole[:, out.slices()[0], out.slices()[1]], atol=1e-5)


def test_resample_preserves_constants_and_integer_scale_nearest():
    src = np.full((1, 10, 10), 3.25, np.float32)
    out = resample_window(src, Window(0, 0, 10, 10), 10, 10, 2.5, Window(0, 0, 25, 25), "bicubic")
    np.testing.assert_allclose(out, 3.25, atol=1e-6)
    ramp = np.arange(4, dtype=np.float32).reshape(1, 1, 4).repeat(2, axis=1)
    nn = resample_window(ramp, Window(0, 0, 2, 4), 2, 4, 2.0, Window(0, 0, 4, 8), "nearest")
    np.testing.assert_array_equal(nn[0, 0], [0, 0, 1, 1, 2, 2, 3, 3])
