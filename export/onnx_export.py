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

from rscore.bundle.manifest import Manifest

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


#: dynamic axis names per grid (rows, cols): tensors on one grid share their symbolic sizes
GRID_AXES: dict[str, tuple[str, str]] = {"output": ("rows", "cols"), "input": ("in_rows", "in_cols"),
                                         "latent": ("latent_rows", "latent_cols")}


def grid_shape(manifest: Manifest, grid: str, rows: int, cols: int) -> tuple[int, int]:
    """The spatial size on ``grid`` of an example whose output-grid size is rows x cols."""
    if grid == "latent":
        assert manifest.latent is not None
        return rows // manifest.latent.factor, cols // manifest.latent.factor
    if grid == "input":
        s = manifest.scale.default
        return max(1, round(rows / s)), max(1, round(cols / s))
    return rows, cols


def example_inputs(manifest: Manifest, stage: str, names: Sequence[str], rows: int = 32, cols: int = 32,
                   generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Random example tensors for a stage's inputs, shaped by the manifest's tensor specs (grid and channels;
    scalars have shape (1,)); ``rows`` x ``cols`` is the output-grid size."""
    g = generator or torch.Generator().manual_seed(0)
    out: dict[str, torch.Tensor] = {}
    for n in names:
        spec = manifest.tensor(stage, n)
        if n == "scale":  # a scale ratio the bundle supports
            lo, hi = manifest.scale.min, manifest.scale.max
            out[n] = lo + (hi - lo) * torch.rand(1, generator=g)
        elif spec.grid == "scalar":
            out[n] = torch.rand(1, generator=g)
        elif n == "aux_valid":  # a validity mask: 0 or 1
            out[n] = (torch.rand(1, 1, *grid_shape(manifest, spec.grid, rows, cols), generator=g) > 0.3).float()
        else:
            out[n] = torch.randn(1, spec.channels, *grid_shape(manifest, spec.grid, rows, cols), generator=g)
    return out


def export_stage(stage: StageExport, example: Mapping[str, torch.Tensor], path: str | Path,
                 grids: Mapping[str, str] | None = None) -> Path:
    """Export ``stage.module`` to ``path`` with dynamic spatial axes on every image input and output, named by
    grid (``grids``: tensor name -> grid; default: every tensor on the output grid, ``t`` and ``scale``
    scalars)."""
    module = stage.module.eval()
    args = tuple(example[n] for n in stage.inputs)
    grids = dict(grids or {})
    dyn = {}
    for n in (*stage.inputs, *stage.outputs):
        grid = grids.get(n, "scalar" if n in ("t", "scale") else "output")
        if grid != "scalar":
            r, c = GRID_AXES[grid]
            dyn[n] = {2: r, 3: c}
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
