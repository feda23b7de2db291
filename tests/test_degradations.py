"""Degradations: physics invariants, shapes/geotransforms, codecs, determinism (synthetic arrays only)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rscore.degradations import (
    BGRN_NM,
    KINDS,
    RGB_NM,
    CloudParams,
    CodecParams,
    DownsampleParams,
    HazeParams,
    ReferenceParams,
    apply_clouds,
    apply_haze,
    cloud_mask,
    compress,
    depth_field,
    downsample,
    downsampled_geotransform,
    haze_level_of,
    lr_shape,
    make_reference,
    random_degradation,
    wavelengths_for,
)
from rscore.degradations.fields import fractal_field
from rscore.degradations.resample import area_resample


def _scene(rng: np.random.Generator, bands: int = 4, size: int = 96) -> np.ndarray:
    """Vegetation-like reflectance: smooth textures, NIR bright."""
    base = np.array([0.05, 0.08, 0.06, 0.30])[:bands] if bands == 4 else np.full(bands, 0.4)
    tex = [0.03 * fractal_field((size, size), rng, 24.0, beta=2.2) for _ in range(bands)]
    return np.clip(base[:, None, None] + np.stack(tex), 0.0, 1.0).astype(np.float32)


@pytest.fixture
def scene() -> np.ndarray:
    return _scene(np.random.default_rng(42))


# ---------------------------------------------------------------- haze


def test_haze_monotone_in_optical_depth(scene: np.ndarray) -> None:
    params = HazeParams(tau_550=0.5, angstrom_alpha=1.3, airlight_550=0.7, airlight_tilt=0.3)
    d = np.ones(scene.shape[1:])
    results = [apply_haze(scene, params, BGRN_NM, d * s) for s in (0.5, 1.0, 2.0)]
    a = results[0].airlight[:, None, None]
    for lo, hi in zip(results[:-1], results[1:]):
        assert np.all(hi.transmission < lo.transmission)
        # Per pixel and band, more depth moves the image towards the airlight.
        assert np.all(np.abs(hi.image - a) <= np.abs(lo.image - a) + 1e-6)
    # Golden values: t_b = exp(-0.5 (lambda_b / 550)^-1.3) at d = 1, BGRN_NM = 490/560/665/842 nm.
    t = results[1].transmission[:, 0, 0]
    np.testing.assert_allclose(t, np.exp(-0.5 * (np.array(BGRN_NM) / 550.0) ** -1.3), rtol=1e-6)
    np.testing.assert_allclose(t, [0.5593, 0.6136, 0.6766, 0.7502], atol=1e-4)


def test_haze_transmission_smaller_at_blue_than_nir_and_airlight_bluish(scene: np.ndarray) -> None:
    params = HazeParams(tau_550=0.8, angstrom_alpha=1.0, depth_contrast=0.4, depth_scale_px=32.0, gradient=0.5)
    d = depth_field(scene.shape[1:], params, np.random.default_rng(0))
    res = apply_haze(scene, params, BGRN_NM, d)
    assert np.all(res.transmission[0] < res.transmission[3])
    assert res.airlight[0] > res.airlight[1] > res.airlight[2] > res.airlight[3]
    assert d.min() >= 0.05 and abs(float(d.mean()) - 1.0) < 0.1
    # Identity when there is no optical depth.
    np.testing.assert_allclose(apply_haze(scene, params, BGRN_NM, np.zeros_like(d)).image, scene, atol=1e-7)


def test_haze_levels() -> None:
    assert [haze_level_of(t) for t in (0.1, 0.5, 1.5, 3.0)] == ["thin", "moderate", "thick", "thick"]
    assert HazeParams(tau_550=0.2).level == "thin"


# ---------------------------------------------------------------- clouds


def test_cloud_mask_consistent_with_image(scene: np.ndarray) -> None:
    params = CloudParams(cloud_type="thick", coverage=0.4, edge_softness=0.3, feature_scale_px=48.0)
    mask = cloud_mask(scene.shape[1:], params, np.random.default_rng(3))
    res = apply_clouds(scene, params, BGRN_NM, mask)
    assert 0.35 < float((res.mask > 0).mean()) < 0.45
    full = res.mask >= 0.999
    clear = res.mask == 0
    assert full.any() and clear.any()
    np.testing.assert_allclose(res.image[:, full], np.broadcast_to(res.cloud_radiance[:, None], res.image[:, full].shape), atol=1e-3)
    np.testing.assert_array_equal(res.image[:, clear], scene[:, clear])
    # Spectrally flat, bright clouds.
    assert np.ptp(res.cloud_radiance) < 1e-6 and res.cloud_radiance[0] == pytest.approx(0.8)


def test_thin_cloud_attenuates_nir_less(scene: np.ndarray) -> None:
    params = CloudParams(cloud_type="thin", max_opacity=0.6, nir_beta=0.6)
    mask = np.full(scene.shape[1:], 0.5)
    res = apply_clouds(scene, params, BGRN_NM, mask)
    opacity = res.band_opacity[:, 0, 0]
    assert opacity[3] < opacity[2] < opacity[0]
    # Golden: m_b = 1 - 0.5^((lambda/550)^-0.6).
    np.testing.assert_allclose(opacity, 1 - 0.5 ** ((np.array(BGRN_NM) / 550.0) ** -0.6), rtol=1e-5)
    np.testing.assert_allclose(opacity, [0.5243, 0.4963, 0.4613, 0.4154], atol=1e-4)
    # NIR keeps more of the ground signal than blue.
    keep = 1 - res.band_opacity
    assert np.all(keep[3] > keep[0])


def test_cloud_shadow_darkens_outside_cloud(scene: np.ndarray) -> None:
    params = CloudParams(cloud_type="thick", coverage=0.2, shadow_strength=0.6, shadow_offset_px=(12.0, 8.0))
    mask = cloud_mask(scene.shape[1:], params, np.random.default_rng(5))
    res = apply_clouds(scene, params, BGRN_NM, mask)
    shaded = (res.shadow_mask > 0.5) & (res.mask == 0)
    assert shaded.any()
    expected = scene[:, shaded] * (1.0 - 0.6 * res.shadow_mask[shaded])
    np.testing.assert_allclose(res.image[:, shaded], expected, atol=1e-6)
    assert float(res.image[:, shaded].mean()) < 0.75 * float(scene[:, shaded].mean())
    assert float(res.shadow_mask[res.mask == 1.0].max()) == 0.0


# ---------------------------------------------------------------- down-sampling


@pytest.mark.parametrize(
    ("factor", "rows", "cols", "expected"),
    [(2.0, 100, 60, (50, 30)), (2.5, 101, 64, (40, 26)), (3.7, 100, 37, (27, 10)), (8.0, 20, 21, (2, 3)), (1.0, 7, 5, (7, 5))],
)
def test_downsample_shape_and_geotransform(factor: float, rows: int, cols: int, expected: tuple[int, int]) -> None:
    gt = (435730.0, 10.0, 0.0, 4179460.0, 0.0, -10.0)
    gt_lr, shape = downsampled_geotransform(gt, rows, cols, factor)
    assert shape == expected == lr_shape(rows, cols, factor)
    assert gt_lr == pytest.approx((435730.0, 10.0 * factor, 0.0, 4179460.0, 0.0, -10.0 * factor))
    img = np.random.default_rng(0).random((2, rows, cols)).astype(np.float32)
    out = downsample(img, DownsampleParams(factor=factor, psf_sigma_lr_px=0.5), np.random.default_rng(0))
    assert out.shape == (2, *expected) and out.dtype == np.float32


def test_area_resample_preserves_constants_and_means() -> None:
    img = np.full((1, 50, 50), 0.3)
    np.testing.assert_allclose(area_resample(img, 3.7), 0.3, atol=1e-12)
    ramp = np.tile(np.arange(10.0), (1, 10, 1))
    # LR pixel 0 at factor 2.5 averages columns 0, 1 and half of 2: (0 + 1 + 0.5 * 2) / 2.5 = 0.8;
    # pixel 1 half of 2, then 3 and 4: (1 + 3 + 4) / 2.5 = 3.2.
    np.testing.assert_allclose(area_resample(ramp, 2.5)[0, 0], [0.8, 3.2, 5.8, 8.2], atol=1e-12)
    with pytest.raises(ValueError, match="factor"):
        DownsampleParams(factor=9.0)


def test_downsample_noise_statistics() -> None:
    img = np.full((1, 400, 400), 0.2, dtype=np.float32)
    out = downsample(img, DownsampleParams(factor=2.0, noise_sigma=0.01), np.random.default_rng(1))
    assert float(out.std()) == pytest.approx(0.01, rel=0.05)
    shot = downsample(img, DownsampleParams(factor=2.0, photons_per_unit=1000.0), np.random.default_rng(1))
    # Poisson: std = sqrt(x / k) = sqrt(0.2 / 1000) ~= 0.01414.
    assert float(shot.std()) == pytest.approx(np.sqrt(0.2 / 1000.0), rel=0.05)


# ---------------------------------------------------------------- codecs


def _rgb(seed: int = 0, size: int = 96) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.stack([0.5 + 0.15 * fractal_field((size, size), rng, 24.0, beta=2.5) for _ in range(3)]), 0, 1).astype(np.float32)


@pytest.mark.parametrize("codec", ["jpeg", "webp"])
def test_8bit_codecs_error_decreases_with_quality(codec: str) -> None:
    img = _rgb()
    errors = []
    for q in (10, 40, 90):
        out = compress(img, CodecParams(codec=codec, quality=q))
        assert out.shape == img.shape and out.dtype == np.float32
        assert 0.0 <= out.min() and out.max() <= 1.0
        errors.append(float(np.sqrt(np.mean((out - img) ** 2))))
    assert errors[0] > errors[1] > errors[2] > 0.0
    # Other band counts go band by band.
    assert compress(img[:1].repeat(4, 0), CodecParams(codec=codec, quality=50)).shape == (4, 96, 96)


def test_jp2_16bit_error_decreases_with_lower_ratio(scene: np.ndarray) -> None:
    errors = []
    for ratio in (80.0, 20.0, 4.0):
        out = compress(scene, CodecParams(codec="jp2", compression_ratio=ratio))
        assert out.shape == scene.shape and out.dtype == np.float32 and out.min() >= 0.0
        errors.append(float(np.sqrt(np.mean((out - scene) ** 2))))
    assert errors[0] > errors[1] > errors[2] > 0.0


def test_missing_codec_driver_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from osgeo import gdal

    real = gdal.GetDriverByName
    monkeypatch.setattr(gdal, "GetDriverByName", lambda n: None if n == "WEBP" else real(n))
    with pytest.raises(RuntimeError, match="WEBP"):
        compress(_rgb(), CodecParams(codec="webp"))


# ---------------------------------------------------------------- reference


def _phase_correlation_shift(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Shift (dy, dx) that moves a onto b, integer peak + parabolic refinement."""
    fa, fb = np.fft.fft2(a - a.mean()), np.fft.fft2(b - b.mean())
    r = np.fft.ifft2(fb * np.conj(fa) / np.maximum(np.abs(fb * np.conj(fa)), 1e-12)).real
    iy, ix = np.unravel_index(np.argmax(r), r.shape)

    def refine(cm: float, c0: float, cp: float) -> float:
        den = cm - 2 * c0 + cp
        return 0.0 if den == 0 else 0.5 * (cm - cp) / den

    n, m = r.shape
    dy = iy + refine(r[iy - 1, ix], r[iy, ix], r[(iy + 1) % n, ix])
    dx = ix + refine(r[iy, ix - 1], r[iy, ix], r[iy, (ix + 1) % m])
    return (dy - n if dy > n / 2 else dy, dx - m if dx > m / 2 else dx)


