"""The bf16 path, network by network: onnxruntime fp32 against OpenVINO fp32 and bf16 on every shipped bundle.

This checks a CPU with native bf16 (AMX or AVX512-BF16), which the project's own machine lacks. It runs in two
steps, so that the second needs only numpy, onnxruntime and openvino (no GDAL, no rsrestore runtime):

    .venv/bin/python tools/bench_bf16.py record DIR      # here: real stage inputs of the first tile of the
                                                         # shipped samples, and each stage's shape at defaults
    python3 tools/bench_bf16.py measure DIR [--threads 2 16]   # there (with models/): timings and parity

``measure`` prints, for every stage of every bundle:
- the mean seconds of one evaluation at the default tile's shape (random inputs), for onnxruntime fp32,
  OpenVINO fp32 and OpenVINO bf16;
- the bf16 speed-up over onnxruntime fp32;
- the PSNR of OpenVINO bf16's output against onnxruntime fp32's on the recorded real inputs, peak = the fp32
  output's range.
The pipeline-level parity on the rsrestore runtime is tests/test_openvino.py (it needs GDAL).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def record(out_dir: Path) -> None:
    """Stage inputs of the first tile of a small sample run (real values), and each stage's input shapes at the
    bundle's default tiling on a 1024 px raster, per shipped bundle."""
    import tempfile

    sys.path.insert(0, str(ROOT))
    from osgeo import gdal

    from rscore.runtime import RestoreRequest, restore
    from rscore.runtime.predictor import OnnxStage
    from tests.fixtures.rasters import mosaic_vrt

    captured: dict[str, dict[str, np.ndarray]] = {}
    inner = OnnxStage.__call__

    def capture(self, feeds):  # noqa: ANN001, ANN202 - a recording wrapper
        if self.name not in captured:
            captured[self.name] = {k: np.asarray(v, np.float32).copy() for k, v in feeds.items()
                                   if k in self.input_names}
        return inner(self, feeds)

    OnnxStage.__call__ = capture
    out_dir.mkdir(parents=True, exist_ok=True)
    sample = ROOT / "data" / "samples" / "s2_hazy_bgrn_512.tif"
    shapes: dict[str, dict[str, dict[str, list[int]]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        rgb_tile = d / "rgb8.tif"
        gdal.Translate(str(rgb_tile), str(sample), bandList=[3, 2, 1], outputType=gdal.GDT_Byte,
                       scaleParams=[[0, 3500, 0, 255]])
        for bundle in sorted(p.parent for p in (ROOT / "models").glob("*/manifest.json")):
            m = json.loads((bundle / "manifest.json").read_text())
            tile = rgb_tile if len(m["input"]["names"]) == 3 else sample
            scale = float(m["scale"]["default"])
            aux = any("aux" in s["inputs"] for s in m["stages"].values())
            for size, tag in ((160, "small"), (1024, "full")):
                src = mosaic_vrt(d / f"{bundle.name}-{tag}.vrt", tile, int(size / scale), int(size / scale))
                ref = mosaic_vrt(d / f"{bundle.name}-{tag}-ref.vrt", tile, size, size) if aux else None
                captured.clear()
                restore(RestoreRequest(str(src), str(bundle), str(d / f"{bundle.name}-{tag}.tif"),
                                       aux_path=str(ref) if ref else None, device="cpu", threads=2,
                                       tile_size_px=128 if tag == "small" else None))
                if tag == "small":
                    np.savez_compressed(out_dir / f"{bundle.name}.npz",
                                        **{f"{st}/{k}": v for st, feeds in captured.items() for k, v in feeds.items()})
                else:
                    shapes[bundle.name] = {st: {k: list(v.shape) for k, v in feeds.items()}
                                           for st, feeds in captured.items()}

            print(f"recorded {bundle.name}: {', '.join(shapes[bundle.name])}", flush=True)
    (out_dir / "shapes.json").write_text(json.dumps(shapes, indent=1))


@functools.cache
def _split_wide_group_convs():  # noqa: ANN202
    """The runtime's rewrite of wide depthwise kernels for bf16 (without it OpenVINO's bf16 compilation of
    refsr-bgrn's low-pass never returns); None where rscore's runtime cannot be imported."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    try:
        from rscore.runtime.openvino_backend import split_wide_group_convs
    except ImportError as exc:
        print(f"warning: rscore's OpenVINO backend cannot be imported ({exc}): wide depthwise kernels are not "
              "split, and bf16 compilation may not return for refsr-bgrn", file=sys.stderr)
        return None
    return split_wide_group_convs


def _compiled(core, model, feeds: dict[str, np.ndarray], precision: str, threads: int):  # noqa: ANN001, ANN202
    """The OpenVINO network compiled for these input shapes, threads and inference precision, with the
    runtime's bf16 rewrite where it applies."""
    mm = model.clone()
    split = _split_wide_group_convs() if precision == "bf16" else None
    if split is not None:
        split(mm)
    mm.reshape({k: list(v.shape) for k, v in feeds.items()})
    return core.compile_model(mm, "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads,
                                          "INFERENCE_PRECISION_HINT": precision})


def _timed(fn, repeats: int) -> float:  # noqa: ANN001
    """Mean seconds of ``fn()`` over ``repeats`` calls after one warm-up call."""
    fn()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def measure(in_dir: Path, models: Path, threads_list: list[int], repeats: int) -> None:
    import onnxruntime as ort
    import openvino as ov

    core = ov.Core()
    caps = [str(c) for c in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")]
    name = core.get_property("CPU", "FULL_DEVICE_NAME")
    print(f"CPU: {name}; OpenVINO {ov.__version__} capabilities {caps}; onnxruntime {ort.__version__}")
    shapes = json.loads((in_dir / "shapes.json").read_text())
    rng = np.random.default_rng(0)
    for threads in threads_list:
        print(f"\n{threads} thread(s)\n")
        print("| bundle | stage | shape | ORT fp32 s | OV fp32 s | OV bf16 s | bf16 / ORT speed-up | parity dB |")
        print("|---|---|---|---|---|---|---|---|")
        totals = {"ort": 0.0, "f32": 0.0, "bf16": 0.0}
        for bundle, stages in shapes.items():
            files = {n: st["file"] for n, st in json.loads((models / bundle / "manifest.json").read_text())[
                "stages"].items()}
            real = np.load(in_dir / f"{bundle}.npz")
            for stage, feed_shapes in stages.items():
                path = models / bundle / files[stage]
                so = ort.SessionOptions()
                so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
                sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
                names = [i.name for i in sess.get_inputs()]
                big = {k: rng.standard_normal(feed_shapes[k]).astype(np.float32) for k in names}
                small = {k: real[f"{stage}/{k}"] for k in names}
                model = core.read_model(str(path))

                t_ort = _timed(lambda: sess.run(None, big), repeats)  # noqa: B023 - called at once
                c32 = _compiled(core, model, big, "f32", threads)
                c16 = _compiled(core, model, big, "bf16", threads)
                r32, r16 = c32.create_infer_request(), c16.create_infer_request()
                t32 = _timed(lambda: r32.infer(big), repeats)  # noqa: B023
                t16 = _timed(lambda: r16.infer(big), repeats)  # noqa: B023
                ref = sess.run(None, small)
                c_small = _compiled(core, model, small, "bf16", threads)
                got = c_small.create_infer_request().infer(small)
                dbs = []
                for out, o in zip(sess.get_outputs(), ref):  # paired by name
                    b = np.asarray(got[c_small.output(out.name)], np.float64)
                    peak = float(o.max() - o.min()) or 1.0
                    mse = float(np.mean((b - o.astype(np.float64)) ** 2))
                    dbs.append(float("inf") if mse == 0 else 10 * np.log10(peak * peak / mse))
                totals["ort"] += t_ort
                totals["f32"] += t32
                totals["bf16"] += t16
                shape = "x".join(str(s) for s in feed_shapes[names[0]])
                print(f"| {bundle} | {stage} | {shape} | {t_ort:.3f} | {t32:.3f} | {t16:.3f} | {t_ort / t16:.2f} | "
                      f"{min(dbs):.1f} |", flush=True)
        print(f"\nall stages, one evaluation each: ORT fp32 {totals['ort']:.2f} s, OV fp32 {totals['f32']:.2f} s, "
              f"OV bf16 {totals['bf16']:.2f} s (bf16 {totals['ort'] / totals['bf16']:.2f}x ORT)")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=("record", "measure"))
    ap.add_argument("dir", type=Path)
    ap.add_argument("--models", type=Path, default=ROOT / "models", help="the bundles (measure)")
    ap.add_argument("--threads", type=int, nargs="*", default=[2])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    if args.mode == "record":
        record(args.dir)
    else:
        measure(args.dir, args.models, args.threads, args.repeats)


if __name__ == "__main__":
    main()
