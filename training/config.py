"""Training configuration: a typed, frozen dataclass loaded from YAML and saved beside every run."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Experiments differ by config files only.

    Attributes:
        name: run and bundle name (e.g. "dehaze-bgrn").
        task: key of :data:`training.tasks.TASKS`.
        seed: seeds torch and the numpy Generator that draws patches and degradations.
        budget_minutes: wall-clock budget across resumes; training stops and exports when spent.
        max_steps: hard cap on optimizer steps (whichever comes first).
        batch_size: patches per step.
        patch_px: patch side in pixels.
        lr: AdamW learning rate (cosine-decayed to 10 % over the budget).
        weight_decay: AdamW weight decay.
        ema_decay: decay of the exponential moving average of the weights (exported).
        bf16: run forward passes under torch.autocast("cpu", dtype=torch.bfloat16).
        threads: torch intra-op threads.
        checkpoint_minutes: wall time between checkpoints.
        log_every: steps between CSV log lines.
        val_every: steps between validation passes.
        select_best: export the EMA weights of the validation pass the task scores best
            (``Task.selection_score``; held-out val scenes, never the test scenes) instead of the last ones.
        model: task-specific network settings.
        data: task-specific data settings.
        loss: task-specific loss weights.
        export: task-specific bundle settings.
    """

    name: str
    task: str
    seed: int = 0
    budget_minutes: float = 60.0
    max_steps: int = 1_000_000
    batch_size: int = 8
    patch_px: int = 96
    lr: float = 1e-3
    weight_decay: float = 1e-4
    ema_decay: float = 0.999
    bf16: bool = True
    threads: int = 2
    checkpoint_minutes: float = 5.0
    log_every: int = 20
    val_every: int = 250
    select_best: bool = False
    model: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    loss: dict[str, Any] = field(default_factory=dict)
    export: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        """Read a YAML file; unknown keys are an error (a typo must not be silently ignored)."""
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        data.update({k: v for k, v in overrides.items() if v is not None})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{path}: unknown config keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)

    def dump(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(dataclasses.asdict(self), sort_keys=False), encoding="utf-8")
