"""The LDCSR networks (rscore/models/ldcsr.py): grids, identities at initialisation, a real-valued scale."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from rscore.models.ldcsr import (  # noqa: E402
    LATENT_FACTOR,
    CondEncoder,
    HrEncoder,
    LatentDenoiser,
    LdcsrConfig,
    ScaleEmbedding,
    SrDecoder,
    kl_to_standard_normal,
)


def test_networks_map_the_output_grid_to_the_latent_grid_and_back():
    torch.manual_seed(0)
    cfg = LdcsrConfig(bands=4, width=8, denoiser_width=16)
    hr, bic = torch.randn(2, 4, 64, 96), torch.randn(2, 4, 64, 96)
    scale = torch.tensor([2.5])
    mean, logvar = HrEncoder(cfg)(hr, bic)
    assert mean.shape == logvar.shape == (2, 4, 64 // LATENT_FACTOR, 96 // LATENT_FACTOR)
    c = CondEncoder(cfg)(bic, scale)
    assert c.shape == mean.shape
    eps = LatentDenoiser(cfg)(torch.randn_like(c), c, torch.tensor([0.5]), scale)
    assert eps.shape == c.shape and torch.count_nonzero(eps) == 0  # zero-initialised output layer
    dec = SrDecoder(cfg)
    out = dec(mean, bic, scale)
    assert torch.equal(out, bic)  # a fresh decoder returns bicubic exactly
    with torch.no_grad():
        dec.out.weight.normal_()
    assert not torch.equal(dec(mean, bic, scale), dec(mean * 0, bic, scale))  # the latent reaches the output
    assert float(kl_to_standard_normal(torch.zeros(3), torch.zeros(3))) == 0.0


def test_scale_is_real_valued_not_truncated():
    torch.manual_seed(0)
    emb = ScaleEmbedding(16)
    e2, e25, e3 = (emb(torch.tensor([s])) for s in (2.0, 2.5, 3.0))
    assert not torch.allclose(e2, e25) and not torch.allclose(e25, e3)
