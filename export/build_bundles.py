"""Build the engine's fixture, demo and benchmark bundles with the project's own export code.

    python -m export.build_bundles --out models demo          # the shipped demo bundle
    python -m export.build_bundles --out /tmp/b identity toy-rddm toy-ddim blur-rddm tiny-conv

Every bundle here is built from networks in :mod:`rscore.models.toy` whose outputs are known by hand;
none is trained.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from export.bundle_writer import build_bundle
from export.onnx_export import StageExport
from rscore.bundle.manifest import (
    AutoMaskSpec,
    BandSpec,
    FusionSpec,
    LatentSpec,
    Manifest,
    ScaleRange,
    StageSpec,
    TensorSpec,
    TilingDefaults,
)
from rscore.bundle.store import Bundle
from rscore.diffusion.plan import SamplerConfig
from rscore.models.toy import (
    AuxCopyNet,
    BlockDecoder,
    BlockMeanCond,
    BlurResidualRddm,
    BrightCloudToy,
    HalfNet,
    IdentityNet,
    PointwiseDEToy,
    PointwiseEpsToy,
    PointwiseLatentEps,
    PointwiseRddmToy,
    SpreadNet,
    StridedToy,
    TinyConvDenoiser,
)

BGRN = ("blue", "green", "red", "nir")
#: raster type -> physical units: Sentinel-2 L2A-like reflectance x 1e-4, 8-bit / 255, floats as they are
VALUE_SCALE = {"UInt16": 1e-4, "Int16": 1e-4, "Byte": 1.0 / 255.0, "Float32": 1.0}


def _bands(names: tuple[str, ...], mean: float = 0.0, std: float = 1.0) -> BandSpec:
    return BandSpec(names, (mean,) * len(names), (std,) * len(names))


def _manifest(name: str, title: str, pipeline: str, stages: dict[str, StageExport], bands: tuple[str, ...],
              sampler: SamplerConfig | None = None, tiling: TilingDefaults = TilingDefaults(),
              description: str = "", mean: float = 0.0, std: float = 1.0,
              tensors: dict[str, dict[str, TensorSpec]] | None = None, **kw: object) -> Manifest:
    spec = _bands(bands, mean, std)
    return Manifest(
        name=name, task="restore", title=title, pipeline=pipeline,  # type: ignore[arg-type]
        input=spec, output=spec, value_scale=dict(VALUE_SCALE),
        stages={k: StageSpec(v.file, "", v.inputs, v.outputs, dict((tensors or {}).get(k, {})))
                for k, v in stages.items()},
        tiling=tiling, sampler=sampler, description=description,
        training={"trained": False, "built_by": "python -m export.build_bundles"}, **kw,  # type: ignore[arg-type]
    )


def identity(out: Path, bands: tuple[str, ...] = BGRN) -> Bundle:
    """Direct pipeline, output = input exactly."""
    st = {"net": StageExport(IdentityNet(), ("y",), ("x",), "net.onnx")}
    m = _manifest("identity", "Identity (engine test)", "direct", st, bands,
                  tiling=TilingDefaults(tile_size_px=64, overlap_px=16, margin_px=0))
    return build_bundle(out / "identity", m, st)[0]


def identity_sr(out: Path, bands: tuple[str, ...] = BGRN) -> Bundle:
    """Direct pipeline at any scale 1-8: the output is the engine's bicubic pre-upsampling of the input."""
    st = {"net": StageExport(IdentityNet(), ("y",), ("x",), "net.onnx")}
    m = _manifest("identity-sr", "Identity at any scale (engine test)", "direct", st, bands,
                  tiling=TilingDefaults(tile_size_px=64, overlap_px=16, margin_px=4),
                  scale=ScaleRange(1.0, 8.0, 2.0))
    return build_bundle(out / "identity-sr", m, st)[0]


def aux_copy(out: Path, bands: tuple[str, ...] = BGRN) -> Bundle:
    """Direct pipeline whose output is the auxiliary (reference) input, as warped by the engine."""
    st = {"net": StageExport(AuxCopyNet(), ("y", "aux"), ("x",), "net.onnx")}
    m = _manifest("aux-copy", "Auxiliary copy (engine test)", "direct", st, bands,
                  tiling=TilingDefaults(tile_size_px=64, overlap_px=16, margin_px=0), aux=_bands(bands))
    return build_bundle(out / "aux-copy", m, st)[0]


