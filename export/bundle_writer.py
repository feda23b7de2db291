"""Write a complete bundle: export every stage, check parity, write the manifest with checksums."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Mapping

import torch

from export.onnx_export import StageExport, example_inputs, export_stage, onnx_input_names, onnx_parity
from rscore.bundle.manifest import Manifest, StageSpec
from rscore.bundle.store import Bundle, write_bundle

PARITY_TOL = 1e-4


def build_bundle(out_dir: str | Path, manifest: Manifest, stages: Mapping[str, StageExport],
                 parity_rows: int = 40, parity_cols: int = 56) -> tuple[Bundle, dict[str, float]]:
    """Export ``stages`` into ``out_dir`` and write its manifest.

    ``manifest.stages`` must list the same stages with their IO names and tensor grids (example inputs and
    dynamic axes are derived from them); they are then replaced from the export (file names, the inputs the
    exported graph kept, checksums), so the two cannot disagree.

    Returns:
        (the verified bundle, max |onnx - torch| per stage on a random tile).

    Raises:
        AssertionError: if a stage's ONNX output departs from torch by more than ``PARITY_TOL``.
    """
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    parity: dict[str, float] = {}
    specs: dict[str, StageSpec] = {}
    # example shapes and dynamic axes come from the manifest's tensor specs (declared or default), the same
    # contract the runtime feeds; the stages in ``manifest`` must already name the stages' IO
    for name, st in stages.items():
        ex = example_inputs(manifest, name, st.inputs, parity_rows, parity_cols, torch.Generator().manual_seed(1))
        grids = {n: manifest.tensor(name, n).grid for n in (*st.inputs, *st.outputs)}
        path = export_stage(st, ex, root / st.file, grids)
        parity[name] = onnx_parity(st, path, ex)
        if parity[name] > PARITY_TOL:
            raise AssertionError(f"stage {name}: ONNX departs from torch by {parity[name]:.2e} > {PARITY_TOL}")
        kept = onnx_input_names(path)
        declared = manifest.stages[name].tensors
        specs[name] = StageSpec(st.file, "", kept, st.outputs,
                                {n: t for n, t in declared.items() if n in kept or n in st.outputs})
    training = {**manifest.training, "onnx_parity_max_abs": parity}
    bundle = write_bundle(root, dataclasses.replace(manifest, stages=specs, training=training))
    return bundle, parity
