"""A trained model as a scheduler: :class:`LearnedScheduler` loads ``agents/zoo/NAME.zip`` and
its sidecar ``NAME.json`` and acts through the env it was trained in.

The learned policy reads the env's observation (queue lengths, ages, decode stalls, the
arrival-rate estimate, ... of ``LLMServingEnv``), which the simulator's ``DecisionView`` alone
does not carry (the arrival-rate EWMA and counts of the whole run are kept by the env), so it
acts through the env, not as a bare :class:`~llm_serving_env.sim.scheduler.Scheduler`:

    agent = LearnedScheduler("agents/zoo/ppo_slo_bursty_chat.zip")
    result = agent.run("configs/benchmarks/bursty_chat.yaml", seed=10_000)   # a RunResult

    env = agent.make_env(config)          # the model's env: reward, action space, options
    obs, _ = env.reset(seed=s)
    obs, reward, terminated, truncated, info = env.step(agent.act(obs, env))

``act`` is deterministic (the most probable action) and runs the policy network in numpy
(weights copied out of the torch model once; equal to ``model.predict(obs,
deterministic=True)``, tested), which is several times faster than a torch forward pass per
decision. ``ModeScheduler`` runs one fixed action of the ``slo`` action space at every decision
point (the hand-written modes the learned policy chooses between; mode 0 is ``slo_aware``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from agents.actions import make_env
from llm_serving_env.config.files import load_config, parse_override
from llm_serving_env.config.sim_config import SimConfig
from llm_serving_env.schema.fields import ConfigError
from llm_serving_env.sim.result import RunResult
from llm_serving_env.sim.simulate import as_config

__all__ = ["LearnedScheduler", "ModelLoadError", "ModeScheduler", "run_agent"]


class ModelLoadError(FileNotFoundError):
    """A model zip or its sidecar is missing or unreadable."""


def run_agent(env: gym.Env, act, seed: int) -> RunResult:
    """Run one episode of ``env`` with ``act(obs, env) -> action`` to termination; the run's
    RunResult."""
    obs, _ = env.reset(seed=seed)
    step = env.step
    while True:
        obs, _, terminated, truncated, _ = step(act(obs, env))
        if terminated:
            return env.unwrapped.result()
        if truncated:
            raise RuntimeError("the episode was truncated (max_steps / max_time_s): "
                               "evaluation needs whole runs")


def _activation(module: Any):
    import torch.nn as nn

    if isinstance(module, nn.Tanh):
        return np.tanh
    if isinstance(module, nn.ReLU):
        return lambda x: np.maximum(x, 0.0)
    raise ValueError(f"unsupported activation {type(module).__name__} in the policy network")


class LearnedScheduler:
    """A trained SB3 model (PPO or MaskablePPO) and the env spec it was trained with.

    ``path``: the model zip; its sidecar ``NAME.json`` (written by ``llm-serving train``) must
    sit beside it. Raises :class:`ModelLoadError` naming the missing file.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        from agents.train import sidecar_path

        self.path = Path(path)
        if not self.path.is_file():
            raise ModelLoadError(f"model file {self.path} not found (train one with "
                                 f"'llm-serving train ... --out {self.path}')")
        side = sidecar_path(self.path)
        if not side.is_file():
            raise ModelLoadError(f"model sidecar {side} not found: 'llm-serving train' writes "
                                 f"it beside {self.path.name}; it holds the env spec the "
                                 f"model was trained with")
        try:
            self.sidecar: dict[str, Any] = json.loads(side.read_text())
        except json.JSONDecodeError as exc:
            raise ModelLoadError(f"model sidecar {side} is not valid JSON: {exc}") from None
        self.spec: dict[str, Any] = dict(self.sidecar["env_spec"])
        self.algo: str = self.sidecar.get("algo", "ppo")
        import torch

        torch.set_num_threads(1)
        if self.algo == "maskable_ppo":
            from sb3_contrib import MaskablePPO as Algo
        else:
            from stable_baselines3 import PPO as Algo
        try:
            self.model = Algo.load(self.path, device="cpu")
        except Exception as exc:  # a corrupt or foreign zip
            raise ModelLoadError(f"cannot load {self.path} as a {self.algo} model: {exc}"
                                 ) from None
        self._extract()

    @property
    def name(self) -> str:
        return self.path.name.removesuffix(".zip")

    @property
    def train_seed_range(self) -> tuple[int, int] | None:
        r = self.sidecar.get("train_seed_range")
        return (int(r[0]), int(r[1])) if r else None

    def training_config(self) -> SimConfig | None:
        """The config the model was trained on (the sidecar's ``config`` and ``overrides``),
        or None when it cannot be read here. A relative path is tried from the working
        directory, then from each folder above the model (the repository root)."""
        source = self.sidecar.get("config")
        if not source:
            return None
        candidates = [Path(source)]
        if not Path(source).is_absolute():
            candidates += [folder / source for folder in self.path.resolve().parents]
        for candidate in candidates:
            if candidate.is_file():
                source = candidate
                break
        try:
            cfg = load_config(source)
            overrides = self.sidecar.get("overrides") or []
            if overrides:
                cfg = cfg.replace(dict(parse_override(text) for text in overrides))
        except ConfigError:
            return None
        return cfg

    def trained_config_differences(
        self, config: SimConfig | str | os.PathLike | Mapping[str, Any]
    ) -> list[str] | None:
        """Dotted config fields where ``config`` differs from the training config ([] when
        it is the same scenario), or None when the training config cannot be read. The run
        length (``num_requests``, ``warmup_requests``) is ignored: training cuts episodes."""
        trained = self.training_config()
        if trained is None:
            return None
        ignored = {"num_requests", "warmup_requests"}
        a, b = _flat(trained.to_dict()), _flat(as_config(config).to_dict())
        return sorted(k for k in set(a) | set(b)
                      if k not in ignored and a.get(k, _ABSENT) != b.get(k, _ABSENT))

    def _extract(self) -> None:
        """Copy the actor's weights into numpy: obs -> policy MLP -> action logits."""
        import torch.nn as nn

        pol = self.model.policy
        layers: list[tuple[np.ndarray, np.ndarray] | Any] = []
        for module in pol.mlp_extractor.policy_net:
            if isinstance(module, nn.Linear):
                layers.append((module.weight.detach().numpy().astype(np.float64).T.copy(),
                               module.bias.detach().numpy().astype(np.float64).copy()))
            else:
                layers.append(_activation(module))
        head = pol.action_net
        layers.append((head.weight.detach().numpy().astype(np.float64).T.copy(),
                       head.bias.detach().numpy().astype(np.float64).copy()))
        self._layers = layers
        space = self.model.action_space
        if isinstance(space, gym.spaces.Discrete):
            self._nvec = None
        elif isinstance(space, gym.spaces.MultiDiscrete):
            self._nvec = np.asarray(space.nvec, dtype=np.int64)
            self._splits = np.cumsum(self._nvec)[:-1]
        else:
            raise ModelLoadError(f"unsupported action space {space}")
        self.observation_size = int(self.model.observation_space.shape[0])

    def logits(self, obs: np.ndarray) -> np.ndarray:
        """Action logits of the policy network for one observation (numpy)."""
        x = np.asarray(obs, dtype=np.float64).reshape(-1)
        for layer in self._layers:
            x = x @ layer[0] + layer[1] if isinstance(layer, tuple) else layer(x)
        return x

    def act(self, obs: np.ndarray, env: gym.Env | None = None) -> int | np.ndarray:
        """The deterministic action at ``obs`` (masked by ``env.action_masks()`` for a
        MaskablePPO model when ``env`` is given)."""
        z = self.logits(obs)
        if self.algo == "maskable_ppo" and env is not None:
            mask = _masks(env)
            if mask is not None:
                z = np.where(mask, z, -np.inf)
        if self._nvec is None:
            return int(np.argmax(z))
        return np.array([int(np.argmax(part)) for part in np.split(z, self._splits)],
                        dtype=np.int64)

    __call__ = act

    def make_env(self, config: SimConfig | str | os.PathLike | Mapping[str, Any]) -> gym.Env:
        """The model's env on ``config`` (the full-length scenario for evaluation)."""
        env = make_env(as_config(config), self.spec)
        if env.observation_space.shape[0] != self.observation_size:
            raise ValueError(f"{self.path.name} expects observations of size "
                             f"{self.observation_size}, the env gives "
                             f"{env.observation_space.shape[0]}")
        return env

    def run(self, config: SimConfig | str | os.PathLike | Mapping[str, Any], seed: int = 0,
            env: gym.Env | None = None) -> RunResult:
        """One whole run of ``config`` with seed ``seed`` through the env; its RunResult
        (common random numbers with ``simulate(config, policy, seed)``)."""
        return run_agent(env if env is not None else self.make_env(config), self.act, seed)