def test_reference_shift_measurable(scene: np.ndarray) -> None:
    params = ReferenceParams(gains=(1.0,) * 4, offsets=(0.0,) * 4, shift_px=(2.0, -1.0))
    ref = make_reference(scene, params, BGRN_NM, np.random.default_rng(0))
    dy, dx = _phase_correlation_shift(scene[3, 8:-8, 8:-8], ref.image[3, 8:-8, 8:-8])
    assert (dy, dx) == pytest.approx((2.0, -1.0), abs=0.25)


def test_reference_radiometry_and_greening(scene: np.ndarray) -> None:
    gains, offsets = (1.1, 0.9, 1.0, 1.05), (0.01, -0.01, 0.0, 0.02)
    ref = make_reference(scene, ReferenceParams(gains=gains, offsets=offsets), BGRN_NM, np.random.default_rng(0))
    np.testing.assert_allclose(ref.image, scene * np.array(gains)[:, None, None] + np.array(offsets)[:, None, None], atol=1e-6)
    green = make_reference(scene, ReferenceParams((1.0,) * 4, (0.0,) * 4, greening=0.4), BGRN_NM, np.random.default_rng(0))
    assert float(green.image[3].mean()) > float(scene[3].mean())  # NIR up
    assert float(green.image[2].mean()) < float(scene[2].mean())  # red down
    assert 0.5 < float(green.vegetation_weight.mean()) < 0.9


