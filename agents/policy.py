"""Trained models as schedulers.

:class:`TrainedModel` loads ``agents/zoo/NAME.zip`` and its sidecar ``NAME.json`` and acts in
the env it was trained in; :class:`LearnedScheduler` is the same policy as a plain
:class:`~llm_serving_env.sim.scheduler.Scheduler`: it builds the env's observation from each
``DecisionView`` (:class:`~llm_serving_env.env.observation.Observer`) and composes the chosen
mode's batch from it, so ``simulate``, ``compare``, ``sweep`` and ``capacity`` accept
``ppo:PATH`` (and ``mode:K``) like any scheduler name, with results identical, bit for bit, to
running the model through its env (tested)::

    result = lse.simulate("configs/benchmarks/bursty_chat.yaml",
                          policy="ppo:agents/zoo/ppo_slo_bursty_chat.zip", seed=10_000)

    model = TrainedModel("agents/zoo/ppo_slo_bursty_chat.zip")
    env = model.make_env(config)          # the model's env: reward, action space, options
    obs, _ = env.reset(seed=s)
    obs, reward, terminated, truncated, info = env.step(model.act(obs, env))

``act`` is deterministic (the most probable action) and runs the policy network in numpy
(weights copied out of the torch model once; equal to ``model.predict(obs,
deterministic=True)``, tested), which is several times faster than a torch forward pass per
decision. :class:`ModeScheduler` (``mode:K``) runs one fixed action of the ``slo`` action space
at every decision point (the hand-written modes the learned policy chooses between; mode 0 is
``slo_aware``); :class:`FixedMode` does the same through the env. As plain schedulers, models
with the ``slo`` action space are supported (the shipped ones); the env's native and compact
actions still need the env.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from agents.actions import SloModes, make_env
from llm_serving_env.config.files import load_config, parse_override
from llm_serving_env.config.sim_config import SimConfig
from llm_serving_env.env.compose_env import hold_ladder
from llm_serving_env.env.compose_observation import DEFAULT_BUDGET_MARGIN_MS, ComposeKit
from llm_serving_env.env.observation import Observer
from llm_serving_env.env.serving_env import make_observer
from llm_serving_env.schema.fields import ConfigError, flatten
from llm_serving_env.sim.batch import Batch, Wait
from llm_serving_env.sim.result import RunResult
from llm_serving_env.sim.scheduler import DecisionView, Scheduler
from llm_serving_env.sim.simulate import as_config

__all__ = ["FixedMode", "LearnedScheduler", "ModeScheduler", "ModelLoadError", "TrainedModel",
           "run_agent"]


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


class TrainedModel:
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
        a, b = flatten(trained.to_dict()), flatten(as_config(config).to_dict())
        return sorted(k for k in set(a) | set(b)
                      if k not in ignored and a.get(k, _ABSENT) != b.get(k, _ABSENT))

    def _extract(self) -> None:
        """Copy the actor's weights into numpy: obs -> policy MLP -> action logits."""
        import torch.nn as nn

        pol = self.model.policy
        self._net = None
        if not hasattr(pol.mlp_extractor, "policy_net"):  # ComposeNet: logits straight out
            self._net = pol.mlp_extractor
            self._layers = []
            self._nvec = None
            self.observation_size = int(self.model.observation_space.shape[0])
            return
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
        if self._net is not None:
            import torch

            with torch.no_grad():
                x = torch.as_tensor(np.asarray(obs, dtype=np.float32).reshape(1, -1))
                return self._net.forward_actor(x).numpy()[0].astype(np.float64)
        x = np.asarray(obs, dtype=np.float64).reshape(-1)
        for layer in self._layers:
            x = x @ layer[0] + layer[1] if isinstance(layer, tuple) else layer(x)
        return x

    def act(self, obs: np.ndarray, env: gym.Env | None = None,
            mask: np.ndarray | None = None) -> int | np.ndarray:
        """The deterministic action at ``obs`` (masked by ``mask``, or by
        ``env.action_masks()`` when ``env`` is given, for a MaskablePPO model)."""
        z = self.logits(obs)
        if self.algo == "maskable_ppo" and (env is not None or mask is not None):
            if mask is None:
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


def _masks(env: gym.Env) -> np.ndarray | None:
    e = env
    while True:
        fn = getattr(e, "action_masks", None)
        if fn is not None:
            return fn()
        if not isinstance(e, gym.Wrapper):
            return None
        e = e.env


class FixedMode:
    """One fixed action of the ``slo`` action space (default budgets and orders) at every
    decision point, through the env: mode 0 = ``slo_aware``, 1 = ``slo_aware`` with the triage
    order, ... (see :mod:`agents.actions`)."""

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


# ---------------------------------------------------------------------- plain schedulers
_MODELS: dict[str, TrainedModel] = {}


def load_model(path: str | os.PathLike) -> TrainedModel:
    """The model at ``path``, loaded once per process (a sweep builds many schedulers)."""
    key = str(Path(path).resolve())
    if key not in _MODELS:
        _MODELS[key] = TrainedModel(path)
    return _MODELS[key]


def _slo_modes(sim_config: SimConfig, spec: Mapping[str, Any]) -> SloModes:
    kwargs = {k: spec[k] for k in ("budgets", "orders") if spec.get(k) is not None}
    return SloModes(sim_config, **kwargs)


