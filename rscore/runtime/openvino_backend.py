"""OpenVINO backend: the bundles' ONNX stage files run by OpenVINO's CPU plugin, in bf16 where the CPU has it
(AMX or AVX512-BF16), in fp32 elsewhere.

The network is read once from the checksum-verified bytes. It is compiled once per set of input shapes (the
engine's tiles share one padded shape, so a run usually compiles each stage once), and the compiled networks
are cached in the process: a batch worker reuses them scene after scene. ``openvino`` is imported late, and
a missing install only means the onnxruntime path is used.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rscore.bundle.manifest import BundleError

#: compiled shapes kept per stage (least recently used dropped)
SHAPES_PER_STAGE = 4
#: stages kept in the process (each holds its compiled networks)
CACHE_SIZE = 8

_CORE: Any = None
_LOCK = threading.Lock()
_STAGES: OrderedDict[tuple[str, str, int, str], OpenVinoStage] = OrderedDict()


def error_text(exc: BaseException) -> str:
    """The informative line of an OpenVINO error (its first line is only the C++ source location)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith("Exception from src/")]
    return (useful[-1] if useful else lines[-1] if lines else type(exc).__name__)[:300]


def import_openvino() -> Any | None:
    """The ``openvino`` module, or None when it is not installed (or cannot load)."""
    try:
        import openvino
    except Exception:  # noqa: BLE001 - a broken install (missing shared library) counts as not installed
        return None
    return openvino


def core() -> Any:
    """The process's ``openvino.Core`` (created once)."""
    global _CORE
    ov = import_openvino()
    if ov is None:
        raise RuntimeError("openvino is not installed")
    with _LOCK:
        if _CORE is None:
            _CORE = ov.Core()
        return _CORE


def cpu_has_bf16() -> bool | None:
    """Whether OpenVINO's CPU plugin runs bf16 natively here (AMX or AVX512-BF16); None without OpenVINO."""
    if import_openvino() is None:
        return None
    try:
        caps = core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # noqa: BLE001 - a CPU plugin that cannot start: treat OpenVINO as absent
        return None
    return "BF16" in [str(c).upper() for c in caps]


#: widest horizontal kernel of a grouped (depthwise) convolution that OpenVINO's CPU plugin compiles in bf16:
#: from 15 taps on, with fewer than 32 channels, compile_model never returns on AVX512-BF16 CPUs (OpenVINO 2025.3
#: and 2026.4 on an AMD EPYC; the Gaussian blurs of refsr-bgrn's reference low-pass have 25 taps)
BF16_MAX_GROUP_CONV_TAPS = 13


def split_wide_group_convs(model: Any, max_taps: int = BF16_MAX_GROUP_CONV_TAPS) -> int:
    """Rewrite, in place, every grouped convolution of ``model`` (an ``openvino.Model``) whose kernel is wider
    than ``max_taps`` into a sum of convolutions of at most ``max_taps`` columns each, read from shifted slices
    of the input: the same result up to the order of the float sums. Only kernels with unit stride and
    dilation along the width are rewritten. Returns how many were."""
    from openvino import opset13 as ops

    count = 0
    for node in model.get_ordered_ops():
        if node.get_type_name() != "GroupConvolution" or not node.get_input_partial_shape(1).is_static:
            continue
        taps = int(node.get_input_partial_shape(1).to_shape()[-1])
        a = node.get_attributes()
        if taps <= max_taps or a["strides"][-1] != 1 or a["dilations"][-1] != 1 or a["auto_pad"] not in (
                "explicit", "notset"):
            continue
        x, w = node.input_value(0), node.input_value(1)
        pads_begin, pads_end = list(a["pads_begin"]), list(a["pads_end"])
        if pads_begin[-1] or pads_end[-1]:  # the width padding becomes an explicit zero Pad before the slices
            zeros = [0] * (len(pads_begin) + 1)
            x = ops.pad(x, [*zeros, pads_begin[-1]], [*zeros, pads_end[-1]], "constant").output(0)
            pads_begin[-1] = pads_end[-1] = 0
        total = None
        for first in range(0, taps, max_taps):
            last = min(taps, first + max_taps)  # taps [first, last) read input columns [first, width - taps + last)
            stop = last - taps if last < taps else np.iinfo(np.int64).max
            xs = ops.slice(x, np.array([first]), np.array([stop]), np.array([1]), np.array([-1]))
            ws = ops.slice(w, np.array([first]), np.array([last]), np.array([1]), np.array([-1]))
            part = ops.group_convolution(xs, ws, a["strides"], pads_begin, pads_end, a["dilations"])
            total = part if total is None else ops.add(total, part)
        node.output(0).replace(total.output(0))
        count += 1
    if count:
        model.validate_nodes_and_infer_types()
    return count


