"""Codec-decoded enhancement without QGIS: codec round trips and their rates, the posterior-mean sampler, codec
detection and the companion writer, the Bjøntegaard rate, and the latent_prior pipeline through the engine (a
JPEG 2000 file read directly, tile invariance). The toy-decoded bundle has the real LDM-RSIC-style networks
with random weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from rscore.degradations.codecs import CodecParams, roundtrip, sample_codec
from rscore.diffusion.plan import SamplerConfig, make_plan
from rscore.metrics.fidelity import psnr
from rscore.raster.io import RasterError
from rscore.raster.lossy import codec_problem, compress_raster, detect_codec
from rscore.runtime import RestoreRequest, restore
from tests.fixtures import rasters
from tests.fixtures.feedback import Log
from training.eval_codec import bd_rate

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"
GT = (500000.0, 10.0, 0.0, 4100000.0, 0.0, -10.0)


def _s2_crop(rows: int = 256, cols: int = 256) -> np.ndarray:
    return gdal.Open(str(SAMPLES / "s2_l1c_bgrn_512.tif")).ReadAsArray(0, 0, cols, rows).astype(np.float32) * 1e-4


# ---- codecs ---------------------------------------------------------------------------------------------------
def test_jpeg2000_16bit_rates_fall_with_the_ratio_and_quality_stays_sane_at_one_bit_per_pixel() -> None:
    crop = _s2_crop()
    trips = {r: roundtrip(crop, CodecParams("jp2", compression_ratio=r)) for r in (16.0, 64.0, 200.0)}
    bpp = [trips[r].bits_per_pixel for r in (16.0, 64.0, 200.0)]
    assert bpp[0] > bpp[1] > bpp[2] > 0
    # 4 bands of 16 bits at 1:64 are about 1 bit per pixel (headers included)
    assert 0.7 < trips[64.0].bits_per_pixel < 1.3
    # with 15 significant bits the decoded image stays an image at high ratios (with 16, OpenJPEG decoded them to
    # the DC offset 3.2768 reflectance): measured 31.8 dB at 1:64 (0.90 bpp), 29.1 dB at 1:200
    assert psnr(crop, trips[64.0].image, 1.0) > 30.5
    assert psnr(crop, trips[200.0].image, 1.0) > 27.5
    # by default 4 bands are 4 files (as Sentinel-2 delivers them); one 4-band file shares the rate between bands
    joint = roundtrip(crop, CodecParams("jp2", compression_ratio=64.0), per_band=False)
    assert abs(joint.bits_per_pixel - trips[64.0].bits_per_pixel) < 0.2 and not np.array_equal(
        joint.image, trips[64.0].image)


def test_8bit_jpeg2000_and_codec_draws() -> None:
    rgb = np.clip(_s2_crop(96, 96)[[2, 1, 0]] * 3.0, 0, 1)
    trip = roundtrip(rgb, CodecParams("jp2", compression_ratio=24.0, bits=8))
    assert trip.image.shape == rgb.shape and trip.image.max() <= 1.0 and trip.bits_per_pixel < 2.0
    assert np.allclose(trip.image * 255.0, np.round(trip.image * 255.0), atol=1e-3)  # on the 8-bit grid
    rng = np.random.default_rng(0)
    draws = [sample_codec(rng, [("jpeg", 10, 20), ("jp2", 8, 100)], 16) for _ in range(200)]
    assert {d.codec for d in draws} == {"jpeg", "jp2"}
    assert all(10 <= d.quality <= 20 for d in draws if d.codec == "jpeg")
    assert all(8.0 <= d.compression_ratio <= 100.0 and d.bits == 16 for d in draws if d.codec == "jp2")
    with pytest.raises(ValueError, match="bits"):
        CodecParams("jp2", bits=12)


def test_posterior_mean_steps_drop_the_noise_and_keep_the_mean() -> None:
    noisy = make_plan(SamplerConfig("ddim", num_timesteps=4, default_steps=4, eta=1.0, ddpm_schedule="sqrt_linear"))
    mean = make_plan(SamplerConfig("ddim", num_timesteps=4, default_steps=4, eta=1.0, ddpm_schedule="sqrt_linear",
                                   posterior_noise=False))
    assert all(s.coef_noise > 0 for s in noisy.steps[:-1]) and not any(s.stochastic for s in mean.steps)
    for a, b in zip(noisy.steps, mean.steps):
        assert (a.coef_x, a.coef_x0) == (b.coef_x, b.coef_x0)
    # the DDPM posterior mean from t = 4 to 3 with betas 0.1, 0.294, 0.591, 0.99: x0 weight sqrt(abar_3) beta_4 /
    # (1 - abar_4), x_t weight sqrt(alpha_4) (1 - abar_3) / (1 - abar_4)
    betas = np.linspace(np.sqrt(0.1), np.sqrt(0.99), 4) ** 2
    abar = np.cumprod(1 - betas)
    first = mean.steps[0]
    assert first.coef_x0 == pytest.approx(np.sqrt(abar[2]) * betas[3] / (1 - abar[3]), rel=1e-9)
    assert first.coef_x == pytest.approx(np.sqrt(1 - betas[3]) * (1 - abar[2]) / (1 - abar[3]), rel=1e-9)


def test_bjontegaard_rate_of_a_curve_that_needs_a_fixed_fraction_fewer_bits() -> None:
    rate = np.array([0.25, 0.5, 1.0, 2.0, 4.0])
    quality = 30.0 + 3.0 * np.log2(rate)
    assert bd_rate(rate, quality, 0.7 * rate, quality) == pytest.approx(-30.0, abs=1e-6)
    assert bd_rate(rate, quality, rate, quality + 3.0) == pytest.approx(-50.0, abs=1e-6)  # 3 dB = one octave
    assert np.isnan(bd_rate(rate, quality, rate, quality + 40.0))


def test_detect_codec_and_the_companion_writer(tmp_path: Path) -> None:
    rgb = tmp_path / "rgb.tif"
    rasters.write(rgb, np.round(np.clip(rasters.scene(3, 64, 80, seed=2), 0, 1) * 255), "Byte", geotransform=GT,
                  epsg=32633)
    assert detect_codec(rgb).codec is None
    rep = compress_raster(rgb, tmp_path / "q20.tif", "jpeg", quality=20)
    assert detect_codec(rep.path).codec == "jpeg" and rep.bits_per_pixel == pytest.approx(
        8 * rep.path.stat().st_size / (64 * 80))
    assert detect_codec(compress_raster(rgb, tmp_path / "w.tif", "webp", quality=30).path).codec == "webp"
    jp2 = compress_raster(SAMPLES / "s2_l1c_bgrn_512.tif", tmp_path / "s2.jp2", "jpeg2000", compression_ratio=64)
    info = detect_codec(jp2.path)
    assert info.codec == "jpeg2000" and "JP2" in info.driver
    ds = gdal.Open(str(jp2.path))
    assert ds.GetGeoTransform() == gdal.Open(str(SAMPLES / "s2_l1c_bgrn_512.tif")).GetGeoTransform()
    assert "NBITS=15" in jp2.options
    for kwargs, match in (({"dst": tmp_path / "x.tif", "codec": "jpeg"}, "8-bit samples only"),
                          ({"dst": tmp_path / "x.tif", "codec": "jpeg2000"}, "must end in .jp2"),
                          ({"dst": tmp_path / "x.jp2", "codec": "png"}, "unknown codec")):
        with pytest.raises(RasterError, match=match):
            compress_raster(SAMPLES / "s2_l1c_bgrn_512.tif", **kwargs)
    f32 = rasters.write(tmp_path / "f32.tif", rasters.scene(4, 32, 32), "Float32", geotransform=GT, epsg=32633)
    with pytest.raises(RasterError, match="integer type first"):
        compress_raster(f32, tmp_path / "x.jp2", "jpeg2000")
    assert not (tmp_path / "x.tif").exists() and not (tmp_path / "x.jp2").exists()
    assert not list(tmp_path.glob(".*partial*"))
    # a reversible (lossless) JPEG 2000 file has no lossy codec: auto detection must not claim one
    lossless = tmp_path / "lossless.jp2"
    gdal.Translate(str(lossless), str(rgb), format="JP2OpenJPEG", creationOptions=["REVERSIBLE=YES", "QUALITY=100"])
    assert detect_codec(lossless).codec is None and "lossless" in detect_codec(lossless).describe()
    assert "trained on jpeg2000 artefacts, not jpeg" in codec_problem("jpeg", ["jpeg2000"], "decoded-bgrn")
    assert codec_problem("jpeg2000", ["jpeg2000"], "decoded-bgrn") is None
    assert codec_problem("webp", None, "custom") is None


# ---- the pipeline through the engine ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def decoded_jp2(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("codec")
    clean = rasters.write(d / "clean.tif", np.round(rasters.scene(4, 200, 232, seed=4) * 1e4), "UInt16",
                          geotransform=GT, epsg=32633)
    return compress_raster(clean, d / "decoded.jp2", "jpeg2000", compression_ratio=40).path


def test_a_jpeg2000_file_is_enhanced_directly_on_its_own_grid(bundles, decoded_jp2, tmp_path) -> None:
    out = tmp_path / "enhanced.tif"
    log = Log()
    rep = restore(RestoreRequest(str(decoded_jp2), str(bundles["toy-decoded"]), str(out), seed=3), log)
    src, dst = gdal.Open(str(decoded_jp2)), gdal.Open(str(out))
    assert (dst.RasterYSize, dst.RasterXSize, dst.RasterCount) == (200, 232, 4)
    assert dst.GetGeoTransform() == src.GetGeoTransform()
    assert gdal.GetDataTypeName(dst.GetRasterBand(1).DataType) == "UInt16"
    diff = np.abs(dst.ReadAsArray().astype(np.float64) - src.ReadAsArray())
    assert 0 < diff.mean() < 500  # the random networks change the image, not beyond recognition
    # tiles of the default 64 px (4 x 5 tiles): cond once per tile, 4 denoiser steps and the decoder per sample
    assert rep.tiles_total == 20 and rep.network_evals == 20 * (1 + 4 + 1)


def test_tile_invariance_of_the_latent_prior_pipeline(bundles, decoded_jp2, tmp_path) -> None:
    """Windows are aligned to 32 output pixels in global coordinates (window attention at 1/4 and the prior at
    1/8 see the same grid whatever the tiling) and the noise is drawn by global position on the latent grid; what
    remains is the networks' reach beyond the 32-pixel margin, blended in the overlaps."""
    runs = {}
    for tile in (64, 96, 256):
        out = tmp_path / f"t{tile}.tif"
        # the fp32 path: in bf16 (DEVICE auto on a bf16 CPU) each tile shape rounds otherwise, by a few DN
        restore(RestoreRequest(str(decoded_jp2), str(bundles["toy-decoded"]), str(out), tile_size_px=tile,
                               overlap_px=16, seed=3, device="cpu"))
        runs[tile] = gdal.Open(str(out)).ReadAsArray().astype(np.float64)
    for tile in (64, 96):
        d = np.abs(runs[tile] - runs[256])
        # measured: mean 0.005 (64 px tiles) and 0.002 (96 px) DN, max 1 DN (1e-4 reflectance)
        assert d.mean() < 0.05 and d.max() <= 2, (tile, d.mean(), d.max())


