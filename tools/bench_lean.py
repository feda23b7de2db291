"""One stage of two bundles side by side: the lean stage 1 against the one it was converted from.

    .venv/bin/python tools/bench_lean.py 18d5399:models/dehaze-bgrn models/dehaze-bgrn [--stage coarse]
        [--size 1024] [--threads 2] [--repeat 7] [--profile]

A bundle is a folder or ``REV:folder`` (a committed version, read with git, as ``model.init_from`` reads it).
For each bundle the stage runs on a ``size`` x ``size`` input of random model-unit values, in onnxruntime's CPU
provider (fp32) and, when installed, OpenVINO (the CPU's best precision: fp32 on AVX2, bf16 with AMX). Reported:
the median seconds per call after one warm-up call, seconds per megapixel, and the ops a memory-bound CPU pays
for in passes over the activations (Erf: GELU; ReduceMean, Pow, Sqrt: channel norms; Concat).
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WATCHED = ("Conv", "Relu", "Erf", "ReduceMean", "Pow", "Sqrt", "Concat", "Slice")


def _median_s(run, repeat: int) -> float:  # noqa: ANN001 - a zero-argument callable
    run()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def op_shares(blob: bytes, feeds: dict, threads: int) -> dict[str, float]:
    """Share of onnxruntime kernel time per op type over four calls (its built-in profiler)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.enable_profiling = True
    so.profile_file_prefix = str(Path(tempfile.mkdtemp(prefix="rsrestore-ort-profile-")) / "p")
    sess = ort.InferenceSession(blob, so, providers=["CPUExecutionProvider"])
    for _ in range(4):
        sess.run(None, feeds)
    path = Path(sess.end_profiling())
    spent: collections.Counter = collections.Counter()
    for e in json.loads(path.read_text()):
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            spent[e["args"]["op_name"]] += e["dur"]
    shutil.rmtree(path.parent, ignore_errors=True)
    total = sum(spent.values())
    return {k: v / total for k, v in spent.most_common()}


def measure(spec: str, stage: str, size: int, threads: int, repeat: int, profile: bool = False) -> dict:
    import onnx
    import onnxruntime as ort

    from training.warm_start import read_bundle_file

    manifest = json.loads(read_bundle_file(spec, "manifest.json"))
    blob = read_bundle_file(spec, manifest["stages"][stage]["file"])
    model = onnx.load_from_string(blob)
    ops = collections.Counter(n.op_type for n in model.graph.node)
    bands = len(manifest["input"]["names"])
    x = np.random.default_rng(0).normal(size=(1, bands, size, size)).astype(np.float32)
    name = model.graph.input[0].name
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(blob, so, providers=["CPUExecutionProvider"])
    row = {"bundle": spec, "ops": {k: ops.get(k, 0) for k in WATCHED},
           "ort_s": _median_s(lambda: sess.run(None, {name: x}), repeat)}
    if profile:
        row["shares"] = op_shares(blob, {name: x}, threads)
    try:
        import openvino as ov
    except ImportError:
        return row
    core = ov.Core()
    compiled = core.compile_model(core.read_model(model=blob, weights=b""), "CPU",
                                  {"INFERENCE_NUM_THREADS": threads, "ENABLE_CPU_PINNING": False})
    req = compiled.create_infer_request()
    row["openvino_s"] = _median_s(lambda: req.infer({0: x}), repeat)
    row["openvino_precision"] = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    return row


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundles", nargs=2, help="the reference bundle, then the lean one (folder or REV:folder)")
    ap.add_argument("--stage", default="coarse")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--profile", action="store_true", help="also onnxruntime's time per op type")
    args = ap.parse_args(argv)
    rows = [measure(b, args.stage, args.size, args.threads, args.repeat, args.profile) for b in args.bundles]
    mpx = args.size * args.size / 1e6
    print(f"stage `{args.stage}` on {args.size} x {args.size} px, {args.threads} threads, median of {args.repeat}\n")
    print("| bundle | onnxruntime fp32 s/Mpx | OpenVINO s/Mpx | " + " | ".join(WATCHED) + " |")
    print("|---|---|---|" + "---|" * len(WATCHED))
    for r in rows:
        ov_s = f"{r['openvino_s'] / mpx:.3f} ({r['openvino_precision']})" if "openvino_s" in r else "not installed"
        print(f"| `{r['bundle']}` | {r['ort_s'] / mpx:.3f} | {ov_s} | "
              + " | ".join(str(r["ops"][k]) for k in WATCHED) + " |")
    base, lean = rows
    line = f"\nspeed-up of the second: onnxruntime {base['ort_s'] / lean['ort_s']:.2f}x"
    if "openvino_s" in base and "openvino_s" in lean:
        line += f", OpenVINO {base['openvino_s'] / lean['openvino_s']:.2f}x"
    print(line)
    if args.profile:
        print("\nonnxruntime kernel time per op type (ops over 2 %):\n")
        for r in rows:
            shares = (f"{k} {100 * v:.0f} %" for k, v in r["shares"].items() if v > 0.02)
            print(f"- `{r['bundle']}`: " + ", ".join(shares))


if __name__ == "__main__":
    main()
