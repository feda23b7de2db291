"""Geographic train/val/test split of a scene into disjoint windows, and a patch sampler.

A scene is cut into a grid of blocks of ``block_px`` pixels (the last row/column of blocks absorbs
the remainder, so no pixel is dropped). Block ``(i, j)`` goes to split
``pattern[(row_stride * i + j) % len(pattern)]`` — a fixed function of position, independent of any
seed. Each block is shrunk by ``guard_px`` on every side it shares with another block to give its *window*;
patches are drawn entirely inside one window, so two patches of different splits are at least ``2 * guard_px``
apart and never share a pixel. Random patches of the same area therefore never end up in two splits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Split = Literal["train", "val", "test"]
#: How a whole scene takes part: ``"blocks"`` = cut into train/val/test blocks by position; ``"val"`` /
#: ``"test"`` = held out whole (a place, and often a sensor or date, the model never trains on).
Holdout = Literal["blocks", "val", "test"]


@dataclass(frozen=True)
class SplitConfig:
    """How a scene is divided into split windows.

    Attributes:
        block_px: Block side, pixels (>= 2 * guard_px + 1). A scene smaller than one block is one block.
        guard_px: Pixels removed from each side of every block, >= 0.
        pattern: Split of each position class; with the default 5-cycle 60 % of blocks are train,
            20 % val, 20 % test.
        row_stride: Offset of the pattern from one block row to the next, so splits form diagonals
            rather than whole columns.
    """

    block_px: int = 640
    guard_px: int = 16
    pattern: tuple[Split, ...] = ("train", "train", "train", "val", "test")
    row_stride: int = 2

    def __post_init__(self) -> None:
        if self.guard_px < 0 or self.block_px <= 2 * self.guard_px:
            raise ValueError(f"need block_px > 2 * guard_px >= 0, got {self.block_px=} {self.guard_px=}")
        bad = [s for s in self.pattern if s not in ("train", "val", "test")]
        if not self.pattern or bad:
            raise ValueError(f"pattern must be non-empty and use train/val/test only, got {self.pattern}")


@dataclass(frozen=True)
class Window:
    """A half-open pixel window ``rows [row0, row1) x cols [col0, col1)`` of one split."""

    split: Split
    row0: int
    row1: int
    col0: int
    col1: int

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of the window."""
        return self.row1 - self.row0, self.col1 - self.col0


