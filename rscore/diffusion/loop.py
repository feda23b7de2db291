"""The sampling loop, generic over numpy arrays and torch tensors.

Only ``+`` and ``*`` with Python floats touch the arrays here, so the same function serves the plugin
(numpy + onnxruntime) and training-time evaluation (torch). Networks never hold sampling logic: the
caller passes a ``predict`` function that evaluates them.
"""

from __future__ import annotations

from typing import Callable, Mapping, Protocol, TypeVar

from rscore.diffusion.plan import SamplingPlan, StepCoefficients

A = TypeVar("A")  # numpy.ndarray or torch.Tensor

#: ``predict(x_t, step) -> {"res": r_hat, "eps": eps_hat, "x0": x0_hat}`` (the terms the plan uses).
Predict = Callable[[A, StepCoefficients], Mapping[str, A]]
#: ``noise(stream) -> z`` with stream -1 for the initial state and k for step k's fresh noise.
Noise = Callable[[int], A]


class Cancelled(Exception):
    """Raised inside the loop when the caller's ``should_stop`` returns True."""


class StepCallback(Protocol):
    def __call__(self, step: StepCoefficients) -> None: ...


_TERMS = (("coef_res", "res"), ("coef_eps", "eps"), ("coef_x0", "x0"))


def initial_state(plan: SamplingPlan, y: A, noise: Noise) -> A:
    """x_T = init_y * y + init_noise * z (METHODS.md: RDDM starts from the degraded image plus noise)."""
    x = noise(-1) * plan.init_noise
    if plan.init_y != 0.0:
        x = x + y * plan.init_y
    return x


def apply_step(step: StepCoefficients, x: A, pred: Mapping[str, A], noise: Noise) -> A:
    """One reverse update x_t -> x_s from the predicted terms."""
    out = x * step.coef_x
    for coef_name, term in _TERMS:
        coef = getattr(step, coef_name)
        if coef != 0.0:
            if term not in pred:
                raise KeyError(f"step {step.index} needs the prediction {term!r}; got {sorted(pred)}")
            out = out + pred[term] * coef
    if step.coef_noise != 0.0:
        out = out + noise(step.index) * step.coef_noise
    return out


def sample(
    plan: SamplingPlan,
    y: A,
    predict: Predict,
    noise: Noise,
    should_stop: Callable[[], bool] | None = None,
    on_step: StepCallback | None = None,
) -> A:
    """Run the reverse process of ``plan`` from the degraded image ``y``.

    Args:
        plan: per-step scalars.
        y: degraded (or coarsely restored) image in model units, (..., bands, rows, cols).
        predict: evaluates the networks at (x_t, step).
        noise: standard normal draws with the shape of ``y``, by stream index (see :data:`Noise`).
        should_stop: checked before every step; True raises :class:`Cancelled`.
        on_step: called after every step (progress).

    Returns:
        x_0, the restored image in model units.
    """
    x = initial_state(plan, y, noise)
    for step in plan.steps:
        if should_stop is not None and should_stop():
            raise Cancelled("sampling cancelled")
        x = apply_step(step, x, predict(x, step), noise)
        if on_step is not None:
            on_step(step)
    return x
