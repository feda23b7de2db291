"""Warm starts: a run begins from the weights of a committed bundle instead of from scratch.

``model.init_from`` names the bundle: a folder (``models/dehaze-bgrn``) or a folder at a git revision
(``18d5399:models/dehaze-bgrn``), so a run stays reproducible after the bundle it started from is
replaced. The ONNX stages of our bundles keep every parameter as an initializer under its state-dict
name, so the weights are read back from them. A stage whose network is lean (``UNetConfig.lean``) while
the bundle's is not is converted by :func:`rscore.models.dsrdmpd.lean_state_dict`.

Networks that only training uses (super-resolution's HR encoder and its latent scale) are in no stage. The
training harness saves them beside the stages, in ``training_only.npz`` (:func:`save_training_only`; the
plugin's ZIP leaves the file out), so that a continuation starts from them instead of learning its latent
space again.
"""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from rscore.models.dsrdmpd import MCESSUNet, lean_state_dict, norm_fits

ROOT = Path(__file__).resolve().parents[1]


def read_bundle_file(spec: str, name: str) -> bytes:
    """A file of the bundle ``spec`` ("folder" or "rev:folder")."""
    rev, sep, folder = spec.rpartition(":")
    if not sep:
        path = Path(folder) if Path(folder).is_absolute() else ROOT / folder
        if not (path / name).is_file():
            raise FileNotFoundError(f"model.init_from: no {name} in {path}; name a bundle folder (models/NAME), "
                                    "optionally as REV:models/NAME")
        return (path / name).read_bytes()
    res = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{folder.rstrip('/')}/{name}"],
                         capture_output=True, check=False)
    if res.returncode != 0:
        raise FileNotFoundError(f"model.init_from: git cannot show {rev}:{folder}/{name} "
                                f"({res.stderr.decode(errors='replace').strip()})")
    return res.stdout


def bundle_weights(spec: str, manifest: dict | None = None) -> dict[str, dict[str, torch.Tensor]]:
    """{stage name: state dict} read from the initializers of a bundle's ONNX stages (``manifest``: the bundle's
    manifest when the caller has already read it)."""
    if manifest is None:
        manifest = json.loads(read_bundle_file(spec, "manifest.json"))
    out = {}
    for stage, entry in manifest["stages"].items():
        model = onnx.load_from_string(read_bundle_file(spec, entry["file"]))
        out[stage] = {i.name: torch.from_numpy(np.array(numpy_helper.to_array(i))) for i in model.graph.initializer}
    return out


def unwrap(weights: dict[str, torch.Tensor], keys: Iterable[str]) -> dict[str, torch.Tensor]:
    """``weights`` with the export wrapper's prefix removed: a stage exported through a wrapper module (refsr's
    ``ResidualOnly`` holds the network as ``denoiser``) names every parameter ``<attribute>.<state-dict name>``.
    The prefix is removed only when every name has it and the network has none of the names as they are."""
    keys = set(keys)
    if keys & set(weights):
        return weights
    heads = {k.split(".", 1)[0] for k in weights}
    if len(heads) != 1 or not all("." in k for k in weights):
        return weights
    stripped = {k.split(".", 1)[1]: v for k, v in weights.items()}
    return stripped if keys & set(stripped) else weights


#: training-only networks of a bundle (:func:`save_training_only`); not a stage, not in the manifest
TRAINING_ONLY_FILE = "training_only.npz"


def _stage_weights(name: str, net: nn.Module, weights: dict[str, dict[str, torch.Tensor]]
                   ) -> dict[str, torch.Tensor] | None:
    """The weights of network ``name`` among a bundle's stage weights: a stage of that name, or the one stage
    that holds all of it under the prefix ``name.``; None when no stage does."""
    if name in weights:
        return weights[name]
    # a network exported inside another stage (clouds: cnp and wa in "denoiser")
    nested = {stage: {k[len(name) + 1 :]: v for k, v in w.items() if k.startswith(f"{name}.")}
              for stage, w in weights.items()}
    # only a stage holding this network's every weight under the prefix: another network's layers may share it
    # (sr: the latent denoiser's "enc"/"dec" blocks beside the HR encoder "enc" and the decoder "dec", exported
    # through a wrapper as "dec.*")
    forms = [set(net.state_dict())]
    if isinstance(net, MCESSUNet) and net.cfg.lean:  # a lean network may start from its full form
        forms.append(set(type(net)(replace(net.cfg, lean=False)).state_dict()))
    nested = {stage: w for stage, w in nested.items() if w and any(f <= set(w) for f in forms)}
    return next(iter(nested.values())) if len(nested) == 1 else None


