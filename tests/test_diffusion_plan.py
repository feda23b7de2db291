"""Schedules and sampling plans: golden values worked out by hand, and exact-oracle recovery."""

from __future__ import annotations

import numpy as np
import pytest

from rscore.diffusion import SamplerConfig, make_plan, sample
from rscore.diffusion.plan import timesteps
from rscore.diffusion.schedules import ddpm_alpha_bar, rddm_coefficients

T = 1000


@pytest.mark.parametrize(
    "shape, expected",
    [
        ("average", lambda t: t / T),
        ("increased", lambda t: t * (t + 1) / (T * (T + 1))),  # sum of i for i <= t over sum to T
        ("decreased", lambda t: 1 - (T - t) * (T - t + 1) / (T * (T + 1))),
    ],
)
def test_rddm_alpha_bar_closed_forms(shape, expected):
    ab, bb = rddm_coefficients(T, shape, "average", 0.04)
    t = np.arange(T + 1)
    np.testing.assert_allclose(ab, expected(t), rtol=0, atol=1e-12)
    np.testing.assert_allclose(bb, np.sqrt(0.04 * t / T), rtol=0, atol=1e-12)
    assert ab[0] == 0 and ab[-1] == 1.0


def test_ddpm_linear_and_cosine_golden():
    lin = ddpm_alpha_bar(T, "linear")
    # prod(1 - beta) with beta = linspace(1e-4, 0.02, 1000): the well-known final value 4.036e-5
    assert lin[0] == 1.0
    assert lin[-1] == pytest.approx(4.0358e-05, rel=1e-3)
    assert lin[500] == pytest.approx(np.prod(1 - np.linspace(1e-4, 0.02, T)[:500]), rel=1e-12)
    cos = ddpm_alpha_bar(T, "cosine")
    f = lambda t: np.cos((t / T + 0.008) / 1.008 * np.pi / 2) ** 2  # noqa: E731
    assert cos[500] == pytest.approx(f(500) / f(0), rel=1e-9)


def test_timesteps_even_and_validated():
    assert timesteps(1000, 5) == [1000, 800, 600, 400, 200, 0]
    assert timesteps(10, 3) == [10, 7, 3, 0]
    with pytest.raises(ValueError, match="between 1 and 1000"):
        timesteps(1000, 0)


def test_rddm_plan_golden_values():
    cfg = SamplerConfig("rddm", num_timesteps=T, default_steps=5, eta=0.0, alpha_shape="average",
                        beta2_shape="average", beta_bar_T_sq=0.01)
    plan = make_plan(cfg)
    assert plan.num_steps == 5 and plan.init_y == 1.0 and plan.init_noise == pytest.approx(0.1)
    first, last = plan.steps[0], plan.steps[-1]
    # x_s = x_t - (abar_t - abar_s) r - (bbar_t - bbar_s) eps with abar = t/T, bbar = 0.1 sqrt(t/T)
    assert first.coef_res == pytest.approx(-0.2, abs=1e-12)
    assert first.coef_eps == pytest.approx(-(0.1 - 0.1 * np.sqrt(0.8)), abs=1e-12)
    assert first.t_model == 1.0 and last.t == 200 and last.s == 0
    assert last.coef_eps == pytest.approx(-0.1 * np.sqrt(0.2), abs=1e-12)
    assert all(isinstance(getattr(s, f), float) for s in plan.steps for f in ("coef_x", "coef_res", "coef_eps"))
    assert all(s.coef_noise == 0.0 for s in plan.steps)


def test_ddim_plan_golden_values():
    plan = make_plan(SamplerConfig("ddim", num_timesteps=T, default_steps=4, eta=0.0))
    a = ddpm_alpha_bar(T, "linear")
    st = plan.steps[1]  # 750 -> 500
    assert (st.t, st.s) == (750, 500)
    c = np.sqrt(1 - a[500]) / np.sqrt(1 - a[750])
    assert st.coef_x == pytest.approx(c, rel=1e-12)
    assert st.coef_x0 == pytest.approx(np.sqrt(a[500]) - c * np.sqrt(a[750]), rel=1e-12)
    assert plan.steps[-1].coef_x == 0.0 and plan.steps[-1].coef_x0 == pytest.approx(1.0)
    assert plan.init_y == 0.0 and plan.init_noise == 1.0


@pytest.mark.parametrize("family, eta", [("rddm", 0.0), ("rddm", 1.0), ("ddim", 0.0), ("ddim", 1.0)])
def test_oracle_predictions_recover_x0_exactly(family, eta):
    """With exact predictions of the clean image, every plan ends on x0 (any eta: injected noise is
    consistent with the forward marginals)."""
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((2, 8, 8))
    y = x0 + 0.5 * rng.standard_normal((2, 8, 8))
    cfg = SamplerConfig(family, num_timesteps=T, default_steps=7, eta=eta, beta_bar_T_sq=0.3)
    plan = make_plan(cfg)
    ab, bb = rddm_coefficients(T, cfg.alpha_shape, cfg.beta2_shape, cfg.beta_bar_T_sq)

    def predict(x, step):
        if family == "rddm":
            r = y - x0
            return {"res": r, "eps": (x - x0 - ab[step.t] * r) / bb[step.t]}
        return {"x0": x0 + 0 * x}

    noise = lambda k: np.random.default_rng(100 + k).standard_normal(x0.shape)  # noqa: E731
    out = sample(plan, y, predict, noise)
    np.testing.assert_allclose(out, x0, atol=1e-9)


def test_sampler_config_roundtrip_and_validation():
    cfg = SamplerConfig("rddm", default_steps=3)
    assert SamplerConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown sampler settings"):
        SamplerConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    with pytest.raises(ValueError, match="eta"):
        SamplerConfig("ddim", eta=2.0)


def test_numpy_float32_stays_float32():
    """Plan scalars are Python floats: a float32 state never promotes to float64 (onnxruntime rejects it)."""
    plan = make_plan(SamplerConfig("rddm", eta=1.0))
    y = np.ones((1, 4, 4), np.float32)
    out = sample(plan, y, lambda x, s: {"res": x * 0, "eps": x * 0}, lambda k: np.ones_like(y))
    assert out.dtype == np.float32
