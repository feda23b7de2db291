"""torch -> ONNX for one stage network, and a parity check against onnxruntime.

Every stage is exported with the TorchScript-based exporter (no onnxscript dependency), opset 17,
batch 1 and dynamic spatial axes, so that the runtime can feed tiles of any size.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

OPSET = 17


@dataclass(frozen=True)
class StageExport:
    """A network to export as one bundle stage.

    Attributes:
        module: the torch network (put in eval mode by the exporter).
        inputs: ONNX input names in forward() argument order, from the bundle contract.
        outputs: ONNX output names in forward() return order.
        file: file name inside the bundle.
    """

    module: torch.nn.Module
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    file: str


def example_inputs(names: Sequence[str], bands: int, aux_bands: int = 0, rows: int = 32, cols: int = 32,
                   generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Random example tensors for the bundle-contract names (``t`` has shape (1,))."""
    g = generator or torch.Generator().manual_seed(0)
    out: dict[str, torch.Tensor] = {}
    for n in names:
        if n == "t":
            out[n] = torch.rand(1, generator=g)
        elif n == "aux":
            out[n] = torch.randn(1, aux_bands or bands, rows, cols, generator=g)
        else:
            out[n] = torch.randn(1, bands, rows, cols, generator=g)
    return out


def export_stage(stage: StageExport, example: Mapping[str, torch.Tensor], path: str | Path) -> Path:
    """Export ``stage.module`` to ``path`` with dynamic rows/cols on every image input and output."""
    module = stage.module.eval()
    args = tuple(example[n] for n in stage.inputs)
    dyn = {n: {2: "rows", 3: "cols"} for n in stage.inputs if n != "t"}
    dyn.update({n: {2: "rows", 3: "cols"} for n in stage.outputs})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, args, str(path), input_names=list(stage.inputs), output_names=list(stage.outputs),
            dynamic_axes=dyn, opset_version=OPSET, dynamo=False, do_constant_folding=True,
        )
    return Path(path)


def onnx_input_names(path: str | Path) -> tuple[str, ...]:
    """Graph inputs actually present in an exported file."""
    import onnx

    return tuple(i.name for i in onnx.load(str(path)).graph.input)


def onnx_parity(stage: StageExport, path: str | Path, example: Mapping[str, torch.Tensor]) -> float:
    """Max absolute difference between onnxruntime and torch outputs on ``example``."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    # the exporter drops inputs a network ignores (e.g. t for a time-independent toy)
    feeds = {i.name: example[i.name].numpy().astype(np.float32) for i in sess.get_inputs()}
    got = sess.run(list(stage.outputs), feeds)
    with torch.no_grad():
        ref = stage.module.eval()(*(example[n] for n in stage.inputs))
    if isinstance(ref, torch.Tensor):
        ref = (ref,)
    return max(float(np.max(np.abs(g - r.numpy()))) for g, r in zip(got, ref))