def test_reference_texture_corr_changes_only_the_fine_detail(scene: np.ndarray) -> None:
    """With texture_corr rho the reference's fine detail correlates with the target's at about rho (the other part
    is the same detail displaced), its blur is the target's, and rho = 1 is the reference of before; the sampler
    draws it only when asked, after the other draws."""
    from rscore.degradations.fields import gaussian_blur
    from rscore.degradations.reference import DETAIL_SIGMA_PX, sample_reference_params

    def detail(x: np.ndarray) -> np.ndarray:
        return (x - gaussian_blur(x, DETAIL_SIGMA_PX))[:, 8:-8, 8:-8]

    same = ReferenceParams(gains=(1.0,) * 4, offsets=(0.0,) * 4)
    np.testing.assert_array_equal(make_reference(scene, same, BGRN_NM, np.random.default_rng(0)).image,
                                  make_reference(scene, ReferenceParams((1.0,) * 4, (0.0,) * 4, texture_corr=1.0),
                                                 BGRN_NM, np.random.default_rng(0)).image)
    # measured as on real dates (detail of each image): falls with rho (the blur of the target's part adds some
    # correlation back, and this scene's texture correlates with its displaced self)
    corrs = []
    for rho in (1.0, 0.9, 0.5, 0.2):
        ref = make_reference(scene, ReferenceParams((1.0,) * 4, (0.0,) * 4, texture_corr=rho,
                                                    texture_offset_px=(6, -5)), BGRN_NM, np.random.default_rng(0))
        corrs.append(np.corrcoef(detail(scene).ravel(), detail(ref.image).ravel())[0, 1])
        blur = gaussian_blur(ref.image, 4.0)[:, 16:-16, 16:-16]
        assert np.abs(blur - gaussian_blur(scene, 4.0)[:, 16:-16, 16:-16]).max() < 0.1 * float(scene.std())
    assert corrs[0] > 0.999 and corrs == sorted(corrs, reverse=True) and corrs[2] < 0.8 and corrs[3] < 0.65
    with pytest.raises(ValueError, match="texture_corr"):
        ReferenceParams((1.0,) * 4, (0.0,) * 4, texture_corr=0.0)
    plain = sample_reference_params(np.random.default_rng(5), 4)
    drawn = sample_reference_params(np.random.default_rng(5), 4, texture_corr_min=0.3)
    assert plain.texture_corr == 1.0 and 0.3 <= drawn.texture_corr < 1.0
    assert drawn.gains == plain.gains and drawn.shift_px == plain.shift_px and drawn.noise_sigma == plain.noise_sigma
    assert all(3 <= abs(v) <= 9 for v in drawn.texture_offset_px)


