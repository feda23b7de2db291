"""Dark-channel prior baseline (golden behaviour) and the evaluation harness end to end on a tiny bundle."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from rscore.baselines import DarkChannelParams, box_mean, dark_channel, dehaze_dcp, guided_filter, visible_band_indices
from rscore.degradations.haze import HazeParams, apply_haze
from rscore.metrics import psnr

ROOT = Path(__file__).resolve().parents[1]
BGRN_NM = (490.0, 560.0, 665.0, 842.0)


def _scene(rows: int = 128, cols: int = 128) -> np.ndarray:
    """BGRN reflectance: visible stripes, bright NIR (vegetation-like), a dark pixel every 8 px."""
    yy, xx = np.mgrid[0:rows, 0:cols]
    vis = [0.05 + 0.3 * (np.sin(xx / 9 + b) > 0) + 0.1 * yy / rows for b in range(3)]
    img = np.stack([*vis, 0.35 + 0.05 * np.cos(yy / 7)]).astype(np.float32)
    img[:3, ::8, ::8] = 0.01
    return img


def test_visible_bands_and_dark_channel():
    assert visible_band_indices(("blue", "green", "red", "nir")) == (0, 1, 2)
    assert visible_band_indices(("red", "green", "blue")) == (0, 1, 2)
    with pytest.raises(ValueError, match="no visible band"):
        visible_band_indices(("nir", "swir1"))
    img = _scene()
    # a 15 px patch always holds one of the 0.01 pixels; NIR (bright) is left out of the minimum
    assert np.allclose(dark_channel(img, 15, (0, 1, 2)), 0.01)
    assert dark_channel(img, 1, (3,)).min() >= 0.3


def test_box_mean_and_guided_filter():
    rng = np.random.default_rng(0)
    a = rng.random((20, 30))
    r = 3
    brute = np.array([[a[max(0, i - r): i + r + 1, max(0, j - r): j + r + 1].mean() for j in range(30)]
                      for i in range(20)])
    assert np.allclose(box_mean(a, r), brute, atol=1e-12)
    # guided by itself with a tiny eps the filter keeps the edges (a = 1, b = 0 where there is variance)
    step = np.zeros((32, 32))
    step[:, 16:] = 1.0
    assert np.allclose(guided_filter(step, step, 4, 1e-8), step, atol=1e-4)


def test_dcp_removes_synthetic_haze():
    clean = _scene()
    depth = np.ones(clean.shape[1:])
    depth[:24, :24] = 6.0  # an opaque corner ("sky"): the airlight is observable there
    params = HazeParams(tau_550=0.8, angstrom_alpha=1.0, airlight_550=0.7, airlight_tilt=0.3, depth_contrast=0.0)
    haze = apply_haze(clean, params, BGRN_NM, depth)
    res = dehaze_dcp(haze.image, (0, 1, 2), DarkChannelParams(patch_px=7, guided_radius_px=16))
    assert np.allclose(res.airlight[:3], haze.airlight[:3], atol=0.01)
    keep = np.ones(clean.shape[1:], bool)
    keep[:32, :32] = False  # nothing is recoverable under the opaque corner
    vis = clean[:3]
    before = psnr(vis, haze.image[:3], 1.0, keep)
    after = psnr(vis, res.image[:3], 1.0, keep)
    assert before == pytest.approx(11.94, abs=0.05)
    assert after == pytest.approx(24.14, abs=0.05)  # golden: +12 dB on the visible bands
    # close to the true transmission at 550 nm away from the corner (omega = 0.95 leaves a little haze: t higher)
    assert float(np.mean(res.transmission[keep])) == pytest.approx(float(np.mean(haze.transmission[1][keep])), abs=0.06)


def test_dcp_leaves_haze_free_image_nearly_unchanged():
    clean = _scene()
    res = dehaze_dcp(clean, (0, 1, 2))
    assert float(np.abs(res.image - clean).max()) < 0.02
    assert psnr(clean, res.image, 1.0) > 40.0
    assert float(res.transmission.min()) > 0.95


def test_dcp_rejects_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        dehaze_dcp(np.full((3, 16, 16), np.nan), (0, 1, 2))
    with pytest.raises(ValueError, match="visible_bands"):
        dehaze_dcp(np.zeros((3, 16, 16)), (5,))
    with pytest.raises(ValueError, match="odd"):
        DarkChannelParams(patch_px=4)


def _train_tiny(tmp_path_factory: pytest.TempPathFactory, config: str, steps: int) -> Path:
    """Models folder holding the bundle of a seconds-long run of ``training/configs/<config>``."""
    pytest.importorskip("torch")
    from training.train import main as train_main

    root = tmp_path_factory.mktemp("eval")
    train_main(["--config", str(ROOT / "training" / "configs" / config), "--runs", str(root / "runs"),
                "--out", str(root / "models"), "--max-steps", str(steps)])
    return root / "models"


@pytest.fixture(scope="module")
def tiny_bundle_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train_tiny(tmp_path_factory, "tiny_dehaze_test.yaml", 10)


def _table_rows(md: str, header: str) -> list[str]:
    lines = md.splitlines()
    start = lines.index(header) + 2
    return lines[start: lines.index("", start)]


def test_dehaze_suite_end_to_end(tmp_path: Path, tiny_bundle_root: Path):
    from training.eval_common import CONFIGS, METRIC_COLUMNS, PSNR_CAP_DB, EvalSettings
    from training.eval_corpus import CONDITIONS, CorpusBundle, CorpusSuiteConfig, methods_for, run_suite
    from training.evaluate import write_report

    cfg = CorpusSuiteConfig(
        "dehaze", (CorpusBundle("tiny-dehaze-test", CONFIGS / "tiny_dehaze_test.yaml"),
                   CorpusBundle("not-shipped", CONFIGS / "tiny_dehaze_test.yaml")),
        crop_px=64, crops_per_scene=1, steps=(1,), strips=1, dcp=DarkChannelParams(patch_px=7, guided_radius_px=8))
    settings = EvalSettings(tmp_path / "docs", tiny_bundle_root)
    report = run_suite(settings, cfg)
    md = write_report([report.markdown], settings, "python -m training.evaluate --out docs", 1.0).read_text()

    assert "Bundle `not-shipped` is not in" in md
    assert "No held-out test scene in this config" in md  # the synthetic scene has test blocks only
    header = "| condition | method | " + " | ".join(METRIC_COLUMNS) + " |"
    rows = _table_rows(md, header)
    methods = methods_for("dehaze", (1, 3), 3)  # the tiny bundle's default is 3 steps: added to the requested (1,)
    assert len(rows) == len(CONDITIONS["dehaze"]) * len(methods)
    assert [r.split(" | ")[1].replace(" **(default)**", "") for r in rows] == [m.name for m in methods] * len(
        CONDITIONS["dehaze"])
    for r in rows:
        cells = [c.strip() for c in r.strip("|").split("|")][2:]
        nums = [float(c) for c in cells[:4] if c != "—"]
        assert all(math.isfinite(v) for v in nums), r
        timing = cells[4]
        assert (timing == "—") if " | input (hazy) | " in r else math.isfinite(float(timing)), r
    # no harm: the input row of a clean crop is the reference itself (infinite PSNR, reported at the cap)
    clean_input = rows[0]
    assert clean_input.split(" | ")[2].strip() == f"{PSNR_CAP_DB:.2f}"
    assert "stage 1 + diffusion, 3 steps **(default)**" in md
    assert "**Verdict (stage 1 + diffusion, 3 steps).**" in md and "Quality against time" in md
    assert len(report.images) == 1 and report.images[0].is_file()
    assert f"]({report.images[0].relative_to(settings.out_dir)})" in md


@pytest.fixture(scope="module")
def tiny_cloud_bundle_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train_tiny(tmp_path_factory, "tiny_clouds_test.yaml", 6)


def test_clouds_suite_end_to_end(tmp_path: Path, tiny_cloud_bundle_root: Path):
    from training.eval_common import CONFIGS, METRIC_COLUMNS, EvalSettings
    from training.eval_corpus import CONDITIONS, CorpusBundle, CorpusSuiteConfig, methods_for, run_suite
    from training.evaluate import merge_sections, write_report

    cfg = CorpusSuiteConfig("clouds", (CorpusBundle("tiny-clouds-test", CONFIGS / "tiny_clouds_test.yaml"),
                                       CorpusBundle("not-shipped", CONFIGS / "tiny_clouds_test.yaml")),
                            crop_px=64, crops_per_scene=1, steps=(2,), strips=1)
    settings = EvalSettings(tmp_path / "docs", tiny_cloud_bundle_root)
    report = run_suite(settings, cfg)
    md = report.markdown
    assert "Bundle `not-shipped` is not in" in md
    header = "| condition | method | " + " | ".join(METRIC_COLUMNS) + " |"
    rows = _table_rows(md, header)
    names = [m.name for m in methods_for("clouds", (2, 3), 3)]  # default 3 steps added to the requested (2,)
    assert [r.split(" | ")[1].replace(" **(default)**", "") for r in rows] == names * len(CONDITIONS["clouds"])
    assert "DE, 3 steps, automatic mask **(default)**" in md and "interpolation under the true mask" in names[2]
    for r in rows:
        cells = [c.strip() for c in r.strip("|").split("|")][2:]
        assert all(math.isfinite(float(c)) for c in cells[:4] if c != "—"), r
    assert len(report.images) == 1 and all(p.is_file() for p in report.images)
    # a partial re-run keeps the other suites' sections, in suite order
    merged = merge_sections("# Q\n\n## Dehazing\n\nold dehaze\n\n## Cloud removal\n\nold clouds\n",
                            {"Cloud removal": md})
    assert merged[0].startswith("## Dehazing") and "old dehaze" in merged[0] and merged[1] == md.rstrip() + "\n"
    path = write_report(merged, settings, "python -m training.evaluate --suite clouds", 1.0)
    assert "old dehaze" in path.read_text() and "old clouds" not in path.read_text()


def test_inpaint_under_mask_fills_from_the_surroundings():
    from training.eval_corpus import inpaint_under_mask

    img = np.tile(np.linspace(0.1, 0.5, 32, dtype=np.float32), (2, 32, 1))
    mask = np.zeros((32, 32), bool)
    mask[10:20, 12:18] = True
    hole = img.copy()
    hole[:, mask] = 1.0  # an opaque cloud
    out = inpaint_under_mask(hole, mask)
    assert np.array_equal(out[:, ~mask], img[:, ~mask])
    assert float(np.abs(out - img)[:, mask].max()) < 0.03  # a linear ramp is interpolated closely


@pytest.fixture(scope="module")
def tiny_sr_bundle_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train_tiny(tmp_path_factory, "tiny_sr_test.yaml", 8)


def test_sr_suite_end_to_end(tmp_path: Path, tiny_sr_bundle_root: Path):
    """Rows for every scale, method and down-sampler; exact output sizes; a strip with panels of two sizes."""
    from training.eval_common import CONFIGS, EvalSettings
    from training.eval_sr import DOWNSAMPLERS, METHODS, SrBundle, SrSuiteConfig, evaluate_bundle, run_sr

    cfg = SrSuiteConfig((SrBundle("tiny-sr-test", CONFIGS / "tiny_sr_test.yaml"),
                         SrBundle("not-shipped", CONFIGS / "tiny_sr_test.yaml")),
                        crop_px=40, scales=(2.0, 2.5, 4.0), crops_per_scene=1, strip_scale=4.0, strips=1)
    settings = EvalSettings(tmp_path / "docs", tiny_sr_bundle_root)
    res = evaluate_bundle(cfg.bundles[0], cfg, settings)
    n_scenes = len(res.scenes)
    assert n_scenes >= 1 and all(kind == "test blocks" for _, kind in res.scenes)  # the synthetic scene
    assert len([r for r in res.rows if r["how"] == "clean"]) == n_scenes
    assert len(res.rows) == n_scenes * (1 + len(DOWNSAMPLERS) * len(cfg.scales) * len(METHODS))
    assert all(math.isfinite(float(r["psnr"])) and math.isfinite(float(r["lpips"])) for r in res.rows)
    # bicubic of an area-averaged crop is the engine's own resampler: finite, below a perfect score
    assert 10.0 < res.mean("psnr", how="area", method="bicubic", scale=2.0) < 100.0
    png = res.strips[0]
    from osgeo import gdal

    ds = gdal.Open(str(png))
    assert ds.RasterYSize == 40 and ds.RasterXSize == 10 + 4 * 40 + 4 * 6  # LR 10 px, then four 40 px panels
    md = run_sr(settings, cfg).markdown
    assert md.startswith("## Super-resolution") and "Bundle `not-shipped` is not in" in md
    assert "| ×2.5 |" in md and "SR − bicubic" in md and "Clean input at scale 1" in md
    # the tiny config keeps the default sensor PSF (0.3-0.7 LR px): area averages are a down-sampler it never saw
    assert not res.trained_unblurred and "(unseen: its training pairs were all blurred)" in md