def training_only_networks(networks: nn.ModuleDict, bundle: Path) -> list[str]:
    """Names of the networks (with weights) that none of the stages of the bundle folder holds."""
    weights = bundle_weights(str(bundle.resolve()))
    return [name for name, net in networks.items()
            if net.state_dict() and _stage_weights(name, net, weights) is None]


def save_training_only(networks: nn.ModuleDict, bundle: Path) -> list[str]:
    """Write the weights of the networks that no stage of ``bundle`` holds to ``bundle/training_only.npz``
    (keys ``network/state-dict name``, float32 or the tensor's own type); returns their names (none: no file)."""
    names = training_only_networks(networks, bundle)
    if names:
        arrays = {f"{name}/{k}": v.detach().cpu().numpy() for name in names
                  for k, v in networks[name].state_dict().items()}
        tmp = bundle / (TRAINING_ONLY_FILE + ".tmp")
        with tmp.open("wb") as fh:
            np.savez(fh, **arrays)
        tmp.replace(bundle / TRAINING_ONLY_FILE)
    return names


def training_only_weights(spec: str) -> dict[str, dict[str, torch.Tensor]]:
    """{network: state dict} from a bundle's ``training_only.npz``; {} when the bundle has none."""
    try:
        raw = read_bundle_file(spec, TRAINING_ONLY_FILE)
    except FileNotFoundError:
        return {}
    out: dict[str, dict[str, torch.Tensor]] = {}
    with np.load(io.BytesIO(raw)) as z:
        for key in z.files:
            name, _, param = key.partition("/")
            out.setdefault(name, {})[param] = torch.from_numpy(np.array(z[key]))
    return out


def warm_start(networks: nn.ModuleDict, spec: str, inputs: Callable[[str], torch.Tensor]) -> list[str]:
    """Load ``spec``'s weights into ``networks`` (every stage the bundle has, and its training-only networks
    when it holds them). ``inputs(stage)`` gives typical inputs of a stage, used only to convert a stage to its
    lean form. Returns one line per network."""
    from training.tasks.sr import LatentScale

    manifest = json.loads(read_bundle_file(spec, "manifest.json"))
    weights = bundle_weights(spec, manifest)
    manifest_stages = set(weights)
    z_std = (manifest.get("training") or {}).get("z_std")
    extra = training_only_weights(spec)
    lines = []
    for name, net in networks.items():
        found = _stage_weights(name, net, weights)
        if found is None and name in extra:
            net.load_state_dict(extra[name], strict=True)
            lines.append(f"{name}: loaded from {spec} ({TRAINING_ONLY_FILE}: a training-only network)")
            continue
        if found is None and isinstance(net, LatentScale) and z_std:
            # the latent scale of a bundle exported without training_only.npz: it is in the manifest
            net.std.fill_(float(z_std))
            lines.append(f"{name}: set from {spec}'s manifest (z_std {float(z_std):.6g})")
            continue
        if found is None:
            lines.append(f"{name}: not in {spec}, starts from scratch")
            continue
        weights[name] = unwrap(found, net.state_dict().keys())
        lean = isinstance(net, MCESSUNet) and net.cfg.lean and not any(".fuse.0." in k for k in weights[name])
        target = type(net)(replace(net.cfg, lean=False)) if lean else net
        own = target.state_dict()
        load = {k: v for k, v in weights[name].items() if k in own}
        # weights that do not train (a frozen base, ``frozen_prefixes``) and that the bundle lacks stay the
        # network's own; strict for the rest: a bundle of another architecture fails here, naming what it lacks
        frozen = tuple(getattr(net, "frozen_prefixes", ()))
        kept = [k for k in own if k not in load and frozen and k.startswith(frozen)]
        target.load_state_dict({**load, **{k: own[k] for k in kept}}, strict=True)
        if lean:
            net.load_state_dict(lean_state_dict(target, norm_fits(target, inputs(name))), strict=True)
        lines.append(f"{name}: {'converted to lean' if lean else 'loaded'} from {spec}"
                     + ("" if name in manifest_stages else " (inside another stage)")
                     + (f" (kept its own {', '.join(frozen)}*: not in the bundle)" if kept else ""))
    return lines