# ---------------------------------------------------------------- determinism and helpers


@pytest.mark.parametrize("kind", KINDS)
def test_random_degradation_seeded(kind: str, scene: np.ndarray) -> None:
    a = random_degradation(kind, scene, np.random.default_rng(11), BGRN_NM)
    b = random_degradation(kind, scene, np.random.default_rng(11), BGRN_NM)
    c = random_degradation(kind, scene, np.random.default_rng(12), BGRN_NM)
    np.testing.assert_array_equal(a.image, b.image)
    assert a.params == b.params
    assert a.params != c.params
    assert a.image.shape != c.image.shape or not np.array_equal(a.image, c.image)
    assert a.image.dtype == np.float32 and np.isfinite(a.image).all()


def test_random_codec_rgb8_uses_8bit_codec() -> None:
    d = random_degradation("codec", _rgb(), np.random.default_rng(0), RGB_NM, value_scale="rgb8")
    assert d.params.codec in ("jpeg", "webp")


def test_golden_random_haze_value(scene: np.ndarray) -> None:
    d = random_degradation("haze", scene, np.random.default_rng(2024), BGRN_NM)
    # Pins the sampler and the field synthesis: change them only deliberately.
    assert d.params.tau_550 == pytest.approx(GOLDEN_TAU, rel=1e-9)
    assert float(d.image.mean()) == pytest.approx(GOLDEN_HAZE_MEAN, rel=1e-5)


