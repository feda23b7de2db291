"""Tile geometry, blending weights and global-coordinate resampling (numpy only)."""

from rscore.tiling.blend import blend_weights
from rscore.tiling.grid import OutputGrid, TilePlan, Window, axis_starts, balanced_tile_px, plan_tiles
from rscore.tiling.resample import resample_window

__all__ = [
    "OutputGrid",
    "TilePlan",
    "Window",
    "axis_starts",
    "balanced_tile_px",
    "blend_weights",
    "plan_tiles",
    "resample_window",
]