class OpenVinoStage:
    """One stage network on OpenVINO, with :class:`rscore.runtime.predictor.OnnxStage`'s interface: named
    float32 inputs in, named outputs out."""

    def __init__(self, model_bytes: bytes, name: str, threads: int, precision: str) -> None:
        self.name = name
        self.threads = threads
        self.precision = precision
        self.model = core().read_model(model_bytes)
        if precision == "bfloat16":
            split_wide_group_convs(self.model)
        self.input_names = tuple(i.get_any_name() for i in self.model.inputs)
        self.output_names = tuple(o.get_any_name() for o in self.model.outputs)
        self._compiled: OrderedDict[tuple[tuple[int, ...], ...], Any] = OrderedDict()
        self._lock = threading.Lock()

    def _compiled_for(self, arrays: Mapping[str, np.ndarray]) -> Any:
        key = tuple(tuple(arrays[n].shape) for n in self.input_names)
        with self._lock:
            hit = self._compiled.get(key)
            if hit is not None:
                self._compiled.move_to_end(key)
                return hit
        model = self.model.clone()
        model.reshape({n: list(arrays[n].shape) for n in self.input_names})
        # no CPU pinning: with several batch workers on one host, pinned threads share cores (measured 1.5x slower,
        # docs/performance.md, batch scale-out)
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": self.threads, "ENABLE_CPU_PINNING": False,
                  "INFERENCE_PRECISION_HINT": "bf16" if self.precision == "bfloat16" else "f32"}
        try:
            compiled = core().compile_model(model, "CPU", config)
        except RuntimeError as exc:  # OpenVINO's errors derive from RuntimeError
            raise BundleError(f"OpenVINO cannot compile {self.name} for tiles of {list(key)} ({error_text(exc)}); "
                              "run with DEVICE cpu") from None
        with self._lock:
            self._compiled[key] = compiled
            while len(self._compiled) > SHAPES_PER_STAGE:
                self._compiled.popitem(last=False)
        return compiled

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise KeyError(f"stage {self.name!r} needs inputs {missing}")
        arrays = {n: np.ascontiguousarray(feeds[n], dtype=np.float32) for n in self.input_names}
        compiled = self._compiled_for(arrays)
        try:
            result = compiled.create_infer_request().infer(arrays)
        except RuntimeError as exc:
            raise BundleError(f"OpenVINO failed to run {self.name} ({error_text(exc)}); run with DEVICE cpu"
                              ) from None
        return {n: np.array(result[compiled.output(n)], dtype=np.float32, copy=True) for n in self.output_names}


def get_stage(path: str, sha256: str, threads: int, precision: str) -> OpenVinoStage:
    """A cached OpenVINO stage for a checksum-verified ONNX file."""
    from rscore.runtime.predictor import read_verified

    key = (str(Path(path).resolve()), sha256, threads, precision)
    with _LOCK:
        hit = _STAGES.get(key)
        if hit is not None:
            _STAGES.move_to_end(key)
            return hit
    stage = OpenVinoStage(read_verified(path, sha256), Path(path).name, threads, precision)
    with _LOCK:
        _STAGES[key] = stage
        while len(_STAGES) > CACHE_SIZE:
            _STAGES.popitem(last=False)
    return stage


def clear_cache() -> None:
    """Drop every cached stage (tests, or after a bundle was replaced)."""
    with _LOCK:
        _STAGES.clear()
