"""Global-position noise, and the numpy (plugin) and torch (training) sampling loops agreeing."""

from __future__ import annotations

import numpy as np
import pytest

from rscore.diffusion import gaussian_field


def test_noise_depends_only_on_global_position():
    big = gaussian_field(7, 3, 2, -4, 10, 40, 50)
    part = gaussian_field(7, 3, 2, 6, 25, 12, 9)
    np.testing.assert_array_equal(big[:, 10:22, 15:24], part)
    assert not np.array_equal(gaussian_field(8, 3, 2, 6, 25, 12, 9), part)  # seed matters
    assert not np.array_equal(gaussian_field(7, 4, 2, 6, 25, 12, 9), part)  # stream matters
    assert not np.array_equal(big[0], big[1])  # bands independent


def test_noise_statistics_and_golden_value():
    z = gaussian_field(0, 0, 1, 0, 0, 400, 400)[0].astype(np.float64)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert abs(np.corrcoef(z[:, :-1].ravel(), z[:, 1:].ravel())[0, 1]) < 0.01
    assert abs(np.mean(z**4) - 3.0) < 0.05  # Gaussian kurtosis
    # pinned: the generator is part of the reproducibility contract (a seed must give the same raster
    # in every release)
    np.testing.assert_allclose(gaussian_field(42, -1, 1, 0, 0, 1, 3)[0, 0],
                               GOLDEN_NOISE_42, rtol=0, atol=1e-6)


#: first three values of seed 42, stream -1, band 0, row 0 (recorded when the generator was written)
GOLDEN_NOISE_42 = np.array([-0.8989388, -0.31965178, 1.1744107])


@pytest.mark.parametrize("family", ["rddm", "ddim"])
def test_numpy_onnx_loop_matches_torch_loop(bundles, family):
    """The plugin's pipeline (numpy loop + onnxruntime) and the training loop (torch) agree given the same
    injected noise."""
    torch = pytest.importorskip("torch")
    from rscore.bundle import load_bundle
    from rscore.diffusion.plan import make_plan as mk
    from rscore.models.toy import PointwiseEpsToy, TinyConvDenoiser
    from rscore.runtime.api import build_pipeline
    from rscore.runtime.pipelines import TileContext
    from rscore.torch_ops.diffusion import global_noise, sample_torch

    name = "tiny-conv" if family == "rddm" else "toy-ddim"
    bundle = load_bundle(bundles[name])
    pipe, _ = build_pipeline(bundle, None, "cpu", 2)
    rng = np.random.default_rng(0)
    y = rng.standard_normal((4, 24, 40)).astype(np.float32)
    ctx = TileContext(y=y, aux=None, row_off=5, col_off=-3, seed=11)
    got = pipe.run(ctx)["image"]

    if family == "rddm":
        net = TinyConvDenoiser(4).eval()

        def den(x, yy, t):
            r, e = net(x[None], yy[None], t)
            return {"res": r[0], "eps": e[0]}
    else:
        net = PointwiseEpsToy().eval()

        def den(x, yy, t):
            return {"eps": net(x[None], yy[None], t)[0]}

    plan = mk(bundle.manifest.sampler)
    ref = sample_torch(plan, torch.from_numpy(y), den, global_noise(11, 4, 24, 40, 5, -3)).numpy()
    np.testing.assert_allclose(got, ref, atol=2e-5, rtol=0)
    assert np.abs(got - y).mean() > 1e-3  # the loop really changed the image
