"""refsr-bgrn's reference matching in two forms: the shipped one (a product and a channel sum per offset of the
search window, then one Concat) and one with few layers (the window unfolded by one convolution with one-hot
kernels, one product, one channel sum, the offsets' penalties as one constant). Same function; prints the largest
difference in PyTorch, and the time of each export in onnxruntime fp32 and OpenVINO bf16 with their agreement.

    .venv/bin/python tools/bench_refsr_matching.py [--size 496] [--repeats 5]

The network is a ``TextureNet`` of the default configuration with random weights and no plain-SR base: the
matching is the same as in the shipped bundle, whose other networks are left out. docs/performance.md
(*On a CPU with AVX512-BF16*) has the figures.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rscore.models.ttrd3 import TextureNet, Ttrd3Config  # noqa: E402


class FewLayerMatching(TextureNet):
    """The same network with the few-layer similarity form."""

    def similarities(self, q: torch.Tensor, k: torch.Tensor, valid4: torch.Tensor) -> torch.Tensor:
        side = 2 * self.cfg.search_radius + 1
        o = side * side
        n, c, h, w = q.shape
        eye = torch.eye(o, dtype=q.dtype).view(o, 1, side, side)
        kw = F.conv2d(k, eye.repeat(c, 1, 1, 1), groups=c)  # (n, c * o, h, w): k_c at every offset
        s = (kw.view(n, c, o, h, w) * q.unsqueeze(2)).sum(dim=1)
        bias = torch.tensor([1e-4 * (dy * dy + dx * dx + i / o) for i, (dy, dx) in enumerate(self.offsets())],
                            dtype=q.dtype).view(1, o, 1, 1)
        return s - 2.0 * (1.0 - F.conv2d(valid4, eye)) - bias


def timed(fn, repeats: int) -> float:  # noqa: ANN001
    for _ in range(2):
        fn()
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t) / repeats


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=496, help="tile side in pixels (the default tiling's is 496)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    import onnxruntime as ort
    import openvino as ov

    from rscore.runtime.openvino_backend import split_wide_group_convs

    torch.manual_seed(0)
    cfg = Ttrd3Config(4)
    shipped, few = TextureNet(cfg).eval(), FewLayerMatching(cfg).eval()
    few.load_state_dict(shipped.state_dict())
    s = args.size
    y, aux = torch.randn(1, 4, s, s), torch.randn(1, 4, s, s)
    valid = torch.ones(1, 1, s, s)
    valid[..., : s // 10, :] = 0
    scale = torch.tensor([4.0])
    with torch.no_grad():
        a, b = shipped(y, aux, valid, scale), few(y, aux, valid, scale)
    dx, dc = float((a[0] - b[0]).abs().max()), float((a[1] - b[1]).abs().max())
    print(f"PyTorch: largest difference x {dx:.2e}, c {dc:.2e}")
    feeds = {"y": y.numpy(), "aux": aux.numpy(), "aux_valid": valid.numpy(), "scale": scale.numpy()}
    with tempfile.TemporaryDirectory() as d:
        for name, net in (("shipped", shipped), ("few layers", few)):
            path = str(Path(d) / "tex.onnx")
            torch.onnx.export(net, (y, aux, valid, scale), path, input_names=list(feeds), output_names=["x", "c"],
                              opset_version=17, dynamo=False)
            so = ort.SessionOptions()
            so.intra_op_num_threads = args.threads
            sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
            ref = sess.run(None, feeds)[0]
            t_ort = timed(lambda: sess.run(None, feeds), args.repeats)  # noqa: B023
            model = ov.Core().read_model(path)
            split_wide_group_convs(model)
            config = {"INFERENCE_PRECISION_HINT": "bf16", "INFERENCE_NUM_THREADS": str(args.threads)}
            req = ov.Core().compile_model(model, "CPU", config).create_infer_request()
            inputs = list(feeds.values())
            t_ov = timed(lambda: req.infer(inputs), args.repeats)  # noqa: B023
            out = req.get_output_tensor(0).data
            psnr = 10 * np.log10(float(ref.max() - ref.min()) ** 2 / float(((out - ref) ** 2).mean()))
            print(f"{name}: onnxruntime fp32 {1e3 * t_ort:.0f} ms, OpenVINO bf16 {1e3 * t_ov:.0f} ms, "
                  f"bf16 against onnxruntime {psnr:.1f} dB")


if __name__ == "__main__":
    main()
