"""Time-discounted advantages (agents/discount.py) against stable-baselines3's own GAE and a
hand computation."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")
import torch  # noqa: E402
from gymnasium import spaces  # noqa: E402
from stable_baselines3.common.buffers import RolloutBuffer  # noqa: E402

from agents.discount import time_discount_buffer  # noqa: E402

OBS = spaces.Box(0.0, 1.0, (2,), np.float32)
ACT = spaces.Discrete(3)


def fill(buffer, rewards, values, starts, dts=None):
    for t, (r, v, s) in enumerate(zip(rewards, values, starts, strict=True)):
        if dts is not None:
            buffer.pending_dt = np.array([dts[t]])
        buffer.add(np.zeros((1, 2), np.float32), np.array([[0]]), np.array([r]),
                   np.array([s], dtype=float), torch.tensor([[v]]), torch.tensor([0.0]))


REWARDS = [1.0, -2.0, 0.5, 3.0]
VALUES = [0.2, 0.4, -0.1, 0.3]
STARTS = [1, 0, 1, 0]  # a new episode starts at step 2


def test_unit_durations_reproduce_the_library_per_step_gae():
    gamma, lam = 0.9, 0.8
    ref = RolloutBuffer(4, OBS, ACT, gae_lambda=lam, gamma=gamma, n_envs=1)
    fill(ref, REWARDS, VALUES, STARTS)
    ref.compute_returns_and_advantage(torch.tensor([[0.7]]), np.array([False]))
    ours = time_discount_buffer(RolloutBuffer, gamma)(4, OBS, ACT, gae_lambda=lam, gamma=0.5,
                                                      n_envs=1)
    fill(ours, REWARDS, VALUES, STARTS, dts=[1.0, 1.0, 1.0, 1.0])
    ours.compute_returns_and_advantage(torch.tensor([[0.7]]), np.array([False]))
    np.testing.assert_allclose(ours.advantages, ref.advantages, rtol=1e-6)
    np.testing.assert_allclose(ours.returns, ref.returns, rtol=1e-6)


def test_the_discount_of_a_step_is_gamma_to_its_duration():
    g, lam = 0.5, 1.0
    dts = [2.0, 0.0, 1.0, 3.0]
    buf = time_discount_buffer(RolloutBuffer, g)(4, OBS, ACT, gae_lambda=lam, gamma=0.99,
                                                 n_envs=1)
    fill(buf, REWARDS, VALUES, STARTS, dts=dts)
    buf.compute_returns_and_advantage(torch.tensor([[0.7]]), np.array([False]))
    # by hand, backwards; episode boundary between steps 1 and 2 (step 2 starts one)
    a3 = 3.0 + g**3 * 0.7 - 0.3
    a2 = (0.5 + g**1 * 0.3 - (-0.1)) + g**1 * lam * a3
    a1 = -2.0 + 0.0 - 0.4  # next state starts a new episode: no bootstrap
    a0 = (1.0 + g**2 * 0.4 - 0.2) + g**2 * lam * a1
    np.testing.assert_allclose(buf.advantages.ravel(), [a0, a1, a2, a3], rtol=1e-6)


def test_a_step_without_its_duration_is_refused():
    buf = time_discount_buffer(RolloutBuffer, 0.9)(2, OBS, ACT, n_envs=1)
    with pytest.raises(RuntimeError, match="StepDurations"):
        fill(buf, [1.0], [0.0], [1])
    with pytest.raises(ValueError, match="gamma_per_s"):
        time_discount_buffer(RolloutBuffer, 1.5)
