"""Torch-free runtime: onnxruntime predictor, pipelines, tiled engine and the ``restore`` API."""

from rscore.runtime.api import RequestError, RestoreReport, RestoreRequest, restore
from rscore.runtime.engine import Feedback, NullFeedback
from rscore.runtime.predictor import DEVICES, RuntimeMissing

__all__ = ["DEVICES", "Feedback", "NullFeedback", "RequestError", "RestoreReport", "RestoreRequest",
           "RuntimeMissing", "restore"]
