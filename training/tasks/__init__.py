"""Training tasks, listed explicitly."""

from __future__ import annotations

from typing import Any, Callable

from training.config import TrainConfig


def _dehaze(cfg: TrainConfig) -> Any:
    from training.tasks.dehaze import DehazeTask

    return DehazeTask(cfg)


def _remove_clouds(cfg: TrainConfig) -> Any:
    from training.tasks.clouds import CloudRemovalTask

    return CloudRemovalTask(cfg)


def _super_resolve(cfg: TrainConfig) -> Any:
    from training.tasks.sr import SuperResolutionTask

    return SuperResolutionTask(cfg)


def _reference_super_resolve(cfg: TrainConfig) -> Any:
    from training.tasks.refsr import ReferenceSrTask

    return ReferenceSrTask(cfg)


def _enhance_decoded(cfg: TrainConfig) -> Any:
    from training.tasks.codec import EnhanceDecodedTask

    return EnhanceDecodedTask(cfg)


TASKS: dict[str, Callable[[TrainConfig], Any]] = {"dehaze": _dehaze, "remove_clouds": _remove_clouds,
                                                  "super_resolve": _super_resolve,
                                                  "reference_super_resolve": _reference_super_resolve,
                                                  "enhance_decoded": _enhance_decoded}