def spread(out: Path, bands: tuple[str, ...] = BGRN) -> Bundle:
    """Identity plus one extra output band (cross-band spread)."""
    st = {"net": StageExport(SpreadNet(), ("y",), ("x", "spread"), "net.onnx")}
    m = _manifest("spread", "Identity + extra band (engine test)", "direct", st, bands,
                  tiling=TilingDefaults(tile_size_px=64, overlap_px=16, margin_px=0), extra_outputs=("spread",))
    return build_bundle(out / "spread", m, st)[0]


def strided(out: Path, bands: tuple[str, ...] = BGRN) -> Bundle:
    """Direct pipeline with a 4 px pooling grid (size multiple 4): tests the engine's grid alignment."""
    st = {"net": StageExport(StridedToy(), ("y",), ("x",), "net.onnx")}
    m = _manifest("strided", "Strided toy (engine test)", "direct", st, bands,
                  tiling=TilingDefaults(tile_size_px=64, overlap_px=16, margin_px=4, size_multiple=4))
    return build_bundle(out / "strided", m, st)[0]


def toy_rddm(out: Path, bands: tuple[str, ...] = BGRN) -> Bundle:
    """Stochastic (eta = 1) RDDM with a per-pixel toy denoiser: exact tile-size invariance."""
    st = {"denoiser": StageExport(PointwiseRddmToy(), ("x_t", "y", "t"), ("res", "eps"), "denoiser.onnx")}
    sampler = SamplerConfig("rddm", num_timesteps=1000, default_steps=5, eta=1.0, beta_bar_T_sq=0.25)
    m = _manifest("toy-rddm", "Toy stochastic RDDM (engine test)", "rddm", st, bands, sampler,
                  TilingDefaults(tile_size_px=64, overlap_px=16, margin_px=0))
    return build_bundle(out / "toy-rddm", m, st)[0]


def toy_ddim(out: Path, bands: tuple[str, ...] = BGRN) -> Bundle:
    """DDIM (eta = 0.5) from pure noise with a per-pixel toy noise predictor."""
    st = {"denoiser": StageExport(PointwiseEpsToy(), ("x_t", "y", "t"), ("eps",), "denoiser.onnx")}
    sampler = SamplerConfig("ddim", num_timesteps=1000, default_steps=4, eta=0.5)
    m = _manifest("toy-ddim", "Toy DDIM (engine test)", "ddim", st, bands, sampler,
                  TilingDefaults(tile_size_px=64, overlap_px=16, margin_px=0))
    return build_bundle(out / "toy-ddim", m, st)[0]


def toy_de(out: Path, bands: tuple[str, ...] = BGRN) -> Bundle:
    """Diffusion Enhancement with per-pixel toy networks: reference x0_E = y / 2, eps_hat and W pointwise."""
    st = {"coarse": StageExport(HalfNet(), ("y",), ("x",), "reference.onnx"),
          "denoiser": StageExport(PointwiseDEToy(), ("x_t", "y", "coarse", "t"), ("eps", "weight"), "denoiser.onnx")}
    sampler = SamplerConfig("ddim", num_timesteps=1000, default_steps=4, eta=0.0)
    m = _manifest("toy-de", "Toy Diffusion Enhancement (engine test)", "de", st, bands, sampler,
                  TilingDefaults(tile_size_px=64, overlap_px=16, margin_px=0), mean=0.1, std=0.1,
                  fusion=FusionSpec(weight_floor=0.3, x0_min=0.0, x0_max=1.0))
    return build_bundle(out / "toy-de", m, st)[0]


def toy_de_mask(out: Path, bands: tuple[str, ...] = BGRN) -> Bundle:
    """``toy-de`` whose reference also outputs a cloud map (very bright pixels): the automatic mask."""
    st = {"coarse": StageExport(BrightCloudToy(), ("y",), ("x", "cloud"), "reference.onnx"),
          "denoiser": StageExport(PointwiseDEToy(), ("x_t", "y", "coarse", "t"), ("eps", "weight"), "denoiser.onnx")}
    sampler = SamplerConfig("ddim", num_timesteps=1000, default_steps=4, eta=0.0)
    m = _manifest("toy-de-mask", "Toy Diffusion Enhancement with a cloud map (engine test)", "de", st, bands,
                  sampler, TilingDefaults(tile_size_px=64, overlap_px=16, margin_px=0), mean=0.1, std=0.1,
                  fusion=FusionSpec(weight_floor=0.3, x0_min=0.0, x0_max=1.0), extra_outputs=("cloud",),
                  auto_mask=AutoMaskSpec(threshold=0.5, dilate_px=2))
    return build_bundle(out / "toy-de-mask", m, st)[0]


