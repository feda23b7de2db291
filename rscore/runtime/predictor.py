"""onnxruntime sessions: execution providers from a DEVICE choice, thread settings, a session cache.

onnxruntime is imported late so that a missing install gives an instruction, not a traceback.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

import numpy as np

Device = Literal["auto", "cpu", "cuda", "openvino"]
#: DEVICE choices; "openvino" is last so that the index QGIS stores for the older choices keeps its meaning
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "openvino")

INSTALL_HINT = (
    "onnxruntime is not installed for the Python that runs QGIS. Install it with "
    "'python3 -m pip install --break-system-packages onnxruntime' (Debian/Ubuntu; add "
    "'numpy==<your numpy version>' to keep QGIS's numpy), or from the OSGeo4W shell on Windows with "
    "'python -m pip install onnxruntime', or run 'make install' in the rsrestore source tree; then restart QGIS. "
    "For an NVIDIA GPU install 'onnxruntime-gpu' instead."
)


class RuntimeMissing(Exception):
    """onnxruntime cannot be imported; the message says how to install it."""


def import_onnxruntime() -> Any:
    """Import onnxruntime or raise :class:`RuntimeMissing` with install instructions."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise RuntimeMissing(INSTALL_HINT) from exc
    return onnxruntime


def choose_providers(device: Device, available: list[str]) -> tuple[list[str], str]:
    """Execution providers for a DEVICE choice.

    Args:
        device: "auto" (CUDA if available, else CPU), "cpu", or "cuda" (falls back to CPU with a message).
        available: ``onnxruntime.get_available_providers()``.

    Returns:
        (providers in priority order, a one-line message for the user).
    """
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"unknown onnxruntime device {device!r}; use auto, cpu or cuda")
    has_cuda = "CUDAExecutionProvider" in available
    if device == "cpu":
        return ["CPUExecutionProvider"], "running on CPU"
    if has_cuda:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"], "running on CUDA GPU"
    if device == "cuda":
        return ["CPUExecutionProvider"], (
            "CUDA was requested but this onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu "
            "and the CUDA runtime); falling back to CPU"
        )
    return ["CPUExecutionProvider"], "no CUDA GPU available; running on CPU"


@dataclass(frozen=True)
class Backend:
    """What runs the networks: onnxruntime with ``providers``, or OpenVINO's CPU plugin at ``precision``."""

    kind: Literal["onnxruntime", "openvino"]
    providers: tuple[str, ...]
    precision: str
    message: str


OPENVINO_HINT = "install it with `make install` or 'python3 -m pip install openvino' (keep QGIS's numpy)"


def choose_backend(device: Device, available: list[str], openvino_bf16: bool | None) -> Backend:
    """The backend for a DEVICE choice.

    Args:
        device: "auto" (CUDA when onnxruntime has it; else OpenVINO in bf16 when it is installed and the CPU runs
            bf16 natively; else onnxruntime on the CPU), "cpu" (onnxruntime, fp32), "cuda" (falls back to the CPU
            with a message) or "openvino" (OpenVINO, bf16 where the CPU has it, else fp32; onnxruntime on the CPU,
            with a message, when OpenVINO is not installed).
        available: ``onnxruntime.get_available_providers()``.
        openvino_bf16: :func:`rscore.runtime.openvino_backend.cpu_has_bf16` (None: OpenVINO not installed).
    """
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; use one of {DEVICES}")
    if device == "openvino":
        if openvino_bf16 is None:
            return Backend("onnxruntime", ("CPUExecutionProvider",), "float32",
                           f"OpenVINO is not installed or cannot start ({OPENVINO_HINT}); running onnxruntime on CPU")
        precision = "bfloat16" if openvino_bf16 else "float32"
        return Backend("openvino", (), precision, f"running OpenVINO on CPU ({precision})")
    if device == "auto" and openvino_bf16 and "CUDAExecutionProvider" not in available:
        return Backend("openvino", (), "bfloat16", "running OpenVINO on CPU (bfloat16)")
    providers, message = choose_providers(device, available)
    return Backend("onnxruntime", tuple(providers), "float32", message)