def test_wavelength_tables() -> None:
    assert wavelengths_for(["B02", "B03", "B04", "B08"], "sentinel2") == (492.4, 559.8, 664.6, 832.8)
    assert wavelengths_for(["B2", "B5"], "landsat8") == (482.0, 864.7)
    with pytest.raises(KeyError, match="B99"):
        wavelengths_for(["B99"], "sentinel2")


GOLDEN_TAU = 0.10358080030956442
GOLDEN_HAZE_MEAN = 0.17866849899291992


def test_downsample_noise_levels_are_configurable_without_changing_the_draws():
    from rscore.degradations.resample import sample_downsample_params

    a = sample_downsample_params(np.random.default_rng(4))
    b = sample_downsample_params(np.random.default_rng(4), noise_max=0.002, shot_fraction=0.0)
    assert (a.factor, a.psf_sigma_lr_px) == (b.factor, b.psf_sigma_lr_px)
    assert 0.0 <= b.noise_sigma <= 0.002 and b.photons_per_unit is None
    assert b.noise_sigma == pytest.approx(a.noise_sigma * 0.1)


def test_downsample_psf_range_is_configurable_and_zero_is_a_plain_area_average():
    from rscore.degradations.resample import area_resample, downsample, sample_downsample_params
    from training.tasks.sr import lr_degradation

    a = sample_downsample_params(np.random.default_rng(4))
    b = sample_downsample_params(np.random.default_rng(4), psf_range_lr_px=(0.0, 0.0))
    c = sample_downsample_params(np.random.default_rng(4), psf_range_lr_px=(0.0, 0.7))
    assert 0.3 <= a.psf_sigma_lr_px <= 0.7 and b.psf_sigma_lr_px == 0.0 and 0.0 <= c.psf_sigma_lr_px <= 0.7
    assert (a.factor, a.noise_sigma) == (b.factor, b.noise_sigma) == (c.factor, c.noise_sigma)
    hr = np.random.default_rng(1).random((2, 24, 24)).astype(np.float32)
    sharp = dataclasses.replace(b, factor=3.0, noise_sigma=0.0, photons_per_unit=None)
    np.testing.assert_allclose(downsample(hr, sharp, np.random.default_rng(0)), area_resample(hr, 3.0), atol=1e-6)
    with pytest.raises(ValueError, match="psf_range_lr_px"):
        sample_downsample_params(np.random.default_rng(4), psf_range_lr_px=(0.5, 0.2))
    assert lr_degradation({"lr_noise": {"noise_max": 0.003}, "lr_psf_lr_px": [0, 0.7]}) == {
        "noise_max": 0.003, "psf_range_lr_px": (0.0, 0.7)}
    assert lr_degradation({}) == {}