#: A compose model that takes more micro-steps than this at one decision point is looping
#: (in the env, ``max_steps`` truncates such an episode; a plain scheduler raises).
MAX_MICRO_STEPS = 100_000


def observer_and_kit(sim_config: SimConfig, spec: Mapping[str, Any]
                     ) -> tuple[Observer, ComposeKit]:
    """The observer and the ``LLMServing-v1`` kit of a model's env spec, built for
    ``sim_config`` exactly as its env builds them (so a policy sees what it saw in training)."""
    options = dict(spec.get("env_options") or {})
    observer = make_observer(
        sim_config, **{k: options[k] for k in ("num_slots", "chunk_ladder") if k in options})
    kit = ComposeKit(sim_config, observer, hold_ladder(sim_config, options.get("hold_s")),
                     bool(options.get("guards", True)),
                     float(options.get("budget_margin_ms", DEFAULT_BUDGET_MARGIN_MS)),
                     bool(options.get("attention_aware", True)))
    return observer, kit


def compose_decision(kit: ComposeKit, view: DecisionView, context: np.ndarray,
                     act: Callable[..., Any], who: str) -> Batch | Wait:
    """One decision of a compose policy: the env's micro-steps on a fresh Composer until
    DISPATCH or WAIT, each action ``act(obs, mask=mask)``. ``context``: the decision's v0
    global features. Raises after ``MAX_MICRO_STEPS`` micro-steps (``who`` names the policy).
    """
    composer = kit.composer(view, view.event_pending)
    for micro in range(MAX_MICRO_STEPS):
        obs = kit.observe(composer, context, micro)
        command = composer.apply(int(act(obs, mask=composer.mask())))
        if command is not None:
            return command
    raise RuntimeError(f"{who} did not end the decision at t={view.now_s:.6f}s within "
                       f"{MAX_MICRO_STEPS:,} micro-steps (it pages without picking while "
                       "nothing else can happen)")


class LearnedScheduler(Scheduler):
    """A trained model of the ``slo`` or ``compose`` action space as a plain scheduler
    (``ppo:PATH``): at each decision point, the env's observation from the view, the model's
    deterministic action, and that mode's batch (``compose``: the micro-steps of
    ``LLMServing-v1`` on the same Composer, until DISPATCH or WAIT).

    Raises:
        ConfigError: the model's action space is neither ``slo`` nor ``compose`` (v0's native
            and compact actions need the env), or its observation size differs from this
            config's.
    """

    name = "ppo"

    def __init__(self, model: TrainedModel | str | os.PathLike, sim_config: SimConfig) -> None:
        super().__init__(None, sim_config)
        self.model = model if isinstance(model, TrainedModel) else load_model(model)
        spec = self.model.spec
        kind = spec.get("action_space", "slo")
        if kind not in ("slo", "compose"):
            raise ConfigError(f"model {self.model.path.name} acts in the {kind!r} action space; "
                              "as a plain scheduler only 'slo' and 'compose' models run "
                              "(evaluate it with 'llm-serving evaluate', which drives its env)")
        self.observer, kit = observer_and_kit(sim_config, spec)
        self.kit: ComposeKit | None = None
        size = self.observer.size
        if kind == "compose":  # LLMServing-v1: micro-steps on the env's own Composer
            self.kit = kit
            size = kit.size
        if size != self.model.observation_size:
            raise ConfigError(f"model {self.model.path.name} expects observations of size "
                              f"{self.model.observation_size}, this config gives {size}")
        self.modes = _slo_modes(sim_config, spec) if kind == "slo" else None
        self.spec_text = f"ppo:{self.model.path}"

    @classmethod
    def from_spec(cls, target: str, sim_config: SimConfig) -> LearnedScheduler:
        try:
            return cls(target, sim_config)
        except ModelLoadError as exc:
            raise ConfigError(str(exc)) from None

    @property
    def label(self) -> str:
        return self.spec_text

    def reset(self, rng: np.random.Generator) -> None:
        super().reset(rng)
        self.observer.reset()

    def schedule(self, view: DecisionView) -> Batch | Wait:
        if self.kit is None:
            action = self.model.act(self.observer.observe(view))
            return self.modes.compose(view, *self.modes.decode(action))
        context = self.observer.observe(view)[: self.kit.num_global]
        return compose_decision(self.kit, view, context, self.model.act,
                                self.model.path.name)


class ModeScheduler(Scheduler):
    """Mode ``K`` of the ``slo`` action space (default budgets and orders) at every decision
    point, as a plain scheduler (``mode:K``)."""

    name = "mode"

    def __init__(self, mode: int, sim_config: SimConfig) -> None:
        super().__init__(None, sim_config)
        self.modes = _slo_modes(sim_config, {})
        if isinstance(mode, bool) or not 0 <= int(mode) < self.modes.action_space.n:
            raise ConfigError(f"scheduler 'mode:{mode}': the mode must be an integer in "
                              f"0..{self.modes.action_space.n - 1}")
        self.budget, self.order = self.modes.decode(int(mode))
        self.mode = int(mode)

    @classmethod
    def from_spec(cls, target: str, sim_config: SimConfig) -> ModeScheduler:
        if not target.strip().isdigit():
            raise ConfigError(f"scheduler 'mode:{target}': the mode must be an integer")
        return cls(int(target), sim_config)

    @property
    def label(self) -> str:
        return f"mode:{self.mode}"

    def schedule(self, view: DecisionView) -> Batch | Wait:
        return self.modes.compose(view, self.budget, self.order)
