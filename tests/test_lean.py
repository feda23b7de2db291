"""Lean stage-1 networks (issue 14): the lean blocks, the conversion of trained weights, warm starts from a
committed bundle, and what the exported graph contains."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from rscore.models.blocks import Act, ChannelNorm
from rscore.models.dsrdmpd import AffineDehazeNet, CloudReferenceNet, UNetConfig, lean_state_dict, norm_fits
from training.warm_start import bundle_weights

ROOT = Path(__file__).resolve().parents[1]


def _trained_like(cfg: UNetConfig, seed: int = 0, kind: type = AffineDehazeNet) -> nn.Module:
    """A stage-1 network with every weight random (the zero-initialised heads too), as after training."""
    torch.manual_seed(seed)
    net = kind(cfg)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * 0.1)
    return net.eval()


@pytest.mark.parametrize("kind", [AffineDehazeNet, CloudReferenceNet])
def test_lean_twin_matches_the_trained_network_with_fitted_norms(kind):
    """Everything but the norm replacement is exact: with GELU, the lean twin equals the trained network whose
    norms are replaced by their affine fits (away from the zero-padded border, where folding a bias into a
    depthwise convolution differs)."""
    cfg = UNetConfig(4, width=8, context_px=16)
    trained = _trained_like(cfg, kind=kind)
    x = torch.randn(2, 4, 128, 128)
    fits = norm_fits(trained, x[:1])
    assert len(fits) == 6  # one norm per block: 2 MC blocks (encoder), 4 ESS blocks (2 middle, 2 decoder)
    lean = kind(UNetConfig(4, width=8, context_px=16, lean=True)).eval()
    lean.load_state_dict(lean_state_dict(trained, fits), strict=True)
    for m in lean.modules():
        if isinstance(m, Act):
            m.relu_weight = 0.0
    for name, mod in trained.named_modules():
        if isinstance(mod, ChannelNorm):
            a, b = fits[name]
            mod.forward = lambda t, a=a, b=b: t * a.view(1, -1, 1, 1) + b.view(1, -1, 1, 1)
    with torch.no_grad():
        want, got = trained(x), lean(x)
    if kind is CloudReferenceNet:  # (restored, cloud probability): both must agree
        want, got = torch.cat(want, dim=1), torch.cat(got, dim=1)
    inner = (slice(None), slice(None), slice(56, 72), slice(56, 72))
    scale = want.abs().max()
    assert (got[inner] - want[inner]).abs().max() < 1e-5 * scale
    assert (got - want).abs().max() > 1e-3 * scale  # the border does differ: the test can see a difference


def test_norm_fits_are_least_squares_per_channel():
    trained = _trained_like(UNetConfig(3, width=8), seed=1)
    x = torch.randn(1, 3, 64, 64)
    seen = {}
    hook = trained.enc1[0].norm.register_forward_hook(lambda m, a, o: seen.update(x=a[0], h=o))
    fits = norm_fits(trained, x)
    hook.remove()
    a, b = fits["enc1.0.norm"]
    xs = seen["x"][0, 0].flatten().double().numpy()
    hs = seen["h"][0, 0].flatten().double().numpy()
    slope, intercept = np.polyfit(xs, hs, 1)
    assert a[0].item() == pytest.approx(slope, rel=1e-4)
    assert b[0].item() == pytest.approx(intercept, abs=1e-4)


def test_lean_export_has_no_norm_erf_or_concat(tmp_path):
    net = AffineDehazeNet(UNetConfig(4, width=8, lean=True)).eval()
    path = tmp_path / "lean.onnx"
    torch.onnx.export(net, (torch.randn(1, 4, 32, 32),), path, input_names=["y"], output_names=["x"],
                      opset_version=17, dynamo=False)
    ops = {n.op_type for n in onnx.load(path).graph.node}
    assert "Relu" in ops
    assert not ops & {"Erf", "ReduceMean", "Pow", "Sqrt", "Concat"}


def test_relu_weight_blends_gelu_into_relu():
    act = Act()
    x = torch.linspace(-3, 3, 61)
    assert torch.equal(act(x), torch.relu(x))
    act.relu_weight = 0.25
    assert torch.allclose(act(x), 0.25 * torch.relu(x) + 0.75 * nn.functional.gelu(x))


@pytest.mark.parametrize("bundle, net, bands", [
    ("dehaze-rgb", lambda: AffineDehazeNet(UNetConfig(3, width=16, context_px=48, lean=True)), 3),  # lean
    ("clouds-bgrn", lambda: CloudReferenceNet(UNetConfig(4, width=16)), 4),  # GELU and channel norms
])
def test_bundle_weights_are_the_state_dict_of_the_shipped_stage(bundle, net, bands):
    """Warm starts read weights back from ONNX initializers: they load strictly into the network the bundle's
    config describes, and that network reproduces the ONNX stage."""
    import json

    weights = bundle_weights(f"models/{bundle}")
    model = net().eval()
    model.load_state_dict({k: v for k, v in weights["coarse"].items() if k in model.state_dict()}, strict=True)
    x = np.random.default_rng(0).normal(size=(1, bands, 64, 64)).astype(np.float32)
    stage = json.loads((ROOT / "models" / bundle / "manifest.json").read_text())["stages"]["coarse"]["file"]
    sess = ort.InferenceSession(str(ROOT / "models" / bundle / stage), providers=["CPUExecutionProvider"])
    want = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        got = model(torch.from_numpy(x))
    got = (got[0] if isinstance(got, tuple) else got).numpy()
    assert np.abs(got - want).max() < 1e-4


def test_bundle_weights_at_a_git_revision_and_clear_errors():
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    at_rev = bundle_weights(f"{head.stdout.strip()}:models/dehaze-rgb")
    here = bundle_weights("models/dehaze-rgb")
    assert at_rev.keys() == here.keys()
    assert all(torch.equal(at_rev["coarse"][k], here["coarse"][k]) for k in here["coarse"])
    with pytest.raises(FileNotFoundError, match="model.init_from"):
        bundle_weights("models/no-such-bundle")
    with pytest.raises(FileNotFoundError, match="git cannot show"):
        bundle_weights("0000000:models/dehaze-rgb")


def test_tiny_lean_run_warm_starts_from_a_bundle_and_exports_a_lean_bundle(tmp_path, bgrn_tif):
    """The training path end to end: a tiny dehaze bundle, then a lean run warm-started from it
    (``model.init_from``, ``model.relu_ramp``) whose export has no norm, GELU or Concat and runs in the runtime."""
    import yaml

    from rscore.bundle import load_bundle
    from rscore.runtime import RestoreRequest, restore
    from training.train import main as train_main

    tiny = ROOT / "training" / "configs" / "tiny_dehaze_test.yaml"
    runs, models = tmp_path / "runs", tmp_path / "models"
    base = train_main(["--config", str(tiny), "--runs", str(runs), "--out", str(models), "--max-steps", "20"])
    cfg = yaml.safe_load(tiny.read_text())
    cfg["name"] = "tiny-lean-test"
    cfg["model"].update(lean=True, relu_ramp=0.5, init_from=str(base))
    lean_cfg = tmp_path / "tiny_lean_test.yaml"
    lean_cfg.write_text(yaml.safe_dump(cfg))
    bundle = train_main(["--config", str(lean_cfg), "--runs", str(runs), "--out", str(models), "--max-steps", "10"])
    coarse = onnx.load(bundle / "coarse.onnx")
    ops = {n.op_type for n in coarse.graph.node}
    assert "Relu" in ops and not ops & {"Erf", "ReduceMean", "Concat"}
    # the warm start carried the base bundle's denoiser over (same architecture; 10 more steps move it a little)
    base_w, lean_w = bundle_weights(str(base))["denoiser"], bundle_weights(str(bundle))["denoiser"]
    assert torch.allclose(base_w["head.weight"], lean_w["head.weight"], atol=0.05)
    assert not torch.allclose(lean_w["head.weight"], torch.zeros_like(lean_w["head.weight"]))
    assert load_bundle(bundle).manifest.training["steps"] == 10
    out = tmp_path / "o.tif"
    restore(RestoreRequest(str(bgrn_tif), str(bundle), str(out), seed=0, tile_size_px=64, overlap_px=16))
    assert out.exists()


def test_split_conv_is_the_single_convolution_cut_into_parts_and_loads_its_weights():
    from rscore.models.blocks import SplitConv

    torch.manual_seed(3)
    whole, dw = nn.Conv2d(6, 10, 1), nn.Conv2d(10, 10, 3, padding=1, groups=10)
    split, split_dw = SplitConv(6, (4, 6)), SplitConv(0, (4, 6), 3, depthwise=True)
    split.load_state_dict(whole.state_dict())
    split_dw.load_state_dict(dw.state_dict())
    x = torch.randn(2, 6, 9, 11)
    with torch.no_grad():
        want = torch.split(dw(whole(x)), [4, 6], dim=1)
        got = split_dw(split(x))
    assert [tuple(t.shape) for t in got] == [(2, 4, 9, 11), (2, 6, 9, 11)]
    assert all(torch.allclose(g, w, atol=1e-6) for g, w in zip(got, want))
    with pytest.raises(ValueError, match="need 9"):
        SplitConv(6, (4, 5)).load_state_dict(whole.state_dict())
    with pytest.raises(ValueError, match="one input per part"):
        split_dw(x)


@pytest.mark.parametrize("bundle, bands", [("decoded-rgb", 3), ("decoded-bgrn", 4)])
def test_codec_decoder_in_parts_reproduces_the_shipped_stage_and_exports_no_split(
        bundle, bands, tmp_path):
    """The enhancement network's convolutions in parts (and the prior resized before its projection) compute
    the same function as the shipped decoder, whose weights are in the single-convolution form, and its export
    has no Split: every part is a convolution of its own."""
    import json

    from rscore.models.ldm_rsic import EnhancementNet, PriorDecoder, RsicConfig
    from training.warm_start import unwrap

    manifest = json.loads((ROOT / "models" / bundle / "manifest.json").read_text())
    weights = bundle_weights(f"models/{bundle}")["decoder"]
    men = EnhancementNet(RsicConfig(bands, width=weights["men.stem.weight"].shape[0])).eval()
    men.load_state_dict(unwrap(weights, men.state_dict().keys()), strict=True)
    rng = np.random.default_rng(1)
    feeds = {"x0": rng.normal(size=(1, 8, 8, 12)).astype(np.float32),
             "y": rng.uniform(0, 1, size=(1, bands, 64, 96)).astype(np.float32)}
    sess = ort.InferenceSession(str(ROOT / "models" / bundle / "decoder.onnx"), providers=["CPUExecutionProvider"])
    want = sess.run(None, feeds)[0]
    decoder = PriorDecoder(men, manifest["training"]["z_std"]).eval()
    with torch.no_grad():
        got = decoder(*(torch.from_numpy(feeds[k]) for k in ("x0", "y"))).numpy()
    assert np.abs(got - want).max() < 1e-4
    path = tmp_path / "decoder.onnx"
    torch.onnx.export(decoder, tuple(torch.from_numpy(feeds[k]) for k in ("x0", "y")), path,
                      input_names=["x0", "y"], output_names=["x"], opset_version=17, dynamo=False)
    graph = onnx.load(path).graph
    assert "Split" not in {n.op_type for n in graph.node}
    assert all(i.name.startswith("men.") for i in graph.initializer)  # warm starts read them back by name