def test_the_plugins_pipeline_matches_the_torch_chain(bundles) -> None:
    """The numpy loop over onnxruntime stages and the training-time chain (torch, the same plan and terms rule,
    the same noise by global position on the latent grid) agree on one tile."""
    import torch

    from export.build_bundles import toy_decoded_networks
    from rscore.bundle import load_bundle
    from rscore.diffusion.plan import make_plan as mk
    from rscore.pipelines import TileContext
    from rscore.runtime.api import build_pipeline
    from rscore.torch_ops.diffusion import global_noise, sample_torch

    bundle = load_bundle(bundles["toy-decoded"])
    pipe, _ = build_pipeline(bundle, 4, "cpu", 2)
    y = np.random.default_rng(0).standard_normal((4, 64, 96)).astype(np.float32)
    got = pipe.run(TileContext(y=y, aux=None, row_off=32, col_off=-32, seed=11, latent_factor=8))["image"]
    men, cond, den = toy_decoded_networks(4)
    yt = torch.from_numpy(y)[None]
    with torch.no_grad():
        c = cond(yt)[0]

        def predict(x, t):  # noqa: ANN001, ANN202
            return {"x0": den(x[None], c[None], t)[0]}

        z = sample_torch(mk(bundle.manifest.sampler), torch.zeros_like(c), predict,
                         global_noise(11, c.shape[0], 8, 12, 4, -4), "ddim")
        ref = men(yt, z[None])[0].numpy()
        plain = men(yt, torch.zeros_like(z)[None])[0].numpy()
    np.testing.assert_allclose(got, ref, atol=2e-5, rtol=0)
    assert np.abs(got - plain).mean() > 1e-3  # the sampled prior really changes the image


def test_guided_filter_baseline_smooths_block_steps_and_keeps_edges() -> None:
    from rscore.baselines import deblock_guided

    img = np.zeros((1, 64, 64), np.float32)
    img[:, :, 32:] = 1.0  # a strong edge
    img[:, :32, :32] += np.kron(np.random.default_rng(0).uniform(-0.02, 0.02, (4, 4)), np.ones((8, 8)))  # blocks
    out = deblock_guided(img)
    assert out.shape == img.shape and out.dtype == np.float32
    # block steps in the flat half shrink; the edge between the halves stays sharp
    steps = lambda a: np.abs(np.diff(a[0, 4:28, 4:28], axis=1)).max()  # noqa: E731
    assert steps(out) < 0.5 * steps(img)
    assert out[0, 40, 31] < 0.1 and out[0, 40, 32] > 0.9
