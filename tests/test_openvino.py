"""The OpenVINO backend: which backend a DEVICE choice gets, and the accuracy guard of every shipped bundle
(OpenVINO, in bf16 where the CPU has it, against onnxruntime fp32 at the pipeline output)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from rscore.metrics.fidelity import psnr
from rscore.runtime import RestoreRequest, restore
from rscore.runtime.predictor import choose_backend
from tests.fixtures import rasters

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p.parent for p in (ROOT / "models").glob("*/manifest.json"))
#: least PSNR of the OpenVINO pipeline output against onnxruntime fp32 (issue 14's accuracy guard)
PARITY_MIN_DB = 45.0
CUDA = ["CUDAExecutionProvider", "CPUExecutionProvider"]
CPU = ["CPUExecutionProvider"]


def test_backend_choice():
    # no OpenVINO: everything as before, an explicit choice says why it is not used
    assert choose_backend("auto", CPU, None).kind == "onnxruntime"
    b = choose_backend("openvino", CPU, None)
    assert b.kind == "onnxruntime" and "OpenVINO is not installed" in b.message and b.precision == "float32"
    # OpenVINO on a CPU without native bf16: only when asked for, in fp32
    assert choose_backend("auto", CPU, False).kind == "onnxruntime"
    b = choose_backend("openvino", CPU, False)
    assert (b.kind, b.precision) == ("openvino", "float32")
    # AMX / AVX512-BF16: auto takes OpenVINO bf16, unless onnxruntime has a GPU
    b = choose_backend("auto", CPU, True)
    assert (b.kind, b.precision) == ("openvino", "bfloat16")
    assert choose_backend("auto", CUDA, True).providers[0] == "CUDAExecutionProvider"
    assert choose_backend("cpu", CUDA, True).providers == ("CPUExecutionProvider",)
    with pytest.raises(ValueError, match="unknown device"):
        choose_backend("tpu", CPU, None)


def _input_for(bundle: Path, folder: Path) -> Path:
    names = json.loads((bundle / "manifest.json").read_text())["input"]["names"]
    if len(names) == 4:
        return rasters.reflectance_uint16(folder / "bgrn.tif", rows=96, cols=112, seed=5)
    return rasters.write(folder / "rgb.tif", np.round(rasters.scene(3, 96, 112, 5) * 500).clip(0, 255), "Byte")


@pytest.mark.parametrize("bundle", SHIPPED, ids=[p.name for p in SHIPPED])
def test_openvino_matches_onnxruntime_at_the_pipeline_output(tmp_path, bundle):
    pytest.importorskip("openvino", reason="openvino is not installed (make install / make test install it)")
    src = _input_for(bundle, tmp_path)
    m = json.loads((bundle / "manifest.json").read_text())
    aux = str(src) if m.get("aux") or any("aux" in s["inputs"] for s in m["stages"].values()) else None
    outs = {}
    for device in ("cpu", "openvino"):
        out = tmp_path / f"{device}.tif"
        report = restore(RestoreRequest(str(src), str(bundle), str(out), scale_factor=2.0 if m["scale"]["max"] > 1
                                        else None, aux_path=aux, device=device, threads=2))
        assert ("OpenVINO" in report.provider_message) == (device == "openvino")
        outs[device] = gdal.Open(str(out)).ReadAsArray()
    peak = 255.0 if outs["cpu"].dtype == np.uint8 else 10000.0
    db = psnr(outs["cpu"], outs["openvino"], peak)
    assert db >= PARITY_MIN_DB, f"{bundle.name}: OpenVINO output at {db:.1f} dB of onnxruntime fp32"


def test_openvino_failures_name_the_fix_and_auto_falls_back(tmp_path, monkeypatch, bgrn_tif):
    pytest.importorskip("openvino", reason="openvino is not installed")
    from rscore.bundle.manifest import BundleError
    from rscore.runtime import openvino_backend

    def broken(*args, **kwargs):
        raise RuntimeError("Exception from src/inference/src/cpp/core.cpp:105:\nUnable to read the model: broken")

    bundle = ROOT / "models" / "dehaze-bgrn"
    monkeypatch.setattr(openvino_backend, "cpu_has_bf16", lambda: True)  # as on an AMX CPU: auto takes OpenVINO
    monkeypatch.setattr(openvino_backend, "get_stage", broken)
    with pytest.raises(BundleError, match="Unable to read the model: broken.*DEVICE cpu"):
        restore(RestoreRequest(str(bgrn_tif), str(bundle), str(tmp_path / "ov.tif"), device="openvino"))
    assert not (tmp_path / "ov.tif").exists()
    report = restore(RestoreRequest(str(bgrn_tif), str(bundle), str(tmp_path / "auto.tif"), device="auto"))
    assert "Unable to read the model" in report.provider_message and "onnxruntime on CPU instead" in \
        report.provider_message
    # a network that cannot be compiled for the tile shape fails at the first tile with the same advice
    monkeypatch.undo()
    openvino_backend.clear_cache()
    stage = openvino_backend.get_stage(str(bundle / "coarse.onnx"), "", 1, "float32")

    class NoCompile:
        def compile_model(self, *args, **kwargs):
            broken()

    monkeypatch.setattr(openvino_backend, "core", lambda: NoCompile())
    with pytest.raises(BundleError, match="cannot compile coarse.onnx.*Unable to read the model.*DEVICE cpu"):
        stage({"y": np.zeros((1, 4, 64, 64), np.float32)})
    openvino_backend.clear_cache()


_WIDE_BLUR_BF16 = """
import sys
import numpy as np
from openvino import Core, Model, opset13 as ops
from rscore.runtime.openvino_backend import split_wide_group_convs
x = ops.parameter([1, 4, 32, 64], np.float32, name="x")
w = ops.constant(np.full((4, 1, 1, 1, 25), 0.04, np.float32))
model = Model([ops.result(ops.group_convolution(x, w, [1, 1], [0, 12], [0, 12], [1, 1]))], [x])
split_wide_group_convs(model)
Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "bf16"})
print("compiled")
"""


def test_wide_depthwise_kernels_are_split_for_bf16():
    """OpenVINO's CPU plugin never finishes compiling a grouped convolution 15 or more taps wide (fewer than 32
    channels) in bf16 on AVX512-BF16 CPUs: the bf16 path splits such kernels into convolutions of at most 13
    taps over shifted slices of the input. The result is the same in fp32, and it compiles in bf16."""
    pytest.importorskip("openvino", reason="openvino is not installed")
    import subprocess
    import sys

    from openvino import Core, Model
    from openvino import opset13 as ops

    from rscore.runtime import openvino_backend

    rng = np.random.default_rng(3)
    weights = rng.random((4, 1, 1, 3, 25), dtype=np.float32)

    def blur() -> Model:  # a 3 x 25 depthwise kernel with zero padding along the width
        x = ops.parameter([1, 4, 40, 70], np.float32, name="x")
        y = ops.group_convolution(x, ops.constant(weights), [1, 1], [1, 12], [1, 12], [1, 1])
        return Model([ops.result(y)], [x])

    plain, split = blur(), blur()
    assert openvino_backend.split_wide_group_convs(split) == 1
    widths = [int(n.get_input_partial_shape(1).to_shape()[-1]) for n in split.get_ordered_ops()
              if n.get_type_name() == "GroupConvolution"]
    assert widths == [13, 12]
    x = rng.random((1, 4, 40, 70), dtype=np.float32)
    f32 = {"INFERENCE_PRECISION_HINT": "f32"}
    want, got = (np.array(Core().compile_model(m, "CPU", f32)(x)[0]) for m in (plain, split))
    assert got.shape == want.shape == (1, 4, 40, 70)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    if openvino_backend.cpu_has_bf16():  # in a child process: without the split the compile would never return
        res = subprocess.run([sys.executable, "-c", _WIDE_BLUR_BF16], cwd=ROOT, capture_output=True, text=True,
                             timeout=120)
        assert res.stdout.strip() == "compiled", res.stderr