_ABSENT = object()


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    """A nested dict as ``{dotted.path: leaf}``."""
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _masks(env: gym.Env) -> np.ndarray | None:
    e = env
    while True:
        fn = getattr(e, "action_masks", None)
        if fn is not None:
            return fn()
        if not isinstance(e, gym.Wrapper):
            return None
        e = e.env


class ModeScheduler:
    """One fixed action of the ``slo`` action space (default budgets and orders) at every
    decision point: mode 0 = ``slo_aware``, 1 = ``slo_aware`` with the triage order, ... (see
    :mod:`agents.actions`)."""

    def __init__(self, mode: int, spec: Mapping[str, Any] | None = None) -> None:
        self.mode = int(mode)
        self.spec = dict(spec or {"reward": "goodput", "action_space": "slo"})

    @property
    def name(self) -> str:
        return f"mode:{self.mode}"

    def make_env(self, config: SimConfig | str | os.PathLike | Mapping[str, Any]) -> gym.Env:
        env = make_env(as_config(config), self.spec)
        if not 0 <= self.mode < env.action_space.n:
            raise ValueError(f"mode {self.mode} is outside {env.action_space}")
        return env

    def act(self, obs: np.ndarray, env: gym.Env | None = None) -> int:
        return self.mode

    def run(self, config: SimConfig | str | os.PathLike | Mapping[str, Any], seed: int = 0,
            env: gym.Env | None = None) -> RunResult:
        return run_agent(env if env is not None else self.make_env(config), self.act, seed)
