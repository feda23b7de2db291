"""Training step time in fp32 and under bf16 autocast on this CPU, for the dehazing and cloud networks.

    .venv/bin/python tools/bench_train_precision.py [--threads 1] [--repeat 3] [--lean-widths 16 24 32]

Prints the CPU's vector features (/proc/cpuinfo), then the mean time of a forward + backward pass of each
network on a batch of 8 patches of 96 px (the training configs' shapes), after two warm-up passes. The configs
train in whichever precision is faster here (docs/performance.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rscore.models.de import NoisePredictor, WeightNet  # noqa: E402
from rscore.models.dsrdmpd import AffineDehazeNet, CloudReferenceNet, ResidualDenoiser, UNetConfig  # noqa: E402


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                keep = sorted(f for f in flags if f.startswith(("avx", "amx")) or f == "fma")
                return " ".join(keep) or "none of avx/amx"
    except OSError:
        pass
    return "unknown"


def step_seconds(net: torch.nn.Module, inputs: list[torch.Tensor], bf16: bool, repeat: int) -> float:
    def once() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = net(*inputs)
        out = out[0] if isinstance(out, tuple) else out
        out.float().mean().backward()

    for _ in range(2):
        once()
    t0 = time.perf_counter()
    for _ in range(repeat):
        once()
    return (time.perf_counter() - t0) / repeat


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--lean-widths", type=int, nargs="*", default=[16, 24, 32],
                    help="widths of the lean stage 1 to time as well (none: pass the flag alone)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(8, 4, 96, 96)
    t = torch.rand(8)
    cfg = UNetConfig(4, width=16)
    cases = {
        "AffineDehazeNet (stage 1)": (AffineDehazeNet(cfg), [x]),
        "ResidualDenoiser (stage 2)": (ResidualDenoiser(cfg), [x, x, x, t]),
        "CloudReferenceNet (E)": (CloudReferenceNet(cfg), [x]),
        "NoisePredictor (CNP)": (NoisePredictor(cfg), [x, x, t]),
        "WeightNet (WA)": (WeightNet(UNetConfig(4, width=8, mid_blocks=1)), [x, x, x, t]),
    }
    # the lean stage 1 (ReLU, no channel norms, no Concat) at the widths a dehazing config may choose
    for width in args.lean_widths:
        cases[f"AffineDehazeNet, lean, width {width}"] = (
            AffineDehazeNet(UNetConfig(4, width=width, context_px=48, lean=True)), [x])
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, flags: "
          f"{_cpu_flags()}, {args.threads} thread(s), batch 8 x 4 x 96 x 96, forward + backward")
    print("| network | fp32 s | bf16 autocast s | bf16 / fp32 |")
    print("|---|---|---|---|")
    for name, (net, inputs) in cases.items():
        a = step_seconds(net, inputs, False, args.repeat)
        b = step_seconds(net, inputs, True, args.repeat)
        print(f"| {name} | {a:.3f} | {b:.3f} | {b / a:.2f} |", flush=True)


if __name__ == "__main__":
    main()
