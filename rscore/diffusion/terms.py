"""From a denoiser's outputs to the terms a reverse step uses, written once for numpy arrays and torch tensors.

The sampling loop (:mod:`rscore.diffusion.loop`) updates ``x_t`` from the terms ``res``, ``eps`` and ``x0``
that a plan's coefficients ask for. A network predicts some of them (or other quantities, such as the fusion
weight of Diffusion Enhancement); a *rule* turns what it predicts into what the step needs. The plugin (numpy +
onnxruntime) and training-time evaluation (torch) call the same rule, so the two cannot drift apart.

Rules (the ``terms`` of a pipeline spec, :mod:`rscore.pipelines`):

- ``"rddm"``: the denoiser returns ``res`` (and optionally ``eps``); without ``eps`` it follows from x_t, the
  loop's start image and ``res`` (METHODS.md section 1).
- ``"ddim"``: the denoiser returns ``x0``, or ``eps`` from which ``x0 = a x_t + b eps``.
- ``"de"``: Diffusion Enhancement (METHODS.md section 3): ``eps`` gives a clipped clean estimate that is fused
  with the reference ``ref`` by the predicted weight ``weight`` (clamped to [weight_floor, 1]) or by a fixed
  weight.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from rscore.diffusion.fusion import fuse_x0, x0_from_eps
from rscore.diffusion.plan import StepCoefficients

A = TypeVar("A")  # numpy.ndarray or torch.Tensor

RULES: tuple[str, ...] = ("rddm", "ddim", "de")


@dataclass(frozen=True)
class TermContext(Generic[A]):
    """What a rule needs besides the step and the network outputs (constant over one sampling run).

    Attributes:
        start: ``"rddm"``: the loop's start image y (the coarse output, or the degraded input).
        ref: ``"de"``: the reference model's clean estimate x0_E.
        lo, hi: ``"de"``: valid range of the noise-derived clean estimate, model units (scalars or per band).
        weight_floor: ``"de"``: eta; the predicted weight is clamped to [eta, 1].
        fixed_weight: ``"de"``: a constant weight instead of the predicted one (ablations), used as given.
    """

    start: A | None = None
    ref: A | None = None
    lo: Any = None
    hi: Any = None
    weight_floor: float = 0.0
    fixed_weight: float | None = None


def _need(outs: Mapping[str, A], name: str, rule: str) -> A:
    if name not in outs:
        raise KeyError(f"rule {rule!r} needs the network output {name!r}; got {sorted(outs)}")
    return outs[name]


def outputs_to_terms(rule: str, x: A, step: StepCoefficients, outs: Mapping[str, A],
                     ctx: TermContext[A]) -> dict[str, A]:
    """The terms of one reverse step from the denoiser's outputs ``outs`` at state ``x`` (see module doc)."""
    if rule == "rddm":
        if ctx.start is None:
            raise ValueError("rule 'rddm' needs the loop's start image (TermContext.start)")
        res = _need(outs, "res", rule)
        eps = outs.get("eps")
        if eps is None:
            eps = x * step.eps_from_x + ctx.start * step.eps_from_y + res * step.eps_from_res
        return {"res": res, "eps": eps}
    if rule == "ddim":
        if "x0" in outs:
            return {"x0": outs["x0"]}
        return {"x0": x * step.x0_from_x + _need(outs, "eps", rule) * step.x0_from_eps}
    if rule == "de":
        if ctx.ref is None or ctx.lo is None or ctx.hi is None:
            raise ValueError("rule 'de' needs the reference estimate and the clip range (TermContext.ref/lo/hi)")
        x0_eps = x0_from_eps(x, _need(outs, "eps", rule), step.x0_from_x, step.x0_from_eps, ctx.lo, ctx.hi)
        w = _need(outs, "weight", rule) if ctx.fixed_weight is None else ctx.fixed_weight
        return {"x0": fuse_x0(x0_eps, ctx.ref, w, ctx.weight_floor)}
    raise ValueError(f"unknown terms rule {rule!r}; known: {RULES}")