def _edges(size_px: int, block_px: int) -> list[int]:
    n = max(1, size_px // block_px)
    return [k * block_px for k in range(n)] + [size_px]


def split_windows(shape: tuple[int, int], config: SplitConfig = SplitConfig()) -> list[Window]:
    """All windows of a scene, each tagged with its split.

    Args:
        shape: (rows, cols) of the scene.
        config: Block grid, guard band and assignment pattern.

    Returns:
        Windows in row-major block order; windows of tiny edge blocks (after the guard) are omitted.
    """
    rows, cols = shape
    row_edges = _edges(rows, config.block_px)
    col_edges = _edges(cols, config.block_px)
    g = config.guard_px
    nr, nc = len(row_edges) - 1, len(col_edges) - 1
    windows = []
    for i in range(nr):
        for j in range(nc):
            split = config.pattern[(config.row_stride * i + j) % len(config.pattern)]
            # the guard separates neighbouring blocks; the scene's own border needs none
            w = Window(split, row_edges[i] + (g if i > 0 else 0), row_edges[i + 1] - (g if i < nr - 1 else 0),
                       col_edges[j] + (g if j > 0 else 0), col_edges[j + 1] - (g if j < nc - 1 else 0))
            if w.row1 > w.row0 and w.col1 > w.col0:
                windows.append(w)
    return windows


def windows_for(shape: tuple[int, int], split: Split, config: SplitConfig = SplitConfig()) -> list[Window]:
    """The windows of one split (possibly empty for small scenes)."""
    return [w for w in split_windows(shape, config) if w.split == split]


def scene_windows(shape: tuple[int, int], split: Split, config: SplitConfig = SplitConfig(),
                  holdout: Holdout = "blocks") -> list[Window]:
    """The windows of ``split`` in a scene: its position blocks, or the whole scene when the scene is held out
    for that split (none when it is held out for another one)."""
    if holdout == "blocks":
        return windows_for(shape, split, config)
    if holdout not in ("val", "test"):
        raise ValueError(f"holdout must be 'blocks', 'val' or 'test', got {holdout!r}")
    return [Window(split, 0, shape[0], 0, shape[1])] if split == holdout else []


def split_mask(shape: tuple[int, int], split: Split, config: SplitConfig = SplitConfig()) -> np.ndarray:
    """bool (rows, cols), ``True`` on the pixels of ``split``'s windows."""
    mask = np.zeros(shape, dtype=bool)
    for w in windows_for(shape, split, config):
        mask[w.row0 : w.row1, w.col0 : w.col1] = True
    return mask


@dataclass(frozen=True)
class Patch:
    """A sampled patch: its pixels and where they came from.

    Attributes:
        pixels: float32, shape (bands, patch_px, patch_px), a copy of the scene's values.
        row0: Top row of the patch in the scene, pixels.
        col0: Left column of the patch in the scene, pixels.
    """

    pixels: np.ndarray
    row0: int
    col0: int


def sample_patches(
    scene: np.ndarray,
    split: Split,
    patch_px: int,
    n: int,
    rng: np.random.Generator,
    config: SplitConfig = SplitConfig(),
    valid_mask: np.ndarray | None = None,
    max_tries_per_patch: int = 50,
    holdout: Holdout = "blocks",
) -> list[Patch]:
    """Draw ``n`` square patches lying entirely inside windows of ``split``.

    A window is chosen with probability proportional to the number of patch positions it offers,
    then a position uniformly inside it.

    Args:
        scene: Array (bands, rows, cols).
        split: ``"train"``, ``"val"`` or ``"test"``.
        patch_px: Patch side, pixels.
        n: Number of patches, >= 0.
        rng: Source of all randomness.
        config: Split configuration (must be the same for every split of a scene).
        valid_mask: Optional bool (rows, cols); patches touching a ``False`` pixel are redrawn.
        max_tries_per_patch: Redraws allowed per patch before failing.
        holdout: How the scene takes part (:data:`Holdout`); a held-out scene is one window of its split.

    Returns:
        ``n`` patches.

    Raises:
        ValueError: No window of the split can hold a patch of this size, or too many redraws
            because the windows are mostly invalid (fill) pixels.
    """
    if scene.ndim != 3:
        raise ValueError(f"scene must be (bands, rows, cols), got shape {scene.shape}")
    shape = (scene.shape[1], scene.shape[2])
    fitting = [w for w in scene_windows(shape, split, config, holdout) if min(w.shape) >= patch_px]
    if not fitting:
        raise ValueError(
            f"no {split} window of a {shape} scene holds a {patch_px}px patch "
            f"(block_px={config.block_px}, guard_px={config.guard_px}); use a smaller patch or block"
        )
    positions = np.array([(w.shape[0] - patch_px + 1) * (w.shape[1] - patch_px + 1) for w in fitting], float)
    probs = positions / positions.sum()
    patches: list[Patch] = []
    for _ in range(n):
        for _attempt in range(max_tries_per_patch):
            w = fitting[int(rng.choice(len(fitting), p=probs))]
            r = int(rng.integers(w.row0, w.row1 - patch_px + 1))
            c = int(rng.integers(w.col0, w.col1 - patch_px + 1))
            if valid_mask is None or valid_mask[r : r + patch_px, c : c + patch_px].all():
                break
        else:
            raise ValueError(
                f"{max_tries_per_patch} draws in {split} windows all touched invalid pixels; "
                f"the split is mostly fill for {patch_px}px patches"
            )
        patches.append(Patch(scene[:, r : r + patch_px, c : c + patch_px].astype(np.float32, copy=True), r, c))
    return patches