def toy_ldcsr(out: Path, bands: tuple[str, ...] = BGRN) -> Bundle:
    """Latent super-resolution at any scale 1-8 with per-latent-pixel toy networks (4 latent channels at
    output / 8, a 4-step DDPM chain): exact tile-size invariance on the latent grid."""
    st = {"cond": StageExport(BlockMeanCond(), ("y", "scale"), ("c",), "cond.onnx"),
          "denoiser": StageExport(PointwiseLatentEps(), ("x_t", "c", "t", "scale"), ("eps",), "denoiser.onnx"),
          "decoder": StageExport(BlockDecoder(), ("x0", "y", "scale"), ("x",), "decoder.onnx")}
    lat = TensorSpec("latent", len(bands))
    sampler = SamplerConfig("ddim", num_timesteps=4, default_steps=4, eta=1.0, ddpm_schedule="sqrt_linear")
    m = _manifest("toy-ldcsr", "Toy latent super-resolution (engine test)", "ldcsr", st, bands, sampler,
                  TilingDefaults(tile_size_px=64, overlap_px=16, margin_px=8, size_multiple=8),
                  tensors={"cond": {"c": lat}, "denoiser": {"x_t": lat, "c": lat, "eps": lat}, "decoder": {"x0": lat}},
                  latent=LatentSpec(len(bands), 8), scale=ScaleRange(1.0, 8.0, 4.0), mean=0.1, std=0.1)
    return build_bundle(out / "toy-ldcsr", m, st)[0]


def toy_refsr(out: Path, bands: tuple[str, ...] = BGRN) -> Bundle:
    """Reference-based super-resolution with the real TTRD3-style networks (:mod:`rscore.models.ttrd3`) at tiny
    widths and seeded random weights (output layers included, so that the reference changes the result): the
    engine's reference path (warping, validity, coverage, fallback) end to end. Not trained."""
    import torch

    from rscore.models.ttrd3 import MATCH_FACTOR, RefDenoiser, TextureNet, Ttrd3Config

    cfg = Ttrd3Config(len(bands), match_channels=8, texture_channels=4, width=8, search_radius=2, top_k=3)
    torch.manual_seed(0)
    tex, den = TextureNet(cfg), RefDenoiser(cfg)
    with torch.no_grad():
        for out_conv in (tex.head.out, den.net.out):
            out_conv.weight.normal_(0.0, 0.05)
    st = {"coarse": StageExport(tex, ("y", "aux", "aux_valid", "scale"), ("x", "c"), "coarse.onnx"),
          "denoiser": StageExport(den, ("x_t", "y", "coarse", "c", "t", "scale"), ("res", "eps"), "denoiser.onnx")}
    cs = TensorSpec("output", cfg.cond_channels)
    sampler = SamplerConfig("rddm", num_timesteps=1000, default_steps=3, eta=0.0, beta_bar_T_sq=0.01)
    m = _manifest("toy-refsr", "Toy reference-based super-resolution (engine test)", "rddm", st, bands, sampler,
                  TilingDefaults(tile_size_px=64, overlap_px=16, margin_px=32, size_multiple=MATCH_FACTOR),
                  tensors={"coarse": {"c": cs}, "denoiser": {"c": cs}}, scale=ScaleRange(1.0, 8.0, 4.0),
                  resample="bicubic", mean=0.1, std=0.1)
    return build_bundle(out / "toy-refsr", m, st)[0]


def toy_decoded_networks(bands: int = 4):  # noqa: ANN201 - torch modules, imported lazily
    """The toy-decoded bundle's torch networks (enhancement network, condition encoder, denoiser), seeded: the
    real LDM-RSIC-style networks at tiny widths, output layers randomised so that the prior changes the result."""
    import torch

    from rscore.models.ldm_rsic import EnhancementNet, PriorCondEncoder, PriorDenoiser, RsicConfig

    cfg = RsicConfig(bands, prior_channels=4, width=8, mid_blocks=1, encoder_width=8, denoiser_width=8,
                     denoiser_blocks=1)
    torch.manual_seed(0)
    men, cond, den = EnhancementNet(cfg), PriorCondEncoder(cfg), PriorDenoiser(cfg)
    with torch.no_grad():
        for out_conv in (men.out, den.out):
            out_conv.weight.normal_(0.0, 0.05)
    return men.eval(), cond.eval(), den.eval()


