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


@pytest.mark.parametrize("name", ["tiny-conv", "toy-ddim", "toy-de", "identity"])
def test_numpy_onnx_pipeline_matches_torch_loop(bundles, name):
    """Every pipeline: the plugin's pipeline (numpy loop + onnxruntime) and the training-time loop (torch, the
    same terms rule) agree given the same injected noise."""
    torch = pytest.importorskip("torch")
    from rscore.bundle import load_bundle
    from rscore.diffusion.plan import make_plan as mk
    from rscore.diffusion.terms import TermContext
    from rscore.models.toy import HalfNet, IdentityNet, PointwiseDEToy, PointwiseEpsToy, TinyConvDenoiser
    from rscore.pipelines import PIPELINE_CLASSES, TileContext
    from rscore.runtime.api import build_pipeline
    from rscore.torch_ops.diffusion import global_noise, sample_torch

    bundle = load_bundle(bundles[name])
    m = bundle.manifest
    pipe, _ = build_pipeline(bundle, m.sampler.default_steps if m.sampler else None, "cpu", 2)
    rng = np.random.default_rng(0)
    y = rng.standard_normal((4, 24, 40)).astype(np.float32)
    ctx = TileContext(y=y, aux=None, row_off=5, col_off=-3, seed=11)
    got = pipe.run(ctx)["image"]
    yt = torch.from_numpy(y)
    noise = global_noise(11, 4, 24, 40, 5, -3)
    rule = PIPELINE_CLASSES[m.pipeline].SPEC.terms
    if m.pipeline == "direct":
        ref = IdentityNet()(yt[None])[0].numpy()
    elif m.pipeline == "rddm":
        net = TinyConvDenoiser(4).eval()

        def den(x, t):
            r, e = net(x[None], yt[None], t)
            return {"res": r[0], "eps": e[0]}

        ref = sample_torch(mk(m.sampler), yt, den, noise, rule).numpy()
    elif m.pipeline == "ddim":
        net = PointwiseEpsToy().eval()

        def den(x, t):
            return {"eps": net(x[None], yt[None], t)[0]}

        ref = sample_torch(mk(m.sampler), torch.zeros_like(yt), den, noise, rule).numpy()
    else:
        coarse = HalfNet()(yt[None])[0]
        net = PointwiseDEToy().eval()

        def den(x, t):
            e, w = net(x[None], yt[None], coarse[None], t)
            return {"eps": e[0], "weight": w[0]}

        mean, std = np.float32(0.1), np.float32(0.1)
        tctx = TermContext(ref=coarse, lo=float((0.0 - mean) / std), hi=float((1.0 - mean) / std),
                           weight_floor=m.fusion.weight_floor)
        ref = sample_torch(mk(m.sampler), torch.zeros_like(yt), den, noise, rule, tctx).numpy()
    np.testing.assert_allclose(got, ref, atol=2e-5, rtol=0)
    if m.pipeline != "direct":
        assert np.abs(got - y).mean() > 1e-3  # the loop really changed the image
