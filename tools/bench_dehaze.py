"""Dehazing speed: the full rsrestore:dehaze path at default settings on a 2000 x 2000 4-band raster.

    .venv/bin/python tools/bench_dehaze.py [--size 2000] [--bundle models/dehaze-bgrn]

Reports wall time, pixels per second, time per network evaluation (inside onnxruntime, timed within the
run) and the ratio against the same networks in PyTorch eager (fp32, same threads, same tile shape, random
weights of the same architecture: speed does not depend on the weight values).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from rscore.bundle import load_bundle  # noqa: E402
from rscore.degradations.haze import add_haze  # noqa: E402
from rscore.models.dsrdmpd import MCESSUNet, ResidualDenoiser, UNetConfig  # noqa: E402
from rscore.runtime import RestoreRequest, restore  # noqa: E402
from rscore.runtime.predictor import default_threads  # noqa: E402
from tests.fixtures import rasters  # noqa: E402
from tools.bench_engine import StageTimer  # noqa: E402
from training.config import TrainConfig  # noqa: E402


def torch_eager_seconds(bundle_dir: Path, tile_px: int) -> tuple[float, float]:
    """Seconds per evaluation of the coarse and denoiser networks in PyTorch eager on one padded tile."""
    m = load_bundle(bundle_dir).manifest
    cfg = TrainConfig.load(ROOT / "training" / "configs" / f"{m.name.replace('-', '_')}.yaml")
    n = m.input.count
    coarse = MCESSUNet(UNetConfig(n, width=int(cfg.model.get("coarse_width", 16)))).eval()
    den = ResidualDenoiser(UNetConfig(n, width=int(cfg.model.get("denoiser_width", 16)))).eval()
    torch.set_num_threads(default_threads())
    x = torch.randn(1, n, tile_px, tile_px)
    t = torch.tensor([0.5])
    with torch.no_grad():
        coarse(x)
        t0 = time.perf_counter()
        coarse(x)
        tc = time.perf_counter() - t0
        den(x, x, x, t)
        t0 = time.perf_counter()
        for _ in range(2):
            den(x, x, x, t)
        td = (time.perf_counter() - t0) / 2
    return tc, td


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=2000)
    ap.add_argument("--bundle", type=Path, default=ROOT / "models" / "dehaze-bgrn")
    args = ap.parse_args(argv)
    b = load_bundle(args.bundle)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        clean = rasters.scene(4, args.size, args.size, seed=5)
        hazy = add_haze(clean.astype(np.float32), (490.0, 560.0, 665.0, 842.0), np.random.default_rng(0),
                        level="moderate")[0].image
        src = rasters.write(tmp / "hazy.tif", np.round(np.clip(hazy, 0, 6.5) * 1e4), "UInt16")
        warm = rasters.write(tmp / "warm.tif", np.round(np.clip(hazy[:, :96, :96], 0, 6.5) * 1e4), "UInt16")
        restore(RestoreRequest(str(warm), str(args.bundle), str(tmp / "warm_out.tif"), device="cpu"))  # sessions
        with StageTimer() as timer:
            t0 = time.perf_counter()
            rep = restore(RestoreRequest(str(src), str(args.bundle), str(tmp / "out.tif"), device="cpu"))
            wall = time.perf_counter() - t0
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before the PyTorch comparison
    tiling = b.manifest.tiling
    tile_px = min(tiling.tile_size_px, args.size) + 2 * tiling.margin_px
    tile_px += (-tile_px) % tiling.size_multiple
    per_eval = timer.seconds / timer.calls
    tc, td = torch_eager_seconds(args.bundle, tile_px)
    eager_per_eval = (tc + rep.steps * td) / (1 + rep.steps)
    print(f"bundle {b.manifest.name}, {args.size} x {args.size} x 4 uint16, default settings "
          f"({rep.steps} steps, {tiling.tile_size_px} px tiles, margin {tiling.margin_px} px), "
          f"{default_threads()} threads")
    print()
    print("| raster | tiles | network evals | wall s | px/s | s per network eval (ONNX) | "
          "s per eval (PyTorch eager) | eager / ONNX | engine overhead | peak RSS |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {args.size}² x 4 | {rep.tiles_total} | {timer.calls} | {wall:.1f} | {args.size ** 2 / wall:,.0f} | "
          f"{per_eval:.3f} | {eager_per_eval:.3f} | {eager_per_eval / per_eval:.2f} | "
          f"{100 * (wall - timer.seconds) / wall:.1f} % | {rss_mb:,.0f} MB |")


if __name__ == "__main__":
    main()