def default_threads() -> int:
    """Intra-op threads: every core this process may use (2 on the project's CI machine)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class SessionKey:
    path: str
    sha256: str
    providers: tuple[str, ...]
    threads: int


#: sessions kept (least recently used dropped): each holds its network and onnxruntime's memory arena
CACHE_SIZE = 4
_CACHE: OrderedDict[SessionKey, Any] = OrderedDict()
_CACHE_LOCK = threading.Lock()


class ModelFileError(Exception):
    """A stage file does not match its checksum or cannot be loaded as a self-contained network."""


def read_verified(path: str | os.PathLike[str], sha256: str) -> bytes:
    """The file's bytes, checked against ``sha256``: the session is built from exactly these bytes, so a file
    replaced after the bundle was verified is never run."""
    data = Path(path).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if sha256 and digest != sha256:
        raise ModelFileError(f"{Path(path).name} fails its checksum (expected {sha256[:12]}..., got {digest[:12]}...); "
                             "the file is corrupt or was modified, reinstall or re-export the bundle")
    return data


def _new_session(ort: Any, model: bytes, providers: list[str], threads: int, name: str) -> Any:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(model, sess_options=opts, providers=providers)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        text = str(exc).lower()
        if "external" in text or "model_path must not be empty" in text:
            raise ModelFileError(
                f"{name} keeps its weights in separate files (ONNX external data), which rsrestore does not load: "
                "only files with a checksum in the manifest are run; re-export the network as a single .onnx "
                "file") from None
        raise


def get_session(path: str | os.PathLike[str], sha256: str, providers: list[str], threads: int) -> Any:
    """A cached ``InferenceSession`` (one per file content, providers and thread count).

    A GPU session that onnxruntime cannot create (CUDA or cuDNN libraries missing or broken) is retried on
    the CPU; check :func:`session_message` for what actually runs.
    """
    ort = import_onnxruntime()
    key = SessionKey(str(Path(path).resolve()), sha256, tuple(providers), threads)
    with _CACHE_LOCK:
        sess = _CACHE.get(key)
        if sess is not None:
            _CACHE.move_to_end(key)
            return sess
    model = read_verified(path, sha256)
    name = Path(path).name
    try:
        sess = _new_session(ort, model, providers, threads, name)
    except ModelFileError:
        raise
    except Exception:  # noqa: BLE001 - onnxruntime raises its own exception types
        if providers == ["CPUExecutionProvider"]:
            raise
        sess = _new_session(ort, model, ["CPUExecutionProvider"], threads, name)
    with _CACHE_LOCK:
        _CACHE[key] = sess
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return sess


def session_message(sessions: list[Any], requested: list[str]) -> str | None:
    """A correction to the provider message when a GPU was requested but a session runs on the CPU."""
    if "CUDAExecutionProvider" not in requested:
        return None
    if all("CUDAExecutionProvider" in s.get_providers() for s in sessions):
        return None
    return ("CUDA is listed by onnxruntime but could not be used (CUDA/cuDNN libraries missing or not "
            "matching onnxruntime-gpu); running on CPU")


def clear_session_cache() -> None:
    """Drop every cached session (tests, or after a bundle was replaced)."""
    with _CACHE_LOCK:
        _CACHE.clear()


class OnnxStage:
    """One stage network: named float32 inputs in, named outputs out (batch of one tile)."""

    def __init__(self, session: Any, name: str) -> None:
        self.session = session
        self.name = name
        self.input_names = tuple(i.name for i in session.get_inputs())
        self.output_names = tuple(o.name for o in session.get_outputs())

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise KeyError(f"stage {self.name!r} needs inputs {missing}")
        arrays = {n: np.ascontiguousarray(feeds[n], dtype=np.float32) for n in self.input_names}
        outs = self.session.run(list(self.output_names), arrays)
        return dict(zip(self.output_names, outs))


StageFactory = Callable[[str], OnnxStage]