def toy_decoded(out: Path, bands: tuple[str, ...] = BGRN, codecs: tuple[str, ...] = ("jpeg", "jpeg2000", "webp"),
                name: str = "toy-decoded") -> Bundle:
    """Codec-decoded enhancement with :func:`toy_decoded_networks`: the ``latent_prior`` pipeline end to end,
    declared as trained for ``codecs``. Not trained."""
    import dataclasses

    from rscore.models.ldm_rsic import SIZE_MULTIPLE, PriorDecoder

    men, cond, den = toy_decoded_networks(len(bands))
    k = cond.net.out.out_channels
    st = {"cond": StageExport(cond, ("y",), ("c",), "cond.onnx"),
          "denoiser": StageExport(den, ("x_t", "c", "t"), ("x0",), "denoiser.onnx"),
          "decoder": StageExport(PriorDecoder(men, 1.0), ("x0", "y"), ("x",), "decoder.onnx")}
    lat = TensorSpec("latent", k)
    sampler = SamplerConfig("ddim", num_timesteps=4, default_steps=4, eta=1.0, ddpm_schedule="sqrt_linear",
                            posterior_noise=False)
    m = _manifest(name, "Toy codec-decoded enhancement (engine test)", "latent_prior", st, bands, sampler,
                  TilingDefaults(tile_size_px=64, overlap_px=16, margin_px=32, size_multiple=SIZE_MULTIPLE),
                  tensors={"cond": {"c": lat}, "denoiser": {"x_t": lat, "c": lat, "x0": lat}, "decoder": {"x0": lat}},
                  latent=LatentSpec(k, 8), mean=0.1, std=0.1)
    m = dataclasses.replace(m, task="enhance_decoded", training={**m.training, "codecs": list(codecs)})
    return build_bundle(out / name, m, st, parity_rows=64, parity_cols=96)[0]


def blur_rddm(out: Path, bands: tuple[str, ...] = BGRN, name: str = "blur-rddm") -> Bundle:
    """Deterministic RDDM whose residual is y - blur(y): a mild smoothing, receptive margin 2 px."""
    st = {"denoiser": StageExport(BlurResidualRddm(len(bands)), ("x_t", "y", "t"), ("res",), "denoiser.onnx")}
    sampler = SamplerConfig("rddm", num_timesteps=1000, default_steps=5, eta=0.0, beta_bar_T_sq=0.01)
    m = _manifest(name, "Demo smoothing (hand-set, untrained RDDM)", "rddm", st, bands, sampler,
                  TilingDefaults(tile_size_px=256, overlap_px=32, margin_px=8),
                  description=("A hand-set residual diffusion bundle that removes a little high-frequency noise. "
                               "It is not trained: it demonstrates the engine until trained models ship."),
                  mean=0.1, std=0.1)
    return build_bundle(out / name, m, st)[0]


def tiny_conv(out: Path, bands: tuple[str, ...] = BGRN) -> Bundle:
    """Random-weight 4-layer 32-channel conv denoiser for engine benchmarks (RDDM, 5 steps)."""
    st = {"denoiser": StageExport(TinyConvDenoiser(len(bands)), ("x_t", "y", "t"), ("res", "eps"), "denoiser.onnx")}
    sampler = SamplerConfig("rddm", num_timesteps=1000, default_steps=5, eta=0.0, beta_bar_T_sq=0.01)
    m = _manifest("tiny-conv", "Tiny conv RDDM (benchmark)", "rddm", st, bands, sampler,
                  TilingDefaults(tile_size_px=256, overlap_px=32, margin_px=8), mean=0.1, std=0.1)
    return build_bundle(out / "tiny-conv", m, st)[0]


def demo(out: Path) -> Bundle:
    """The shipped demo bundle (4-band BGRN, Sentinel-2 L2A-like)."""
    return blur_rddm(out, BGRN, name="demo-smooth-bgrn")


BUILDERS: dict[str, Callable[[Path], Bundle]] = {
    "identity": identity,
    "identity-sr": identity_sr,
    "aux-copy": aux_copy,
    "spread": spread,
    "strided": strided,
    "toy-rddm": toy_rddm,
    "toy-ddim": toy_ddim,
    "toy-de": toy_de,
    "toy-de-mask": toy_de_mask,
    "toy-ldcsr": toy_ldcsr,
    "toy-refsr": toy_refsr,
    "toy-decoded": toy_decoded,
    "blur-rddm": blur_rddm,
    "tiny-conv": tiny_conv,
    "demo": demo,
}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="folder that receives one sub-folder per bundle")
    ap.add_argument("which", nargs="+", choices=sorted(BUILDERS))
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for w in args.which:
        b = BUILDERS[w](args.out)
        print(f"{w}: {b.root} parity {b.manifest.training.get('onnx_parity_max_abs')}")


if __name__ == "__main__":
    main()
