"""Training tasks, listed explicitly."""

from __future__ import annotations

from typing import Any, Callable

from training.config import TrainConfig


def _dehaze(cfg: TrainConfig) -> Any:
    from training.tasks.dehaze import DehazeTask

    return DehazeTask(cfg)


TASKS: dict[str, Callable[[TrainConfig], Any]] = {"dehaze": _dehaze}
