"""Discounting by simulated time for PPO on a semi-Markov decision process.

A step of ``LLMServing-v0`` lasts ``info["dt_s"]`` simulated seconds, from microseconds to
seconds, so a discount per *step* weighs the future by how many decisions it is away, not by
how far. Here the discount of step t is ``gamma_per_s ** dt_t`` (Bradtke & Duff, NIPS 1994,
for semi-Markov decision problems), used in PPO's generalised advantage estimate:

    delta_t = r_t + g_t V(s_{t+1}) (1 - done_{t+1}) - V(s_t),   g_t = gamma_per_s ** dt_t
    A_t     = delta_t + g_t lambda (1 - done_{t+1}) A_{t+1}

(the reward of a step accrues during it and is not discounted within it). :class:`StepDurations`
hands each step's ``dt_s`` to the rollout buffer before the algorithm stores the step; the
buffers are stable-baselines3's with only the advantage computation replaced. Truncated
episodes are bootstrapped by the library with its per-step ``gamma``; training episodes here
end by termination (every request finished), so that path is not taken.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback

__all__ = ["StepDurations", "TimeDiscountMixin", "time_discount_buffer"]


class TimeDiscountMixin:
    """Adds per-step durations to a rollout buffer and discounts by them."""

    gamma_per_s: float
    pending_dt: np.ndarray | None

    def reset(self) -> None:
        super().reset()  # type: ignore[misc]
        self.dts = np.zeros((self.buffer_size, self.n_envs), dtype=np.float64)  # type: ignore[attr-defined]
        self.pending_dt = None

    def add(self, *args: Any, **kwargs: Any) -> None:
        if self.pending_dt is None:
            raise RuntimeError("no step duration: train with the StepDurations callback")
        self.dts[self.pos] = self.pending_dt  # type: ignore[attr-defined]
        self.pending_dt = None
        super().add(*args, **kwargs)  # type: ignore[misc]

    def compute_returns_and_advantage(self, last_values: Any, dones: np.ndarray) -> None:
        values_next = last_values.clone().cpu().numpy().flatten()
        last_gae = np.zeros(self.n_envs, dtype=np.float64)  # type: ignore[attr-defined]
        for step in reversed(range(self.buffer_size)):  # type: ignore[attr-defined]
            if step == self.buffer_size - 1:  # type: ignore[attr-defined]
                non_terminal = 1.0 - dones.astype(np.float64)
                next_values = values_next
            else:
                non_terminal = 1.0 - self.episode_starts[step + 1]  # type: ignore[attr-defined]
                next_values = self.values[step + 1]  # type: ignore[attr-defined]
            discount = self.gamma_per_s ** self.dts[step]
            delta = (self.rewards[step] + discount * next_values * non_terminal  # type: ignore[attr-defined]
                     - self.values[step])  # type: ignore[attr-defined]
            last_gae = delta + discount * self.gae_lambda * non_terminal * last_gae  # type: ignore[attr-defined]
            self.advantages[step] = last_gae  # type: ignore[attr-defined]
        self.returns = self.advantages + self.values  # type: ignore[attr-defined]


def time_discount_buffer(base: type[RolloutBuffer], gamma_per_s: float) -> type[RolloutBuffer]:
    """``base`` (stable-baselines3's or sb3-contrib's masked rollout buffer) discounting by
    ``gamma_per_s ** dt`` per step; pass it as the algorithm's ``rollout_buffer_class``."""
    if not 0.0 < gamma_per_s <= 1.0:
        raise ValueError(f"gamma_per_s = {gamma_per_s!r}: must be in (0, 1]")
    return type(f"TimeDiscount{base.__name__}", (TimeDiscountMixin, base),
                {"gamma_per_s": float(gamma_per_s)})


class StepDurations(BaseCallback):
    """Gives the rollout buffer each step's ``info["dt_s"]`` (called after the env step,
    before the algorithm stores it)."""

    def _on_step(self) -> bool:
        buffer = self.model.rollout_buffer
        if isinstance(buffer, TimeDiscountMixin):
            buffer.pending_dt = np.array([info["dt_s"] for info in self.locals["infos"]],
                                         dtype=np.float64)
        return True
